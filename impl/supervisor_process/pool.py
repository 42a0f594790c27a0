"""Tries lived at once: helper processes, each supervising one try at a time, as many at once as the tries wait.

A runtime that starts slowly (a JVM: about half a second before it connects) or dies slowly (one that traps SIGTERM:
the supervisor's kill waits out Airflow's 5 s escalation to SIGKILL) keeps its supervisor waiting, not working. The
supervisor's side of such a try is I/O-bound, so independent tries can be lived side by side: ``TryPool.submit``
queues a try and returns a ``Future`` of what it observed; up to ``window`` helper processes live the queued tries,
oldest first (``hurry`` moves some to the front: a try a property waits for, or what it will ask for next).

Each helper is what ``helper.Helper`` is, one of several: a process of its own, in a private network namespace where
it can have one, with its own harness (``supervise.harness``); an attempt's supervision is unchanged, it simply runs
beside others. The helpers are forked from a fork server (``multiprocessing``'s forkserver) that imported the
supervisor once, so a new one costs a fork, not an interpreter and Airflow's import.

How many at once (``Pace``): a helper that mostly waits leaves the CPU to others, one that mostly works does not. Each
try reports its wall time and the CPU it and its runtime took (stretched by how long the helper waited for a CPU, so
that a loaded machine does not pass for a waiting runtime); the window is the number of cores times the ratio of the
two over the last tries, between the number of cores and ``most``. A runtime that answers in milliseconds gets about
one helper per core; one that sleeps half a second before it connects, or waits out an escalation, gets ``most``.

Every helper is ended by ``close`` (its harness closed, as the one helper's is); a try still going is waited for
within its budget, then its helper is killed. A helper that dies or outlives a try's budget fails that try (the
caller sees ``RuntimeError``) and is replaced by a new one for the next.
"""

from __future__ import annotations

import atexit
import collections
import math
import multiprocessing
import os
import threading
import time
import traceback
from concurrent.futures import Future

import attrs

#: After how many tries a try's part in the pace is halved.
PACE_HALF_LIFE = 256
#: Environment: the most tries lived at once (``0``: none ahead; each try is lived when it is asked for, in the one
#: helper, as ``helper.in_helper`` does).
POOL_ENV = "FINALSTATE_TRY_POOL"
DEFAULT_MOST = 32


def try_budget() -> float:
    """How long a helper may take over one try before it is killed: the harness ends every attempt by its deadline and
    startup timeout (and a ``wait()`` stuck past it soon after); a minute more for a loaded machine, as
    ``helper.Helper.call``'s budget has it."""
    from impl.supervisor_process.supervise import DEFAULT_DEADLINE, DEFAULT_STARTUP_TIMEOUT, STUCK_WAIT_GRACE

    return DEFAULT_DEADLINE + DEFAULT_STARTUP_TIMEOUT + STUCK_WAIT_GRACE + 60.0


def most_at_once() -> int:
    """``$FINALSTATE_TRY_POOL`` (default ``DEFAULT_MOST``); ``ValueError`` naming it when it is not a whole number."""
    value = os.environ.get(POOL_ENV, str(DEFAULT_MOST))
    try:
        most = int(value)
    except ValueError:
        raise ValueError(f"{POOL_ENV}={value!r}: the most tries lived at once is a whole number (0: off)") from None
    if most < 0:
        raise ValueError(f"{POOL_ENV}={value!r}: the most tries lived at once is 0 (off) or more")
    return most


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@attrs.frozen
class Effort:
    """What one try took in its helper: ``wall`` seconds; ``cpu`` seconds of the helper and of the runtime processes
    it reaped; ``stretch``, how much longer the helper's own work took than its time on a CPU (1: it never waited for
    one; a loaded machine makes it more)."""

    wall: float
    cpu: float
    stretch: float = 1.0


class Pace:
    """How many tries to live at once: ``cores`` times the ratio of the tries' wall time to the time they needed a CPU
    (their CPU time stretched by their waits for one), between ``cores`` and ``most``; ``cores`` until a try has ended.

    The ratio is of sums over the tries so far, each weighed down by half every ``PACE_HALF_LIFE`` tries since: a
    runtime's tries come in runs of alike (a scope lists its runs by their world), and a window set by the last few
    would shrink over a run of quick ones just before a run of slow ones."""

    def __init__(self, cores: int, most: int):
        self.cores = max(1, cores)
        self.most = max(1, most)
        self._wall = self._working = 0.0
        self._lock = threading.Lock()

    @property
    def window(self) -> int:
        with self._lock:
            wall, working = self._wall, self._working
        least = min(self.cores, self.most)
        if wall == 0.0:
            return least
        return max(least, min(self.most, math.ceil(self.cores * wall / max(working, 1e-3))))

    def record(self, effort: Effort) -> None:
        keep = 0.5 ** (1 / PACE_HALF_LIFE)
        with self._lock:
            self._wall = self._wall * keep + effort.wall
            self._working = self._working * keep + effort.cpu * effort.stretch


def _main_thread_schedstat() -> tuple[int, int]:
    """Nanoseconds this thread ran on a CPU and waited for one (``/proc/thread-self/schedstat``); zeros where the
    kernel does not keep them."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            ran, waited, _ = f.read().split()
        return int(ran), int(waited)
    except (OSError, ValueError):
        return 0, 0


def _timed(function, args, kwargs):
    """``function(*args, **kwargs)`` and the ``Effort`` it took (in a helper)."""
    began, times, (ran, waited) = time.monotonic(), os.times(), _main_thread_schedstat()
    value = function(*args, **kwargs)
    after, (ran_after, waited_after) = os.times(), _main_thread_schedstat()
    cpu = sum(getattr(after, f) - getattr(times, f) for f in ("user", "system", "children_user", "children_system"))
    ran_for = ran_after - ran
    stretch = (ran_for + waited_after - waited) / ran_for if ran_for > 0 else 1.0
    return value, Effort(time.monotonic() - began, cpu, stretch)


def _serve(conn) -> None:
    """A helper's life (in the forked process): become a helper (private network namespace, harness), then live each
    try sent on ``conn`` and send back ``("ok", value, effort)``, ``("raise", exception, where)`` or
    ``("error", where, None)`` (an exception that does not pickle), until ``conn`` closes."""
    import pickle

    from impl.supervisor_process import helper, supervise

    helper.become_helper()
    try:
        helper.private_network()
        supervise.harness()
    except Exception:
        conn.send(("error", traceback.format_exc(), None))
        return
    try:
        while True:
            try:
                function, args, kwargs = conn.recv()
            except EOFError:
                break
            try:
                conn.send(("ok", *_timed(function, args, kwargs)))
            except Exception as e:
                where = traceback.format_exc()
                try:
                    pickle.dumps(e)
                except Exception:
                    conn.send(("error", where, None))
                else:
                    conn.send(("raise", e, where))
    finally:
        supervise.close_harness()
        conn.close()


class HelperDied(RuntimeError):
    """A helper of the pool died or outlived a try's budget; the message says which and how."""


class _Helper:
    """One forked helper and the pipe to it."""

    def __init__(self, context):
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs,), name="finalstate-try-helper", daemon=True)
        self.process.start()
        theirs.close()

    def call(self, function, args, kwargs, budget: float):
        self.conn.send((function, args, kwargs))
        if not self.conn.poll(budget):
            self.kill()
            raise HelperDied(f"a helper of the try pool did not answer within {budget:g}s; killed it")
        try:
            status, value, where = self.conn.recv()
        except EOFError:
            self.process.join(5)
            self.conn.close()
            raise HelperDied(f"a helper of the try pool died (exit {self.process.exitcode})") from None
        if status == "ok":
            return value, where
        if status == "raise":
            raise value from RuntimeError(f"raised in a helper of the try pool:\n{where}")
        raise HelperDied(f"a helper of the try pool failed:\n{value}")

    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> None:
        self.conn.close()  # its signal to end: it closes its harness and exits
        self.process.join(try_budget())  # a try under way ends within its budget; then the harness closes
        if self.process.is_alive():
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


def _stop_fork_server() -> None:
    """End the fork server the helpers came from, and reap it (it reaped them): nothing is left behind, and what they
    and their runtimes spent is counted in this process's children's CPU time. It starts again when next needed."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # the module's own way to end it (no public one)
    if stop is not None:
        stop()


class TryPool:
    """Tries lived in up to ``most`` helper processes at once, as ``Pace`` says (see the module)."""

    def __init__(self, most: int, budget: float | None = None):
        self.pace = Pace(cores(), most)
        self.budget = try_budget() if budget is None else budget
        self._context = multiprocessing.get_context("forkserver")
        # The main module too, once (multiprocessing imports it in each new process otherwise: pytest, for one).
        self._context.set_forkserver_preload(["__main__", "impl.supervisor_process.helper"])
        self._queued: collections.OrderedDict[Future, tuple] = collections.OrderedDict()
        self._changed = threading.Condition()
        self._slots: list[threading.Thread] = []
        self._busy = 0
        self._closing = False

    def submit(self, function, *args, **kwargs) -> Future:
        """Queue ``function(*args, **kwargs)`` (a module-level function: it is pickled by name) for a helper; its
        ``Future`` holds what it returned, or what it raised."""
        future = Future()
        with self._changed:
            if self._closing:
                raise RuntimeError("the try pool is closed")
            self._queued[future] = (function, args, kwargs)
            self._grow()
            self._changed.notify_all()
        return future

    def hurry(self, *futures: Future) -> None:
        """Live these futures' tries next, in this order, those still queued."""
        with self._changed:
            for future in reversed(futures):
                if future in self._queued:
                    self._queued.move_to_end(future, last=False)

    def close(self) -> None:
        """Cancel what is queued, let the tries under way end, and end every helper."""
        with self._changed:
            self._closing = True
            for future in self._queued:
                future.cancel()
            self._queued.clear()
            self._changed.notify_all()
        for slot in self._slots:
            slot.join()
        self._slots.clear()
        _stop_fork_server()

    def _grow(self) -> None:
        """Start another slot while the window has room for one and tries are queued (with ``_changed`` held)."""
        while len(self._slots) < min(self.pace.window, self._busy + len(self._queued)):
            slot = threading.Thread(target=self._slot, args=(len(self._slots),), name="finalstate-try-slot",
                                    daemon=True)
            self._slots.append(slot)
            slot.start()

    def _next(self, index: int):
        """The next queued try for slot ``index``, once the window includes it; None when the pool closes."""
        with self._changed:
            while not self._closing and (not self._queued or index >= self.pace.window):
                self._changed.wait()
            if self._closing:
                return None
            future, job = self._queued.popitem(last=False)
            self._busy += 1
            return future, job

    def _slot(self, index: int) -> None:
        helper = None
        try:
            while (taken := self._next(index)) is not None:
                future, (function, args, kwargs) = taken
                try:
                    if not future.set_running_or_notify_cancel():
                        continue
                    if helper is None or not helper.alive():
                        helper = _Helper(self._context)
                    value, effort = helper.call(function, args, kwargs, self.budget)
                except HelperDied as e:
                    helper = None
                    future.set_exception(e)
                except BaseException as e:  # the try's own exception, raised where it is waited for
                    future.set_exception(e)
                else:
                    self.pace.record(effort)
                    future.set_result(value)
                finally:
                    with self._changed:
                        self._busy -= 1
                        self._grow()
                        self._changed.notify_all()
        finally:
            if helper is not None:
                helper.close()


_pool: TryPool | None = None
_pool_lock = threading.Lock()


def pool() -> TryPool:
    """This process's pool, started on first use (``$FINALSTATE_TRY_POOL`` helpers at most)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = TryPool(most_at_once())
            atexit.register(close_pool)
        return _pool


def close_pool() -> None:
    global _pool
    with _pool_lock:
        closing, _pool = _pool, None
    if closing is not None:
        closing.close()
