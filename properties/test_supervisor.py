"""The supervisor's properties: conformance with the model, and each invariant of the design.

Invariants the pinned release is known to break are findings (``impl/frontdoor/findings.py``):
each invariant's search counts the violations a finding's signature explains and goes on; each
finding's own minimal scenario is a strict expected failure.
"""

from __future__ import annotations

import pytest

from impl.frontdoor.findings import FINDINGS
from impl.frontdoor.report import check_conformance
from impl.frontdoor.scenarios import machine_for, run_machine
from model.invariants import SUPERVISOR_INVARIANTS
from properties.conftest import assert_reproduces, counted, searching, skip_the_model


def test_conformance(target):
    """Model and target observe the same thing for every scenario."""
    skip_the_model(target)
    run_machine(machine_for("Conformance", lambda s: counted(check_conformance(target, s))))


@pytest.mark.parametrize("invariant", SUPERVISOR_INVARIANTS, ids=lambda i: i.__name__)
def test_invariant(target, invariant):
    """One invariant of the design, on every scenario, on the target's own observation: the known
    findings are counted, and any other violation fails."""
    run_machine(machine_for(invariant.__name__, searching(target, invariant)))


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda f: f.id)
def test_finding_still_reproduces(target, finding, request):
    """A finding's minimal scenario still breaks its invariant on the pinned release."""
    assert_reproduces(request, target, finding)
