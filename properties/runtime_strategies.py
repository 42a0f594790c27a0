"""What the runtime properties generate, and how a failing runtime check reads.

The runtime is single-shot (one try in, one answer out), so its properties are plain
``@given`` tests over ``RuntimeRun`` / ``CoordinatorRun`` values; the lifecycle machine
(``properties/test_lifecycle.py``) strings tries together.
"""

from __future__ import annotations

import shlex

from hypothesis import strategies as st

from impl.report import Disagreement, InvariantViolation
from impl.targets import Target, TargetUnavailable, WrongKindOfTarget, load_target
from model import runtime as model_runtime
from model.runtime import (
    COMMS_MODES,
    COORDINATOR_OUTCOMES,
    PYTHON_OUTCOMES,
    CoordinatorRun,
    Policy,
    RuntimeObservation,
    RuntimeRun,
)
from model.runtime_invariants import runtime_violations
from properties.machine import run_contexts

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


def load_side(name: str, kind: str) -> Target:
    """The target ``name`` for properties of ``kind``; ``model`` is the model of that side.

    Raises ``TargetUnavailable`` (``WrongKindOfTarget`` for a target of another side).
    """
    if name == "model" and kind == "runtime":
        return Target("model", model_runtime.python_runtime, model_runtime.python_runtime, kind="runtime")
    if name == "model" and kind == "coordinator":
        return Target("model", coordinator_end_to_end, coordinator_end_to_end, kind="coordinator")
    return load_target(name, kind)


def coordinator_end_to_end(run: CoordinatorRun):
    """The model of a coordinator-mode try end to end: the fixed runtime model, then the supervisor model."""
    return model_runtime.compose(run.context, model_runtime.coordinator_runtime(run))


def replay_command(target: str, run) -> str:
    return f"python -m impl.runtime_replay --target {target} {shlex.quote(run.to_text())}"


def _block(title: str, observed: RuntimeObservation) -> list[str]:
    return [f"  {title}:", *(f"    {line}" for line in observed.to_lines())]


def check_runtime_conformance(target: Target, run: RuntimeRun) -> RuntimeObservation:
    """Raise ``Disagreement`` unless the runtime target does what ``model.runtime`` says."""
    expected, observed = target.reference(run), target.run(run)
    if expected != observed:
        raise Disagreement("\n".join([
            f"DISAGREEMENT: model.runtime and {target.name} differ",
            f"  run: {run.to_text()}",
            *_block("model", expected), *_block(target.name, observed),
            f"replay: {replay_command(target.name, run)}",
        ]))
    return observed


def check_runtime_invariants(target: Target, run: RuntimeRun, invariants) -> RuntimeObservation:
    """Raise ``InvariantViolation`` if any of ``invariants`` fails on the runtime target's answer."""
    observed = target.run(run)
    found = runtime_violations(run, observed, invariants)
    if found:
        recorded = model_runtime.compose(run.context, observed)
        raise InvariantViolation("\n".join([
            f"VIOLATION on {target.name}: " + "; ".join(sorted({v.invariant for v in found})),
            *(f"  - {v}" for v in found),
            f"  run: {run.to_text()}",
            *_block(target.name, observed),
            f"  the supervisor (model) records: final_state={recorded.final_state} row={recorded.row}",
            f"replay: {replay_command(target.name, run)}",
        ]))
    return observed


__all__ = [
    "TargetUnavailable", "WrongKindOfTarget", "load_side", "runtime_runs", "coordinator_runs", "policies",
    "check_runtime_conformance", "check_runtime_invariants", "coordinator_end_to_end", "replay_command",
]


def check_coordinator_conformance(target: Target, run: CoordinatorRun):
    """Raise ``Disagreement`` unless the coordinator target records what the composed model does."""
    expected, observed = target.reference(run), target.run(run)
    if expected != observed:
        raise Disagreement("\n".join([
            f"DISAGREEMENT: model (coordinator runtime + supervisor) and {target.name} differ",
            f"  run: {run.to_text()}",
            "  model:", *(f"    {line}" for line in expected.to_lines()),
            f"  {target.name}:", *(f"    {line}" for line in observed.to_lines()),
            f"replay: {replay_command(target.name, run)}",
        ]))
    return observed


def check_coordinator_invariants(target: Target, run: CoordinatorRun, invariants):
    """Raise ``InvariantViolation`` if an attempt invariant fails on the coordinator target's attempt.

    The message's first line after the header reads like the seed's report:
    ``try_number=1 max_tries=1 should_retry=true; task error → exit 0 → FAILED, expected UP_FOR_RETRY``.
    """
    from model.runtime import COORDINATOR_FAILURES
    from model.runtime_invariants import attempt_violations

    observed = target.run(run)
    found = attempt_violations(run.context, run.outcome in COORDINATOR_FAILURES, observed, invariants)
    if found:
        expected = [v.message.split("expected ", 1)[1].split(" ", 1)[0] for v in found]
        raise InvariantViolation("\n".join([
            f"VIOLATION on {target.name}: " + "; ".join(sorted({v.invariant for v in found})),
            f"  {run.to_text()} → exit {observed.exit_code} → {observed.final_state.upper()}, "
            f"expected {', '.join(expected)}",
            *(f"  - {v}" for v in found),
            f"  {target.name}:", *(f"    {line}" for line in observed.to_lines()),
            f"replay: {replay_command(target.name, run)}",
        ]))
    return observed
