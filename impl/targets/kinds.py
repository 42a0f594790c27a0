"""The kinds of run the checker lives, each with its text form and its invariants.

A *supervisor* run is a ``model.scenario.Scenario`` (one attempt seen by the supervisor); a
*runtime* run a ``model.runtime.RuntimeRun`` (one try of the Python task runner); a
*coordinator* run a ``model.coordinator.CoordinatorRun`` (one try of a coordinator-mode runtime,
end to end under a supervisor, in the supervisor's world). ``model.lifecycle.kind_of`` tells them apart from their text,
so one replay command takes any of them (and lives, ``retries=N | ...``, read by ``model.lifecycle.parse_life``).
"""

from __future__ import annotations

from typing import Callable

import attrs

from model.coordinator import CoordinatorRun
from model.invariants import SUPERVISOR_INVARIANTS, Violation, violations
from model.runtime import RuntimeRun, compose
from model.runtime_invariants import (COORDINATOR_INVARIANTS, RUNTIME_INVARIANTS, coordinator_violations,
                                      runtime_violations)
from model.scenario import Observation, Scenario


@attrs.frozen
class Kind:
    """``parse`` reads a run's text; ``violations(run, observed, invariants)`` judges one observation;
    ``notes(run, observed)`` adds the lines a reader of that kind needs (e.g. what the supervisor records);
    ``compared(observed)`` is what of an observation conformance compares (None: all of it)."""

    name: str
    takes: str
    parse: Callable[[str], object]
    invariants: tuple
    violations: Callable[..., tuple[Violation, ...]]
    notes: Callable[[object, object], list[str]] = lambda run, observed: []
    compared: Callable[[object], dict] | None = None

    def agree(self, expected, observed) -> bool:
        """Whether two observations of one run agree on what conformance compares."""
        if self.compared is None:
            return expected == observed
        return self.compared(expected) == self.compared(observed)

    def differing(self, expected, observed) -> list[str]:
        """The names of what conformance compares that differ."""
        a, b = (attrs.asdict(o, recurse=False) if self.compared is None else self.compared(o)
                for o in (expected, observed))
        return [name for name in a if a[name] != b[name]]


def _supervisor_records(run: RuntimeRun, observed) -> list[str]:
    recorded = compose(run.context, observed)
    return [f"the supervisor (model) records: final_state={recorded.final_state} row={recorded.row}"]


def _seed_line(run: CoordinatorRun, observed) -> list[str]:
    """The seed's own words: ``...; task error → exit 0 → FAILED, expected UP_FOR_RETRY``."""
    found = [v for v in coordinator_violations(run, observed) if "expected " in v.message]
    expected = [v.message.split("expected ", 1)[1].split(" ", 1)[0] for v in found]
    return [f"{run.to_text()} → exit {observed.exit_code} → {observed.final_state.upper()}"
            + (f", expected {', '.join(expected)}" if expected else "")]


def exit_class(exit_code: int | None) -> str:
    """What of an exit code decides an attempt: ``0``, ``failure`` (any positive code), ``signal`` (a death by any
    signal: one that traps SIGTERM dies of the SIGKILL it escalates to), or ``none`` (no exit seen)."""
    if exit_code is None:
        return "none"
    return "0" if exit_code == 0 else "failure" if exit_code > 0 else "signal"


def decides_the_attempt(observed: Observation) -> dict:
    """What of a coordinator attempt conformance compares: what decides it (the final state, the calls, what the
    runtime was told, the row, what the supervisor raised, a harness that stepped in) and the exit's class; not the
    exact exit code (a runtime may exit 70 or 1 for an error of its own, die of SIGTERM or of the SIGKILL after it)
    nor what a runtime sends that the supervisor takes alike (its request id, its ``end_date`` encoding, extra fields,
    its log lines)."""
    compared = attrs.asdict(observed, recurse=False)
    compared["exit_code"] = exit_class(observed.exit_code)
    del compared["rendered_map_index"]  # a runtime's own business: an unmapped task's SDK may send none, or -1
    return compared


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("supervisor", "Scenario -> Observation: a supervisor living one attempt",
         Scenario.from_text, SUPERVISOR_INVARIANTS, violations),
    Kind("runtime", "RuntimeRun -> RuntimeObservation: a runtime meeting one try",
         RuntimeRun.from_text, RUNTIME_INVARIANTS, runtime_violations, _supervisor_records),
    Kind("coordinator", "CoordinatorRun -> Observation: a coordinator-mode runtime under a supervisor, end to end",
         CoordinatorRun.from_text, COORDINATOR_INVARIANTS, coordinator_violations, _seed_line, decides_the_attempt),
)}


def outcome(observed) -> str:
    """What an attempt or try came to, in one short line, for Hypothesis's statistics of distinct outcomes."""
    if hasattr(observed, "final_state"):
        return f"{observed.final_state} × {'+'.join(c.name for c in observed.calls)} × row {observed.row}"
    return f"{observed.state} × exit {observed.exit_code} × {'+'.join(map(str, observed.sent)) or 'nothing sent'}"
