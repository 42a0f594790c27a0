"""Exhaustive small scopes: every supervisor scenario up to N events, de-duplicated by the model's state.

``enumerate_scenarios(depth)`` walks the event sequences breadth first, from each run context of
``CONTEXTS`` with each number of client tries of ``TRIES``: a prefix is extended by every event of
the alphabet only if the model's abstract state after it (``model.supervisor``'s ``Supervisor``
less its history of calls and replies) has not been reached before; two prefixes that reach one
state have the same futures in the model. Every prefix, with every exit of ``EXITS``, is a scenario
to check; ``in_scope`` adds every heartbeat sequence up to ``HEARTBEAT_DEPTH``, not de-duplicated.
``check_exhaustively`` checks them all on a target, in worker processes (each run context whole
where the contexts divide evenly between the workers, split between them where not: ``shares``):
conformance with the model and every invariant (violations that a registered finding explains
are counted, not failures). Hypothesis searches beyond this scope.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from typing import Iterator

import attrs

from impl.frontdoor.findings import FINDINGS
from impl.frontdoor.registry import load_target
from impl.frontdoor.scenarios import EVENTS
from impl.frontdoor.report import Disagreement, InvariantViolation, check_conformance, check_observation
from model import supervisor as model_supervisor
from model.frozen import replace
from model.invariants import SUPERVISOR_INVARIANTS
from model.release import SPECIFIED, Release
from model.scenario import (DEFAULT_EXECUTION_API_RETRIES, HEARTBEAT_ERROR, HEARTBEAT_NO_ANSWER, HEARTBEAT_OK,
                            Heartbeat, IgnoreSigterm, RunContext, Scenario)

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
#: A clean exit, a failure, a death by a signal the supervisor does not send.
EXITS = (0, 1, -9)
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


def _abstract(sup: model_supervisor.Supervisor, remaining: int) -> model_supervisor.Supervisor:
    """The state less its history; the client's tries counted only as far as they can still matter.

    Within ``remaining`` more events no request can fail more often than once per fault armed now or
    later (a permanent fault fails every try, whatever their number), so any number of tries beyond
    that behaves alike from here on, the closing call included.
    """
    tries = min(sup.execution_api_retries, len(sup.server.faults) + remaining + 1)
    return replace(sup, calls=(), replies=(), execution_api_retries=tries)


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


def check_exhaustively(target_name: str, depth: int = DEFAULT_DEPTH, workers: int = 2,
                       max_failures: int = 5) -> Coverage:
    """Check every scenario in scope on the target, ``workers`` processes at once (the jobs: ``shares``)."""
    began = time.monotonic()
    jobs = [(target_name, context, depth, max_failures, share) for context, share in shares(CONTEXTS, workers)]
    if workers > 1:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_check_share, jobs))
    else:
        parts = [_check_share(job) for job in jobs]
    explained: dict[str, int] = {}
    for part in parts:
        for key, n in part.explained.items():
            explained[key] = explained.get(key, 0) + n
    return Coverage(sum(p.scenarios for p in parts), sum(p.states for p in parts), depth, time.monotonic() - began,
                    explained, tuple(f for p in parts for f in p.failures)[:max_failures])


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


def _check_share(job) -> Coverage:
    target_name, context, depth, max_failures, share = job
    target = load_target(target_name)
    try:
        return check_in_scope(target, depth, (context,), max_failures, share)
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


def check_in_scope(target, depth: int = DEFAULT_DEPTH, contexts=CONTEXTS, max_failures: int = 5,
                   share: tuple[int, int] = (0, 1)) -> Coverage:
    """Check every scenario of ``contexts`` in scope (``in_scope``) on a loaded ``target``, in this process:
    conformance with the model (for ``target.release``, as the enumeration left it), then every invariant, known
    findings counted (``explained``). ``share`` (k, n): only every n-th scenario, from the k-th on; ``states``
    counts the distinct abstract states of the whole scope in the first share, and is 0 in the others."""
    began = time.monotonic()
    known = tuple(f for f in FINDINGS if target.name in f.targets and f.stands_on(target.release))
    explained: dict[str, int] = {}
    failures: list[str] = []
    states: set = set()
    count = 0
    first, every = share
    for index, (scenario, state, lived) in enumerate(in_scope(depth, contexts, target.release)):
        if first == 0:
            states.add(state)
        if index % every != first:
            continue
        count += 1
        try:
            observed = check_conformance(target, scenario, model_supervisor.close(lived, scenario.exit_code))
            check_observation(target, scenario, observed, SUPERVISOR_INVARIANTS, known,
                              lambda f: explained.__setitem__(f.id, explained.get(f.id, 0) + 1))
        except (Disagreement, InvariantViolation) as failure:
            failures.append(str(failure))
            if len(failures) >= max_failures:
                break
    return Coverage(count, len(states), depth, time.monotonic() - began, explained, tuple(failures))
