"""Scenarios per second on each supervisor target with ``--server model`` and ``--server airflow``, side by side.

    .venv/bin/python benchmarks/bench_server.py [--seconds 20] [--scenarios 400] [--targets airflow-inproc,airflow-process]
    .venv/bin/python benchmarks/bench_server.py --profile 60    # where an airflow-process attempt's CPU goes

One run, the same seeded corpus (``impl.search.scenarios.corpus``, as ``bench_supervisor.py``)
for every cell: for each target and server, one worker and two workers. A worker is a process of
its own, as a pytest-xdist worker is: it loads the target (on ``airflow``: its own server, its own
database copy; ``airflow-process`` also its own helper and uvicorn), lives one scenario to warm
up, waits until every worker of the cell is ready, then lives the corpus in a loop for
``--seconds``, calling the target's ``run`` (the observation; the model beside it costs little).
A cell's rate is the scenarios all its workers lived over the longest worker's time. The start
(server, database copy, app warm-up) is timed apart, once per worker.

``--profile N``: N scenarios on ``airflow-process --server airflow`` in one worker, then the CPU
time of each thread of the process the attempts run in (psutil's per-thread times): the
supervisor's thread (the supervision, the client, the row set-up and read-back through the ORM),
uvicorn's thread (the Execution API app), the app's worker threads; beside cProfile's top
functions of the supervisor's thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _scenarios(n: int):
    from impl.search.scenarios import corpus

    return corpus(n)


def worker(target_name: str, server: str, seconds: float, n: int, index: int) -> None:
    """One worker: load, warm up, say ``ready``, wait for ``go`` on stdin, run; print the result as JSON."""
    from impl.targets.registry import load_target

    os.environ["FINALSTATE_SERVER"] = server
    scenarios = _scenarios(n)
    scenarios = scenarios[index::2] + scenarios[1 - index::2] if index < 2 else scenarios
    start = time.perf_counter()
    target = load_target(target_name)
    target.run(scenarios[0])  # the server, database copy, app and helper start here
    started = time.perf_counter() - start
    print("ready", flush=True)
    sys.stdin.readline()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in scenarios:
            target.run(s)
            done += 1
            if time.perf_counter() - t0 >= seconds:
                break
    elapsed = time.perf_counter() - t0
    target.close()
    print(json.dumps({"done": done, "elapsed": elapsed, "start": started}), flush=True)


def cell(target_name: str, server: str, workers: int, seconds: float, n: int) -> dict:
    """Run ``workers`` worker processes together; their summed scenarios over the longest worker's time."""
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", target_name, server, str(seconds), str(n), str(i)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(workers)]
    try:
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a {target_name} --server {server} worker did not start (exit {p.wait()})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 300)
            if p.returncode != 0:
                raise RuntimeError(f"a {target_name} --server {server} worker failed (exit {p.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {"rate": sum(r["done"] for r in results) / max(r["elapsed"] for r in results),
            "start": max(r["start"] for r in results), "done": sum(r["done"] for r in results)}


def _profiled(n: int) -> str:
    """In the helper: ``n`` airflow-process attempts on the real server; CPU per thread and cProfile's top functions."""
    import cProfile
    import io
    import pstats
    import threading

    import psutil

    from impl.supervisor_process import target as process

    scenarios = _scenarios(n)
    process.supervise_recorded(process.compile_scenario(scenarios[0]), scenarios[0].context, server="airflow")

    def cpu_by_thread() -> dict[str, float]:
        names = {t.native_id: t.name for t in threading.enumerate()}
        found: dict[str, float] = {}
        for t in psutil.Process().threads():
            name = names.get(t.id, "other (not a Python thread)")
            found[name] = found.get(name, 0.0) + t.user_time + t.system_time
        return found

    before, wall = cpu_by_thread(), time.perf_counter()
    profile = cProfile.Profile()
    profile.enable()
    for s in scenarios:
        process.supervise_recorded(process.compile_scenario(s), s.context, server="airflow")
    profile.disable()
    wall, after = time.perf_counter() - wall, cpu_by_thread()
    lines = [f"{n} attempts in {wall:.1f} s wall ({n / wall:.1f}/s, cProfile on the supervisor's thread); "
             "CPU per attempt, by thread of the process the attempts run in:"]
    for name in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0))):
        spent = after[name] - before.get(name, 0.0)
        if spent > 0.001 * n:
            lines.append(f"  {spent / n * 1000:7.1f} ms  {name}")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(r"finalstate|airflow_api|airflow_attempt|real_server|supervise|open_attempt|create_dagrun|_subprocess|fork|census|psutil", 40)
    return "\n".join(lines) + "\n" + text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed run per cell")
    parser.add_argument("--scenarios", type=int, default=400, help="size of the seeded corpus")
    parser.add_argument("--targets", default="airflow-inproc,airflow-process")
    parser.add_argument("--servers", default="model,airflow")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N attempts of airflow-process on the real server")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, server, seconds, n, index = args.worker
        return worker(name, server, float(seconds), int(n), int(index))
    if args.profile:
        from benchmarks import bench_server  # importable by name in the helper, unlike __main__
        from impl.supervisor_process import helper

        try:
            print(helper.in_helper(bench_server._profiled, args.profile))
        finally:
            helper.close()
        return

    scenarios = _scenarios(args.scenarios)
    print(f"corpus: {len(scenarios)} scenarios, mean {sum(len(s.events) for s in scenarios) / len(scenarios):.1f} "
          f"events each; {args.seconds:g} s per cell; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'target':18} {'server':8} {'1 worker':>12} {'2 workers':>12}   start (server, database copy, warm-up)")
    for target_name in args.targets.split(","):
        for server in args.servers.split(","):
            one, two = (cell(target_name, server, w, args.seconds, args.scenarios) for w in (1, 2))
            print(f"{target_name:18} {server:8} {one['rate']:8.1f} /s  {two['rate']:8.1f} /s   {one['start']:.1f} s",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f} (the machine's two cores are shared)")


if __name__ == "__main__":
    main()
