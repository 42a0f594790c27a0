"""A scriptable task runtime that speaks the coordinator convention: stdlib and msgpack only.

Launched as ``python impl/wire/scripted_runtime.py --script=PATH --comm=HOST:PORT --logs=HOST:PORT``
(the last two appended by ``_PopenActivitySubprocess.start``), it connects back to the
supervisor, reads the StartupDetails frame, then performs its *script* for real, step by
step, and ends as the script says. It knows nothing of scenarios or of Airflow: the
harness (``impl.supervisor_process.target``) compiles a scenario into a script, encoding every frame with
``impl.wire.codec`` beforehand, so this module stays small and starts fast.

How the script arrives: a msgpack file whose path is the ``--script`` argument, so a
script of any size costs one short argument. Its map:

``control``  ``[host, port]`` of the harness's control channel, or nil
``token``    the attempt's identifier on that channel (the TI id)
``connect``  false: never connect to ``--comm``/``--logs`` (then hang)
``sync_body``  the body of the no-op frame of ``sync`` steps (default: ``MaskSecret`` with an empty value; a release
              without ``MaskSecret`` is given another)
``wire``     ``frames`` (the default): length-prefixed msgpack frames with ids on the comm socket; ``lines``: JSON
              lines (a task-sdk release before 1.0.3, as a forked child): the first line on the comm socket is
              StartupDetails, whose ``requests_fd`` is where requests go; a line comes back on the comm socket only
              for a request the supervisor had something to send for, with no id
``sync_answer``  on ``lines``: the fields of the line that answers ``sync_body`` (the supervisor writes one for it)
``python_runtime``  instead of steps, the path of a Python runtime file whose ``serve(comm, logs,
              started)`` runs one try on the handed sockets (fork path only; e.g. the reference runtime)
``steps``    a list of ``[op, ...]`` performed in order:

- ``["send", frame_bytes, request_id]``: write one whole request frame, await its response
  (the response's id must match), log what came back (``frames`` only);
- ``["sync", n]``: ``n`` round trips of a no-op frame (``MaskSecret`` with an empty value,
  which the supervisor answers and otherwise ignores) -- after the n-th answer, every
  earlier wake-up of the supervisor's monitor loop has finished, checks included (on ``lines``
  the lines before each answer, which answer earlier requests, are read and passed over);
- ``["control", message]``: one request on the control channel, await its acknowledgement;
- ``["raw", data]``: write bytes as they are where requests go (garbage, partial frames, a JSON line), await
  nothing;
- ``["read"]``: await one response frame (a line, on ``lines``); ``["close"]``: close the socket requests go to;
  ``["shutdown_reads"]``: take no more answers (the comm socket shut for reading: what the supervisor writes to it
  then fails, as to a runtime that has gone);
- ``["log", text]``: one JSON log line on the logs channel;
- ``["sleep", seconds]``; ``["hang"]``: sleep until killed;
- ``["ignore_sigterm", grace, code]``: from now on a SIGTERM leaves the process alive and doing
  nothing more; unless a SIGKILL ends it first, it exits ``code`` ``grace`` seconds later (``code`` ``"hang"``:
  never);
- ``["handle_sigterm"]``: from now on a SIGTERM is handled and the process carries on with its steps (as Airflow's
  task runner does: ``on_kill``, then back to the task); the supervisor's kill then waits for it to exit;
- ``["never_exit"]``: the process never exits on its own. It tells the control channel why it is still there:
  ``hangs`` once it has handled a SIGTERM (a kill is waiting for it to exit, and only the kill's SIGKILL will end
  it), else ``hung`` (nothing ended it); then it sleeps until killed;
- ``["exit", code]``: exit with ``code`` if ``>= 0``, else die of signal ``-code``.

Its TCP connections close with a reset (``SO_LINGER`` 0), not a FIN: the supervisor still
reads every byte sent before it, then sees ``ConnectionResetError`` where it would see EOF,
and its loop treats the two alike (``_service_subprocess``). A FIN would leave a TIME_WAIT
socket per connection for a minute, and the supervisor's own ownership check (psutil
reading ``/proc/net/tcp``) slows with every one of them: at 50 attempts a second it doubles
within the minute.

A script that runs out of steps exits 0. Anything unexpected (the supervisor closing the
comm socket, a response to another id) exits with ``PROTOCOL_ERROR_EXIT`` after saying why
on stderr, so a harness bug never looks like a scenario's exit.

On the fork path a ``sync`` step ends with a barrier: a ``Q``/``A`` round trip with the
launcher, which stands in for this process towards the supervisor (see ``launcher.c``).

The same module is the *fork server* of the fast path (``--zygote=SOCKET``): it imports
once, then for each launcher that connects it receives the launcher's already-connected
comm/logs/stdout/stderr descriptors (SCM_RIGHTS) and the script path, forks a child that
runs the script on those descriptors, and reports the child's exit status back to the
launcher, which ends with the same status (see ``launcher.c``).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

import msgpack

PROTOCOL_ERROR_EXIT = 70
#: The ``code`` of ``ignore_sigterm`` for a process that never exits on its own (``model.scenario.HANG``).
HANG = "hang"
#: The ids of ``sync`` frames start above it: the scenario's frames are numbered below.
SYNC_ID_BASE = 1 << 30
#: On JSON lines, which carry no ids, the ``sync`` no-op asks for this variable, which no server has: its answer
#: names it, and the supervisor's side tells the no-op apart from the scenario's requests by it.
SYNC_VARIABLE = "finalstate-sync"
_SYNC_BODY = {"type": "MaskSecret", "value": "", "name": None}


def _no_core_dumps() -> None:
    """Scenarios die of SIGSEGV and SIGABRT on purpose; leave no core files behind."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


class ProtocolError(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ProtocolError("the supervisor closed the comm socket")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> list:
    length = int.from_bytes(_recv_exact(sock, 4), "big")
    return msgpack.unpackb(_recv_exact(sock, length), raw=False, timestamp=3, strict_map_key=False)


def _frame(fields: list) -> bytes:
    payload = msgpack.packb(fields, use_bin_type=True, datetime=True)
    return len(payload).to_bytes(4, "big") + payload


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def connect(address: tuple[str, int]) -> socket.socket:
    """A TCP connection that closes with a reset, leaving no TIME_WAIT behind (see the module doc)."""
    sock = socket.create_connection(address)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    """One line from ``sock`` (its newline dropped); ``buffer`` keeps what was read past it."""
    while (end := buffer.find(b"\n")) == -1:
        chunk = sock.recv(65536)
        if not chunk:
            raise ProtocolError("the supervisor closed the comm socket")
        buffer += chunk
    line = bytes(buffer[:end])
    del buffer[: end + 1]
    return line


class Runtime:
    """One attempt's runtime side: the comm (and, on JSON lines, requests), logs and control connections and the
    script."""

    def __init__(self, script: dict, comm: socket.socket | None, logs: socket.socket | None, launcher=None):
        self.script = script
        self.launcher = launcher
        self.comm = comm
        #: Where requests go: the comm socket, or on JSON lines the descriptor StartupDetails names.
        self.requests = comm
        self.logs = logs
        self.control: socket.socket | None = None
        self.next_sync = SYNC_ID_BASE
        self.sync_body = script.get("sync_body") or _SYNC_BODY
        self.lines = script.get("wire") == "lines"
        self.pending = bytearray()  # JSON lines read past the last one taken
        #: Whether a SIGTERM reached the handler of ``handle_sigterm``: a kill is waiting for this process to exit.
        self.sigterm_handled = False

    def log(self, text: str, level: str = "info") -> None:
        if self.logs is not None:
            line = {"level": level, "event": text, "logger": "finalstate.runtime"}
            self.logs.sendall(json.dumps(line).encode() + b"\n")

    def call_control(self, message: dict) -> dict:
        if self.control is None:
            host, port = self.script["control"]
            self.control = connect((host, port))
        self.control.sendall(_frame({**message, "token": self.script["token"]}))
        reply = read_frame(self.control)
        if not reply.get("ok"):
            raise ProtocolError(f"control refused {message}: {reply}")
        return reply

    def await_response(self, request_id: int) -> list:
        frame = read_frame(self.comm)
        if frame[0] != request_id:
            raise ProtocolError(f"awaited the response to {request_id}, got one to {frame[0]}")
        return frame

    def read_line(self) -> dict:
        line = json.loads(read_line(self.comm, self.pending))
        if not isinstance(line, dict):
            raise ProtocolError(f"a line from the supervisor is no JSON object: {line!r:.80}")
        return line

    def run(self) -> None:
        if self.comm is not None and self.lines:
            startup = self.read_line()
            if startup.get("type") != "StartupDetails":
                raise ProtocolError(f"the first line must be StartupDetails, got {startup.get('type')!r}")
            if not isinstance(startup.get("requests_fd"), int):
                raise ProtocolError("StartupDetails names no requests_fd to write requests to")
            self.requests = socket.socket(fileno=startup["requests_fd"])
        elif self.comm is not None:
            startup = read_frame(self.comm)
            if startup[0] != 0:
                raise ProtocolError(f"the first frame must be StartupDetails (id 0), got id {startup[0]}")
            if self.launcher is not None:
                self.launcher.sendall(b"R")  # the supervisor has verified both connections
        for step in self.script.get("steps", ()):
            getattr(self, "op_" + step[0])(*step[1:])
        self.op_exit(0)

    def op_send(self, data: bytes, request_id: int) -> None:
        self.comm.sendall(data)
        _, body, error = self.await_response(request_id)
        self.log(f"frame {request_id} answered " + ("error" if error else "ok"))

    def op_sync(self, count: int) -> None:
        for _ in range(count):
            if self.lines:
                self.requests.sendall(json.dumps(self.sync_body).encode() + b"\n")
                answer = self.script["sync_answer"]
                while any(line.get(k) != v for line in [self.read_line()] for k, v in answer.items()):
                    pass  # a line answering an earlier request
                continue
            self.next_sync += 1
            self.comm.sendall(_frame([self.next_sync, self.sync_body, None]))
            self.await_response(self.next_sync)
        if self.launcher is not None:
            # A signal the supervisor sent the launcher before answering is forwarded to us
            # before the launcher reads this query, so it has reached us when the answer does.
            self.launcher.sendall(b"Q")
            if _recv_exact(self.launcher, 1) != b"A":
                raise ProtocolError("the launcher answered the barrier with something else")

    def op_control(self, message: dict) -> None:
        self.call_control(message)

    def op_raw(self, data: bytes) -> None:
        self.requests.sendall(data)

    def op_read(self) -> None:
        self.read_line() if self.lines else read_frame(self.comm)

    def op_close(self) -> None:
        self.requests.close()

    def op_shutdown_reads(self) -> None:
        self.comm.shutdown(socket.SHUT_RD)

    def op_log(self, text: str) -> None:
        self.log(text)

    def op_sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def op_hang(self) -> None:
        while True:
            time.sleep(3600)

    def op_ignore_sigterm(self, grace: float, code: int | str) -> None:
        """From now on a SIGTERM leaves the process alive and silent; ``grace`` seconds later it ends with ``code``
        (``"hang"``: it never does)."""
        def ignore(signum, frame):
            if code == HANG:
                self.op_hang()
            time.sleep(grace)
            die(code)

        signal.signal(signal.SIGTERM, ignore)

    def op_handle_sigterm(self) -> None:
        """From now on a SIGTERM is noted and the steps go on: the process carries on while the kill waits for it."""
        def handle(signum, frame):
            self.sigterm_handled = True

        signal.signal(signal.SIGTERM, handle)

    def op_never_exit(self) -> None:
        """Never exit: say on the control channel whether a kill waits for this process (``hangs``) or nothing ended
        it (``hung``), then sleep until killed."""
        self.call_control({"op": "hangs" if self.sigterm_handled else "hung"})
        self.op_hang()

    def op_exit(self, code: int) -> None:
        die(code)


def die(code: int) -> None:
    """End the process: exit ``code``, or for a negative code, die of signal ``-code``."""
    sys.stdout.flush()
    sys.stderr.flush()
    if code < 0:
        sig = -code
        signal.signal(sig, signal.SIG_DFL) if sig not in (signal.SIGKILL, signal.SIGSTOP) else None
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        time.sleep(1)  # the signal is delivered before this returns; this is a backstop
        os._exit(128 + sig)
    os._exit(code)


def load_script(path: str) -> dict:
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False, strict_map_key=False)


_PYTHON_RUNTIMES: dict[str, object] = {}


def python_runtime(path: str):
    """The module of the Python runtime file at ``path``, imported once per fork server (before forking)."""
    if path not in _PYTHON_RUNTIMES:
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"finalstate_runtime_{len(_PYTHON_RUNTIMES)}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and the like look their module up there
        spec.loader.exec_module(module)
        _PYTHON_RUNTIMES[path] = module
    return _PYTHON_RUNTIMES[path]


def serve_python_runtime(path: str, comm: socket.socket, logs: socket.socket, launcher) -> None:
    """Run the Python runtime at ``path`` on the handed sockets (its ``serve(comm, logs, started)``); exit as it says."""
    code = python_runtime(path).serve(comm, logs, lambda: launcher.sendall(b"R"))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def perform(script: dict, comm: socket.socket | None, logs: socket.socket | None, launcher=None) -> None:
    """Run one script on connected sockets (or none, for a runtime that never connects); never returns.

    ``launcher``: the connection to the launcher standing in for this process (fork path):
    told ``R`` once StartupDetails has arrived (the supervisor has accepted and verified both
    connections, so the launcher may drop its copies), and queried after every ``sync``.
    """
    runtime = Runtime(script, comm, logs, launcher)
    try:
        if script.get("control"):
            runtime.call_control({"op": "hello", "pid": os.getpid()})
        if comm is None:
            runtime.op_hang()
        runtime.run()
    except (ProtocolError, OSError, ValueError, msgpack.UnpackException) as e:
        print(f"finalstate runtime: {type(e).__name__}: {e}", file=sys.stderr)
        die(PROTOCOL_ERROR_EXIT)


def forked_child(script_path: str) -> None:
    """Run the script at ``script_path`` as the child a supervisor forked (``ActivitySubprocess.start(target=...)``
    before task-sdk 1.3.0): Airflow's ``_fork_main`` has put the requests socketpair at fd 0, so that is the comm
    socket; there is no ``--logs`` connection (the child's log channel is Airflow's own). Never returns."""
    _no_core_dumps()
    try:
        script = load_script(script_path)
        comm = socket.socket(fileno=os.dup(0))
    except (OSError, ValueError, msgpack.UnpackException) as e:
        print(f"finalstate runtime: {type(e).__name__}: {e}", file=sys.stderr)
        die(PROTOCOL_ERROR_EXIT)
    perform(script, comm if script.get("connect", True) else None, None)


def main(argv: list[str] | None = None) -> None:
    args = dict(a.split("=", 1) for a in (argv if argv is not None else sys.argv[1:]) if "=" in a)
    _no_core_dumps()
    if "--zygote" in args:
        return zygote(args["--zygote"])
    script = load_script(args["--script"])
    comm = logs = None
    if script.get("connect", True):
        comm = connect(_address(args["--comm"]))
        logs = connect(_address(args["--logs"]))
    perform(script, comm, logs)


# -- the fork server ---------------------------------------------------------------------------

#: Descriptors a launcher hands over, in order.
HANDED_FDS = ("comm", "logs", "stdout", "stderr")


def zygote(path: str) -> None:
    """Serve launchers on the unix socket ``path`` until stdin closes (the harness went away).

    Per launcher: receive ``script path`` and four descriptors, fork, tell the launcher the
    child's pid (``P<pid>\\n``), and when the child ends, its exit status (``X<code>\\n``,
    ``subprocess``-style: negative for a signal).

    A launcher that hangs up while its child lives was killed by a signal it cannot forward
    (the supervisor's SIGKILL): the process it stands for is dead, so the child is killed
    (SIGKILL) too, as a runtime launched directly would have been, and its sockets close now
    rather than when it would have ended by itself (a runtime that ignores SIGTERM: seconds later).
    """
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, launcher connection)
    launchers: dict[int, int] = {}  # launcher connection's fd -> its child's pidfd
    stdin = sys.stdin.fileno()
    poller = select.poll()
    poller.register(server, select.POLLIN)
    poller.register(stdin, select.POLLIN)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for fd, _ in poller.poll():
            if fd == stdin:
                if not os.read(stdin, 4096):
                    _zygote_shutdown(server, path, children)
                    return
            elif fd == server.fileno():
                conn, _ = server.accept()
                child = _fork_child(server, conn, children)
                if child is not None:
                    pid, pidfd = child
                    children[pidfd] = (pid, conn)
                    launchers[conn.fileno()] = pidfd
                    poller.register(pidfd, select.POLLIN)
                    poller.register(conn, select.POLLRDHUP)  # its hang-up only: the bytes are the child's
                else:
                    conn.close()
            elif fd in children:
                pid, conn = children.pop(fd)
                _, status = os.waitpid(pid, 0)
                poller.unregister(fd)
                os.close(fd)
                if launchers.pop(conn.fileno(), None) is not None:
                    poller.unregister(conn)
                try:
                    conn.sendall(b"X%d\n" % os.waitstatus_to_exitcode(status))
                except OSError:
                    pass  # the launcher is gone (killed): nobody to tell
                conn.close()
            elif fd in launchers and _hung_up(fd):  # the launcher died before its child: kill it (reaped when it ends)
                poller.unregister(fd)
                pid, _ = children[launchers.pop(fd)]
                os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid is still the child's


def _hung_up(fd: int) -> bool:
    """Whether the peer of socket ``fd`` has hung up, now (an event of an earlier poll may be stale)."""
    check = select.poll()
    check.register(fd, select.POLLRDHUP)
    return bool(check.poll(0))


def _fork_child(server: socket.socket, conn: socket.socket, children: dict) -> tuple[int, int] | None:
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 4096, len(HANDED_FDS))
    except OSError:
        return None
    if len(fds) != len(HANDED_FDS) or not msg:
        for fd in fds:
            os.close(fd)
        return None
    try:
        script = load_script(msg.decode())
        if script.get("python_runtime"):
            python_runtime(script["python_runtime"])  # imported here, once, not in every child
    except Exception as e:  # a bad script or runtime: this launcher fails, the server goes on
        print(f"finalstate zygote: {type(e).__name__}: {e}", file=sys.stderr)
        for fd in fds:
            os.close(fd)
        return None
    pid = os.fork()
    if pid == 0:  # the child: becomes the runtime on the handed descriptors
        try:
            server.close()
            for _, other in children.values():
                other.close()
            for pidfd in children:
                os.close(pidfd)
            comm_fd, logs_fd, out_fd, err_fd = fds
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            for fd in (devnull, out_fd, err_fd):
                os.close(fd)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            comm = socket.socket(fileno=comm_fd)
            logs = socket.socket(fileno=logs_fd)
            if script.get("python_runtime"):
                serve_python_runtime(script["python_runtime"], comm, logs, conn)
            perform(script, comm, logs, conn)
        except BaseException as e:  # never fall back into the server loop
            try:
                print(f"finalstate zygote child: {type(e).__name__}: {e}", file=sys.stderr)
            finally:
                os._exit(PROTOCOL_ERROR_EXIT)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    conn.sendall(b"P%d\n" % pid)
    return pid, pidfd


def _zygote_shutdown(server, path, children) -> None:
    server.close()
    try:
        os.unlink(path)
    except OSError:
        pass
    for pidfd, (pid, conn) in children.items():
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        os.close(pidfd)
        conn.close()


if __name__ == "__main__":
    main()
