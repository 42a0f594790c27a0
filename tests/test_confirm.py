"""Search on the model server, confirm on the real one: a shrunk counterexample re-run on the real Execution API."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="confirming needs apache-airflow-core's Execution API")

import attrs  # noqa: E402

from impl.findings.confirm import confirm, release  # noqa: E402
from impl.catalogue.findings import FINDINGS  # noqa: E402
from impl.targets.registry import load_target  # noqa: E402
from impl.search.report import CheckFailed, check_conformance, check_invariants  # noqa: E402
from model import invariants as model_invariants  # noqa: E402
from model.scenario import Scenario  # noqa: E402


@pytest.fixture(scope="module")
def inproc(monkeypatch_module):
    monkeypatch_module.delenv("FINALSTATE_SERVER", raising=False)
    loaded = load_target("airflow-inproc", "supervisor")
    yield loaded
    loaded.close()
    release()  # the real server confirm() started, so that later tests of this process may start their own


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def failure_on_the_model_server(target, finding_id: str) -> CheckFailed:
    """The finding's own scenario, checked on the model server with no finding registered: it must fail."""
    finding = next(f for f in FINDINGS if f.id == finding_id)
    invariant = getattr(model_invariants, finding.invariant)
    with pytest.raises(CheckFailed) as caught:
        check_invariants(target, Scenario.from_text(finding.scenario), (invariant,))
    return caught.value


def test_a_violation_that_holds_on_the_real_server_is_confirmed(inproc):
    verdict = confirm(failure_on_the_model_server(inproc, "F1"))  # exit 0 without a terminal frame: row RUNNING
    assert verdict.confirmed is True, verdict
    assert verdict.to_text().startswith("CONFIRMED") and "no_task_instance_left_running" in verdict.detail


def test_a_violation_only_model_server_makes_is_not_a_finding(inproc):
    """A model server that (wrongly) leaves the row RUNNING after a failed attempt's finish(): the real one does not."""
    wrong = attrs.evolve(inproc, run=lambda run: attrs.evolve(inproc.run(run), row="running"))
    with pytest.raises(CheckFailed) as caught:
        check_invariants(wrong, Scenario.from_text("exit 1"), (model_invariants.no_task_instance_left_running,))
    verdict = confirm(caught.value)
    assert verdict.confirmed is False, verdict
    assert "not a finding about Airflow" in verdict.to_text()


def test_a_finding_stated_under_one_client_try_is_confirmed_under_it(inproc):
    """F3 needs the closing finish()'s one try to fail: stated with execution_api_retries=1, it holds there."""
    verdict = confirm(failure_on_the_model_server(inproc, "F3"))
    assert verdict.confirmed is True, verdict


def test_a_disagreement_the_real_server_does_not_show_is_not_confirmed(inproc):
    """A target whose reference is wrong on the model server; on the real server the true model answers."""
    wrong = attrs.evolve(inproc, reference=lambda run: attrs.evolve(inproc.reference(run), final_state="skipped"))
    with pytest.raises(CheckFailed) as caught:
        check_conformance(wrong, Scenario.from_text("send SucceedTask; exit 0"))
    verdict = confirm(caught.value)
    assert verdict.confirmed is False and "agree" in verdict.detail


def test_nothing_to_confirm_for_the_model_or_an_unchecked_failure():
    model = load_target("model", "supervisor")
    finding = next(f for f in FINDINGS if f.id == "F1")
    with pytest.raises(CheckFailed) as caught:
        check_invariants(model, Scenario.from_text(finding.scenario), (getattr(model_invariants, finding.invariant),))
    assert confirm(caught.value) is None
    assert confirm(CheckFailed("no run attached")) is None


def test_a_run_the_real_server_cannot_play_is_not_checked_and_says_why(inproc):
    """A run context the real server never hands out (should_retry against the counts): said, not raised."""
    with pytest.raises(CheckFailed) as caught:
        check_invariants(inproc, Scenario.from_text("try_number=1 max_tries=0 should_retry=true; exit 1"),
                         (model_invariants.no_task_instance_left_running,))
    verdict = confirm(caught.value)
    assert verdict.confirmed is None and "should_retry=true" in verdict.detail


@pytest.mark.parametrize("finding_id", ["F16", "F17", "F18"])
def test_a_hang_and_a_users_mark_are_confirmed_on_the_real_row(inproc, finding_id):
    """The widened world's words in a counterexample are played on the real server too: a process that never exits
    (F16, F17: time runs on there as well, and the attempt hangs) and a user's mark of the real row (F18)."""
    verdict = confirm(failure_on_the_model_server(inproc, finding_id))
    assert verdict.confirmed is True, verdict
    assert ("hung:" in verdict.detail) == (finding_id != "F18"), verdict.detail

