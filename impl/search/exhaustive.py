"""Exhaustive small scopes: every run of a kind up to a small size, de-duplicated by the model's decision.

Each kind of run has its scope (``SCOPES``): the supervisor's attempts (below), the Python task runner's tries
(``runtime_scope``) and a coordinator runtime's tries in their world (``coordinator_scope``).
``check_exhaustively`` / ``check_in_scope`` check a scope on a target of its kind.

The supervisor's scope.

``enumerate_scenarios(depth)`` walks the event sequences breadth first, from each run context of
``CONTEXTS`` with each number of client tries of ``TRIES``: a prefix is extended by every event of
the alphabet only if the model's abstract state after it (``model.supervisor``'s ``Supervisor``
less its history of calls and replies, its faults on different calls in one order: ``_abstract``)
has not been reached before; two prefixes that reach one state have the same futures in the model.
Every prefix, with every exit of ``EXITS``, is a scenario to check; ``in_scope`` adds every
heartbeat sequence up to ``HEARTBEAT_DEPTH``, not de-duplicated.
``check_exhaustively`` checks them all on a target, in worker processes (each run context whole
where the contexts divide evenly between the workers, split between them where not: ``shares``):
conformance with the model and every invariant (violations that a registered finding explains
are counted, not failures). Hypothesis searches beyond this scope.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import itertools
import multiprocessing
import operator
import signal
import time
from typing import Iterator

import attrs

from typing import Callable

from impl.catalogue.findings import ALL_FINDINGS
from impl.targets.kinds import KINDS
from impl.targets.registry import load_target
from impl.search.scenarios import COORDINATOR_WORLD, EVENTS
from impl.search.report import Disagreement, InvariantViolation, check_conformance, check_observation
from model import supervisor as model_supervisor
from model.coordinator import (CANCELLABLE, CONTRACT, COORDINATOR_OUTCOMES, DISPOSITIONS, CoordinatorRun,
                               CoordinatorRuntime, coordinator_attempt)
from model.frozen import replace
from model.release import SPECIFIED, Release
from model.runtime_invariants import runtime_violations
from model.runtime import (COMMS_MODES, EXECUTION_TIMEOUT, FEATURES, PYTHON_OUTCOMES, RETURN, Policy, RuntimeRun,
                           impossible_on, python_runtime)
from model.scenario import (DEFAULT_EXECUTION_API_RETRIES, HANG, HEARTBEAT_ERROR, HEARTBEAT_NO_ANSWER, HEARTBEAT_OK,
                            Heartbeat, IgnoreSigterm, Overtime, RunContext, Scenario)

#: Retries left, the last try, no retries, and should_retry disagreeing with the counts both ways.
CONTEXTS = (RunContext.from_server(1, 1), RunContext.from_server(2, 1), RunContext.from_server(1, 0),
            RunContext(1, 1, False), RunContext(2, 1, True))
#: ``execution_api_retries``: one try (every fault is seen) and Airflow's default. Two and three tries differ from
#: these only when two or three faults are armed on one call, most of a small scope; the Hypothesis search draws
#: them (``scenarios.SETTINGS``), and ``finalstate check --exhaustive N`` is cheap to widen here.
TRIES = (1, DEFAULT_EXECUTION_API_RETRIES)
#: The heartbeat answers that count, deeper and not de-duplicated: the supervisor counts failed heartbeats in a
#: row up to its kill and starts again after a success, and a state that forgets the count is the very bug to
#: catch, so every sequence of up to two more than the kill needs is in scope too.
HEARTBEAT_EVENTS = (Heartbeat(HEARTBEAT_OK), Heartbeat(HEARTBEAT_ERROR), Heartbeat(HEARTBEAT_NO_ANSWER))
HEARTBEAT_DEPTH = model_supervisor.MAX_FAILED_HEARTBEATS + 2
#: A clean exit, a failure, a death by a signal the supervisor does not send, a process that never exits on its own.
EXITS = (0, 1, -9, HANG)
#: The largest scope checked by default: airflow-inproc checks it in under a minute here, with 2 workers.
DEFAULT_DEPTH = 3


@attrs.frozen
class Coverage:
    scenarios: int
    states: int
    depth: int
    seconds: float
    explained: dict = attrs.field(factory=dict, eq=False)
    failures: tuple = ()
    #: Runs the target cannot play, by why (its ``NotImplementedError``: a run the release's binding cannot live, such
    #: as a SIGTERM to a task runner that installs no handler for it): left out, and counted.
    unplayable: dict = attrs.field(factory=dict, eq=False)
    #: Of an undeclared coordinator target: its runs by the SDK profiles that explain them (``Target.explains``; the
    #: names joined, the contract among them), counted.
    profiles: dict = attrs.field(factory=dict, eq=False)


#: What of the model's state the futures depend on: every field of ``Supervisor`` but its history of calls and replies
#: (and the server and the client's tries, which ``_abstract`` adds as they matter).
_STATE = operator.attrgetter(*(f.name for f in attrs.fields(model_supervisor.Supervisor)
                               if f.name not in ("server", "calls", "replies", "execution_api_retries")))


_CALL = operator.attrgetter("call")


def _abstract(sup: model_supervisor.Supervisor, remaining: int) -> tuple:
    """The state less its history (``_STATE``), as one value: the server with the faults armed on different calls in
    one order, and the client's tries counted only as far as they can still matter.

    Each call meets only its own faults, in the order they were armed (``model.server.Server``), and the supervisor
    never sees a fault armed (the world arms it, at a wake-up where nothing else happens): the order between faults
    on different calls changes nothing that follows, for the model and for the real supervisor alike.

    Within ``remaining`` more events no request can fail more often than once per fault armed now or
    later (a permanent fault fails every try, whatever their number), so any number of tries beyond
    that behaves alike from here on, the closing call included.
    """
    server = sup.server
    faults = server.faults
    if len(faults) > 1:
        in_call_order = tuple(sorted(faults, key=_CALL))
        if in_call_order != faults:
            server = replace(server, faults=in_call_order)
    return (server, *_STATE(sup), min(sup.execution_api_retries, len(faults) + remaining + 1))


def enumerate_scenarios(depth: int, contexts=CONTEXTS, exits=EXITS, tries=TRIES, alphabet=EVENTS,
                        deduplicated: bool = True, prefix: tuple = (), release: Release = SPECIFIED
                        ) -> Iterator[tuple[Scenario, object, model_supervisor.Supervisor]]:
    """Every scenario in scope (``prefix``, then up to ``depth`` events of ``alphabet``), each with the abstract model
    state it reaches and the model's whole state once its events are over (``model.supervisor.close`` ends it);
    ``deduplicated`` False: every sequence, whatever state it reaches. ``release``: the model's, as in ``run``."""
    for context in contexts:
        frontier, seen = [], set()
        for n in tries:
            start = model_supervisor.start(Scenario(context, (), 0, n), release)
            for event in prefix:
                start = model_supervisor.monitor_step(start, event)
            key = _abstract(start, depth)
            if key not in seen:
                seen.add(key)
                frontier.append((tuple(prefix), start, key))
        for level in range(depth + 1):
            next_frontier = []
            for events, sup, key in frontier:
                for code in exits:
                    yield Scenario(context, events, code, sup.execution_api_retries), key, sup
                if level == depth or not sup.alive:
                    continue
                for event in alphabet:
                    after = model_supervisor.monitor_step(sup, event)
                    key = _abstract(after, depth - level - 1)
                    if not deduplicated or key not in seen:
                        seen.add(key)
                        next_frontier.append(((*events, event), after, key))
            frontier = next_frontier


def check_exhaustively(target_name: str, depth: int | None = None, workers: int = 2,
                       max_failures: int = 5, kind: str = "supervisor", shard: tuple[int, int] = (0, 1)) -> Coverage:
    """Check every run of ``kind``'s scope on the target, ``workers`` processes at once (the jobs: ``shares``);
    ``depth`` None: the scope's default. ``shard`` (k, n): only the k-th of n parts of the scope (of each run context,
    every n-th run from the k-th on), for n machines to check it between them (``finalstate check --shard``); the
    distinct states are counted of the whole scope all the same."""
    began = time.monotonic()
    depth = SCOPES[kind].default_depth if depth is None else depth
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard {k} of {n}: there is none")
    jobs = [(target_name, kind, context, depth, max_failures, (k + n * first, n * every), first == 0)
            for context, (first, every) in shares(CONTEXTS, workers)]
    if workers > 1:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                    initializer=_worker_started) as pool:
            parts = list(pool.map(_check_share, jobs))
    else:
        parts = [_check_share(job) for job in jobs]
    explained: dict[str, int] = {}
    unplayable: dict[str, int] = {}
    profiles: dict[str, int] = {}
    for part in parts:
        for counted, into in ((part.explained, explained), (part.unplayable, unplayable), (part.profiles, profiles)):
            for key, n in counted.items():
                into[key] = into.get(key, 0) + n
    return Coverage(sum(p.scenarios for p in parts), sum(p.states for p in parts), depth, time.monotonic() - began,
                    explained, tuple(f for p in parts for f in p.failures)[:max_failures], unplayable, profiles)


def shares(contexts: tuple, workers: int) -> list[tuple[RunContext, tuple[int, int]]]:
    """How the contexts are shared out between ``workers`` processes: ``(context, (k, n))``, every n-th scenario of the
    context from the k-th on (``check_in_scope``'s ``share``), in the order the workers take them.

    A context is checked whole as far as the contexts divide evenly between the workers; each one left over is split
    into one share per worker, last, so that the workers end together (five contexts on two: four whole, one in two
    halves). A share enumerates its whole context again to find its scenarios, about a tenth of the cost of checking
    them all, so a context is split only where the workers would otherwise wait.
    """
    workers = max(1, workers)
    whole = len(contexts) - len(contexts) % workers
    return ([(context, (0, 1)) for context in contexts[:whole]]
            + [(context, (k, workers)) for context in contexts[whole:] for k in range(workers)])


def _worker_started() -> None:
    """A worker dies of SIGINT (Ctrl-C reaches the whole process group; the parent reports it) instead of raising
    KeyboardInterrupt wherever it is."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def _collecting_young_garbage_only():
    """While a scope is checked: what exists already is left out of garbage collection (``gc.freeze``), and full
    collections are put off (they would walk the scope's growing set of states over and over); the young generations
    are still collected, as often as every 50,000 allocations. A checked attempt leaves no cycle behind
    (``impl.supervisor_inproc``: ``Attempt.release``)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _check_share(job) -> Coverage:
    target_name, kind, context, depth, max_failures, share, counts_states = job
    target = load_target(target_name, kind)
    try:
        return check_in_scope(target, depth, (context,), max_failures, share, counts_states)
    finally:
        target.close()


def in_scope(depth: int, contexts=CONTEXTS, release: Release = SPECIFIED
             ) -> Iterator[tuple[Scenario, object, model_supervisor.Supervisor]]:
    """The scope: every scenario up to ``depth`` events, then every heartbeat sequence up to ``HEARTBEAT_DEPTH``, from a
    runtime that dies of SIGTERM and from one that ignores it (the failed-heartbeats kill must escalate)."""
    yield from enumerate_scenarios(depth, contexts, release=release)
    for prefix in ((), (IgnoreSigterm(),)):
        yield from enumerate_scenarios(HEARTBEAT_DEPTH, contexts, alphabet=HEARTBEAT_EVENTS, deduplicated=False,
                                       prefix=prefix, release=release)


# -- the Python task runner's scope ---------------------------------------------------------------

#: The retry policies of the task runner's scope: none, each action, and a RETRY bare, with a delay and a reason, and
#: with the longest delay and a reason one past the 500 characters ``_finalize_task_failure`` keeps.
SCOPE_POLICIES = (None, Policy("default"), Policy("fail"), Policy("raises"), Policy("interrupted"), Policy("retry"),
                  Policy("retry", 0, "flaky"), Policy("retry", 3600, "r" * 600), Policy("retry_int_delay", 0))
#: How many of the task's features (``model.runtime.FEATURES``) a try of the runtime scope meets at once, by default.
RUNTIME_DEPTH = 1


def runtime_scope(depth: int = RUNTIME_DEPTH, contexts=CONTEXTS, release: Release = SPECIFIED
                  ) -> Iterator[tuple[RuntimeRun, object, object]]:
    """Every try of the Python task runner in scope, with the model's decision (``python_runtime`` for ``release``),
    twice: as the state that de-duplicates it and as what the target must answer.

    The scope: every run context of ``contexts``, task outcome, channel mode, retry policy of ``SCOPE_POLICIES`` and
    set of up to ``depth`` features. A try the release cannot have (``model.runtime.impossible_on``) is left out. Of
    the policies of one (context, outcome, channel, features), only those are kept whose decision, or the invariants'
    verdict on it, differs from an earlier one's: the runner consults its task's retry policy only on the failure
    path, which is where the model's decision shows what the policy changed, and a runner that agrees with the model
    on one of them is judged alike on the others. A runner that read its policy elsewhere would go unseen here; the
    Hypothesis search draws every policy with every outcome.

    A task whose execution timeout runs out never reaches its outcome (``model.runtime.reached_outcome``): with that
    feature the scope takes one outcome, the task that would have returned, not every outcome again.
    """
    feature_sets = [frozenset()]
    for size in range(1, depth + 1):
        feature_sets += [frozenset(c) for c in itertools.combinations(FEATURES, size)]
    for context in contexts:
        for outcome in PYTHON_OUTCOMES:
            for comms in COMMS_MODES:
                for features in feature_sets:
                    if EXECUTION_TIMEOUT in features and outcome != RETURN:
                        continue
                    decided = set()
                    for policy in SCOPE_POLICIES:
                        run = RuntimeRun(context, outcome, policy, comms, features)
                        if impossible_on(run, release) is not None:
                            continue
                        decision = python_runtime(run, release)
                        judged = (decision, runtime_violations(run, decision))
                        if judged in decided:
                            continue
                        decided.add(judged)
                        yield run, judged, decision


# -- a coordinator runtime's scope ---------------------------------------------------------------------

#: How many events of its world a coordinator try of the scope meets while its task runs, by default: each event
#: once, with every outcome, run context, number of client tries, a runtime that traps SIGTERM or not, and the
#: success overtime or not. ``finalstate check --exhaustive 2`` takes every pair (about ten times as many runs).
COORDINATOR_DEPTH = 1


def _dispositions(runtimes: tuple[CoordinatorRuntime, ...]) -> tuple[tuple, ...]:
    """The SIGTERM dispositions (``model.scenario`` events) the world meets ``runtimes`` with, while they wait and while
    their task runs, each once, in a fixed order."""
    seen: list[tuple] = []
    for runtime in runtimes:
        for phase in (runtime.sigterm_waiting, runtime.sigterm_running):
            if DISPOSITIONS[phase] not in seen:
                seen.append(DISPOSITIONS[phase])
    return tuple(seen)


def coordinator_scope(depth: int = COORDINATOR_DEPTH, contexts=CONTEXTS, release: Release = SPECIFIED,
                      runtimes: tuple[CoordinatorRuntime, ...] = (CONTRACT,)
                      ) -> Iterator[tuple[CoordinatorRun, object, object]]:
    """Every coordinator try in scope, with the model's attempt of the first of ``runtimes`` (the runtime a target is
    declared to be: ``model.coordinator.coordinator_attempt`` for ``release``), twice: as the decision counted and as
    what the target must observe.

    The world while the task runs is every sequence of up to ``depth`` events of ``scenarios.COORDINATOR_WORLD``, from
    a runtime that traps SIGTERM and from one that does not, with each number of client tries of ``TRIES``; a
    sequence is extended only from a supervisor state not reached before (faults on different calls taken in any
    order as one) under every SIGTERM disposition any of ``runtimes`` meets the world with (``_dispositions``: dies,
    ignores, handles and carries on): whatever the runtime then does, it is told the same and meets the same. Each is
    lived with every outcome, with and without the success overtime after the frame (a ``CANCELLABLE`` task's frame, if
    any, comes inside a kill, where no overtime is checked: without).
    """
    dispositions = _dispositions(runtimes)
    for context in contexts:
        for traps in (False, True):
            start = (IgnoreSigterm(),) if traps else ()
            seen: set = set()
            frontier = []
            for tries in TRIES:
                sups = []
                for disposition in dispositions:
                    sup = model_supervisor.start(Scenario(context, (), 0, tries, rendered_map_index=None), release)
                    for event in (*disposition, *start):
                        sup = model_supervisor.monitor_step(sup, event)
                    sups.append(sup)
                key = tuple(_abstract(sup, depth) for sup in sups)
                if key not in seen:
                    seen.add(key)
                    frontier.append((start, tuple(sups), key))
            for level in range(depth + 1):
                next_frontier = []
                for events, sups, key in frontier:
                    for outcome in COORDINATOR_OUTCOMES:
                        for after in ((),) if outcome == CANCELLABLE else ((), (Overtime(),)):
                            run = CoordinatorRun(context, outcome, events, after, sups[0].execution_api_retries)
                            attempt = coordinator_attempt(run, runtimes[0], release)
                            yield run, attempt, attempt
                    if level == depth or not any(sup.alive for sup in sups):
                        continue
                    for event in COORDINATOR_WORLD:
                        after_event = tuple(model_supervisor.monitor_step(sup, event) if sup.alive else sup
                                            for sup in sups)
                        key = tuple(_abstract(sup, depth - level - 1) for sup in after_event)
                        if key not in seen:
                            seen.add(key)
                            next_frontier.append(((*events, event), after_event, key))
                frontier = next_frontier


@attrs.frozen
class Scope:
    """A kind's complete small scope: ``runs(depth, contexts, release, runtimes)`` yields ``(run, state, lived)`` (of a
    coordinator target, for the runtimes it may be: ``runtimes_of``; the other kinds' scopes take no runtime),
    ``expected`` makes what the target must observe of a run from what the model lived (``lived``),
    ``describe(depth)`` says what the scope is."""

    default_depth: int
    runs: Callable[..., Iterator[tuple]]
    expected: Callable[[object, object], object]
    describe: Callable[[int], str]


SCOPES: dict[str, Scope] = {
    "supervisor": Scope(
        DEFAULT_DEPTH, lambda depth, contexts, release, runtimes: in_scope(depth, contexts, release),
        lambda scenario, lived: model_supervisor.close(lived, scenario.exit_code),
        lambda depth: f"every scenario of up to {depth} events ({len(EVENTS)} events, {len(CONTEXTS)} run contexts, "
                      f"execution_api_retries {' and '.join(map(str, TRIES))}, {len(EXITS)} exits), de-duplicated by "
                      f"the model's state, and every sequence of up to {HEARTBEAT_DEPTH} heartbeat answers"),
    "runtime": Scope(
        RUNTIME_DEPTH, lambda depth, contexts, release, runtimes: runtime_scope(depth, contexts, release),
        lambda run, lived: lived,
        lambda depth: f"every try of the task runner: {len(PYTHON_OUTCOMES)} outcomes × {len(SCOPE_POLICIES)} retry "
                      f"policies × {len(CONTEXTS)} run contexts × {len(COMMS_MODES)} channel modes × up to {depth} of "
                      f"{len(FEATURES)} features, the policies de-duplicated by the model's decision and the invariants' verdict, "
                      f"a task whose execution timeout runs out with one outcome (it reaches none)"),
    "coordinator": Scope(
        COORDINATOR_DEPTH, coordinator_scope, lambda run, lived: lived,
        lambda depth: f"every coordinator try: {len(COORDINATOR_OUTCOMES)} outcomes × up to {depth} of "
                      f"{len(COORDINATOR_WORLD)} events of its world while the task runs, a runtime trapping SIGTERM "
                      f"or not, the overtime or not, {len(CONTEXTS)} run contexts, execution_api_retries "
                      f"{' and '.join(map(str, TRIES))}, de-duplicated by the supervisor model's state"),
}


def runtimes_of(target) -> tuple[CoordinatorRuntime, ...]:
    """The coordinator runtimes ``target`` may be: the SDK profile's it is declared to be, or, undeclared, the contract
    and every profile's (``model.sdks.PROFILES``); the one the model's expectation is of first."""
    from model.sdks import PROFILES

    if getattr(target, "profile", None):
        return (PROFILES[target.profile].runtime,)
    return (CONTRACT, *(p.runtime for p in PROFILES.values()))


def check_in_scope(target, depth: int | None = None, contexts=CONTEXTS, max_failures: int = 5,
                   share: tuple[int, int] = (0, 1), counts_states: bool | None = None) -> Coverage:
    """Check every run of ``contexts`` in the scope of the target's kind (``SCOPES``; ``depth`` None: its default) on a
    loaded ``target``, in this process: conformance with the model (for ``target.release``, as the enumeration left
    it), then every invariant of the kind, known findings counted (``explained``); a run the target cannot play is
    left out and counted (``unplayable``). A target that lives tries ahead (``Target.live_ahead``) is handed every run
    of the share first. ``share`` (k, n): only every n-th run, from the k-th on. ``states`` counts the distinct model
    states (decisions) of the whole scope where ``counts_states`` (None: in the first share, k 0), and is 0 in the
    others."""
    began = time.monotonic()
    scope = SCOPES[target.kind]
    depth = scope.default_depth if depth is None else depth
    if target.scope_run is not None:
        target = attrs.evolve(target, run=target.scope_run())
    invariants = KINDS[target.kind].invariants
    known = tuple(f for f in ALL_FINDINGS if f.kind == target.kind and f.about(target.name, target.profile)
                  and f.stands_on(target.release))
    explained: dict[str, int] = {}
    unplayable: dict[str, int] = {}
    profiles: dict[str, int] = {}
    failures: list[str] = []
    states: set = set()
    count = 0
    first, every = share
    counts_states = first == 0 if counts_states is None else counts_states

    def count_profiles(names: tuple[str, ...]) -> None:
        key = ", ".join(names)
        profiles[key] = profiles.get(key, 0) + 1

    def this_share(runs):
        for index, (run, state, lived) in enumerate(runs):
            if counts_states:
                states.add(state)
            if index % every == first:
                yield run, lived

    runs = this_share(scope.runs(depth, contexts, target.release, runtimes_of(target)))
    live_ahead = getattr(target, "live_ahead", None)
    if live_ahead is not None:  # every try of the share starts now, several at once where the target can
        runs = list(runs)
        live_ahead(run for run, _ in runs)
    with _collecting_young_garbage_only():
        for run, lived in runs:
            count += 1
            try:
                expected = scope.expected(run, lived)
                # The model as its own target observes what it expects (the enumeration's state ends as the model
                # lives the run afresh: tests/test_exhaustive.py), so it is not lived a second time.
                observed = (expected if target.run is target.reference
                            else check_conformance(target, run, expected, count_profiles))
                check_observation(target, run, observed, invariants, known,
                                  lambda f: explained.__setitem__(f.id, explained.get(f.id, 0) + 1))
            except NotImplementedError as why:
                count -= 1
                reason = str(why).split(";")[0]
                unplayable[reason] = unplayable.get(reason, 0) + 1
            except (Disagreement, InvariantViolation) as failure:
                failures.append(str(failure))
                if len(failures) >= max_failures:
                    break
    return Coverage(count, len(states), depth, time.monotonic() - began, explained, tuple(failures), unplayable,
                    profiles)
