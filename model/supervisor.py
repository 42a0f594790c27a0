"""The supervisor's terminal-state logic, as it is in apache-airflow-task-sdk 1.3.2 (by default).

Each function here mirrors a method of ``airflow.sdk.execution_time.supervisor.ActivitySubprocess``
(named in its docstring), bugs included: conformance is checked against this model, the
design's promises against ``model.invariants``. Entry points:

- ``final_state(exit_code, terminal_state, should_retry, release=SPECIFIED)``: what the supervisor reports.
- ``run(scenario, release=SPECIFIED)``: the whole attempt, from ``start`` to the end of ``wait()``,
  as ``release`` does it where releases differ by design (``model.release``: 1.3.2 by default).
"""

from __future__ import annotations

import attrs

from model import client
from model.release import SPECIFIED, Release
from model.scenario import (
    AWAITING_INPUT,
    CALLS_WITH_MAP_INDEX,
    DEFAULT_EXECUTION_API_RETRIES,
    DEFERRED,
    FAILED,
    FRAMES_WITH_MAP_INDEX,
    HEARTBEAT_OK,
    NON_TERMINAL_FRAMES,
    SERVER_TERMINATED,
    SUCCESS,
    TIMEOUT,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    ApiCall,
    Fault,
    Heartbeat,
    IgnoreSigterm,
    Observation,
    Overtime,
    Scenario,
    Send,
)
from model.server import OK, Server

#: ``supervisor.STATES_SENT_DIRECTLY``: final states for which no closing ``finish`` call is made.
STATES_SENT_DIRECTLY = frozenset({DEFERRED, AWAITING_INPUT, UP_FOR_RESCHEDULE, UP_FOR_RETRY, SUCCESS, SERVER_TERMINATED})

#: Airflow's default ``[workers] max_failed_heartbeats`` in the specified release (``Release.max_failed_heartbeats``).
MAX_FAILED_HEARTBEATS = SPECIFIED.max_failed_heartbeats

#: The signal ``kill(SIGTERM, force=True)`` starts with; the model's process dies of it, unless it ignores it.
SIGTERM_EXIT = -15
#: Where ``force=True`` escalates to when SIGTERM is ignored.
SIGKILL_EXIT = -9

#: Frames handed to ``_send_terminal_state_msg``: the client call each makes and the state it records.
DIRECT_FRAMES = {
    "SucceedTask": ("succeed", SUCCESS),
    "RetryTask": ("retry", UP_FOR_RETRY),
    "DeferTask": ("defer", DEFERRED),
    "RescheduleTask": ("reschedule", UP_FOR_RESCHEDULE),
    "AwaitInputTask": ("await_input", AWAITING_INPUT),
}
#: Frames that set ``_task_end_time_monotonic`` (and so start the success-overtime clock).
FRAMES_ENDING_TASK = frozenset({"TaskState", "SucceedTask", "RetryTask"})


def final_state(exit_code: int, terminal_state: str | None, should_retry: bool, release: Release = SPECIFIED) -> str:
    """``ActivitySubprocess.final_state``.

    On exit 0 the runtime's terminal state stands (SUCCESS if it sent none). On any other
    exit, a server termination stands (and, since 1.4.0, a retry: ``Release.keeps_over_a_failed_exit``);
    otherwise the attempt is UP_FOR_RETRY if the server said should_retry at start (and ``release``
    retries that exit: ``Release.retries_after_exit``), else FAILED.
    """
    if exit_code == 0:
        return terminal_state or SUCCESS
    if release.keeps_over_a_failed_exit(terminal_state):
        return terminal_state
    if should_retry and release.retries_after_exit(exit_code):
        return UP_FOR_RETRY
    return FAILED


def error_name(status: int | str) -> str:
    """How a failed Execution API call surfaces from Airflow's client."""
    return "ReadTimeout" if status == TIMEOUT else f"ServerResponseError({status})"


@attrs.frozen(cache_hash=True)  # states are members of sets, hashed often
class Supervisor:
    """The fields of ``ActivitySubprocess`` that decide the terminal state, plus what was seen."""

    server: Server
    should_retry: bool
    terminal_state: str | None = None
    pending: Send | None = None
    task_ended: bool = False
    overtime_elapsed: bool = False
    failed_heartbeats: int = 0
    exit_code: int | None = None
    calls: tuple[ApiCall, ...] = ()
    replies: tuple[str, ...] = ()
    raised: str | None = None
    release: Release = SPECIFIED
    #: ``[workers] execution_api_retries``: the tries of each request (``model.client``).
    execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES
    #: The process ignores SIGTERM (``IgnoreSigterm``).
    ignores_sigterm: bool = False
    #: ``_rendered_map_index``: kept from the last frame that carries one; and what the last call that passes it
    #: on carried (``Observation.rendered_map_index``). The frames carry ``frames_map_index`` (the scenario's).
    rendered_map_index: str | None = None
    frames_map_index: str | None = None
    map_index_sent: str | None = None

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    def call(self, name: str, state: str | None = None) -> tuple[Supervisor, int | str]:
        """One client call: its tries on the server, each recorded; the last answer."""
        server, calls, status = client.call(self.server, name, state, self.execution_api_retries)
        sent = self.rendered_map_index if name in CALLS_WITH_MAP_INDEX else self.map_index_sent
        return attrs.evolve(self, server=server, calls=(*self.calls, *calls), map_index_sent=sent), status

    def reply(self, ok: bool) -> Supervisor:
        if ok and not self.release.answers_every_request:
            return self
        return attrs.evolve(self, replies=(*self.replies, "ok" if ok else "error"))

    def kill(self) -> Supervisor:
        """``kill(SIGTERM, force=True)``: the process dies of SIGTERM, or of the SIGKILL it escalates to when the
        process ignores SIGTERM; a no-op once the process has exited."""
        if not self.alive:
            return self
        return attrs.evolve(self, exit_code=SIGKILL_EXIT if self.ignores_sigterm else SIGTERM_EXIT)


def start(scenario: Scenario, release: Release = SPECIFIED) -> Supervisor:
    """``_on_child_started``: ``task_instances.start`` turns the row RUNNING and brings should_retry."""
    tries = scenario.execution_api_retries
    server, calls, _ = client.request(Server.queued(scenario.context, release=release), Server.start, tries, "start")
    return Supervisor(server, scenario.context.should_retry, calls=calls, release=release, execution_api_retries=tries,
                      frames_map_index=scenario.rendered_map_index)


def send_terminal_state_msg(sup: Supervisor, frame: Send) -> tuple[Supervisor, bool]:
    """``_send_terminal_state_msg``: the frame is pending until its dedicated call returns 2xx."""
    name, state = DIRECT_FRAMES[frame.frame]
    sup, status = attrs.evolve(sup, pending=frame).call(name)
    if status != OK:
        return sup, False
    return attrs.evolve(sup, terminal_state=state, pending=None), True


def handle_request(sup: Supervisor, frame: Send) -> Supervisor:
    """``_handle_request`` for the terminal frames, and the reply ``handle_requests`` sends back.

    A frame the release does not know fails ``handle_requests``' decoder: logged, nothing else. A non-terminal
    request is answered and changes nothing here.
    """
    if frame.frame in NON_TERMINAL_FRAMES:
        return sup.reply(True)
    if frame.frame not in sup.release.terminal_frames:
        return sup
    if frame.frame in FRAMES_WITH_MAP_INDEX:
        sup = attrs.evolve(sup, rendered_map_index=sup.frames_map_index)
    if frame.frame in FRAMES_ENDING_TASK:
        sup = attrs.evolve(sup, task_ended=True, overtime_elapsed=False)  # _task_end_time_monotonic = now
    if frame.frame == "TaskState":
        # No API call: the closing finish() in update_task_state_if_needed reports it.
        return attrs.evolve(sup, terminal_state=frame.state).reply(True)
    if frame.frame == "SkipDownstreamTasks":
        sup, status = sup.call("skip_downstream_tasks")
        return sup.reply(status == OK)
    sup, delivered = send_terminal_state_msg(sup, frame)
    return sup.reply(delivered)


def send_heartbeat_if_needed(sup: Supervisor, answer: int) -> Supervisor:
    """``_send_heartbeat_if_needed``: none once a terminal state is known; 404/409/410 kill the task
    (the release's ``heartbeat_gone``: 410 since 1.2.2)."""
    if sup.terminal_state:
        return sup
    server, calls, status = client.heartbeat(sup.server, answer, sup.execution_api_retries)
    sup = attrs.evolve(sup, server=server, calls=(*sup.calls, *calls))
    if status in sup.release.heartbeat_gone:
        return attrs.evolve(sup.kill(), terminal_state=SERVER_TERMINATED)
    if status == HEARTBEAT_OK:
        return attrs.evolve(sup, failed_heartbeats=0)
    sup = attrs.evolve(sup, failed_heartbeats=sup.failed_heartbeats + 1)
    return sup.kill() if sup.failed_heartbeats >= sup.release.max_failed_heartbeats else sup


def handle_process_overtime_if_needed(sup: Supervisor) -> Supervisor:
    """``_handle_process_overtime_if_needed``: kill once overtime has run out since a task-ending frame.

    Only a terminal state counts, and only ``TaskState``/``SucceedTask``/``RetryTask`` start
    the clock (``_task_end_time_monotonic``): after Defer/Reschedule/AwaitInput it never runs out.
    """
    if sup.terminal_state and sup.task_ended and sup.overtime_elapsed:
        return sup.kill()
    return sup


def update_task_state_if_needed(sup: Supervisor) -> Supervisor:
    """``update_task_state_if_needed``: replay a pending direct call, else ``finish`` an indirect state.

    The replay swallows its own failure (``_replay_pending_terminal_state_msg``); a failing
    ``finish`` propagates out of ``wait()``.
    """
    if sup.pending is not None:
        sup, _ = send_terminal_state_msg(sup, sup.pending)
        return sup
    state = final_state(sup.exit_code, sup.terminal_state, sup.should_retry, sup.release)
    if state in STATES_SENT_DIRECTLY:
        return sup
    sup, status = sup.call("finish", state)
    return sup if status == OK else attrs.evolve(sup, raised=error_name(status))


def monitor_step(sup: Supervisor, event) -> Supervisor:
    """One wake-up of ``_monitor_subprocess``: the event, then the heartbeat and overtime checks."""
    if isinstance(event, Fault):
        sup = attrs.evolve(sup, server=sup.server.arm(event))
    elif isinstance(event, Send):
        sup = handle_request(sup, event)
    elif isinstance(event, Heartbeat):
        sup = send_heartbeat_if_needed(sup, event.answer)
    elif isinstance(event, Overtime):
        sup = attrs.evolve(sup, overtime_elapsed=sup.task_ended)
    elif isinstance(event, IgnoreSigterm):
        sup = attrs.evolve(sup, ignores_sigterm=True)
    return handle_process_overtime_if_needed(sup)


def run(scenario: Scenario, release: Release = SPECIFIED) -> Observation:
    """The whole attempt: start, the events while the process lives, its exit, then ``wait()``'s close.

    The process's death ends the timeline: events after a kill never happen. ``release``: the task-sdk
    release whose by-design behaviour to follow (``model.release``).
    """
    sup = start(scenario, release)
    for event in scenario.events:
        if not sup.alive:
            break
        sup = monitor_step(sup, event)
    return close(sup, scenario.exit_code)


def close(sup: Supervisor, exit_code: int) -> Observation:
    """The end of an attempt whose events are over: the process exits with ``exit_code`` (unless a kill ended it
    already), ``wait()`` closes, and what the attempt did is observed."""
    if sup.alive:
        sup = attrs.evolve(sup, exit_code=exit_code)
    sup = update_task_state_if_needed(sup)
    row = sup.server.row
    return Observation(
        exit_code=sup.exit_code,
        final_state=final_state(sup.exit_code, sup.terminal_state, sup.should_retry, sup.release),
        calls=sup.calls,
        replies=sup.replies,
        row=row.state,
        row_gone=row.gone,
        raised=sup.raised,
        rendered_map_index=sup.map_index_sent,
    )
