"""One task instance's life across tries, and what the design promises of it.

The server queues the TI with ``max_tries`` = the task's ``retries``. Each try: the server starts
it (``RunContext.from_server``: try_number, max_tries, should_retry by the server's rule), a runtime
meets the task's outcome, the supervisor records the end; the server row then says what comes next:

- UP_FOR_RETRY: the scheduler queues the next try (``Row.next_try``: try_number + 1);
- DEFERRED, UP_FOR_RESCHEDULE, AWAITING_INPUT: the same try is resumed later (try_number unchanged);
- anything else (SUCCESS, FAILED, SKIPPED, REMOVED, a row the server took away, or a row wrongly
  left RUNNING): the life is over.

A try may also be ``host lost`` (``host_lost``): the worker host dies while the task runs, the supervisor with
it, so nothing more is reported; the row stays RUNNING until the scheduler's task-instance heartbeat timeout
fails it (UP_FOR_RETRY while it may retry, else FAILED), and the life goes on from there.

``Life`` is pure and frozen; ``LIFECYCLE_INVARIANTS`` are ``(life) -> violations``. A life's text
(``retries=N | TRY | ...``) is read by ``parse_life``, each try by its own language's parser, and ``kind_of`` says which
language any run's text is in: the one place a run's text is read.
"""

from __future__ import annotations

import attrs

from model.frozen import replace
from model.invariants import Violation
from model.release import SPECIFIED, Release
from model.coordinator import CoordinatorRun
from model.runtime import RuntimeRun
from model.scenario import (
    AWAITING_INPUT,
    DEFERRED,
    FAILED,
    NO_FINAL_STATE,
    QUEUED,
    RUNNING,
    SETTINGS,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    USER_CLEARS,
    ApiCall,
    Observation,
    RunContext,
    UserAction,
)
from model.server import Row, Server

#: Row states after which the same try is resumed.
RESUMED = frozenset({DEFERRED, UP_FOR_RESCHEDULE, AWAITING_INPUT})
#: A life's try in which the worker host dies while the task runs (``host_lost``).
HOST_LOST = "host lost"


@attrs.frozen
class Try:
    """One try (or resumption) as lived: its context, what the runtime met, what was recorded.

    ``retryable_failure``: the task failed and nothing (the exception, a retry policy's FAIL) asked
    for no retry, or its worker host was lost (``lost``), so the design says: UP_FOR_RETRY while
    should_retry, else FAILED.
    """

    #: The run context the server handed this try.
    context: RunContext
    #: What the try met, in the run language a replay reads.
    met: str
    #: Whether the task failed in a way the design retries while should_retry (or its worker host was lost).
    retryable_failure: bool
    #: What the supervisor observed of the try.
    observation: Observation
    #: What the runtime did, in words (empty: not shown).
    runtime: str = ""
    #: The server's own row after the try, as the scheduler then left it (a life on a real server's
    #: row, or a try whose host was lost: the scheduler's heartbeat timeout and its queueing decide);
    #: None: the row moves on by the model's rule (``Life.record``).
    row_after: Row | None = None
    #: What others did to the task instance while the try ran (``model.scenario.UserAction``: a user's mark, clear
    #: or delete, the scheduler's heartbeat timeout): the row is then their decision, not the try's.
    acted: tuple[UserAction, ...] = attrs.field(default=(), converter=tuple)

    @property
    def lost(self) -> bool:
        """Whether the worker host died in this try (``HOST_LOST``): nothing was reported, the scheduler ended it."""
        return self.met == HOST_LOST

    def to_text(self) -> str:
        o = self.observation
        c = self.context
        answer = f"{self.runtime} → " if self.runtime else ""
        row = o.row + (f" (gone {o.row_gone})" if o.row_gone else "")
        return (f"try {c.try_number} (max_tries={c.max_tries} should_retry={str(c.should_retry).lower()}): "
                f"{self.met} → {answer}final_state={o.final_state}, row {row}")


@attrs.frozen
class Life:
    """The TI row across tries, and the tries made."""

    #: The task's ``retries``: the first try's ``max_tries``.
    retries: int
    #: The server row now.
    row: Row
    #: The tries made so far, resumptions included, in order.
    tries: tuple[Try, ...] = ()

    @classmethod
    def new(cls, retries: int) -> Life:
        return cls(retries, Row(QUEUED, 1, retries))

    @property
    def over(self) -> bool:
        return self.row.state != QUEUED or self.row.gone is not None

    def next_context(self) -> RunContext:
        """``PATCH /run`` on the queued row: the run context the server hands this try."""
        if self.over:
            raise ValueError(f"the life is over: the row is {self.row.state}")
        return RunContext.from_server(self.row.try_number, self.row.max_tries)

    def record(self, tried: Try) -> Life:
        """The row after one try, by what the server holds at its end (or the server's own row, when the
        try carries it: then the server's try accounting is what the invariants check)."""
        o = tried.observation
        if tried.row_after is not None:
            return replace(self, row=replace(tried.row_after, gone=o.row_gone), tries=(*self.tries, tried))
        row = replace(self.row, state=o.row, gone=o.row_gone)
        if o.row_gone is None and o.row == UP_FOR_RETRY:
            row = row.next_try()
        elif o.row_gone is None and o.row in RESUMED:
            row = replace(row, state=QUEUED)
        return replace(self, row=row, tries=(*self.tries, tried))

    @property
    def tries_made(self) -> int:
        return len({t.context.try_number for t in self.tries})

    def to_text(self) -> str:
        """What the tries met, in the form a replay reads: ``retries=1 | task error | task success``."""
        return " | ".join([f"retries={self.retries}", *(t.met for t in self.tries)])

    def to_lines(self) -> list[str]:
        return [f"retries={self.retries}", *(t.to_text() for t in self.tries),
                f"row at the end: {self.row.state}, try_number={self.row.try_number}"]


def host_lost(context: RunContext, release: Release = SPECIFIED) -> Try:
    """The try of ``context`` in which the worker host dies while the task runs, under ``release``'s server.

    The supervisor started it (``PATCH .../run``: the row RUNNING, the run context handed out) and died with its task
    process: no exit is seen, no final state decided, nothing more is called. The row stays RUNNING until the
    scheduler's task-instance heartbeat timeout strikes it (``model.server.Server.heartbeat_timeout``: UP_FOR_RETRY,
    the try archived, while the task may retry, else FAILED), and the scheduler then queues it if it may
    (``Server.requeue``): the try's ``row_after``. Its observation's row is the row the heartbeat timeout left.
    """
    started, status = Server.queued(context, release=release).start()
    struck = started.heartbeat_timeout()
    observation = Observation(None, NO_FINAL_STATE, (ApiCall("start", status),), (), struck.row.state)
    return Try(started.context or context, HOST_LOST, True, observation, "the host died: nothing reported",
               struck.requeue().row)


def _recorded(t: Try) -> dict[str, str]:
    """Where a try's end is recorded: the supervisor's final state and the server row, the row unless someone acted on
    it (then it is their decision, as ``model.invariants`` judges an attempt); for a try whose host was lost (no
    supervisor left to record anything), the row the scheduler's heartbeat timeout left."""
    o = t.observation
    if t.lost:
        return {"server row": o.row}
    return {"final_state": o.final_state} if t.acted else {"final_state": o.final_state, "server row": o.row}


def _tries_since_the_last_clear(life: Life) -> int:
    """The tries made after the last try a user cleared (all of them, if none was): clearing a task instance gives it
    its retries again (``clear_task_instances``: ``max_tries`` the try that ran plus the task's retries)."""
    cleared = [t.context.try_number for t in life.tries if any(a.action == USER_CLEARS for a in t.acted)]
    return len({t.context.try_number for t in life.tries if not cleared or t.context.try_number > cleared[-1]})


def tries_within_budget(life: Life):
    """No more than max_tries + 1 tries (retries + the first), counted from the last clear: a user who clears a task
    instance gives it its retries again.

    Intent: BaseOperator retries (the retries performed before failing the task); tasks.rst (a retry policy cannot
    extend past the configured maximum); apache/airflow#73889 (amoghrajesh: a cleared TI's retry state is cleared).
    """
    made = _tries_since_the_last_clear(life)
    if made > life.retries + 1:
        since = "" if made == life.tries_made else " since the last clear"
        return (Violation("tries_within_budget", f"{made} tries made{since} with retries={life.retries}"),)
    return ()


def _failing_tries_that_did_not_end(life: Life, name: str, retries_left: bool, expected: str):
    """A violation of ``name`` for each failing try with (or without) retries left not recorded ``expected``."""
    left = "with retries left" if retries_left else "with no retries left"
    return tuple(
        Violation(name, f"try {t.context.try_number} of max_tries={t.context.max_tries} "
                        f"{'was lost' if t.lost else 'failed'} {left}; {where} is {state}, expected {expected}")
        for t in life.tries
        if t.retryable_failure and t.context.should_retry == retries_left and t.observation.row_gone is None
        for where, state in _recorded(t).items()
        if state != expected
    )


def last_failing_try_ends_failed(life: Life):
    """A failing try with no retries left ends FAILED, never UP_FOR_RETRY.

    A try whose worker host was lost counts as failing, its row judged (nothing else records it).

    Intent: BaseOperator retries (the retries performed before failing the task); tasks.rst (failed: the task had an
    error during execution; a task instance whose heartbeat timed out, its worker gone, is marked failed or retried
    if it has available retries); [scheduler] task_instance_heartbeat_timeout (the scheduler will mark the task
    instance as failed and will re-schedule the task).
    """
    return _failing_tries_that_did_not_end(life, "last_failing_try_ends_failed", False, FAILED)


def failing_try_with_retries_left_ends_up_for_retry(life: Life):
    """A failing try with retries left ends UP_FOR_RETRY (the seed: not FAILED).

    A try whose worker host was lost counts as failing, its row judged (nothing else records it); that its retry is
    queued as the next try is ``try_count_matches_attempts``'.

    Intent: tasks.rst (up_for_retry: failed, with retry attempts left, and will be rescheduled; a task instance whose
    heartbeat timed out, its worker gone, is retried if it has available retries); apache/airflow#67797
    (jason810496: recorded FAILED and never retried is the bug); apache/airflow#55767 (amoghrajesh: a task killed by a
    signal must respect its retries too); [scheduler] task_instance_heartbeat_timeout (the scheduler will mark the
    task instance as failed and will re-schedule the task).
    """
    return _failing_tries_that_did_not_end(life, "failing_try_with_retries_left_ends_up_for_retry", True, UP_FOR_RETRY)


def no_try_leaves_row_running(life: Life):
    """No try leaves the server row RUNNING (unless the server took the TI away).

    Intent: apache/airflow#66574 (potiuk: a TI stuck RUNNING forever blocks downstream tasks);
    update_task_state_if_needed (its comment: finish() reports FAILED, or UP_FOR_RETRY without a RetryTask).
    """
    return tuple(
        Violation("no_try_leaves_row_running",
                  f"try {t.context.try_number} left the row running; the supervisor reported {t.observation.final_state}")
        for t in life.tries
        if t.observation.row == RUNNING and t.observation.row_gone is None
    )


def try_count_matches_attempts(life: Life):
    """Tries are numbered 1, 2, ... (a resumption keeps its number), and the row's try_number counts them:
    the tries made, plus the one queued after an UP_FOR_RETRY.

    Intent: apache/airflow#73554 (ashb: an attempt is its id and its try number, allocated together); tasks.rst
    (up_for_retry: the task will be rescheduled).
    """
    numbers = [t.context.try_number for t in life.tries]
    if any(b - a not in (0, 1) for a, b in zip([1, *numbers], numbers)) or numbers[:1] not in ([], [1]):
        return (Violation("try_count_matches_attempts", f"tries were numbered {numbers}"),)
    queued_next = bool(life.tries) and life.tries[-1].observation.row == UP_FOR_RETRY and not life.row.gone
    if queued_next and life.row.state != QUEUED:
        return (Violation("try_count_matches_attempts",
                          f"try {numbers[-1]} ended up_for_retry and the row is {life.row.state}: no next try queued"),)
    expected = max(1, life.tries_made + (1 if queued_next else 0))
    if life.row.try_number != expected:
        return (Violation("try_count_matches_attempts",
                          f"the row says try_number={life.row.try_number} after {life.tries_made} tries"),)
    return ()


LIFECYCLE_INVARIANTS = (
    tries_within_budget,
    last_failing_try_ends_failed,
    failing_try_with_retries_left_ends_up_for_retry,
    no_try_leaves_row_running,
    try_count_matches_attempts,
)


def life_violations(life: Life, invariants=LIFECYCLE_INVARIANTS) -> tuple[Violation, ...]:
    return tuple(v for check in invariants for v in check(life))


# -- the language of a life -----------------------------------------------------------------------


def kind_of(text: str) -> str:
    """Which kind of run ``text`` is: ``lifecycle``, ``runtime``, ``coordinator`` or ``supervisor``."""
    if "|" in text:
        return "lifecycle"
    parts = [p.strip() for p in text.split(";")]
    if any(p.startswith(("task raises ", "policy ", "comms ")) or p == "task returns" for p in parts):
        return "runtime"
    if any(p.startswith("task ") for p in parts):
        return "coordinator"
    return "supervisor"


_A_TRY = ("a try is a Python task runner's run (task returns|raises NAME; policy ...; comms ...; with FEATURE...), a "
          f"coordinator's (WORLD EVENT; ...; task OUTCOME; overtime), or '{HOST_LOST}'")


def parse_life(text: str) -> tuple[int, str | None, tuple]:
    """``retries=N | TRY | TRY ...`` read: the retries, the kind of its tries (``Pairing.plays``; None when every try
    is ``host lost``, which any pairing plays), and each try as drawn: a ``RuntimeRun`` or ``CoordinatorRun`` whose run
    context is the life's (set as it is lived), or ``HOST_LOST``. Each try is read by its run language's own parser,
    every word of it kept; a try may not set the run context the life hands it. ``ValueError`` names the part that is
    wrong."""
    head, *tries = [p.strip() for p in text.split("|")]
    retries = head.removeprefix("retries=")
    if retries == head or not retries.isdigit():
        raise ValueError(f"a life begins with 'retries=N', N a whole number, not {head!r}")
    if not tries or not all(tries):
        raise ValueError(f"a life has one or more tries after 'retries=N |', none of them empty; {_A_TRY}")
    kinds = {"coordinator" if kind_of(t) == "coordinator" else "runtime" for t in tries if t != HOST_LOST}
    if len(kinds) > 1:
        raise ValueError("a life's tries are all of one runtime's kind (task returns/raises ...; or task "
                         f"success/error/...), '{HOST_LOST}' among either")
    return int(retries), (kinds.pop() if kinds else None), tuple(map(_drawn, tries))


def _drawn(spec: str):
    if spec == HOST_LOST:
        return HOST_LOST
    settings = spec.split(";", 1)[0].strip()
    if settings.split()[0].partition("=")[0] in SETTINGS and any(
            not w.startswith("execution_api_retries=") for w in settings.split()):
        raise ValueError(f"a life's try takes its run context from the life (retries=N and the tries before it), not "
                         f"{settings!r}; only a coordinator try may set execution_api_retries=")
    return CoordinatorRun.from_text(spec) if kind_of(spec) == "coordinator" else RuntimeRun.from_text(spec)
