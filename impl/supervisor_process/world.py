"""The world around a runtime the harness does not script: what it meets while its task runs and after its frame.

A scripted runtime performs the world's events itself, over its control channel, in lockstep with its frames
(``impl.server.model_api``). A runtime under check (a ``cmd:`` program, the reference runtime) knows nothing of
the harness, so the harness performs them, with the same operations (``model_api.perform``), at the two places
where such a runtime waits on the supervisor and so cannot act on its own:

- *while its task runs*: the supervisor's StartupDetails is held back (``Hold``) until the world's events
  there are over (faults armed, users' actions on the task instance done, heartbeats answered, each one acted on
  by the supervisor's loop); the runtime is connected and waiting, as a running task's runtime is to the
  supervisor. A kill there (a heartbeat the server refused, too many that failed) ends it: StartupDetails is never
  sent.
- *after its terminal frame was taken*: the supervisor's answer to it is held back while the success overtime
  runs out, but only for a runtime that is waiting for that answer. One that does not wait exits as soon as its
  frame is written; which of the two a runtime is shows in the process itself (``RuntimeWatch``): it either
  ends, or every thread of it sleeps.

A runtime that traps SIGTERM (``ignore sigterm``) is, at every kill a coordinator run can have, waiting on the
harness: whatever its handler does, it can do nothing more, and only the SIGKILL the supervisor escalates to ends
it. The harness stands in for such a handler by withholding SIGTERM from it (``Arrangement.withhold_sigterm``).

The supervisor can also take a frame and answer nothing: one it could not decode (it logs "Unable to decode
message" and goes on). A runtime waiting for that answer would wait for ever; once every thread of it sleeps (or
``UNANSWERED_GRACE`` has passed) the harness ends it with SIGKILL and says so in the observation.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from pathlib import Path

import attrs

from impl.server.model_api import perform
from model.scenario import Fault, Heartbeat, IgnoreSigterm, Overtime, UserAction

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
    leading ``IgnoreSigterm``) and ``after_frame`` (``Overtime``), as ``model.coordinator.CoordinatorRun`` has them."""

    while_running: tuple = ()
    after_frame: tuple = ()

    @property
    def traps_sigterm(self) -> bool:
        return any(isinstance(e, IgnoreSigterm) for e in self.while_running)

    def arrangement(self) -> Arrangement:
        return Arrangement(scripted=False, hold_startup=any(not isinstance(e, IgnoreSigterm) for e in self.while_running),
                           hold_terminal_answer=bool(self.after_frame), withhold_sigterm=self.traps_sigterm)


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
        for event in self.world.while_running:
            if isinstance(event, Fault):
                self.attempt.arm(event)
            elif isinstance(event, UserAction):
                self._do({"op": "act", "action": event.action, "state": event.state})
            elif isinstance(event, Heartbeat):
                self._do({"op": "heartbeat", "answer": event.answer})
                self._do({"op": "settle"})
                if self.sup.signalled:  # killed while its task ran: it never gets to end it
                    return
        self.comm.hold.release()
        while not self.comm.terminal_answered.is_set():
            if self.sup.frames_not_taken:
                return self._unanswered()
            if not self._next_change():
                return
        if self.world.after_frame:
            if self.watch.shows(SHOW_GRACE, self.done) == "waiting" and not self.done.is_set():
                for event in self.world.after_frame:
                    if isinstance(event, Overtime):
                        self._do({"op": "overtime"})
                        self._do({"op": "settle"})
            self.comm.hold.release()
        seen = self.sup.frames_not_taken
        while self._next_change():  # a frame it sends later goes unanswered too
            if self.sup.frames_not_taken > seen:
                return self._unanswered()

    def _unanswered(self) -> None:
        """The supervisor took a frame it answers nothing: give the runtime until it shows it waits, then end it."""
        if self.watch.shows(UNANSWERED_GRACE, self.done) == "waiting" and not self.done.is_set():
            self.notes.append("the supervisor could not decode a frame of the runtime's and answered nothing; the "
                              "runtime waited on: the harness ended it (SIGKILL)")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.watch.pid, signal.SIGKILL)
