"""``cmd:`` targets: any program as a coordinator-mode runtime; bad programs end in bounded time, leaving nothing.

The Go runtime (``runtimes/go``, written by this project, not Airflow's Go SDK) shows the checker
on a runtime that is not Python: with ``--pre-fix`` it has the seed's bug, and the checker finds
it and shrinks it to the seed's own scenario.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")

from impl.coordinator.target import reference_command  # noqa: E402
from impl.targets.registry import TargetUnavailable, UnknownTarget, load_target  # noqa: E402
from impl.search.exhaustive import check_in_scope  # noqa: E402
from impl.targets.kinds import KINDS  # noqa: E402
from impl.search.report import Disagreement, InvariantViolation, check_conformance, check_invariants  # noqa: E402
from impl.search.scenarios import USER_ACTIONS, coordinator_runs  # noqa: E402
from impl.supervisor_process import helper, supervise  # noqa: E402
from impl.supervisor_process.census import census  # noqa: E402
from model.coordinator import CANCELLABLE, COORDINATOR_OUTCOMES, CoordinatorRun  # noqa: E402
from model.runtime_invariants import COORDINATOR_INVARIANTS, failure_not_taken_fails_closed  # noqa: E402
from model.scenario import HEARTBEAT_OK, Heartbeat, RunContext  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GO_RUNTIME = ROOT / "build" / "runtimes" / "go-runtime"
SEED_FIXTURE = ROOT / "tests" / "fixtures" / "seed_runtime.py"
UNDECODABLE_FIXTURE = ROOT / "tests" / "fixtures" / "undecodable_runtime.py"
RETRIES_LEFT = RunContext.from_server(1, 1)

#: Runtimes that misbehave, as argv lists: each connects as the convention says, then does its one thing.
_CONNECT = "import socket, sys, time; a = dict(x[2:].split('=', 1) for x in sys.argv[1:]); " \
           "c = socket.create_connection(a['comm'].rsplit(':', 1)); l = socket.create_connection(a['logs'].rsplit(':', 1)); "
BAD_RUNTIMES = {
    "exits before connecting": ["true"],
    "never connects": [sys.executable, "-c", "import time; time.sleep(60)"],
    "connects, sends garbage": [sys.executable, "-c", _CONNECT + "c.sendall(b'\\x00\\x00\\x00\\x04\\xc1\\xc1\\xc1\\xc1'); time.sleep(60)"],
    "never exits": [sys.executable, "-c", _CONNECT + "time.sleep(60)"],
}
#: What the observation says of each (its ``harness`` note, or what the supervisor raised).
SAYS = {
    "exits before connecting": "not started: RuntimeError: process exited with 0 before connecting",
    "never connects": "not started",
    "connects, sends garbage": "DecodeError",  # raised out of wait() before the exit: the harness reaps the process
    "never exits": "deadline",
}


def go_runtime_or_skip() -> Path:
    if not GO_RUNTIME.exists():
        marker = GO_RUNTIME.with_name("go-runtime.unavailable")
        pytest.skip(marker.read_text().strip() if marker.exists() else "run scripts/build-runtimes first")
    return GO_RUNTIME


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    helper.close()


@pytest.mark.parametrize("name,message", [
    ("cmd:", "no program after 'cmd:'"),
    ("cmd:/no/such/program", "program '/no/such/program' not found"),
    ("cmd:no-such-program-here", "not found on PATH"),
    (f"cmd:{__file__}", "is not an executable file"),
])
def test_a_program_that_cannot_run_is_refused_by_name(name, message):
    with pytest.raises(UnknownTarget, match=message):
        load_target(name, "coordinator")


def test_an_unbuilt_program_is_unavailable_for_the_reason_its_build_gave(tmp_path):
    (tmp_path / "runtime.unavailable").write_text("go toolchain not found on PATH\n")
    with pytest.raises(TargetUnavailable, match="go toolchain not found"):
        load_target(f"cmd:{tmp_path / 'runtime'}", "coordinator")


@pytest.mark.parametrize("case", BAD_RUNTIMES)
def test_a_misbehaving_runtime_ends_in_bounded_time_and_says_which(case):
    helper.helper()  # started first: the bound is the supervision's, not the helper's cold start (Airflow's imports)
    start = time.monotonic()
    # Long enough for start() to see a quick exit on a loaded machine, short enough to wait out.
    startup_timeout = 1.0 if case == "never connects" else 3.0
    observation = helper.in_helper(supervise.supervise_command, BAD_RUNTIMES[case], RETRIES_LEFT,
                                   deadline=1.0, startup_timeout=startup_timeout)
    assert time.monotonic() - start < 10.0
    said = f"{observation.harness} {observation.raised}"
    assert SAYS[case] in said, observation.to_lines()


def test_coordinator_runtimes_leave_nothing_behind():
    """Hundreds of tries of the reference runtime, the Go runtime and the misbehaving ones: nothing held after."""
    commands = [reference_command()] + ([[str(GO_RUNTIME)], [str(GO_RUNTIME), "--pre-fix"]] if GO_RUNTIME.exists() else [])
    helper.in_helper(supervise.supervise_command, commands[0], RETRIES_LEFT)  # warm: helper, client, threads
    before = helper.in_helper(census)
    ending = [o for o in COORDINATOR_OUTCOMES if o != CANCELLABLE]  # with no world, nothing would end a cancellable
    for i in range(60):
        for command in commands:
            helper.in_helper(supervise.supervise_command, command, RETRIES_LEFT, task_id=ending[i % len(ending)])
        if i % 20 == 0:
            for bad in BAD_RUNTIMES.values():
                helper.in_helper(supervise.supervise_command, bad, RETRIES_LEFT, deadline=0.5, startup_timeout=0.5)
    time.sleep(0.5)  # daemon threads of lost answers finish
    after = helper.in_helper(census)
    assert after["children"] == before["children"] and after["zombies"] == [], (before, after)
    assert after["fds"] <= before["fds"] and after["sockets"] <= before["sockets"], (before, after)


@pytest.mark.parametrize("seed", ["go", "python"])
def test_the_checker_finds_the_seeds_bug_and_shrinks_it(seed, capsys):
    """A runtime with the seed's bug answers every failure with TaskState(failed) and exit 0 (apache/airflow#67797):
    the Go runtime with ``--pre-fix``, and the reference runtime without its retry branch (a test fixture)."""
    command = f"{go_runtime_or_skip()} --pre-fix" if seed == "go" else f"{sys.executable} -I {SEED_FIXTURE}"
    target = load_target(f"cmd:{command}", "coordinator")

    @settings(max_examples=100, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(coordinator_runs)
    def retries_honoured(run):
        check_invariants(target, run, COORDINATOR_INVARIANTS)

    with pytest.raises(InvariantViolation) as caught:
        retries_honoured()
    report = str(caught.value)
    with capsys.disabled():
        print(f"\nthe checker on the {seed} runtime with the seed's bug, minimal counterexample:\n{textwrap.indent(report, '  ')}")
    assert "try_number=1 max_tries=1 should_retry=true; task error → exit 0 → FAILED, expected UP_FOR_RETRY" in report


def test_the_fixed_go_runtime_does_what_the_model_says_for_every_outcome():
    go_runtime_or_skip()
    target = load_target(f"cmd:{GO_RUNTIME}", "coordinator")
    for context in (RETRIES_LEFT, RunContext.from_server(2, 1)):
        for outcome in COORDINATOR_OUTCOMES:
            run = CoordinatorRun(context, outcome)
            assert KINDS["coordinator"].agree(target.reference(run), target.run(run)), run.to_text()


def test_users_actions_while_the_task_runs_meet_the_go_runtime_as_the_model_says():
    """A user marks, clears or deletes the task instance while the Go runtime's task runs: the harness acts on the
    server (nothing tells the supervisor), then the task ends, and its terminal call is refused, or a heartbeat first
    finds the row moved; the try ends as the model says."""
    go_runtime_or_skip()
    target = load_target(f"cmd:{GO_RUNTIME}", "coordinator")
    for action in USER_ACTIONS:
        for outcome in COORDINATOR_OUTCOMES:
            for world in ((action,), (action, Heartbeat(HEARTBEAT_OK))):
                run = CoordinatorRun(RETRIES_LEFT, outcome, world)
                expected, observed = target.reference(run), target.run(run)
                assert KINDS["coordinator"].agree(expected, observed), "\n".join(
                    [run.to_text(), "observed:", *observed.to_lines(), "model:", *expected.to_lines()])


#: What real SDKs do that the supervisor takes alike (runtimes/README.md, "Checking your SDK"), one flag each.
ACCEPTED_FLAGS = ["--frame-id=reuse", "--end-date=rfc3339", "--log-lines", "--lookup-first", "--retry-reason",
                  "--frame-id=reuse --end-date=rfc3339 --log-lines --lookup-first --retry-reason"]


@pytest.mark.parametrize("flags", ACCEPTED_FLAGS)
def test_what_the_supervisor_takes_alike_is_no_disagreement(flags):
    """Each real-SDK behaviour the supervisor accepts, on every outcome, run context, number of client tries, trapped
    SIGTERM and overtime (the coordinator scope with no other event of the world): conformance with the contract
    (declared: no other profile would do) and every invariant."""
    go_runtime_or_skip()
    target = load_target(f"cmd:{GO_RUNTIME} {flags}", "coordinator", profile="contract")  # the contract's, no other
    found = check_in_scope(target, depth=0)
    assert found.scenarios == 90 and not found.failures, "\n\n".join(found.failures)


def test_a_runtime_that_does_not_fail_closed_is_caught_with_the_fault_on_its_terminal_call(capsys):
    """--no-fail-closed is the Go SDK's Serve: it writes its result and exits 0, never reading the answer. A failure
    whose RetryTask the supervisor cannot deliver is then recorded as a success; the search shrinks to a failing task
    whose RetryTask was refused: by a fault on it, or by the server after a user acted on the task instance (409), which
    of the two depending on what the shrinker met on the way (a process's timing on a busy machine)."""
    go_runtime_or_skip()
    target = load_target(f"cmd:{GO_RUNTIME} --no-fail-closed", "coordinator")

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(coordinator_runs)
    def fails_closed(run):
        check_invariants(target, run, (failure_not_taken_fails_closed,))

    with pytest.raises(InvariantViolation) as caught:
        fails_closed()
    report = str(caught.value)
    with capsys.disabled():
        print(f"\nthe checker on the Go runtime with --no-fail-closed, minimal counterexample:\n"
              f"{textwrap.indent(report, '  ')}")
    assert "failure_not_taken_fails_closed" in report
    replay = next(line for line in report.splitlines() if line.strip().startswith("replay: "))
    assert replay.endswith("task error'") and ("fault retry permanent" in replay or "user " in replay), replay
    assert "replies=error" in report and "exit_code=0" in report and "final_state=success" in report, report


def test_a_frame_the_supervisor_cannot_decode_ends_the_try_within_a_second():
    """A TaskState(up_for_retry) is no frame the supervisor decodes: it answers nothing, and the runtime waiting for that
    answer is ended by the harness at once, with the reason, instead of at the attempt's deadline."""
    target = load_target(f"cmd:{sys.executable} -I {UNDECODABLE_FIXTURE}", "coordinator")
    start = time.monotonic()
    observed = target.run(CoordinatorRun(RETRIES_LEFT, "error"))
    assert time.monotonic() - start < 5.0
    assert "could not decode a frame of the runtime's" in observed.harness
    assert (observed.exit_code, observed.replies) == (-9, ())


def test_the_checker_gives_the_undecodable_frames_counterexample_in_under_two_minutes(capsys):
    target = load_target(f"cmd:{sys.executable} -I {UNDECODABLE_FIXTURE}", "coordinator")
    start = time.monotonic()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(coordinator_runs)
    def conforms(run):
        check_conformance(target, run)

    with pytest.raises(Disagreement) as caught:
        conforms()
    took = time.monotonic() - start
    with capsys.disabled():
        print(f"\nthe undecodable frame's counterexample, found and shrunk in {took:.0f}s:\n"
              f"{textwrap.indent(str(caught.value), '  ')}")
    assert took < 120 and "try_number=1 max_tries=1 should_retry=true; task error" in str(caught.value)
