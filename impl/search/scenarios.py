"""What the checker generates: supervisor attempts (a Hypothesis state machine), runtime and coordinator tries.

An attempt is a run context, a few events (frames sent, API faults, heartbeat answers,
overtime) and an exit, drawn whole and checked on the target. One machine run lives several
attempts in a row, so the shrinker can drop whole attempts as well as single events.
"""

from __future__ import annotations

import functools
import random
from typing import Callable

from hypothesis import currently_in_test_context, event, reject, settings, strategies as st, target
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from model import supervisor as model_supervisor
from model.coordinator import CANCELLABLE, COORDINATOR_OUTCOMES, TERMINAL_CALLS, CoordinatorRun
from model.sdks import profile as sdk_profile
from model.runtime import (COMMS_MODES, EXECUTION_TIMEOUT, FEATURES, FORKED_CHILD, PYTHON_OUTCOMES, RETURN, SIGTERM,
                           STARTUP_RESCHEDULE, Policy, RuntimeRun)
from model.scenario import (
    DEFAULT_EXECUTION_API_RETRIES,
    FAULT_KINDS,
    FAULTABLE_CALLS,
    FRAME_TYPES,
    HANG,
    HEARTBEAT_ANSWERS,
    HEARTBEAT_ERROR,
    HEARTBEAT_GONE,
    HEARTBEAT_NO_ANSWER,
    NON_TERMINAL_FRAMES,
    TASK_STATE_STATES,
    Event,
    Fault,
    Heartbeat,
    MARKED_STATES,
    SCHEDULER_TIMES_OUT,
    USER_CLEARS,
    USER_DELETES,
    USER_MARKS,
    HandleSigterm,
    IgnoreSigterm,
    Overtime,
    RunContext,
    Scenario,
    Send,
    UserAction,
    server_should_retry,
)


#: The counts the server could hand out (try_number 1-6, max_tries 0-5), then the same counts with a
#: should_retry that disagrees with them, as a buggy or racing server would send. Each consistent
#: context is listed seven times, so one draw in eight is inconsistent, and shrinking (towards the
#: front) reaches a consistent context with the smallest counts.
CONTEXTS: tuple[RunContext, ...] = (
    *(RunContext.from_server(t, m) for _ in range(7) for t in range(1, 7) for m in range(6)),
    *(RunContext(t, m, not server_should_retry(t, m)) for t in range(1, 7) for m in range(6)),
)
#: ``[workers] execution_api_retries``, the tries of each request: Airflow's default (shrinking goes there), one
#: try (every fault is seen), two and three (a second or third fault armed on one call is seen). Listed so that
#: two draws in five are the default, two in five one try.
EXECUTION_API_RETRIES: tuple[int, ...] = (*(DEFAULT_EXECUTION_API_RETRIES,) * 4, *(1,) * 4, 2, 3)
#: A run context with the client's tries, drawn as one value.
SETTINGS: tuple[tuple[RunContext, int], ...] = tuple((c, tries) for tries in EXECUTION_API_RETRIES for c in CONTEXTS)
#: Clean exit, ordinary failures, then deaths by the signals that matter (KILL, TERM, SEGV, ABRT, INT, HUP), then a
#: process that never exits on its own.
EXIT_CODES: tuple[int | str, ...] = (0, *range(1, 256), -9, -15, -11, -6, -2, -1, HANG)

run_contexts = st.sampled_from(CONTEXTS)
exit_codes = st.sampled_from(EXIT_CODES)
frames = st.one_of(
    st.builds(Send, st.just("TaskState"), st.sampled_from(TASK_STATE_STATES)),
    st.builds(Send, st.sampled_from([f for f in FRAME_TYPES if f != "TaskState"])),
)
faults = st.builds(Fault, st.sampled_from(FAULTABLE_CALLS), st.sampled_from(FAULT_KINDS))

#: What users do to a running task instance (``model.scenario.UserAction``).
USER_ACTIONS: tuple[UserAction, ...] = (*(UserAction(USER_MARKS, s) for s in MARKED_STATES), UserAction(USER_CLEARS),
                                        UserAction(USER_DELETES), UserAction(SCHEDULER_TIMES_OUT))
#: Every event an attempt can have: each frame (a non-terminal request too), each fault, each heartbeat answer, the
#: success overtime, a SIGTERM trapped (ignored, or handled and carried on from), each user action.
EVENTS: tuple[Event, ...] = (
    *(Send("TaskState", s) for s in TASK_STATE_STATES), *(Send(f) for f in FRAME_TYPES if f != "TaskState"),
    *(Send(f) for f in NON_TERMINAL_FRAMES),
    *(Fault(c, k) for c in FAULTABLE_CALLS for k in FAULT_KINDS),
    *(Heartbeat(a) for a in HEARTBEAT_ANSWERS), Overtime(), IgnoreSigterm(), HandleSigterm(), *USER_ACTIONS,
)
events = st.sampled_from(EVENTS)

# An attempt's events are drawn as one string over an alphabet of one character per event: one
# draw for the whole sequence instead of two per event, which was most of the generation time.
# Hypothesis shrinks a string by dropping characters and moving each towards '0', then up the code
# points, so with the alphabet '0', '1', ... in EVENTS order, shrinking prefers fewer and earlier
# events (frames first), as a list of sampled events did.
_FIRST_EVENT_CHAR = ord("0")
EVENT_ALPHABET = "".join(chr(_FIRST_EVENT_CHAR + i) for i in range(len(EVENTS)))


def events_of(text: str) -> tuple[Event, ...]:
    """The events a string over ``EVENT_ALPHABET`` stands for, in order."""
    return tuple(EVENTS[ord(c) - _FIRST_EVENT_CHAR] for c in text)


event_sequences = st.text(EVENT_ALPHABET, max_size=10).map(events_of)


def _scenario(setting: tuple[RunContext, int], events: tuple[Event, ...], exit_code: int) -> Scenario:
    context, tries = setting
    return Scenario(context, events, exit_code, tries)


#: One attempt, whole: its run context and client tries, up to ten events, its exit. Three draws; shrinks
#: towards Airflow's default tries, a consistent context, fewer and simpler events, exit 0.
scenarios = st.builds(_scenario, st.sampled_from(SETTINGS), event_sequences, exit_codes)

Check = Callable[[Scenario], object]

#: The events of an attempt, on average, when each step of the machine was one event: a profile's
#: ``stateful_step_count`` is divided by it, so an example lives as many attempts as it did then.
STEPS_PER_ATTEMPT = 6


class AttemptMachine(RuleBasedStateMachine):
    """Subclassed per check by ``machine_for``; ``check`` raises when the scenario fails it.

    Each step is one whole attempt (or a few), drawn at once: no preconditions to satisfy, so no
    draw is thrown away; the shrinker drops whole attempts and shortens each one's events.
    """

    check: Check

    def __init__(self):
        super().__init__()
        self.failed_heartbeats_in_a_row = 0

    def live(self, scenario: Scenario) -> None:
        self.failed_heartbeats_in_a_row = max(self.failed_heartbeats_in_a_row, _failed_heartbeats_in_a_row(scenario))
        type(self).check(scenario)

    def teardown(self):
        # Plain generation rarely strings three failed heartbeats together, the supervisor's kill
        # after MAX_FAILED_HEARTBEATS: steer towards it (coverage and mutants showed the gap).
        target(float(self.failed_heartbeats_in_a_row), label="failed heartbeats in a row")


class OneAttemptPerStep(AttemptMachine):
    @rule(scenario=scenarios)
    def attempt(self, scenario):
        self.live(scenario)


@functools.lru_cache(maxsize=None)
def attempts_per_step(most: int) -> type[AttemptMachine]:
    """A machine whose every step lives one to ``most`` attempts: Hypothesis's cost per example and per step is
    then spread over more attempts, which pays where an attempt costs little (``Target.attempts_per_step``)."""
    if most == 1:
        return OneAttemptPerStep

    class SeveralAttemptsPerStep(AttemptMachine):
        @rule(batch=st.lists(scenarios, min_size=1, max_size=most))
        def attempts(self, batch):
            for scenario in batch:
                self.live(scenario)

    return SeveralAttemptsPerStep


def _failed_heartbeats_in_a_row(scenario: Scenario) -> int:
    longest = run = 0
    for event in scenario.events:
        if isinstance(event, Heartbeat):
            run = run + 1 if event.answer in (HEARTBEAT_ERROR, HEARTBEAT_NO_ANSWER) else 0
            longest = max(longest, run)
    return longest


def run_machine(machine: type[RuleBasedStateMachine], profile: settings | None = None) -> None:
    """Run ``machine`` under ``profile`` (default: the loaded one), living as many attempts per example as
    ``stateful_step_count`` events allow."""
    profile = profile or settings.default
    run_state_machine_as_test(machine, settings=settings(
        profile, stateful_step_count=max(1, profile.stateful_step_count // STEPS_PER_ATTEMPT)))


def machine_for(name: str, check: Check, per_step: int = 1) -> type[AttemptMachine]:
    """A machine class whose every attempt is checked by ``check``, living up to ``per_step`` attempts a step."""
    return type(name, (attempts_per_step(per_step),), {"check": staticmethod(check)})


#: A policy's reason: a word, and one past the 500 characters ``_finalize_task_failure`` keeps.
REASONS = ("flaky", "r" * 600)

policies = st.one_of(
    st.none(),
    st.builds(Policy, st.sampled_from(["default", "fail", "raises", "interrupted"])),
    st.builds(Policy, st.just("retry"), st.none() | st.integers(0, 3600), st.none() | st.sampled_from(REASONS)),
)
#: A policy as a try of the runtime properties meets it: any of ``policies``, or a RETRY whose delay is a plain
#: number of seconds (finding R3; the lifecycle's tries draw ``policies`` only).
runtime_policies = policies | st.builds(Policy, st.just("retry_int_delay"), st.integers(0, 3600),
                                        st.none() | st.sampled_from(REASONS))
#: The features drawn in one try in eight: a startup that reschedules ends the try before the task runs (drawn
#: as often as the others, it hid the task's own branches from most tries); a forked child costs a fork; an execution
#: timeout that runs out keeps the task from the outcome drawn for it, as a startup that reschedules would.
_RARE_FEATURES = (STARTUP_RESCHEDULE, FORKED_CHILD, EXECUTION_TIMEOUT)
_COMMON_FEATURES = tuple(f for f in FEATURES if f not in _RARE_FEATURES)
_ONE_IN_EIGHT = st.sampled_from((False,) * 7 + (True,))


def _features(common: tuple[bool, ...], rare: tuple[bool, ...]) -> frozenset[str]:
    return frozenset(f for f, present in zip(_COMMON_FEATURES + _RARE_FEATURES, common + rare) if present)


#: What else a try meets (``model.runtime.FEATURES``): each common feature independently in half the tries,
#: each rare one in one in eight. Shrinks towards none.
features = st.builds(_features, st.tuples(*(st.booleans() for _ in _COMMON_FEATURES)),
                     st.tuples(*(_ONE_IN_EIGHT for _ in _RARE_FEATURES)))
#: The features a life's try may meet: each but a forked child, which changes nothing the supervisor or the server
#: sees (only the child's own exit) and costs a real fork on the real task runner.
LIFE_FEATURES = tuple(f for f in FEATURES if f != FORKED_CHILD)
#: What else a life's try meets: one try in eight one feature of ``LIFE_FEATURES``, drawn in one draw. A life is about
#: the row across tries; the runtime properties draw the features of one try, and their combinations, the more often
#: (``features``). Drawn as those draw them in lives, the lifecycle properties on the real task runner cost about
#: twice the CPU (more distinct tries to live, a fork for each forked child, six draws a try).
life_features = st.sampled_from((frozenset(),) * (7 * len(LIFE_FEATURES))
                                + tuple(frozenset({f}) for f in LIFE_FEATURES))
#: The task's outcome, RETURN five times over: the success path holds as many of the runner's branches (the
#: map index sent after the task, for one) as the failures do, and drawn as one outcome among all the others a
#: ci run could miss them.
outcomes = st.sampled_from((RETURN,) * 5 + PYTHON_OUTCOMES)
#: One try of a Python task; shrinks towards a consistent context, a returning task, no policy, a working
#: channel, no features.
runtime_runs = st.builds(RuntimeRun, run_contexts, outcomes, runtime_policies,
                         st.sampled_from(COMMS_MODES), features)
#: What the world does while a coordinator task runs: a fault on a call its terminal frame makes, a heartbeat
#: answered (404/409/410: the server's own action behind it, a TI deleted, marked or cleared), or a user's action on
#: the task instance (or the scheduler's heartbeat timeout striking it), which the supervisor learns of only at its
#: next heartbeat or call. Drawn as one string over an
#: alphabet of one character each, as an attempt's events are; shrinks towards fewer and earlier ones.
COORDINATOR_WORLD: tuple[Event, ...] = (*(Fault(c, k) for c in TERMINAL_CALLS for k in FAULT_KINDS),
                                        *(Heartbeat(a) for a in HEARTBEAT_ANSWERS), *USER_ACTIONS)
_COORDINATOR_ALPHABET = "".join(chr(_FIRST_EVENT_CHAR + i) for i in range(len(COORDINATOR_WORLD)))
_ONE_IN_FOUR = st.sampled_from((False,) * 3 + (True,))


def _coordinator_run(setting: tuple[RunContext, int], traps_sigterm: bool, world: str, outcome: str,
                     overtime: bool) -> CoordinatorRun:
    context, tries = setting
    while_running = ((IgnoreSigterm(),) if traps_sigterm else ()) + tuple(
        COORDINATOR_WORLD[ord(c) - _FIRST_EVENT_CHAR] for c in world)
    return CoordinatorRun(context, outcome, while_running, (Overtime(),) if overtime else (), tries)


def coordinator_runs_of(outcomes: tuple[str, ...]) -> st.SearchStrategy[CoordinatorRun]:
    """One try of a coordinator-mode task in its supervisor's world, its outcome one of ``outcomes``: the run context
    and the client's tries, a runtime that traps SIGTERM (one in eight), up to four events of the world while the task
    runs, the task's outcome, the success overtime after its frame (one in four). Shrinks towards Airflow's default
    tries, a consistent context, no world, a task that succeeds."""
    return st.builds(_coordinator_run, st.sampled_from(SETTINGS), _ONE_IN_EIGHT,
                     st.text(_COORDINATOR_ALPHABET, max_size=4), st.sampled_from(outcomes), _ONE_IN_FOUR)


#: A coordinator try, of every outcome (``model.coordinator.COORDINATOR_OUTCOMES``): a task that runs until it is
#: cancelled too, which the world meets while it runs.
coordinator_runs = coordinator_runs_of(COORDINATOR_OUTCOMES)
#: A coordinator try whose task ends by itself (every outcome but ``CANCELLABLE``): a try of a life, which a try that
#: never ends would end (its row left to the scheduler's heartbeat timeout, a word of lives of its own).
ending_coordinator_runs = coordinator_runs_of(tuple(o for o in COORDINATOR_OUTCOMES if o != CANCELLABLE))


def _what_sigterm_did(observed) -> str:
    """What a runtime did with the SIGTERM that met its running task, as the attempt shows it."""
    if observed.exit_code == 143:
        return "it exited 143 through its shutdown (exits-143)"
    if observed.exit_code is not None and observed.exit_code >= 0 and observed.replies:
        return "it cancelled the task and reported it (cancels, or grace-then-exit-1 with a task that honours it)"
    if observed.exit_code == -9:
        return "only the SIGKILL after it ended it (traps)"
    return f"it ended with {observed.exit_code} (dies)" if observed.exit_code == -15 else f"exit {observed.exit_code}"


def world_met(run: CoordinatorRun, observed, profile: str | None = None) -> tuple[str, ...]:
    """What of its world a coordinator try met, by the calls the supervisor made and the runtime's exit, and for a
    ``cancellable`` task what the runtime did with a SIGTERM while it ran (with its declared SDK profile's
    ``sigterm_running``, ``model.sdks``): for Hypothesis's statistics."""
    met = []
    if run.outcome == CANCELLABLE:
        if observed.hung:
            met.append("a task that runs until cancelled: nothing cancelled it (hung)")
        else:
            declared = f" [declared {profile}: {sdk_profile(profile).runtime.sigterm_running}]" if profile else ""
            met.append(f"a SIGTERM met the running task: {_what_sigterm_did(observed)}{declared}")
    terminal = [c for c in observed.calls if c.name in TERMINAL_CALLS]
    if any(c.status != 200 for c in terminal):
        met.append("a terminal call failed (a fault hit it)")
    heartbeats = [c.status for c in observed.calls if c.name == "heartbeat"]
    if any(status not in HEARTBEAT_GONE for status in heartbeats):
        met.append("a heartbeat was answered")
    if any(status in HEARTBEAT_GONE for status in heartbeats):
        met.append("a server-side action (TI deleted, marked or cleared) stopped the task")
    if any(isinstance(e, UserAction) for e in run.while_running):
        met.append("a user (or the scheduler's heartbeat timeout) acted on the task instance")
        if any(c.status in HEARTBEAT_GONE for c in terminal):
            met.append("a terminal call was refused after a user acted (409/404/410)")
    if any(isinstance(e, IgnoreSigterm) for e in run.while_running) and (observed.exit_code or 0) < 0:
        met.append("a runtime that traps SIGTERM was killed")
    if run.after_frame and observed.replies and (observed.exit_code or 0) < 0:
        met.append("the success overtime killed the runtime after its frame")
    return tuple(met)
def try_met(run: RuntimeRun, observed) -> tuple[str, ...]:
    """What a task runner try met, by what it observed: the task ended by ``sys.exit()``, its execution timeout ran
    out (the timer's ``on_kill`` on top of any SIGTERM's), and which state-change callbacks ran; for Hypothesis's
    statistics."""
    met = [f"callbacks that ran: {', '.join(observed.callbacks) or 'none'}"]
    if run.outcome == "SystemExit()" and EXECUTION_TIMEOUT not in run.features and observed.state is not None:
        met.append("the task ended by sys.exit() (SystemExit())")
    if EXECUTION_TIMEOUT in run.features and observed.on_kill_calls > (SIGTERM in run.features):
        met.append("the task's execution timeout ran out (on_kill called)")
    return tuple(met)


def attempt_met(scenario: Scenario, observed, release) -> tuple[str, ...]:
    """What of the widened world a supervisor attempt met (``release``'s model says where its events took the
    supervisor): for Hypothesis's statistics."""
    met = []
    if model_supervisor.live(scenario, release).killing:
        met.append("a runtime that handled SIGTERM lived on inside the kill")
    if any(isinstance(e, UserAction) for e in scenario.events):
        met.append("a user (or the scheduler's heartbeat timeout) acted on the task instance")
        if any(c.status in HEARTBEAT_GONE for c in observed.calls):
            met.append("a call or heartbeat was refused (404/409/410) after a user acted")
    if scenario.exit_code == HANG:
        met.append("a process that never exits: hung, nothing ended it" if observed.hung
                   else "a process that never exits: ended by a kill")
    return tuple(met)


#: A run of each single-shot kind (the supervisor's attempts come from ``machine_for``).
RUNS = {"runtime": runtime_runs, "coordinator": coordinator_runs}


def corpus(n: int, seed: int = 20261124) -> list[Scenario]:
    """``n`` scenarios drawn at random (seeded) over the full alphabets, for benchmarks and soak tests.

    Not for properties, which draw through Hypothesis (and shrink): this is a fixed, cheap sample.
    """
    rng = random.Random(seed)
    all_frames = [Send("TaskState", s) for s in TASK_STATE_STATES] + [Send(f) for f in FRAME_TYPES if f != "TaskState"]

    def event() -> Event:
        roll = rng.random()
        if roll < 0.5:
            return rng.choice(all_frames)
        if roll < 0.75:
            return Fault(rng.choice(FAULTABLE_CALLS), rng.choice(FAULT_KINDS))
        if roll < 0.93:
            return Heartbeat(rng.choice(HEARTBEAT_ANSWERS))
        return Overtime()

    return [Scenario(RunContext.from_server(rng.randint(1, 6), rng.randint(0, 5)),
                     tuple(event() for _ in range(rng.randint(0, 6))),
                     rng.choice([0, 0, 1, 3, 137, 255, -9, -15, -11, -6, -2]))
            for _ in range(n)]


def playable_only(run):
    """``run``, where a run the target cannot play is rejected with its reason instead of failing.

    A target raises ``NotImplementedError`` for a run it cannot play: on ``--server airflow``, a run context
    whose should_retry is not what the real server hands out (``impl.server.airflow_attempt.Unsupported``); on
    ``airflow-task-runner``, a run its release cannot have, such as a retry policy before 1.3.0. Inside a search
    Hypothesis rejects that example and counts the reason as an event (``--hypothesis-show-statistics`` lists
    it); anywhere else the error goes on, with its message.
    """
    def run_or_reject(example):
        try:
            return run(example)
        except NotImplementedError as e:
            if not currently_in_test_context():
                raise
            event("not playable here (rejected)", str(e).split(";")[0])
            reject()

    return run_or_reject
