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
from model.scenario import (DEFAULT_EXECUTION_API_RETRIES, FAILED, HANG, REMOVED, Event, Fault, HandleSigterm,
                            Heartbeat, IgnoreSigterm, Observation, Overtime, RunContext, Scenario, Send, UserAction,
                            event_text, parse_event, parse_settings, settings_text)

#: A task that runs until it is cancelled and honours the cancellation (the Go context, Java's interrupt, the
#: TypeScript abort signal): cancelled, it returns an error at once; never cancelled, it runs on.
CANCELLABLE = "cancellable"
#: What a coordinator-mode task does: returns, returns an error, panics, runs until it is cancelled (``CANCELLABLE``);
#: or no task is registered under the TI's task id. The task id the supervisor hands out is the outcome
#: (``runtimes/README.md``).
COORDINATOR_OUTCOMES = ("success", "error", "panic", "unknown_task", CANCELLABLE)
#: Every outcome a coordinator run's text may name.
RUN_OUTCOMES = COORDINATOR_OUTCOMES
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

    #: The run context the server hands out at start.
    context: RunContext = RunContext()
    #: What the task does (``COORDINATOR_OUTCOMES``, or the opt-in ``BAD_TI_ID``).
    outcome: str = attrs.field(default="success",
                               validator=attrs.validators.in_(RUN_OUTCOMES + (BAD_TI_ID,)))
    #: What the world does while the task runs: faults, heartbeat answers, a user's action, how SIGTERM is met.
    while_running: tuple[Event, ...] = attrs.field(default=(), converter=tuple, validator=_world_while_running)
    #: What the world does once the terminal frame was taken: the success overtime running out.
    after_frame: tuple[Event, ...] = attrs.field(default=(), converter=tuple, validator=_world_after_frame)
    #: ``[workers] execution_api_retries``: how many times the client tries each request.
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
                             f"{', '.join(RUN_OUTCOMES)}), not {len(tasks)}: {text!r}")
        words = parts[tasks[0]].split()
        if len(words) != 2 or words[1] not in RUN_OUTCOMES + (BAD_TI_ID,):
            raise ValueError(f"{parts[tasks[0]]!r}: write 'task OUTCOME', OUTCOME one of "
                             f"{', '.join(RUN_OUTCOMES)} (or the opt-in {BAD_TI_ID})")
        before, after = parts[:tasks[0]], parts[tasks[0] + 1:]
        run = cls(context, words[1], tuple(map(parse_event, before)), tuple(map(parse_event, after)))
        return run if retries is None else attrs.evolve(run, execution_api_retries=retries)


#: How far a runtime fails closed (``CoordinatorRuntime.fails_closed``): never (it exits 0 once its frame is written
#: and never reads the answer: the Go and TypeScript SDKs); after a failure the supervisor did not take (the
#: contract, as Airflow's Python task runner since task-sdk 1.2.2, apache/airflow#66573); after any frame the
#: supervisor did not take (it reads one answer to every frame and throws on an error answer or none: the Java SDK).
FAILS_CLOSED_NEVER = "never"
FAILS_CLOSED_AFTER_A_FAILURE = "after-a-failure"
FAILS_CLOSED_AFTER_ANY_FRAME = "after-any-frame"
FAILS_CLOSED = (FAILS_CLOSED_NEVER, FAILS_CLOSED_AFTER_A_FAILURE, FAILS_CLOSED_AFTER_ANY_FRAME)

#: What a runtime does with the supervisor's SIGTERM (``CoordinatorRuntime.sigterm_waiting``, ``sigterm_running``):
#: dies of it (the default disposition); exits 128 + 15 through its runtime's own shutdown (the JVM's shutdown
#: hooks), sending nothing more; traps it and does nothing until the kill escalates to SIGKILL; cancels its task
#: (a task that honours the cancellation returns an error, which the runtime reports, then exits 0: the Go SDK's
#: ``signal.NotifyContext``); aborts its task and forces exit 1 after a grace period (the TypeScript SDK's
#: ``createRuntimeAbort``: a task that honours the abort signal returns, and is reported, first).
SIGTERM_DIES = "dies"
SIGTERM_EXITS_143 = "exits-143"
SIGTERM_TRAPS = "traps"
SIGTERM_CANCELS = "cancels"
SIGTERM_GRACE_THEN_EXIT_1 = "grace-then-exit-1"
SIGTERM_BEHAVIOURS = (SIGTERM_DIES, SIGTERM_EXITS_143, SIGTERM_TRAPS, SIGTERM_CANCELS, SIGTERM_GRACE_THEN_EXIT_1)
#: The exit of a runtime whose own shutdown handles SIGTERM (128 + SIGTERM).
EXIT_AFTER_SIGTERM_SHUTDOWN = 143

#: The request id a runtime gives its terminal frame (``CoordinatorRuntime.frame_id``): StartupDetails' own (0, the
#: Go SDK and the TypeScript SDK answer it as a response), or the next of its own count.
FRAME_ID_REUSED = "reuses-startup-id"
FRAME_ID_COUNTED = "counts-its-own"
FRAME_IDS = (FRAME_ID_REUSED, FRAME_ID_COUNTED)


def _one_of(options: tuple):
    return attrs.validators.in_(options)


@attrs.frozen
class CoordinatorRuntime:
    """What a coordinator-mode runtime does with a try, trait by trait (``PROFILES``: each trait read from an SDK).

    Traits the supervisor sees, which decide the attempt:

    - ``retries``: the seed's retry branch (RetryTask when should_retry); False is the seed's bug, every failure a
      TaskState(failed).
    - ``fails_closed``: ``FAILS_CLOSED``: whether it waits for the supervisor's answer to its terminal frame, and
      after which frames an error answer (or none) makes it exit 1.
    - ``sigterm_waiting``: ``SIGTERM_BEHAVIOURS``, while it waits on the supervisor (for StartupDetails, or for the
      answer to its frame); ``sigterm_running``: while its task runs (only a task that runs long enough to be
      killed meets it: ``CANCELLABLE``).
    - ``panic_escapes``: a task that panics (a Java ``Error``, not an ``Exception``) escapes the runtime's handler: no
      frame, and the process exits ``escape_exit``.

    Traits the supervisor takes alike, recorded for what a report and a maintainer need (conformance compares what
    decides the attempt, not these): ``frame_id``, ``retry_reason`` (RetryTask carries the error's text),
    ``lookup_first`` (the unknown-task path is taken before any check of the TI id).
    """

    #: Whether a failure with should_retry is answered with RetryTask (False: the seed's bug).
    retries: bool = True
    #: Whether it awaits the supervisor's answer, and after which frames a refusal makes it exit 1 (``FAILS_CLOSED``).
    fails_closed: str = attrs.field(default=FAILS_CLOSED_AFTER_A_FAILURE, validator=_one_of(FAILS_CLOSED))
    #: What SIGTERM does while it waits on the supervisor (``SIGTERM_BEHAVIOURS``).
    sigterm_waiting: str = attrs.field(default=SIGTERM_DIES, validator=_one_of(SIGTERM_BEHAVIOURS))
    #: What SIGTERM does while its task runs (``SIGTERM_BEHAVIOURS``).
    sigterm_running: str = attrs.field(default=SIGTERM_DIES, validator=_one_of(SIGTERM_BEHAVIOURS))
    #: Whether a panicking task escapes the runtime's handler, sending no frame.
    panic_escapes: bool = False
    #: The exit of a process whose panic escaped.
    escape_exit: int = 1
    #: Which request id its terminal frame carries (``FRAME_IDS``).
    frame_id: str = attrs.field(default=FRAME_ID_COUNTED, validator=_one_of(FRAME_IDS))
    #: Whether its RetryTask carries the error's text.
    retry_reason: bool = False
    #: Whether it looks the task up before it checks the TI id.
    lookup_first: bool = False

    @property
    def waits_for_its_answer(self) -> bool:
        """Whether it reads the supervisor's answer to its terminal frame (so the world after the frame meets it)."""
        return self.fails_closed != FAILS_CLOSED_NEVER


#: ``runtimes/README.md``'s runtime: the seed's four steps done right, failing closed after a failure.
CONTRACT = CoordinatorRuntime()
#: The Go SDK's coordinator runtime before apache/airflow#67797's fix: no retry branch, and no answer awaited.
SEED = CoordinatorRuntime(retries=False, fails_closed=FAILS_CLOSED_NEVER, frame_id=FRAME_ID_REUSED, lookup_first=True)


def terminal_frame(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT) -> Send | None:
    """The frame that ends the try (``go-sdk``'s ``RunTask``/``executeTask``, as the seed reads them); None for a
    panic that escapes the runtime (``CoordinatorRuntime.panic_escapes``)."""
    if run.outcome == "success":
        return Send("SucceedTask")
    if run.outcome == "unknown_task":
        return Send("TaskState", REMOVED)
    if run.outcome == "panic" and runtime.panic_escapes:
        return None
    if run.failure and runtime.retries and run.context.should_retry:
        return Send("RetryTask")
    return Send("TaskState", FAILED)  # a failing task (a cancelled one), or a TI id that is not a UUID


def reports_failure(frame: Send | None) -> bool:
    """Whether the frame says the task failed: RetryTask or TaskState(failed)."""
    return frame is not None and (frame.frame == "RetryTask" or frame == Send("TaskState", FAILED))


#: The supervisor-side disposition each SIGTERM behaviour starts from (``model.scenario`` events): a runtime that
#: dies of it needs none; one that traps it until SIGKILL ignores it; any other handles it and goes on.
DISPOSITIONS = {SIGTERM_DIES: (), SIGTERM_TRAPS: (IgnoreSigterm(),), SIGTERM_EXITS_143: (HandleSigterm(),),
                SIGTERM_CANCELS: (HandleSigterm(),), SIGTERM_GRACE_THEN_EXIT_1: (HandleSigterm(),)}


def _killed(scenario: Scenario, release: Release) -> supervisor.Supervisor:
    """The supervisor after ``scenario``'s events, its process still running (the exit is not reached)."""
    sup = supervisor.start(scenario, release)
    for event in scenario.events:
        if not sup.alive:
            break
        sup = supervisor.monitor_step(sup, event)
    return sup


def _exit_after_its_frame(frame: Send | None, runtime: CoordinatorRuntime, told: tuple[str, ...]) -> int:
    """How a runtime exits once its frame is written, by what the supervisor told it (its last reply)."""
    taken = told[-1:] == ("ok",)
    if runtime.fails_closed == FAILS_CLOSED_AFTER_ANY_FRAME and not taken:
        return 1
    if runtime.fails_closed == FAILS_CLOSED_AFTER_A_FAILURE and reports_failure(frame) and not taken:
        return 1
    return 0


def coordinator_scenario(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT,
                         release: Release = SPECIFIED) -> Scenario:
    """The attempt the supervisor lives when ``runtime`` meets ``run``, under ``release``'s supervisor.

    The runtime's SIGTERM disposition (``sigterm_running`` for a ``CANCELLABLE`` task, which the world meets while it
    runs; else ``sigterm_waiting``: the world meets a runtime waiting for StartupDetails), then the world while the
    task runs; a ``CANCELLABLE`` task runs on while time runs on (``model.supervisor.TIME_RUNS_ON``: a heartbeat falls
    due, answered as the server then answers, so a user's action meets the supervisor there). If that world killed it:
    one that died sent nothing; one that exits through its shutdown exits 143; one that cancels its task reports the
    cancelled task's failure (inside the kill that waits for it) and exits as it does after any frame, by what the
    supervisor told it (a task that does not honour the cancellation never returns: it hangs until SIGKILL). Else its
    terminal frame (none for a panic that escapes it: it exits ``escape_exit``), and a runtime that waits for the
    answer is still there for the world after the frame, exiting 1 when it fails closed (what the supervisor told it
    is ``model.supervisor``'s answer, exactly as the runtime would hear it) or 143 if that world kills it through its
    shutdown; one that does not wait exits 0 at once. A ``CANCELLABLE`` task nothing cancels runs on: the runtime
    never exits (``HANG``).
    """
    def scenario(events: tuple, exit_code) -> Scenario:
        return Scenario(run.context, events, exit_code, run.execution_api_retries, rendered_map_index=None)

    phase = runtime.sigterm_running if run.outcome == CANCELLABLE else runtime.sigterm_waiting
    world = (*DISPOSITIONS[phase], *run.while_running)
    sup = _killed(scenario(world, 0), release)
    if run.outcome == CANCELLABLE and sup.alive and not sup.killing:
        ran_on = (*world, *supervisor.TIME_RUNS_ON)
        sup = _killed(scenario(ran_on, 0), release)
        if sup.alive and not sup.killing:  # nothing cancels it: time running on is the supervisor's close's to play
            return scenario(world, HANG)
        world = ran_on
    if not sup.alive:  # died of the kill, or of the SIGKILL it escalated to
        return scenario(world, 0)
    if sup.killing:
        if phase == SIGTERM_EXITS_143:
            return scenario(world, EXIT_AFTER_SIGTERM_SHUTDOWN)
        if phase in (SIGTERM_CANCELS, SIGTERM_GRACE_THEN_EXIT_1) and run.outcome == CANCELLABLE:
            frame = terminal_frame(attrs.evolve(run, outcome="error"), runtime)
            told = supervisor.run(scenario((*world, frame), 0), release).replies
            return scenario((*world, frame), _exit_after_its_frame(frame, runtime, told))
        return scenario(world, HANG)  # its task never looks at the cancellation: the escalation's SIGKILL ends it
    frame = terminal_frame(run, runtime)
    if frame is None:
        return scenario(world, runtime.escape_exit)
    told = supervisor.run(scenario((*world, frame), 0), release).replies
    exit_code = _exit_after_its_frame(frame, runtime, told)
    if not runtime.waits_for_its_answer:
        return scenario((*world, frame), exit_code)
    events = (*world, frame, *run.after_frame)
    if _killed(scenario(events, 0), release).killing:  # it handled the kill's SIGTERM while it waited for its answer
        shut_down = runtime.sigterm_waiting == SIGTERM_EXITS_143
        return scenario(events, EXIT_AFTER_SIGTERM_SHUTDOWN if shut_down else HANG)
    return scenario(events, exit_code)


def coordinator_attempt(run: CoordinatorRun, runtime: CoordinatorRuntime = CONTRACT,
                        release: Release = SPECIFIED) -> Observation:
    """What the try ends as, end to end: ``coordinator_scenario`` lived by ``model.supervisor``."""
    return supervisor.run(coordinator_scenario(run, runtime, release), release)


def seed_coordinator_attempt(run: CoordinatorRun) -> Observation:
    """The seed's bug (apache/airflow#67797), end to end."""
    return coordinator_attempt(run, SEED)
