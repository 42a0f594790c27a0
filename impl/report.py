"""How a checked scenario reads to a person: the trace, each side's observation, the replay command.

Two kinds of failure are kept apart: a ``Disagreement`` (the model and the target
observed different things for the same scenario) and an ``InvariantViolation`` (a
promise of the design broke on one side's observation).
"""

from __future__ import annotations

import shlex

import attrs

from model.invariants import Invariant, Violation, violations
from model.scenario import Observation, Scenario


class Disagreement(AssertionError):
    """The model and a real implementation observed different things for one scenario."""


class InvariantViolation(AssertionError):
    """An invariant of the design does not hold of a target's observation."""


def replay_command(target: str, scenario: Scenario) -> str:
    return f"finalstate replay --target {target} {shlex.quote(scenario.to_text())}"


def trace(scenario: Scenario) -> str:
    head, *rest = scenario.to_lines()
    return "\n".join([f"  {head}", *(f"    {line}" for line in rest)])


def observation_block(title: str, observation: Observation) -> str:
    return "\n".join([f"  {title}:", *(f"    {line}" for line in observation.to_lines())])


def differing_fields(a: Observation, b: Observation) -> list[str]:
    return [f.name for f in attrs.fields(type(a)) if getattr(a, f.name) != getattr(b, f.name)]


def disagreement_report(target: str, scenario: Scenario, model: Observation, real: Observation) -> str:
    return "\n".join([
        f"DISAGREEMENT: model and {target} differ in {', '.join(differing_fields(model, real))}",
        "scenario:",
        trace(scenario),
        observation_block("model", model),
        observation_block(target, real),
        f"replay: {replay_command(target, scenario)}",
    ])


def violation_report(target: str, scenario: Scenario, observation: Observation, found: tuple[Violation, ...]) -> str:
    return "\n".join([
        f"VIOLATION on {target}: " + "; ".join(sorted({v.invariant for v in found})),
        *(f"  - {v}" for v in found),
        "scenario:",
        trace(scenario),
        observation_block(target, observation),
        f"replay: {replay_command(target, scenario)}",
    ])


def check_conformance(target, scenario: Scenario) -> Observation:
    """Raise ``Disagreement`` unless the target observes what its reference model does."""
    expected, observed = target.reference(scenario), target.run(scenario)
    if expected != observed:
        raise Disagreement(disagreement_report(target.name, scenario, expected, observed))
    return observed


def check_observation(target_name: str, scenario: Scenario, observed: Observation,
                      invariants: tuple[Invariant, ...]) -> Observation:
    """Raise ``InvariantViolation`` if any of ``invariants`` fails on ``observed``."""
    found = violations(scenario, observed, invariants)
    if found:
        raise InvariantViolation(violation_report(target_name, scenario, observed, found))
    return observed


def check_invariants(target, scenario: Scenario, invariants: tuple[Invariant, ...]) -> Observation:
    """Raise ``InvariantViolation`` if any of ``invariants`` fails on the target's observation."""
    return check_observation(target.name, scenario, target.run(scenario), invariants)


def check_scenario(target, scenario: Scenario, invariants: tuple[Invariant, ...]) -> Observation:
    """Conformance, then ``invariants``, with one run of the target and one of the model."""
    return check_observation(target.name, scenario, check_conformance(target, scenario), invariants)
