"""Coordinator-mode runtimes end to end: a runtime under the real supervisor, against the model.

Run against ``--target reference-runtime`` (or ``--target model``: the fixed coordinator runtime model
composed with the supervisor model). The attempt invariants are the seed's acceptance criteria
(apache/airflow#67797): a failing task whose TI has retries left is recorded UP_FOR_RETRY, not FAILED;
one without is recorded FAILED.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from impl.frontdoor.report import check_conformance, check_invariants
from impl.frontdoor.scenarios import coordinator_runs
from model.runtime_invariants import ATTEMPT_INVARIANTS
from properties.conftest import expect_finding


def test_coordinator_conformance(coordinator_target):
    """The runtime under the real supervisor records what the model (runtime + supervisor) says."""
    if coordinator_target.run is coordinator_target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real runtime")

    @given(coordinator_runs)
    def conforms(run):
        check_conformance(coordinator_target, run)

    conforms()


@pytest.mark.parametrize("invariant", ATTEMPT_INVARIANTS, ids=lambda i: i.__name__)
def test_coordinator_invariant(coordinator_target, invariant, request):
    """The seed's acceptance criteria, on every generated try."""
    expect_finding(request, "coordinator", coordinator_target.name, invariant.__name__)

    @given(coordinator_runs)
    def holds(run):
        check_invariants(coordinator_target, run, (invariant,))

    holds()
