"""The top of the Specification page is computed from the model (``docs/_ext/finalstate_spec.py``): every invariant
with its sources, and every cell of the supervisor's decision as ``model.supervisor.final_state`` decides it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from impl.releases.environments import RELEASES
from model import intent
from model.release import SPECIFIED, Release
from model.supervisor import final_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
import finalstate_spec as spec  # noqa: E402  (the docs' extension, not a package)


def test_every_invariant_is_on_the_page_with_its_sources_linked():
    text = spec.intent_section()
    for name, stated in intent.INTENT.items():
        entry = next(line for line in text.splitlines() if line.startswith(f"- **`{name}`**"))
        assert stated.promise in entry and stated.confidence in entry
        assert all(f"[{s.cite}]({s.url})" in entry for s in (*stated.sources, *stated.contested_by)), entry
    assert all(change.what in text for change in intent.DELIBERATE_CHANGES)


@pytest.mark.parametrize("should_retry", [True, False])
@pytest.mark.parametrize("exit_code", spec.EXITS)
@pytest.mark.parametrize("held", spec.held_states(), ids=lambda h: h[0])
def test_each_cell_is_final_state_on_every_release(held, exit_code, should_retry):
    """The cell leads with the specified release's decision and names every release that decides otherwise."""
    releases = list(RELEASES)
    _, state = held
    cell = spec.decision_cell(releases, exit_code, state, should_retry)
    assert cell.startswith(f"**{final_state(exit_code, state, should_retry, SPECIFIED)}**")
    for release in releases:
        parsed = Release.parse(release)
        decided = final_state(exit_code, state, should_retry, parsed) if parsed.holds(state) else "(cannot hold it)"
        if decided != final_state(exit_code, state, should_retry, SPECIFIED):
            assert any(_within(release, span.split(": ")[0]) and span.split(": ")[1].startswith(decided)
                       for span in cell.split("; ")[1:]), f"{release} decides {decided}, which {cell!r} does not say"


def _within(release: str, span: str) -> bool:
    first, _, last = span.partition("\u2013")
    names = list(RELEASES)
    return names.index(first) <= names.index(release) <= names.index(last or first)


def test_a_cell_names_the_trait_that_changes_it():
    cell = spec.decision_cell(list(RELEASES), 1, None, True)
    assert cell == "**up_for_retry**; 1.0.0\u20131.1.3: failed (`retries_after_exit`)"
    held_retry = spec.decision_cell(list(RELEASES), 1, "up_for_retry", False)
    assert held_retry == "**failed**; 1.4.0b2: up_for_retry (`keeps_over_a_failed_exit`)"
