"""``finalstate coverage`` and ``finalstate mutate``: real figures from small runs, and the installed file never touched."""

from __future__ import annotations

import argparse
import hashlib
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="coverage and mutate measure the airflow extra")
pytest.importorskip("coverage", reason="finalstate coverage needs coverage.py")
pytest.importorskip("cosmic_ray", reason="finalstate mutate needs cosmic-ray")

from impl.power import coverage  # noqa: E402
from impl.power import mutate  # noqa: E402

SUPERVISOR_FILE = coverage.source_path(coverage.SUPERVISOR.module)


def _hashes() -> dict[Path, str]:
    """Every Python file of the installed execution_time package (the supervisor and its neighbours)."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SUPERVISOR_FILE.parent.glob("*.py"))}


@pytest.fixture(scope="module")
def untouched():
    """The installed files hash the same after the tests of this module as before."""
    before = _hashes()
    yield
    assert _hashes() == before, "a file of the installed task-sdk changed"


def test_both_commands_register_their_subcommand():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    coverage.add_parser(sub)
    mutate.add_parser(sub)
    args = parser.parse_args(["coverage", "--target", "airflow-task-runner", "--", "-k", "x"])
    assert args.func is coverage.cmd_coverage and args.pytest_args == ["-k", "x"] and args.profile == "ci"
    args = parser.parse_args(["mutate", "--workers", "1", "--sample", "3"])
    assert args.func is mutate.cmd_mutate and (args.target, args.workers, args.sample) == ("airflow-inproc", 1, 3)


@pytest.mark.parametrize("scope", [coverage.SUPERVISOR, coverage.TASK_RUNNER], ids=lambda s: s.module.split(".")[-1])
def test_every_measured_function_exists_upstream(scope):
    source = coverage.source_path(scope.module).read_text()
    lines = source.splitlines()
    found = coverage.regions(scope, source)
    assert [r.name for r in found] == list(scope.functions)
    for region in found:
        assert region.lines and all(1 <= n <= len(lines) for n in region.lines)


def test_the_terminal_frame_part_of_handle_request_is_the_terminal_branches_only():
    source = SUPERVISOR_FILE.read_text()
    lines = source.splitlines()
    region = next(r for r in coverage.regions(coverage.SUPERVISOR, source) if "_handle_request" in r.name)
    text = {lines[n - 1].strip() for n in region.lines}
    for frame in coverage.TERMINAL_FRAMES:
        assert any(t.endswith(f"isinstance(msg, {frame}):") for t in text), frame
    assert not any("GetConnection" in t or "MaskSecret" in t for t in text)


@pytest.mark.parametrize("scope", [coverage.SUPERVISOR, coverage.TASK_RUNNER], ids=lambda s: s.module.split(".")[-1])
def test_every_branch_listed_unreachable_is_in_the_installed_source(scope):
    """Each listed branch names a function of the scope, a line of it, a line it goes to and its body's lines."""
    source = coverage.source_path(scope.module).read_text()
    lines = source.splitlines()
    by_name = {r.name: r for r in coverage.regions(scope, source)}
    for u in scope.unreachable:
        region = by_name[u.function]
        text = [lines[n - 1].strip() for n in sorted(region.lines)]
        assert u.line in text, u
        after = text[text.index(u.line) + 1:]
        assert u.to == "exit" or u.to in after, u
        assert all(b in after for b in u.body), u
        assert u.reason


def _region(*numbered: tuple[int, str]) -> tuple[coverage.Region, list[str]]:
    source = [""] * max(n for n, _ in numbered)
    for n, text in numbered:
        source[n - 1] = text
    lines = frozenset(n for n, _ in numbered)
    return coverage.Region("f", min(lines), max(lines), lines), source


def test_listed_branches_are_matched_by_text_and_contradictions_reported():
    region, source = _region((10, "if msg:"), (11, "send(msg)"), (12, "x = 1"), (13, "if y:"), (14, "return"))
    listed = [coverage.Unreachable("f", "if msg:", "x = 1", "msg is always set"),
              coverage.Unreachable("f", "if y:", "return", "never y", body=("return",)),
              coverage.Unreachable("f", "if gone:", "exit", "upstream removed it")]
    found, body, contradicted = coverage._match_unreachable(listed, region, source, {(10, 12), (13, 14)})
    assert found == [(10, 12, "msg is always set"), (13, 14, "never y")] and body == {14}
    assert contradicted == ["listed unreachable, but not in the source: if gone: -> exit"]
    # the same list after a run that took 10 -> 12: the list is out of date, and says so
    found, _, contradicted = coverage._match_unreachable(listed[:1], region, source, {(13, 14)})
    assert found == [] and contradicted == ["listed unreachable, but taken (or no such branch): if msg: -> x = 1"]


def test_the_report_counts_unreachable_branches_apart_and_prints_why():
    f = coverage.FunctionCoverage("run", 1, 20, lines=10, lines_run=9, branches=6, branches_taken=5,
                                  missing_lines=(), missing_branches=(), unreachable_branches=((12, 14, "always set"),),
                                  unreachable_lines=(15,))
    source = tuple(f"line{n}" for n in range(1, 21))
    report = coverage.CoverageReport("airflow-task-runner", "ci", coverage.source_path(coverage.TASK_RUNNER.module),
                                     (f,), source, 0, 1.0)
    assert report.branches == (5, 6) and report.reachable_branches == (5, 5)
    text = coverage.format_report(report)
    assert "never reached: nothing reachable" in text
    assert "branch 12 -> 14: line12  ->  line 14: line14" in text and "why: always set" in text
    assert "lines only those branches lead to: 15" in text


def test_other_targets_are_refused_with_the_one_to_use():
    with pytest.raises(coverage.NotMeasurable, match="airflow-inproc runs the same supervisor code in process"):
        coverage.scope_for("airflow-process")
    with pytest.raises(coverage.NotMeasurable, match="unknown target 'nope'"):
        coverage.scope_for("nope")


def test_coverage_of_a_small_run_reports_the_branches_of_final_state(untouched):
    """The registered findings' scenarios alone: a few attempts, real figures."""
    report = coverage.measure("airflow-inproc", "ci", ["-k", "test_finding_still_reproduces"])
    assert report.pytest_status == 0
    final_state = next(f for f in report.functions if f.name == "ActivitySubprocess.final_state")
    assert final_state.branches == 6 and 0 < final_state.branches_taken <= 6
    assert final_state.lines_run > 0
    text = coverage.format_report(report)
    assert "ActivitySubprocess.final_state" in text and "never reached:" in text
    # the findings never heartbeat three times in a row: the kill after too many failures is named as never run
    assert "self.kill(signal.SIGTERM, force=True)" in text


def test_coverage_of_the_runtime_findings_runs_the_failure_paths_and_names_the_unreachable(untouched):
    """The runtime findings' runs alone on airflow-task-runner: R3 goes through the handler failure's fail-closed
    path; the branches the scope lists unreachable are counted apart with their reason, none contradicted."""
    report = coverage.measure("airflow-task-runner", "ci", ["-k", "test_runtime_finding_still_reproduces"])
    assert report.pytest_status == 0
    by_name = {f.name: f for f in report.functions}
    assert by_name["_terminal_failure"].lines_run == by_name["_terminal_failure"].lines > 0
    assert by_name["_handle_handler_failure"].branches_taken >= 1
    assert not [c for f in report.functions for c in f.contradicted]
    unreachable = {(f.name, r) for f in report.functions for _, _, r in f.unreachable_branches}
    assert {name for name, _ in unreachable} == {"_run_task_and_map_outcome", "run", "main"}
    taken, reachable = report.reachable_branches
    assert reachable == report.branches[1] - len(unreachable) and taken < reachable
    text = coverage.format_report(report)
    assert "unreachable (impl/power/coverage.py lists them, with the reason):" in text
    assert "dead code in this release" in text


_FS, _UP = "ActivitySubprocess.final_state", "ActivitySubprocess.update_task_state_if_needed"
#: The classic bugs of the terminal-state decision, as generated mutants (they replace the hand-written
#: monkeypatches this suite once held): each must be among the generated ones, and each must be killed.
CLASSIC_MUTANTS = {
    "exit 0 ignores the terminal state":
        f"{_FS} | KeepOneOperand | return self._terminal_state or TaskInstanceState.SUCCESS => "
        "return TaskInstanceState.SUCCESS",
    "SERVER_TERMINATED ignored on failure": f"{_FS} | DeleteStatement | return SERVER_TERMINATED => pass",
    "should_retry ignored, a failure never retried":
        f"{_FS} | DeleteStatement | return TaskInstanceState.UP_FOR_RETRY => pass",
    "a non-zero exit always retries":
        f"{_FS} | KeepOneOperand | if self._exit_code != 0 and self._should_retry: => if self._exit_code != 0:",
    "no replay of a pending terminal call":
        f"{_UP} | ConditionFalse | if self._pending_terminal_state_msg is not None: => if False:",
    "finish() for every state": f"{_UP} | ConditionTrue | if self.final_state not in STATES_SENT_DIRECTLY: => if True:",
    "finish() never called": f"{_UP} | ConditionFalse | if self.final_state not in STATES_SENT_DIRECTLY: => if False:",
}


#: The properties that judge the smoke slice's mutants.
SMOKE_PROPERTIES = "test_conformance or test_final_state_on_its_whole_domain"


def test_the_classic_mutants_are_generated_and_killed(untouched):
    """The smoke slice of ``finalstate mutate``: seven mutants run as the command runs them (a child each, ci
    profile), and the checker kills every one. Each is judged by conformance and the decision table, as
    ``finalstate mutate --properties SMOKE_PROPERTIES`` judges: the unmutated copy must pass every property a mutant is
    judged by, and all of them (the exhaustive scope, each invariant's search) cost it about three minutes here, which
    the test run spends already on the same properties of the same target."""
    by_key = {m.key: m for m in mutate.generate(functions=("final_state", "update_task_state_if_needed"))}
    missing = [name for name, key in CLASSIC_MUTANTS.items() if key not in by_key]
    assert not missing, f"no longer generated: {missing}"
    report = mutate.run(mutants=[by_key[key] for key in CLASSIC_MUTANTS.values()], workers=2, ttfc=False,
                        properties=SMOKE_PROPERTIES)
    assert f"judged by the properties -k {SMOKE_PROPERTIES!r} only" in mutate.format_report(report)
    assert report.unchanged and report.baseline.status == "survived", report.baseline
    names = {key: name for name, key in CLASSIC_MUTANTS.items()}
    not_killed = {names[o.mutant.key]: (o.status, o.detail) for o in report.outcomes if o.status != "killed"}
    assert not not_killed, not_killed
    assert len(report.outcomes) == len(CLASSIC_MUTANTS)


def test_operators_negate_every_branch_and_spare_logging():
    from cosmic_ray.mutating import mutate_code

    ops = mutate.operators()
    code = textwrap.dedent("""\
        def f(a, b):
            if a:
                log.info("a", n=1)
                return 1
            elif b and a:
                x = 2
            return 0
        """)
    negated = [mutate_code(code, ops["finalstate/NegateCondition"], i) for i in range(2)]
    assert "    if not (a):\n" in negated[0] and "    elif not (b and a):\n" in negated[1]
    assert "elif b:" in mutate_code(code, ops["finalstate/KeepOneOperand"], 0)
    deleted = [mutate_code(code, ops["finalstate/DeleteStatement"], i) for i in range(4)]
    assert deleted[3] is None  # three statements only: the logging call is not one of them
    assert all('log.info("a", n=1)' in d for d in deleted[:3])


def test_the_whole_file_is_rebuilt_from_an_unmutated_unit():
    source = SUPERVISOR_FILE.read_text()
    unit = next(u for u in mutate.units(coverage.SUPERVISOR, source) if u.name.endswith("final_state"))
    same = mutate.Mutant(1, unit.name, "none", 0, unit.first, "", "", unit.text)
    assert mutate.mutated_source(source, same) == source


def test_a_mutant_is_what_the_child_imports_and_the_checker_kills_it(tmp_path, untouched):
    """final_state always SUCCESS, loaded in a child in place of the installed module: conformance kills it at once."""
    source = SUPERVISOR_FILE.read_text()
    unit = next(u for u in mutate.units(coverage.SUPERVISOR, source) if u.name.endswith("final_state"))
    check = "    if self._exit_code == 0:\n"
    assert check in unit.text
    text = unit.text.replace(check, "    return TaskInstanceState.SUCCESS\n" + check, 1)
    mutant = mutate.Mutant(1, unit.name, "test/AlwaysSuccess", 0, unit.first, "", "", text)
    mutated = mutate.mutated_source(source, mutant)
    assert mutated != source and len(mutated.splitlines()) == len(source.splitlines()) + 1

    outcome = mutate.run_mutant(mutated, coverage.SUPERVISOR.module, "airflow-inproc", "ci", 120, True, mutant,
                                tmp_path)
    assert outcome.status == "killed", outcome
    assert "test_conformance" in outcome.detail
    assert outcome.ttfc is not None and outcome.ttfc < 1.0 and outcome.ttfc_error == "Disagreement"
    assert outcome.seconds < 60
    assert list(tmp_path.iterdir()) == []  # the mutant's copy is gone
