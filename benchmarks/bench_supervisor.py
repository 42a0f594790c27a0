"""Scenarios per second through the checker, for `model` and `airflow-inproc`, beside the raw rate.

    .venv/bin/python benchmarks/bench_supervisor.py [--scenarios 5000] [--seconds 3]

Five figures, measured in this one run on the same seeded corpus of scenarios:

- raw:      the real supervisor's methods called directly (``_handle_request`` per frame,
            then ``update_task_state_if_needed`` and ``final_state``): no event loop, no wire, no checks;
            once with this binding's recording client, once with a ``unittest.mock`` client as the
            design's figure (about 2,300/s) was taken.
- inproc:   the checker's work per scenario on ``airflow-inproc``: the real ``wait()`` loop over the
            wire codec, the model beside it, the conformance comparison and every invariant.
- model:    the same checker work on the ``model`` target: the model and every invariant.
- e2e:      the conformance property on ``airflow-inproc`` as pytest runs it, Hypothesis
            generating and shrinking included, counted in scenarios (attempts) checked.
- e2e's own scenarios: the checker loop again, on exactly the scenarios the e2e run generated (they
            are longer on average than the corpus's), so that e2e / this figure is the share of the
            property's time spent checking rather than generating, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import time

import impl.search.profiles  # noqa: F401  registers the profiles e2e_rate loads
from impl.targets.registry import load_target
from impl.search.report import Disagreement, InvariantViolation, check_conformance, check_invariants, check_run
from impl.search.scenarios import corpus, machine_for, run_machine
from model.invariants import SUPERVISOR_INVARIANTS


def rate(fn, scenarios, seconds: float) -> float:
    """Scenarios per second for ``fn`` over the corpus, repeated until ``seconds`` have passed."""
    done, start = 0, time.perf_counter()
    while True:
        for s in scenarios:
            try:
                fn(s)
            except (Disagreement, InvariantViolation):
                pass  # the findings: still checked, still counted
        done += len(scenarios)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def e2e_rate(target, examples: int) -> tuple[float, list]:
    """Scenarios per second through the conformance property, and the scenarios it generated."""
    from hypothesis import settings

    generated = []

    def check(s):
        generated.append(s)
        try:
            check_conformance(target, s)
        except (Disagreement, InvariantViolation):
            pass  # counted and checked, as in ``rate``; the property itself would stop here and shrink

    start = time.perf_counter()
    run_machine(machine_for("Bench", check, target.attempts_per_step),
                settings(settings.get_profile("ci"), max_examples=examples))
    return len(generated) / (time.perf_counter() - start), generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    from impl.supervisor_inproc.target import raw_rate_probe

    model, inproc = load_target("model"), load_target("airflow-inproc")
    scenarios = corpus(args.scenarios)
    for s in scenarios[:200]:  # warm both paths before timing
        raw_rate_probe(s)

    def check_inproc(s):
        check_run(inproc, s, SUPERVISOR_INVARIANTS)

    from unittest import mock

    figures = {
        "raw (real supervisor methods, direct)": rate(raw_rate_probe, scenarios, args.seconds),
        "raw as the design measured it (direct, unittest.mock client)":
            rate(lambda s: raw_rate_probe(s, mock.MagicMock()), scenarios, args.seconds),
        "airflow-inproc (checker: real wait() + model + conformance + invariants)": rate(check_inproc, scenarios, args.seconds),
        "model (checker: model + invariants)": rate(lambda s: check_invariants(model, s, SUPERVISOR_INVARIANTS),
                                                   scenarios, args.seconds),
    }
    e2e, generated = e2e_rate(inproc, 500)
    figures["airflow-inproc end to end (Hypothesis conformance property)"] = e2e
    loop_on_generated = rate(lambda s: check_conformance(inproc, s), generated, args.seconds)
    figures["airflow-inproc conformance checks alone, on the scenarios e2e generated"] = loop_on_generated
    raw = figures["raw (real supervisor methods, direct)"]
    print(f"corpus: {len(scenarios)} scenarios, mean {sum(len(s.events) for s in scenarios) / len(scenarios):.1f} events each")
    print(f"e2e generated {len(generated)} scenarios, mean {sum(len(s.events) for s in generated) / len(generated):.1f} "
          "events each")
    for name, value in figures.items():
        print(f"{value:10.0f} scenarios/s  {value / raw:5.2f}x raw  {name}")
    print(f"end to end / checks alone on the same scenarios: {e2e / loop_on_generated:.0%} "
          "(the rest is Hypothesis generating, shrinking and running the state machine)")


if __name__ == "__main__":
    main()
