"""The supervisor's properties: conformance with the model, and each invariant of the design.

Invariants the pinned release is known to break are findings (``impl/catalogue/findings.py``):
each invariant's search counts the violations a finding's signature explains and goes on; each
finding's own minimal scenario is a strict expected failure.
"""

from __future__ import annotations

import pytest
from hypothesis import event

from impl.catalogue.findings import FINDINGS
from impl.search.report import check_conformance
from impl.search.scenarios import EXIT_CODES, attempt_met, machine_for, run_machine
from impl.releases.adapters import model_release
from model.invariants import SUPERVISOR_INVARIANTS
from model.scenario import (AWAITING_INPUT, DEFERRED, FAILED, REMOVED, SERVER_TERMINATED, SKIPPED, SUCCESS, UP_FOR_RESCHEDULE,
                            UP_FOR_RETRY)
from model.supervisor import final_state
from properties.conftest import assert_reproduces, assert_scope_holds, counted, searching, skip_the_model


def _met(target, scenario, observed):
    for what in attempt_met(scenario, observed, target.release):
        event(f"the world met: {what}")
    return observed


def test_conformance(target):
    """Model and target observe the same thing for every scenario."""
    skip_the_model(target)
    run_machine(machine_for("Conformance", lambda s: _met(target, s, counted(check_conformance(target, s))),
                            target.attempts_per_step))


@pytest.mark.parametrize("invariant", SUPERVISOR_INVARIANTS, ids=lambda i: i.__name__)
def test_invariant(target, invariant):
    """One invariant of the design, on every scenario, on the target's own observation: the known
    findings are counted, and any other violation fails."""
    check = searching(target, invariant)
    run_machine(machine_for(invariant.__name__, lambda s: _met(target, s, check(s)), target.attempts_per_step))


#: Every state the supervisor can hold when it decides: none, each a frame or call can set, a server termination
#: (a release holds those it knows: ``model.release.Release.holds``).
HELD_STATES = (None, SUCCESS, FAILED, SKIPPED, REMOVED, UP_FOR_RETRY, UP_FOR_RESCHEDULE, DEFERRED, AWAITING_INPUT,
               SERVER_TERMINATED)


def test_final_state_on_its_whole_domain(target):
    """The target's ``final_state`` decision equals the model's for the installed release on every exit code, held
    state the release knows and should_retry, including pairs no attempt of the alphabet reaches (a runtime that
    traps SIGTERM and exits 1 after the server terminated it, say)."""
    if target.final_state is None:
        pytest.skip(f"{target.name} offers no final_state decision to call alone"
                    + (" (the model is its own reference)" if target.name == "model" else ""))
    release = model_release()
    decided = [(code, held, retry, target.final_state(code, held, retry), final_state(code, held, retry, release))
               for code in EXIT_CODES for held in HELD_STATES if release.holds(held) for retry in (False, True)]
    differ = [d for d in decided if d[3] != d[4]]
    assert not differ, "\n".join(f"exit {c}, held {h}, should_retry {r}: {target.name} {got}, model of {release} {want}"
                                  for c, h, r, got, want in differ[:20])


def test_every_small_scenario(target, record_property):
    """Every scenario of up to ``DEFAULT_DEPTH`` events over the whole alphabet (de-duplicated by the model's
    state, ``impl/search/exhaustive.py``): conformance and every invariant, the known findings counted.
    Complete where Hypothesis samples: three failed heartbeats in a row, say, are always in scope."""
    if not target.in_process:
        pytest.skip(f"the exhaustive scope is checked in process (model, airflow-inproc on the model server); on "
                    f"{target.name} "
                    f"run: finalstate check --target {target.name} --exhaustive N")
    assert_scope_holds(target, record_property)


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda f: f.id)
def test_finding_still_reproduces(target, finding, request):
    """A finding's minimal scenario still breaks its invariant on the pinned release."""
    assert_reproduces(request, target, finding)
