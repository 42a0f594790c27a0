"""What the checker generates: supervisor attempts (a Hypothesis state machine), runtime and coordinator tries.

An attempt is a run context, a few events (frames sent, API faults, heartbeat answers,
overtime) and an exit, drawn whole and checked on the target. One machine run lives several
attempts in a row, so the shrinker can drop whole attempts as well as single events.
"""

from __future__ import annotations

import random
from typing import Callable

from hypothesis import settings, strategies as st, target
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from model.runtime import COMMS_MODES, COORDINATOR_OUTCOMES, PYTHON_OUTCOMES, CoordinatorRun, Policy, RuntimeRun
from model.scenario import (
    FAULT_KINDS,
    FAULTABLE_CALLS,
    FRAME_TYPES,
    HEARTBEAT_ANSWERS,
    HEARTBEAT_ERROR,
    TASK_STATE_STATES,
    Event,
    Fault,
    Heartbeat,
    Overtime,
    RunContext,
    Scenario,
    Send,
)


@st.composite
def run_contexts(draw) -> RunContext:
    """Counts the server could hand out; now and then a should_retry that disagrees with them."""
    try_number = draw(st.integers(1, 6))
    max_tries = draw(st.integers(0, 5))
    context = RunContext.from_server(try_number, max_tries)
    if draw(st.integers(0, 7)) == 7:  # shrinks towards a consistent context
        context = RunContext(try_number, max_tries, not context.should_retry)
    return context


frames = st.one_of(
    st.builds(Send, st.just("TaskState"), st.sampled_from(TASK_STATE_STATES)),
    st.builds(Send, st.sampled_from([f for f in FRAME_TYPES if f != "TaskState"])),
)
faults = st.builds(Fault, st.sampled_from(FAULTABLE_CALLS), st.sampled_from(FAULT_KINDS))
#: Clean exits, ordinary failures, and deaths by the signals that matter (KILL, TERM, SEGV, ABRT, INT, HUP).
exit_codes = st.one_of(st.just(0), st.integers(1, 255), st.sampled_from([-9, -15, -11, -6, -2, -1]))

#: Every event an attempt can have: each frame, each fault, each heartbeat answer, the success overtime.
EVENTS: tuple[Event, ...] = (
    *(Send("TaskState", s) for s in TASK_STATE_STATES), *(Send(f) for f in FRAME_TYPES if f != "TaskState"),
    *(Fault(c, k) for c in FAULTABLE_CALLS for k in FAULT_KINDS),
    *(Heartbeat(a) for a in HEARTBEAT_ANSWERS), Overtime(),
)
#: One event of an attempt: one draw from the alphabet (frames first: the shrinker prefers them).
events = st.sampled_from(EVENTS)
#: One attempt, whole: its run context, up to ten events, its exit. Shrinks towards fewer, simpler events.
scenarios = st.builds(Scenario, run_contexts(), st.lists(events, max_size=10).map(tuple), exit_codes)

Check = Callable[[Scenario], object]

#: The events of an attempt, on average, when each step of the machine was one event: a profile's
#: ``stateful_step_count`` is divided by it, so an example lives as many attempts as it did then.
STEPS_PER_ATTEMPT = 6


class AttemptMachine(RuleBasedStateMachine):
    """Subclassed per check by ``machine_for``; ``check`` raises when the scenario fails it.

    Each step is one whole attempt, drawn at once: no preconditions to satisfy, so no draw is
    thrown away; the shrinker drops whole attempts and shortens each one's events.
    """

    check: Check

    def __init__(self):
        super().__init__()
        self.failed_heartbeats_in_a_row = 0

    @rule(scenario=scenarios)
    def attempt(self, scenario):
        self.failed_heartbeats_in_a_row = max(self.failed_heartbeats_in_a_row, _failed_heartbeats_in_a_row(scenario))
        type(self).check(scenario)

    def teardown(self):
        # Plain generation rarely strings three failed heartbeats together, the supervisor's kill
        # after MAX_FAILED_HEARTBEATS: steer towards it (coverage and mutants showed the gap).
        target(float(self.failed_heartbeats_in_a_row), label="failed heartbeats in a row")


def _failed_heartbeats_in_a_row(scenario: Scenario) -> int:
    longest = run = 0
    for event in scenario.events:
        if isinstance(event, Heartbeat):
            run = run + 1 if event.answer == HEARTBEAT_ERROR else 0
            longest = max(longest, run)
    return longest


def run_machine(machine: type[RuleBasedStateMachine], profile: settings | None = None) -> None:
    """Run ``machine`` under ``profile`` (default: the loaded one), living as many attempts per example as
    ``stateful_step_count`` events allow."""
    profile = profile or settings.default
    run_state_machine_as_test(machine, settings=settings(
        profile, stateful_step_count=max(1, profile.stateful_step_count // STEPS_PER_ATTEMPT)))


def machine_for(name: str, check: Check) -> type[AttemptMachine]:
    """A machine class whose every attempt is checked by ``check``."""
    return type(name, (AttemptMachine,), {"check": staticmethod(check)})


#: A policy's reason: a word, and one past the 500 characters ``_finalize_task_failure`` keeps.
REASONS = ("flaky", "r" * 600)

policies = st.one_of(
    st.none(),
    st.builds(Policy, st.sampled_from(["default", "fail", "raises", "interrupted"])),
    st.builds(Policy, st.just("retry"), st.none() | st.integers(0, 3600), st.none() | st.sampled_from(REASONS)),
)
#: One try of a Python task; shrinks towards a consistent context, a returning task, no policy, a working channel.
runtime_runs = st.builds(RuntimeRun, run_contexts(), st.sampled_from(PYTHON_OUTCOMES), policies, st.sampled_from(COMMS_MODES))
coordinator_runs = st.builds(CoordinatorRun, run_contexts(), st.sampled_from(COORDINATOR_OUTCOMES))
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
