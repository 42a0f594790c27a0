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
  supervisor, the cost no per-attempt process can go below;
- ``cmd: go-runtime``: coordinator tries of ``build/runtimes/go-runtime`` (``scripts/build-runtimes``)
  under the real supervisor, with one worker and with ``--workers`` workers, beside the floor of
  starting and reaping a bare ``true`` process from the same kind of worker.

Scenarios for the first two are a fixed sample (``impl.search.scenarios.corpus``); after each
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
    from impl.search.scenarios import corpus
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

    from impl.targets.registry import load_target
    from impl.search.report import check_conformance
    from impl.search.scenarios import machine_for, run_machine

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
        run_machine(machine, settings(max_examples=20, stateful_step_count=30, deadline=None,
                                                             database=None, derandomize=False))
    result.put((count[0], time.perf_counter() - start, {}))
    target.close()


GO_RUNTIME = Path(__file__).resolve().parent.parent / "build" / "runtimes" / "go-runtime"


def _coordinator_for(seconds: float, offset: int, result):
    from impl.coordinator.target import runner
    from impl.supervisor_process import helper
    from model.coordinator import CANCELLABLE, COORDINATOR_OUTCOMES, CoordinatorRun
    from model.scenario import RunContext

    run = runner([str(GO_RUNTIME)])
    runs = [CoordinatorRun(RunContext.from_server(t, 1), o) for t in (1, 2) for o in COORDINATOR_OUTCOMES
            if o != CANCELLABLE]  # a task that ends by itself: a cancellable one's try is time running on, then hung
    run(runs[0])  # warm up: the helper, the client
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(runs[(offset + done) % len(runs)])
        done += 1
    result.put((done, time.perf_counter() - start, {}))
    helper.close()


def _true_for(seconds: float, offset: int, result):
    import subprocess

    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        subprocess.run(["true"], check=True)
        done += 1
    result.put((done, time.perf_counter() - start, {}))


def parallel(fn, workers: int, *args) -> float:
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, i * 97, result))
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
    parser.add_argument("--only-cmd", action="store_true", help="measure only the cmd: go-runtime lines and their floor")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.seconds:g}s per measurement", flush=True)
    if not args.only_cmd:
        print(f"naive spawn (exec python runtime), 1 worker : {parallel(_run_for, 1, args.seconds, 'exec'):7.1f} scenarios/s", flush=True)
        print(f"fork path, 1 worker                         : {parallel(_run_for, 1, args.seconds, 'fork'):7.1f} scenarios/s", flush=True)
        print(f"fork path, {args.workers} workers                        : "
              f"{parallel(_run_for, args.workers, args.seconds, 'fork'):7.1f} scenarios/s", flush=True)
        print(f"checker (conformance, Hypothesis), {args.workers} workers: "
              f"{parallel(_checker_for, args.workers, args.seconds):7.1f} scenarios/s", flush=True)
        print(f"fork floor (fork+exit+wait of the supervisor process): {fork_floor(args.seconds):7.1f} forks/s", flush=True)
    if GO_RUNTIME.exists():
        for workers in sorted({1, args.workers}):
            print(f"cmd: go-runtime, {workers} worker(s)                 : "
                  f"{parallel(_coordinator_for, workers, args.seconds):7.1f} tries/s", flush=True)
        print(f"floor: spawn and reap `true`, {args.workers} worker(s)     : "
              f"{parallel(_true_for, args.workers, args.seconds):7.1f} processes/s", flush=True)
    else:
        print(f"cmd: go-runtime: not built ({GO_RUNTIME}); run scripts/build-runtimes")


if __name__ == "__main__":
    main()
