"""The runtime's side: for a task outcome and a run context, the frames it sends and its exit code.

The Python task runner of apache-airflow-task-sdk 1.3.2 (``airflow.sdk.execution_time.task_runner``), as it
is: ``python_runtime(run)`` follows ``main`` → ``run`` → ``_run_task_and_map_outcome`` →
``_handle_current_task_failed`` / ``_handle_handler_failure`` → ``_finalize_task_failure``, with the task's
retry policy (``_evaluate_retry_policy``) and the fail-closed exit when the terminal frame cannot be sent.
``python_runtime(run, release)`` follows another release's runner where they differ
(``model.release.Release``: retry policies since 1.3.0, the fail-closed exit since 1.2.2, the handler-failure
path since 1.3.1, ...). Coordinator-mode runtimes, which meet the supervisor's world as they run, are
``model.coordinator``.

It answers a ``RuntimeObservation``: every frame handed to the supervisor channel, in order,
with whether it got through; the state the runtime decided; and the process exit code. The
frames are ``model.scenario.Send`` values, so ``to_scenario`` turns a runtime's answer into the
``Scenario`` the supervisor lives (``model.supervisor.run``), and ``compose`` does both.
"""

from __future__ import annotations

import attrs

from model import supervisor
from model.release import SPECIFIED, Release
from model.words import said_plainly
from model.scenario import (
    AWAITING_INPUT,
    DEFERRED,
    FAILED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    Observation,
    RunContext,
    Scenario,
    Send,
    parse_settings,
    settings_text,
)

# -- what the task's code does (Python runtime) ----------------------------------------------

#: The task returns normally.
RETURN = "return"
#: Ends handled by ``_run_task_and_map_outcome`` without the failure path. ``AirflowSkipException()``
#: is a skip raised with no reason (``if e.args:`` logs the reason of the other one).
NON_FAILURE_OUTCOMES = (
    RETURN,
    "AirflowSkipException",
    "AirflowSkipException()",
    "DownstreamTasksSkipped",
    "AirflowRescheduleException",
    "TaskDeferred",
    "TaskAwaitingInput",
    # TriggerDagRunOperator's signal (fire and forget): ``_handle_trigger_dag_run`` asks the supervisor to
    # trigger the run, pushes its id as an XCom, and succeeds; or, the run existing already and
    # ``skip_when_already_exists`` set, skips.
    "DagRunTriggerException",
    "DagRunTriggerException(exists,skip)",
)
#: Failures that never retry: ``except (AirflowFailException, AirflowSensorTimeout)`` and
#: ``except AirflowTaskTerminated`` build ``TaskState(failed)`` without consulting anything, and
#: ``_handle_handler_failure`` keeps that when an outcome handler raises one of them (here: the
#: deferring task's trigger, whose ``serialize`` ``_defer_task`` calls, raises AirflowFailException).
#: A DAG run to trigger that exists already (without ``skip_when_already_exists``) fails without retry
#: too: retrying would only meet the same run (apache/airflow#65390 keeps it so).
NEVER_RETRIED_FAILURES = ("AirflowFailException", "AirflowSensorTimeout", "AirflowTaskTerminated",
                          "TaskDeferred(serialize=AirflowFailException)", "DagRunTriggerException(exists)")
#: Failures routed through ``_handle_current_task_failed`` (retry policy, then should_retry).
RETRYABLE_FAILURES = (
    "AirflowException",
    "AirflowTaskTimeout",
    "AirflowRuntimeError",
    "SystemExit(0)",
    # ``sys.exit()``: no code (``e.code`` is None); ``except SystemExit`` takes it as it takes any other code.
    "SystemExit()",
    "SystemExit(1)",
    "ValueError",  # any other exception
    "KeyboardInterrupt",
    # The outcome handler itself raises: ``_defer_task`` cannot serialize the trigger kwargs
    # (TypeError), so ``run`` hands it to ``_handle_handler_failure``.
    "TaskDeferredUnserializable",
)
FAILURE_OUTCOMES = NEVER_RETRIED_FAILURES + RETRYABLE_FAILURES
PYTHON_OUTCOMES = NON_FAILURE_OUTCOMES + FAILURE_OUTCOMES
#: The outcomes raised as an ``Exception`` (the rest are ``BaseException`` only: TaskDeferred,
#: TaskAwaitingInput, AirflowTaskTerminated, AirflowTaskTimeout, SystemExit, KeyboardInterrupt).
#: ``_run_task_and_map_outcome`` re-renders the map index only for these (``except Exception``).
EXCEPTION_OUTCOMES = ("AirflowSkipException", "AirflowSkipException()", "DownstreamTasksSkipped",
                      "AirflowRescheduleException", "AirflowFailException", "AirflowSensorTimeout",
                      "AirflowException", "AirflowRuntimeError", "ValueError", "DagRunTriggerException",
                      "DagRunTriggerException(exists,skip)", "DagRunTriggerException(exists)")
#: The TriggerDagRunOperator outcomes, handled by ``_handle_trigger_dag_run``.
TRIGGER_DAG_RUN_OUTCOMES = ("DagRunTriggerException", "DagRunTriggerException(exists,skip)",
                            "DagRunTriggerException(exists)")
#: Outcomes whose handler in ``_run_task_and_map_outcome`` raises: ``run`` hands the error to
#: ``_handle_handler_failure``. (``DownstreamTasksSkipped``'s does too when its send fails.)
HANDLER_RAISES = ("TaskDeferredUnserializable", "TaskDeferred(serialize=AirflowFailException)")

# -- what else the try meets (features of the task, the server's context, the start) ----------

#: The DAG is not found at startup yet: ``parse`` raises AirflowRescheduleException
#: (``_maybe_reschedule_startup_failure``), and ``main`` sends RescheduleTask itself, then exits 0.
STARTUP_RESCHEDULE = "startup_reschedule"
#: Started by fork+exec (``_AIRFLOW_FORK_EXEC=1``): ``main`` first asks for the log channel again
#: (``reinit_supervisor_comms`` sends ResendLoggingFD).
FORK_EXEC = "fork_exec"
#: The server's run context lists XCom keys to clear: ``_run_task_and_map_outcome`` reads (GetXCom)
#: and deletes (DeleteXCom) each before the task runs; a send that fails there fails the task.
XCOM_KEYS_TO_CLEAR = "xcom_keys_to_clear"
#: The task has a ``map_index_template`` naming a value its ``execute`` sets: the early rendering in
#: ``_prepare`` fails (undefined, suppressed), the one after ``execute`` sends SetRenderedMapIndex.
MAP_INDEX_TEMPLATE = "map_index_template"
#: The task's process gets SIGTERM while ``execute`` runs: ``_on_term`` calls ``task.on_kill()``,
#: and the task goes on to end as its outcome says.
SIGTERM = "sigterm"
#: The task forks a child process, which gets SIGTERM: the child inherits ``_on_term``, which returns
#: in a process that is not the runtime's, so the child neither calls ``on_kill`` nor dies of the
#: signal (it exits 0, as it would have).
FORKED_CHILD = "forked_child"
#: The task's ``execution_timeout`` runs out while ``execute`` runs (it waits longer): the runner's timer
#: (``airflow.sdk.execution_time.timeout``, SIGALRM) raises ``AirflowTaskTimeout`` inside ``execute``, and
#: ``_run_execute_callable`` calls ``task.on_kill()`` (since 1.0.2) and re-raises it into the failure path. The task
#: never reaches the outcome the run names (``reached_outcome``). Since 1.4.0 the runner first tells the supervisor the timeout
#: (``SetExecutionTimeout``, ``Release.announces_the_execution_timeout``).
EXECUTION_TIMEOUT = "execution_timeout"
FEATURES = (STARTUP_RESCHEDULE, FORK_EXEC, XCOM_KEYS_TO_CLEAR, MAP_INDEX_TEMPLATE, SIGTERM, FORKED_CHILD,
            EXECUTION_TIMEOUT)

# -- the task's retry policy (``airflow.sdk.definitions.retry_policy``) -----------------------

#: ``RetryAction`` answers, plus a policy that raises an ``Exception`` (``_evaluate_retry_policy``
#: logs it and falls back to the default), one interrupted by Ctrl-C (``KeyboardInterrupt`` is
#: not an ``Exception``: it escapes ``run``, and ``main`` exits 2), and ``retry_int_delay``: RETRY
#: with the delay as a plain number of seconds, as ``BaseOperator(retry_delay=...)`` accepts it but
#: ``RetryDecision`` does not convert it (``_finalize_task_failure`` calls ``.total_seconds()`` on it).
POLICY_ACTIONS = ("default", "fail", "retry", "raises", "interrupted", "retry_int_delay")
#: The actions that carry a delay and a reason.
RETRY_ACTIONS = ("retry", "retry_int_delay")


@attrs.frozen
class Policy:
    """The task's ``retry_policy``: what ``evaluate`` answers (``delay``/``reason`` only for ``retry``)."""

    #: What ``evaluate`` answers (``POLICY_ACTIONS``).
    action: str = attrs.field(validator=attrs.validators.in_(POLICY_ACTIONS))
    #: The retry delay a RETRY carries, in seconds (None: the task's own).
    delay: int | None = None
    #: The reason a RETRY carries, one word here.
    reason: str | None = None

    def __attrs_post_init__(self):
        if self.action not in RETRY_ACTIONS and (self.delay is not None or self.reason is not None):
            raise ValueError(f"only a retry decision carries a delay or reason, not {self.action}")
        if self.action == "retry_int_delay" and self.delay is None:
            raise ValueError("retry_int_delay needs a delay (the plain number of seconds)")
        if self.reason is not None and (not self.reason or any(c.isspace() or c == ";" for c in self.reason)):
            raise ValueError(f"a reason is one word here (it must survive the text form): {self.reason!r}")

    def to_text(self) -> str:
        words = [self.action]
        if self.delay is not None:
            words.append(f"delay={self.delay}")
        if self.reason is not None:
            words.append(f"reason={self.reason}")
        return " ".join(words)


# -- the supervisor channel -------------------------------------------------------------------

#: ``ok``: every send gets through. ``terminal_send_fails``: the terminal frame's send raises
#: (the socket broke, or the supervisor refused it). ``every_send_fails``: every send raises.
COMMS_MODES = ("ok", "terminal_send_fails", "every_send_fails")
#: The frames ``run`` sends from its ``finally`` (the one that ends the attempt).
TERMINAL_FRAMES = frozenset({"TaskState", "SucceedTask", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"})


def delivers(comms: str, frame: Send) -> bool:
    """Whether a send of ``frame`` gets through a channel in ``comms`` mode."""
    if comms == "every_send_fails":
        return False
    return not (comms == "terminal_send_fails" and frame.frame in TERMINAL_FRAMES)


@attrs.frozen
class RuntimeRun:
    """One try of a Python task: the run context, what the task's code does, its policy, the channel,
    and what else it meets (``FEATURES``)."""

    #: The run context the server hands out at start.
    context: RunContext = RunContext()
    #: How the task's code ends (``PYTHON_OUTCOMES``).
    outcome: str = attrs.field(default=RETURN, validator=attrs.validators.in_(PYTHON_OUTCOMES))
    #: The task's ``retry_policy`` (None: it has none).
    policy: Policy | None = None
    #: Which sends on the supervisor channel fail (``COMMS_MODES``).
    comms: str = attrs.field(default="ok", validator=attrs.validators.in_(COMMS_MODES))
    #: What else the try meets (``FEATURES``).
    features: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset,
                                           validator=attrs.validators.deep_iterable(attrs.validators.in_(FEATURES)))

    def to_text(self) -> str:
        """One line: ``try_number=1 max_tries=1 should_retry=true; task raises AirflowException; policy fail; comms ok``,
        then ``; with FEATURE ...`` if it has any."""
        return "; ".join([
            settings_text(self.context),
            "task returns" if self.outcome == RETURN else f"task raises {self.outcome}",
            f"policy {self.policy.to_text() if self.policy else 'none'}",
            f"comms {self.comms}",
            *([f"with {' '.join(f for f in FEATURES if f in self.features)}"] if self.features else []),
        ])

    @classmethod
    def from_text(cls, text: str) -> RuntimeRun:
        """Parse ``to_text``'s form (the run context may be left out); ``ValueError`` names the part that is wrong.

        Every word is acted on or refused: each part once (one outcome, one policy, one channel, one ``with`` listing
        each feature once), and no setting a task runner try does not have (``execution_api_retries``)."""
        parts = [p.strip() for p in text.split(";") if p.strip()]
        fields: dict = {}
        if parts and "=" in parts[0].split()[0]:
            context, retries = parse_settings(parts.pop(0))
            if retries is not None:
                raise ValueError("bad runtime run: a task runner try has no execution_api_retries= (its supervisor's "
                                 "client's tries: a supervisor or coordinator run sets it)")
            fields["context"] = context
        for part in parts:
            verb, *words = part.split()
            if verb == "task" and words == ["returns"]:
                field, value = "outcome", RETURN
            elif verb == "task" and len(words) == 2 and words[0] == "raises":
                field, value = "outcome", words[1]
            elif verb == "policy" and words:
                field, value = "policy", None if words == ["none"] else _parse_policy(words, part)
            elif verb == "comms" and len(words) == 1:
                field, value = "comms", words[0]
            elif verb == "with" and words:
                twice = sorted({w for w in words if words.count(w) > 1})
                if twice:
                    raise ValueError(f"bad runtime run: feature {twice[0]!r} is given twice in {part!r}")
                field, value = "features", words
            else:
                raise ValueError(f"unknown part {part!r}; parts are: task returns | task raises NAME, "
                                 "policy none|ACTION [delay=N] [reason=WORD], comms MODE, with FEATURE...")
            if field in fields:
                raise ValueError(f"bad runtime run: {part!r} is a second {_PART_OF[field]} part; a run has one")
            fields[field] = value
        try:
            return cls(**fields)
        except (ValueError, TypeError) as e:
            raise ValueError(f"bad runtime run: {said_plainly(e)}") from None


#: The part of a runtime run's text each field is written in.
_PART_OF = {"outcome": "'task ...'", "policy": "'policy ...'", "comms": "'comms ...'", "features": "'with ...'"}


def _parse_policy(words: list[str], part: str) -> Policy:
    action, *rest = words
    kwargs: dict = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if key in kwargs:
            raise ValueError(f"bad policy word {word!r} in {part!r}: {key}= is given twice")
        if key == "delay" and sep and value.isdigit():
            kwargs["delay"] = int(value)
        elif key == "reason" and sep:
            kwargs["reason"] = value
        else:
            raise ValueError(f"bad policy word {word!r} in {part!r}; a policy is ACTION [delay=N] [reason=WORD], N a whole number of seconds")
    try:
        return Policy(action, **kwargs)
    except ValueError as e:
        raise ValueError(f"bad policy {part!r}: {said_plainly(e)}") from None


#: The runtime's requests that do not end the try (the supervisor answers them and carries on):
#: what ``FEATURES`` make it send besides the frames of ``model.scenario.FRAME_TYPES``.
OTHER_REQUESTS = ("ResendLoggingFD", "GetXCom", "DeleteXCom", "SetRenderedMapIndex", "TriggerDagRun", "SetXCom",
                  "SetExecutionTimeout")


@attrs.frozen
class Request:
    """A request of ``OTHER_REQUESTS``: sent and answered, never a frame the supervisor model decides on."""

    #: The request's ``type`` (``OTHER_REQUESTS``).
    frame: str = attrs.field(validator=attrs.validators.in_(OTHER_REQUESTS))
    #: Always None: a request carries no state (so that it reads like a ``Send``).
    state: None = None


@attrs.frozen
class Sent:
    """One frame (or other request) handed to the supervisor channel, and whether the send got through."""

    #: The frame or request handed to the channel.
    frame: Send | Request
    #: Whether the send got through (False: it raised).
    delivered: bool = True

    def __str__(self) -> str:
        text = self.frame.frame + (f"({self.frame.state})" if self.frame.state else "")
        return text if self.delivered else f"{text} [send failed]"


@attrs.frozen
class RuntimeObservation:
    """What a runtime did with one try.

    ``state`` is the state the runtime decided (``run``'s return; ``None`` if ``run`` raised).
    ``retry_delay_seconds`` / ``retry_reason`` are what a ``RetryTask`` frame carried.
    """

    #: Every frame and request handed to the supervisor channel, in order.
    sent: tuple[Sent, ...]
    #: The state ``run`` decided (None: it raised, or never ran).
    state: str | None
    #: How the process exits (``main``'s ``sys.exit``, or minus the signal that killed it).
    exit_code: int
    #: The delay a ``RetryTask`` carried, in seconds.
    retry_delay_seconds: float | None = None
    #: The reason a ``RetryTask`` carried.
    retry_reason: str | None = None
    #: How many times ``task.on_kill()`` ran (the SIGTERM handler of ``_run_task_and_map_outcome``).
    on_kill_calls: int = 0
    #: Whether ``main`` closed the supervisor channel's socket on its way out (None: not observed).
    channel_closed: bool | None = None
    #: The exit status of the child the task forked and SIGTERMed (``FORKED_CHILD``; None: no child).
    forked_child_exit: int | None = None
    #: The task's state-change callbacks that ran (``STATE_CHANGE_CALLBACKS``' names), in order, each as often as it ran.
    callbacks: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def delivered(self) -> tuple[Send, ...]:
        """The frames that got through, in order (other requests left out: the supervisor decides nothing on them)."""
        return tuple(s.frame for s in self.sent if s.delivered and isinstance(s.frame, Send))

    @property
    def failed_requests(self) -> tuple[str, ...]:
        """The non-terminal requests (and SkipDownstreamTasks) whose send raised."""
        return tuple(s.frame.frame for s in self.sent if not s.delivered and s.frame.frame not in TERMINAL_FRAMES)

    @property
    def terminal(self) -> Send | None:
        """The terminal frame the runtime tried to send, if any (delivered or not)."""
        frames = [s.frame for s in self.sent if s.frame.frame in TERMINAL_FRAMES]
        return frames[-1] if frames else None

    def to_lines(self) -> list[str]:
        lines = [
            "sent=" + (", ".join(map(str, self.sent)) or "nothing"),
            f"state={self.state}",
            f"exit_code={self.exit_code}",
        ]
        if self.retry_delay_seconds is not None or self.retry_reason is not None:
            lines.append(f"retry_delay_seconds={self.retry_delay_seconds} retry_reason={self.retry_reason}")
        if self.on_kill_calls:
            lines.append(f"on_kill_calls={self.on_kill_calls}")
        if self.channel_closed is False:
            lines.append("channel_closed=false")
        if self.forked_child_exit is not None:
            lines.append(f"forked_child_exit={self.forked_child_exit}")
        if self.callbacks:
            lines.append("callbacks=" + ", ".join(self.callbacks))
        return lines


# -- the Python task runner ----------------------------------------------------------------------

#: What ``main`` exits with: normally 0; ``sys.exit(1)`` when a FAILED / UP_FOR_RETRY terminal frame
#: could not be sent (fail closed) or an ``Exception`` reached ``main`` itself ("Top level error");
#: ``sys.exit(2)`` on a ``KeyboardInterrupt`` that reached it.
EXIT_OK, EXIT_FAIL_CLOSED, EXIT_INTERRUPTED = 0, 1, 2
EXIT_TOP_LEVEL_ERROR = 1
#: Before 1.1.7 (``Release.reschedules_a_startup_without_its_dag``) ``parse`` exits 1 itself on a DAG not found.
EXIT_DAG_NOT_FOUND = 1
#: A process killed by SIGTERM (15), counted as the scenario counts a signal kill: minus the signal's number.
EXIT_KILLED_BY_SIGTERM = -15
#: ``_finalize_task_failure`` keeps the first 500 characters of a policy's reason.
RETRY_REASON_LIMIT = 500
#: The task's callback ``finalize`` runs for the state ``run`` decided (``_run_task_state_change_callbacks``); any other
#: state (deferred, up_for_reschedule, awaiting_input) runs none. These are also the states Airflow's callbacks page
#: names for each ("Invoked when the task succeeds", "... fails", "... is up for retry", "... AirflowSkipException
#: raised"): ``model.runtime_invariants`` asks it of the state the supervisor records.
STATE_CHANGE_CALLBACKS = {SUCCESS: "on_success_callback", FAILED: "on_failure_callback",
                          UP_FOR_RETRY: "on_retry_callback", SKIPPED: "on_skipped_callback"}


class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` leaving ``run`` (the model's stand-in; it never leaves this module)."""


class _Killed(Exception):
    """SIGTERM killing the task's process, which no handler of the runner catches (the model's stand-in)."""


class _Raised(Exception):
    """An ``Exception`` raised by an outcome handler or by the failure path itself, which ``run``
    hands to ``_handle_handler_failure`` (the model's stand-in; it never leaves this module).
    ``never_retry``: it is one of the exceptions that never retry."""

    def __init__(self, never_retry: bool = False):
        super().__init__()
        self.never_retry = never_retry


@attrs.frozen
class _Decision:
    #: The terminal frame to send.
    frame: Send
    #: The state it stands for.
    state: str
    #: A RetryTask's delay, in seconds.
    delay: float | None = None
    #: A RetryTask's reason.
    reason: str | None = None


def _failed() -> _Decision:
    return _Decision(Send("TaskState", FAILED), FAILED)


def finalize_task_failure(context: RunContext, delay: int | None = None, reason: str | None = None,
                          delay_is_timedelta: bool = True) -> _Decision:
    """``_finalize_task_failure``: RetryTask (with a policy's delay and reason) iff the server said should_retry.

    A delay that is not a ``timedelta`` raises there (``.total_seconds()``), after the failure metrics
    were counted; only when it is used, that is, when should_retry.
    """
    if context.should_retry:
        if delay is not None and not delay_is_timedelta:
            raise _Raised()
        return _Decision(Send("RetryTask"), UP_FOR_RETRY,
                         None if delay is None else float(delay),
                         None if reason is None else reason[:RETRY_REASON_LIMIT])
    return _failed()


def handle_current_task_failed(context: RunContext, policy: Policy | None) -> _Decision:
    """``_handle_current_task_failed``: the policy's FAIL wins; RETRY only overrides delay and reason.

    A policy that raises an ``Exception`` is logged and ignored (``_evaluate_retry_policy``);
    one interrupted by ``KeyboardInterrupt`` lets it escape.
    """
    if policy is None or policy.action in ("default", "raises"):
        return finalize_task_failure(context)
    if policy.action == "interrupted":
        raise _Interrupted()
    if policy.action == "fail":
        return _failed()
    return finalize_task_failure(context, policy.delay, policy.reason, delay_is_timedelta=policy.action == "retry")


def handle_handler_failure(run: RuntimeRun, error: _Raised, release: Release = SPECIFIED) -> _Decision:
    """``_handle_handler_failure``: an exception that never retries stays FAILED; any other goes through
    ``_handle_current_task_failed``, and if that raises too, the try fails closed as plain FAILED.
    (Since 1.3.1, ``Release.catches_a_failing_outcome_handler``; ``python_runtime`` says what happens before.)"""
    if error.never_retry:
        return _failed()
    try:
        return _fails_the_task(run, release)
    except _Raised:
        return _failed()


def impossible_on(run: RuntimeRun, release: Release = SPECIFIED) -> str | None:
    """Why ``release`` cannot have this try (None: it can): a task with a retry policy before 1.3.0
    (``Release.has_retry_policies``), or one raising ``TaskAwaitingInput``, which came with ``AwaitInputTask``
    (``Release.terminal_frames``). ``python_runtime`` still answers such a try (as if it had no policy; sending an
    AwaitInputTask); whoever pairs it with a real side of that release leaves it out."""
    if run.policy is not None and not release.has_retry_policies:
        return f"task-sdk {release} has no retry policies (they came in 1.3.0)"
    if run.outcome == "TaskAwaitingInput" and "AwaitInputTask" not in release.terminal_frames:
        return f"task-sdk {release} has no TaskAwaitingInput (it came in 1.3.0)"
    return None


def consulted_policy(run: RuntimeRun, release: Release = SPECIFIED) -> Policy | None:
    """The retry policy the runner consults on a failure: the task's, where the release has retry policies
    (``Release.has_retry_policies``); none before, where no task can have one."""
    return run.policy if release.has_retry_policies else None


def _fails_the_task(run: RuntimeRun, release: Release = SPECIFIED) -> _Decision:
    """An exception of the try's own code (or of a send it makes) caught by ``_run_task_and_map_outcome``'s
    failure handlers: ``_handle_current_task_failed``, whose own error goes on to ``run``."""
    return handle_current_task_failed(run.context, consulted_policy(run, release))


def run_task_and_map_outcome(run: RuntimeRun, send, release: Release = SPECIFIED) -> _Decision:
    """``_run_task_and_map_outcome``: the XCom keys cleared, the task executed, its map index rendered,
    its outcome mapped to a terminal frame, as ``release``'s runner does it.

    ``send`` is the channel: it returns whether the request got through. A send that raises before
    the task runs (GetXCom, DeleteXCom) or after it (SetRenderedMapIndex, which replaces the task's
    own exception when it fails) is a failure of the task, caught by ``except BaseException``. A
    handler that raises (SkipDownstreamTasks unsendable, a trigger that cannot be serialized) raises
    ``_Raised`` for ``run``.

    Where releases differ: a SIGTERM with no handler of the runner to catch it (before 1.0.4) kills the
    process (``_Killed``); the rendered map index is sent only since 1.2.0; before 1.2.0 a deferral whose
    kwargs serde cannot take defers all the same (DeferTask writes such a value as its text).
    """
    if XCOM_KEYS_TO_CLEAR in run.features:
        if not (send(Request("GetXCom")) and send(Request("DeleteXCom"))):
            return _fails_the_task(run, release)
    if (EXECUTION_TIMEOUT in run.features and release.announces_the_execution_timeout
            and not send(Request("SetExecutionTimeout"))):
        return _fails_the_task(run, release)  # before execute: its map index label was never set, nothing is rendered
    if SIGTERM in run.features and not release.calls_on_kill_on_sigterm:
        raise _Killed()
    if EXECUTION_TIMEOUT in run.features:
        # AirflowTaskTimeout is a BaseException only: the map index is not re-rendered after it.
        return _fails_the_task(run, release)
    outcome = run.outcome
    if (MAP_INDEX_TEMPLATE in run.features and release.sends_the_rendered_map_index
            and outcome in (RETURN, *EXCEPTION_OUTCOMES) and not send(Request("SetRenderedMapIndex"))):
        return _fails_the_task(run, release)
    if outcome == RETURN:
        return _Decision(Send("SucceedTask"), SUCCESS)
    if outcome == "DownstreamTasksSkipped":
        if send(Send("SkipDownstreamTasks")):
            return _Decision(Send("SucceedTask"), SUCCESS)
        raise _Raised()
    if outcome == "TaskDeferredUnserializable" and not release.serializes_deferral_kwargs:
        return _Decision(Send("DeferTask"), DEFERRED)
    if outcome in HANDLER_RAISES:
        raise _Raised(never_retry=outcome in NEVER_RETRIED_FAILURES)
    if outcome in TRIGGER_DAG_RUN_OUTCOMES:
        return handle_trigger_dag_run(outcome, send)
    if outcome == "TaskDeferred":
        return _Decision(Send("DeferTask"), DEFERRED)
    if outcome == "TaskAwaitingInput":
        return _Decision(Send("AwaitInputTask"), AWAITING_INPUT)
    if outcome in ("AirflowSkipException", "AirflowSkipException()"):
        return _Decision(Send("TaskState", SKIPPED), SKIPPED)
    if outcome == "AirflowRescheduleException":
        return _Decision(Send("RescheduleTask"), UP_FOR_RESCHEDULE)
    if outcome in NEVER_RETRIED_FAILURES:
        return _failed()
    return _fails_the_task(run, release)


def handle_trigger_dag_run(outcome: str, send) -> _Decision:
    """``_handle_trigger_dag_run``, fire and forget: TriggerDagRun; a run that exists already is SKIPPED with
    ``skip_when_already_exists``, else FAILED; a new one has its id pushed (SetXCom) and the task succeeds.
    A send that raises is the handler raising."""
    if not send(Request("TriggerDagRun")):
        raise _Raised()
    if outcome == "DagRunTriggerException(exists,skip)":
        return _Decision(Send("TaskState", SKIPPED), SKIPPED)
    if outcome == "DagRunTriggerException(exists)":
        return _failed()
    if not send(Request("SetXCom")):
        raise _Raised()
    return _Decision(Send("SucceedTask"), SUCCESS)


def task_runs(run: RuntimeRun, release: Release = SPECIFIED) -> bool:
    """Whether the task's ``execute`` is reached: startup found the DAG, the log channel (asked for by
    ``release``'s runner, ``Release.asks_for_the_log_channel_after_fork_exec``) and the XCom clearing went
    through."""
    asks = FORK_EXEC in run.features and release.asks_for_the_log_channel_after_fork_exec
    requests = [Request("ResendLoggingFD")] if asks else []
    if XCOM_KEYS_TO_CLEAR in run.features:
        requests += [Request("GetXCom"), Request("DeleteXCom")]
    return STARTUP_RESCHEDULE not in run.features and all(delivers(run.comms, r) for r in requests)


def executes(run: RuntimeRun, release: Release = SPECIFIED) -> bool:
    """Whether the task's ``execute`` is entered: the task runs (``task_runs``) and, where ``release``'s runner first
    tells the supervisor the task's execution timeout (``Release.announces_the_execution_timeout``), that got through."""
    announces = EXECUTION_TIMEOUT in run.features and release.announces_the_execution_timeout
    return task_runs(run, release) and not (announces and not delivers(run.comms, Request("SetExecutionTimeout")))


def reached_outcome(run: RuntimeRun) -> str | None:
    """The outcome the task's ``execute`` ends by: the run's, or None when its execution timeout runs out first."""
    return None if EXECUTION_TIMEOUT in run.features else run.outcome


def python_runtime(run: RuntimeRun, release: Release = SPECIFIED) -> RuntimeObservation:
    """``task_runner.main`` for one try: startup, ``run``, ``finalize``, the exit, as ``release``'s runner
    does them (1.3.2, the specified release, unless told). The channel is closed on the way out, whatever
    happened (since 1.0.3: ``Release.closes_the_channel_on_exit``).

    Startup first: started by fork+exec, ``main`` asks for the log channel (ResendLoggingFD, 1.2.2-1.3.x);
    a DAG not found yet makes ``parse`` reschedule, and ``main`` sends RescheduleTask and exits 0 without
    running the task (before 1.1.7 ``parse`` exits 1 itself). An ``Exception`` there (the channel broke)
    reaches ``main``: exit 1.

    ``run`` (with ``_handle_handler_failure`` for a handler that raised) sends the terminal frame from
    its ``finally``; if that send raises and the state is FAILED or UP_FOR_RETRY it marks the TI so
    that ``main`` exits 1 after ``finalize`` (fail closed). Any other state whose send failed still
    exits 0. A ``KeyboardInterrupt`` escaping ``run`` sends nothing more and ``main`` exits 2.
    A SIGTERM while the task runs calls ``on_kill`` once; one to a child the task forked is ignored there. An
    execution timeout that runs out calls ``on_kill`` once more (since 1.0.2), and the task fails by it. ``finalize`` runs the
    callback of the state ``run`` decided (``STATE_CHANGE_CALLBACKS``), on every path where ``run`` returned one.

    Before 1.3.1 a handler that raised, and before 1.2.2 a terminal send that raised, take their error out
    of ``run``: nothing more is sent, ``run`` decides no state, and ``main`` exits 1 (a top-level error).
    Before 1.0.4 a SIGTERM kills the task's process, and a child it forked (exit -15). A retry policy is
    consulted only since 1.3.0 (``consulted_policy``); a try with one, on an earlier release, is not one
    that release can have (the bindings refuse it), and the model answers it as if the task had none.
    """
    sent: list[Sent] = []

    def send(request: Send | Request) -> bool:
        ok = delivers(run.comms, request)
        sent.append(Sent(request, ok))
        return ok

    runs = executes(run, release)
    killed = SIGTERM in run.features and not release.calls_on_kill_on_sigterm
    lives = runs and not killed  # through execute, to its end

    def ended(state: str | None, exit_code: int, decision: _Decision | None = None) -> RuntimeObservation:
        return RuntimeObservation(
            tuple(sent), state, exit_code,
            decision.delay if decision else None, decision.reason if decision else None,
            on_kill_calls=int(SIGTERM in run.features and lives)
            + int(EXECUTION_TIMEOUT in run.features and lives and release.calls_on_kill_on_execution_timeout),
            # a process the signal killed (``_Killed``) never reaches main's ``finally``, where the socket is closed
            channel_closed=release.closes_the_channel_on_exit and exit_code != EXIT_KILLED_BY_SIGTERM,
            forked_child_exit=_forked_child_exit(release) if FORKED_CHILD in run.features and lives else None,
            # finalize runs once run has returned a state (main's exits before it, ``ended(None, ...)``, skip it)
            callbacks=(STATE_CHANGE_CALLBACKS[state],) if state in STATE_CHANGE_CALLBACKS else (),
        )

    if (FORK_EXEC in run.features and release.asks_for_the_log_channel_after_fork_exec
            and not send(Request("ResendLoggingFD"))):
        return ended(None, EXIT_TOP_LEVEL_ERROR)
    if STARTUP_RESCHEDULE in run.features:
        if not release.reschedules_a_startup_without_its_dag:
            return ended(None, EXIT_DAG_NOT_FOUND)
        return ended(None, EXIT_OK if send(Send("RescheduleTask")) else EXIT_TOP_LEVEL_ERROR)
    try:
        try:
            decision = run_task_and_map_outcome(run, send, release)
        except _Raised as error:
            if not release.catches_a_failing_outcome_handler:
                return ended(None, EXIT_TOP_LEVEL_ERROR)
            decision = handle_handler_failure(run, error, release)
    except _Interrupted:
        return ended(None, EXIT_INTERRUPTED)
    except _Killed:
        return ended(None, EXIT_KILLED_BY_SIGTERM)
    delivered = send(decision.frame)
    if not delivered and not release.fails_closed_on_an_unsent_outcome:
        return ended(None, EXIT_TOP_LEVEL_ERROR)
    fail_closed = not delivered and decision.state in (FAILED, UP_FOR_RETRY)
    return ended(decision.state, EXIT_FAIL_CLOSED if fail_closed else EXIT_OK, decision)


def _forked_child_exit(release: Release) -> int:
    """How the child the task forked leaves after its SIGTERM: it exits 0 where it inherited the runner's
    handler (which does nothing outside the runner's own process), and dies of the signal before 1.0.4."""
    return 0 if release.calls_on_kill_on_sigterm else EXIT_KILLED_BY_SIGTERM


# -- composition with the supervisor ----------------------------------------------------------


def to_scenario(context: RunContext, observed: RuntimeObservation) -> Scenario:
    """The attempt the supervisor lives: the frames that got through (carrying no rendered map index: the runtimes
    modelled here run tasks that are not mapped), then the runtime's exit."""
    return Scenario(context, observed.delivered, observed.exit_code, rendered_map_index=None)


def compose(context: RunContext, observed: RuntimeObservation) -> Observation:
    """What the supervisor (``model.supervisor.run``) records of a runtime's try."""
    return supervisor.run(to_scenario(context, observed))
