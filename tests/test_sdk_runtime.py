"""``scripts/build-sdk-runtime``: the program an SDK maintainer points the checker at, built against their checkout.

The SDKs cannot be fetched here, so each checkout is a stand-in with the shape of the SDK's public API that the
program in ``runtimes/sdk/`` uses (``tests/fixtures/{go,java,ts}-sdk-shape``). What this shows, for each SDK: the
script builds the program against whatever SDK directory a checkout has, without writing to it, and the program
compiles against that API shape (its ``cancellable`` task included); bad input is refused by name.

The Go and Java stand-ins serve nothing (their ``Serve``/``serve`` fails: exit 1), and the Java one builds with a
stand-in ``gradlew`` that runs javac (no Gradle here). The TypeScript stand-in's ``serve()`` speaks the frames as
the TypeScript SDK's coordinator runtime is read to (``runtimes/README.md``), so its build also runs as a ``cmd:``
target under Airflow's real supervisor: that proves the program's tasks give the outcomes the checker expects of
the task ids it hands out, and that its ``cancellable`` task ends on its abort signal. It cannot prove that the real
SDK behaves as the stand-in does: only a build against a real ``ts-sdk/`` checkout shows that. The nearest real thing
here is the one release npm serves, ``apache-airflow-ts-sdk@0.1.0-beta1``, whose API predates the probe's: the same
four tasks written to it (``tests/fixtures/ts-sdk-0.1.0-beta1``) run through the same conformance and cancellation
tests as the probe on the stand-in, so the stand-in's reading of the SDK is checked against a real runtime of it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from impl.wire.codec import HEADER_SIZE, ResponseFrame, decode_request, encode_response, read_length

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-sdk-runtime"
FIXTURES = ROOT / "tests" / "fixtures"
BUILT = ROOT / "build" / "runtimes"
TS_RUNTIME = BUILT / "ts-sdk-runtime"
FINALSTATE = [sys.executable, "-m", "impl.frontdoor.cli"]

needs_go = pytest.mark.skipif(shutil.which("go") is None,
                              reason="no Go toolchain on PATH: the Go SDK's runtime cannot be built")
needs_java = pytest.mark.skipif(shutil.which("javac") is None,
                                reason="no JDK on PATH: the Java SDK's runtime cannot be built")


def build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def tree(path: Path) -> list:
    """What a checkout holds: every path under it, with each file's bytes, to show a build wrote nothing there."""
    return sorted((str(p.relative_to(path)), p.read_bytes() if p.is_file() else b"") for p in path.rglob("*"))


def build_against_shape(sdk: str) -> Path:
    """Build ``sdk``'s program against its stand-in checkout, assert the checkout was left as it was; the runtime."""
    shape = FIXTURES / f"{sdk}-sdk-shape"
    before = tree(shape)
    done = build(sdk, str(shape))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"finalstate check --target 'cmd:build/runtimes/{sdk}-sdk-runtime'" in done.stdout
    assert tree(shape) == before
    runtime = BUILT / f"{sdk}-sdk-runtime"
    assert os.access(runtime, os.X_OK)
    return runtime


@needs_go
def test_the_go_program_builds_against_a_checkouts_go_sdk_and_leaves_it_unwritten():
    ran = subprocess.run([str(build_against_shape("go"))], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 1 and "serves nothing" in ran.stderr  # main exits non-zero when Serve fails


@needs_java
def test_the_java_program_builds_against_a_checkouts_java_sdk_and_leaves_it_unwritten():
    ran = subprocess.run([str(build_against_shape("java"))], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1 and "serves nothing" in ran.stderr  # serve's exception ends the JVM


def node_or_skip() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("no node and npm on PATH: the TypeScript SDK's runtime cannot be built")


def once_per_run(name: str, make: Callable[[], Path]) -> Path:
    """What ``make()`` builds under ``build/runtimes``, built once per test run however many xdist workers ask for it
    (a lock, and a stamp of the run's id), so that no worker rebuilds it while another runs it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid {os.getpid()}"
    BUILT.mkdir(parents=True, exist_ok=True)
    with open(BUILT / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = BUILT / f".{name}.built"
        if stamp.exists() and stamp.read_text().splitlines()[0] == run:
            return Path(stamp.read_text().splitlines()[1])
        made = make()
        stamp.write_text(f"{run}\n{made}\n")
        return made


@pytest.fixture(scope="module")
def ts_runtime() -> Path:
    node_or_skip()
    return once_per_run("ts-sdk-runtime", lambda: build_against_shape("ts"))


#: npm's words for a registry it cannot reach: the one reason the real release below is skipped rather than failed.
_UNREACHABLE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT")


def released_ts_runtime() -> Path:
    """``tests/fixtures/ts-sdk-0.1.0-beta1`` installed from npm (the TypeScript SDK's one release there) under
    ``build/runtimes``; its launcher."""
    node_or_skip()
    work = BUILT / "ts-sdk-0.1.0-beta1"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(FIXTURES / "ts-sdk-0.1.0-beta1", work)
    done = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and any(word in done.stderr for word in _UNREACHABLE):
        pytest.skip(f"npm cannot reach its registry for apache-airflow-ts-sdk@0.1.0-beta1: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr
    launcher = BUILT / "ts-sdk-0.1.0-beta1-runtime"
    launcher.write_text(f'#!/bin/sh\nexec "{shutil.which("node")}" "{work / "main.mjs"}" "$@"\n')
    launcher.chmod(0o755)
    return launcher


@pytest.fixture(scope="module", params=["probe on the stand-in", "npm 0.1.0-beta1"])
def ts_program(request) -> Path:
    """A TypeScript SDK runtime with the probe's four tasks: the probe built against the stand-in, or the same tasks
    on the real SDK as npm serves it."""
    if request.param == "probe on the stand-in":
        return request.getfixturevalue("ts_runtime")
    return once_per_run("ts-sdk-0.1.0-beta1-runtime", released_ts_runtime)


def test_the_ts_program_built_against_a_checkouts_ts_sdk_replays_as_a_cmd_target(ts_runtime):
    """The replay a maintainer runs first, as they run it: the task fails with retries left, the SDK sends RetryTask,
    the supervisor records UP_FOR_RETRY, and the TypeScript SDK's profile explains it."""
    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")
    done = subprocess.run([*FINALSTATE, "replay", "--target", "cmd:build/runtimes/ts-sdk-runtime",
                           "try_number=1 max_tries=1 should_retry=true; task error"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # undeclared, it is compared with every SDK profile: the TypeScript SDK's must be among those that explain it
    assert "explained by the model of:" in done.stdout and "ts-sdk-1.0.0" in done.stdout, done.stdout
    assert "final_state=up_for_retry" in done.stdout
    assert "violations: none" in done.stdout


def test_every_task_of_the_ts_program_gives_what_the_model_says(ts_program):
    """Each task id the checker hands out (``success``, ``error``, ``panic``: a thrown string, and ``unknown_task``,
    the SDK's own path), with retries left and without: conformance with the contract's model, on the stand-in and on
    the real SDK's 0.1.0-beta1."""
    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")
    from impl.targets.kinds import KINDS
    from impl.targets.registry import load_target
    from impl.supervisor_process import helper
    from model.coordinator import COORDINATOR_OUTCOMES, CoordinatorRun
    from model.scenario import RunContext

    target = load_target(f"cmd:{ts_program}", "coordinator")
    try:
        for context in (RunContext.from_server(1, 1), RunContext.from_server(2, 1)):
            for outcome in COORDINATOR_OUTCOMES:
                run = CoordinatorRun(context, outcome)
                assert KINDS["coordinator"].agree(target.reference(run), target.run(run)), run.to_text()
    finally:
        helper.close()


def test_the_ts_programs_cancellable_task_ends_on_its_abort_signal(ts_program):
    """``cancellable`` under a supervisor of this test's own: StartupDetails for it, SIGTERM once the handler is
    dispatched (the runtime logs it, the stand-in as the SDK does), and the runtime reports the task's failure
    (RetryTask: retries are left, its reason the AbortError) and exits 0, long before the task's own 60 s wait."""
    comm_server, logs_server = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    accepted = []
    address = lambda server: "127.0.0.1:%d" % server.getsockname()[1]  # noqa: E731
    process = subprocess.Popen([str(ts_program), f"--comm={address(comm_server)}", f"--logs={address(logs_server)}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        comm_server.settimeout(30)
        logs_server.settimeout(30)
        logs, _ = logs_server.accept()
        comm, _ = comm_server.accept()
        accepted += [logs, comm]
        startup = {"type": "StartupDetails", "ti_context": {"should_retry": True},
                   "ti": {"id": "0197c1f0-0000-7000-8000-000000000001", "dag_id": "finalstate",
                          "task_id": "cancellable", "run_id": "finalstate-run", "try_number": 1, "map_index": -1},
                   "dag_rel_path": "finalstate.py", "bundle_info": {"name": "finalstate", "version": None}}
        comm.sendall(encode_response(ResponseFrame(0, startup)))
        logs.settimeout(30)
        logged = b""
        while b"Dispatching to handler" not in logged:
            chunk = logs.recv(4096)
            assert chunk, f"the runtime closed --logs before dispatching the task: {logged!r}"
            logged += chunk
        cancelled_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        comm.settimeout(30)
        header = comm.recv(HEADER_SIZE, socket.MSG_WAITALL)
        terminal = decode_request(header + comm.recv(read_length(header), socket.MSG_WAITALL))
        comm.close()  # as the supervisor does at the runtime's EOF: the runtime's half-closed socket then ends
        logs.close()
        assert process.wait(timeout=30) == 0, process.stderr.read().decode()
        assert time.monotonic() - cancelled_at < 10
        assert terminal.id == 0 and terminal.body["type"] == "RetryTask", terminal
        assert "aborted" in terminal.body["retry_reason"], terminal
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
        for each in (*accepted, comm_server, logs_server):
            each.close()


#: A runtime that keeps the first frame's bundle_info in the file named by its first argument, then succeeds.
_KEEPS_BUNDLE_INFO = f"""
import json, socket, sys
sys.path.insert(0, {str(ROOT)!r})
from impl.wire.codec import HEADER_SIZE, RequestFrame, decode_response, encode_request, read_length, terminal_body
args = dict(a[2:].split("=", 1) for a in sys.argv[2:])
logs = socket.create_connection(args["logs"].rsplit(":", 1))
comm = socket.create_connection(args["comm"].rsplit(":", 1))
header = comm.recv(HEADER_SIZE, socket.MSG_WAITALL)
startup = decode_response(header + comm.recv(read_length(header), socket.MSG_WAITALL))
open(sys.argv[1], "w").write(json.dumps(startup.body.get("bundle_info")))
comm.sendall(encode_request(RequestFrame(1, terminal_body("SucceedTask"))))
comm.recv(HEADER_SIZE)
"""


def test_a_cmd_runtime_is_sent_the_bundle_info_airflow_always_sends(tmp_path):
    """StartupDetails.bundle_info is not optional in Airflow, and the TypeScript SDK reads its name as the task
    starts (its 0.1.0-beta1 from npm died of a null one, exit 1 with no frame): a cmd: runtime is sent one."""
    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")
    from impl.targets.registry import load_target
    from impl.supervisor_process import helper
    from model.coordinator import CoordinatorRun
    from model.scenario import RunContext

    runtime, kept = tmp_path / "runtime.py", tmp_path / "bundle_info.json"
    runtime.write_text(_KEEPS_BUNDLE_INFO)
    target = load_target(f"cmd:{sys.executable} {runtime} {kept}", "coordinator")
    try:
        observed = target.run(CoordinatorRun(RunContext.from_server(1, 1), "success"))
    finally:
        helper.close()
    assert observed.final_state == "success", observed
    assert json.loads(kept.read_text()) == {"name": "finalstate", "version": None}


@pytest.mark.parametrize("args,says", [
    ((), "usage: scripts/build-sdk-runtime go|java|ts PATH"),
    (("go", "/no/such/checkout"), "/no/such/checkout is not a directory"),
    (("go", "/tmp"), "is not an apache/airflow checkout with the Go SDK"),
    (("java", "/tmp"), "is not an apache/airflow checkout with the Java SDK"),
    (("ts", "/tmp"), "is not an apache/airflow checkout with the TypeScript SDK"),
    (("rust", "/tmp"), "unknown SDK 'rust'"),
])
def test_bad_input_is_refused_by_name(args, says):
    done = build(*args)
    assert done.returncode == 2 and says in done.stderr
