"""Coordinator-mode runtimes end to end: the reference runtime under the real supervisor, against the model.

Run against ``--target reference-runtime`` (or ``--target model``: the fixed coordinator runtime model
composed with the supervisor model). The attempt invariants are the seed's acceptance criteria
(apache/airflow#67797): a failing task whose TI has retries left is recorded UP_FOR_RETRY, not FAILED;
one without is recorded FAILED.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from model.runtime_invariants import ATTEMPT_INVARIANTS
from properties.runtime_strategies import (
    TargetUnavailable,
    check_coordinator_conformance,
    check_coordinator_invariants,
    coordinator_runs,
    load_side,
)


def pytest_generate_tests(metafunc):
    if "coordinator_target_name" in metafunc.fixturenames:
        metafunc.parametrize("coordinator_target_name", metafunc.config.finalstate_targets, scope="session")


@pytest.fixture(scope="session")
def coordinator_target(coordinator_target_name):
    try:
        loaded = load_side(coordinator_target_name, "coordinator")
    except TargetUnavailable as e:
        pytest.skip(f"target {coordinator_target_name}: {e}")
    yield loaded
    loaded.close()


def test_coordinator_conformance(coordinator_target):
    """The runtime under the real supervisor records what the model (runtime + supervisor) says."""
    if coordinator_target.run is coordinator_target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real runtime")

    @given(coordinator_runs)
    def conforms(run):
        check_coordinator_conformance(coordinator_target, run)

    conforms()


@pytest.mark.parametrize("invariant", ATTEMPT_INVARIANTS, ids=lambda i: i.__name__)
def test_coordinator_invariant(coordinator_target, invariant):
    """The seed's acceptance criteria, on every generated try."""

    @given(coordinator_runs)
    def holds(run):
        check_coordinator_invariants(coordinator_target, run, (invariant,))

    holds()
