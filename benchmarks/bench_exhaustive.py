"""The exhaustive scope as ``finalstate check --exhaustive`` runs it: wall time, scenarios/s, and the workers' CPU.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_exhaustive.py [--target airflow-inproc] [--depth 3] [--workers 2]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_exhaustive.py --target airflow-task-runner --depth 4   # any kind
    PYTHONPATH=. build/envs/1.0.3/bin/python benchmarks/bench_exhaustive.py    # on another task-sdk release

The wall time is the figure wanted, but on a shared machine it follows the load; the CPU the workers spent
(``os.times`` of the reaped children) follows it far less, so two trees are best compared by that, run
alternately. The printed summary (scenarios, states, findings, failures) must not change with speed work.
"""

from __future__ import annotations

import argparse
import os

from impl.frontdoor.cli import kind_of_target
from impl.search.exhaustive import SCOPES, check_exhaustively


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="airflow-inproc")
    parser.add_argument("--depth", type=int, help="default: the scope's (the supervisor's: 3)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    kind = kind_of_target(args.target)  # as finalstate check: the workers fork with the target imported
    depth = SCOPES[kind].default_depth if args.depth is None else args.depth
    before = os.times()
    found = check_exhaustively(args.target, depth, workers=args.workers, kind=kind)
    after = os.times()
    cpu = (after.children_user + after.children_system - before.children_user - before.children_system
           if args.workers > 1 else after.user + after.system - before.user - before.system)
    print(f"{found.scenarios} scenarios, {found.states} states, depth {found.depth}, {args.workers} workers: "
          f"{found.seconds:.1f} s wall, {found.scenarios / found.seconds:,.0f} scenarios/s, {cpu:.1f} s CPU")
    print("explained:", ", ".join(f"{k} {v}" for k, v in sorted(found.explained.items())))
    print(f"{len(found.failures)} failures")


if __name__ == "__main__":
    main()
