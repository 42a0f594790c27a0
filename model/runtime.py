"""The runtime's side: for a task outcome and a run context, the frames it sends and its exit code.

Two runtimes are modelled.

- The Python task runner of apache-airflow-task-sdk 1.3.2 (``airflow.sdk.execution_time.task_runner``),
  as it is: ``python_runtime(run)`` follows ``main`` → ``run`` → ``_run_task_and_map_outcome`` →
  ``_handle_current_task_failed`` / ``_handle_handler_failure`` → ``_finalize_task_failure``, with
  the task's retry policy (``_evaluate_retry_policy``) and the fail-closed exit when the terminal
  frame cannot be sent.
- A coordinator-mode runtime (the Go SDK's ``pkg/execution/task_runner.go`` as the seed,
  apache/airflow#67797, describes it): ``coordinator_runtime(run, retry_branch=...)``. With
  ``retry_branch=False`` it is the seed's bug (every failure is ``TaskState(failed)``); with
  ``retry_branch=True`` it does the seed's four steps right.

Both answer a ``RuntimeObservation``: every frame handed to the supervisor channel, in order,
with whether it got through; the state the runtime decided; and the process exit code. The
frames are ``model.scenario.Send`` values, so ``to_scenario`` turns a runtime's answer into the
``Scenario`` the supervisor lives (``model.supervisor.run``), and ``compose`` does both.
"""

from __future__ import annotations

import attrs

from model import supervisor
from model.scenario import (
    AWAITING_INPUT,
    DEFERRED,
    FAILED,
    REMOVED,
    SKIPPED,
    SUCCESS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    Observation,
    RunContext,
    Scenario,
    Send,
)

# -- what the task's code does (Python runtime) ----------------------------------------------

#: The task returns normally.
RETURN = "return"
#: Ends handled by ``_run_task_and_map_outcome`` without the failure path.
NON_FAILURE_OUTCOMES = (
    RETURN,
    "AirflowSkipException",
    "DownstreamTasksSkipped",
    "AirflowRescheduleException",
    "TaskDeferred",
    "TaskAwaitingInput",
)
#: Failures that never retry: ``except (AirflowFailException, AirflowSensorTimeout)`` and
#: ``except AirflowTaskTerminated`` build ``TaskState(failed)`` without consulting anything.
NEVER_RETRIED_FAILURES = ("AirflowFailException", "AirflowSensorTimeout", "AirflowTaskTerminated")
#: Failures routed through ``_handle_current_task_failed`` (retry policy, then should_retry).
RETRYABLE_FAILURES = (
    "AirflowException",
    "AirflowTaskTimeout",
    "AirflowRuntimeError",
    "SystemExit(0)",
    "SystemExit(1)",
    "ValueError",  # any other exception
    "KeyboardInterrupt",
    # The outcome handler itself raises: ``_defer_task`` cannot serialize the trigger kwargs
    # (TypeError), so ``run`` hands it to ``_handle_handler_failure``.
    "TaskDeferredUnserializable",
)
FAILURE_OUTCOMES = NEVER_RETRIED_FAILURES + RETRYABLE_FAILURES
PYTHON_OUTCOMES = NON_FAILURE_OUTCOMES + FAILURE_OUTCOMES

# -- the task's retry policy (``airflow.sdk.definitions.retry_policy``) -----------------------

#: ``RetryAction`` answers, plus a policy that raises an ``Exception`` (``_evaluate_retry_policy``
#: logs it and falls back to the default) and one interrupted by Ctrl-C (``KeyboardInterrupt`` is
#: not an ``Exception``: it escapes ``run``, and ``main`` exits 2).
POLICY_ACTIONS = ("default", "fail", "retry", "raises", "interrupted")


@attrs.frozen
class Policy:
    """The task's ``retry_policy``: what ``evaluate`` answers (``delay``/``reason`` only for ``retry``)."""

    action: str = attrs.field(validator=attrs.validators.in_(POLICY_ACTIONS))
    delay: int | None = None
    reason: str | None = None

    def __attrs_post_init__(self):
        if self.action != "retry" and (self.delay is not None or self.reason is not None):
            raise ValueError(f"only a retry decision carries a delay or reason, not {self.action}")
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
    """One try of a Python task: the run context, what the task's code does, its policy, the channel."""

    context: RunContext = RunContext()
    outcome: str = attrs.field(default=RETURN, validator=attrs.validators.in_(PYTHON_OUTCOMES))
    policy: Policy | None = None
    comms: str = attrs.field(default="ok", validator=attrs.validators.in_(COMMS_MODES))

    def to_text(self) -> str:
        """One line: ``try_number=1 max_tries=1 should_retry=true; task raises AirflowException; policy fail; comms ok``."""
        return "; ".join([
            _context_text(self.context),
            "task returns" if self.outcome == RETURN else f"task raises {self.outcome}",
            f"policy {self.policy.to_text() if self.policy else 'none'}",
            f"comms {self.comms}",
        ])

    @classmethod
    def from_text(cls, text: str) -> RuntimeRun:
        """Parse ``to_text``'s form; ``ValueError`` names the part that is wrong."""
        parts = [p.strip() for p in text.split(";") if p.strip()]
        context = Scenario.from_text(f"{parts.pop(0)}; exit 0").context if parts and "=" in parts[0].split()[0] else RunContext()
        fields: dict = {"context": context}
        for part in parts:
            verb, *words = part.split()
            if verb == "task" and words == ["returns"]:
                fields["outcome"] = RETURN
            elif verb == "task" and len(words) == 2 and words[0] == "raises":
                fields["outcome"] = words[1]
            elif verb == "policy" and words:
                fields["policy"] = None if words == ["none"] else _parse_policy(words, part)
            elif verb == "comms" and len(words) == 1:
                fields["comms"] = words[0]
            else:
                raise ValueError(f"unknown part {part!r}; parts are: task returns | task raises NAME, "
                                 "policy none|ACTION [delay=N] [reason=WORD], comms MODE")
        try:
            return cls(**fields)
        except ValueError as e:
            raise ValueError(f"bad runtime run {text!r}: {e}") from None


def _context_text(c: RunContext) -> str:
    return f"try_number={c.try_number} max_tries={c.max_tries} should_retry={str(c.should_retry).lower()}"


def _parse_policy(words: list[str], part: str) -> Policy:
    action, *rest = words
    kwargs: dict = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if key == "delay" and sep:
            kwargs["delay"] = int(value)
        elif key == "reason" and sep:
            kwargs["reason"] = value
        else:
            raise ValueError(f"bad policy word {word!r} in {part!r}")
    return Policy(action, **kwargs)


@attrs.frozen
class Sent:
    """One frame handed to the supervisor channel, and whether the send got through."""

    frame: Send
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

    sent: tuple[Sent, ...]
    state: str | None
    exit_code: int
    retry_delay_seconds: float | None = None
    retry_reason: str | None = None

    @property
    def delivered(self) -> tuple[Send, ...]:
        return tuple(s.frame for s in self.sent if s.delivered)

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
        return lines


# -- the Python task runner ----------------------------------------------------------------------

#: What ``main`` exits with: normally 0; ``sys.exit(1)`` when a FAILED / UP_FOR_RETRY terminal frame
#: could not be sent (fail closed); ``sys.exit(2)`` on a ``KeyboardInterrupt`` that reached it.
EXIT_OK, EXIT_FAIL_CLOSED, EXIT_INTERRUPTED = 0, 1, 2
#: ``_finalize_task_failure`` keeps the first 500 characters of a policy's reason.
RETRY_REASON_LIMIT = 500


class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` leaving ``run`` (the model's stand-in; it never leaves this module)."""


@attrs.frozen
class _Decision:
    frame: Send
    state: str
    delay: float | None = None
    reason: str | None = None


def _failed() -> _Decision:
    return _Decision(Send("TaskState", FAILED), FAILED)


def finalize_task_failure(context: RunContext, delay: int | None = None, reason: str | None = None) -> _Decision:
    """``_finalize_task_failure``: RetryTask (with a policy's delay and reason) iff the server said should_retry."""
    if context.should_retry:
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
    return finalize_task_failure(context, policy.delay, policy.reason)


def run_task_and_map_outcome(run: RuntimeRun, send) -> _Decision:
    """``_run_task_and_map_outcome`` (and ``run``'s ``except Exception`` → ``_handle_handler_failure``).

    ``send`` is the channel: it returns whether the frame got through. The only send before the
    terminal one is ``SkipDownstreamTasks``; if it fails, the handler raised, and the failure path
    decides (``_handle_handler_failure``), with the retry policy consulted on the channel's error.
    """
    outcome = run.outcome
    if outcome == RETURN:
        return _Decision(Send("SucceedTask"), SUCCESS)
    if outcome == "DownstreamTasksSkipped":
        if send(Send("SkipDownstreamTasks")):
            return _Decision(Send("SucceedTask"), SUCCESS)
        return handle_current_task_failed(run.context, run.policy)
    if outcome == "TaskDeferred":
        return _Decision(Send("DeferTask"), DEFERRED)
    if outcome == "TaskAwaitingInput":
        return _Decision(Send("AwaitInputTask"), AWAITING_INPUT)
    if outcome == "AirflowSkipException":
        return _Decision(Send("TaskState", SKIPPED), SKIPPED)
    if outcome == "AirflowRescheduleException":
        return _Decision(Send("RescheduleTask"), UP_FOR_RESCHEDULE)
    if outcome in NEVER_RETRIED_FAILURES:
        return _failed()
    return handle_current_task_failed(run.context, run.policy)


def python_runtime(run: RuntimeRun) -> RuntimeObservation:
    """``task_runner.main`` for one try whose startup succeeded: ``run``, ``finalize``, the exit.

    ``run`` sends the terminal frame from its ``finally``; if that send raises and the state is
    FAILED or UP_FOR_RETRY it marks the TI so that ``main`` exits 1 after ``finalize`` (fail
    closed). Any other state whose send failed still exits 0. A ``KeyboardInterrupt`` escaping
    ``run`` sends nothing more and ``main`` exits 2.
    """
    sent: list[Sent] = []

    def send(frame: Send) -> bool:
        ok = delivers(run.comms, frame)
        sent.append(Sent(frame, ok))
        return ok

    try:
        decision = run_task_and_map_outcome(run, send)
    except _Interrupted:
        return RuntimeObservation(tuple(sent), None, EXIT_INTERRUPTED)
    delivered = send(decision.frame)
    fail_closed = not delivered and decision.state in (FAILED, UP_FOR_RETRY)
    return RuntimeObservation(
        tuple(sent), decision.state, EXIT_FAIL_CLOSED if fail_closed else EXIT_OK,
        decision.delay, decision.reason,
    )


# -- coordinator-mode runtimes (the seed) --------------------------------------------------------

#: What a coordinator-mode task does: returns, returns an error, panics; or the runtime cannot
#: start it (the TI id in StartupDetails is not a UUID; no task is registered under its task_id).
COORDINATOR_OUTCOMES = ("success", "error", "panic", "bad_ti_id", "unknown_task")
COORDINATOR_FAILURES = ("error", "panic")


@attrs.frozen
class CoordinatorRun:
    """One try of a coordinator-mode task: the run context and what its task does."""

    context: RunContext = RunContext()
    outcome: str = attrs.field(default="success", validator=attrs.validators.in_(COORDINATOR_OUTCOMES))

    def to_text(self) -> str:
        """One line: ``try_number=1 max_tries=1 should_retry=true; task error``."""
        return f"{_context_text(self.context)}; task {self.outcome}"

    @classmethod
    def from_text(cls, text: str) -> CoordinatorRun:
        head, sep, tail = text.partition(";")
        words = tail.split()
        if not sep or len(words) != 2 or words[0] != "task":
            raise ValueError(f"a coordinator run reads 'CONTEXT; task OUTCOME', not {text!r}")
        return cls(Scenario.from_text(f"{head}; exit 0").context, words[1])


def coordinator_runtime(run: CoordinatorRun, retry_branch: bool = True) -> RuntimeObservation:
    """A coordinator-mode runtime's answer, then exit 0.

    As the seed reads ``go-sdk/pkg/execution/task_runner.go``: success → SucceedTask; an unknown
    task → TaskState(removed); a malformed TI id → TaskState(failed); a task error or panic →
    TaskState(failed). The seed's fix adds the retry branch: an error or panic → RetryTask when
    ``ti_context.should_retry``, else TaskState(failed) (as ``_finalize_task_failure``).
    """
    if run.outcome == "success":
        frame, state = Send("SucceedTask"), SUCCESS
    elif run.outcome == "unknown_task":
        frame, state = Send("TaskState", REMOVED), REMOVED
    elif run.outcome in COORDINATOR_FAILURES and retry_branch and run.context.should_retry:
        frame, state = Send("RetryTask"), UP_FOR_RETRY
    else:
        frame, state = Send("TaskState", FAILED), FAILED
    return RuntimeObservation((Sent(frame),), state, EXIT_OK)


def seed_coordinator_runtime(run: CoordinatorRun) -> RuntimeObservation:
    """The seed's bug (apache/airflow#67797): no retry branch."""
    return coordinator_runtime(run, retry_branch=False)


# -- composition with the supervisor ----------------------------------------------------------


def to_scenario(context: RunContext, observed: RuntimeObservation) -> Scenario:
    """The attempt the supervisor lives: the frames that got through, then the runtime's exit."""
    return Scenario(context, observed.delivered, observed.exit_code)


def compose(context: RunContext, observed: RuntimeObservation) -> Observation:
    """What the supervisor (``model.supervisor.run``) records of a runtime's try."""
    return supervisor.run(to_scenario(context, observed))


def decided_failure(outcome: str) -> bool:
    """Whether a Python task outcome is a failure of the task (the runtime must not report success)."""
    return outcome in FAILURE_OUTCOMES


def coordinator_attempt(run: CoordinatorRun, retry_branch: bool = True) -> Observation:
    """What a coordinator-mode try ends as, end to end: the coordinator runtime, then the supervisor, in the model."""
    return compose(run.context, coordinator_runtime(run, retry_branch))
