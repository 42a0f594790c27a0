"""Searching for findings and writing the findings report.

``search`` runs the checker's own state machine for one invariant on one target and
returns the minimal counterexample Hypothesis shrinks to. To enumerate *distinct*
findings of one invariant it can be told to pass over observations with the same
signature as ones already found, so the search goes on to the next kind of failure;
the properties themselves never do this.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import attrs
from hypothesis import settings

from impl.export.writer import report_line
from impl.catalogue.findings import (COORDINATOR_FINDINGS, FINDINGS, LIFECYCLE_FINDINGS, RUNTIME_FINDINGS,
                                     WIRE_FINDINGS, Finding, how_sure_in_words)
from impl.search.report import InvariantViolation, observation_block, replay_command, trace
from impl.search.scenarios import machine_for, run_machine
from model.intent import CONFIDENCES
from model.invariants import SUPERVISOR_INVARIANTS, Invariant, violations
from model.scenario import DEFAULT_EXECUTION_API_RETRIES, Observation, Scenario


@attrs.frozen
class Counterexample:
    invariant: str
    scenario: Scenario
    observation: Observation
    messages: tuple[str, ...]

    @property
    def signature(self) -> tuple:
        return signature(self.invariant, self.observation)


def signature(invariant: str, observation: Observation) -> tuple:
    """What makes two failures of one invariant the same kind: the outcome, not the path to it."""
    return (invariant, observation.final_state, observation.row, observation.exit_code == 0, observation.raised)


class _Found(InvariantViolation):
    def __init__(self, example: Counterexample):
        super().__init__(str(example))
        self.example = example


def search(target, invariant: Invariant, *, skip: Iterable[tuple] = (), profile: settings | None = None
           ) -> Counterexample | None:
    """The minimal counterexample to ``invariant`` on ``target``, or None if the search finds none."""
    skip = frozenset(skip)
    name = invariant.__name__

    def check(scenario: Scenario) -> None:
        observed = target.run(scenario)
        found = violations(scenario, observed, (invariant,))
        if found and signature(name, observed) not in skip:
            raise _Found(Counterexample(name, scenario, observed, tuple(str(v) for v in found)))

    try:
        run_machine(machine_for(name, check, target.attempts_per_step), profile)
    except _Found as e:
        return e.example
    return None


def discover(target, invariants=SUPERVISOR_INVARIANTS, per_invariant: int = 3, profile: settings | None = None
             ) -> list[Counterexample]:
    """Up to ``per_invariant`` distinct minimal counterexamples for each invariant."""
    found: list[Counterexample] = []
    for invariant in invariants:
        seen: list[tuple] = []
        for _ in range(per_invariant):
            example = search(target, invariant, skip=seen, profile=profile)
            if example is None:
                break
            found.append(example)
            seen.append(example.signature)
    return found


def replay(target, finding: Finding) -> Counterexample | None:
    """The registered finding's scenario on ``target`` now: its counterexample, or None if it no longer fails."""
    invariant = next(i for i in SUPERVISOR_INVARIANTS if i.__name__ == finding.invariant)
    scenario = Scenario.from_text(finding.scenario)
    observed = target.run(scenario)
    found = violations(scenario, observed, (invariant,))
    return Counterexample(finding.invariant, scenario, observed, tuple(map(str, found))) if found else None


def report(target, discovered: list[Counterexample], sdk_version: str) -> str:
    """The findings report, in Markdown: each registered finding replayed now, then what the search found."""
    lines = [
        f"# finalstate findings — target `{target.name}`, apache-airflow-task-sdk {sdk_version}",
        "",
        f"Generated {dt.date.today().isoformat()} by `finalstate findings --target {target.name}`.",
        "Each finding is an invariant of the design that the pinned release breaks (or, where it says fixed in,",
        "that older releases broke); its property is a strict expected failure on every release it stands on.",
        "Observations below were computed by this run.",
        "",
    ]
    others = RUNTIME_FINDINGS + LIFECYCLE_FINDINGS + COORDINATOR_FINDINGS + WIRE_FINDINGS
    lines += how_sure_section(tuple(f for f in FINDINGS if f.about(target.name)) + others)
    for finding in FINDINGS:
        if not finding.about(target.name):
            continue
        now = replay(target, finding)
        lines += [f"## {finding.id}: {finding.headline}", "",
                  f"- invariant: `{finding.invariant}`",
                  f"- how sure: {how_sure_in_words(finding)}",
                  f"- responsible upstream: {finding.upstream}",
                  report_line(finding),
                  f"- status on this run: {_status(finding, target, now)}",
                  "", "Scenario (minimal, as the checker shrank it):", "", "```", trace(Scenario.from_text(finding.scenario))]
        if now:
            lines += [observation_block("recorded", now.observation), "```", "", "What the invariant expected:", ""]
            lines += [f"- {m}" for m in now.messages]
        else:
            lines += ["```"]
        command = replay_command(target.name, Scenario.from_text(finding.scenario))
        if finding.stands_on(target.release):
            lines += ["", f"Replay: `{command}`", ""]
        else:
            stood = finding.shown_on
            command = command.replace("finalstate replay", f"finalstate replay --release {stood}", 1)
            lines += ["", f"Replay on {stood}, a release it stands on: `{command}`", ""]
        if finding.details:
            lines += [finding.details.strip(), ""]
    lines += ["## Runtime, lifecycle, coordinator and wire findings", "",
              "Not supervisor scenarios, so not replayed by this command; each is a strict expected failure",
              "of its property and is replayed by the `*_finding_still_reproduces` test beside it.", ""]
    for finding in others:
        lines += other_finding_entry(finding)
    def cause(c: Counterexample) -> str:
        found = next((f for f in FINDINGS if f.about(target.name) and f.stands_on(target.release)
                      and f.explains_violation(c.invariant, c.scenario, c.observation)), None)
        return f"{found.id}" if found else "NEW"

    causes = [cause(c) for c in discovered]
    lines += ["## What this run's search found", "",
              f"{len(discovered)} minimal counterexample(s), each marked with the registered finding whose signature "
              f"explains it; {causes.count('NEW')} explained by none (NEW).", ""]
    for c, mark in zip(discovered, causes):
        lines += [f"- [{mark}] `{c.invariant}`: `{c.scenario.to_text()}` — " + "; ".join(c.messages)]
    return "\n".join(lines) + "\n"


def how_sure_section(findings: tuple[Finding, ...]) -> list[str]:
    """The report's grouping of ``findings`` by how sure each is (``Finding.confidence``): each in one group only."""
    lines = ["## How sure each finding is", "",
             "Each finding is exactly one of these, from the intent of the invariant it breaks (`model.intent`), or "
             "its own where that is not enough to say; its entry below quotes the sources.", ""]
    for confidence in CONFIDENCES:
        ids = [f.id for f in findings if f.confidence == confidence]
        lines.append(f"- {confidence}: {', '.join(ids) or 'none'}")
    return lines + [""]


def other_finding_entry(finding: Finding) -> list[str]:
    """The report's lines for a finding that is not a supervisor scenario: what it breaks, its minimal run, its cause
    upstream, and what else was established about it (``Finding.details``)."""
    lines = [f"### {finding.id}: {finding.headline}", "",
             f"- invariant: `{finding.invariant}` ({finding.kind}); targets: {', '.join(finding.targets) or 'none'}"
             + (f"; SDK profiles: {', '.join(finding.profiles)} (`--profile NAME`)" if finding.profiles else ""),
             f"- how sure: {how_sure_in_words(finding)}",
             f"- minimal scenario: `{finding.scenario}`",
             f"- responsible upstream: {finding.upstream}", report_line(finding), ""]
    return lines + ([finding.details.strip(), ""] if finding.details else [])


def on_the_real_server(real_target, findings=FINDINGS, on_its_release: bool = True) -> list[str]:
    """Each supervisor finding's own scenario on the model server and on the real Execution API server.

    ``real_target`` is ``airflow-inproc`` with ``--server airflow``: the real client trying each request
    as often as the scenario's ``execution_api_retries`` says (Airflow's default unless the scenario sets
    it), the real app on a real database. For each finding: whether its invariant still breaks on the
    real server, what was recorded there; for a finding stated under another setting, whether it also
    holds under Airflow's default; and the row's eventual state once the scheduler's task-heartbeat
    timeout handling has run on it (a TI left RUNNING is failed or retried by the scheduler, in time).
    A finding that does not stand on the installed release is run, with ``on_its_release``, on a release
    it stands on (``Finding.shown_on``), in that release's environment (``row_on_its_release``).
    Returns the Markdown section.
    """
    lines = ["## On the real Execution API server", "",
             "Each supervisor finding's own scenario, run again by `finalstate findings --server airflow`: the real",
             "`ActivitySubprocess` through Airflow's real `Client` to the real Execution API app of the installed",
             "apache-airflow-core on SQLite; a finding that does not stand on the installed release is run on a",
             "release it stands on (marked \"on R\"), in that release's environment with its apache-airflow-core.",
             "The client tries each request as often as the scenario's",
             f"`execution_api_retries` says (Airflow's `[workers] execution_api_retries`, {DEFAULT_EXECUTION_API_RETRIES} "
             "by default; the waits between tries", "set to zero). A `transient` fault is a 5xx on one request, which a "
             "second try hides; `lost` is applied, its", "answer lost; heartbeat 404/409/410 come from the TI deleted, "
             "marked failed or cleared. A finding that needs", "another setting says so in its scenario; the fourth column "
             "runs it again with Airflow's default. The last", "column is the row after the scheduler's "
             "task-heartbeat-timeout handling (`_find_task_instances_without_heartbeats`,",
             "the executor's failure event, `process_executor_events`) has run on it.", "",
             "| finding | model server | real server | real server, default execution_api_retries | "
             "row after the heartbeat timeout |",
             "|---|---|---|---|---|"]
    for finding in findings:
        if not finding.about(real_target.name):
            continue
        if on_its_release and not finding.stands_on(real_target.release):
            lines.append(row_on_its_release(finding, real_target.name))
        else:
            lines.append(real_server_row(real_target, finding))
    return lines + [""]


def real_server_row(real_target, finding: Finding, label: str | None = None) -> str:
    """``finding``'s row of the real-server table, run on ``real_target`` (its release's model beside it)."""
    from impl.server.airflow_attempt import row_text
    from model import supervisor as model_supervisor

    label = label or finding.id
    scenario = Scenario.from_text(finding.scenario)
    invariant = next(i for i in SUPERVISOR_INVARIANTS if i.__name__ == finding.invariant)
    on_model = model_supervisor.run(scenario, real_target.release)
    model_cell = f"{'breaks' if violations(scenario, on_model, (invariant,)) else 'holds'}: " \
                 f"{on_model.final_state}, row {on_model.row}"
    try:
        real_cell, observed = _on_real(real_target, finding, invariant, scenario)
        record = real_target.run.last
        default_cell = "(the scenario's own)"
        if scenario.execution_api_retries != DEFAULT_EXECUTION_API_RETRIES:
            default_cell, _ = _on_real(real_target, finding, invariant,
                                       attrs.evolve(scenario, execution_api_retries=DEFAULT_EXECUTION_API_RETRIES))
    except NotImplementedError as e:
        return f"| {label} | {model_cell} | not playable on the real server yet: {e} | | |"
    if _heartbeats_for_ever(observed):
        after_cell = f"{row_text(record.row_after)} (never struck: the supervisor heartbeats on)"
    else:
        after = real_target.run.server.heartbeat_timeout(record.run_id) if record.row_after is not None else None
        after_cell = row_text(after)
    return f"| {label} | {model_cell} | {real_cell} | {default_cell} | {after_cell} |"


def _heartbeats_for_ever(observed: Observation) -> bool:
    """A hung attempt whose supervisor still heartbeats once time has run on (its last call a heartbeat answered 200)
    keeps doing so: the scheduler's heartbeat timeout never strikes its row."""
    return observed.hung and bool(observed.calls) and observed.calls[-1].name == "heartbeat" \
        and observed.calls[-1].status == 200


#: How long a finding's row may take in its release's environment (the server's migration included).
ROW_DEADLINE_SECONDS = 900
#: The line of ``python -m impl.findings.search --real-server-row`` that carries the row (Airflow may print more).
_ROW_MARK = "finalstate real-server row: "


def row_on_its_release(finding: Finding, target: str) -> str:
    """``finding``'s row of the real-server table, run in the environment of a release it stands on
    (``Finding.shown_on``, built once under build/envs) with that release's apache-airflow-core; a row saying why
    when it cannot be had there (never left out)."""
    import os
    import subprocess

    from impl.targets.registry import SERVER_ENV
    from impl.places import code_root
    from impl.releases.environments import python_for

    release = finding.shown_on
    label = f"{finding.id} (on {release})"
    try:
        python = python_for(release)
        done = subprocess.run([str(python), "-m", "impl.findings.search", "--real-server-row", finding.id,
                               "--target", target], cwd=code_root(), capture_output=True, text=True,
                              timeout=ROW_DEADLINE_SECONDS, start_new_session=True,
                              env={**os.environ, SERVER_ENV: "airflow", "PYTHONPATH": os.pathsep.join(
                                  filter(None, [str(code_root()), os.environ.get("PYTHONPATH")]))})
    except subprocess.TimeoutExpired:
        return f"| {label} | | not run: over {ROW_DEADLINE_SECONDS} s on {release} | | |"
    except Exception as e:  # UnknownRelease, EnvironmentFailed: the row says so
        return f"| {label} | | not run: no environment for {release} ({type(e).__name__}: {e}) | | |"
    rows = [line[len(_ROW_MARK):] for line in done.stdout.splitlines() if line.startswith(_ROW_MARK)]
    if done.returncode != 0 or not rows:
        tail = " / ".join(done.stderr.strip().splitlines()[-2:])[:300]
        return f"| {label} | | not run on {release}: exit {done.returncode}: {tail} | | |"
    return rows[-1]


def _print_real_server_row(argv: list[str] | None = None) -> int:
    """``python -m impl.findings.search --real-server-row ID --target NAME`` (with ``FINALSTATE_SERVER=airflow``):
    the finding's row of the real-server table on the release installed where it runs, on one line after
    ``_ROW_MARK``."""
    import argparse

    from impl.catalogue.findings import ALL_FINDINGS
    from impl.targets.registry import load_target

    parser = argparse.ArgumentParser(prog="python -m impl.findings.search")
    parser.add_argument("--real-server-row", required=True, metavar="ID")
    parser.add_argument("--target", required=True)
    args = parser.parse_args(argv)
    finding = next((f for f in ALL_FINDINGS if f.id == args.real_server_row), None)
    if finding is None:
        parser.error(f"unknown finding {args.real_server_row!r}")
    from importlib.metadata import version

    target = load_target(args.target, "supervisor")
    try:
        row = real_server_row(target, finding, f"{finding.id} (on {version('apache-airflow-task-sdk')})")
    finally:
        target.close()
    print(_ROW_MARK + row, flush=True)
    return 0


def _on_real(real_target, finding: Finding, invariant, scenario: Scenario) -> tuple[str, Observation]:
    """``scenario`` on the real server: does ``finding`` reproduce there, and what was recorded (as a cell, and the
    observation)."""
    on_real = real_target.run(scenario)
    broke = violations(scenario, on_real, (invariant,))
    explained = finding.explains_violation(finding.invariant, scenario, on_real) if broke else False
    verdict = ("reproduces" if explained else "breaks the invariant by another cause") if broke else "does not hold"
    return (f"{verdict}: {on_real.final_state}, row {on_real.row}" + (f", raised {on_real.raised}" if on_real.raised else "")
            + (", hung (wait() still waits)" if on_real.hung else "")
            + f"; calls {', '.join(map(str, on_real.calls))}"), on_real


def _status(finding, target, now) -> str:
    """Whether ``finding`` reproduced on this run (``now``), as the release run makes it expected to."""
    if finding.stands_on(target.release):
        return "reproduces" if now else "NO LONGER REPRODUCES — upstream fixed it, or the model changed"
    bounds = ", ".join(f"{what} {release}" for what, release in (("introduced in", finding.introduced_in),
                                                                   ("fixed in", finding.fixed_in)) if release)
    others = [f.id for f in FINDINGS if f.stands_on(target.release) and f.about(target.name)
              and now and f.explains_violation(finding.invariant, now.scenario, now.observation)]
    if now and not others:
        return f"REPRODUCES here although {bounds}: a regression"
    also = f"; its run breaks `{finding.invariant}` here only for {', '.join(others)}'s cause" if others else ""
    return f"{bounds}: does not reproduce on this release, as expected (see Across releases){also}"


if __name__ == "__main__":
    import sys

    sys.exit(_print_real_server_row())
