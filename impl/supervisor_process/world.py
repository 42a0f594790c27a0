"""The world around a runtime the harness does not script: what it meets while its task runs and after its frame.

A scripted runtime performs the world's events itself, over its control channel, in lockstep with its frames
(``impl.server.model_api``). A runtime under check (a ``cmd:`` program, the reference runtime) knows nothing of
the harness, so the harness performs them, with the same operations (``model_api.perform``), at the two places
where such a runtime waits on the supervisor and so cannot act on its own:

- *while its task runs*: the supervisor's StartupDetails is held back (``Hold``) until the world's events
  there are over (faults armed, users' actions on the task instance done, heartbeats answered, each one acted on
  by the supervisor's loop); the runtime is connected and waiting, as a running task's runtime is to the
  supervisor. A kill there (a heartbeat the server refused, too many that failed) ends it: StartupDetails is never
  sent. That is how the world meets a task that ends by itself; one that runs until it is cancelled (the
  ``cancellable`` task) it meets while it runs: StartupDetails goes out, and once every thread of the runtime sleeps
  in its task the world's events happen, then time runs on; a kill there meets the runtime's own SIGTERM handling
  (``model.coordinator.CoordinatorRuntime.sigterm_running``: it may cancel its task and report it inside the kill),
  and a task nothing killed never ends (the attempt is ended as ``hung``).
- *after its terminal frame was taken*: the supervisor's answer to it is held back while the success overtime
  runs out, but only for a runtime that is waiting for that answer. One that does not wait exits as soon as its
  frame is written; which of the two a runtime is shows in the process itself (``RuntimeWatch``): it either
  ends, or every thread of it sleeps.

A kill among the world's events meets the runtime as it is: one that dies of the SIGTERM, or traps it and waits on,
meets nothing more; one that carries on inside the kill (it writes to the supervisor, or exits by itself: it handled
the signal) meets the rest of the world's faults and users' actions there, performed once the signal was sent and
before the supervisor reads the runtime again (``WorldDriver._inside_kill``), as a kill's wait meets them in
``model.supervisor.monitor_step``.

A run that says the runtime traps SIGTERM (``ignore sigterm``) has it, at every kill a coordinator run can have,
waiting on the harness: whatever its handler does, it can do nothing more, and only the SIGKILL the supervisor
escalates to ends it. The harness stands in for such a handler by withholding SIGTERM from it
(``Arrangement.withhold_sigterm``). Nothing else is withheld: a runtime's own SIGTERM handling meets the real signal.

The supervisor can also take a frame and answer nothing: one it could not decode (it logs "Unable to decode
message" and goes on). A runtime waiting for that answer would wait for ever; once every thread of it sleeps (or
``UNANSWERED_GRACE`` has passed) the harness ends it with SIGKILL and says so in the observation.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import attrs

from impl.server.model_api import perform
from model.scenario import Fault, Heartbeat, IgnoreSigterm, Overtime, UserAction
from model.supervisor import TIME_RUNS_ON

#: How long a runtime whose frame the supervisor could not decode may go on before the harness ends it.
UNANSWERED_GRACE = 1.0
#: How long the harness waits for a runtime to show whether it waits for its answer (it ends, or sleeps) before it
#: takes it to be waiting: far beyond the microseconds from a written frame to an exit.
SHOW_GRACE = 1.0
#: Consecutive looks, ``LOOK_INTERVAL`` apart, that must find every thread asleep: a thread between two steps of its
#: own can be seen asleep once (a runnable thread the machine has not scheduled yet is seen running, not asleep).
ASLEEP_LOOKS = 3
LOOK_INTERVAL = 0.001


@attrs.frozen
class World:
    """The world's events around a runtime's task: ``while_running`` (``Fault``, ``UserAction``, ``Heartbeat``, a
    leading ``IgnoreSigterm``) and ``after_frame`` (``Overtime``), as ``model.coordinator.CoordinatorRun`` has them;
    ``task_runs_on``: the task runs until it is cancelled (``model.coordinator.CANCELLABLE``), so the world meets it
    while it runs, StartupDetails sent, and its frame, if any, comes inside a kill (no overtime after it)."""

    while_running: tuple = ()
    after_frame: tuple = ()
    task_runs_on: bool = False

    @property
    def traps_sigterm(self) -> bool:
        return any(isinstance(e, IgnoreSigterm) for e in self.while_running)

    def arrangement(self) -> Arrangement:
        waits = not self.task_runs_on and any(not isinstance(e, IgnoreSigterm) for e in self.while_running)
        return Arrangement(scripted=False, hold_startup=waits,
                           hold_terminal_answer=bool(self.after_frame) and not self.task_runs_on,
                           withhold_sigterm=self.traps_sigterm)


@attrs.frozen
class Arrangement:
    """How the harness's supervisor is set up for one attempt (``supervise.QuickEscalation.arranged``).

    ``scripted``: the runtime is the harness's scripted one, whose lockstep requests are not its own; ``hold_startup``:
    StartupDetails waits for ``Hold.release``; ``hold_terminal_answer``: so does the answer to the runtime's first
    terminal frame; ``withhold_sigterm``: the runtime traps SIGTERM (see the module)."""

    scripted: bool = True
    hold_startup: bool = False
    hold_terminal_answer: bool = False
    withhold_sigterm: bool = False


class Hold:
    """What the supervisor writes to its runtime, held back while the world acts (``RecordingComm`` writes through
    it). ``held`` is True while it holds; ``release`` writes what it held and lets everything after through."""

    def __init__(self, sock, holding: bool):
        self._sock = sock
        self._lock = threading.Lock()
        self._held: list[bytes] | None = [] if holding else None

    @property
    def held(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        with self._lock:
            if self._held is None:
                self._held = []

    def sendall(self, data) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(bytes(data))
                return
        self._sock.sendall(data)

    def release(self) -> None:
        """Write what was held (a runtime that has gone cannot take it: that is no error of the harness's)."""
        with self._lock:
            held, self._held = self._held or [], None
            with contextlib.suppress(OSError):
                for data in held:
                    self._sock.sendall(data)


class RuntimeWatch:
    """The runtime's process as the harness can see it: ended (a pidfd of its own is readable), or waiting (every
    thread of it, and of any process it started, is asleep in the kernel). ``close`` lets go of the pidfd."""

    def __init__(self, pid: int):
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)

    def ended(self) -> bool:
        return bool(select.select([self.pidfd], [], [], 0)[0])

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def asleep(self) -> bool:
        """Every thread of the runtime's process tree sleeps (state ``S``)."""
        try:
            import psutil

            pids = [self.pid, *(p.pid for p in psutil.Process(self.pid).children(recursive=True))]
        except Exception:  # gone, or going: not asleep
            return False
        for pid in pids:
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] != "S":
                        return False
            except (OSError, IndexError):
                return False
        return True

    def runs_its_task(self, comm, budget: float, stop: threading.Event) -> str:
        """``ended``, or ``running`` once the runtime has read everything the supervisor wrote it on ``comm``
        (StartupDetails: ``unread``) and every thread of it sleeps (in its task, waiting to be cancelled); ``running``
        after ``budget`` seconds. Launched through the fork server, the process watched is the launcher, which always
        sleeps: there, having read StartupDetails is what shows it runs its task (the task starts microseconds later)."""
        until = time.monotonic() + budget
        looks = 0
        while time.monotonic() < until and not stop.is_set():
            if self.ended():
                return "ended"
            looks = looks + 1 if unread(comm) in (0, None) and self.asleep() else 0
            if looks >= ASLEEP_LOOKS:
                return "running"
            time.sleep(LOOK_INTERVAL)
        return "ended" if self.ended() else "running"

    def shows(self, budget: float, stop: threading.Event) -> str:
        """``ended`` or ``waiting``, as soon as the runtime shows which; ``waiting`` after ``budget`` seconds."""
        until = time.monotonic() + budget
        looks = 0
        while time.monotonic() < until and not stop.is_set():
            if self.ended():
                return "ended"
            looks = looks + 1 if self.asleep() else 0
            if looks >= ASLEEP_LOOKS:
                return "waiting"
            time.sleep(LOOK_INTERVAL)
        return "ended" if self.ended() else "waiting"


def _proc_net_address(host: str, port: int, table: str) -> str:
    """``host:port`` (IPv4) as ``/proc/net/tcp`` writes it (each 32-bit word in host order, hex), or as ``tcp6`` writes
    the same address mapped into IPv6 (``::ffff:a.b.c.d``)."""
    word = "%08X" % struct.unpack("=I", socket.inet_aton(host))[0]
    mapped = "0000000000000000" + "%08X" % struct.unpack("=I", b"\0\0\xff\xff")[0] + word
    return f"{mapped if table.endswith('6') else word}:{port:04X}"


def unread(sock) -> int | None:
    """How many of the bytes written on ``sock`` (the supervisor's TCP connection to its runtime, on loopback) the
    runtime has not read yet: its own end's receive queue, as ``/proc/self/net/tcp`` shows it (the helper's network
    namespace, where the runtime lives too). None where that cannot be told (not an IPv4 connection, not found)."""
    try:
        (local_host, local_port), (peer_host, peer_port) = sock.getsockname()[:2], sock.getpeername()[:2]
    except (OSError, ValueError):
        return None
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            wanted = (_proc_net_address(peer_host, peer_port, table), _proc_net_address(local_host, local_port, table))
            lines = Path(table).read_text().splitlines()[1:]
        except (OSError, ValueError):
            continue
        for line in lines:
            fields = line.split()
            if (fields[1], fields[2]) == wanted:
                return int(fields[4].split(":")[1], 16)
    return None


def wrote(comm) -> bool:
    """Whether the runtime has written something the supervisor has not read yet on ``comm`` (its end of the comm
    socket), peeked at, never taken; the end of the stream (a runtime that is gone) is not something written."""
    try:
        return bool(comm.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


def exited_by_itself(pid: int) -> bool:
    """Whether the ended child ``pid`` exited (a code of its own), not killed by a signal; asked without reaping it
    (``WNOWAIT``: the supervisor reaps it as it always does). False where it cannot be told (not a child of ours)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return False
    return info is not None and info.si_code == os.CLD_EXITED


class WorldDriver:
    """Performs ``world`` around the attempt of ``sup`` (a ``supervise.QuickEscalation``), on a thread of its own while
    the supervisor's ``wait()`` runs: see the module. ``notes`` gets a line for each time the harness stepped in.

    It waits on ``changed``, which the comm sets when the runtime's terminal frame is answered, the supervisor when it
    takes a frame it cannot decode, and ``stop`` when ``wait()`` is over."""

    def __init__(self, world: World, sup, attempt, comm, watch: RuntimeWatch, notes: list[str]):
        self.world, self.sup, self.attempt, self.comm, self.watch, self.notes = world, sup, attempt, comm, watch, notes
        self.done = threading.Event()
        self.changed = comm.changed = sup.changed = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="finalstate-world", daemon=True)
        #: The world's events after the one being performed: what a kill it brings about meets inside it.
        self.pending: tuple = ()
        sup.inside_kill = self._inside_kill

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """``wait()`` is over: stop waiting on it, and let go of anything still held."""
        self.done.set()
        self.changed.set()
        self.thread.join(10)
        self.comm.hold.release()
        self.watch.close()

    def _run(self) -> None:
        try:
            self._live()
        except BaseException as e:  # said in the observation by supervise; never lost on a daemon thread
            self.error = e
            self.comm.hold.release()

    def _do(self, message: dict) -> None:
        answer = perform(self.attempt, message)
        if not answer.get("ok"):
            raise RuntimeError(f"the world's {message['op']} failed: {answer.get('error')}")

    def _next_change(self) -> bool:
        """Wait for the next change (bounded: a missed one is looked for again); False once ``wait()`` is over."""
        self.changed.wait(LOOK_INTERVAL * 100)
        self.changed.clear()
        return not self.done.is_set()

    def _live(self) -> None:
        if self.world.task_runs_on:
            return self._while_it_runs()
        if not self._perform(self.world.while_running):  # killed while its task ran: it never gets to end it
            return
        self.comm.hold.release()
        while not self.comm.terminal_answered.is_set():
            if self.sup.frames_not_taken:
                return self._unanswered()
            if not self._next_change():
                return
        if self.world.after_frame:
            if self.watch.shows(SHOW_GRACE, self.done) == "waiting" and not self.done.is_set():
                self._perform(self.world.after_frame)
            if not self._killing():  # a kill meets a runtime still waiting for its answer: it never gets it
                self.comm.hold.release()
        seen = self.sup.frames_not_taken
        while self._next_change():  # a frame it sends later goes unanswered too
            if self.sup.frames_not_taken > seen:
                return self._unanswered()

    def _perform(self, events) -> bool:
        """The world's events while the task runs, in order: faults armed, users' actions done, heartbeats answered
        (each acted on by the supervisor's loop); False once one of them made the supervisor kill the runtime."""
        for i, event in enumerate(events):
            self.pending = tuple(events[i + 1:])
            if isinstance(event, Fault):
                self.attempt.arm(event)
            elif isinstance(event, UserAction):
                self._do({"op": "act", "action": event.action, "state": event.state})
            elif isinstance(event, Heartbeat):
                self._do({"op": "heartbeat", "answer": event.answer})
                self._do({"op": "settle"})
            elif isinstance(event, Overtime):
                self._do({"op": "overtime"})
                self._do({"op": "settle"})
            if self._killing():
                return False
        self.pending = ()
        return True

    def _inside_kill(self) -> None:
        """Called by the supervisor's thread once its kill's SIGTERM was sent, before it reads the runtime again: a
        runtime that carries on inside the kill (it handles SIGTERM: it writes to the supervisor, or exits by itself)
        meets the rest of the world's faults and users' actions there, as ``model.supervisor.monitor_step`` has a kill's
        wait meet them (a heartbeat or the overtime falling due there is never acted on); one that died of the signal,
        or trapped it and goes on waiting, meets nothing more."""
        rest = tuple(e for e in self.pending if isinstance(e, (Fault, UserAction)))
        self.pending = ()
        try:
            if not rest or not self._carries_on():
                return
            for event in rest:
                if isinstance(event, Fault):
                    self.attempt.arm(event)
                else:
                    self._do({"op": "act", "action": event.action, "state": event.state})
        except Exception as e:  # said in the observation by supervise, as the driver's own errors are
            self.error = e

    def _carries_on(self) -> bool:
        """After a SIGTERM: whether the runtime carries on (it wrote to the supervisor, or exited by itself), as soon as
        it shows it; not once it died of the signal, or every thread of it sleeps with nothing written (it trapped the
        signal and waits on), or ``SHOW_GRACE`` went by."""
        until = time.monotonic() + SHOW_GRACE
        looks = 0
        while time.monotonic() < until and not self.done.is_set():
            if self.watch.ended():
                return exited_by_itself(self.watch.pid)
            if wrote(self.comm):
                return True
            looks = looks + 1 if self.watch.asleep() else 0
            if looks >= ASLEEP_LOOKS:
                return wrote(self.comm)
            time.sleep(LOOK_INTERVAL)
        return False

    def _killing(self) -> bool:
        """Whether the supervisor has begun to kill the runtime (its ``kill()`` is entered before the signal is sent)."""
        return self.sup.killing or self.sup.signalled

    def _while_it_runs(self) -> None:
        """A task that runs until it is cancelled: StartupDetails went out; once the runtime shows it runs its task
        (it read StartupDetails, and every thread of it sleeps, waiting for the cancellation), the world's events happen, then time runs on
        (``model.supervisor.TIME_RUNS_ON``); a kill among them is the runtime's to meet as it does (it dies, exits,
        or cancels its task and reports it inside the kill), and if nothing killed it, it never ends: the harness ends
        the attempt (``hung``). A runtime that ended meanwhile (it has no such task) meets none of it."""
        if self.watch.runs_its_task(self.comm, SHOW_GRACE, self.done) == "ended" or self.done.is_set():
            return
        if self._perform(self.world.while_running) and self._perform(TIME_RUNS_ON):
            self.sup.end_hung()

    def _unanswered(self) -> None:
        """The supervisor took a frame it answers nothing: give the runtime until it shows it waits, then end it."""
        if self.watch.shows(UNANSWERED_GRACE, self.done) == "waiting" and not self.done.is_set():
            self.notes.append("the supervisor could not decode a frame of the runtime's and answered nothing; the "
                              "runtime waited on: the harness ended it (SIGKILL)")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.watch.pid, signal.SIGKILL)
