"""The intent catalogue (``model.intent``) covers every invariant of every family, names nothing else, says the same
as each invariant's docstring, and its deliberate changes are not flagged by the invariants that judge them."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from impl.catalogue.findings import ALL_FINDINGS, WIRE_FINDINGS
from impl.search.lifecycle import pairings_for, replay_life
from model import intent
from model.invariants import SUPERVISOR_INVARIANTS, violations
from model.lifecycle import LIFECYCLE_INVARIANTS, life_violations
from model.runtime import RuntimeObservation, RuntimeRun, Sent, python_runtime
from model.runtime_invariants import COORDINATOR_INVARIANTS, RUNTIME_INVARIANTS, runtime_violations
from model.scenario import UP_FOR_RETRY, Scenario, Send
from model.supervisor import run as supervise

WIRE_PROPERTIES = Path(__file__).resolve().parents[1] / "properties" / "test_process_wire.py"

MODEL_FAMILIES = {
    "supervisor": SUPERVISOR_INVARIANTS,
    "runtime": RUNTIME_INVARIANTS,
    "coordinator": COORDINATOR_INVARIANTS,
    "lifecycle": LIFECYCLE_INVARIANTS,
}


def _wire_docstrings() -> dict[str, str]:
    """Each wire invariant's property (``test_NAME`` in properties/test_process_wire.py) by NAME, and its docstring."""
    tree = ast.parse(WIRE_PROPERTIES.read_text())
    return {node.name.removeprefix("test_"): ast.get_docstring(node) or "" for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _docstrings() -> dict[str, tuple[str, str]]:
    """Every invariant there is, by name: its family and its docstring."""
    found = {check.__name__: (family, inspect.getdoc(check) or "") for family, checks in MODEL_FAMILIES.items()
             for check in checks}
    wire = _wire_docstrings()
    for name in {f.invariant for f in WIRE_FINDINGS} | {n for n, i in intent.INTENT.items() if i.family == "wire"}:
        if name in wire:
            found[name] = ("wire", wire[name])
    return found


def test_every_invariant_of_every_family_has_its_intent():
    missing = [f"{family}: {name}" for name, (family, _) in _docstrings().items() if name not in intent.INTENT]
    assert not missing, f"invariants with no entry in model.intent.INTENT: {missing}"
    wrong = [name for name, (family, _) in _docstrings().items() if intent.INTENT[name].family != family]
    assert not wrong, f"INTENT files these under the wrong family: {wrong}"


def test_every_intent_names_an_invariant_that_exists():
    invariants = _docstrings()
    unknown = [name for name in intent.INTENT if name not in invariants]
    assert not unknown, f"INTENT names invariants no family has (a wire one is a test_NAME property): {unknown}"


def test_every_findings_invariant_has_its_intent():
    assert not [f.id for f in ALL_FINDINGS if f.invariant not in intent.INTENT]


@pytest.mark.parametrize("name", sorted(intent.INTENT))
def test_each_docstring_ends_with_its_sources_in_words(name):
    """The last paragraph of the invariant's docstring says ``Intent:`` and cites each source the catalogue names
    (``Source.cite``), or says that none was found."""
    _, doc = _docstrings()[name]
    last = doc.strip().split("\n\n")[-1]
    assert last.startswith("Intent:"), f"{name}'s docstring does not end with its intent:\n{doc}"
    stated = intent.INTENT[name]
    if not stated.sources:
        assert last.startswith("Intent: none found"), last
    for source in stated.sources:
        assert source.cite in " ".join(last.split()), f"{name}'s docstring does not cite {source.cite}:\n{last}"


def test_sources_link_somewhere():
    sources = [s for i in intent.INTENT.values() for s in (*i.sources, *i.contested_by)]
    sources += [s for c in intent.DELIBERATE_CHANGES for s in c.sources]
    assert all(s.url.startswith("https://") and s.quote and s.cite for s in sources)


def test_an_intent_says_how_sure_it_is_by_its_sources():
    """The confidence is an open question exactly when contested or sourceless, and otherwise rests on its sources."""
    with pytest.raises(ValueError, match="open question"):
        intent.Intent("supervisor", "a promise", (), confidence=intent.DOCUMENTED)
    with pytest.raises(ValueError, match="Airflow 2"):
        intent.Intent("supervisor", "a promise", (intent.TASK_STATES,), confidence=intent.AIRFLOW_2)
    with pytest.raises(ValueError, match="other than Airflow 2"):
        intent.Intent("runtime", "a promise", (intent.AIRFLOW_2_SIGTERM,))
    assert intent.INTENT["frame_length_is_bounded"].confidence == intent.OPEN_QUESTION


def _flagged(change: intent.DeliberateChange) -> list[str]:
    """What the invariants that judge ``change`` make of its run on the model."""
    if change.language == "supervisor":
        checks = tuple(c for c in SUPERVISOR_INVARIANTS if c.__name__ in change.judged_by)
        scenario = Scenario.from_text(change.run)
        return [str(v) for v in violations(scenario, supervise(scenario), checks)]
    if change.language == "runtime":
        checks = tuple(c for c in RUNTIME_INVARIANTS if c.__name__ in change.judged_by)
        run = RuntimeRun.from_text(change.run)
        return [str(v) for v in runtime_violations(run, python_runtime(run), checks)]
    checks = tuple(c for c in LIFECYCLE_INVARIANTS if c.__name__ in change.judged_by)
    pairing = next(p for p in pairings_for("model") if p.name == "model-runtime+model")
    return [str(v) for v in life_violations(replay_life(pairing, change.run), checks)]


@pytest.mark.parametrize("change", intent.DELIBERATE_CHANGES, ids=lambda c: c.what)
def test_a_deliberate_change_is_not_flagged(change):
    every = {check.__name__ for checks in MODEL_FAMILIES.values() for check in checks}
    assert set(change.judged_by) <= every, f"judged by invariants that do not exist: {set(change.judged_by) - every}"
    assert not _flagged(change), f"{change.what} is flagged on the model by its own judges: {_flagged(change)}"


def test_the_judges_of_a_deliberate_change_can_flag_what_it_is_not():
    """The check above is no formality: the same judges flag AirflowTaskTerminated answered with a retry, which the
    change does not allow."""
    change = intent.DELIBERATE_CHANGES[0]
    run = RuntimeRun.from_text(change.run)
    retried = RuntimeObservation((Sent(Send("RetryTask")),), UP_FOR_RETRY, 0)
    checks = tuple(c for c in RUNTIME_INVARIANTS if c.__name__ in change.judged_by)
    assert {v.invariant for v in runtime_violations(run, retried, checks)} == set(change.judged_by)
