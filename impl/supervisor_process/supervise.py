"""The one supervision of a runtime command under the real coordinator supervisor, over real processes.

``supervise_command(command, context)`` is an attempt as Airflow's coordinator lives it:
``_PopenActivitySubprocess.start(command=...)`` of the installed task-sdk launches the command
with ``--comm``/``--logs``, accepts and verifies its TCP connections and sends StartupDetails;
the real ``wait()`` runs the real event loop, sees the real exit code or signal, and ends with
the real ``final_state`` and ``update_task_state_if_needed``. Every real-process target
(``airflow-process``, ``reference-runtime``, ``cmd:``) goes through it, so each has the same
hygiene: a runtime still alive at the deadline is killed; one that never connects ends with
``start()``'s own timeout; when ``wait()`` raises, the process is killed and reaped and the
sockets the supervisor left open are closed. Nothing is left running, whatever the runtime does.

The Execution API (``server``): ``model`` (the default), Airflow's real ``Client`` over HTTP to
``impl.server.model_api``, which answers each request from ``model.server.Server``; the client
tries each request ``execution_api_retries`` times (its retry layer with that ``stop_after_attempt``
and zero waits, ``client_class``), so a ``transient`` fault is exactly one failed request, as the
model has it, and a ``lost`` answer is a real ``httpx.ReadTimeout``. ``airflow``: the real
Execution API app over loopback HTTP, with the same client (``impl.supervisor_process.real_server``).

What is arranged, and why the observation still equals the in-process one:

- *Heartbeat cadence.* No heartbeat or success overtime falls due by itself: the supervisor's
  ``MIN_HEARTBEAT_INTERVAL`` and ``TASK_OVERTIME_THRESHOLD`` are set beyond any attempt's
  length while the attempt runs (the first-iteration heartbeat included). A ``heartbeat`` or
  ``overtime`` event is performed by a scripted runtime over its control channel, which runs
  that one clock out (``impl.server.model_api``).
- *Escalation.* Once a runtime says it ignores SIGTERM (``ignore sigterm``), a kill's wait before it
  escalates to the next signal is ``ESCALATION_DELAY``, not Airflow's 5 s (``QuickEscalation``): it
  still ends by the SIGKILL the escalation sends, sooner. A runtime that handles SIGTERM and carries on
  (``handle sigterm``) is waited for as Airflow waits (its steps inside the kill take milliseconds); if it then
  never exits (``exit hang``) it says so, and the kill's wait runs out at once: the supervisor's clock
  (``SupervisorClock``, the ``time`` its module reads while an attempt runs) is run on by the kill's delay, so the
  real ``kill()`` escalates to SIGKILL as it would once the delay had passed.
- *A process that never exits.* Once nothing has ended it after time ran on (the scripted runtime performs
  ``model.supervisor.TIME_RUNS_ON`` as events), the harness ends ``wait()`` (``AttemptHung``, raised out of it
  through its selector), then kills and reaps the process; the observation is ``hung``, with no exit, no final
  state and no closing call.
- *Exit watch.* A pidfd of the launched process is registered in the supervisor's selector,
  so the loop wakes when the process ends instead of at its next timeout, which the
  stretched clocks put minutes away. It changes when the exit is noticed, not what is done.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import selectors
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import structlog
from airflow.sdk.api.client import Client
from airflow.sdk.api.datamodels._generated import TaskInstance
from airflow.sdk.execution_time import supervisor as airflow_supervisor
from airflow.sdk.execution_time.comms import BundleInfo

from impl.releases.adapters import (decided_final_state, missing, require_the_models_heartbeat_budget,
                                    since_1_0_3_length_prefixed_frames, since_1_0_3_open_sockets,
                                    since_1_0_3_selector_entry, since_1_0_4_overtime_owner,
                                    since_1_3_0_command_supervisor, since_1_4_0_client_retry,
                                    since_1_4_0_http_library)
from impl.server.model_api import ExecutionAPIFake
from impl.server.model_client import error_name
from impl.wire.launcher import ForkServer, build_launcher
from impl.supervisor_process.world import Arrangement, Hold, RuntimeWatch, World, WorldDriver, wrote
from impl.wire.scripted_runtime import SYNC_ID_BASE, SYNC_VARIABLE
from model.invariants import TERMINAL_FRAMES
from model.scenario import DEFAULT_EXECUTION_API_RETRIES, Observation, RunContext
from model.supervisor import SIGTERM_DIES, SIGTERM_IGNORED

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
#: The supervisor's logger: bound here to a logger that returns, so that it stays quiet whatever
#: configures structlog later in this process (the real server configures Airflow's logging).
_QUIET = structlog.wrap_logger(structlog.ReturnLogger(), processors=[],
                               wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

#: Beyond the length of any attempt: no clock runs out unless an event runs it out.
STRETCHED = 10**9
#: How long the client waits for an answer the server will not send (a ``lost`` fault, a heartbeat left unanswered):
#: it only sets when the client gives up, and a heartbeat left unanswered is waited for once per try of the client.
#: The order of calls does not hang on it (``ExecutionAPIFake.request_hook`` holds the next request back until the
#: server has applied the lost one).
LOST_READ_TIMEOUT = 0.001
#: Every other call: generous, so that a loaded machine never times a real answer out.
CALL_TIMEOUT = 30.0
#: The supervisor's wait before it escalates a kill's signal (Airflow's: 5 s) once the runtime said it ignores
#: SIGTERM, or the harness withholds it from a runtime that traps it (``world``): nothing the runtime does can follow
#: it, so the SIGKILL may come at once; it changes when the SIGKILL comes, not whether.
ESCALATION_DELAY = 0.002
#: How long a scripted runtime that ignored SIGTERM lives on before its own exit, when no SIGKILL comes.
IGNORED_SIGTERM_GRACE = 3.0
#: An attempt that has not ended by then is ended by the harness (SIGKILL), and says so.
DEFAULT_DEADLINE = 15.0
#: How often ``settle`` looks whether the loop has run its checks: at first, and at the longest (it looks less often
#: the longer it waits: a runtime that traps SIGTERM keeps it waiting out Airflow's 5 s escalation, 10,000 looks).
SETTLE_POLL = 0.0005
SETTLE_POLL_LONGEST = 0.02
#: A ``wait()`` still going this long after the deadline kill is ended by the harness (``WaitEnder.end_stuck``).
STUCK_WAIT_GRACE = 5.0
DEFAULT_STARTUP_TIMEOUT = 10.0
#: Starting the real server: a database copy (or, the first time, Airflow's migrations) and the app's
#: warm-up; seconds on an idle machine, over a minute on a loaded one. Bounded all the same.
REAL_SERVER_START_BUDGET = 600.0

require_the_models_heartbeat_budget(airflow_supervisor.MAX_FAILED_HEARTBEATS)
#: The installed release's real-process supervisor: ``_PopenActivitySubprocess`` (a runtime command) since 1.3.0,
#: ``ActivitySubprocess`` forking a callable before (``since_1_3_0_command_supervisor``).
SUPERVISOR = since_1_3_0_command_supervisor()
#: How the installed supervisor and its runtime talk: frames since 1.0.3, JSON lines before.
WIRE = since_1_0_3_length_prefixed_frames()


@functools.lru_cache(maxsize=None)
def client_class(tries: int) -> type[Client]:
    """Airflow's ``Client`` with its own retry trying each request ``tries`` times (``[workers]
    execution_api_retries``), without waits (``since_1_4_0_client_retry``: they change when the tries happen,
    not what the server does)."""
    method, retried = since_1_4_0_client_retry(tries)
    return type(f"ClientTrying{tries}", (Client,), {method: retried})


class QuickEscalation(SUPERVISOR.base):
    """The real ``_PopenActivitySubprocess`` (``ActivitySubprocess`` before 1.3.0); once its runtime said it ignores
    SIGTERM (``runtime_sigterm``, set over the control channel), its kill escalates after
    ``ESCALATION_DELAY`` instead of Airflow's 5 s. A runtime that dies of the signal is seen dead at once either
    way; one that handles it is waited for with Airflow's delay, run out at once if it says it will never exit
    (``run_escalation_out``). ``starting`` is the supervisor whose ``start`` ran last (what a ``start`` that raised
    leaves behind); ``arranged`` how the next one is set up (``world.Arrangement``: its comm, what it holds back,
    SIGTERM)."""

    #: What the runtime does with SIGTERM, as it said (``model.supervisor``'s dispositions).
    runtime_sigterm = SIGTERM_DIES
    #: Whether ``kill()`` is running (it waits for the process to exit, servicing it), and the wait it was given
    #: before each escalation.
    killing = False
    kill_delay = 0.0
    #: The attempt's ``SupervisorClock`` and ``WaitEnder`` (set by the harness).
    clock = None
    ender = None
    starting = None
    arranged = Arrangement()
    #: How many wake-ups of the monitor loop have run their checks (heartbeat, overtime), and what wakes the loop up
    #: from outside (``LoopWaker``, set by the harness): ``settle``.
    checks_done = 0
    waker = None
    #: Requests handed to ``_handle_request``, and frames the supervisor read but could not decode (it answers those
    #: nothing); whether it has signalled its process (a kill).
    requests_handled = 0
    frames_not_taken = 0
    signalled = False
    #: Set when something a ``world.WorldDriver`` waits on happens (None: no driver).
    changed = None
    #: Called (by the supervisor's own thread) once a kill's SIGTERM was sent: the ``world.WorldDriver``'s, which meets
    #: a runtime that carries on inside the kill with the rest of the world before the supervisor reads it again.
    inside_kill = None

    def kill(self, signal_to_send=signal.SIGINT, escalation_delay=5.0, force=False):
        if self.runtime_sigterm == SIGTERM_IGNORED or self.arranged.withhold_sigterm:
            escalation_delay = ESCALATION_DELAY
        self.killing, self.kill_delay = True, escalation_delay
        try:
            return super().kill(signal_to_send, escalation_delay, force)
        finally:
            self.killing = False

    def _check_subprocess_exit(self, raise_on_timeout: bool = False, expect_signal=None):
        """The real exit check; inside a kill, a process's exit is noticed once the supervisor has read what the
        process wrote it before it exited (a runtime that cancels its task reports it and exits at once): the kill's
        loop reads it at its next wake-up, as it does whenever the frame comes before the exit is looked for. Which
        comes first otherwise depends on the machine's scheduling (the kill returns first, and ``_terminal_state``
        set after it is overwritten by the frame read later); the model has the frame read inside the kill."""
        if self.killing and self._exit_code is None and wrote(self.stdin):
            return None
        return super()._check_subprocess_exit(raise_on_timeout, expect_signal)

    def run_escalation_out(self) -> bool:
        """The runtime handled this kill's SIGTERM and will never exit: the kill's wait runs out now, not after its
        delay (the clock is run on by that delay and the loop woken), so the real ``kill()`` escalates to SIGKILL at
        once. False when no kill is waiting."""
        if not self.killing:
            return False
        self.clock.run_on(self.kill_delay)
        self.waker.poke()
        return True

    def end_hung(self) -> None:
        """The runtime never exits, time has run on and nothing ended it: end ``wait()`` (``AttemptHung``)."""
        self.ender.end_hung()

    def _signal_subprocess(self, sig):
        """The real signalling, noted; withheld for SIGTERM from a runtime that traps it (``world``)."""
        self.signalled = True
        if sig == signal.SIGTERM and self.arranged.withhold_sigterm:
            return
        result = super()._signal_subprocess(sig)
        if sig == signal.SIGTERM and self.inside_kill is not None:
            self.inside_kill()
        return result

    def handle_requests(self, log):
        """The real request handler, each request handed on as the reader hands it; one that does not reach
        ``_handle_request`` (it could not be decoded: logged, answered nothing) is counted in ``frames_not_taken``."""
        handler = super().handle_requests(log)
        next(handler)
        while True:
            request = yield
            seen = self.requests_handled
            handler.send(request)
            if self.requests_handled == seen:
                self.frames_not_taken += 1
                if self.changed is not None:
                    self.changed.set()

    def _handle_request(self, msg, log, *request_id):
        """The real handling, the recording comm told of each request first (what is written next answers it):
        whether it is the runtime's own (not a scripted runtime's lockstep no-op: on frames an id from
        ``SYNC_ID_BASE``, on JSON lines a ``GetVariable`` of ``SYNC_VARIABLE``), and a terminal one."""
        self.requests_handled += 1
        request = request_id[0] if request_id else None
        lockstep = getattr(msg, "key", None) == SYNC_VARIABLE or (request is not None and request >= SYNC_ID_BASE)
        own = not (self.arranged.scripted and lockstep)
        self.stdin.handling(own, request, terminal=own and type(msg).__name__ in TERMINAL_FRAMES)
        result = super()._handle_request(msg, log, *request_id)
        self.stdin.recorded.handled()
        return result

    def _handle_process_overtime_if_needed(self):
        """The last check of a wake-up whose process is alive (after the heartbeat's): counted in ``checks_done``."""
        super()._handle_process_overtime_if_needed()
        self.checks_done += 1

    def settle(self, budget: float) -> bool:
        """Return once two wake-ups of the monitor loop, each woken by the harness, have run their checks (the second
        starts after this was called, so it reads every clock as it is now), or the process has ended, or a check
        killed it and the kill now waits for a process that handled its SIGTERM (no check runs there); False if
        ``budget`` seconds went by first. Nothing is written to the runtime: no request is in flight if the checks
        kill it (the scripted runtime's lockstep after a clock event on JSON lines, where an answer written to a
        runtime that has died leaves a supervisor before 1.0.3 waiting for ever: finding W5)."""
        until = time.monotonic() + budget
        for _ in range(2):
            seen = self.checks_done
            self.waker.poke()
            poll = SETTLE_POLL
            while self.checks_done == seen and self._exit_code is None and not self.killing:
                if time.monotonic() > until:
                    return False
                time.sleep(poll)
                poll = min(poll * 2, SETTLE_POLL_LONGEST)
        return True

    def _on_child_started(self, **kwargs):
        """The real start, through the harness's comm (``RecordingComm``), which holds StartupDetails back where the
        arrangement says so."""
        QuickEscalation.starting = self
        self.arranged = type(self).arranged
        self.stdin = RecordingComm(self.stdin, self.arranged)
        return super()._on_child_started(**kwargs)


class Harness:
    """The fake API server (and control channel), the shared client, the work directory, the scripted
    runtime's fork server; the real Execution API (``real_server``) once an attempt asks for it."""

    def __init__(self):
        self.api = ExecutionAPIFake()
        self._clients: dict[int, Client] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="finalstate-process-"))
        launcher = build_launcher()
        #: The scripted runtime's fast path; None without a C compiler.
        self.fork_server = ForkServer(launcher, self.workdir / "zygote.sock") if launcher else None
        self.lock = threading.Lock()
        #: Sockets the supervisor left open when ``wait()`` raised, closed by the harness (finding W4).
        self.closed_for_supervisor = 0
        #: Processes the supervisor abandoned when ``wait()`` raised before they ended, killed and reaped by the harness.
        self.killed_for_supervisor = 0
        self._real = None
        #: The attempt ``supervise_command`` opened last (its real server's record, when it has one).
        self.last_attempt = None

    def client(self, tries: int) -> Client:
        """The client of every attempt on the ``model`` server that tries each request ``tries`` times."""
        if tries not in self._clients:
            client = client_class(tries)(base_url=self.api.base_url, token="finalstate",
                                         timeout=since_1_4_0_http_library().Timeout(CALL_TIMEOUT))
            hooks = client.event_hooks
            client.event_hooks = {"request": [*hooks["request"], self.api.request_hook(LOST_READ_TIMEOUT)],
                                  "response": hooks["response"]}
            self._clients[tries] = client
        return self._clients[tries]

    def real_server(self):
        """The real Execution API over loopback (``real_server.RealServerSide``), started on first use."""
        if self._real is None:
            from impl.supervisor_process.real_server import RealServerSide

            self._real = RealServerSide()
        return self._real

    def open(self, token: str, context: RunContext, server: str, tries: int):
        """The attempt the control channel knows by ``token``, on ``server`` (``model`` or ``airflow``), whose
        client tries each request ``tries`` times."""
        if server == "model":
            return self.api.open(token, context)
        if server != "airflow":
            raise ValueError(f"the server is 'model' or 'airflow', not {server!r}")
        attempt = self.real_server().open(context, tries)
        self.api.attempts[token] = attempt
        return attempt

    def close(self) -> None:
        if self._real is not None:
            self._real.close()
            self._real = None
        if self.fork_server is not None:
            self.fork_server.close()
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.api.shutdown()
        shutil.rmtree(self.workdir, ignore_errors=True)


_harness: Harness | None = None


def harness() -> Harness:
    global _harness
    if _harness is None:
        _harness = Harness()
        atexit.register(close_harness)
    return _harness


def start_real_server() -> None:
    """Start this process's real Execution API (``Harness.real_server``) now, if it is not running yet."""
    harness().real_server()


def killed_for_supervisor() -> int:
    """Processes the supervisor abandoned when ``wait()`` raised before they ended, killed and reaped by this
    process's harness."""
    return _harness.killed_for_supervisor if _harness else 0


def closed_for_supervisor() -> int:
    """Sockets the supervisor left open when ``wait()`` raised, closed by this process's harness (finding W4)."""
    return _harness.closed_for_supervisor if _harness else 0


def close_harness() -> None:
    global _harness
    if _harness is not None:
        _harness.close()
        _harness = None


class RecordingComm:
    """The supervisor's end of the comm socket, recording what the runtime is told for each of its own requests (the
    installed wire's recorder, ``RequestsWire.replies``), writing through a ``world.Hold``: StartupDetails, and the
    answer to the runtime's first terminal frame, wait there where the arrangement says (``world``).
    ``terminal_answered`` is set once that answer has been written (or held)."""

    def __init__(self, sock, arranged: Arrangement = Arrangement()):
        self._sock = sock
        self.recorded = WIRE.replies()
        self.hold = Hold(sock, arranged.hold_startup)
        self._hold_answer = arranged.hold_terminal_answer
        self._terminal: int | None = None
        self.terminal_answered = threading.Event()
        #: Set as well, when a ``world.WorldDriver`` waits on this comm.
        self.changed: threading.Event | None = None

    @property
    def replies(self) -> list[str]:
        return self.recorded.replies

    def handling(self, own: bool, request_id: int | None, terminal: bool) -> None:
        """The supervisor hands a request to ``_handle_request``: the runtime's own or not, and a terminal frame."""
        self.recorded.handling(own, request_id)
        if terminal and self._terminal is None and not self.terminal_answered.is_set():
            self._terminal = request_id if request_id is not None else -1

    def sendall(self, data) -> None:
        self.recorded.sent(data)
        if self._terminal is not None and _answers(data, self._terminal):
            self._terminal = None
            if self._hold_answer:
                self.hold.hold()
            self.terminal_answered.set()
            if self.changed is not None:
                self.changed.set()
        self.hold.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _answers(data, request_id: int) -> bool:
    """Whether ``data`` is the supervisor's answer to request ``request_id`` (-1: a request of the JSON-lines wire,
    which carries no id: the next line answers it)."""
    if request_id == -1:
        return True
    from impl.wire.codec import FrameError, decode_response

    try:
        return decode_response(bytes(data)).id == request_id
    except FrameError:
        return False


class LoopWaker:
    """A socket pair whose one end is registered in the supervisor's selector: a byte written to the other wakes the
    monitor loop, which reads it and otherwise has nothing to do, then runs its checks as at any wake-up (``settle``).
    It changes when the loop wakes, not what it does."""

    def __init__(self):
        self.inside, self.outside = socket.socketpair()

    def register(self, selector) -> None:
        def drain(sock):
            sock.recv(4096)
            return True

        selector.register(self.inside, selectors.EVENT_READ, since_1_0_3_selector_entry(drain, lambda _sock: None))

    def poke(self) -> None:
        self.outside.send(b"!")

    def close(self) -> None:
        self.inside.close()
        self.outside.close()


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

        selector.register(self, selectors.EVENT_READ, since_1_0_3_selector_entry(lambda watch: False, on_close))


class SupervisorClock:
    """The ``time`` the supervisor's module reads while an attempt runs: the real one, its ``monotonic()`` ahead by
    what ``run_on`` added, time that passes without the harness waiting it out (a kill's escalation delay, for a
    process that will never exit). Monotonic still: it only ever runs on."""

    def __init__(self, real=time):
        self._real = real
        self.ran_on = 0.0

    def monotonic(self) -> float:
        return self._real.monotonic() + self.ran_on

    def run_on(self, seconds: float) -> None:
        self.ran_on += seconds

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def stretched_clocks():
    """While an attempt runs: no clock of the supervisor's runs out by itself (``STRETCHED``), and its module reads
    the time from a ``SupervisorClock``, which this yields."""
    overtime = since_1_0_4_overtime_owner(QuickEscalation)
    saved = airflow_supervisor.MIN_HEARTBEAT_INTERVAL, overtime.TASK_OVERTIME_THRESHOLD, airflow_supervisor.time
    clock = SupervisorClock()
    airflow_supervisor.MIN_HEARTBEAT_INTERVAL = STRETCHED
    overtime.TASK_OVERTIME_THRESHOLD = STRETCHED
    airflow_supervisor.time = clock
    try:
        yield clock
    finally:
        airflow_supervisor.MIN_HEARTBEAT_INTERVAL, overtime.TASK_OVERTIME_THRESHOLD, airflow_supervisor.time = saved


def require_command_supervisor() -> None:
    """``TargetUnavailable`` naming the release unless its supervisor launches runtime commands (since 1.3.0)."""
    if not SUPERVISOR.launches_commands:
        raise missing("airflow.sdk.coordinators (_PopenActivitySubprocess, which launches a runtime command; "
                      "its ActivitySubprocess only forks and runs a Python callable)", "1.3.0")


def supervise_command(command: Sequence[str], context: RunContext = RunContext(), *, task_id: str = "task",
                      ti_id: uuid.UUID | None = None, server: str = "model",
                      execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES, deadline: float = DEFAULT_DEADLINE,
                      startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, world: World | None = None) -> Observation:
    """One attempt of ``command`` (plus ``--comm``/``--logs``) under the real supervisor, and what it recorded.

    ``world``: what the harness performs around a runtime it does not script (``impl.supervisor_process.world``:
    the world while its task runs and after its terminal frame; every request of such a runtime is its own); None
    for the harness's scripted runtime, which performs its own world over the control channel.

    ``ti_id``, if given, is the attempt's token: a scripted runtime's control channel knows its
    attempt by it; on the ``model`` server it is also the TI's id, on ``airflow`` the TI is the
    real row (its own id). The TI handed to the runtime has ``task_id``; the supervisor's client tries
    each request ``execution_api_retries`` times (Airflow's default unless said). Returns within about
    ``deadline + startup_timeout`` seconds whatever the runtime does; the observation's
    ``harness`` says when the harness had to step in (deadline kill, never started). When ``wait()`` raises
    before it saw the process end, the observation is what the supervisor saw (no exit code, no final state,
    what it raised); the harness then kills and reaps the process (``census``: ``killed_for_supervisor``).
    On ``airflow`` a run context the real server
    cannot hand out raises ``impl.server.airflow_attempt.Unsupported``. Before 1.3.0 the release has no
    supervisor that launches a command: ``TargetUnavailable`` naming it (``since_1_3_0_command_supervisor``).
    """
    require_command_supervisor()
    return _attempt(list(command), context, task_id=task_id, ti_id=ti_id, server=server,
                    execution_api_retries=execution_api_retries, deadline=deadline, startup_timeout=startup_timeout,
                    world=world)


def supervise_forked(target: Callable[[], None], context: RunContext = RunContext(), *, task_id: str = "task",
                     ti_id: uuid.UUID | None = None, server: str = "model",
                     execution_api_retries: int = DEFAULT_EXECUTION_API_RETRIES,
                     deadline: float = DEFAULT_DEADLINE) -> Observation:
    """``supervise_command`` for a release before 1.3.0: the real ``ActivitySubprocess.start(target=...)`` forks
    this process and runs ``target`` in the child (Airflow's ``_fork_main``: signals reset, logs over the JSON
    channel, the requests socketpair at fd 0, stdout and stderr on theirs), the real ``wait()`` supervises it.
    ``target`` must end the child itself (``os._exit``), as the task runner's ``main`` does; ``_fork_main``
    turns a return into exit 0. Bounded as ``supervise_command`` is (a fork has no startup timeout)."""
    return _attempt(target, context, task_id=task_id, ti_id=ti_id, server=server,
                    execution_api_retries=execution_api_retries, deadline=deadline,
                    startup_timeout=DEFAULT_STARTUP_TIMEOUT)


def _attempt(launch, context: RunContext, *, task_id: str, ti_id: uuid.UUID | None, server: str,
             execution_api_retries: int, deadline: float, startup_timeout: float,
             world: World | None = None) -> Observation:
    h = harness()
    token = str(ti_id or uuid.uuid4())
    with h.lock:
        attempt = h.last_attempt = h.open(token, context, server, execution_api_retries)
        client = getattr(attempt, "client", None) or h.client(execution_api_retries)  # the real server's: its own
        try:
            return _supervise(attempt, client, context, launch, task_id, deadline, startup_timeout, world)
        finally:
            h.api.close_attempt(token)


def _server_side(attempt) -> tuple:
    """The calls, the row state, ``row_gone`` and the rendered map index sent of the attempt (and its client released,
    on the real server)."""
    finish = getattr(attempt, "finish", None)
    if finish is not None:  # the real server: impl.supervisor_process.real_server.RealAttempt
        return finish()
    row = attempt.server.row
    return tuple(attempt.calls), row.state, row.gone, attempt.map_index_sent


def _start(ti, client, launch, startup_timeout: float):
    """The real ``start``: of a command (``_PopenActivitySubprocess``), or forking a callable (before 1.3.0)."""
    # A BundleInfo as Airflow always sends one (StartupDetails.bundle_info is not optional): the TypeScript SDK reads
    # its name as the task starts, and dies of a null one before it sends any frame.
    common = dict(what=ti, dag_rel_path="dag.py", bundle_info=BundleInfo(name="finalstate", version=None),
                  client=client, logger=_QUIET, subprocess_logs_to_stdout=False)
    if callable(launch):
        return QuickEscalation.start(target=launch, **common)
    return QuickEscalation.start(command=launch, startup_timeout=startup_timeout, **common)


def _supervise(attempt, client, context: RunContext, launch, task_id: str, deadline: float,
               startup_timeout: float, world: World | None = None) -> Observation:
    h = harness()
    ti = TaskInstance(id=uuid.UUID(attempt.ti_id), task_id=task_id, dag_id="finalstate", run_id="manual__finalstate",
                      try_number=context.try_number, dag_version_id=uuid.UUID(int=0))
    notes: list[str] = []
    with stretched_clocks() as clock:
        QuickEscalation.starting = None
        QuickEscalation.arranged = Arrangement() if world is None else world.arrangement()
        try:
            sup = _start(ti, client, launch, startup_timeout)
        except Exception as e:
            return _not_started(attempt, e, QuickEscalation.starting)
        finally:
            QuickEscalation.starting = None
            QuickEscalation.arranged = Arrangement()
        comm = sup.stdin
        open_sockets = since_1_0_3_open_sockets(sup)
        watch = ExitWatch(sup.pid)
        watch.register(sup.selector)
        sup.waker = LoopWaker()
        sup.waker.register(sup.selector)
        attempt.attach(sup)
        driver = None
        if world is not None:
            driver = WorldDriver(world, sup, attempt, comm, RuntimeWatch(sup.pid), notes)
            driver.start()
        sup.clock = clock
        sup.ender = ender = WaitEnder(sup, notes)
        timers = [threading.Timer(deadline, _deadline, (attempt, sup, deadline, notes)),
                  threading.Timer(deadline + STUCK_WAIT_GRACE, ender.end_stuck)]
        for timer in timers:
            timer.daemon = True
            timer.start()
        raised, hung = None, False
        try:
            sup.wait()
        except AttemptHung:  # the harness ended an attempt whose process never exits, which nothing ended
            hung = True
        except Exception as e:  # the supervisor raising is part of what it did
            raised = error_name(e)
        finally:
            for timer in timers:
                timer.cancel()
            if driver is not None:
                driver.stop()
                if driver.error is not None:
                    notes.append(f"the harness could not perform the world: {type(driver.error).__name__}: "
                                 f"{driver.error}")
            watch.close()
            sup.waker.close()
            ender.close()
    _reap_runtime(attempt, sup)
    # before 1.3.0 psutil's exit code: a signal's is a ``Negsignal`` member; None: wait() raised before the exit
    exit_code = None if sup._exit_code is None else int(sup._exit_code)
    final_state = decided_final_state(sup)
    if hung:  # the harness ended wait(): what it still held, and the process it still waited for, are the harness's
        _close_leftovers(sup, open_sockets)
        _kill_and_reap(sup)
    elif raised is not None:  # not part of the attempt: kept out of the observation, counted in census()
        h.closed_for_supervisor += _close_leftovers(sup, open_sockets)
        if exit_code is None:  # the process the supervisor abandoned: nobody else will end and reap it
            _kill_and_reap(sup)
            h.killed_for_supervisor += 1
    with attempt.lock:  # a lost answer: applied on the server before the client gave up
        attempt.lock.wait_for(lambda: not attempt.lost_in_flight, timeout=10)
    notes += attempt.unexpected
    calls, row, row_gone, map_index_sent = _server_side(attempt)
    return Observation(
        exit_code=exit_code,
        final_state=final_state,
        calls=calls,
        replies=tuple(comm.replies),
        row=row,
        row_gone=row_gone,
        rendered_map_index=map_index_sent,
        raised=raised,
        harness="; ".join(notes) or None,
        hung=hung,
    )


class WaitEnded(Exception):
    """Raised into a ``wait()`` that outlived its attempt's deadline by ``STUCK_WAIT_GRACE`` (``WaitEnder``)."""


class AttemptHung(Exception):
    """Raised into the ``wait()`` of an attempt whose process never exits, once time ran on and nothing ended it
    (``WaitEnder.end_hung``): ``wait()`` would wait for ever."""


class WaitEnder:
    """Ends a supervisor's ``wait()`` from outside, once: it registers a socket in the supervisor's selector and makes
    it readable; the loop wakes and its handler raises out of ``wait()``. Two occasions:

    - ``end_stuck``: a ``wait()`` still going ``STUCK_WAIT_GRACE`` after the deadline kill, one that waits for ever (a
      supervisor before 1.0.3 whose count of open sockets never reaches 0, finding W5): ``WaitEnded``, which the
      observation records, with a note saying the harness stepped in;
    - ``end_hung``: an attempt whose process never exits, once time ran on and nothing ended it (``AttemptHung``: the
      observation's ``hung``; the process is the harness's to end).

    A ``wait()`` that ends by itself never meets it."""

    def __init__(self, sup, notes: list[str]):
        self.sup = sup
        self.notes = notes
        self.pair: tuple = ()
        self.lock = threading.Lock()
        self.closed = False

    def end_stuck(self) -> None:
        self._end(WaitEnded("the harness ended a wait() that outlived its attempt's deadline"),
                  f"wait() was still going {STUCK_WAIT_GRACE:g}s after the deadline; the harness ended it (WaitEnded)")

    def end_hung(self) -> None:
        self._end(AttemptHung("the process never exits and nothing ended it"))

    def _end(self, error: Exception, note: str | None = None) -> None:
        def handler(_sock):
            raise error

        with self.lock:
            if self.closed or self.pair:  # wait() ended meanwhile, or is being ended already
                return
            if note:
                self.notes.append(note)
            self.pair = socket.socketpair()
            self.sup.selector.register(self.pair[0], selectors.EVENT_READ,
                                       since_1_0_3_selector_entry(handler, lambda _sock: None))
            self.pair[1].send(b"!")

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for sock in self.pair:
                sock.close()


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


def _close_leftovers(sup, open_sockets) -> int:
    """What ``wait()`` closes on its way out when it does not raise: the connections (``open_sockets()``, from
    ``since_1_0_3_open_sockets``; the exit watch left out) and the two servers (a forking supervisor, before 1.3.0,
    has no servers)."""
    servers = [getattr(sup, name, None) for name in ("_comm_server", "_logs_server")]
    left = [sock for sock in (*open_sockets(), *servers)
            if sock is not None and not isinstance(sock, ExitWatch) and sock is not sup.waker.inside
            and sock.fileno() != -1]
    for sock in left:
        sock.close()
    sup.stdin.close()
    return len(left)


def _kill_and_reap(sup) -> int:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(sup.pid, signal.SIGKILL)
    return int(sup._process.wait(10))


def _not_started(attempt, error: Exception, sup=None) -> Observation:
    """``start()`` raised: no supervisor to ask; what the server saw, and why.

    ``sup``: the supervisor ``start`` made before it raised, if any. A forking one (before 1.3.0) killed its child
    with SIGKILL and reaped it, and leaves its sockets open: closed here."""
    exit_code = -signal.SIGTERM  # _ResourceTracker terminates the process it could not start
    if sup is not None and not SUPERVISOR.launches_commands:
        exit_code = sup._exit_code if sup._exit_code is not None else _kill_and_reap(sup)
        _close_leftovers(sup, since_1_0_3_open_sockets(sup))
        sup.selector.close()
    elif attempt.runtime_pid is not None:  # start()'s resource tracker terminated it; make sure
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(attempt.runtime_pid, signal.SIGKILL)
    calls, row, row_gone, map_index_sent = _server_side(attempt)
    return Observation(
        exit_code=exit_code,
        final_state="none",
        calls=calls,
        replies=(),
        row=row,
        row_gone=row_gone,
        rendered_map_index=map_index_sent,
        raised=error_name(error),
        harness=f"not started: {type(error).__name__}: {error}",
    )
