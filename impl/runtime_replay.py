"""Replay one runtime try, or one coordinator-mode try, on a target and print what came of it.

``python -m impl.runtime_replay --target airflow-task-runner 'try_number=1 max_tries=1 should_retry=true;
task raises AirflowException; policy none; comms ok'`` prints the model's answer, the target's, what the
supervisor model records of it, and the runtime invariants it breaks. A coordinator run
(``'try_number=1 max_tries=1 should_retry=true; task error'``) is replayed on a coordinator target
(``reference-runtime``) end to end. Exit status: 0 if the target agrees with the model and breaks no
invariant, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from model import runtime as model_runtime
from model.runtime import CoordinatorRun, RuntimeRun
from model.runtime_invariants import attempt_violations, runtime_violations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m impl.runtime_replay", description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="airflow-task-runner")
    parser.add_argument("run", help="the run's text form (as a counterexample prints it)")
    args = parser.parse_args(argv)
    from properties.runtime_strategies import load_side

    if "; task raises " in args.run or "; task returns" in args.run:
        run = RuntimeRun.from_text(args.run)
        target = load_side(args.target, "runtime")
        expected, observed = target.reference(run), target.run(run)
        print(f"run: {run.to_text()}")
        for title, obs in (("model", expected), (target.name, observed)):
            print(f"  {title}:", *(f"\n    {line}" for line in obs.to_lines()))
        recorded = model_runtime.compose(run.context, observed)
        print(f"  the supervisor (model) records: final_state={recorded.final_state} row={recorded.row}")
        found = runtime_violations(run, observed)
    else:
        run = CoordinatorRun.from_text(args.run)
        target = load_side(args.target, "coordinator")
        expected, observed = target.reference(run), target.run(run)
        print(f"run: {run.to_text()}")
        for title, obs in (("model", expected), (target.name, observed)):
            print(f"  {title}:", *(f"\n    {line}" for line in obs.to_lines()))
        found = attempt_violations(run.context, run.outcome in model_runtime.COORDINATOR_FAILURES, observed)
    for v in found:
        print(f"VIOLATION {v}")
    if expected != observed:
        print(f"DISAGREEMENT between the model and {target.name}")
    target.close()
    return 1 if found or expected != observed else 0


if __name__ == "__main__":
    sys.exit(main())
