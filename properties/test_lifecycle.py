"""Retries across tries: each lifecycle invariant over generated lives, on every pairing a target stands for.

The pairings and the machine are in ``impl/search/lifecycle.py``.
"""

from __future__ import annotations

import pytest
from hypothesis.stateful import run_state_machine_as_test

from impl.catalogue.findings import LIFECYCLE_FINDINGS, findings_on
from impl.search.lifecycle import life_machine, life_violation, live_lives_ahead, pairings_for, replay_life
from model.lifecycle import LIFECYCLE_INVARIANTS, life_violations
from properties.conftest import expect_the_finding


def pytest_generate_tests(metafunc):
    if "pairing" in metafunc.fixturenames:
        pairings = [p for name in metafunc.config.finalstate_targets for p in pairings_for(name)]
        metafunc.parametrize("pairing", pairings, ids=[p.name for p in pairings])


@pytest.mark.lives_ahead("lives")
@pytest.mark.parametrize("invariant", LIFECYCLE_INVARIANTS, ids=lambda i: i.__name__)
def test_lifecycle_invariant(pairing, invariant):
    """One lifecycle invariant, over generated lives, on one pairing of runtime and supervisor: the known
    findings are counted, and any other violation fails."""
    if pairing.unavailable:
        pytest.skip(f"{pairing.name}: {pairing.unavailable}")
    known = findings_on("lifecycle", pairing.name, invariant.__name__)
    live_lives_ahead(pairing)
    run_state_machine_as_test(life_machine(pairing, (invariant,), known))


@pytest.mark.parametrize("finding", LIFECYCLE_FINDINGS, ids=lambda f: f.id)
def test_lifecycle_finding_still_reproduces(pairing, finding, request):
    """A lifecycle finding's minimal life, as a strict expected failure: it breaks its invariant while it stands (from
    its ``introduced_in``, until its ``fixed_in``)."""
    if pairing.unavailable or not finding.about(pairing.name):
        pytest.skip(f"{finding.id} is about {', '.join(finding.targets)}")
    stands = expect_the_finding(request, finding, AssertionError)
    invariant = next(i for i in LIFECYCLE_INVARIANTS if i.__name__ == finding.invariant)
    life = replay_life(pairing, finding.scenario)
    # Where it does not stand, its life may break the invariant only for a cause another finding standing here explains.
    others = () if stands else findings_on("lifecycle", pairing.name, invariant.__name__)
    unexplained = [v for v in life_violations(life, (invariant,))
                   if not any(f.explains_violation(v.invariant, life, None) for f in others)]
    if unexplained:
        raise life_violation(pairing, life, unexplained)
