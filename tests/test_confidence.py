"""Each finding says how sure it is, one of three, never mixed: in the registry (derived from its invariant's intent
or set on the finding), in the findings report, and in its exported module's docstring (an open question with both
readings)."""

from __future__ import annotations

import re

from impl.export import writer as export
from impl.catalogue.findings import ALL_FINDINGS, how_sure_in_words
from impl.findings.search import how_sure_section, other_finding_entry
from model.intent import CONFIDENCES, INTENT, OPEN_QUESTION
from model.release import SPECIFIED


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_finding_is_as_sure_as_its_invariant_unless_it_says_otherwise():
    for finding in ALL_FINDINGS:
        assert finding.confidence in CONFIDENCES
        if finding.intent is None:
            assert finding.how_sure is INTENT[finding.invariant]
    r3 = next(f for f in ALL_FINDINGS if f.id == "R3")
    assert r3.confidence == OPEN_QUESTION != INTENT[r3.invariant].confidence


def test_the_report_puts_each_finding_in_one_group_and_labels_its_entry():
    section = "\n".join(how_sure_section(ALL_FINDINGS))
    for finding in ALL_FINDINGS:
        groups = [line for line in section.splitlines()
                  if line.startswith("- ") and re.search(rf"\b{finding.id}\b", line)]
        assert len(groups) == 1 and groups[0].startswith(f"- {finding.confidence}:"), groups
    entry = "\n".join(other_finding_entry(next(f for f in ALL_FINDINGS if f.id == "W3")))
    assert f"- how sure: {how_sure_in_words(next(f for f in ALL_FINDINGS if f.id == 'W3'))}" in entry


def test_each_exported_module_says_how_sure_and_an_open_question_both_readings():
    for module in export.export_all(SPECIFIED):
        if not isinstance(module, export.Exported):
            continue
        doc = _flat(module.source.split('"""')[1])
        assert f"How sure: {_flat(how_sure_in_words(module.finding))}" in doc, module.name
        if module.finding.confidence == OPEN_QUESTION:
            assert "read one way" in doc and "read the other way" in doc, module.name


def test_a_corpus_verdict_is_as_sure_as_the_catalogue():
    """A report the corpus expects caught by an invariant says how sure it is as the catalogue does: the finding's
    where it names one, else the invariant's (``model.intent.CONFIDENCE_WORDS``: the corpus's short words)."""
    from impl.findings.corpus import load_corpus
    from model.intent import CONFIDENCE_WORDS

    findings = {f.id: f for f in ALL_FINDINGS}
    disagree = []
    for report in load_corpus():
        verdict = report.verdict
        if verdict.expected != "caught" or verdict.invariant not in INTENT:
            continue
        stated = findings[verdict.finding].confidence if verdict.finding else INTENT[verdict.invariant].confidence
        if CONFIDENCE_WORDS[verdict.confidence] != stated:
            disagree.append(f"{report.ref}: {verdict.confidence}, the catalogue: {stated}")
    assert not disagree, disagree
