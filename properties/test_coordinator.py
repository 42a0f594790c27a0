"""Coordinator-mode runtimes end to end: a runtime under the real supervisor, against the model.

Run against ``--target reference-runtime``, ``--target 'cmd:PROGRAM ARGS...'`` (any runtime that keeps
``runtimes/README.md``), or ``--target model`` (the fixed coordinator runtime model composed with the
supervisor model). The attempt invariants are the seed's acceptance criteria (apache/airflow#67797):
a failing task whose TI has retries left is recorded UP_FOR_RETRY, not FAILED; one without is
recorded FAILED.
"""

from __future__ import annotations

import pytest

from impl.frontdoor.report import check_conformance
from impl.frontdoor.scenarios import coordinator_runs
from model.runtime_invariants import ATTEMPT_INVARIANTS
from properties.conftest import counted, holds_for_all, searching, skip_the_model


def test_coordinator_conformance(coordinator_target):
    """The runtime under the real supervisor records what the model (runtime + supervisor) says."""
    skip_the_model(coordinator_target)
    holds_for_all(coordinator_runs, lambda run: counted(check_conformance(coordinator_target, run)))


@pytest.mark.parametrize("invariant", ATTEMPT_INVARIANTS, ids=lambda i: i.__name__)
def test_coordinator_invariant(coordinator_target, invariant):
    """The seed's acceptance criteria, on every generated try."""
    holds_for_all(coordinator_runs, searching(coordinator_target, invariant))
