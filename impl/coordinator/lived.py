"""A coordinator runtime's tries, each lived once per session and judged by every property that draws it.

A try is a function of its ``CoordinatorRun`` (the runtime, the run context, the world, the outcome), and the
coordinator properties draw the same runs: the conformance search and each invariant's search draw the very same
examples under a derandomized profile, and the complete scope and the lifecycles meet many of them again. So each
distinct run is lived for real once, and every property that draws it judges that one observation: conformance and
every invariant alike. A runtime that answered the same run differently from one try to the next would be seen on
one of them only; a replay line lives the run afresh.

Tries asked for ahead (``LivedTries.live_ahead``: the runs a search will draw, the scope's, the lives') are lived at
once in the try pool (``supervisor_process.pool``) while the properties go on, each batch ahead of those handed over
before it; a run a property asks for is lived next, or its try already under way is waited for. Off (``$FINALSTATE_TRY_POOL=0``, or without the helper process, or on the real
Execution API, whose server each helper would start on its own), every try is lived when asked for, in the one
helper, as before.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Iterable

from impl.supervisor_process import helper
from impl.supervisor_process.pool import most_at_once, pool, try_budget
from model.coordinator import CoordinatorRun
from model.scenario import Observation

#: ``(function, args, kwargs)`` that live a run in a helper: ``function`` module-level (it is pickled by name).
Job = Callable[[CoordinatorRun], tuple]


class LivedTries:
    """``run -> Observation`` for one runtime, each distinct run lived once (see the module); ``job(run)`` says how
    to live a run in a helper. A run whose try raised is remembered only when it raised for the run itself
    (``NotImplementedError``: a run this target cannot play); one whose helper failed is lived again when asked again."""

    def __init__(self, job: Job):
        self._job = job
        self._tries: dict[CoordinatorRun, Future] = {}
        self._lock = threading.Lock()

    def __call__(self, run: CoordinatorRun) -> Observation:
        future = self._started(run)
        pool().hurry(future)
        # It goes first once asked for: after the tries under way, each within its budget; else the pool is stuck.
        budget = 2 * try_budget()
        try:
            return future.result(budget)
        except FutureTimeout:
            raise RuntimeError(f"the try pool did not live a try within {budget:g}s: {run.to_text()}") from None
        except NotImplementedError:
            raise
        except BaseException:
            with self._lock:
                if self._tries.get(run) is future:
                    del self._tries[run]
            raise

    def live_ahead(self, runs: Iterable[CoordinatorRun]) -> None:
        """Start living each of ``runs`` not lived yet, in their order, in the pool, ahead of the runs handed over
        before (what is asked for next goes first); return at once."""
        pool().hurry(*[self._started(run) for run in runs])

    def _started(self, run: CoordinatorRun) -> Future:
        with self._lock:
            future = self._tries.get(run)
            if future is None or future.cancelled():
                function, args, kwargs = self._job(run)
                future = self._tries[run] = pool().submit(function, *args, **kwargs)
            return future


_lived: dict[tuple, LivedTries] = {}


def lived_tries(key: tuple, job: Job, server: str):
    """The runner of the runtime ``key`` (its command, or its file, and the server): a ``LivedTries`` shared by every
    target of this process that runs it, or, where tries are not lived ahead here (see the module), a function that
    lives each run when asked, in the one helper."""
    if server != "model" or not helper.helper_in_use() or most_at_once() == 0:
        def run(coordinator_run: CoordinatorRun) -> Observation:
            function, args, kwargs = job(coordinator_run)
            return helper.in_helper(function, *args, **kwargs)
        return run
    if key not in _lived:
        _lived[key] = LivedTries(job)
    return _lived[key]
