"""Exhaustive small scopes: the enumeration is complete for its scope, and a check of it can fail."""

from __future__ import annotations

import attrs
import pytest

from impl.search import exhaustive
from impl.search.exhaustive import CONTEXTS, EVENTS, EXITS, TRIES, check_exhaustively, enumerate_scenarios
from impl.targets.registry import model_target
from model import supervisor as model_supervisor
from model.supervisor import run as model_run


def test_every_sequence_in_scope_is_checked_or_reaches_a_state_already_checked():
    """Completeness up to the model's state: a one- or two-event sequence is enumerated, or its prefix was not
    expanded because it reached a known state, or it reaches a state some enumerated scenario reaches."""
    enumerated = {(s.context, s.execution_api_retries, s.events) for s, _, _ in enumerate_scenarios(2)}
    states = {(s.context, state) for s, state, _ in enumerate_scenarios(2)}
    for context in CONTEXTS:
        for tries in TRIES:
            for first in EVENTS:
                for events in [(first,), *((first, second) for second in EVENTS)]:
                    assert ((context, tries, events) in enumerated
                            or _same_state_reached(context, tries, events, states, depth=2)), (tries, events)
    assert len(enumerated) * len(EXITS) == sum(1 for _ in enumerate_scenarios(2))


def _same_state_reached(context, tries, events, states, depth) -> bool:
    from model import supervisor
    from model.scenario import Scenario

    sup = supervisor.start(Scenario(context, (), 0, tries))
    for event in events:
        if not sup.alive:
            return True  # the timeline ended: later events never happen
        sup = supervisor.monitor_step(sup, event)
    return (context, exhaustive._abstract(sup, depth - len(events))) in states


def test_tries_beyond_what_faults_can_spend_are_one_state():
    """The client's tries are told apart only while enough faults could still be armed to spend them."""
    from model import supervisor
    from model.scenario import RunContext, Scenario

    three, five = (supervisor.start(Scenario(RunContext(), (), 0, n)) for n in (3, 5))
    assert exhaustive._abstract(three, 2) == exhaustive._abstract(five, 2)
    assert exhaustive._abstract(three, 3) != exhaustive._abstract(five, 3)


def test_the_model_passes_every_scenario_of_two_events():
    """A complete regression check of the model in scope: conformance with itself and every invariant,
    every violation explained by a registered finding."""
    found = check_exhaustively("model", 2, workers=1)
    assert found.failures == ()
    assert found.scenarios == sum(1 for _ in exhaustive.in_scope(2))
    assert {"F1", "F2", "F3", "F7"} <= set(found.explained)


def test_a_target_that_differs_on_one_scenario_is_caught(monkeypatch):
    model = model_target()

    def off_by_one(scenario):
        observed = model_run(scenario)
        if scenario.exit_code == -9 and len(scenario.events) == 2:
            return attrs.evolve(observed, final_state="success")
        return observed

    monkeypatch.setattr(exhaustive, "load_target", lambda name, kind: attrs.evolve(model, run=off_by_one))
    found = check_exhaustively("model", 2, workers=1, max_failures=1)
    assert len(found.failures) >= 1 and found.failures[0].startswith("DISAGREEMENT")


def test_a_target_that_forgets_a_successful_heartbeat_is_caught(monkeypatch):
    """The failed-heartbeats count not reset by a success: a state the model's de-duplication cannot see, which the
    heartbeat scope (every sequence, not de-duplicated) reaches."""
    from model.scenario import HEARTBEAT_OK, Heartbeat

    model = model_target()

    def never_resets(scenario):
        without_successes = tuple(e for e in scenario.events if e != Heartbeat(HEARTBEAT_OK))
        return model_run(attrs.evolve(scenario, events=without_successes))

    monkeypatch.setattr(exhaustive, "load_target", lambda name, kind: attrs.evolve(model, run=never_resets))
    found = check_exhaustively("model", 1, workers=1, max_failures=1)
    assert found.failures and found.failures[0].startswith("DISAGREEMENT")
    assert "heartbeat 200" in found.failures[0]


def test_the_enumerations_states_end_as_the_model_runs_each_scenario():
    """The exhaustive check takes the model's expectation from the state the enumeration reached
    (``model.supervisor.close``) instead of running the model again: the two agree on every scenario."""
    for scenario, _, lived in exhaustive.in_scope(2):
        assert model_supervisor.close(lived, scenario.exit_code) == model_run(scenario), scenario.to_text()


def test_the_shares_cover_every_context_once_and_split_only_the_ones_left_over():
    for workers in range(1, 8):
        jobs = exhaustive.shares(CONTEXTS, workers)
        for context in CONTEXTS:
            parts = sorted(share for c, share in jobs if c == context)
            assert parts == [(k, parts[0][1]) for k in range(parts[0][1])], (workers, context, parts)
        split = [c for c, (_, n) in jobs if n > 1]
        assert len(set(split)) == len(CONTEXTS) % workers
        assert all(n == 1 for _, (_, n) in jobs[:len(jobs) - len(split)])  # the whole ones first, the split ones last
    assert [share for _, share in exhaustive.shares(CONTEXTS, 2)] == [(0, 1)] * 4 + [(0, 2), (1, 2)]


def test_two_workers_check_what_one_checks():
    """The same scenarios, states and findings however the scope is shared out (depth 1: cheap)."""
    one, two = (check_exhaustively("model", 1, workers=w) for w in (1, 2))
    assert (one.scenarios, one.states, one.explained, one.failures) == (two.scenarios, two.states, two.explained,
                                                                        two.failures)


def test_the_runtime_scope_has_every_policy_that_changes_a_decision_or_its_verdict():
    """Every (context, outcome, channel, features) of the scope is there, and a policy is left out only where an earlier
    one was decided and judged alike: R3's int delay, decided as a FAIL is, is kept for its verdict."""
    from model.runtime import python_runtime
    from model.runtime_invariants import runtime_violations

    runs = [run for run, _, _ in exhaustive.runtime_scope(0)]
    kept = {(r.context, r.outcome, r.comms, r.policy) for r in runs}
    for context in CONTEXTS:
        for run in (r for r in runs if r.context == context and r.policy is None):
            for policy in exhaustive.SCOPE_POLICIES:
                if (context, run.outcome, run.comms, policy) in kept:
                    continue
                other = attrs.evolve(run, policy=policy)
                judged = (python_runtime(other), runtime_violations(other, python_runtime(other)))
                assert any((python_runtime(k), runtime_violations(k, python_runtime(k))) == judged
                           for k in runs if (k.context, k.outcome, k.comms) == (context, run.outcome, run.comms))
    assert any(r.policy is not None and r.policy.action == "retry_int_delay" for r in runs)


def test_the_coordinator_scope_meets_every_event_with_every_outcome():
    """Every event of the world, with every outcome, from a runtime that traps SIGTERM and one that does not, is in
    scope, or reaches a supervisor state a run in scope reaches (a heartbeat answered 200 changes nothing)."""
    from impl.search.scenarios import COORDINATOR_WORLD
    from model import supervisor
    from model.coordinator import COORDINATOR_OUTCOMES
    from model.scenario import IgnoreSigterm, Scenario

    scope = [run for run, _, _ in exhaustive.coordinator_scope(1)]
    runs = {(r.context, r.execution_api_retries, r.while_running, r.outcome) for r in scope}
    states = set()
    for r in scope:
        sup = supervisor.start(Scenario(r.context, (), 0, r.execution_api_retries, rendered_map_index=None))
        for e in r.while_running:
            sup = supervisor.monitor_step(sup, e)
        states.add((r.context, exhaustive._abstract(sup, 0)))
    for context in CONTEXTS:
        for tries in exhaustive.TRIES:
            for start in ((), (IgnoreSigterm(),)):
                for event in COORDINATOR_WORLD:
                    sup = supervisor.start(Scenario(context, (), 0, tries, rendered_map_index=None))
                    for e in (*start, event):
                        sup = supervisor.monitor_step(sup, e)
                    for outcome in COORDINATOR_OUTCOMES:
                        assert ((context, tries, (*start, event), outcome) in runs
                                or (context, exhaustive._abstract(sup, 0)) in states), (context, tries, event)
    assert len(scope) == len(set(scope))


@pytest.mark.parametrize("kind", ["runtime", "coordinator"])
def test_the_runtime_scopes_expect_what_the_model_lives_afresh(kind):
    """As for the supervisor's scope: the model as its own target is not lived again in scope, so what the scope
    expects of a try is what the model's reference makes of it from scratch."""
    model = model_target(kind)
    scope = exhaustive.SCOPES[kind]
    runs = scope.runs(scope.default_depth, CONTEXTS, model.release, exhaustive.runtimes_of(model))
    for count, (run, _, lived) in enumerate(runs, start=1):
        assert scope.expected(run, lived) == model.reference(run), run.to_text()
    assert count > 1000


@pytest.mark.parametrize("kind", ["runtime", "coordinator"])
def test_the_model_passes_its_runtime_scopes(kind):
    found = check_exhaustively("model", None, workers=1, kind=kind)
    assert found.failures == () and found.scenarios > 1000


def test_a_coordinator_runtime_that_does_not_fail_closed_is_caught_in_scope(monkeypatch):
    from impl.targets.registry import model_target as model_of
    from model.coordinator import FAILS_CLOSED_NEVER, CoordinatorRuntime, coordinator_attempt

    model = model_of("coordinator")
    loose = attrs.evolve(model, run=lambda run: coordinator_attempt(run, CoordinatorRuntime(fails_closed=FAILS_CLOSED_NEVER)))
    monkeypatch.setattr(exhaustive, "load_target", lambda name, kind: loose)
    found = check_exhaustively("model", 1, workers=1, max_failures=100, kind="coordinator")
    assert any("fault retry permanent" in f and "exit_code=0" in f for f in found.failures)


def test_the_parts_of_a_sharded_scope_add_up_to_the_scope():
    """``--shard K/N``: N parts, each on two workers (a context split between them as well), check every run of the
    scope once between them, each part counting the whole scope's states."""
    whole = check_exhaustively("model", 1, workers=2)
    parts = [check_exhaustively("model", 1, workers=2, shard=(k, 3)) for k in range(3)]
    assert sum(p.scenarios for p in parts) == whole.scenarios
    assert all(0 < p.scenarios < whole.scenarios and p.states == whole.states for p in parts)
    for finding, n in whole.explained.items():
        assert sum(p.explained.get(finding, 0) for p in parts) == n, finding
    with pytest.raises(ValueError, match="shard 3 of 3: there is none"):
        check_exhaustively("model", 1, workers=1, shard=(3, 3))


@pytest.mark.parametrize("argv, said", [
    (["--exhaustive", "1", "--shard", "0/2"], "'0/2' is no part K/N of the scope"),
    (["--exhaustive", "1", "--shard", "3"], "'3' is no part K/N of the scope"),
    (["--shard", "1/2"], "--shard parts the exhaustive scope between machines: it needs --exhaustive"),
    (["--shard", "1/1"], "--shard parts the exhaustive scope between machines: it needs --exhaustive"),
])
def test_a_shard_that_is_none_is_refused_saying_why(argv, said, capsys):
    from impl.frontdoor.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["check", "--target", "model", *argv])
    assert said in f"{refused.value} {capsys.readouterr().err}"


def test_a_part_of_the_scope_says_which_it_is(capsys):
    from impl.frontdoor.cli import main

    assert main(["check", "--target", "model", "--exhaustive", "1", "--shard", "2/3", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "(part 2 of 3 of the scope)" in out and "no disagreement, no unexplained violation" in out
