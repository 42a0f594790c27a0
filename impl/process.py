"""Target ``airflow-process``: a scenario lived by a real runtime process under the real coordinator supervisor.

Everything between the supervisor and the world is real:

- the process: ``_PopenActivitySubprocess.start(command=...)`` of the pinned task-sdk launches
  it, accepts and verifies its ``--comm``/``--logs`` TCP connections, sends StartupDetails;
  the real ``wait()`` runs the real event loop, sees the real exit code or signal, and ends
  with the real ``final_state`` and ``update_task_state_if_needed``;
- the runtime (``impl/scripted_runtime.py``) writes each of the scenario's frames, encoded by
  ``impl.codec``, on the real socket and reads the real response; it exits with the
  scenario's code or dies of its signal;
- the Execution API: Airflow's real ``Client`` over HTTP to ``impl.api_server``, which answers
  from ``model.server.Server``; the client makes one attempt per call (its retry layer is
  configured with ``stop_after_attempt(1)``), so a ``transient`` fault is exactly one failed
  call, as the model has it, and a ``lost`` answer is a real ``httpx.ReadTimeout``.

What is arranged, and why the observation still equals the in-process one:

- *Heartbeat cadence.* No heartbeat or success overtime falls due by itself: the supervisor's
  ``MIN_HEARTBEAT_INTERVAL`` and ``TASK_OVERTIME_THRESHOLD`` are set beyond any attempt's
  length while the attempt runs (the first-iteration heartbeat included). A ``heartbeat`` or
  ``overtime`` event is performed by the runtime over its control channel, which runs that
  one clock out (``impl.api_server``).
- *Lockstep.* After every frame and every clock event the runtime makes no-op round trips
  (``MaskSecret`` with an empty value) until every wake-up of the loop that could act on the
  event has finished; only then does it perform the next event. So the supervisor sees the
  events in the scenario's order, and a kill lands where the model puts it. The no-op
  frames are not scenario frames: their answers are not counted in ``replies``.
- *Exit watch.* A pidfd of the launched process is registered in the supervisor's selector,
  so the loop wakes when the process ends instead of at its next timeout, which the
  stretched clocks put minutes away. It changes when the exit is noticed, not what is done.

Two ways to launch (``spawn=``): ``exec`` runs ``python impl/scripted_runtime.py`` afresh
(about 35 ms of interpreter start); ``fork`` (the default when a C compiler is at hand)
runs the tiny compiled ``impl/launcher.c``, which connects, hands its sockets to a
pre-started fork server and stands in for the forked child (signals forwarded, exit status
mirrored). The supervisor cannot tell the difference; the benchmark measures both.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgpack
import structlog
import tenacity
from airflow.sdk.api.client import Client, ServerResponseError
from airflow.sdk.api.datamodels._generated import TaskInstance
from airflow.sdk.coordinators._subprocess import _PopenActivitySubprocess
from airflow.sdk.execution_time import supervisor as airflow_supervisor

from impl import codec
from impl.api_server import ExecutionAPIFake
from impl.scripted_runtime import SYNC_ID_BASE
from model.scenario import Fault, Heartbeat, Observation, Overtime, RunContext, Scenario, Send
from model.supervisor import MAX_FAILED_HEARTBEATS

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
_QUIET = structlog.get_logger("finalstate.process")

IMPL = Path(__file__).resolve().parent
RUNTIME = IMPL / "scripted_runtime.py"
LAUNCHER_SOURCE = IMPL / "launcher.c"
BUILD = IMPL.parent / "build" / "launcher"

#: Beyond the length of any attempt: no clock runs out unless an event runs it out.
STRETCHED = 10**9
#: How long the client waits for an answer the server will not send (a ``lost`` fault).
LOST_READ_TIMEOUT = 0.02
#: Every other call: generous, so that a loaded machine never times a real answer out.
CALL_TIMEOUT = 30.0
#: An attempt that has not ended by then is ended by the harness (SIGKILL), and says so.
DEFAULT_DEADLINE = 15.0
DEFAULT_STARTUP_TIMEOUT = 10.0

if airflow_supervisor.MAX_FAILED_HEARTBEATS != MAX_FAILED_HEARTBEATS:
    raise RuntimeError(
        f"[workers] max_failed_heartbeats is {airflow_supervisor.MAX_FAILED_HEARTBEATS}; "
        f"the model assumes Airflow's default of {MAX_FAILED_HEARTBEATS}"
    )


class OneShotClient(Client):
    """Airflow's ``Client`` with its retry layer configured to one attempt (``[workers] execution_api_retries = 1``).

    ``Client.request``'s tenacity decorator reads the retry count at import; ``retry_with``
    gives the same decorator (same predicate, same waits) with that one setting changed.
    """

    request = Client.request.retry_with(stop=tenacity.stop_after_attempt(1))


# -- building the launcher ----------------------------------------------------------------------


def build_launcher() -> Path | None:
    """The compiled launcher, built on first use (under ``build/launcher``); None if there is no C compiler."""
    source = LAUNCHER_SOURCE.read_bytes()
    binary = BUILD / f"finalstate-launcher-{hashlib.sha256(source).hexdigest()[:12]}"
    if binary.exists():
        return binary
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    BUILD.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run([compiler, "-O2", "-o", str(partial), str(LAUNCHER_SOURCE)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building {LAUNCHER_SOURCE.name} failed:\n{result.stderr}")
    os.replace(partial, binary)  # atomic: parallel workers may build at once
    return binary


# -- the harness: one per process ---------------------------------------------------------------


class Harness:
    """The fake API server, the shared client, the work directory and (lazily) the fork server."""

    def __init__(self):
        self.api = ExecutionAPIFake()
        self.client = OneShotClient(base_url=self.api.base_url, token="finalstate",
                                    timeout=httpx.Timeout(CALL_TIMEOUT))
        hooks = self.client.event_hooks
        self.client.event_hooks = {"request": [*hooks["request"], self.api.request_hook(LOST_READ_TIMEOUT)],
                                   "response": hooks["response"]}
        self.workdir = Path(tempfile.mkdtemp(prefix="finalstate-process-"))
        self.launcher = build_launcher()
        self.zygote: subprocess.Popen | None = None
        self.zygote_socket = self.workdir / "zygote.sock"
        self.lock = threading.Lock()
        #: Sockets the supervisor left open when ``wait()`` raised, closed by the harness (finding W4).
        self.closed_for_supervisor = 0

    @property
    def default_spawn(self) -> str:
        return "fork" if self.launcher is not None else "exec"

    def command(self, spawn: str, script_path: Path) -> list[str]:
        if spawn == "exec":
            return [sys.executable, "-I", str(RUNTIME), f"--script={script_path}"]
        if spawn != "fork":
            raise ValueError(f"spawn is 'fork' or 'exec', not {spawn!r}")
        if self.launcher is None:
            raise RuntimeError("the fork path needs a C compiler to build impl/launcher.c")
        self.ensure_zygote()
        return [str(self.launcher), str(self.zygote_socket), str(script_path)]

    def ensure_zygote(self) -> None:
        if self.zygote is not None and self.zygote.poll() is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.zygote_socket.unlink()
        self.zygote = subprocess.Popen(
            [sys.executable, "-I", str(RUNTIME), f"--zygote={self.zygote_socket}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        if self.zygote.stdout.readline() != b"ready\n":
            raise RuntimeError("the fork server did not start")
        self.zygote.stdout.close()

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.stdin.close()
            try:
                self.zygote.wait(5)
            except subprocess.TimeoutExpired:
                self.zygote.kill()
                self.zygote.wait()
            self.zygote = None
        self.client.close()
        self.api.shutdown()
        shutil.rmtree(self.workdir, ignore_errors=True)


_harness: Harness | None = None


def harness() -> Harness:
    global _harness
    if _harness is None:
        _harness = Harness()
        atexit.register(close_harness)
    return _harness


def close_harness() -> None:
    global _harness
    if _harness is not None:
        _harness.close()
        _harness = None


# -- one attempt --------------------------------------------------------------------------------


def compile_scenario(scenario: Scenario) -> dict:
    """The runtime's script for ``scenario``: its frames pre-encoded, each event followed by its lockstep."""
    steps: list[list] = []
    next_id = 1
    for event in scenario.events:
        if isinstance(event, Send):
            frame = codec.RequestFrame(next_id, codec.terminal_body(event.frame, event.state))
            steps += [["send", codec.encode_request(frame), next_id], ["sync", 1]]
            next_id += 1
        elif isinstance(event, Fault):
            steps.append(["control", {"op": "arm", "call": event.call, "kind": event.kind}])
        elif isinstance(event, Heartbeat):
            steps += [["control", {"op": "heartbeat", "answer": event.answer}], ["sync", 2]]
        elif isinstance(event, Overtime):
            steps += [["control", {"op": "overtime"}], ["sync", 2]]
        else:
            raise TypeError(f"unknown event {event!r}")
    steps.append(["exit", scenario.exit_code])
    return {"connect": True, "steps": steps}


class RecordingComm:
    """The supervisor's end of the comm socket, recording the answer to each scenario frame."""

    def __init__(self, sock):
        self._sock = sock
        self.replies: list[str] = []

    def sendall(self, data) -> None:
        try:
            frame = codec.decode_response(bytes(data))
        except codec.FrameError as e:
            self.replies.append(f"undecodable: {e}")
        else:
            if 0 < frame.id < SYNC_ID_BASE:
                self.replies.append("error" if frame.error else "ok")
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class ExitWatch:
    """A pidfd of the launched process, in the supervisor's selector: readable once the process has ended."""

    def __init__(self, pid: int):
        self.fd = os.pidfd_open(pid)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def register(self, selector) -> None:
        def on_close(watch):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(watch)

        selector.register(self, selectors.EVENT_READ, (lambda watch: False, on_close))


@contextlib.contextmanager
def stretched_clocks():
    saved = airflow_supervisor.MIN_HEARTBEAT_INTERVAL, airflow_supervisor.TASK_OVERTIME_THRESHOLD
    airflow_supervisor.MIN_HEARTBEAT_INTERVAL = STRETCHED
    airflow_supervisor.TASK_OVERTIME_THRESHOLD = STRETCHED
    try:
        yield
    finally:
        airflow_supervisor.MIN_HEARTBEAT_INTERVAL, airflow_supervisor.TASK_OVERTIME_THRESHOLD = saved


def supervise(script: dict, context: RunContext = RunContext(), *, spawn: str | None = None,
              deadline: float = DEFAULT_DEADLINE, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
              in_process: bool | None = None) -> Observation:
    """Run one scripted runtime under the real coordinator supervisor and observe the attempt.

    ``script`` is the runtime's (``impl.scripted_runtime``); the control address and token
    are filled in here. Whatever the runtime does, this returns within about
    ``deadline + startup_timeout`` seconds: a runtime still alive at the deadline is killed
    (SIGKILL) and the observation's ``harness`` says so; one that never connects ends with
    ``start()``'s own timeout, and the observation says that.

    The attempt runs in this process's helper (see ``Helper``) unless ``in_process`` is true
    (default: the environment variable ``FINALSTATE_PROCESS_HELPER=0``).
    """
    if in_process is None:
        in_process = os.environ.get("FINALSTATE_PROCESS_HELPER", "1") == "0" or _IN_HELPER
    kwargs = dict(spawn=spawn, deadline=deadline, startup_timeout=startup_timeout)
    if not in_process:
        return helper().call("supervise", script, context, **kwargs)
    return supervise_here(script, context, **kwargs)


def supervise_here(script: dict, context: RunContext = RunContext(), *, spawn: str | None = None,
                   deadline: float = DEFAULT_DEADLINE, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
                   ) -> Observation:
    """``supervise`` in this very process (its network namespace, its module globals)."""
    h = harness()
    with h.lock:
        return _supervise(h, script, context, spawn or h.default_spawn, deadline, startup_timeout)


def _supervise(h: Harness, script, context, spawn, deadline, startup_timeout) -> Observation:
    ti_id = uuid.uuid4()
    attempt = h.api.open(str(ti_id), context)
    script_path = h.workdir / f"{ti_id}.script"
    script_path.write_bytes(msgpack.packb({**script, "control": list(h.api.control_address), "token": str(ti_id)},
                                          use_bin_type=True))
    ti = TaskInstance(id=ti_id, task_id="task", dag_id="finalstate", run_id="manual__finalstate",
                      try_number=context.try_number, dag_version_id=uuid.UUID(int=0))
    notes: list[str] = []
    try:
        with stretched_clocks():
            try:
                sup = _PopenActivitySubprocess.start(
                    what=ti, dag_rel_path="dag.py", bundle_info=None, client=h.client, logger=_QUIET,
                    command=h.command(spawn, script_path), startup_timeout=startup_timeout,
                    subprocess_logs_to_stdout=False,
                )
            except Exception as e:
                return _not_started(attempt, e, startup_timeout)
            comm = RecordingComm(sup.stdin)
            sup.stdin = comm
            watch = ExitWatch(sup.pid)
            watch.register(sup.selector)
            attempt.attach(sup)
            timer = threading.Timer(deadline, _deadline, (attempt, sup, deadline, notes))
            timer.daemon = True
            timer.start()
            raised = None
            try:
                sup.wait()
            except Exception as e:  # the supervisor raising is part of what it did
                raised = _error_name(e)
            finally:
                timer.cancel()
                watch.close()
        _reap_runtime(attempt, sup)
        exit_code, final_state = sup._exit_code, str(getattr(sup.final_state, "value", sup.final_state))
        if exit_code is None:  # wait() raised before the process ended: nobody else will end and reap it
            exit_code = _kill_and_reap(sup)
            final_state = "none"
            notes.append(f"the supervisor raised before the process ended; the harness killed and reaped it "
                         f"(exit {exit_code})")
        if raised is not None:  # not part of the attempt: kept out of the observation, counted in stats()
            h.closed_for_supervisor += _close_leftovers(sup)
        with attempt.lock:  # a lost answer: applied on the server before the client gave up
            attempt.lock.wait_for(lambda: not attempt.lost_in_flight, timeout=10)
        notes += attempt.unexpected
        row = attempt.server.row
        return Observation(
            exit_code=exit_code,
            final_state=final_state,
            calls=tuple(attempt.calls),
            replies=tuple(comm.replies),
            row=row.state,
            row_gone=row.gone,
            raised=raised,
            harness="; ".join(notes) or None,
        )
    finally:
        h.api.close_attempt(str(ti_id))
        with contextlib.suppress(FileNotFoundError):
            script_path.unlink()


def _deadline(attempt, sup, deadline: float, notes: list[str]) -> None:
    notes.append(f"deadline: the attempt was still going after {deadline:g}s; the harness killed the runtime (SIGKILL)")
    for pid in {attempt.runtime_pid, sup.pid} - {None}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _reap_runtime(attempt, sup) -> None:
    """A forked runtime can outlive its launcher (killed by SIGKILL): end it, so nothing is left behind."""
    pid = attempt.runtime_pid
    if pid is not None and pid != sup.pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _close_leftovers(sup) -> int:
    """What ``wait()`` closes on its way out when it does not raise: the connections and the two servers."""
    left = [sock for sock in (*sup._open_sockets, sup._comm_server, sup._logs_server) if sock.fileno() != -1]
    for sock in left:
        sock.close()
    sup._open_sockets.clear()
    sup.stdin.close()
    return len(left)


def _kill_and_reap(sup) -> int:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(sup.pid, signal.SIGKILL)
    return sup._process.wait(10)


def _not_started(attempt, error: Exception, startup_timeout: float) -> Observation:
    """``start()`` raised: no supervisor to ask; what the server saw, and why."""
    if attempt.runtime_pid is not None:  # start()'s resource tracker terminated it; make sure
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(attempt.runtime_pid, signal.SIGKILL)
    row = attempt.server.row
    return Observation(
        exit_code=-signal.SIGTERM,  # _ResourceTracker terminates the process it could not start
        final_state="none",
        calls=tuple(attempt.calls),
        replies=(),
        row=row.state,
        row_gone=row.gone,
        raised=_error_name(error),
        harness=f"not started: {type(error).__name__}: {error}",
    )


def _error_name(e: Exception) -> str:
    if isinstance(e, ServerResponseError):
        return f"ServerResponseError({e.response.status_code})"
    return type(e).__name__


def run(scenario: Scenario) -> Observation:
    """The scenario lived by a real process under the real supervisor, on the fastest path available."""
    return supervise(compile_scenario(scenario), scenario.context)


def stats() -> dict:
    """What the process running the attempts holds now (see ``_stats``)."""
    if os.environ.get("FINALSTATE_PROCESS_HELPER", "1") == "0" or _IN_HELPER:
        return _stats()
    return helper().call("stats")


def close() -> None:
    close_helper()
    close_harness()


def target(name: str):
    from impl.targets import Target

    return Target(name, run, close=close)


# -- the helper: where the attempts run -----------------------------------------------------------

#: Buckets of the private namespace's TCP hash table (the kernel's minimum is 128).
PRIVATE_EHASH = 1024
_CLONE_NEWNET = 0x40000000
_IN_HELPER = False


class Helper:
    """A process that runs attempts for this one, in a private network namespace where it can have one.

    Why: Airflow's ``_is_connection_from_process`` runs psutil's ``net_connections`` for each
    of the two connections, and that reads ``/proc/net/tcp`` and ``/proc/net/tcp6``; each read
    walks the whole established-connections hash table of the network namespace. On a
    machine with a large table (262,144 buckets here: 4.5 ms a read) that is two thirds of an
    attempt's CPU. In a namespace of its own, with ``net.ipv4.tcp_child_ehash_entries`` set
    to ``PRIVATE_EHASH`` in an intermediate namespace (the host's settings are never touched),
    the same reads take microseconds. Creating namespaces needs root (CAP_SYS_ADMIN); without
    it the helper runs in the host's namespace: the same observations, slower. Everything the
    supervisor does is unchanged; its loopback connections simply live in a smaller table.

    The helper also keeps the supervisor's module-level clock settings and signal handlers
    out of the test process. Requests and answers are pickles on its stdin/stdout.
    """

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(IMPL.parent), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, "-c", "import impl.process as p; p._serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(IMPL.parent), env=env)
        self.network = self._read(120.0)

    def _read(self, timeout: float):
        import pickle
        import select as _select

        ready, _, _ = _select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the airflow-process helper did not answer within {timeout:g}s; killed it")
        try:
            status, value = pickle.load(self.proc.stdout)
        except EOFError:
            code = self.proc.wait()
            raise RuntimeError(f"the airflow-process helper died (exit {code}); its stderr says why") from None
        if status == "error":
            raise RuntimeError(f"the airflow-process helper failed:\n{value}")
        return value

    def call(self, op: str, *args, **kwargs):
        import pickle

        pickle.dump((op, args, kwargs), self.proc.stdin)
        self.proc.stdin.flush()
        budget = kwargs.get("deadline", DEFAULT_DEADLINE) + kwargs.get("startup_timeout", DEFAULT_STARTUP_TIMEOUT)
        return self._read(budget + 60.0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


_helper: Helper | None = None


def helper() -> Helper:
    global _helper
    if _helper is None or _helper.proc.poll() is not None:
        _helper = Helper()
        atexit.register(close_helper)
    return _helper


def close_helper() -> None:
    global _helper
    if _helper is not None:
        _helper.close()
        _helper = None


def private_network() -> str:
    """Move this process into a network namespace with a small TCP hash table, if allowed; say where it is."""
    import ctypes
    import fcntl
    import socket
    import struct

    if os.environ.get("FINALSTATE_PROCESS_NETNS", "auto") == "off" or not sys.platform.startswith("linux"):
        return "host network namespace (private namespace switched off)"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        return f"host network namespace (unshare: {os.strerror(ctypes.get_errno())})"
    note = f"private network namespace, {PRIVATE_EHASH}-bucket TCP hash table"
    try:  # per-namespace setting, read when a child namespace is created: the host's stays as it is
        Path("/proc/sys/net/ipv4/tcp_child_ehash_entries").write_text(str(PRIVATE_EHASH))
        if libc.unshare(_CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "second unshare")
    except OSError as e:
        note = f"private network namespace, shared TCP hash table ({e})"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # loopback up
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
    return note


def _serve() -> None:
    """The helper's main loop (see ``Helper``)."""
    import pickle
    import traceback

    global _IN_HELPER
    _IN_HELPER = True
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # nothing else may write on the answers pipe
    os.close(devnull)

    def answer(status, value):
        pickle.dump((status, value), answers)
        answers.flush()

    try:
        network = private_network()
        harness()
    except Exception:
        return answer("error", traceback.format_exc())
    answer("ok", network)
    while True:
        try:
            op, args, kwargs = pickle.load(requests)
        except EOFError:
            break
        try:
            if op == "supervise":
                answer("ok", supervise_here(*args, **kwargs))
            elif op == "stats":
                answer("ok", _stats())
            else:
                answer("error", f"unknown request {op!r}")
        except Exception:
            answer("error", traceback.format_exc())
    close_harness()


def _stats() -> dict:
    """What this process holds: for leak checks (children, zombies, descriptors, sockets)."""
    import psutil

    me = psutil.Process()
    children = me.children(recursive=True)
    links = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            links[fd] = os.readlink(f"/proc/self/fd/{fd}")
    sockets = sum(1 for link in links.values() if link.startswith("socket:"))
    return {
        "children": sorted(p.pid for p in children),
        "zombies": sorted(p.pid for p in children if p.status() == psutil.STATUS_ZOMBIE),
        "fds": len(links),
        "sockets": sockets,
        "threads": threading.active_count(),
        "closed_for_supervisor": _harness.closed_for_supervisor if _harness else 0,
    }
