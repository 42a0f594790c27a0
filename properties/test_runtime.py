"""The runtime's properties: the Python task runner against ``model.runtime``, and the runtime invariants.

Run against a runtime target (``--target airflow-task-runner``) or the model (``--target model``);
on a supervisor target they are skipped with the reason. Invariants the pinned release breaks are
findings (``properties/findings.py``, ``RUNTIME_FINDINGS``): strict expected failures, each with
its minimal run replayed on its own.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from impl.report import InvariantViolation
from model.runtime import RuntimeRun
from model.runtime_invariants import RUNTIME_INVARIANTS
from properties.findings import RUNTIME_FINDINGS, side_finding_for
from properties.runtime_strategies import (
    TargetUnavailable,
    check_runtime_conformance,
    check_runtime_invariants,
    load_side,
    runtime_runs,
)


def pytest_generate_tests(metafunc):
    if "runtime_target_name" in metafunc.fixturenames:
        metafunc.parametrize("runtime_target_name", metafunc.config.finalstate_targets, scope="session")


@pytest.fixture(scope="session")
def runtime_target(runtime_target_name):
    try:
        loaded = load_side(runtime_target_name, "runtime")
    except TargetUnavailable as e:
        pytest.skip(f"target {runtime_target_name}: {e}")
    yield loaded
    loaded.close()


def test_runtime_conformance(runtime_target):
    """The real task runner sends, decides and exits as ``model.runtime.python_runtime`` says."""
    if runtime_target.run is runtime_target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real runtime")

    @given(runtime_runs)
    def conforms(run):
        check_runtime_conformance(runtime_target, run)

    conforms()


@pytest.mark.parametrize("invariant", RUNTIME_INVARIANTS, ids=lambda i: i.__name__)
def test_runtime_invariant(runtime_target, invariant, request):
    """One runtime invariant of the design, on every generated try, on the target's own answer."""
    finding = side_finding_for("runtime", runtime_target.name, invariant.__name__)
    if finding:
        request.applymarker(pytest.mark.xfail(strict=True, raises=InvariantViolation, reason=finding.headline))

    @given(runtime_runs)
    def holds(run):
        check_runtime_invariants(runtime_target, run, (invariant,))

    holds()


@pytest.mark.parametrize("finding", [f for f in RUNTIME_FINDINGS if f.kind == "runtime"], ids=lambda f: f.id)
def test_runtime_finding_still_reproduces(runtime_target, finding):
    """A runtime finding's minimal run still breaks its invariant on the pinned release."""
    if runtime_target.name not in finding.targets:
        pytest.skip(f"{finding.id} is about {', '.join(finding.targets)}")
    invariant = next(i for i in RUNTIME_INVARIANTS if i.__name__ == finding.invariant)
    with pytest.raises(InvariantViolation, match=finding.invariant):
        check_runtime_invariants(runtime_target, RuntimeRun.from_text(finding.scenario), (invariant,))
