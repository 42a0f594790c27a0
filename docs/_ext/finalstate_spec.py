"""A Sphinx extension: the top of the Specification page, generated from ``model/`` at every build.

``docs/specification.md`` holds the marker ``MARKER``; when Sphinx reads that page, the marker is replaced by
``generated()``: what a reader came for, in MyST Markdown, computed from the model, never pasted:

- the invariants, one sentence each with its sources linked and how sure a violation is (``model.intent.INTENT``);
- where Airflow 3 changed Airflow 2 on purpose (``model.intent.DELIBERATE_CHANGES``);
- the supervisor's decision: ``model.supervisor.final_state`` called for every exit × terminal state held ×
  should_retry, on every task-sdk release the checker knows (``impl.releases.environments.RELEASES``), each cell
  saying where a release differs and which trait of ``model.release.Release`` makes it differ.
"""

from __future__ import annotations

from model import intent
from model.release import SPECIFIED, Release
from model.scenario import SERVER_TERMINATED, TASK_STATE_STATES, signal_name
from model.supervisor import DIRECT_FRAMES, final_state

MARKER = "<!-- finalstate: the generated specification -->"

#: The families in the order the page lists them, each with its heading.
FAMILY_HEADINGS = {
    "supervisor": "Of an attempt, as the supervisor records it (`model.invariants`)",
    "runtime": "Of the Python task runner's try (`model.runtime_invariants`)",
    "coordinator": "Of a coordinator-mode runtime's try (`model.runtime_invariants`)",
    "lifecycle": "Across a task instance's tries (`model.lifecycle`)",
    "wire": "Of the supervisor on the wire, with real processes (`properties/test_process_wire.py`)",
}

#: The exits the decision tells apart: 0, any positive code, any signal (a negative code).
EXITS = (0, 1, -9)


def _link(source: intent.Source) -> str:
    return f"[{source.cite}]({source.url})"


def _sources(sources: tuple[intent.Source, ...]) -> str:
    return "; ".join(f"{_link(s)} ({s.kind}): \u201c{s.quote}\u201d" for s in sources)


def intent_section() -> str:
    """The invariants by family: the promise, its sources linked, how sure a violation of it is."""
    lines = ["## The invariants", "",
             "What the checker holds Airflow to, each with where Airflow itself says so (`model.intent`): its "
             "documentation, an option's description, a maintainer on an issue or pull request, a comment or an "
             "unreachable branch in its source, or Airflow 2's behaviour that Airflow 3 meant to keep. A violation is "
             "reported as one of: *" + "*, *".join(intent.CONFIDENCES) + "*.", ""]
    for family, heading in FAMILY_HEADINGS.items():
        lines += [f"### {heading}", ""]
        for name, stated in intent.INTENT.items():
            if stated.family != family:
                continue
            lines.append(f"- **`{name}`**: {stated.promise} "
                         + (f"Sources: {_sources(stated.sources)}." if stated.sources
                            else "No source found in Airflow.")
                         + (f" Read otherwise: {_sources(stated.contested_by)}." if stated.contested_by else "")
                         + (f" {stated.note}" if stated.note else "")
                         + f" A violation: *{stated.confidence}*.")
        lines.append("")
    lines += ["### Where Airflow 3 changed Airflow 2 on purpose", "",
              "Not flagged: the invariants that judge such runs accommodate the change, and a test holds each one's "
              "example run free of their violations.", ""]
    for change in intent.DELIBERATE_CHANGES:
        lines.append(f"- **{change.what}** Airflow 2: {change.airflow_2} Airflow 3: {change.airflow_3} "
                     f"Sources: {_sources(change.sources)}. Judged by {', '.join(f'`{j}`' for j in change.judged_by)}: "
                     f"{change.how}. Example: `{change.run}`.")
    return "\n".join(lines + [""])


def held_states() -> tuple[tuple[str, str | None], ...]:
    """Each terminal state the supervisor can hold, with what makes it hold it: none; each frame's state; a
    heartbeat's SERVER_TERMINATED."""
    return (("no terminal frame", None),
            *((f"{frame}", state) for frame, (_, state) in DIRECT_FRAMES.items()),
            *((f"TaskState({state})", state) for state in TASK_STATE_STATES),
            ("a heartbeat refused 404/409/410", SERVER_TERMINATED))


#: The traits of ``Release`` that ``final_state`` consults, each as a function of (release, exit, state held).
TRAITS = {
    "retries_after_exit": lambda r, exit_code, state: exit_code != 0 and r.retries_after_exit(exit_code),
    "keeps_over_a_failed_exit": lambda r, exit_code, state: exit_code != 0 and r.keeps_over_a_failed_exit(state),
    "holds": lambda r, exit_code, state: r.holds(state),
}


def _decided(release: Release, exit_code: int, state: str | None, should_retry: bool) -> str:
    if not release.holds(state):
        return "(cannot hold it)"
    return final_state(exit_code, state, should_retry, release)


def _spans(releases: list[str], values: list) -> list[tuple[str, str, object]]:
    """Consecutive releases with equal values, as (first, last, value)."""
    spans = []
    for name, value in zip(releases, values):
        if spans and spans[-1][2] == value:
            spans[-1] = (spans[-1][0], name, value)
        else:
            spans.append((name, name, value))
    return spans


def decision_cell(releases: list[str], exit_code: int, state: str | None, should_retry: bool) -> str:
    """``final_state`` on the specified release, then each span of releases that decides otherwise, with the traits
    that differ there from the specified release."""
    parsed = [Release.parse(r) for r in releases]
    decided = [_decided(r, exit_code, state, should_retry) for r in parsed]
    specified = _decided(SPECIFIED, exit_code, state, should_retry)
    cell = [f"**{specified}**"]
    for first, last, value in _spans(releases, decided):
        if value == specified:
            continue
        there = Release.parse(first)
        traits = ["holds"] if not there.holds(state) else [
            name for name, trait in TRAITS.items()
            if trait(there, exit_code, state) != trait(SPECIFIED, exit_code, state)]
        span = first if first == last else f"{first}\u2013{last}"
        cell.append(f"{span}: {value} ({', '.join(f'`{t}`' for t in traits)})")
    return "; ".join(cell)


def decision_section(releases: list[str]) -> str:
    """The supervisor's decision as a table, computed by calling ``final_state`` for every cell on every release."""
    lines = ["## The supervisor's decision", "",
             f"`model.supervisor.final_state(exit_code, terminal_state, should_retry, release)`, called for every cell "
             f"below on each of the {len(releases)} task-sdk releases the checker knows ({releases[0]} \u2026 "
             f"{releases[-1]}). A cell gives the decision of {SPECIFIED}, the release the model specifies, in bold, "
             "then each run of releases that decides otherwise and the `model.release.Release` traits that differ "
             "there. Rows: the terminal state the supervisor holds when the process exits, and what made it hold it; "
             "columns: the exit code (a positive code stands for every positive code, a signal for every signal). "
             "What the supervisor then tells the server, and when, is `model.supervisor.update_task_state_if_needed`.",
             ""]
    header = ["state held (from)", "should_retry",
              *(f"exit {c}" + (f" ({signal_name(c)})" if c < 0 else "") for c in EXITS)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for made_by, state in held_states():
        for should_retry in (True, False):
            cells = [decision_cell(releases, c, state, should_retry) for c in EXITS]
            lines.append(f"| {state or 'none'} ({made_by}) | {str(should_retry).lower()} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def generated() -> str:
    from impl.releases.environments import RELEASES

    return intent_section() + "\n" + decision_section(list(RELEASES))


def _fill(app, docname: str, source: list[str]) -> None:
    if docname == "specification":
        if MARKER not in source[0]:
            raise ValueError(f"docs/specification.md lost its marker {MARKER!r}: the generated part has no place")
        source[0] = source[0].replace(MARKER, generated())


def setup(app):
    app.connect("source-read", _fill)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

