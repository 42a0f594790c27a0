"""The supervisor's terminal-state logic, as it is in each apache-airflow-task-sdk release (1.3.2 by default).

Each function here mirrors a method of ``airflow.sdk.execution_time.supervisor.ActivitySubprocess``
(named in its docstring), bugs included: conformance is checked against this model, the
design's promises against ``model.invariants``. Where releases differ, the function asks the
release's trait (``model.release.Release``), which names the release that brought the difference.
Entry points:

- ``final_state(exit_code, terminal_state, should_retry, release=SPECIFIED)``: what the supervisor reports.
- ``run(scenario, release=SPECIFIED)``: the whole attempt, from ``start`` to the end of ``wait()``,
  as ``release`` does it (``model.release``: 1.3.2 by default).

An *outcome* is a terminal frame the supervisor reports with a call of its own (SucceedTask, RetryTask,
DeferTask, RescheduleTask, AwaitInputTask; since 1.4.0 a TaskState too, by ``finish``); its frame is
*pending* while the call has not answered 2xx (since 1.2.2), and its state is *held* in ``terminal_state``.
"""

from __future__ import annotations

import attrs

from model import client
from model.frozen import replace
from model.release import SPECIFIED, Release
from model.scenario import (
    AWAITING_INPUT,
    CALLS_WITH_MAP_INDEX,
    DEFAULT_EXECUTION_API_RETRIES,
    DEFERRED,
    FAILED,
    FRAMES_WITH_MAP_INDEX,
    HEARTBEAT_OK,
    NO_FINAL_STATE,
    NON_TERMINAL_FRAMES,
    SERVER_TERMINATED,
    SUCCESS,
    TIMEOUT,
    UNANSWERED,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    ApiCall,
    HANG,
    Fault,
    HandleSigterm,
    Heartbeat,
    IgnoreSigterm,
    Observation,
    Overtime,
    Scenario,
    Send,
    UserAction,
)
from model.server import CONFLICT, GONE, NOT_FOUND, OK, Server

#: ``supervisor.STATES_SENT_DIRECTLY``: final states for which no closing ``finish`` call is made.
STATES_SENT_DIRECTLY = frozenset({DEFERRED, AWAITING_INPUT, UP_FOR_RESCHEDULE, UP_FOR_RETRY, SUCCESS, SERVER_TERMINATED})

#: Airflow's default ``[workers] max_failed_heartbeats`` in the specified release (``Release.max_failed_heartbeats``).
MAX_FAILED_HEARTBEATS = SPECIFIED.max_failed_heartbeats

#: The signal ``kill(SIGTERM, force=True)`` starts with; the model's process dies of it, unless it traps it.
SIGTERM_EXIT = -15
#: Where ``force=True`` escalates to when SIGTERM is trapped and the process has not exited in the escalation delay.
SIGKILL_EXIT = -9

#: What the process does with SIGTERM (``Supervisor.sigterm``): dies of it (the default disposition); ignores it and
#: does nothing more (``IgnoreSigterm``); handles it and carries on (``HandleSigterm``).
SIGTERM_DIES = "dies"
SIGTERM_IGNORED = "ignores"
SIGTERM_HANDLED = "handles"

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
#: The refusals of ``finish(SERVER_TERMINATED)`` the supervisor takes quietly
#: (``Release.acknowledges_server_termination``).
TERMINATION_REFUSALS = frozenset({NOT_FOUND, CONFLICT, GONE})


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

    #: The server, as the supervisor's calls left it.
    server: Server
    #: What the server said at start: whether a failure may be retried.
    should_retry: bool
    #: ``_terminal_state``: the state held (None: none yet).
    terminal_state: str | None = None
    #: ``_pending_terminal_state_msg``: an outcome frame whose call has not answered 2xx yet.
    pending: Send | None = None
    #: Whether a task-ending frame set ``_task_end_time_monotonic`` (the success overtime's clock).
    task_ended: bool = False
    #: Whether the success overtime has run out since then.
    overtime_elapsed: bool = False
    #: Consecutive heartbeats that failed.
    failed_heartbeats: int = 0
    #: The answer of the heartbeat that fell due and was not sent yet (None: none is due).
    heartbeat_overdue: int | str | None = None
    #: The process's exit (None while it runs).
    exit_code: int | None = None
    #: Every Execution API request made so far.
    calls: tuple[ApiCall, ...] = ()
    #: What the runtime was told for each frame read.
    replies: tuple[str, ...] = ()
    #: What escaped the monitor loop, if anything: ``wait()`` raises it.
    raised: str | None = None
    #: The task-sdk release whose supervisor this is.
    release: Release = SPECIFIED
    #: ``[workers] execution_api_retries``: the tries of each request (``model.client``).
    execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES
    #: What the process does with SIGTERM: ``SIGTERM_DIES``, ``SIGTERM_IGNORED`` or ``SIGTERM_HANDLED``.
    sigterm: str = SIGTERM_DIES
    #: The supervisor is inside ``kill()``: it sent SIGTERM to a process that handles it and carries on, and waits
    #: for it to exit, handling its frames (``_service_subprocess``) and nothing else.
    killing: bool = False
    #: What ``_send_heartbeat_if_needed`` does once its ``kill()`` returns: hold SERVER_TERMINATED (None: nothing).
    after_kill: str | None = None
    #: ``_rendered_map_index``: kept from the last frame that carries one; and what the last call that passes it
    #: on carried (``Observation.rendered_map_index``). The frames carry ``frames_map_index`` (the scenario's).
    rendered_map_index: str | None = None
    #: The rendered map index the runtime's frames carry (the scenario's; None where the release has no such field).
    frames_map_index: str | None = None
    #: What the last succeed, retry or finish call carried as the rendered map index.
    map_index_sent: str | None = None

    @property
    def alive(self) -> bool:
        """The process runs and ``_monitor_subprocess`` still serves it (a monitor loop that raised serves nothing)."""
        return self.exit_code is None and self.raised is None

    def call(self, name: str, state: str | None = None) -> tuple[Supervisor, int | str]:
        """One client call: its tries on the server, each recorded; the last answer."""
        server, calls, status = client.call(self.server, name, state, self.execution_api_retries)
        sent = self.rendered_map_index if name in CALLS_WITH_MAP_INDEX else self.map_index_sent
        return replace(self, server=server, calls=(*self.calls, *calls), map_index_sent=sent), status

    def reply(self, ok: bool) -> Supervisor:
        """What ``handle_requests`` sends back for a terminal frame it handled: ``ok``, or ``error`` for a call that
        failed; before 1.0.3 nothing for one handled well (``UNANSWERED``: ``Release.answers_every_request``)."""
        said = "ok" if ok else "error"
        if ok and not self.release.answers_every_request:
            said = UNANSWERED
        return replace(self, replies=(*self.replies, said))

    def kill(self, then: str | None = None) -> Supervisor:
        """``kill(SIGTERM, force=True)``, then ``then`` held as the terminal state (what the caller does once
        ``kill()`` returns; None: nothing). The process dies of SIGTERM; one that ignores it, of the SIGKILL the
        kill escalates to; one that handles it carries on, and the supervisor waits in ``kill()`` until it exits
        (``killing``, ended by ``exited``). A no-op once the process has exited, or while a kill waits for it."""
        if not self.alive or self.killing:
            return self
        if self.sigterm == SIGTERM_HANDLED:
            return replace(self, killing=True, after_kill=then)
        killed = replace(self, exit_code=SIGKILL_EXIT if self.sigterm == SIGTERM_IGNORED else SIGTERM_EXIT)
        return killed if then is None else replace(killed, terminal_state=then)

    def exited(self, exit_code: int | str) -> Supervisor:
        """The process exits with ``exit_code`` (``HANG``: it never does): inside a kill that waits for it, a
        process that hangs is ended by the escalation's SIGKILL, and what the kill's caller does next is done."""
        if self.killing:
            code = SIGKILL_EXIT if exit_code == HANG else exit_code
            ended = replace(self, exit_code=code, killing=False, after_kill=None)
            return ended if self.after_kill is None else replace(ended, terminal_state=self.after_kill)
        return replace(self, exit_code=exit_code)


def start(scenario: Scenario, release: Release = SPECIFIED) -> Supervisor:
    """``_on_child_started``: ``task_instances.start`` turns the row RUNNING and brings should_retry. The frames carry
    the scenario's rendered map index where the release has one (``Release.carries_the_rendered_map_index``)."""
    tries = scenario.execution_api_retries
    server, calls, _ = client.request(Server.queued(scenario.context, release=release), Server.start, tries, "start")
    carried = scenario.rendered_map_index if release.carries_the_rendered_map_index else None
    return Supervisor(server, scenario.context.should_retry, calls=calls, release=release, execution_api_retries=tries,
                      frames_map_index=carried)


def outcome_call(frame: Send) -> tuple[str, str]:
    """The call that reports an outcome frame and the state the frame stands for: its dedicated call
    (``DIRECT_FRAMES``), or for a TaskState ``finish`` with the frame's own state."""
    return ("finish", frame.state) if frame.frame == "TaskState" else DIRECT_FRAMES[frame.frame]


def send_terminal_state_msg(sup: Supervisor, frame: Send) -> tuple[Supervisor, int | str | None]:
    """``_send_terminal_state_msg``: the outcome's call; the supervisor after it, and the failure the call raised
    (its status; None when it raised nothing).

    The state is held once the call answered 2xx, or from the start where the release holds an undelivered outcome
    (``Release.holds_an_undelivered_outcome``); the frame is pending until then where the release keeps one
    (``Release.keeps_an_undelivered_outcome``). Since 1.4.0 a 409 is no failure but SERVER_TERMINATED
    (``Release.conflict_means_server_terminated``), and once that is held nothing is sent
    (``Release.server_termination_is_final``).
    """
    release = sup.release
    if release.server_termination_is_final and sup.terminal_state == SERVER_TERMINATED:
        return sup, None
    name, state = outcome_call(frame)
    if release.holds_an_undelivered_outcome:
        sup = replace(sup, terminal_state=state)
    if release.keeps_an_undelivered_outcome:
        sup = replace(sup, pending=frame)
    sup, status = sup.call(name, state if name == "finish" else None)
    if status == OK:
        return replace(sup, terminal_state=state, pending=None), None
    if status == CONFLICT and release.conflict_means_server_terminated:
        return replace(sup, terminal_state=SERVER_TERMINATED, pending=None), None
    return sup, status


def answer(sup: Supervisor, failure: int | str | None) -> Supervisor:
    """What ``handle_requests`` does once a request was handled: reply ok, or an error for the call that failed.

    Before 1.2.2 only a ``ServerResponseError`` is answered (``Release.answers_a_transport_error``): a call whose
    answer never came (``TIMEOUT``, a ``ReadTimeout``) escapes the monitor loop, so ``wait()`` raises it, no reply.
    """
    if failure is None:
        return sup.reply(True)
    if failure == TIMEOUT and not sup.release.answers_a_transport_error:
        return replace(sup, raised=error_name(failure))
    return sup.reply(False)


def handle_request(sup: Supervisor, frame: Send) -> Supervisor:
    """``_handle_request`` for the frames of the model's alphabet, and the answer ``handle_requests`` sends back.

    A non-terminal request is answered (it asks for something) and changes nothing here. A terminal frame the release does not know
    (``Release.terminal_frames``) fails ``handle_requests``' decoder: logged, nothing else. A frame held for close
    (``Release.held_for_close``: a TaskState; since 1.4.0 a RetryTask too) makes no call: its state is held, and
    since 1.4.0 the frame itself is pending, to be delivered at close (``update_task_state_if_needed``); once
    SERVER_TERMINATED is final (``Release.server_termination_is_final``) such a frame changes nothing. Any other
    outcome makes its call (``send_terminal_state_msg``).
    """
    release = sup.release
    if frame.frame in NON_TERMINAL_FRAMES:  # it asks for something: answered on every release
        return replace(sup, replies=(*sup.replies, "ok"))
    if frame.frame not in release.terminal_frames:
        return sup
    if frame.frame == "SkipDownstreamTasks":
        sup, status = sup.call("skip_downstream_tasks")
        return answer(sup, None if status == OK else status)
    held_for_close = frame.frame in release.held_for_close
    if held_for_close and release.server_termination_is_final and sup.terminal_state == SERVER_TERMINATED:
        return sup.reply(True)
    if frame.frame in FRAMES_WITH_MAP_INDEX:
        sup = replace(sup, rendered_map_index=sup.frames_map_index)
    if frame.frame in FRAMES_ENDING_TASK:
        sup = replace(sup, task_ended=True, overtime_elapsed=False)  # _task_end_time_monotonic = now
    if held_for_close:
        pending = frame if release.delivers_a_held_outcome_itself else sup.pending
        return replace(sup, terminal_state=outcome_call(frame)[1], pending=pending).reply(True)
    return answer(*send_terminal_state_msg(sup, frame))


def sends_heartbeats(sup: Supervisor) -> bool:
    """Whether ``_send_heartbeat_if_needed`` sends a heartbeat that is due: while no state is held; since 1.4.0 also
    while the held outcome is pending, unless SERVER_TERMINATED is held (``Release.heartbeats_while_undelivered``)."""
    if not sup.terminal_state:
        return True
    return (sup.release.heartbeats_while_undelivered and sup.terminal_state != SERVER_TERMINATED
            and sup.pending is not None)


def send_heartbeat_if_needed(sup: Supervisor) -> Supervisor:
    """``_send_heartbeat_if_needed``, at each wake-up: the heartbeat that is due (``heartbeat_overdue``), if the
    supervisor sends one now (``sends_heartbeats``); 404/409/410 kill the task and hold SERVER_TERMINATED (the
    release's ``heartbeat_gone``: 410 since 1.2.1), which since 1.4.0 discards the pending outcome
    (``Release.server_termination_is_final``).

    A heartbeat not sent stays due, and goes at the first wake-up that sends one: only a release that heartbeats
    while an outcome is undelivered ever gets there (a 1.4.0 supervisor whose delivered SucceedTask is followed by a
    TaskState); any other holds a state from then on, and the due heartbeat is forgotten.
    """
    if sup.heartbeat_overdue is None:
        return sup
    if not sends_heartbeats(sup):
        later = sup.release.heartbeats_while_undelivered and sup.terminal_state != SERVER_TERMINATED
        return sup if later else replace(sup, heartbeat_overdue=None)
    tries = sup.execution_api_retries if sup.release.retries_heartbeats else 1
    server, calls, status = client.heartbeat(sup.server, sup.heartbeat_overdue, tries)
    sup = replace(sup, server=server, calls=(*sup.calls, *calls), heartbeat_overdue=None)
    if status in sup.release.heartbeat_gone:
        if sup.release.server_termination_is_final:  # held before the kill, whose wait drains the frames
            return replace(sup, terminal_state=SERVER_TERMINATED, pending=None).kill()
        return sup.kill(then=SERVER_TERMINATED)
    if status == HEARTBEAT_OK:
        return replace(sup, failed_heartbeats=0)
    sup = replace(sup, failed_heartbeats=sup.failed_heartbeats + 1)
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
    """``update_task_state_if_needed``: deliver a pending outcome, else ``finish`` a state not sent directly.

    A pending outcome is sent again (``_replay_pending_terminal_state_msg``, which swallows its own failure); since
    1.4.0 a frame held for close is delivered by its own call, whose failure propagates out of ``wait()``
    (``Release.delivers_a_held_outcome_itself``). Since 1.4.0 a SERVER_TERMINATED held then, or already, is
    acknowledged (``acknowledge_server_termination``). Otherwise the final state, unless sent directly
    (``STATES_SENT_DIRECTLY``), goes to ``finish``, whose failure propagates out of ``wait()``.
    """
    release = sup.release
    if sup.pending is not None:
        if sup.pending.frame in release.held_for_close:
            sup, failure = send_terminal_state_msg(sup, sup.pending)
            if failure is not None:
                return replace(sup, raised=error_name(failure))
        else:
            sup, _ = send_terminal_state_msg(sup, sup.pending)
        if not (release.acknowledges_server_termination and sup.terminal_state == SERVER_TERMINATED):
            return sup
    if release.acknowledges_server_termination and sup.terminal_state == SERVER_TERMINATED:
        return acknowledge_server_termination(sup)
    state = final_state(sup.exit_code, sup.terminal_state, sup.should_retry, sup.release)
    if state in STATES_SENT_DIRECTLY:
        return sup
    sup, status = sup.call("finish", state)
    return sup if status == OK else replace(sup, raised=error_name(status))


def acknowledge_server_termination(sup: Supervisor) -> Supervisor:
    """Since 1.4.0 (``Release.acknowledges_server_termination``): the pending outcome dropped,
    ``finish(SERVER_TERMINATED)``; a 404, 409 or 410 refusal is taken quietly, any other failure propagates out of
    ``wait()``."""
    sup, status = replace(sup, pending=None).call("finish", SERVER_TERMINATED)
    if status == OK or status in TERMINATION_REFUSALS:
        return sup
    return replace(sup, raised=error_name(status))


def monitor_step(sup: Supervisor, event) -> Supervisor:
    """One wake-up of ``_monitor_subprocess``: the event (a heartbeat event: one falls due), then the heartbeat and
    overtime checks. Inside a ``kill()`` that waits for a process handling SIGTERM, a wake-up is its
    ``_service_subprocess``: the event, and nothing else (a heartbeat or the overtime falling due then is never
    acted on: the process's exit ends the monitor loop)."""
    if isinstance(event, Fault):
        sup = replace(sup, server=sup.server.arm(event))
    elif isinstance(event, Send):
        sup = handle_request(sup, event)
    elif isinstance(event, UserAction):
        sup = replace(sup, server=sup.server.act(event))
    elif sup.killing:
        return sup
    elif isinstance(event, Heartbeat):
        sup = replace(sup, heartbeat_overdue=event.answer)
    elif isinstance(event, Overtime):
        sup = replace(sup, overtime_elapsed=sup.task_ended)
    elif isinstance(event, IgnoreSigterm):
        sup = replace(sup, sigterm=SIGTERM_IGNORED)
    elif isinstance(event, HandleSigterm):
        sup = replace(sup, sigterm=SIGTERM_HANDLED)
    if not sup.alive or sup.killing:  # a monitor loop that raised goes no further; a kill's wait does only that
        return sup
    return handle_process_overtime_if_needed(send_heartbeat_if_needed(sup))


#: What time running on brings a process that never exits (``HANG``): a heartbeat falls due (answered as the server
#: then answers: ``HEARTBEAT_OK`` arranges nothing), then the success overtime runs out (if its clock started).
TIME_RUNS_ON = (Heartbeat(HEARTBEAT_OK), Overtime())


def run(scenario: Scenario, release: Release = SPECIFIED) -> Observation:
    """The whole attempt: start, the events while the process lives, its exit, then ``wait()``'s close.

    The process's death ends the timeline: events after a kill never happen (a process that handles SIGTERM lives
    them while the kill waits for it). ``release``: the task-sdk release whose by-design behaviour to follow
    (``model.release``).
    """
    return close(live(scenario, release), scenario.exit_code)


def live(scenario: Scenario, release: Release = SPECIFIED) -> Supervisor:
    """``run`` up to the process's exit: start, then the events while the process lives (or while a kill waits for a
    process that handles SIGTERM: ``Supervisor.killing``)."""
    sup = start(scenario, release)
    for event in scenario.events:
        if not sup.alive:
            break
        sup = monitor_step(sup, event)
    return sup


def close(sup: Supervisor, exit_code: int | str) -> Observation:
    """The end of an attempt whose events are over: the process exits with ``exit_code`` (unless a kill ended it
    already), ``wait()`` closes, and what the attempt did is observed.

    A process that never exits (``HANG``) meets time running on (``TIME_RUNS_ON``); if nothing kills it, ``wait()``
    never returns: the observation is ``hung``, with no exit, no final state and no closing call. A monitor loop that
    raised (``answer``: before 1.2.2) ends ``wait()`` there: no exit was seen (None), no final state decided
    (``NO_FINAL_STATE``), no closing call made.
    """
    if exit_code == HANG and not sup.killing:
        for event in TIME_RUNS_ON:
            if sup.alive and not sup.killing:
                sup = monitor_step(sup, event)
    hung = sup.alive and not sup.killing and exit_code == HANG
    if sup.raised is not None or hung:
        decided = NO_FINAL_STATE
    else:
        if sup.alive:
            sup = sup.exited(exit_code)
        sup = update_task_state_if_needed(sup)
        decided = final_state(sup.exit_code, sup.terminal_state, sup.should_retry, sup.release)
    row = sup.server.row
    return Observation(
        exit_code=sup.exit_code,
        final_state=decided,
        calls=sup.calls,
        replies=sup.replies,
        row=row.state,
        row_gone=row.gone,
        raised=sup.raised,
        rendered_map_index=sup.map_index_sent,
        hung=hung,
    )
