"""Coordinator-mode runtimes (a language SDK's runtime, launched with ``--comm``/``--logs``) in their supervisor's world.

A *coordinator run* is one try as such a runtime lives it under Airflow's supervisor: the run context the
server hands out (and the client's tries of each request), what the world does while the task runs, the
task's outcome, and what the world does once the supervisor has taken the task's terminal frame while the
runtime still waits for the supervisor's answer. While the task runs the world can arm a fault on the
Execution API call the terminal frame will make, answer heartbeats (a 404, 409 or 410 being a user who
deleted, marked or cleared the TI, which the supervisor answers with SIGTERM to the runtime), and the runtime
may trap SIGTERM; after the frame, the success overtime can run out.

The runtime decides one terminal frame from the outcome and ``ti_context.should_retry``, as the seed
(apache/airflow#67797) and ``runtimes/README.md`` say: success → SucceedTask; no task registered under the
TI's task id → TaskState(removed); a task that fails (returns an error, panics) → RetryTask when
should_retry, else TaskState(failed). What it does next is where runtimes differ (``CoordinatorRuntime``):
one that *fails closed* waits for the supervisor's answer and exits 1 when a failure was not taken, as
Airflow's Python task runner does since task-sdk 1.2.2 (apache/airflow#66573); one that does not exits 0
once the frame is written, never reading the answer, as the Go SDK's ``Serve`` does.

``coordinator_scenario(run, runtime)`` is the attempt the supervisor lives (a ``model.scenario.Scenario``:
the world's events around the runtime's frame, then its exit), and ``coordinator_attempt`` what comes of
it under ``model.supervisor``. The runtime's exit depends on what the supervisor tells it; the model asks
``model.supervisor`` for that answer, exactly as the runtime would.
"""

from __future__ import annotations

import attrs

from model import supervisor
from model.release import SPECIFIED, Release
from model.scenario import (DEFAULT_EXECUTION_API_RETRIES, FAILED, REMOVED, Event, Fault, Heartbeat, IgnoreSigterm,
                            Observation, Overtime, RunContext, Scenario, Send, UserAction, event_text, parse_event,
                            parse_settings, settings_text)

#: What a coordinator-mode task does: returns, returns an error, panics; or no task is registered under the TI's
#: task id. The task id the supervisor hands out is the outcome (``runtimes/README.md``).
COORDINATOR_OUTCOMES = ("success", "error", "panic", "unknown_task")
COORDINATOR_FAILURES = ("error", "panic")
#: Opt-in, never generated: a TI id that is not a UUID, which the runtime stands in for by mangling the id it was
#: sent (a test hook of this project's runtimes). Airflow's supervisor only ever sends UUIDs, so no real attempt has
#: it, and runtimes that look the task up before validating the id (the Go SDK's ``RunTask``) answer it otherwise.
BAD_TI_ID = "bad_ti_id"
#: The Execution API calls a coordinator runtime's terminal frame makes: at once (SucceedTask, RetryTask) or at close
#: (a TaskState, by ``finish``).
TERMINAL_CALLS = ("succeed", "retry", "finish")


def _world_while_running(instance, attribute, events) -> None:
    for i, event in enumerate(events):
        if not isinstance(event, (Fault, Heartbeat, IgnoreSigterm, UserAction)):
            raise ValueError(f"while the task runs the world arms faults, answers heartbeats, users act on the task "
                             f"instance, and the runtime may trap SIGTERM; {event_text(event)!r} is not one of those")
        if isinstance(event, Fault) and event.call not in TERMINAL_CALLS:
            raise ValueError(f"{event_text(event)!r} arms a fault on a call no coordinator try makes: its terminal "
                             f"frame makes {', '.join(TERMINAL_CALLS)}")
        if isinstance(event, IgnoreSigterm) and i != 0:
            raise ValueError("'ignore sigterm' is how the runtime is from its start: it comes first, before the "
                             "task's other events")


def _world_after_frame(instance, attribute, events) -> None:
    if any(not isinstance(event, Overtime) for event in events):
        raise ValueError("after the terminal frame was taken, only the success overtime can run out ('overtime')")


@attrs.frozen
class CoordinatorRun:
    """One try of a coordinator-mode task: the run context, the world while its task runs, what the task does, the
    world after its terminal frame was taken; and ``[workers] execution_api_retries`` (Airflow's default unless
    said)."""

    context: RunContext = RunContext()
    outcome: str = attrs.field(default="success",
                               validator=attrs.validators.in_(COORDINATOR_OUTCOMES + (BAD_TI_ID,)))
    while_running: tuple[Event, ...] = attrs.field(default=(), converter=tuple, validator=_world_while_running)
    after_frame: tuple[Event, ...] = attrs.field(default=(), converter=tuple, validator=_world_after_frame)
    execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES

    @property
    def failure(self) -> bool:
        """Whether the task fails (returns an error or panics)."""
        return self.outcome in COORDINATOR_FAILURES

    def to_text(self) -> str:
        """One line: ``try_number=1 max_tries=1 should_retry=true; fault retry lost; task error; overtime``."""
        return "; ".join([settings_text(self.context, self.execution_api_retries),
                          *map(event_text, self.while_running), f"task {self.outcome}",
                          *map(event_text, self.after_frame)])

    def to_lines(self) -> list[str]:
        """The trace form: the settings, then one line per event, the task's outcome among them."""
        return self.to_text().split("; ")

    @classmethod
    def from_text(cls, text: str) -> CoordinatorRun:
        """Parse ``to_text``'s form (the settings may be left out); ``ValueError`` names the part that is wrong."""
        parts = [p.strip() for p in text.split(";") if p.strip()]
        context, retries = parse_settings(parts.pop(0)) if parts and "=" in parts[0] else (RunContext(), None)
        tasks = [i for i, part in enumerate(parts) if part.split()[0] == "task"]
        if len(tasks) != 1:
            raise ValueError(f"a coordinator run has one 'task OUTCOME' part (OUTCOME one of "
                             f"{', '.join(COORDINATOR_OUTCOMES)}), not {len(tasks)}: {text!r}")
        words = parts[tasks[0]].split()
        if len(words) != 2 or words[1] not in COORDINATOR_OUTCOMES + (BAD_TI_ID,):
            raise ValueError(f"{parts[tasks[0]]!r}: write 'task OUTCOME', OUTCOME one of "
                             f"{', '.join(COORDINATOR_OUTCOMES)} (or the opt-in {BAD_TI_ID})")
        before, after = parts[:tasks[0]], parts[tasks[0] + 1:]
        run = cls(context, words[1], tuple(map(parse_event, before)), tuple(map(parse_event, after)))
        return run if retries is None else attrs.evolve(run, execution_api_retries=retries)


@attrs.frozen
class CoordinatorRuntime:
    """What a coordinator-mode runtime does with a try, where runtimes differ in a way the supervisor sees.

    ``retries``: it has the seed's retry branch (RetryTask when should_retry); False is the seed's bug, every failure
    a TaskState(failed). ``fails_closed``: it waits for the supervisor's answer to its terminal frame and exits 1 when
    a failure was not taken (an error answer, or none); False: it exits 0 once the frame is written and never reads
    the answer. Everything else a runtime may do its own way (the request id of its terminal frame, how it encodes
    ``end_date``, extra optional fields, log lines, the order of its own checks) the supervisor takes alike.
    """

    retries: bool = True
    fails_closed: bool = True


#: ``runtimes/README.md``'s runtime: the seed's four steps done right, failing closed.
CONTRACT = CoordinatorRuntime()
#: The Go SDK's coordinator runtime before apache/airflow#67797's fix: no retry branch, and no answer awaited.
SEED = CoordinatorRuntime(retries=False, fails_closed=False)


def terminal_frame(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT) -> Send:
    """The frame that ends the try (``go-sdk``'s ``RunTask``/``executeTask``, as the seed reads them)."""
    if run.outcome == "success":
        return Send("SucceedTask")
    if run.outcome == "unknown_task":
        return Send("TaskState", REMOVED)
    if run.failure and runtime.retries and run.context.should_retry:
        return Send("RetryTask")
    return Send("TaskState", FAILED)  # a failing task, or a TI id that is not a UUID


def reports_failure(frame: Send) -> bool:
    """Whether the frame says the task failed: RetryTask or TaskState(failed)."""
    return frame.frame == "RetryTask" or frame == Send("TaskState", FAILED)


def coordinator_scenario(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT,
                         release: Release = SPECIFIED) -> Scenario:
    """The attempt the supervisor lives when ``runtime`` meets ``run``, under ``release``'s supervisor.

    The world while the task runs, then the runtime's terminal frame; a runtime that waits for its answer is still
    there for the world after the frame, and exits 1 when a failure was not taken (what the supervisor told it is
    ``model.supervisor``'s answer); one that does not wait exits 0 at once. A runtime the world killed before its
    task ended sent nothing: the supervisor's run ends at the kill.
    """
    frame = terminal_frame(run, runtime)
    prefix = Scenario(run.context, (*run.while_running, frame), 0, run.execution_api_retries, rendered_map_index=None)
    told = supervisor.run(prefix, release).replies
    failed_closed = runtime.fails_closed and reports_failure(frame) and told != ("ok",)
    after = run.after_frame if runtime.fails_closed else ()
    return Scenario(run.context, (*run.while_running, frame, *after), int(failed_closed), run.execution_api_retries,
                    rendered_map_index=None)


def coordinator_attempt(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT,
                        release: Release = SPECIFIED) -> Observation:
    """What the try ends as, end to end: ``coordinator_scenario`` lived by ``model.supervisor``."""
    return supervisor.run(coordinator_scenario(run, runtime, release), release)


def seed_coordinator_attempt(run: CoordinatorRun) -> Observation:
    """The seed's bug (apache/airflow#67797), end to end."""
    return coordinator_attempt(run, SEED)
