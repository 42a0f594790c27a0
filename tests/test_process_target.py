"""The ``airflow-process`` binding: both launch paths agree with the model, and bad runtimes end in bounded time."""

from __future__ import annotations

import inspect
import time

import pytest

pytest.importorskip("airflow.sdk", reason="airflow-process needs apache-airflow-task-sdk")

from airflow.sdk.execution_time.supervisor import ActivitySubprocess  # noqa: E402

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

#: The widened world, each word where it changes what the supervisor does: a runtime that handles the kill's
#: SIGTERM and carries on (its frame handled inside kill(), then its own exit; or a hang, ended by the escalation's
#: SIGKILL), users (or the scheduler's heartbeat timeout) acting on the running task instance (the next heartbeat or
#: call refused), a runtime that never exits (time runs on: the overtime kills it, the SIGKILL after a SIGTERM it
#: ignored, or nothing: hung).
WIDENED_WORLD = [
    "try_number=1 max_tries=1; handle sigterm; heartbeat 409; send SucceedTask; exit 0",
    "try_number=1 max_tries=1; handle sigterm; heartbeat 404; send RetryTask; exit 1",
    "try_number=1 max_tries=1; handle sigterm; heartbeat 410; exit hang",
    "try_number=1 max_tries=1; user marks success; send RetryTask; exit 0",
    "try_number=1 max_tries=1; user marks failed; heartbeat 200; send SucceedTask; exit 0",
    "try_number=1 max_tries=1; user marks skipped; send TaskState failed; exit 1",
    "try_number=2 max_tries=3; user clears; send SucceedTask; exit 0",
    "user deletes; heartbeat 200; exit 0",
    "try_number=1 max_tries=1; scheduler times out; send SucceedTask; exit 0",
    "exit hang",
    "send SucceedTask; exit hang",
    "ignore sigterm; send SucceedTask; exit hang",
    "handle sigterm; send SucceedTask; exit hang",
]

PATHS = ["exec", pytest.param("fork", marks=pytest.mark.skipif(build_launcher() is None,
                                                                 reason="no C compiler for impl/wire/launcher.c"))]


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    helper.close()


@pytest.mark.parametrize("spawn", PATHS)
@pytest.mark.parametrize("text", SCENARIOS + WIDENED_WORLD)
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
def test_a_runtime_killed_by_the_escalation_ends_when_killed_not_when_it_would_have_exited(spawn):
    """A runtime that ignores SIGTERM dies of the escalation's SIGKILL at once, on the fork path too (where the
    SIGKILL meets the launcher, which cannot forward it): the attempt does not wait out the runtime's own exit,
    here set beyond the deadline."""
    scenario = Scenario.from_text("ignore sigterm; heartbeat 404; exit 0")
    script = process.compile_scenario(scenario)
    for step in script["steps"]:
        if step[0] == "ignore_sigterm":
            step[1] = 600.0  # the runtime's own exit, were it not killed: far beyond the deadline
    observation, elapsed = timed(script, context=scenario.context, spawn=spawn, deadline=30.0)
    assert observation.harness is None, observation.to_lines()
    assert observation == model.run(scenario), "\n".join(observation.to_lines())
    assert elapsed < 30


#: How long Airflow's ``kill()`` waits for the process to exit after each signal, unless told otherwise.
AIRFLOW_ESCALATION_DELAY = inspect.signature(ActivitySubprocess.kill).parameters["escalation_delay"].default


@pytest.mark.parametrize("spawn", PATHS)
def test_a_runtime_that_handled_sigterm_and_hangs_is_killed_without_waiting_out_the_escalation(spawn):
    """A runtime that handles the kill's SIGTERM and then never exits is ended by the escalation's SIGKILL, as in
    Airflow, but the harness runs the kill's wait out (the supervisor's clock) instead of waiting it: the attempt
    takes far less than Airflow's delay, and observes what the model says."""
    scenario = Scenario.from_text("try_number=1 max_tries=1; handle sigterm; heartbeat 409; exit hang")
    process.run(Scenario.from_text("send SucceedTask; exit 0"))  # warm: helper, fork server, client
    observation, elapsed = timed(process.compile_scenario(scenario), context=scenario.context, spawn=spawn)
    assert observation == model.run(scenario), "\n".join(observation.to_lines())
    assert observation.exit_code == -9 and elapsed < AIRFLOW_ESCALATION_DELAY


@pytest.mark.parametrize("spawn", PATHS)
def test_a_runtime_that_never_exits_and_is_never_killed_is_hung_and_leaves_nothing(spawn):
    """Nothing ends a runtime that never exits and meets no kill: the harness ends the attempt (no exit, no final
    state, no closing call: ``hung``), then the process, and holds nothing more than before."""
    scenario = Scenario.from_text("handle sigterm; exit hang")
    script = process.compile_scenario(scenario)
    for _ in range(2):  # warm, on this path: helper, fork server, client and its connection
        process.supervise_script(script, scenario.context, spawn=spawn)
    before = process.stats()
    for _ in range(5):
        observation = process.supervise_script(script, scenario.context, spawn=spawn)
        assert observation.hung and observation.harness is None, observation.to_lines()
        assert (observation.exit_code, observation.final_state) == (None, "none")
    after = process.stats()
    assert after["children"] == before["children"] and after["zombies"] == [], (before, after)
    assert after["fds"] <= before["fds"] and after["sockets"] <= before["sockets"], (before, after)
    assert after["killed_for_supervisor"] == before["killed_for_supervisor"]  # the harness's doing, not a W4


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
    scenario = Scenario.from_text("execution_api_retries=1; fault finish lost; exit 1")
    observed = process.run(scenario)
    assert observed.raised == "ReadTimeout" and observed.row == "failed"


def test_a_lost_answer_is_tried_again_by_the_real_client():
    observed = process.run(Scenario.from_text("fault finish lost; exit 1"))
    assert [str(c) for c in observed.calls] == ["start->200", "finish(failed)->timeout", "finish(failed)->200"]
    assert observed.raised is None and observed.row == "failed"


# -- --server airflow: the real Execution API over loopback HTTP, from the helper ----------------------------------

REAL_SCENARIOS = [
    "try_number=1 max_tries=0; send SucceedTask; exit 0",
    "try_number=1 max_tries=1; exit 1",
    "fault succeed transient; send SucceedTask; exit 0",
    "fault succeed lost; send SucceedTask; exit 0",
    "fault finish permanent; exit 1",
    "try_number=1 max_tries=1; heartbeat 404; exit 0",
    "try_number=1 max_tries=1; heartbeat 409; exit 0",
    "try_number=2 max_tries=3; heartbeat 410; exit 0",
    "heartbeat 500; heartbeat 500; heartbeat 500; send SucceedTask; exit 0",
    "send SucceedTask; overtime; exit 0",
    "try_number=1 max_tries=2; send RetryTask; exit 1",
    *WIDENED_WORLD,
]


@pytest.fixture(scope="module")
def real_process():
    pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="--server airflow needs apache-airflow-core")
    loaded = process.target("airflow-process", "airflow")
    yield loaded
    loaded.close()


def test_the_server_is_read_as_airflow_inproc_reads_it(monkeypatch):
    from impl.targets.registry import TargetUnavailable

    monkeypatch.delenv("FINALSTATE_SERVER", raising=False)
    assert process.target("airflow-process").run.__wrapped__ is process.run  # each distinct scenario lived once
    monkeypatch.setenv("FINALSTATE_SERVER", "airflow")
    assert isinstance(process.target("airflow-process").run, process.RealServerRun)  # loading it starts nothing
    monkeypatch.setenv("FINALSTATE_SERVER", "postgres")
    with pytest.raises(TargetUnavailable, match="unknown server 'postgres'.*model, airflow"):
        process.target("airflow-process")


def test_a_scenario_drawn_again_is_judged_on_the_observation_it_was_lived_for():
    """``lived_once``: a scenario is lived once and its observation handed to each later caller; one whose living
    raised is lived again when asked again; beyond ``most`` the least recently asked for is forgotten; a run lived
    once already is not wrapped again."""
    from impl.targets.registry import lived_once

    lived = []

    def run(scenario):
        lived.append(scenario)
        if scenario.exit_code == 1:
            raise RuntimeError("the helper died")
        return object()

    once = lived_once(run, most=2)
    assert lived_once(once) is once  # remembered once, not twice
    first, second, third, failing = (Scenario.from_text(t) for t in ("exit 0", "send SucceedTask; exit 0", "exit 2",
                                                                     "exit 1"))
    assert once(first) is once(first) and lived == [first]
    for _ in range(2):
        with pytest.raises(RuntimeError):
            once(failing)
    assert lived.count(failing) == 2
    once(second), once(third), once(first)
    assert lived.count(first) == 2


def test_on_the_real_server_a_real_process_observes_what_the_in_process_supervisor_does(real_process):
    """The same scenarios, the same real server rules: one supervisor in process (the test process's own server),
    one over a real runtime process (the helper's server, over loopback HTTP). Faults, retries and the world's
    actors happen in the same places, so the observations are equal."""
    from impl.supervisor_inproc import target as inproc

    in_process = inproc.target("airflow-inproc", "airflow")
    try:
        for text in REAL_SCENARIOS:
            scenario = Scenario.from_text(text)
            observed = real_process.run(scenario)
            assert observed == in_process.run(scenario), "\n".join([text, *observed.to_lines()])
    finally:
        in_process.close()


def test_the_real_clients_retries_hide_a_transient_fault_and_resend_a_lost_answer(real_process):
    observed = real_process.run(Scenario.from_text("fault succeed transient; send SucceedTask; exit 0"))
    exchanges = [(e.name, e.attempt, e.status, e.server_status) for e in real_process.run.last.exchanges]
    assert exchanges == [("start", 1, 200, 200), ("succeed", 1, 500, None), ("succeed", 2, 204, 204)]
    assert (observed.row, observed.final_state, observed.replies) == ("success", "success", ("ok",))

    real_process.run(Scenario.from_text("fault succeed lost; send SucceedTask; exit 0"))
    record = real_process.run.last
    lost = [e for e in record.exchanges if e.name == "succeed"]
    assert (lost[0].status, lost[0].error, lost[0].server_status) == (None, "ReadTimeout", 204)  # applied, unheard
    assert lost[1].attempt == 2 and lost[1].status is not None and 200 <= lost[1].status < 300
    assert "127.0.0.1" not in record.exchanges[0].path and record.exchanges[0].path.startswith("/execution/")
    assert (record.row_before.state, record.row_after.state) == ("queued", "success")


def test_a_run_context_the_real_server_cannot_hand_out_is_refused_by_name(real_process):
    from impl.server.airflow_attempt import Unsupported

    with pytest.raises(Unsupported, match="should_retry=false .* not supported by the real server backend"):
        real_process.run(Scenario.from_text("try_number=1 max_tries=1 should_retry=false; exit 1"))
    assert real_process.run(Scenario.from_text("send SucceedTask; exit 0")).row == "success"  # still serving


def _server_copies(pid: int) -> list:
    from impl.server.airflow_api import BUILD_DIR

    return sorted((BUILD_DIR / "workers").glob(f"{pid}-*.db*"))


def test_nothing_is_left_after_close_nor_after_a_killed_helper():
    """uvicorn is a thread of the helper and its database a copy named by the helper's pid: closing ends both;
    a helper killed mid-run leaves a copy that the next start removes."""
    import os
    import signal

    pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="--server airflow needs apache-airflow-core")
    helper.close()
    loaded = process.target("airflow-process", "airflow")
    loaded.run(Scenario.from_text("send SucceedTask; exit 0"))
    doomed = helper.helper().proc
    killed = doomed.pid
    assert _server_copies(killed)
    os.kill(killed, signal.SIGKILL)
    doomed.wait(10)
    assert _server_copies(killed)  # a killed run's leftover
    loaded.run(Scenario.from_text("send SucceedTask; exit 0"))  # a new helper, a new server
    assert not _server_copies(killed)
    closing = helper.helper().proc
    loaded.close()
    assert closing.wait(15) == 0 and not _server_copies(closing.pid)


def test_a_server_that_will_not_start_is_one_clear_error(monkeypatch):
    from impl.server.airflow_api import ServerUnavailable

    pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="--server airflow needs apache-airflow-core")
    helper.close()
    monkeypatch.setenv("FINALSTATE_SERVER_DB", "postgresql://finalstate@127.0.0.1:1/nowhere")  # read by the helper
    loaded = process.target("airflow-process", "airflow")
    try:
        start = time.monotonic()
        with pytest.raises(ServerUnavailable, match="127.0.0.1:1/nowhere"):
            loaded.run(Scenario.from_text("send SucceedTask; exit 0"))
        assert time.monotonic() - start < 60
        assert process.run(Scenario.from_text("send SucceedTask; exit 0")).row == "success"  # the helper lives on
    finally:
        loaded.close()
