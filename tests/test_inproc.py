"""The in-process binding: it observes the real supervisor, raising included, and the checker notices any change."""

from __future__ import annotations

import pytest
from hypothesis import settings

pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the airflow-inproc target needs the airflow extra")

from airflow.sdk.execution_time.supervisor import STATES_SENT_DIRECTLY, ActivitySubprocess  # noqa: E402

from impl.frontdoor.registry import load_target  # noqa: E402
from impl.frontdoor.report import Disagreement, check_conformance  # noqa: E402
from impl.frontdoor.scenarios import machine_for, run_machine  # noqa: E402
from impl.supervisor_inproc import target as inproc  # noqa: E402
from model.scenario import Scenario  # noqa: E402
from model.supervisor import run as model_run  # noqa: E402
from tests.test_model_supervisor import CASES  # noqa: E402


@pytest.mark.parametrize("text", CASES)
def test_hand_checked_cases_agree_with_the_real_supervisor(text):
    scenario = Scenario.from_text(text)
    assert inproc.run(scenario) == model_run(scenario)


def test_what_the_supervisor_raises_is_observed_not_crashed_on():
    observed = inproc.run(Scenario.from_text("send SucceedTask; overtime; exit 0"))
    assert observed.raised == "ServerResponseError(409)"
    assert observed.exit_code == -15


def test_replies_come_from_the_response_frames_on_the_wire():
    observed = inproc.run(Scenario.from_text("fault retry transient; send RetryTask; send RetryTask; exit 0"))
    assert observed.replies == ("error", "ok")


# Each mutant changes one branch of the real supervisor and defers to it otherwise.
_final_state = ActivitySubprocess.final_state.fget
_update = ActivitySubprocess.update_task_state_if_needed


def _exit0_ignores_terminal_state(self):
    return "success" if self._exit_code == 0 else _final_state(self)


def _server_terminated_ignored_on_failure(self):
    if self._exit_code != 0 and self._terminal_state == "SERVER_TERMINATED":
        return "up_for_retry" if self._should_retry else "failed"
    return _final_state(self)


def _should_retry_ignored(self):
    state = _final_state(self)
    return "failed" if self._exit_code != 0 and state == "up_for_retry" else state


def _nonzero_always_retries(self):
    state = _final_state(self)
    return "up_for_retry" if self._exit_code != 0 and state == "failed" else state


def _no_replay(self):
    self._pending_terminal_state_msg = None
    _update(self)


def _finish_every_state(self):
    if self._pending_terminal_state_msg is None and self.final_state in STATES_SENT_DIRECTLY:
        self.client.task_instances.finish(id=self.id, state=self.final_state, when=None, rendered_map_index=None)
    else:
        _update(self)


def _never_finish(self):
    if self._pending_terminal_state_msg is not None:
        _update(self)


FINAL_STATE_MUTANTS = [_exit0_ignores_terminal_state, _server_terminated_ignored_on_failure, _should_retry_ignored,
                       _nonzero_always_retries]
UPDATE_MUTANTS = [_no_replay, _finish_every_state, _never_finish]


@pytest.mark.parametrize("mutant", FINAL_STATE_MUTANTS + UPDATE_MUTANTS, ids=lambda m: m.__name__.strip("_"))
def test_checker_catches_a_changed_branch(mutant, monkeypatch, capsys):
    if mutant in FINAL_STATE_MUTANTS:
        monkeypatch.setattr(ActivitySubprocess, "final_state", property(mutant))
    else:
        monkeypatch.setattr(ActivitySubprocess, "update_task_state_if_needed", mutant)
    target = load_target("airflow-inproc")
    machine = machine_for("Conformance", lambda s: check_conformance(target, s))
    with pytest.raises(Disagreement) as caught:
        run_machine(machine, settings.get_profile("ci"))
    report = str(caught.value)
    assert report.startswith("DISAGREEMENT: model and airflow-inproc differ in")
    assert "replay: finalstate replay --target airflow-inproc '" in report
    with capsys.disabled():
        print(f"\n[{mutant.__name__.strip('_')}] {report.splitlines()[0]}\n  {report.splitlines()[1]}")
