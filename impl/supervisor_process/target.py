"""Target ``airflow-process``: a scenario lived by a real runtime process under the real coordinator supervisor.

Everything between the supervisor and the world is real:

- the process and the supervisor: ``impl.supervisor_process.supervise`` (the real
  ``_PopenActivitySubprocess``, its real ``wait()``, ``final_state`` and
  ``update_task_state_if_needed``);
- the runtime (``impl/wire/scripted_runtime.py``) writes each of the scenario's frames, encoded by
  ``impl.wire.codec``, on the real socket and reads the real response; it exits with the
  scenario's code or dies of its signal; it ignores SIGTERM (``ignore sigterm``) or handles it and carries on
  (``handle sigterm``: its steps after the kill's SIGTERM go on while the real ``kill()`` waits for it) with a real
  signal handler; one that never exits (``exit hang``) lives time running on, then sleeps until killed;
- the Execution API: Airflow's real ``Client`` over HTTP (see ``supervise`` for how it is set up)
  to what ``server`` names: ``model`` (``impl.server.model_api``, one client attempt per call) or
  ``airflow`` (the real Execution API app over loopback HTTP, uvicorn in the process where the
  attempts run, the client's default retries with zero waits: ``real_server``).

The server. ``target(name, server=None)`` reads it as airflow-inproc does (``server`` or, when
None, ``$FINALSTATE_SERVER``, default ``model``). On ``airflow`` each scenario is its own DagRun
and TI; faults go on the client's transport and heartbeat answers are made by the world
(``impl.server.airflow_attempt``), performed when the runtime reaches them on its control
channel; the run keeps the last attempt's record (exchanges, row before and after) as
``run.last``; a run context the real server cannot hand out raises ``Unsupported``.

A ``heartbeat`` or ``overtime`` event is performed by the runtime over its control channel,
which runs that one clock out, and so is a user's action on the task instance (``act``) and what the
runtime does with SIGTERM (``impl.server.model_api``).

- *Lockstep.* After every frame and every clock event the runtime makes no-op round trips
  (``MaskSecret`` with an empty value) until every wake-up of the loop that could act on the
  event has finished; only then does it perform the next event. So the supervisor sees the
  events in the scenario's order, and a kill lands where the model puts it. The no-op
  frames are not scenario frames: their answers are not counted in ``replies``.
Two ways to launch (``spawn=``): ``exec`` runs ``python impl/wire/scripted_runtime.py`` afresh
(about 35 ms of interpreter start); ``fork`` (the default when a C compiler is at hand)
runs the tiny compiled ``impl/wire/launcher.c``, which connects, hands its sockets to a
pre-started fork server and stands in for the forked child (signals forwarded, exit status
mirrored). The supervisor cannot tell the difference; the benchmark measures both.

Before task-sdk 1.3.0 there is no supervisor that launches a command (``since_1_3_0_command_supervisor``):
the only spawn is ``target``, the release's own ``ActivitySubprocess.start(target=...)``, which forks the
process the attempts run in and runs the scripted runtime in the child (``scripted_runtime.forked_child``)
on the requests socketpair that Airflow's ``_fork_main`` put at its fd 0 (``supervise.supervise_forked``).
Before 1.0.6 the runtime's no-op frame is ``GetVariable`` (no ``MaskSecret`` yet: ``since_1_0_6_mask_secret_no_op``).
Before 1.0.3 the child speaks JSON lines (``since_1_0_3_length_prefixed_frames``): it reads StartupDetails and the
supervisor's lines on its fd 0, writes its requests to the descriptor StartupDetails names, and its lockstep asks for a
variable of its own (``lockstep``); what it is told per frame is recorded as the supervisor handles each request.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
import uuid
from typing import Iterator

import msgpack

from impl.releases.adapters import model_release, request_body, since_1_0_6_mask_secret_no_op
from impl.supervisor_process import helper, supervise
from impl.supervisor_process.real_server import RealAttempt
from impl.supervisor_process.census import census
from impl.wire.launcher import SCRIPTED_RUNTIME
from impl.wire.scripted_runtime import SYNC_VARIABLE, forked_child
from model.scenario import (DEFAULT_EXECUTION_API_RETRIES, HANG, Fault, HandleSigterm, Heartbeat, IgnoreSigterm,
                            Observation, Overtime, RunContext, Scenario, Send, UserAction)
from model.supervisor import TIME_RUNS_ON


@functools.lru_cache(maxsize=None)
def decoded_request_types() -> frozenset[str]:
    """The body ``type``s the installed supervisor decodes: the members of its release's ``comms.ToSupervisor``
    (``AwaitInputTask`` is one since 1.3.0). A frame of another type fails ``handle_requests``' decoder, which
    logs it and answers nothing."""
    import typing

    from airflow.sdk.execution_time.comms import ToSupervisor

    union = typing.get_args(ToSupervisor)[0]
    return frozenset(member.model_fields["type"].default for member in typing.get_args(union))


def lockstep() -> dict:
    """The script's keys for its lockstep on the installed wire (``since_1_0_3_length_prefixed_frames``): on frames,
    the release's no-op request, answered by its id; on JSON lines, which carry no ids, a ``GetVariable`` of
    ``SYNC_VARIABLE`` (which no server has), told apart by its answer: the ``VARIABLE_NOT_FOUND`` that names it."""
    if supervise.WIRE.framed:
        return {"wire": "frames", "sync_body": since_1_0_6_mask_secret_no_op()}
    return {"wire": "lines", "sync_body": {"type": "GetVariable", "key": SYNC_VARIABLE},
            "sync_answer": {"type": "ErrorResponse", "error": "VARIABLE_NOT_FOUND", "detail": {"key": SYNC_VARIABLE}}}


def clock_lockstep() -> list[list]:
    """The steps after a clock was run out, until a wake-up has acted on it (its checks may kill the process). On
    frames, two round trips: the second is answered by the next wake-up. On JSON lines, ``settle`` on the control
    channel, which wakes the loop without writing to the runtime: a request in flight while the checks kill the process
    would be answered to a runtime that has died, and a supervisor before 1.0.3 then waits for ever (finding W5)."""
    if supervise.WIRE.framed:
        return [["sync", 2]]
    return [["control", {"op": "settle"}]]


def compile_scenario(scenario: Scenario) -> dict:
    """The runtime's script for ``scenario``: its frames pre-encoded on the installed wire, each event followed by
    its lockstep. A frame is awaited by its id; one the installed supervisor cannot decode is written, not answered,
    and so is every request on JSON lines, answered with a line only when there is something to send (the lockstep
    after it reads what came).

    A process that never exits (``HANG``) meets time running on after its events (``model.supervisor.TIME_RUNS_ON``,
    played as the events they are), then never exits (``never_exit``: the harness ends the attempt if nothing
    ended it, or runs out the wait of a kill whose SIGTERM it handled)."""
    steps: list[list] = []
    frame_ids = itertools.count(1)
    time_runs_on = TIME_RUNS_ON if scenario.exit_code == HANG else ()
    for event in (*scenario.events, *time_runs_on):
        steps += event_steps(event, scenario, frame_ids)
    steps.append(["never_exit"] if scenario.exit_code == HANG else ["exit", scenario.exit_code])
    return {"connect": True, "steps": steps, **lockstep()}


def event_steps(event, scenario: Scenario, frame_ids: Iterator[int]) -> list[list]:
    """The script's steps that perform one event of ``scenario`` (``frame_ids``: the ids its frames take, in order)."""
    if isinstance(event, Send):
        request_id = next(frame_ids)
        body = request_body(event.frame, event.state, scenario.rendered_map_index)
        data = supervise.WIRE.request(request_id, body)
        if supervise.WIRE.framed and body["type"] in decoded_request_types():
            return [["send", data, request_id], ["sync", 1]]
        return [["raw", data], ["sync", 1]]
    if isinstance(event, Fault):
        return [["control", {"op": "arm", "call": event.call, "kind": event.kind}]]
    if isinstance(event, UserAction):
        return [["control", {"op": "act", "action": event.action, "state": event.state}]]
    if isinstance(event, Heartbeat):
        return [["control", {"op": "heartbeat", "answer": event.answer}], *clock_lockstep()]
    if isinstance(event, Overtime):
        return [["control", {"op": "overtime"}], *clock_lockstep()]
    if isinstance(event, IgnoreSigterm):
        return [["ignore_sigterm", supervise.IGNORED_SIGTERM_GRACE, scenario.exit_code],
                ["control", {"op": "ignore_sigterm"}]]
    if isinstance(event, HandleSigterm):
        return [["handle_sigterm"], ["control", {"op": "handle_sigterm"}]]
    raise TypeError(f"unknown event {event!r}")


def supervise_script(script: dict, context: RunContext = RunContext(), *, spawn: str | None = None,
                     server: str = "model", execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES,
                     deadline: float = supervise.DEFAULT_DEADLINE,
                     startup_timeout: float = supervise.DEFAULT_STARTUP_TIMEOUT) -> Observation:
    """Run one scripted runtime (``impl.wire.scripted_runtime``) under the real supervisor, where attempts run.

    The control address and token are filled in here, and the installed wire with its lockstep (``lockstep``)
    unless the script says otherwise. ``spawn`` is ``fork`` (the default when
    the launcher could be built) or ``exec``, or before 1.3.0 ``target`` (the only one there; see the module);
    ``server`` ``model`` or ``airflow`` (see the module);
    ``execution_api_retries`` the tries of each request by the supervisor's client.
    Bounded as ``supervise.supervise_command`` is.
    """
    return supervise_recorded(script, context, spawn=spawn, server=server, execution_api_retries=execution_api_retries,
                              deadline=deadline, startup_timeout=startup_timeout)[0]


def supervise_recorded(script: dict, context: RunContext = RunContext(), *, spawn: str | None = None,
                       server: str = "model", execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES,
                       deadline: float = supervise.DEFAULT_DEADLINE,
                       startup_timeout: float = supervise.DEFAULT_STARTUP_TIMEOUT):
    """``supervise_script``, and the real server's ``AttemptRecord`` of the attempt (None on ``model``)."""
    return helper.in_helper(_supervise_script, script, context, spawn=spawn, server=server,
                            execution_api_retries=execution_api_retries, deadline=deadline,
                            startup_timeout=startup_timeout)


def _supervise_script(script: dict, context: RunContext, *, spawn: str | None, server: str,
                      execution_api_retries: int, deadline: float, startup_timeout: float):
    h = supervise.harness()
    ti_id = uuid.uuid4()
    script_path = h.workdir / f"{ti_id}.script"
    script = {**lockstep(), **script, "control": list(h.api.control_address), "token": str(ti_id)}  # the wire's own
    script_path.write_bytes(msgpack.packb(script, use_bin_type=True))
    if not supervise.SUPERVISOR.launches_commands:  # before 1.3.0: the supervisor forks, the child runs the script
        if spawn not in (None, "target"):
            supervise.require_command_supervisor()
        try:
            observed = supervise.supervise_forked(functools.partial(forked_child, str(script_path)), context,
                                                  ti_id=ti_id, server=server,
                                                  execution_api_retries=execution_api_retries, deadline=deadline)
            attempt = h.last_attempt
            return observed, attempt.record if isinstance(attempt, RealAttempt) else None
        finally:
            with contextlib.suppress(FileNotFoundError):
                script_path.unlink()
    spawn = spawn or ("fork" if h.fork_server else "exec")
    if spawn == "exec":
        command = [sys.executable, "-I", str(SCRIPTED_RUNTIME), f"--script={script_path}"]
    elif spawn == "fork" and h.fork_server:
        command = h.fork_server.command(script_path)
    else:
        raise ValueError(f"spawn is 'fork' (needs a C compiler for impl/wire/launcher.c) or 'exec' "
                         f"('target' before task-sdk 1.3.0), not {spawn!r}")
    try:
        observed = supervise.supervise_command(command, context, ti_id=ti_id, server=server,
                                               execution_api_retries=execution_api_retries, deadline=deadline,
                                               startup_timeout=startup_timeout)
        attempt = h.last_attempt
        return observed, attempt.record if isinstance(attempt, RealAttempt) else None
    finally:
        with contextlib.suppress(FileNotFoundError):
            script_path.unlink()


def run(scenario: Scenario) -> Observation:
    """The scenario lived by a real process under the real supervisor, on the fastest path available (server ``model``)."""
    return supervise_script(compile_scenario(scenario), scenario.context,
                            execution_api_retries=scenario.execution_api_retries)


class RealServerRun:
    """``run`` on the real Execution API (server ``airflow``); ``last`` is the last attempt's ``AttemptRecord``."""

    def __init__(self):
        self.last = None

    def __call__(self, scenario: Scenario) -> Observation:
        # The server starts apart, with a budget of its own: an attempt's budget is for the attempt.
        helper.in_helper(supervise.start_real_server, budget=supervise.REAL_SERVER_START_BUDGET)
        observed, self.last = supervise_recorded(compile_scenario(scenario), scenario.context, server="airflow",
                                                 execution_api_retries=scenario.execution_api_retries)
        return observed


def stats() -> dict:
    """What the process running the attempts holds now (``census``)."""
    return helper.in_helper(census)


def target(name: str, server: str | None = None):
    """The ``airflow-process`` target on ``server`` (None: ``$FINALSTATE_SERVER``, default ``model``); see the module.

    Loading it starts nothing: the helper, and on ``airflow`` the real server, start with the first attempt (a
    server that cannot start raises ``impl.server.airflow_api.ServerUnavailable`` there, naming why).
    """
    from impl.targets.registry import Target, chosen_server, lived_once, require_real_server

    if chosen_server(server) == "model":
        return Target(name, lived_once(run), release=model_release(), close=helper.close)
    require_real_server(name)
    return Target(name, RealServerRun(), release=model_release(), close=helper.close)
