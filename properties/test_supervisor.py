"""The supervisor's properties: conformance with the model, and each invariant of the design.

Invariants the pinned release is known to break are findings (``properties/findings.py``):
their test is a strict expected failure, and their minimal scenario is replayed on its own.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from impl.report import InvariantViolation, check_conformance, check_invariants
from model.invariants import SUPERVISOR_INVARIANTS
from model.scenario import Scenario
from properties.findings import FINDINGS, finding_for
from properties.machine import machine_for


def test_conformance(target):
    """Model and target observe the same thing for every scenario."""
    if target.run is target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real targets")
    run_state_machine_as_test(machine_for("Conformance", lambda s: check_conformance(target, s)))


@pytest.mark.parametrize("invariant", SUPERVISOR_INVARIANTS, ids=lambda i: i.__name__)
def test_invariant(target, invariant, request):
    """One invariant of the design, on every scenario, on the target's own observation."""
    finding = finding_for(target.name, invariant.__name__)
    if finding:
        request.applymarker(pytest.mark.xfail(strict=True, raises=InvariantViolation, reason=finding.headline))
        # The finding's own scenario first, so the expected failure does not hang on whether this
        # run's search happens to reach it; the search below runs once upstream has fixed it.
        check_invariants(target, Scenario.from_text(finding.scenario), (invariant,))
    run_state_machine_as_test(machine_for(invariant.__name__, lambda s: check_invariants(target, s, (invariant,))))


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda f: f.id)
def test_finding_still_reproduces(target, finding):
    """A finding's minimal scenario still breaks its invariant on the pinned release."""
    if target.name not in finding.targets:
        pytest.skip(f"{finding.id} is about {', '.join(finding.targets)}")
    invariant = next(i for i in SUPERVISOR_INVARIANTS if i.__name__ == finding.invariant)
    with pytest.raises(InvariantViolation, match=finding.invariant):
        check_invariants(target, Scenario.from_text(finding.scenario), (invariant,))
