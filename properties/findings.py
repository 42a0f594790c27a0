"""Findings: invariants the pinned apache-airflow-task-sdk release really breaks.

Each was found by the checker (``finalstate findings`` reruns the search and writes the
report); the scenario kept here is the minimal one it shrank to. While a finding stands,
its invariant's property is a strict expected failure on the targets listed.
"""

from __future__ import annotations

import attrs

SUPERVISOR_TARGETS = ("model", "airflow-inproc")


@attrs.frozen
class Finding:
    id: str
    invariant: str
    scenario: str
    headline: str
    upstream: str
    targets: tuple[str, ...] = SUPERVISOR_TARGETS


FINDINGS: tuple[Finding, ...] = ()


def finding_for(target: str, invariant: str) -> Finding | None:
    return next((f for f in FINDINGS if f.invariant == invariant and target in f.targets), None)
