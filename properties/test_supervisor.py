"""The supervisor's properties: conformance with the model, and each invariant of the design.

Invariants the pinned release is known to break are findings (``impl/frontdoor/findings.py``):
their test is a strict expected failure, and their minimal scenario is replayed on its own.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from impl.frontdoor.findings import FINDINGS
from impl.frontdoor.report import check_conformance, check_invariants
from impl.frontdoor.scenarios import machine_for
from model.invariants import SUPERVISOR_INVARIANTS
from model.scenario import Scenario
from properties.conftest import assert_reproduces, expect_finding, skip_the_model


def test_conformance(target):
    """Model and target observe the same thing for every scenario."""
    skip_the_model(target)
    run_state_machine_as_test(machine_for("Conformance", lambda s: check_conformance(target, s)))


@pytest.mark.parametrize("invariant", SUPERVISOR_INVARIANTS, ids=lambda i: i.__name__)
def test_invariant(target, invariant, request):
    """One invariant of the design, on every scenario, on the target's own observation."""
    finding = expect_finding(request, "supervisor", target.name, invariant.__name__)
    if finding:
        # The finding's own scenario first, so the expected failure does not hang on whether this
        # run's search happens to reach it; the search below runs once upstream has fixed it.
        check_invariants(target, Scenario.from_text(finding.scenario), (invariant,))
    run_state_machine_as_test(machine_for(invariant.__name__, lambda s: check_invariants(target, s, (invariant,))))


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda f: f.id)
def test_finding_still_reproduces(target, finding):
    """A finding's minimal scenario still breaks its invariant on the pinned release."""
    assert_reproduces(target, finding)
