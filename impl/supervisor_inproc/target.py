"""Target ``airflow-inproc``: a scenario replayed onto the real ``ActivitySubprocess``, in process.

Nothing of the supervisor is re-implemented here. The real ``wait()`` runs the real
``_monitor_subprocess`` loop; only the edges of the process are stood in for:

- the selector: each ``select()`` is one wake-up of the loop, and delivers the scenario's
  next event (a frame, encoded on the wire and decoded by Airflow's own frame decoder,
  into the real ``handle_requests`` generator; or a due heartbeat; or the overtime clock
  running out; or the process exit);
- the process: dies of the first signal the supervisor sends it, else exits as the scenario says;
  once it ignores SIGTERM (``ignore sigterm``), a SIGTERM leaves it alive and silent, and only the
  escalation to SIGKILL ends it (else its own exit, ``IGNORED_SIGTERM_GRACE`` later); once it handles
  SIGTERM (``handle sigterm``), a SIGTERM leaves it running: the kill's first wait for it
  (``_service_subprocess``, one ``select()``) is handed the rest of its events at once (inside ``kill()``
  the supervisor does nothing but handle them), then it exits as the scenario says, or hangs until the
  escalation's SIGKILL. The supervisor's escalation delay is made tiny (``ESCALATION_DELAY``): it changes
  when the SIGKILL comes, not whether. A process that never exits (``exit hang``) meets time running on
  (``model.supervisor.TIME_RUNS_ON``: a heartbeat falls due, the overtime runs out), and if nothing kills
  it the selector stops ``wait()`` (``AttemptHung``): the observation is ``hung``;
- the Execution API client: ``impl.server.model_client`` answers from ``model.server.Server``
  (the server's rules and the scenario's faults), tried as Airflow's client tries, raising what
  Airflow's client raises, and records every try;
- the child's socket: what the supervisor writes is decoded to learn what the runtime was told.

The wire is the installed release's (``since_1_0_3_length_prefixed_frames``): each frame is encoded as its runtime
writes it (a length-prefixed msgpack frame, or before 1.0.3 a JSON line) and handed to ``handle_requests`` as the
release's reader hands it; what the runtime is told is recorded per request (``RequestsWire.replies``; before 1.0.3 a
frame handled with nothing to send back is ``unanswered``). A supervisor of a release before 1.0.3 is constructed as
one whose process has no sockets (``RequestsWire.supervisor_without_sockets``), as the stand-in selector registers none.

The server. ``target(name, server=None)`` chooses what answers the supervisor: ``server`` or,
when None, the environment variable ``FINALSTATE_SERVER`` (``registry.SERVER_ENV``, which
``finalstate replay --server`` and ``pytest --server`` set), default ``model``:

- ``model``: the recording client above; the default, and unchanged;
- ``airflow``: Airflow's real ``Client`` (the scenario's tries, zero waits) to the real Execution
  API app in process on SQLite (``impl.server.airflow_api``); each scenario is its own DagRun
  and TaskInstance, the supervisor's ``start`` is the real ``ti_run``, the TI id is that row's,
  and faults and heartbeat answers happen in the transport and the world
  (``impl.server.airflow_attempt``). The run function keeps the last attempt's record
  (exchanges, row before and after) as ``run.last``. A scenario it cannot play raises
  ``airflow_attempt.Unsupported`` (a ``NotImplementedError``) naming what.

The target's name is ``airflow-inproc`` either way.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
import uuid
from collections import deque

import structlog
from airflow.sdk.execution_time import supervisor as airflow_supervisor
from airflow.sdk.execution_time.supervisor import ActivitySubprocess

from impl.releases.adapters import (decided_final_state, model_release, model_state, request_body,
                                    require_the_models_heartbeat_budget, since_1_0_3_length_prefixed_frames,
                                    since_1_0_4_overtime_threshold, since_1_1_2_should_retry,
                                    since_1_2_0_child_started_arguments, since_1_3_0_process_tracker,
                                    since_1_4_0_heartbeat_due, supervisor_state)
from impl.server.model_client import RecordingClient, error_name
from impl.wire import codec
from model.scenario import (HANG, Fault, HandleSigterm, Heartbeat, IgnoreSigterm, Observation, Overtime, Scenario, Send,
                            UserAction)
from model.supervisor import SIGTERM_DIES, SIGTERM_HANDLED, SIGTERM_IGNORED, TIME_RUNS_ON

# The supervisor logs every frame and every refused call; in a checker running thousands of
# scenarios that is noise and time. Its loggers are structlog proxies, so this reaches them.
structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
_QUIET = structlog.get_logger("finalstate")
_TRACKING = since_1_3_0_process_tracker()
#: How the installed supervisor and its runtime talk: frames since 1.0.3, JSON lines before.
_WIRE = since_1_0_3_length_prefixed_frames()
TI_ID = uuid.UUID(int=1)
#: The supervisor's wait before it escalates a kill's signal (Airflow's: 5 s), in process: the scripted process
#: dies at once of any signal it does not ignore.
ESCALATION_DELAY = 1e-4
#: How long a process that ignored SIGTERM lives on before its own exit, when no SIGKILL comes: far beyond
#: ``ESCALATION_DELAY``, so only a supervisor that never escalates lets it run out.
IGNORED_SIGTERM_GRACE = 1.0

require_the_models_heartbeat_budget(airflow_supervisor.MAX_FAILED_HEARTBEATS)


class AttemptHung(Exception):
    """A process that never exits, which nothing killed once time had run on: ``wait()`` would wait for ever."""


class ScriptedProcess(_TRACKING.base):
    """The task process: alive until the scenario's exit, or until the supervisor signals it.

    What SIGTERM does to it is ``sigterm`` (``model.supervisor``'s dispositions). Ignored, a SIGTERM leaves it alive
    (``sigterm_ignored_at``); it then does nothing more and ends, if no SIGKILL comes, with its own exit
    ``IGNORED_SIGTERM_GRACE`` seconds later (``exit_when_ignored``; a hanging process never). Handled, a SIGTERM
    leaves it running (``handling_sigterm``): the selector plays the rest of its life inside the kill.
    """

    ProcessNotFound = _TRACKING.not_found
    TimeoutExpired = _TRACKING.timeout_expired

    def __init__(self, exit_when_ignored: int | str = 0):
        self.exit_code: int | None = None
        self.sigterm = SIGTERM_DIES
        self.sigterm_ignored_at: float | None = None
        self.handling_sigterm = False
        self.exit_when_ignored = exit_when_ignored

    @property
    def pid(self) -> int:
        return 4242

    def send_signal(self, s: signal.Signals) -> None:
        if self.exit_code is not None:
            return
        if s == signal.SIGTERM and self.sigterm == SIGTERM_IGNORED:
            self.sigterm_ignored_at = self.sigterm_ignored_at or time.monotonic()
            return
        if s == signal.SIGTERM and self.sigterm == SIGTERM_HANDLED:
            self.handling_sigterm = True
            return
        self.exit_code = -int(s)

    def silenced(self) -> bool:
        """Alive after ignoring a SIGTERM: nothing more arrives from it (until its own exit, after the grace)."""
        self._exit_once_the_grace_is_over()
        return self.exit_code is None and self.sigterm_ignored_at is not None

    def _exit_once_the_grace_is_over(self) -> None:
        if (self.exit_code is None and self.sigterm_ignored_at is not None and self.exit_when_ignored != HANG
                and time.monotonic() - self.sigterm_ignored_at > IGNORED_SIGTERM_GRACE):
            self.exit_code = self.exit_when_ignored

    def wait(self, timeout: float | None) -> int:
        self._exit_once_the_grace_is_over()
        if self.exit_code is None:
            raise _TRACKING.timed_out(timeout)
        return self.exit_code


class ChildEnd:
    """The child's end of the comms socket: records what the runtime is told for each frame (``RequestsWire.replies``;
    the first write, StartupDetails, is no reply to anything)."""

    def __init__(self):
        self.recorded = _WIRE.replies()

    @property
    def replies(self) -> list[str]:
        return self.recorded.replies

    def sendall(self, data: bytes) -> None:
        self.recorded.sent(data)

    def close(self) -> None:
        pass


#: The supervisor's last heartbeat attempt and its task's end as the selector keeps them between the events that run
#: those clocks out: no heartbeat and no overtime falls due unless an event says so, however long a stalled wake-up
#: takes on a loaded machine (``time.monotonic() - NEVER_DUE`` is never past ``MIN_HEARTBEAT_INTERVAL`` or
#: ``TASK_OVERTIME_THRESHOLD``).
NEVER_DUE = float("inf")


class ScriptedSelector:
    """The monitor loop's selector: each ``select()`` is a wake-up that delivers the next event.

    ``world`` takes the scenario's faults (``arm``) and heartbeat answers (``heartbeat_due``, only
    when a heartbeat will be sent: none is once the supervisor holds a terminal state).
    """

    def __init__(self, scenario: Scenario, process: ScriptedProcess, world):
        self.events = deque(scenario.events)
        self.exit_code = scenario.exit_code
        self.rendered_map_index = scenario.rendered_map_index
        self.process = process
        self.world = world
        self.next_id = 1
        #: The answer of the heartbeat that fell due and was not sent yet: the world is told it only once the
        #: supervisor will send it (a 1.4.0 supervisor holding a delivered outcome sends none until another is held).
        self.overdue = None
        #: Whether an overtime event ran out the supervisor's overtime (from then on it stays run out).
        self.overtime_ran_out = False
        #: Whether a process that never exits has met time running on (``TIME_RUNS_ON``) already.
        self.time_ran_on = False

    def attach(self, supervisor: ActivitySubprocess) -> None:
        self.supervisor = supervisor
        self.requests = supervisor.handle_requests(_QUIET)
        next(self.requests)
        supervisor._last_heartbeat_attempt = NEVER_DUE

    def select(self, timeout=None):
        sup = self.supervisor
        self._hold_clocks()
        if self.process.exit_code is not None or self.process.silenced():
            return []  # dead, or silent after ignoring SIGTERM: nothing more arrives
        if self.process.handling_sigterm:
            return self._live_on_inside_the_kill()
        now = time.monotonic()
        if not self.events:
            return self._end()
        event = self.events.popleft()
        if isinstance(event, Send):
            self._deliver(event)
        elif isinstance(event, Fault):
            self.world.arm(event)
        elif isinstance(event, UserAction):
            self.world.act(event)
        elif isinstance(event, Heartbeat):
            self.overdue = event.answer
            sup._last_heartbeat_attempt = now - airflow_supervisor.MIN_HEARTBEAT_INTERVAL - 1
        elif isinstance(event, Overtime) and sup._task_end_time_monotonic is not None:
            self.overtime_ran_out = True
            sup._task_end_time_monotonic = now - since_1_0_4_overtime_threshold(sup) - 1
        elif isinstance(event, IgnoreSigterm):
            self.process.sigterm = SIGTERM_IGNORED
        elif isinstance(event, HandleSigterm):
            self.process.sigterm = SIGTERM_HANDLED
        if self.overdue is not None and since_1_4_0_heartbeat_due(sup):  # this wake-up sends the heartbeat due
            self.world.heartbeat_due(self.overdue)
            self.overdue = None
        elif not isinstance(event, Heartbeat):
            self._hold_clocks()  # a frame just handled may have stamped the task's end
        return []

    def _end(self) -> list:
        """The events are over: the process exits as the scenario says; one that never exits meets time running on
        once, then, if nothing killed it, ``wait()`` is stopped (``AttemptHung``)."""
        if self.exit_code != HANG:
            self.process.exit_code = self.exit_code
        elif self.time_ran_on:
            raise AttemptHung()
        else:
            self.time_ran_on = True
            self.events.extend(TIME_RUNS_ON)
        return []

    def _live_on_inside_the_kill(self) -> list:
        """The process handled the kill's SIGTERM and carries on: in this one wait of ``kill()`` it lives the rest of
        its events (the supervisor handles its frames, the world goes on; heartbeats and the overtime are not the
        kill's business), then exits as the scenario says, or hangs until the escalation's SIGKILL."""
        while self.events:
            event = self.events.popleft()
            if isinstance(event, Send):
                self._deliver(event)
            elif isinstance(event, Fault):
                self.world.arm(event)
            elif isinstance(event, UserAction):
                self.world.act(event)
        if self.exit_code != HANG:
            self.process.exit_code = self.exit_code
        return []

    def _hold_clocks(self) -> None:
        """Put the supervisor's own stamps (after a heartbeat it sent, at the terminal state it took) out of reach
        of the wall clock, unless an event ran that clock out: only the events make a heartbeat or overtime due."""
        sup = self.supervisor
        if self.overdue is None:
            sup._last_heartbeat_attempt = NEVER_DUE
        if sup._task_end_time_monotonic is not None and not self.overtime_ran_out:
            sup._task_end_time_monotonic = NEVER_DUE

    def _deliver(self, event: Send) -> None:
        """Put one frame on the wire and hand it to the supervisor as its frame reader would."""
        data = _WIRE.request(self.next_id, request_body(event.frame, event.state, self.rendered_map_index))
        self.next_id += 1
        self.requests.send(_WIRE.handed_to_handle_requests(data))

    def register(self, *args, **kwargs):
        raise AssertionError("the in-process target registers no file objects")

    def unregister(self, fileobj):
        raise KeyError(fileobj)

    def get_key(self, fileobj):
        raise KeyError(fileobj)

    def close(self) -> None:
        pass


class QuickEscalation(ActivitySubprocess):
    """The real ``ActivitySubprocess``, its kill escalating after ``ESCALATION_DELAY`` instead of Airflow's 5 s; the
    child end is told of each request it decoded before handling it (what is written back next answers that one)."""

    def kill(self, signal_to_send=signal.SIGINT, escalation_delay=None, force=False):
        return super().kill(signal_to_send, ESCALATION_DELAY, force)

    def _handle_request(self, msg, log, *request_id):
        recorded = self.stdin.recorded
        recorded.handling(own=True, request_id=request_id[0] if request_id else None)
        result = super()._handle_request(msg, log, *request_id)
        recorded.handled()
        return result


def _supervisor(scenario: Scenario, client, world=None, ti_id: uuid.UUID = TI_ID
                ) -> tuple[ActivitySubprocess, ChildEnd]:
    """A real ``ActivitySubprocess`` wired to the scripted process, selector and child socket.

    ``world``: what takes the scenario's faults and heartbeat answers (default: the recording client's).
    """
    process, child = ScriptedProcess(scenario.exit_code), ChildEnd()
    selector = ScriptedSelector(scenario, process, world or client.task_instances)
    sup = QuickEscalation(id=ti_id, pid=process.pid, process=process, stdin=child, process_log=_QUIET,
                          client=client, selector=selector, **_WIRE.supervisor_without_sockets)
    selector.attach(sup)
    return sup, child


def _live(sup: ActivitySubprocess, ti) -> tuple[str | None, bool]:
    """Start the attempt and run the real ``wait()``; what it raised, by name (part of what it did), and whether the
    attempt hung (``AttemptHung``: stopped by the selector, not by anything of the supervisor's)."""
    sup._on_child_started(ti=ti, dag_rel_path="dag.py", bundle_info=None, **since_1_2_0_child_started_arguments())
    try:
        sup.wait()
    except AttemptHung:
        return None, True
    except Exception as e:
        return error_name(e), False
    return None, False


def run(scenario: Scenario) -> Observation:
    """Replay ``scenario`` onto a real ``ActivitySubprocess`` and observe it (server: ``model.server``)."""
    client = RecordingClient(scenario)
    sup, child = _supervisor(scenario, client)
    raised, hung = _live(sup, _task_instance(scenario.context.try_number))
    row = client.task_instances.server.row
    return Observation(
        exit_code=sup._exit_code,
        final_state=decided_final_state(sup),
        calls=tuple(client.task_instances.calls),
        replies=tuple(child.replies),
        row=row.state,
        row_gone=row.gone,
        raised=raised,
        rendered_map_index=client.task_instances.map_index_sent,
        hung=hung,
    )


class AirflowServerRun:
    """``run`` on the real Execution API (server ``airflow``): one attempt per scenario; ``last`` its record.

    ``calls`` are mapped from the HTTP exchanges as ``impl.server.airflow_attempt`` says (one per
    client call, its final status, 2xx as 200); ``row`` is read back by run id after the attempt
    (``deleted`` once the TI is gone), ``row_gone`` the status the world's actor made the server answer.
    """

    def __init__(self):
        from impl.server.airflow_api import saved_logging
        from impl.server.airflow_attempt import open_server

        self._restore_logging = saved_logging()
        self.server = open_server()
        self.last = None

    def __call__(self, scenario: Scenario, run_id: str | None = None) -> Observation:
        """``run_id``: on that run's live TI as the scheduler left it (a later try of one life), not a new row."""
        from impl.server.airflow_attempt import AirflowAttempt, observed_row

        attempt = AirflowAttempt(self.server, scenario.context, run_id=run_id, tries=scenario.execution_api_retries)
        sup, child = _supervisor(scenario, attempt.client, attempt, attempt.ti_id)
        ti = airflow_supervisor.TaskInstance.model_construct(id=attempt.ti_id, try_number=scenario.context.try_number)
        raised, hung = _live(sup, ti)
        calls = attempt.calls()
        self.last = attempt.close()
        return Observation(
            exit_code=sup._exit_code,
            final_state=decided_final_state(sup),
            calls=calls,
            replies=tuple(child.replies),
            row=observed_row(self.last.row_after),
            row_gone=attempt.gone,
            raised=raised,
            rendered_map_index=attempt.map_index_sent(),
            hung=hung,
        )

    def close(self) -> None:
        """Stop the server (its database copy is deleted) and put the logging set-up back as it was."""
        self.server.close()
        self._restore_logging()


@functools.lru_cache(maxsize=None)
def _task_instance(try_number: int):
    return airflow_supervisor.TaskInstance.model_construct(id=TI_ID, try_number=try_number)


def raw_rate_probe(scenario: Scenario, client=None) -> str:
    """The benchmark's floor: the real supervisor's methods called directly, no event loop or wire.

    With ``client=None`` this binding's recording client answers; pass a ``unittest.mock.MagicMock``
    to measure the rate the design quotes (every call succeeds, nothing recorded).
    """
    sup, _ = _supervisor(scenario, client or RecordingClient(scenario))
    since_1_1_2_should_retry(sup, scenario.context.should_retry)
    for event in scenario.events:
        if isinstance(event, Send):
            msg = ActivitySubprocess.decoder.validate_python(codec.terminal_body(event.frame, event.state))
            try:
                sup._handle_request(msg, _QUIET, 1)
            except Exception:
                pass
    sup._exit_code = scenario.exit_code
    try:
        sup.update_task_state_if_needed()
    except Exception:
        pass
    return sup.final_state


def decide_final_state(exit_code: int, terminal_state: str | None, should_retry: bool) -> str:
    """The real ``ActivitySubprocess.final_state`` on these inputs alone (no attempt lived): its decision table.

    ``terminal_state`` is a state as the model spells it, held as the supervisor holds it (``supervisor_state``:
    a ``TaskInstanceState`` member, or the release's ``SERVER_TERMINATED``); the decision comes back in the
    model's spelling.
    """
    sup = ActivitySubprocess.__new__(ActivitySubprocess)
    sup._exit_code = exit_code
    since_1_1_2_should_retry(sup, should_retry)
    sup._terminal_state = supervisor_state(terminal_state)
    return model_state(sup.final_state)


def target(name: str, server: str | None = None):
    """The ``airflow-inproc`` target on ``server`` (None: ``$FINALSTATE_SERVER``, default ``model``); see the module."""
    from impl.frontdoor.registry import Target, TargetUnavailable, chosen_server, require_real_server

    if chosen_server(server) == "model":
        return Target(name, run, release=model_release(), final_state=decide_final_state, in_process=True)
    require_real_server(name)
    from impl.server.airflow_api import ServerUnavailable

    try:
        real = AirflowServerRun()
    except ServerUnavailable as e:  # its database does not connect or migrate (--server-db): say so, no traceback
        raise TargetUnavailable(f"{name} with --server airflow: {e}") from None
    return Target(name, real, release=model_release(), close=real.close, final_state=decide_final_state)
