"""An HTTP fake of the Execution API, answering from ``model.server.Server``, plus the runtime's control channel.

The supervisor under check talks to it through Airflow's real ``Client`` over real HTTP on
127.0.0.1, so every answer arrives as the client sees it in production: a 409 or 5xx as a
JSON error body that ``raise_on_4xx_5xx`` turns into ``ServerResponseError``, a ``lost``
answer as a real ``httpx.ReadTimeout`` (the call is applied, the answer never sent).

One server serves many attempts, told apart by the TI id in the path. Per attempt it keeps
the row and the armed faults (``model.server.Server``: the only place the rules live), the
calls in the order they arrived, and the answer the next heartbeat gets.

The *control channel* is a plain TCP socket on which the scripted runtime (stdlib only)
performs the scenario's events that are not frames, in order and in lockstep: ``arm`` a
fault, ``act`` on the task instance as a user or the scheduler would (``{"op": "act", "action": "marks",
"state": "failed"}``: mark, clear or delete it, or time it out: ``model.scenario.UserAction``), make a ``heartbeat``
fall due with a given answer, run the success ``overtime`` out,
say what it does with SIGTERM from now on (``ignore_sigterm``, ``handle_sigterm``: the supervisor's
``runtime_sigterm``, which sets how long its kill waits before it escalates), or wait until the
supervisor's loop, woken from outside, has run its checks on the clocks as they are now (``settle``: the supervisor's
``settle``, a lockstep that writes nothing to the runtime, for the JSON-lines wire before task-sdk 1.0.3). A runtime
that never exits says so at its end: ``hangs`` when it handled the SIGTERM of a kill that now waits for it (the
kill's wait runs out at once: the supervisor's ``run_escalation_out``, and its SIGKILL follows), ``hung`` when
nothing ended it (the harness ends the attempt: the supervisor's ``end_hung``).
Frames are length-prefixed msgpack maps, as on the comm channel; each is acknowledged once done.
The channel acts on the attempt registered under the runtime's token through its ``attach``,
``arm``, ``act`` and ``heartbeat_due``: a model ``Attempt`` here, or the real server's attempt that
``impl.supervisor_process.real_server`` registers for ``--server airflow``.

Timers. The supervisor's two clocks are read from module attributes
(``MIN_HEARTBEAT_INTERVAL``, ``TASK_OVERTIME_THRESHOLD``), which the harness sets far beyond
any attempt's length, so no heartbeat and no overtime ever fall due by themselves. A
``heartbeat`` or ``overtime`` event runs its clock out by back-dating the supervisor's own
stamp (``_last_heartbeat_attempt``, ``_task_end_time_monotonic``), exactly as if that much
time had passed; the supervisor's loop then acts on it at its next wake-up, which the
runtime provokes and waits out (``sync`` steps).
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import msgpack

from impl.releases.adapters import dag_run_fields, model_release, model_state
from model.server import CONFLICT, OK, Server, client_status
from model.scenario import CALLS_WITH_MAP_INDEX, HEARTBEAT_NO_ANSWER, TIMEOUT, ApiCall, Fault, RunContext, UserAction
from model.supervisor import SIGTERM_HANDLED, SIGTERM_IGNORED

API_PREFIX = "/execution/"
#: How far a clock is run out: beyond any threshold the harness configures.
BACKDATE = 4.0e9
#: How long ``settle`` waits for the supervisor's loop to run its checks, at most.
SETTLE_BUDGET = 10.0
#: How long the handler of a ``lost`` call keeps its connection open, at most.
LOST_HOLD = 30.0

#: The state each ``PATCH .../state`` payload asks for, by the client method that sends it.
STATE_CALLS = {
    "success": "succeed",
    "up_for_retry": "retry",
    "deferred": "defer",
    "up_for_reschedule": "reschedule",
    "awaiting_input": "await_input",
}


def requested(body: bytes | None, field: str):
    """A field of a JSON request body (None when the body has none, or is no JSON object)."""
    try:
        return json.loads(body or b"{}").get(field)
    except (ValueError, AttributeError):
        return None


def route(method: str, path: str, body: bytes | None) -> tuple[str, str, str | None] | None:
    """``(ti_id, call name, state)`` of an Execution API request, as ``Server.call`` names them; else None."""
    if not path.startswith(API_PREFIX):
        return None
    parts = path[len(API_PREFIX):].strip("/").split("/")
    if len(parts) != 3 or parts[0] != "task-instances":
        return None
    _, ti_id, action = parts
    if method == "PATCH" and action == "run":
        return ti_id, "start", None
    if method == "PUT" and action == "heartbeat":
        return ti_id, "heartbeat", None
    if method == "PATCH" and action == "skip-downstream":
        return ti_id, "skip_downstream_tasks", None
    if method == "PATCH" and action == "state":
        state = requested(body, "state")
        if state in STATE_CALLS:
            return ti_id, STATE_CALLS[state], None
        return ti_id, "finish", model_state(state)  # SERVER_TERMINATED as the model spells it, on every release
    return None


def run_context_json(context: RunContext) -> bytes:
    """A ``TIRunContext`` body for ``PATCH /run``, with the scenario's counts and should_retry, in the fields the
    installed release's client accepts."""
    now = "2026-01-01T00:00:00Z"
    dag_run = {
        "dag_id": "finalstate", "run_id": "manual__finalstate", "logical_date": now,
        "data_interval_start": now, "data_interval_end": now, "run_after": now, "start_date": now,
        "end_date": None, "clear_number": 0, "run_type": "manual", "state": "running", "conf": {},
        "consumed_asset_events": [], "partition_key": None,
    }
    return json.dumps({
        "dag_run": dag_run_fields(dag_run),
        "task_reschedule_count": 0,
        "max_tries": context.max_tries,
        "should_retry": context.should_retry,
    }).encode()


@attrs.define
class Attempt:
    """One attempt's server side: the row and faults, the calls as they arrived, the clocks' owner."""

    ti_id: str
    context: RunContext
    server: Server
    calls: list[ApiCall] = attrs.field(factory=list)
    heartbeat_answer: int | str = 200
    #: What the last succeed, retry or finish request carried as ``rendered_map_index``.
    map_index_sent: str | None = None
    runtime_pid: int | None = None
    supervisor: object = None
    attached: threading.Event = attrs.field(factory=threading.Event)
    lock: threading.Condition = attrs.field(factory=threading.Condition)
    #: Requests the client was told will be lost and the server has not applied yet.
    lost_in_flight: int = 0
    unexpected: list[str] = attrs.field(factory=list)

    def attach(self, supervisor) -> None:
        self.supervisor = supervisor
        self.attached.set()

    def arm(self, fault: Fault) -> None:
        """From now on ``fault`` applies (``Server.arm``)."""
        with self.lock:
            self._settle(f"arm {fault.call} {fault.kind}")
            self.server = self.server.arm(fault)

    def heartbeat_due(self, answer: int) -> None:
        """The next heartbeat is answered ``answer``."""
        with self.lock:
            self._settle(f"heartbeat {answer}")
            self.heartbeat_answer = answer

    def act(self, action: UserAction) -> None:
        """A user acts on the task instance (``model.server.Server.act``)."""
        with self.lock:
            self._settle(f"user {action.action}")
            self.server = self.server.act(action)

    def _settle(self, what: str) -> None:
        """Hold a change of the world (under ``lock``) until every request the client gave up on as lost has been
        applied: the server decides how to answer one when it arrives, and the client may have given up on it,
        and gone on, before it did."""
        if not self.lock.wait_for(lambda: not self.lost_in_flight, timeout=10):
            self.unexpected.append(f"{what}: an earlier lost call never reached the server")
            self.lost_in_flight = 0


class ExecutionAPIFake:
    """The HTTP server and the control server, each on its own thread, for as many attempts as asked."""

    def __init__(self):
        self.attempts: dict[str, Attempt] = {}
        fake = self

        class Handler(_APIHandler):
            api = fake

        class Control(_ControlHandler):
            api = fake

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.control = _ControlServer(("127.0.0.1", 0), Control)
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}{API_PREFIX}"
        self.control_address = ("127.0.0.1", self.control.server_address[1])
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True,
                                          name=f"finalstate-{name}")
                         for name, s in (("api", self.http), ("control", self.control))]
        for t in self._threads:
            t.start()

    def open(self, ti_id: str, context: RunContext) -> Attempt:
        attempt = Attempt(ti_id, context, Server.queued(context, release=model_release()))  # the installed release's
        self.attempts[ti_id] = attempt
        return attempt

    def close_attempt(self, ti_id: str) -> None:
        self.attempts.pop(ti_id, None)

    def shutdown(self) -> None:
        for s in (self.http, self.control):
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(5)

    # -- the client side's one concession: how long to wait for an answer that will never come

    def request_hook(self, lost_read_timeout: float):
        """An httpx request hook: a request the server will lose gets a short read timeout.

        The server decides from the attempt's armed faults (``Server.call``'s rule: the
        first fault on that call); the hook looks at the same faults before the request
        leaves. It changes nothing but how soon the client gives up waiting. It also holds
        any request back until every earlier lost request of the attempt has been applied
        on the server, so that the client's giving up early can never reorder calls.
        """

        def hook(request):
            routed = route(request.method, request.url.path, request.content)
            attempt = self.attempts.get(routed[0]) if routed else None
            if attempt is None:
                return
            with attempt.lock:
                if not attempt.lock.wait_for(lambda: not attempt.lost_in_flight, timeout=10):
                    attempt.unexpected.append(f"{routed[1]}: an earlier lost call never reached the server")
                    attempt.lost_in_flight = 0
                if _is_lost(attempt, routed[1]):
                    attempt.lost_in_flight += 1
                    timeout = dict(request.extensions.get("timeout", {}))
                    timeout["read"] = lost_read_timeout
                    request.extensions["timeout"] = timeout

        return hook


class _APIHandler(BaseHTTPRequestHandler):
    api: ExecutionAPIFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_PATCH(self):
        self._handle()

    do_PUT = do_POST = do_GET = do_DELETE = do_PATCH

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        routed = route(self.command, self.path.split("?")[0], body)
        attempt = self.api.attempts.get(routed[0]) if routed else None
        if attempt is None:
            for known in list(self.api.attempts.values()):
                if known.ti_id in self.path:
                    known.unexpected.append(f"{self.command} {self.path}")
            return self._answer(HTTPStatus.NOT_FOUND, {"detail": {"reason": "not_found", "message": self.path}})
        _, name, state = routed
        with attempt.lock:
            if name in CALLS_WITH_MAP_INDEX:
                attempt.map_index_sent = requested(body, "rendered_map_index")
            if name == "start":
                attempt.server, status = attempt.server.start()
            elif name == "heartbeat":
                attempt.server, status = attempt.server.heartbeat(attempt.heartbeat_answer)
            else:
                attempt.server, status = attempt.server.call(name, state)
            attempt.calls.append(ApiCall(name, client_status(status), state))
            if status == TIMEOUT:
                attempt.lost_in_flight = max(0, attempt.lost_in_flight - 1)
                attempt.lock.notify_all()
        if status == TIMEOUT:
            return self._hold()
        if client_status(status) != OK:
            reason = "invalid_state" if status == CONFLICT else "finalstate"
            return self._answer(status, {"detail": {"reason": reason, "message": f"{name} refused"}})
        if name == "start":
            return self._answer(HTTPStatus.OK, raw=run_context_json(attempt.context))
        return self._answer(status)  # 204, or 200 for a state the row already has, as the real app answers

    def _answer(self, status: int, body: dict | None = None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        self.send_response(status)
        if data:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self._headers_buffer.append(b"\r\n" + data)  # one write: headers and body together
        self.flush_headers()

    def _hold(self):
        """The answer is lost: keep the connection silent until the client gives up on it."""
        self.close_connection = True
        self.connection.settimeout(LOST_HOLD)
        try:
            while self.connection.recv(4096):
                pass
            # The client gave up and closed; reset rather than FIN, leaving no TIME_WAIT.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def _is_lost(attempt: Attempt, name: str) -> bool:
    """Will the server keep its answer to the next ``name`` request: a ``lost`` fault, or a heartbeat to go unanswered?"""
    if name == "heartbeat":
        return attempt.heartbeat_answer == HEARTBEAT_NO_ANSWER
    fault = next((f for f in attempt.server.faults if f.call == name), None)
    return fault is not None and fault.kind == "lost"


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _ControlHandler(socketserver.BaseRequestHandler):
    """The runtime's side channel: one attempt per connection, lockstep requests, acknowledged when done."""

    api: ExecutionAPIFake

    def handle(self):
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            header = _recv_exact(sock, 4)
            if header is None:
                return
            payload = _recv_exact(sock, int.from_bytes(header, "big"))
            if payload is None:
                return
            try:
                reply = self.perform(msgpack.unpackb(payload, raw=False))
            except Exception as e:  # tell the runtime; it exits with its protocol-error code
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            data = msgpack.packb(reply)
            try:
                sock.sendall(len(data).to_bytes(4, "big") + data)
            except OSError:  # the runtime is gone (killed while it waited, as a settle may be): nobody to tell
                return

    def perform(self, message: dict) -> dict:
        return perform(self.api.attempts.get(message.get("token")), message)


def perform(attempt, message: dict) -> dict:
    """One operation of the world on ``attempt`` (see the module): what a scripted runtime asks for on its control
    channel, and what the harness does itself around a runtime it does not script
    (``impl.supervisor_process.world``). Answers ``{"ok": True}``, or ``{"ok": False, "error": why}``.

    While the supervisor is inside a kill that waits for a process which handled its SIGTERM (``sup.killing``), a
    clock running out is no business of its (``_service_subprocess`` sends no heartbeat and checks no overtime; the
    process's exit then ends the loop): ``heartbeat``, ``overtime`` and ``settle`` arrange nothing, as
    ``model.supervisor.monitor_step`` has it.
    """
    if attempt is None:
        return {"ok": False, "error": "unknown attempt"}
    op = message.get("op")
    if op == "hello":
        attempt.runtime_pid = message["pid"]
        return {"ok": True}
    if op == "arm":
        attempt.arm(Fault(message["call"], message["kind"]))
        return {"ok": True}
    if op == "act":  # a user, or the scheduler, acts on the task instance: nothing tells the supervisor
        attempt.act(UserAction(message["action"], message.get("state")))
        return {"ok": True}
    if not attempt.attached.wait(10):
        return {"ok": False, "error": "the supervisor never started"}
    sup = attempt.supervisor
    if op in ("heartbeat", "overtime", "settle") and sup.killing:
        return {"ok": True}
    if op == "heartbeat":
        attempt.heartbeat_due(message["answer"])
        sup._last_heartbeat_attempt = time.monotonic() - BACKDATE
        return {"ok": True}
    if op == "overtime":
        if sup._task_end_time_monotonic is not None:
            sup._task_end_time_monotonic = time.monotonic() - BACKDATE
        return {"ok": True}
    if op in SIGTERM_OPS:  # what the runtime does with SIGTERM from now on: how long its kill waits to escalate
        sup.runtime_sigterm = SIGTERM_OPS[op]
        return {"ok": True}
    if op == "settle":  # the loop, woken from outside, has run its checks on the clocks as they are now
        if sup.settle(SETTLE_BUDGET):
            return {"ok": True}
        return {"ok": False, "error": f"the supervisor's loop did not run its checks within {SETTLE_BUDGET:g}s"}
    if op == "hangs":  # it handled the kill's SIGTERM and will never exit: the kill's wait runs out
        if sup.run_escalation_out():
            return {"ok": True}
        return {"ok": False, "error": "the runtime says a kill waits for it, but the supervisor is in no kill"}
    if op == "hung":  # it never exits, time has run on, and nothing ended it: the harness ends the attempt
        sup.end_hung()
        return {"ok": True}
    return {"ok": False, "error": f"unknown op {op!r}"}


#: The control operations by which the runtime says what it does with SIGTERM from now on (``model.supervisor``'s
#: dispositions).
SIGTERM_OPS = {"ignore_sigterm": SIGTERM_IGNORED, "handle_sigterm": SIGTERM_HANDLED}


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        try:
            chunk = sock.recv(n)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
