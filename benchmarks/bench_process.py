"""How fast real-process scenarios go: the naive spawn, the fork path, the fork floor, and the checker itself.

    python benchmarks/bench_process.py [--seconds 10] [--workers 2]

Prints scenarios per second for:

- ``naive``: ``airflow-process`` launching ``python impl/wire/scripted_runtime.py`` afresh per attempt (one worker);
- ``fork``: ``airflow-process`` on its default path, the compiled launcher and the fork server,
  with one worker and with ``--workers`` workers (separate processes, as pytest-xdist runs them);
- ``checker``: the checker's own state machine (conformance: model and target on every
  scenario, Hypothesis generating) on ``airflow-process`` in ``--workers`` workers, which is what
  ``pytest properties/ --target airflow-process -n 2`` sustains;
- ``fork floor``: ``os.fork()`` + ``_exit`` + ``waitpid`` of a process that has imported the
  supervisor, the cost no per-attempt process can go below.

Scenarios for the first two are a fixed sample (``impl.frontdoor.scenarios.corpus``); after each
of those runs the census of the attempts' process (``impl.supervisor_process.census``) is compared
with the one before it, and anything still held is printed.
Not a test: nothing is asserted. The figures depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _run_for(seconds: float, spawn: str, offset: int, result):
    from impl.frontdoor.scenarios import corpus
    from impl.supervisor_process import helper
    from impl.supervisor_process import target as process

    scenarios = corpus(400, seed=20260101)
    process.supervise_script(process.compile_scenario(scenarios[0]), scenarios[0].context, spawn=spawn)  # warm up
    before = process.stats()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s = scenarios[(offset + done) % len(scenarios)]
        process.supervise_script(process.compile_scenario(s), s.context, spawn=spawn)
        done += 1
    elapsed = time.perf_counter() - start
    after = process.stats()
    leaked = {k: after[k] - before[k] for k in ("fds", "sockets", "threads")}
    result.put((done, elapsed, leaked))
    helper.close()


def _checker_for(seconds: float, seed: int, result):
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from impl.frontdoor.registry import load_target
    from impl.frontdoor.report import check_conformance
    from impl.frontdoor.scenarios import machine_for

    from model.scenario import Scenario

    target = load_target("airflow-process")
    target.run(Scenario.from_text("send SucceedTask; exit 0"))  # warm up: the helper, the fork server
    count = [0]

    def check(scenario):
        count[0] += 1
        check_conformance(target, scenario)

    machine = machine_for("Bench", check)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        run_state_machine_as_test(machine, settings=settings(max_examples=20, stateful_step_count=30, deadline=None,
                                                             database=None, derandomize=False))
    result.put((count[0], time.perf_counter() - start, {}))
    target.close()


def parallel(fn, workers: int, *args) -> float:
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, i * 97, result) if fn is _run_for else (*args, i, result))
             for i in range(workers)]
    for p in procs:
        p.start()
    totals = [result.get() for _ in procs]
    for p in procs:
        p.join()
    leaks = [leaked for _, _, leaked in totals if any(leaked.values())]
    if leaks:
        print(f"  held after the run, beyond before it (census of the attempts' process): {leaks}")
    return sum(n / t for n, t, _ in totals)


def fork_floor(seconds: float) -> float:
    import airflow.sdk.execution_time.supervisor  # noqa: F401  the size of the process being forked

    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each measurement runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.seconds:g}s per measurement", flush=True)
    print(f"naive spawn (exec python runtime), 1 worker : {parallel(_run_for, 1, args.seconds, 'exec'):7.1f} scenarios/s", flush=True)
    print(f"fork path, 1 worker                         : {parallel(_run_for, 1, args.seconds, 'fork'):7.1f} scenarios/s", flush=True)
    print(f"fork path, {args.workers} workers                        : "
          f"{parallel(_run_for, args.workers, args.seconds, 'fork'):7.1f} scenarios/s", flush=True)
    print(f"checker (conformance, Hypothesis), {args.workers} workers: "
          f"{parallel(_checker_for, args.workers, args.seconds):7.1f} scenarios/s", flush=True)
    print(f"fork floor (fork+exit+wait of the supervisor process): {fork_floor(args.seconds):7.1f} forks/s", flush=True)


if __name__ == "__main__":
    main()
