"""The kinds of run the checker lives, each with its text form and its invariants.

A *supervisor* run is a ``model.scenario.Scenario`` (one attempt seen by the supervisor); a
*runtime* run a ``model.runtime.RuntimeRun`` (one try of the Python task runner); a
*coordinator* run a ``model.runtime.CoordinatorRun`` (one try of a coordinator-mode runtime,
end to end under a supervisor). ``kind_of`` tells them apart from their text, so one replay
command takes any of them (and lifecycle traces, ``retries=N | ...``, see ``lifecycle``).
"""

from __future__ import annotations

from typing import Callable

import attrs

from model.invariants import SUPERVISOR_INVARIANTS, Violation, violations
from model.runtime import COORDINATOR_FAILURES, CoordinatorRun, RuntimeRun, compose
from model.runtime_invariants import ATTEMPT_INVARIANTS, RUNTIME_INVARIANTS, attempt_violations, runtime_violations
from model.scenario import Scenario


@attrs.frozen
class Kind:
    """``parse`` reads a run's text; ``violations(run, observed, invariants)`` judges one observation;
    ``notes(run, observed)`` adds the lines a reader of that kind needs (e.g. what the supervisor records)."""

    name: str
    takes: str
    parse: Callable[[str], object]
    invariants: tuple
    violations: Callable[..., tuple[Violation, ...]]
    notes: Callable[[object, object], list[str]] = lambda run, observed: []


def _supervisor_records(run: RuntimeRun, observed) -> list[str]:
    recorded = compose(run.context, observed)
    return [f"the supervisor (model) records: final_state={recorded.final_state} row={recorded.row}"]


def _attempt_violations(run: CoordinatorRun, observed, invariants=ATTEMPT_INVARIANTS):
    return attempt_violations(run.context, run.outcome in COORDINATOR_FAILURES, observed, invariants)


def _seed_line(run: CoordinatorRun, observed) -> list[str]:
    """The seed's own words: ``...; task error → exit 0 → FAILED, expected UP_FOR_RETRY``."""
    found = _attempt_violations(run, observed)
    expected = [v.message.split("expected ", 1)[1].split(" ", 1)[0] for v in found]
    return [f"{run.to_text()} → exit {observed.exit_code} → {observed.final_state.upper()}"
            + (f", expected {', '.join(expected)}" if expected else "")]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("supervisor", "Scenario -> Observation: a supervisor living one attempt",
         Scenario.from_text, SUPERVISOR_INVARIANTS, violations),
    Kind("runtime", "RuntimeRun -> RuntimeObservation: a runtime meeting one try",
         RuntimeRun.from_text, RUNTIME_INVARIANTS, runtime_violations, _supervisor_records),
    Kind("coordinator", "CoordinatorRun -> Observation: a coordinator-mode runtime under a supervisor, end to end",
         CoordinatorRun.from_text, ATTEMPT_INVARIANTS, _attempt_violations, _seed_line),
)}


def outcome(observed) -> str:
    """What an attempt or try came to, in one short line, for Hypothesis's statistics of distinct outcomes."""
    if hasattr(observed, "final_state"):
        return f"{observed.final_state} × {'+'.join(c.name for c in observed.calls)} × row {observed.row}"
    return f"{observed.state} × exit {observed.exit_code} × {'+'.join(map(str, observed.sent)) or 'nothing sent'}"


def kind_of(text: str) -> str:
    """Which kind of run ``text`` is: ``lifecycle``, ``runtime``, ``coordinator`` or ``supervisor``."""
    if "|" in text:
        return "lifecycle"
    parts = [p.strip() for p in text.split(";")]
    if any(p.startswith(("task raises ", "policy ", "comms ")) or p == "task returns" for p in parts):
        return "runtime"
    if any(p.startswith("task ") for p in parts):
        return "coordinator"
    return "supervisor"
