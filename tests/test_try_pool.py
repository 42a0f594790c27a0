"""Tries lived ahead, several at once, each once per session: the try pool, the lived tries, the forecast of a search.

What must hold: a try lived ahead is the same try as one lived when asked (the observation a property judges does not
depend on when it was lived); the pool lives waiting tries side by side and working ones about one per core; what a
search is forecast to draw is what it draws; and nothing is left running when the pool closes, is interrupted
(Ctrl-C) or a try fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from impl.search.ahead import drawn_by
from impl.supervisor_process.pool import Effort, Pace, most_at_once

ROOT = Path(__file__).resolve().parent.parent
GO_RUNTIME = ROOT / "build" / "runtimes" / "go-runtime"
STANDINS = ROOT / "benchmarks" / "standins"


# -- the pace ----------------------------------------------------------------------------------------------------


def test_pace_starts_at_one_try_per_core():
    assert Pace(2, 32).window == 2
    assert Pace(4, 3).window == 3


def test_pace_of_tries_that_work_is_one_per_core():
    """A try that spends its wall time on a CPU (or waiting for one: its stretch) gets no more helpers than cores."""
    pace = Pace(2, 32)
    for _ in range(10):
        pace.record(Effort(wall=0.012, cpu=0.011))
    assert pace.window == 3  # ceil(2 * 12/11)
    loaded = Pace(2, 32)
    for _ in range(10):
        loaded.record(Effort(wall=0.2, cpu=0.02, stretch=10.0))  # a loaded machine: it waited for a CPU
    assert loaded.window == 2


def test_pace_of_tries_that_wait_is_the_most():
    slow_start, traps = Pace(2, 32), Pace(2, 32)
    for _ in range(10):
        slow_start.record(Effort(wall=0.55, cpu=0.03))
        traps.record(Effort(wall=5.1, cpu=0.03))
    assert slow_start.window == 32 and traps.window == 32
    for _ in range(100):  # a run of quick tries among slow ones: the window holds
        traps.record(Effort(wall=0.01, cpu=0.01))
    assert traps.window == 32
    for _ in range(3000):  # the runtime got fast for good: the pace follows, within a few half-lives
        traps.record(Effort(wall=0.01, cpu=0.01))
    assert traps.window <= 3


def test_most_at_once_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FINALSTATE_TRY_POOL", "5")
    assert most_at_once() == 5
    for bad in ("many", "-1"):
        monkeypatch.setenv("FINALSTATE_TRY_POOL", bad)
        with pytest.raises(ValueError, match="FINALSTATE_TRY_POOL"):
            most_at_once()


# -- the forecast ------------------------------------------------------------------------------------------------


@pytest.fixture
def profile():
    """Load a Hypothesis profile for the test (with at most 50 examples: ``name-50``); the one before is loaded after."""
    before = settings.get_current_profile_name()

    def load(name: str) -> None:
        settings.register_profile(f"{name}-50", settings.get_profile(name), max_examples=50)
        settings.load_profile(f"{name}-50")

    yield load
    settings.load_profile(before)


def test_a_derandomized_search_draws_what_was_forecast(profile):
    """The same search twice, the first recording only: the same examples, in the same order."""
    def search(check):
        @given(st.tuples(st.integers(0, 9), st.text(max_size=3)))
        def holds(example):
            check(example)

        holds()

    profile("ci")
    forecast = drawn_by(search)
    drawn: list = []
    search(drawn.append)
    assert forecast == drawn and len(drawn) == 50


def test_a_random_search_is_not_forecast(profile):
    profile("dev")
    assert drawn_by(lambda check: check(1)) == []


def test_the_lives_of_a_coordinator_pairing_are_forecast(profile):
    """``live_lives_ahead`` hands over exactly the tries the life machine then asks for, when they end as the model
    says (here: the model is the pairing's runtime and its forecast both), once for all the pairing's invariants: each
    of their machines draws the same lives."""
    from hypothesis.stateful import run_state_machine_as_test

    from impl.catalogue.findings import findings_on
    from impl.search.lifecycle import coordinator_pairing, life_machine, live_lives_ahead
    from model.coordinator import coordinator_attempt
    from model.lifecycle import LIFECYCLE_INVARIANTS

    asked: list = []
    handed: list = []

    def end_to_end(run):
        asked.append(run)
        return coordinator_attempt(run)

    invariant = LIFECYCLE_INVARIANTS[0]
    pairing = attrs.evolve(coordinator_pairing("cmd:forecast", end_to_end), live_ahead=lambda runs: handed.append(
        list(runs)), forecast=coordinator_attempt)
    profile("ci")
    live_lives_ahead(pairing)
    run_state_machine_as_test(life_machine(pairing, (invariant,)))
    assert handed == [asked] and len(asked) > 50
    live_lives_ahead(pairing)  # forecast once per pairing, handed over again (ahead of what came since)
    assert handed == [asked, asked]
    forecast = asked[:]
    asked.clear()
    other = LIFECYCLE_INVARIANTS[1]  # the model breaks it where a known finding says so: those are counted
    run_state_machine_as_test(life_machine(pairing, (other,), findings_on("lifecycle", "model-coordinator+model",
                                                                          other.__name__)))
    assert asked == forecast


# -- the pool and the lived tries, over real processes -------------------------------------------------------------


def _nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _fork_server_pid():
    from multiprocessing import forkserver

    return forkserver._forkserver._forkserver_pid


def _gone(pids) -> bool:
    import psutil

    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_waiting_tries_are_lived_side_by_side_a_dead_helper_is_replaced_and_nothing_is_left():
    pytest.importorskip("airflow.sdk", reason="the pool's helpers run the real supervisor")
    from impl.supervisor_process.pool import HelperDied, TryPool

    pool = TryPool(most=8)
    try:
        helpers = {f.result(120) for f in [pool.submit(_nap, 0.3) for _ in range(12)]}
        assert pool.pace.window > pool.pace.cores  # they waited: the window widened past one per core
        assert len(helpers) > pool.pace.cores
        server = _fork_server_pid()
        dying = pool.submit(os._exit, 3)
        with pytest.raises(HelperDied, match="died"):
            dying.result(120)
        helpers |= {f.result(120) for f in [pool.submit(_nap, 0) for _ in range(12)]}
    finally:
        pool.close()
    assert _gone(helpers | {server})


def go_runtime_or_skip() -> Path:
    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor")
    if not GO_RUNTIME.exists():
        pytest.skip("run scripts/build-runtimes first")
    return GO_RUNTIME


def test_a_try_lived_ahead_is_lived_once_and_is_the_try_lived_when_asked():
    """The Go runtime's tries, lived ahead in the pool, are lived once however often they are asked for, and agree
    with the same tries lived one by one in the one helper (what the checker did before) in what decides them: the
    pool changes when a try is lived, not what it observes."""
    go_runtime_or_skip()
    from impl.coordinator.target import runner
    from impl.targets.kinds import KINDS
    from impl.supervisor_process import helper, supervise
    from impl.supervisor_process.pool import close_pool
    from impl.supervisor_process.world import World
    from model.coordinator import CoordinatorRun

    runs = [CoordinatorRun.from_text(text) for text in (
        "try_number=1 max_tries=1; task success",
        "try_number=1 max_tries=1; task error",
        "try_number=1 max_tries=0; task panic; overtime",
        "try_number=1 max_tries=1; heartbeat 409; task success",
        "try_number=2 max_tries=1 execution_api_retries=1; fault retry permanent; task error",
        "try_number=1 max_tries=1; ignore sigterm; heartbeat 404; task error")]
    run = runner([str(GO_RUNTIME)])
    try:
        run.live_ahead(runs)
        ahead = [run(r) for r in runs]
        run.live_ahead(runs)
        assert [run(r) for r in reversed(runs)] == ahead[::-1]  # each lived once: the same observations again
        one_by_one = [helper.in_helper(supervise.supervise_command, [str(GO_RUNTIME)], r.context, task_id=r.outcome,
                                       world=World(r.while_running, r.after_frame),
                                       execution_api_retries=r.execution_api_retries) for r in runs]
    finally:
        close_pool()
        helper.close_helper()
    for r, a, b in zip(runs, ahead, one_by_one):
        assert KINDS["coordinator"].agree(a, b), (r.to_text(), a, b)


def test_an_interrupted_check_leaves_no_runtime_running(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while tries of a runtime that traps SIGTERM wait
    out their escalation in the pool: every process of theirs ends."""
    go_runtime_or_skip()
    standin = tmp_path / "traps-sigterm"  # paths of this test's own, to find its processes by
    standin.write_bytes((STANDINS / "traps-sigterm").read_bytes())
    standin.chmod(0o755)
    runtime = tmp_path / "go-runtime"
    runtime.symlink_to(GO_RUNTIME)
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from impl.coordinator.target import runner
        from model.coordinator import CoordinatorRun

        def main():
            run = runner([{str(standin)!r}, {str(runtime)!r}])
            runs = [CoordinatorRun.from_text(f"try_number={{t}} max_tries=5 execution_api_retries={{n}}; "
                                             "heartbeat 409; task success") for t in (1, 2, 3) for n in (1, 2, 3, 5)]
            run.live_ahead(runs)
            print("lived ahead", flush=True)
            for r in runs:
                run(r)
            print("not interrupted", flush=True)

        if __name__ == "__main__":
            main()
    """))
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout.readline() == "lived ahead\n"
        until = time.monotonic() + 120  # the pool starts (Airflow imported once), the runtimes start
        while len(_running(str(tmp_path))) < 2 and time.monotonic() < until:
            time.sleep(0.1)
        assert _running(str(tmp_path)), "the stand-in's tries were not under way"
        time.sleep(1.0)  # the supervisors kill, the runtimes trap SIGTERM and wait for the SIGKILL 5 s away
        os.killpg(process.pid, signal.SIGINT)
        process.wait(90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    until = time.monotonic() + 15
    while _running(str(tmp_path)) and time.monotonic() < until:
        time.sleep(0.2)
    assert not _running(str(tmp_path))


def _running(word: str) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if word in " ".join(p.info["cmdline"] or ()) and p.info["status"] != psutil.STATUS_ZOMBIE]
