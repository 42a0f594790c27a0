"""Scenarios and observations: the values every target consumes and produces.

A *scenario* is one task attempt as the supervisor lives it: the run context the
server hands out at start, an ordered list of events (frames the runtime sends,
faults on the supervisor's Execution API calls, heartbeat answers, the success
overtime running out), and the process exit. An *observation* is what came of it:
the supervisor's ``final_state``, every Execution API call it made with the answer
it got, what the runtime was told for each frame, the server row at the end, and
whatever the supervisor raised.

Both have a one-line text form (``Scenario.to_text`` / ``Scenario.from_text``) so a
counterexample can be printed, read, pasted into a replay command and parsed back.
"""

from __future__ import annotations

import signal
from typing import Union

import attrs

from model.frozen import replace
from model.words import said_plainly

# TaskInstanceState values, spelled as Airflow spells them on the wire.
QUEUED = "queued"
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
REMOVED = "removed"
UP_FOR_RETRY = "up_for_retry"
UP_FOR_RESCHEDULE = "up_for_reschedule"
DEFERRED = "deferred"
AWAITING_INPUT = "awaiting_input"
SERVER_TERMINATED = "SERVER_TERMINATED"
#: An observation's row when the live row has no state (a cleared TI, or since core 3.4 one whose restart was
#: completed, waiting for the scheduler): spelled as the real server's row reads.
NO_STATE = "none"
#: An observation's final state when ``wait()`` raised before it saw the process exit: no final state was decided
#: (``final_state`` is not valid before the process has finished).
NO_FINAL_STATE = "none"
#: What the runtime was told for a frame the supervisor read and handled without sending anything back: a reply of
#: the JSON-lines wire before task-sdk 1.0.3 (``model.release.Release.answers_every_request``).
UNANSWERED = "unanswered"

#: The runtime's terminal and near-terminal frames, by their ``type`` discriminator.
FRAME_TYPES = (
    "TaskState",
    "SucceedTask",
    "RetryTask",
    "DeferTask",
    "RescheduleTask",
    "AwaitInputTask",
    "SkipDownstreamTasks",
)
#: A request frame that is no terminal state: ``MaskSecret`` (the supervisor masks the value in its logs and
#: answers), standing for every other request the runtime sends while it runs.
NON_TERMINAL_FRAMES = ("MaskSecret",)
#: The rendered map index every frame that has one carries (the task runner's rendering of the task's
#: ``map_index_template``): the supervisor keeps it and passes it on in its succeed, retry and finish calls.
RENDERED_MAP_INDEX = "finalstate-0"
#: The frames that carry it (``_handle_request`` keeps it from each).
FRAMES_WITH_MAP_INDEX = frozenset({"TaskState", "SucceedTask", "RetryTask", "DeferTask", "AwaitInputTask"})
#: The calls that pass it on.
CALLS_WITH_MAP_INDEX = frozenset({"succeed", "retry", "finish"})
#: The states a ``TaskState`` frame may carry (``comms.TaskState.state``).
TASK_STATE_STATES = (FAILED, SKIPPED, REMOVED)

#: Execution API calls a scenario can make fail, by the client method's name.
FAULTABLE_CALLS = ("succeed", "retry", "defer", "reschedule", "await_input", "skip_downstream_tasks", "finish")
#: Faults count HTTP requests, not calls: the client tries each call up to ``execution_api_retries`` times.
#: ``transient``: the next such request fails with a 5xx and has no effect.
#: ``permanent``: every such request from now on fails with a 5xx.
#: ``lost``: the next such request takes effect on the server but its answer never arrives.
FAULT_KINDS = ("transient", "permanent", "lost")

#: Airflow's shipped ``[workers] execution_api_retries``: how many times the client tries each request,
#: the first try included (``stop_after_attempt``). ``tests/test_model_client.py`` reads it from Airflow.
DEFAULT_EXECUTION_API_RETRIES = 5

#: The pseudo status recorded for a call whose answer was lost (or, for a heartbeat, never came).
TIMEOUT = "timeout"

HEARTBEAT_OK = 200
HEARTBEAT_ERROR = 500
#: Answers by which the server says the TI must not run any more (``_send_heartbeat_if_needed``).
HEARTBEAT_GONE = (404, 409, 410)
#: No answer at all: every try of the heartbeat times out (a transport error, not an HTTP status).
HEARTBEAT_NO_ANSWER = TIMEOUT
HEARTBEAT_ANSWERS = (HEARTBEAT_OK, HEARTBEAT_ERROR, *HEARTBEAT_GONE, HEARTBEAT_NO_ANSWER)


def server_should_retry(try_number: int, max_tries: int) -> bool:
    """The Execution API's rule (``_is_eligible_to_retry`` for a RUNNING TI)."""
    return max_tries != 0 and try_number <= max_tries


@attrs.frozen
class RunContext:
    """The part of ``TIRunContext`` that decides terminal states.

    ``should_retry`` is normally ``server_should_retry(try_number, max_tries)``;
    scenarios may deliberately make it disagree, as a buggy or racing server would.
    """

    #: The try the server started: 1 for the first, one more for each retry.
    try_number: int = 1
    #: The task instance's ``max_tries`` (its task's ``retries`` at first).
    max_tries: int = 0
    #: Whether a failure of this try may be retried, as the server said at start.
    should_retry: bool = False

    @classmethod
    def from_server(cls, try_number: int, max_tries: int) -> RunContext:
        return cls(try_number, max_tries, server_should_retry(try_number, max_tries))

    @property
    def consistent(self) -> bool:
        return self.should_retry == server_should_retry(self.try_number, self.max_tries)


@attrs.frozen
class Send:
    """The runtime sends one request frame; ``state`` only for ``TaskState``."""

    #: The frame's ``type`` discriminator (``FRAME_TYPES``, or a request of ``NON_TERMINAL_FRAMES``).
    frame: str = attrs.field(validator=attrs.validators.in_(FRAME_TYPES + NON_TERMINAL_FRAMES))
    #: The state a ``TaskState`` frame carries (``TASK_STATE_STATES``); None for every other frame.
    state: str | None = None

    def __attrs_post_init__(self):
        if (self.frame == "TaskState") != (self.state is not None):
            raise ValueError(f"{self.frame} frame cannot carry state={self.state!r}")
        if self.state is not None and self.state not in TASK_STATE_STATES:
            raise ValueError(f"TaskState state {self.state!r} is not known; allowed: {', '.join(TASK_STATE_STATES)}")


@attrs.frozen
class Fault:
    """From now on, the supervisor's ``call`` to the Execution API misbehaves as ``kind`` says."""

    #: The client method whose requests misbehave (``FAULTABLE_CALLS``).
    call: str = attrs.field(validator=attrs.validators.in_(FAULTABLE_CALLS))
    #: How they misbehave (``FAULT_KINDS``): transient, permanent or lost.
    kind: str = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))


@attrs.frozen
class Heartbeat:
    """A heartbeat falls due; the server answers ``answer`` if the TI is still its RUNNING one
    (``timeout``: no try of it is answered)."""

    #: What the server answers (``HEARTBEAT_ANSWERS``): an HTTP status, or ``timeout`` for none.
    answer: int | str = attrs.field(validator=attrs.validators.in_(HEARTBEAT_ANSWERS))


@attrs.frozen
class Overtime:
    """``task_success_overtime`` runs out while the process is still alive."""


@attrs.frozen
class IgnoreSigterm:
    """From now on the process ignores SIGTERM (a task that traps it): a kill's SIGTERM leaves it alive and doing
    nothing more, so only the supervisor's escalation to SIGKILL ends it (else, much later, its own exit)."""


@attrs.frozen
class HandleSigterm:
    """From now on the process traps SIGTERM and carries on, as Airflow's Python task runner does since task-sdk
    1.0.4 (``_on_term`` calls ``task.on_kill()`` and returns to the task): a kill's SIGTERM leaves it running, the
    events after the kill still happen while the supervisor's ``kill()`` waits for it (its ``_service_subprocess``
    reads and handles frames; no heartbeat is sent and no overtime checked there), and it then exits as the run
    says, within the escalation delay; a process that hangs (``exit hang``) is ended by the escalation's SIGKILL."""


#: What a user does to a running task instance from the UI or the REST API (``UserAction``), and what the scheduler
#: does to one whose heartbeats it stopped seeing (its task-instance heartbeat timeout, ``scheduler times out``).
USER_MARKS = "marks"
USER_CLEARS = "clears"
USER_DELETES = "deletes"
SCHEDULER_TIMES_OUT = "times out"
USER_ACTIONS = (USER_MARKS, USER_CLEARS, USER_DELETES, SCHEDULER_TIMES_OUT)
#: The states a user marks a task instance with (``set_task_instance_state``'s choices for a running one).
MARKED_STATES = (SUCCESS, FAILED, SKIPPED)


@attrs.frozen
class UserAction:
    """Someone other than the supervisor acts on the task instance on the server while its process runs: a user
    marks it ``state``, clears it, or deletes it (``model.server.Server.mark``, ``clear``, ``delete``), or the
    scheduler's task-instance heartbeat timeout strikes it (``heartbeat_timeout``: it took the task for lost). Nothing
    tells the supervisor at once: its next heartbeat, or its next call, is answered as the server then answers (409,
    404, 410)."""

    #: What the user does (``USER_ACTIONS``): marks, clears or deletes the task instance.
    action: str = attrs.field(validator=attrs.validators.in_(USER_ACTIONS))
    #: The state a mark sets (``MARKED_STATES``); None for a clear or a delete.
    state: str | None = None

    def __attrs_post_init__(self):
        if (self.action == USER_MARKS) != (self.state is not None):
            raise ValueError(f"'user {self.action}' takes {'a state' if self.action == USER_MARKS else 'no state'}"
                             f" (user marks {'|'.join(MARKED_STATES)}, user clears, user deletes)")
        if self.state is not None and self.state not in MARKED_STATES:
            raise ValueError(f"marked state {self.state!r} is not known; allowed: {', '.join(MARKED_STATES)}")


Event = Union[Send, Fault, Heartbeat, Overtime, IgnoreSigterm, HandleSigterm, UserAction]

#: The exit of a process that never exits on its own (``exit hang``): time runs on after the last event, and only a
#: kill ends it.
HANG = "hang"


def _at_least_one_try(instance, attribute, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"execution_api_retries counts tries, the first included: at least 1, not {value!r}")


def _an_exit(instance, attribute, value) -> None:
    if value != HANG and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"an exit is a whole number (0, a code, -SIGNUM) or {HANG!r}, not {value!r}")


@attrs.frozen
class Scenario:
    """One task attempt: the run context, the events in order, then the process exit.

    ``exit_code`` follows ``subprocess``: 0, a positive code, or ``-signum`` for death by signal; or ``HANG``, a
    process that never exits on its own (``model.supervisor.close``: time runs on, and only a kill ends it).
    If the supervisor kills the process first, the kill's signal is the exit instead.
    ``execution_api_retries`` is the worker's ``[workers] execution_api_retries``: how many times
    Airflow's client tries each request (``model.client``); Airflow's default unless said.
    ``rendered_map_index`` is what the runtime's frames carry as one (``FRAMES_WITH_MAP_INDEX``): the scripted
    runtimes send ``RENDERED_MAP_INDEX``; a runtime whose task is not mapped, none. Not in the text form.
    """

    #: The run context the server hands out at start.
    context: RunContext = RunContext()
    #: What happens while the process lives, in order.
    events: tuple[Event, ...] = ()
    #: How the process exits unless killed first: 0, a positive code, minus a signal's number, or ``HANG``.
    exit_code: int | str = attrs.field(default=0, validator=_an_exit)
    #: ``[workers] execution_api_retries``: how many times the client tries each request.
    execution_api_retries: int = attrs.field(default=DEFAULT_EXECUTION_API_RETRIES, validator=_at_least_one_try)
    #: What the runtime's frames carry as the rendered map index (None: the task is not mapped).
    rendered_map_index: str | None = RENDERED_MAP_INDEX

    def to_text(self) -> str:
        """One line: ``try_number=1 max_tries=2 should_retry=true; send RetryTask; exit 1``.

        A setting other than Airflow's default joins the first part: ``... should_retry=true execution_api_retries=1``.
        """
        parts = [settings_text(self.context, self.execution_api_retries)]
        parts += [event_text(e) for e in self.events]
        parts.append(f"exit {self.exit_code}")
        return "; ".join(parts)

    def to_lines(self) -> list[str]:
        """The trace form: the run context, then one line per event, then the exit."""
        return self.to_text().split("; ")

    @classmethod
    def from_text(cls, text: str) -> Scenario:
        """Parse ``to_text``'s form (``;`` or newlines between parts); the context may be left out.

        Raises ``ValueError`` naming the part that is wrong.
        """
        parts = [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]
        if not parts:
            raise ValueError("empty scenario")
        context, retries = parse_settings(parts.pop(0)) if "=" in parts[0] else (RunContext(), None)
        *event_parts, exit_part = parts or ["exit 0"]
        words = exit_part.split()
        if len(words) != 2 or words[0] != "exit":
            raise ValueError(f"a scenario ends with 'exit CODE' or 'exit {HANG}', not {exit_part!r}")
        code = HANG if words[1] == HANG else _parse_int(words[1], exit_part)
        scenario = cls(context, tuple(parse_event(p) for p in event_parts), code)
        return scenario if retries is None else replace(scenario, execution_api_retries=retries)


def settings_text(context: RunContext, execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES) -> str:
    """The first part of a run's text: the run context, and ``execution_api_retries`` where it is not Airflow's default."""
    text = (f"try_number={context.try_number} max_tries={context.max_tries} "
            f"should_retry={str(context.should_retry).lower()}")
    if execution_api_retries != DEFAULT_EXECUTION_API_RETRIES:
        text += f" execution_api_retries={execution_api_retries}"
    return text


def event_text(event: Event) -> str:
    """One event as a run's text writes it (``parse_event`` reads it back)."""
    if isinstance(event, Send):
        return f"send {event.frame}" + (f" {event.state}" if event.state else "")
    if isinstance(event, Fault):
        return f"fault {event.call} {event.kind}"
    if isinstance(event, Heartbeat):
        return f"heartbeat {event.answer}"
    if isinstance(event, IgnoreSigterm):
        return "ignore sigterm"
    if isinstance(event, HandleSigterm):
        return "handle sigterm"
    if isinstance(event, UserAction):
        who = "scheduler" if event.action == SCHEDULER_TIMES_OUT else "user"
        return f"{who} {event.action}" + (f" {event.state}" if event.state else "")
    return "overtime"


def _parse_int(word: str, part: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"{word!r} is not an integer in {part!r}") from None


#: The words of a run's first part, each ``KEY=VALUE`` once: the run context, and the client's tries of each request.
SETTINGS = ("try_number", "max_tries", "should_retry", "execution_api_retries")


def parse_settings(part: str) -> tuple[RunContext, int | None]:
    """The first part: the run context, and ``execution_api_retries`` if it is given (None: not given)."""
    fields = {}
    for item in part.split():
        key, sep, value = item.partition("=")
        if not sep or key not in SETTINGS:
            raise ValueError(f"the first part wants try_number=, max_tries=, should_retry= "
                             f"(and optionally execution_api_retries=); got {item!r}")
        if key in fields:
            raise ValueError(f"{key}= is given twice in {part!r}; each setting once")
        if key == "should_retry":
            if value not in ("true", "false"):
                raise ValueError(f"should_retry must be true or false, not {value!r}")
            fields[key] = value == "true"
        else:
            fields[key] = _parse_int(value, part)
    retries = fields.pop("execution_api_retries", None)
    if "should_retry" not in fields:
        return RunContext.from_server(fields.get("try_number", 1), fields.get("max_tries", 0)), retries
    return RunContext(**fields), retries


def parse_event(part: str) -> Event:
    """One event of ``event_text``'s form; ``ValueError`` naming the part and the events there are."""
    verb, *args = part.split()
    try:
        if verb == "send" and len(args) in (1, 2):
            return Send(*args)
        if verb == "fault" and len(args) == 2:
            return Fault(*args)
        if verb == "heartbeat" and len(args) == 1:
            return Heartbeat(args[0] if args[0] == HEARTBEAT_NO_ANSWER else _parse_int(args[0], part))
        if verb == "overtime" and not args:
            return Overtime()
        if verb == "ignore" and args == ["sigterm"]:
            return IgnoreSigterm()
        if verb == "handle" and args == ["sigterm"]:
            return HandleSigterm()
        if verb == "user" and len(args) in (1, 2) and " ".join(args) != SCHEDULER_TIMES_OUT:
            return UserAction(*args)
        if verb == "scheduler" and " ".join(args) == SCHEDULER_TIMES_OUT:
            return UserAction(SCHEDULER_TIMES_OUT)
    except (ValueError, TypeError) as e:
        raise ValueError(f"bad event {part!r}: {said_plainly(e)}") from None
    raise ValueError(f"unknown event {part!r}; events are: send FRAME [STATE], fault CALL KIND, heartbeat CODE|timeout, "
                     f"overtime, ignore sigterm, handle sigterm, user marks {'|'.join(MARKED_STATES)}, user clears, "
                     f"user deletes, scheduler times out")


def signal_name(exit_code: int) -> str:
    """``-15`` → ``SIGTERM``; other codes as they are."""
    if exit_code < 0:
        try:
            return signal.Signals(-exit_code).name
        except ValueError:
            pass
    return str(exit_code)


@attrs.frozen
class ApiCall:
    """One Execution API call the supervisor made and what it got back (an HTTP status or ``timeout``)."""

    #: The client method called (``start``, ``succeed``, ``heartbeat``, ``finish``, ...).
    name: str
    #: What that request got back: an HTTP status, or ``timeout``.
    status: int | str
    #: The state a ``finish`` call asked for; None for the others.
    state: str | None = None

    def __str__(self) -> str:
        return f"{self.name}({self.state})->{self.status}" if self.state else f"{self.name}->{self.status}"


@attrs.frozen
class Observation:
    """What one target made of one scenario.

    ``replies`` has one entry per frame the supervisor received: ``ok`` or ``error`` (``unanswered`` before 1.0.3,
    for a frame handled with nothing to send back).
    ``row`` is the server row's state at the end (``NO_STATE`` for none); ``row_gone`` the status the server
    answers for it once it has taken the TI away (404/409/410), else ``None``.
    ``raised`` names what the supervisor raised out of ``wait()``, if anything.
    ``rendered_map_index`` is what the last succeed, retry or finish request carried (None: none did).
    ``harness`` is set only when the harness running a real process had to step in (the
    attempt never started, or ran past its deadline and was killed): it says what happened.
    ``hung``: the process never exited and nothing ended it: ``wait()`` was still waiting when time had run on past
    every clock of the supervisor (a run whose exit is ``HANG``); no exit, no final state, no closing call.
    """

    #: The process's exit as the supervisor saw it (None: ``wait()`` raised before it saw one).
    exit_code: int
    #: The supervisor's ``final_state`` (``NO_FINAL_STATE`` when none was decided).
    final_state: str
    #: Every Execution API request made, each try of the client's its own entry, in order.
    calls: tuple[ApiCall, ...]
    #: What the runtime was told for each frame read: ``ok``, ``error`` (or ``unanswered``).
    replies: tuple[str, ...]
    #: The server row's state at the end (``NO_STATE`` for none).
    row: str = attrs.field(converter=lambda state: NO_STATE if state is None else state)  # no state: ``NO_STATE``
    #: The status by which the server answers for a task instance it took away (404, 409, 410), else None.
    row_gone: int | None = None
    #: What ``wait()`` raised, if anything.
    raised: str | None = None
    #: What a real-process harness had to do itself (the attempt never started, or ran past its deadline).
    harness: str | None = None
    #: What the last succeed, retry or finish request carried as the rendered map index.
    rendered_map_index: str | None = None
    #: Whether the attempt never ended (``exit hang`` and nothing killed the process).
    hung: bool = False

    def to_lines(self) -> list[str]:
        lines = [
            f"exit_code={self.exit_code} ({signal_name(self.exit_code)})" if (self.exit_code or 0) < 0
            else f"exit_code={self.exit_code}",  # None: wait() raised before the exit was seen
            f"final_state={self.final_state}",
            f"row={self.row}" + (f" (server answers {self.row_gone})" if self.row_gone else ""),
            "calls=" + (", ".join(map(str, self.calls)) or "none"),
            "replies=" + (", ".join(self.replies) or "none"),
        ]
        if self.raised:
            lines.append(f"raised={self.raised}")
        if self.rendered_map_index is not None:
            lines.append(f"rendered_map_index={self.rendered_map_index}")
        if self.hung:
            lines.append("hung: the process never exited and nothing ended it; wait() still waits")
        if self.harness:
            lines.append(f"harness: {self.harness}")
        return lines
