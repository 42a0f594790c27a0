"""Coordinator-mode runtimes end to end, in their supervisor's world: a runtime under the real supervisor, against the model.

Run against ``--target reference-runtime``, ``--target 'cmd:PROGRAM ARGS...'`` (any runtime that keeps
``runtimes/README.md``), or ``--target model`` (the contract's runtime, ``model.coordinator``, composed with the
supervisor model). Each try meets a world drawn with it: faults on its terminal call, heartbeat answers and the
server's actions behind them, a trapped SIGTERM, the success overtime. The invariants are the seed's acceptance
criteria (apache/airflow#67797: a failing task whose TI has retries left is recorded UP_FOR_RETRY, not FAILED; one
without is recorded FAILED) and the fail-closed exit that keeps a failure the supervisor could not take from being
recorded as something else.
"""

from __future__ import annotations

import pytest
from hypothesis import event

from impl.catalogue.findings import COORDINATOR_FINDINGS
from impl.search.report import check_conformance
from impl.search.scenarios import coordinator_runs, world_met
from model.runtime_invariants import COORDINATOR_INVARIANTS
from properties.conftest import assert_reproduces, assert_scope_holds, counted, holds_for_all, searching, skip_the_model


def _met(run, observed, profile=None):
    for what in world_met(run, observed, profile):
        event(f"the world met: {what}")
    return observed


def _explained_by(names):
    event("explained by the model of", ", ".join(names))


def test_coordinator_conformance(coordinator_target):
    """The runtime under the real supervisor records what the model (runtime + supervisor) says, in what decides
    the attempt: the model of the SDK profile it is declared to be (``--profile``), or, undeclared, of the contract or
    of any profile (``model.sdks.PROFILES``), those that explain each run counted in the statistics."""
    skip_the_model(coordinator_target)
    holds_for_all(coordinator_runs,
                  lambda run: _met(run, counted(check_conformance(coordinator_target, run, on_explained=_explained_by)),
                                   coordinator_target.profile),
                  coordinator_target.live_ahead)


@pytest.mark.parametrize("invariant", COORDINATOR_INVARIANTS, ids=lambda i: i.__name__)
def test_coordinator_invariant(coordinator_target, invariant):
    """The seed's acceptance criteria and the fail-closed exit, on every generated try."""
    check = searching(coordinator_target, invariant)
    holds_for_all(coordinator_runs, lambda run: _met(run, check(run), coordinator_target.profile),
                  coordinator_target.live_ahead)


@pytest.mark.lives_ahead("scope")
def test_every_small_try(coordinator_target, record_property):
    """Every try of the coordinator scope (each outcome with each event of its world, a trapped SIGTERM, the overtime,
    every run context and number of client tries: ``impl.search.exhaustive.coordinator_scope``): conformance and
    every invariant. Complete where the search samples."""
    assert_scope_holds(coordinator_target, record_property)


@pytest.mark.parametrize("finding", COORDINATOR_FINDINGS, ids=lambda f: f.id)
def test_coordinator_finding_still_reproduces(coordinator_target, finding, request):
    """A coordinator finding's minimal run still breaks its invariant on the runtime it is about."""
    assert_reproduces(request, coordinator_target, finding)
