"""The in-process binding: it observes the real supervisor, raising included.

That the checker notices a changed branch of the real supervisor is tested with generated mutants
(``tests/test_coverage_mutate.py``, ``finalstate mutate``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the airflow-inproc target needs the airflow extra")

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
    observed = inproc.run(Scenario.from_text(
        "execution_api_retries=1; fault retry transient; send RetryTask; send RetryTask; exit 0"))
    assert observed.replies == ("error", "ok")


def test_a_stalled_wake_up_sends_no_heartbeat_the_scenario_does_not_have(monkeypatch):
    """A loaded machine may stall the supervisor's loop past ``MIN_HEARTBEAT_INTERVAL``: no heartbeat falls due for that,
    only for a scenario's heartbeat event (each wake-up here takes a minute by the clock the supervisor reads)."""
    clock = iter(range(0, 10**6, 60))
    monkeypatch.setattr(inproc.time, "monotonic", lambda: float(next(clock)))
    scenario = Scenario.from_text("send MaskSecret; heartbeat 200; send MaskSecret; send SucceedTask; exit 0")
    observed = inproc.run(scenario)
    assert [c.name for c in observed.calls].count("heartbeat") == 1
    assert observed == model_run(scenario)
