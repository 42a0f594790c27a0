"""Where real-process attempts run: a helper process, in a private network namespace where it can have one.

``in_helper(function, *args)`` runs a module-level function in the helper (or here, when this
is the helper or ``FINALSTATE_PROCESS_HELPER=0``), so every real-process target gets the same
fast, isolated place to run its attempts; what it raises there is raised here (when it pickles). ``close`` ends the helper and this process's harness.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from impl.supervisor_process import supervise
from impl.supervisor_process.supervise import DEFAULT_DEADLINE, DEFAULT_STARTUP_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent.parent

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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, "-c", "import impl.supervisor_process.helper as h; h._serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), env=env)
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
        if status == "raise":  # the function's own exception, as it was raised there (e.g. Unsupported)
            error, where = value
            raise error from RuntimeError(f"raised in the airflow-process helper:\n{where}")
        return value

    def call(self, function, *args, budget: float | None = None, **kwargs):
        """``function(*args, **kwargs)`` in the helper; ``function`` is a module-level function (pickled by name).

        ``budget``: how long to wait for the answer before killing the helper (default: an attempt's
        deadline and startup timeout, plus a minute).
        """
        import pickle

        pickle.dump((function, args, kwargs), self.proc.stdin)
        self.proc.stdin.flush()
        if budget is None:
            budget = kwargs.get("deadline", DEFAULT_DEADLINE) + kwargs.get("startup_timeout", DEFAULT_STARTUP_TIMEOUT)
            budget += 60.0
        return self._read(budget)

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
        supervise.harness()
    except Exception:
        return answer("error", traceback.format_exc())
    answer("ok", network)
    while True:
        try:
            function, args, kwargs = pickle.load(requests)
        except EOFError:
            break
        try:
            answer("ok", function(*args, **kwargs))
        except Exception as e:
            where = traceback.format_exc()
            try:
                pickle.dumps(e)
            except Exception:
                answer("error", where)
            else:
                answer("raise", (e, where))
    supervise.close_harness()


def become_helper() -> None:
    """This process is where attempts run (a helper of ``pool.TryPool``): ``in_helper`` runs its function here."""
    global _IN_HELPER
    _IN_HELPER = True


def helper_in_use() -> bool:
    """Whether ``in_helper`` sends its function to a helper process: not when this is one, nor where it is switched
    off (``FINALSTATE_PROCESS_HELPER=0``)."""
    return not _IN_HELPER and os.environ.get("FINALSTATE_PROCESS_HELPER", "1") != "0"


def in_helper(function, *args, budget: float | None = None, **kwargs):
    """``function(*args, **kwargs)`` where the attempts run: the helper, unless this is it or it is switched off.

    ``budget``: see ``Helper.call`` (a bound on waiting for the helper, not on ``function`` run here).
    """
    if not helper_in_use():
        return function(*args, **kwargs)
    return helper().call(function, *args, budget=budget, **kwargs)


def close() -> None:
    """End the helper (and its harness), the try pool's helpers (``pool``) and this process's own harness."""
    from impl.supervisor_process.pool import close_pool

    close_pool()
    close_helper()
    supervise.close_harness()
