"""The runtime's properties: the Python task runner against ``model.runtime``, and the runtime invariants.

Run against a runtime target (``--target airflow-task-runner``) or the model (``--target model``);
on a supervisor target they are skipped with the reason. Invariants the pinned release breaks are
findings (``impl/catalogue/findings.py``, ``RUNTIME_FINDINGS``): each search counts them and goes on;
each finding's minimal run is a strict expected failure.
"""

from __future__ import annotations

import pytest
from hypothesis import event

from impl.catalogue.findings import RUNTIME_FINDINGS
from impl.search.report import check_conformance
from impl.search.scenarios import runtime_runs, try_met
from model.runtime_invariants import RUNTIME_INVARIANTS
from properties.conftest import assert_reproduces, assert_scope_holds, counted, holds_for_all, searching, skip_the_model


def _met(run, observed):
    for what in try_met(run, observed):
        event("the try met", what)
    return observed


def test_runtime_conformance(runtime_target):
    """The real task runner sends, decides, exits and runs its callbacks as ``model.runtime.python_runtime`` says."""
    skip_the_model(runtime_target)
    holds_for_all(runtime_runs, lambda run: _met(run, counted(check_conformance(runtime_target, run))))


@pytest.mark.parametrize("invariant", RUNTIME_INVARIANTS, ids=lambda i: i.__name__)
def test_runtime_invariant(runtime_target, invariant):
    """One runtime invariant of the design, on every generated try, on the target's own answer: the
    known findings are counted, and any other violation fails."""
    holds_for_all(runtime_runs, searching(runtime_target, invariant))


def test_every_small_try(runtime_target, record_property):
    """Every try of the task runner's small scope (outcome × retry policy × run context × channel × a feature,
    ``impl.search.exhaustive.runtime_scope``): conformance and every runtime invariant, the known findings counted.
    Complete where the search samples: every policy meets every failure."""
    assert_scope_holds(runtime_target, record_property)


@pytest.mark.parametrize("finding", RUNTIME_FINDINGS, ids=lambda f: f.id)
def test_runtime_finding_still_reproduces(runtime_target, finding, request):
    """A runtime finding's minimal run still breaks its invariant on the pinned release."""
    assert_reproduces(request, runtime_target, finding)
