"""``finalstate export``: the findings as pytest modules that need only Airflow and pytest (``impl.export.writer``)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from impl.frontdoor import cli
from impl.export import writer as export
from impl.catalogue.findings import ALL_FINDINGS
from impl.releases.adapters import model_release
from impl.releases.environments import UnknownRelease
from model import supervisor
from model.client import as_seen
from model.runtime import TERMINAL_FRAMES, RuntimeRun, compose, python_runtime
from model.release import SPECIFIED
from model.scenario import Scenario

#: What an exported module may import: the standard library, Airflow and what the task-sdk itself brings for the
#: harness (psutil: the process's errors before 1.3.0; httpx, or httpx2 from 1.4.0: the client's errors), pytest.
ALLOWED = {"airflow", "psutil", "httpx", "httpx2", "pytest"}

EXPORTED = export.export_all(model_release())
MODULES = [r for r in EXPORTED if isinstance(r, export.Exported)]


def _imported(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            names.add(node.module.split(".")[0])
    return names


@pytest.fixture(scope="module")
def execution_api():
    """One real Execution API (a module's ``ExecutionAPIServer``: a SQLite database migrated once) that every loaded
    module of this file uses, each run on its own DagRun, instead of migrating one each; closed when this file's tests
    end, as a module's own fixture closes it under pytest."""
    made = []
    yield made
    for server in made:
        server.close()


@pytest.fixture
def load(tmp_path, monkeypatch, execution_api):
    """Import an exported module from a file, as pytest would (registered in ``sys.modules`` while the test runs);
    a module that serves the real Execution API is given the shared one (``execution_api``). Airflow's logging is
    Airflow's own while it runs, as in a process of its own: finalstate's in-process target, which other tests in
    this process may have imported, configures structlog without the stdlib API the scheduler's ``schedule_tis``
    calls (``impl.server.airflow_api.quiet_logs``)."""
    from impl.server.airflow_api import quiet_logs, saved_logging

    restore = saved_logging()
    quiet_logs()
    modules = []

    def loaded(module: export.Exported):
        path = tmp_path / module.name
        path.write_text(module.source)
        spec = importlib.util.spec_from_file_location(f"exported_{module.name[:-3]}", path)
        imported = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, imported)
        spec.loader.exec_module(imported)
        if hasattr(imported, "execution_api_server"):
            if not execution_api:
                execution_api.append(imported.ExecutionAPIServer())
            imported._servers.append(execution_api[0])
            modules.append(imported)
        return imported
    yield loaded
    for imported in modules:
        imported._servers.clear()  # the shared server outlives the module
    restore()


def test_every_finding_is_exported_or_named_with_its_reason():
    assert [r.finding.id for r in EXPORTED] == [f.id for f in ALL_FINDINGS]
    for r in EXPORTED:
        assert isinstance(r, export.Exported) or len(r.reason) > 20, r
    reasons = {r.finding.id: r.reason for r in EXPORTED if isinstance(r, export.NotExported)}
    assert "coordinator" in reasons["C1"]
    assert {"F1", "F2", "F8", "F12", "R1", "W1"} <= {m.finding.id for m in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.finding.id)
def test_a_module_imports_only_airflow_pytest_and_the_standard_library(module):
    compile(module.source, module.name, "exec")
    outside = {name for name in _imported(module.source) if name not in sys.stdlib_module_names} - ALLOWED
    assert not outside, f"{module.name} imports {outside}"
    assert "finalstate" not in _imported(module.source)
    assert f"def {module.name[:-3]}():" in module.source
    assert module.finding.headline in " ".join(module.source.split())  # the docstring states the finding


#: A supervisor finding's module, against the harness's stand-in Execution API or (``server``) the real app.
SUPERVISOR_MODULES = [m for m in MODULES if export.kind_of(m.finding) in ("supervisor", "server")]
RUNTIME_MODULES = [m for m in MODULES if m.finding.kind == "runtime"]


@pytest.mark.parametrize("module", SUPERVISOR_MODULES, ids=lambda m: m.finding.id)
def test_the_modules_client_sees_what_the_model_says(module, load):
    """The harness's mock client (or, for a finding of the Execution API itself, the real app on a database the
    module migrates) answers as finalstate's model of the installed release does: the same calls with the same
    answers, the same final state and row."""
    scenario = Scenario.from_text(module.finding.scenario)
    expected = supervisor.run(scenario, model_release())
    attempt = load(module).minimal_run()
    assert [str(c) for c in attempt.calls] == [str(c) for c in as_seen(expected.calls, scenario.execution_api_retries)]
    assert (attempt.final_state or "none") == expected.final_state.lower()
    assert attempt.row == expected.row
    assert attempt.hung == expected.hung


@pytest.mark.parametrize("module", RUNTIME_MODULES, ids=lambda m: m.finding.id)
def test_the_modules_task_runner_does_what_the_model_says(module, load):
    """The real task runner in the harness sends, decides and exits as finalstate's model of the installed release
    says, and the supervisor records its exit as the model composes it."""
    run = RuntimeRun.from_text(module.finding.scenario)
    expected = python_runtime(run, model_release())
    attempt = load(module).minimal_run()
    assert [(s.type, s.delivered) for s in attempt.sent] == [(s.frame.frame, s.delivered) for s in expected.sent]
    assert (attempt.state, attempt.exit_code) == (expected.state, expected.exit_code)
    assert (attempt.on_kill_calls, attempt.forked_child_exit) == (expected.on_kill_calls, expected.forked_child_exit)
    if not any(s.delivered and s.frame.frame in TERMINAL_FRAMES for s in expected.sent):
        assert attempt.recorded == compose(run.context, expected).final_state
    else:
        assert attempt.recorded is None


LIFECYCLE_MODULES = [m for m in MODULES if m.finding.kind == "lifecycle"]


@pytest.mark.parametrize("module", LIFECYCLE_MODULES, ids=lambda m: m.finding.id)
def test_the_modules_life_is_what_the_model_says(module, load):
    """A lifecycle module lives its tries on the real Execution API as finalstate's model of the installed release
    lives them: each try's exit, final state and row, and the row the scheduler's step leaves."""
    run = export.KINDS["lifecycle"].parse(module.finding.scenario)
    expected = export._model_life(run, model_release())
    life = load(module).minimal_run()
    assert [(t.exit_code, t.final_state, t.row) for t in life.tries] == [
        (t.observation.exit_code, t.observation.final_state.lower() if t.observation.exit_code is not None else None,
         t.observation.row) for t in expected.tries]
    assert life.tries[-1].row_after.split()[0] == expected.row.state


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.finding.id)
def test_a_test_fails_exactly_where_the_matrix_says(module, load):
    """Run in process on the installed release: a standing finding's test fails with its invariant's message."""
    test = getattr(load(module), module.name[:-3])
    expected = export.expected_outcome(module.finding, model_release())
    if expected == "passes":
        test()
        return
    with pytest.raises(AssertionError) as failed:
        test()
    message = str(failed.value).split("\nassert")[0]
    opening = re.search(r'f"([^{"]+)', export.INVARIANTS[module.finding.invariant].assertion).group(1)
    assert message.startswith(opening), message  # the invariant's own message, not some other error's
    assert "finalstate" not in message


def test_the_committed_modules_are_what_the_generator_writes(tmp_path):
    """exported/ (which FINDINGS.md links to) is ``finalstate export --all --out exported`` on the pinned release."""
    export.write(export.export_all(SPECIFIED), tmp_path)
    written = {p.name: p.read_text() for p in tmp_path.glob("test_*.py")}
    committed = {p.name: p.read_text() for p in export.EXPORTED.glob("test_*.py")}
    assert committed == written, "exported/ is stale: run finalstate export --all --out exported"


def test_unknown_findings_and_releases_are_refused(capsys):
    with pytest.raises(export.UnknownFinding, match="unknown finding 'F99'; known: F1, F2"):
        export.find("F99")
    with pytest.raises(UnknownRelease, match="unknown task-sdk release '9.9.9'"):
        export.clean_python_for("9.9.9")
    with pytest.raises(SystemExit, match="unknown finding 'X1'"):
        cli.main(["export", "--findings", "F1,X1", "--out", "/nonexistent/never-written"])
    with pytest.raises(UnknownRelease, match=r"unknown task-sdk release\(s\) 9.9.9"):
        export.check(export.EXPORTED, ("1.3.2", "9.9.9"))


def test_the_check_refuses_an_environment_with_finalstate(tmp_path):
    """This checkout's own environment has finalstate: the check's probe must say so."""
    with pytest.raises(export.CheckFailed, match="finalstate .* is importable there"):
        export._require_no_finalstate(Path(sys.executable), str(tmp_path))


def test_the_table_marks_a_disagreement_and_reads_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="test_f1_x" name="t"><failure message="m"/>'
                     '</testcase><testcase classname="d.test_f8_y" name="t"/><testcase classname="" name="d.test_r3_z">'
                     '<skipped message="collection skipped"/></testcase></testsuite></testsuites>')
    assert export._outcomes(junit) == {"test_f1_x.py": "fails", "test_f8_y.py": "passes", "test_r3_z.py": "skipped"}
    rows = (export.Row("F1", "1.3.2", "fails", "fails"), export.Row("F8", "1.3.2", "passes", "fails"),
            export.Row("F15", "1.3.2", "fails", "fails by F2"))
    text = export.table(rows)
    assert "| F8 | **passes** ✗ (matrix: fails) |" in text and "| F15 | fails by F2 |" in text
    assert "2 of 3 cells agree" in text


def test_findings_md_links_each_finding_to_its_exported_test():
    """Each finding's entry in FINDINGS.md carries its report line: a link that resolves, or why it has none."""
    text = (export.ROOT / "FINDINGS.md").read_text()
    for finding in ALL_FINDINGS:
        assert export.report_line(finding) in text, f"FINDINGS.md lacks {finding.id}'s exported test line"
    for module in MODULES:
        assert (export.ROOT / export.EXPORTED.name / module.name).is_file()
