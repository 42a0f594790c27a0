"""Finding signatures: the search counts what a known finding explains and goes on, and nothing else hides.

Each registered finding's signature names its cause. These tests hold the signatures to that:
every finding's own run is explained by it; registering all findings or none gives the same
verdict on every violation no signature explains; and a different bug behind the same
invariant (the real supervisor, changed) is reported as new, not absorbed.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from impl.catalogue.findings import ALL_FINDINGS, FINDINGS, findings_on
from impl.targets.kinds import KINDS
from impl.targets.registry import model_target
from impl.search.report import InvariantViolation, check_invariants, explained
from impl.search.scenarios import corpus, machine_for, run_machine
from model.invariants import SUPERVISOR_INVARIANTS, violations
from model.release import SPECIFIED, Release
from model.runtime import python_runtime
from model.supervisor import run as model_run


@pytest.mark.parametrize("finding", [f for f in ALL_FINDINGS if f.signature], ids=lambda f: f.id)
def test_a_finding_explains_its_own_run(finding):
    if finding.kind == "lifecycle":
        pytest.skip("a life is replayed on a pairing: tests/test_runtime_model.py and the lifecycle properties")
    run = KINDS[finding.kind].parse(finding.scenario)
    if finding.shown_on is None:  # a finding of SDK profiles: the model of the first
        observed = model_target(finding.kind, *finding.profiles[:1]).run(run)
    else:  # the model of a release the bug stands on
        stood = Release.parse(finding.shown_on)
        assert finding.stands_on(stood)
        live = {"supervisor": model_run, "runtime": python_runtime}[finding.kind]
        observed = live(run, stood)
    found = [v for v in KINDS[finding.kind].violations(run, observed, KINDS[finding.kind].invariants)
             if v.invariant == finding.invariant]
    assert found and all(finding.explains_violation(v.invariant, run, observed) for v in found)


def test_registering_all_findings_or_none_gives_the_same_verdict_on_the_unexplained():
    """Over a corpus: with every finding registered, exactly the violations no signature explains are reported."""
    unexplained_seen = explained_seen = 0
    for scenario in corpus(4000, seed=11):
        observed = model_run(scenario)
        for invariant in SUPERVISOR_INVARIANTS:
            known = findings_on("supervisor", "model", invariant.__name__)
            found = violations(scenario, observed, (invariant,))
            with_none = [v for v in found if explained((), v, scenario, observed) is None]
            with_all = [v for v in found if explained(known, v, scenario, observed) is None]
            assert with_none == list(found)
            assert with_all == [v for v in found if not any(f.explains_violation(v.invariant, scenario, observed)
                                                            for f in known)]
            unexplained_seen += len(with_all)
            explained_seen += len(found) - len(with_all)
    assert explained_seen > 0  # the corpus meets the known findings
    print(f"{explained_seen} violations explained by a known finding, {unexplained_seen} not")


def test_the_model_has_no_violation_the_known_findings_do_not_explain():
    """The pinned release, as the model has it, breaks its invariants only for the registered causes."""
    for scenario in corpus(4000, seed=12):
        for invariant in SUPERVISOR_INVARIANTS:
            known = findings_on("supervisor", "model", invariant.__name__)
            check_invariants(model_target(), scenario, (invariant,), known)


def test_a_finding_explains_no_other_findings_scenario_by_accident():
    """Signatures are narrow: no finding's signature explains the headline violation of another's run
    unless the two share a cause (listed)."""
    # a replay or a kill is one more way to a delivered state ignored; an applied retry refused 404 is a call counted
    # failed that moved the row
    shared = {("F5", "F7"), ("F8", "F7"), ("F8", "F5"), ("F12", "F5")}
    for finding in FINDINGS:
        scenario = KINDS["supervisor"].parse(finding.scenario)
        release = SPECIFIED if finding.shown_on is None else Release.parse(finding.shown_on)  # one it stands on
        observed = model_run(scenario, release)
        for other in FINDINGS:
            if other is finding or (finding.id, other.id) in shared or not other.stands_on(release):
                continue
            assert not other.explains_violation(finding.invariant, scenario, observed), (finding.id, other.id)


airflow = pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the mutant is of the real supervisor")


def test_a_different_bug_behind_the_same_invariant_is_reported_as_new(monkeypatch):
    """A supervisor that never calls finish() leaves TIs RUNNING, as F1, F2, F3 and F9 do, for another cause:
    the search with every finding registered must still fail on it."""
    from impl.targets.registry import load_target

    ActivitySubprocess = airflow.ActivitySubprocess
    original = ActivitySubprocess.update_task_state_if_needed

    def never_finish(self):
        if self._pending_terminal_state_msg is not None:
            original(self)

    monkeypatch.setattr(ActivitySubprocess, "update_task_state_if_needed", never_finish)
    target = load_target("airflow-inproc")
    invariant = next(i for i in SUPERVISOR_INVARIANTS if i.__name__ == "no_task_instance_left_running")
    known = findings_on("supervisor", target.name, invariant.__name__)
    assert {f.id for f in known} >= {"F1", "F2", "F3", "F9"}
    machine = machine_for("NewBug", lambda s: check_invariants(target, s, (invariant,), known))
    with pytest.raises(InvariantViolation) as caught:
        run_machine(machine, settings.get_profile("ci"))
    assert "final_state is" not in str(caught.value).splitlines()[0]
    assert "no_task_instance_left_running" in str(caught.value)
    print(str(caught.value).splitlines()[1])
