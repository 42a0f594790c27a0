"""The ``airflow-process`` binding: both launch paths agree with the model, and bad runtimes end in bounded time."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("airflow.sdk", reason="airflow-process needs apache-airflow-task-sdk")

from impl.supervisor_process import helper  # noqa: E402
from impl.supervisor_process import target as process  # noqa: E402
from impl.wire.launcher import build_launcher  # noqa: E402
from model import supervisor as model  # noqa: E402
from model.scenario import RUNNING, Scenario  # noqa: E402

SCENARIOS = [
    "try_number=1 max_tries=2; send SucceedTask; exit 0",
    "try_number=1 max_tries=0; send TaskState failed; exit 1",
    "try_number=2 max_tries=2; exit -9",
    "send RetryTask; fault finish lost; exit 1",
    "fault succeed lost; send SucceedTask; exit 0",
    "fault succeed transient; send SucceedTask; exit 0",
    "heartbeat 404; send SucceedTask; exit 0",
    "heartbeat 500; heartbeat 500; heartbeat 500; send SucceedTask; exit 0",
    "send TaskState failed; overtime; exit 0",
    "send DeferTask; overtime; exit 0",
    "fault finish permanent; exit 3",
    "send SkipDownstreamTasks; exit -11",
    "try_number=1 max_tries=3 should_retry=false; send AwaitInputTask; exit -6",
]

PATHS = ["exec", pytest.param("fork", marks=pytest.mark.skipif(build_launcher() is None,
                                                                 reason="no C compiler for impl/wire/launcher.c"))]


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    helper.close()


@pytest.mark.parametrize("spawn", PATHS)
@pytest.mark.parametrize("text", SCENARIOS)
def test_both_paths_observe_what_the_model_says(spawn, text):
    scenario = Scenario.from_text(text)
    observed = process.supervise_script(process.compile_scenario(scenario), scenario.context, spawn=spawn)
    assert observed == model.run(scenario), "\n".join(observed.to_lines())


def timed(script, **kwargs):
    start = time.monotonic()
    observation = process.supervise_script(script, **kwargs)
    return observation, time.monotonic() - start


def test_runtime_that_never_connects_ends_with_starts_timeout():
    observation, elapsed = timed({"connect": False, "steps": []}, spawn="exec", startup_timeout=1.0)
    assert elapsed < 10
    assert observation.harness.startswith("not started: TimeoutError"), observation.to_lines()
    assert observation.row == "queued" and observation.calls == () and observation.final_state == "none"


@pytest.mark.parametrize("spawn", PATHS)
def test_runtime_that_never_exits_is_killed_at_the_deadline(spawn):
    observation, elapsed = timed({"steps": [["hang"]]}, spawn=spawn, deadline=1.0)
    assert elapsed < 8
    assert observation.harness.startswith("deadline"), observation.to_lines()
    assert observation.exit_code == -9 and observation.row != RUNNING


@pytest.mark.parametrize("spawn", PATHS)
def test_runtime_that_closes_the_socket_early_then_exits(spawn):
    observation, elapsed = timed({"steps": [["close"], ["sleep", 0.1], ["exit", 2]]}, spawn=spawn, deadline=5.0)
    assert elapsed < 8 and observation.harness is None
    assert observation.exit_code == 2 and observation.final_state == "failed" and observation.row == "failed"


@pytest.mark.parametrize("spawn", PATHS)
def test_runtime_that_dies_mid_frame(spawn):
    partial = b"\x00\x00\x01\x00" + b"\x93\x01\x82"  # 256 bytes announced, 3 sent
    observation, elapsed = timed({"steps": [["raw", partial], ["exit", -11]]}, spawn=spawn, deadline=5.0)
    assert elapsed < 8 and observation.harness is None
    assert observation.exit_code == -11 and observation.replies == ()


def test_lost_answer_is_a_real_read_timeout():
    scenario = Scenario.from_text("fault finish lost; exit 1")
    observed = process.run(scenario)
    assert observed.raised == "ReadTimeout" and observed.row == "failed"
