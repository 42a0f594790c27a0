"""``finalstate matrix``: cells from real checker runs, findings tied to their tests exactly, failed cells kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from impl.catalogue.findings import ALL_FINDINGS, FINDINGS, installed_release
from impl.releases.environments import UnknownRelease, python_for
from impl.compare.matrix import (FIXED, NOT_APPLICABLE, NOT_RUN, REPRODUCES, Cell, cell_arguments, findings_section,
                                  history, read_junit, run_cell, table, update_findings, verdict)
from impl.supervisor_process.census import children_running

F1 = next(f for f in FINDINGS if f.id == "F1")
F2 = next(f for f in FINDINGS if f.id == "F2")


def test_pytests_own_strict_outcomes_map_to_the_findings(tmp_path):
    """A real pytest run of strict expected failures marked as the properties mark them: one fails as expected
    (reproduces), one passes (the strict XPASS: fixed); an ordinary failure is new."""
    tests = tmp_path / "test_marks.py"
    tests.write_text(textwrap.dedent(f"""
        import pytest

        @pytest.mark.xfail(strict=True, reason={F1.headline!r})
        def test_reproduces():
            assert False

        @pytest.mark.xfail(strict=True, reason={F2.headline!r})
        def test_fixed():
            pass

        def test_new():
            assert 1 == 2, "VIOLATION on somewhere: a new bug"
    """))
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(tests), f"--junit-xml={junit}", "-p", "no:cacheprovider",
                    "-q"], cwd=tmp_path, capture_output=True)
    findings, new, _, counts = read_junit(junit)
    assert findings == {"F1": REPRODUCES, "F2": FIXED}
    assert len(new) == 1 and new[0][0].endswith("test_new") and "a new bug" in new[0][1]
    assert counts == {"passed": 0, "failed": 2, "skipped": 0, "xfailed": 1}


def test_a_fixed_findings_ordinary_test_reads_fixed_or_back(tmp_path):
    """On a release from a finding's ``fixed_in`` on, its test is an ordinary one carrying the ``finding absent``
    property (``properties/conftest.expect_the_finding``): passing, the finding is fixed there; failing, it is back,
    and new on that release."""
    tests = tmp_path / "test_fixed.py"
    tests.write_text(textwrap.dedent("""
        def test_holds(request):
            request.node.user_properties.append(("finding absent", "F13"))

        def test_broken_again(request):
            request.node.user_properties.append(("finding absent", "F12"))
            assert False, "VIOLATION on somewhere: F12's run again"
    """))
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(tests), f"--junit-xml={junit}", "-p", "no:cacheprovider",
                    "-q"], cwd=tmp_path, capture_output=True)
    findings, new, _, counts = read_junit(junit)
    assert findings == {"F13": FIXED, "F12": REPRODUCES}
    assert len(new) == 1 and new[0][0].endswith("test_broken_again")
    assert counts == {"passed": 1, "failed": 1, "skipped": 0, "xfailed": 0}


def test_properties_that_take_no_target_run_once_per_release():
    targets = ("airflow-inproc", "airflow-task-runner")
    assert cell_arguments("airflow-inproc", targets, ("-x",)) == ("-x",)
    assert cell_arguments("airflow-task-runner", targets, ("-x",)) == (
        "-x", "--deselect", "properties/test_server_conformance.py")


def test_xfail_reasons_are_read_with_the_registry_of_the_checkout_that_ran(tmp_path):
    """A cell run on another checkout (``--checkout``) carries that checkout's headlines: read with its registry,
    a finding whose headline was reworded since is still the same finding."""
    tests = tmp_path / "test_marks.py"
    tests.write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.xfail(strict=True, reason="F1 as an older checkout words it")
        def test_reproduces():
            assert False
    """))
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(tests), f"--junit-xml={junit}", "-p", "no:cacheprovider",
                    "-q"], cwd=tmp_path, capture_output=True)
    assert read_junit(junit, {"F1 as an older checkout words it": "F1"})[0] == {"F1": REPRODUCES}
    assert read_junit(junit)[0] == {}  # this checkout's registry does not know that wording


@pytest.fixture(scope="module")
def real_cell(tmp_path_factory) -> Cell:
    """The installed release's findings run on airflow-inproc (the ``*_finding_still_reproduces`` tests only)."""
    pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the cell runs the real supervisor")
    return run_cell("installed", "airflow-inproc", out=tmp_path_factory.mktemp("matrix"),
                    pytest_args=("-k", "finding_still_reproduces"))


def test_a_real_cell_reads_each_findings_outcome(real_cell):
    assert real_cell.status == "ran", real_cell.detail
    # Every supervisor finding's test ran on airflow-inproc and was read as reproduced or fixed, and the
    # verdicts add up to pytest's own outcome counts.
    checked_here = {f.id for f in ALL_FINDINGS
                    if any(f.about(t) for t in ("airflow-inproc", "model-runtime+airflow-inproc",
                                                "model-coordinator+airflow-inproc"))}
    assert set(real_cell.findings) == checked_here
    verdicts = list(real_cell.findings.values())
    absent = {f.id for f in ALL_FINDINGS if not f.stands_on(installed_release())} & checked_here  # ordinary tests
    assert real_cell.counts["xfailed"] == verdicts.count(REPRODUCES)
    assert real_cell.counts["failed"] == verdicts.count(FIXED) - len(absent) + len(real_cell.new)
    assert real_cell.counts["passed"] == len(absent)
    assert all(real_cell.findings[f] == FIXED for f in absent)
    assert REPRODUCES in verdicts  # the pinned release has its findings (F1 among them)
    assert real_cell.findings["F1"] == REPRODUCES


def test_failed_cells_are_marked_never_dropped(real_cell, tmp_path):
    env_failed = run_cell("9.9.9", "airflow-inproc", out=tmp_path)
    assert env_failed.status == "env failed" and "'9.9.9'" in env_failed.detail
    overran = run_cell("installed", "airflow-inproc", out=tmp_path, timeout=0.5)
    assert overran.status == "overran"
    crashed = run_cell("crashing", "airflow-inproc", out=tmp_path, pytest_args=("--no-such-option",),
                       python_for=lambda spec: python_for("installed"))
    assert crashed.status == "crashed" and "exited 4" in crashed.detail

    cells = [real_cell, env_failed, crashed]
    text = table(cells, "ci")
    assert "**env failed**" in text and "**crashed**" in text
    header = next(line for line in text.splitlines() if line.startswith("| finding |")).strip("| ").split(" | ")
    f1_row = next(line for line in text.splitlines() if line.startswith("| F1 |")).strip("| ").split(" | ")
    assert dict(zip(header, f1_row)).items() >= {"installed": REPRODUCES, "9.9.9": "env failed", "crashing": "crashed"}.items()
    assert verdict(F1, "installed", cells) == REPRODUCES
    w1 = next(f for f in ALL_FINDINGS if f.id == "W1")
    assert verdict(w1, "installed", cells) == NOT_APPLICABLE  # a wire finding: airflow-process only


def test_a_cell_records_the_findings_registered_where_it_ran(real_cell):
    assert real_cell.registered == tuple(f.id for f in ALL_FINDINGS)


def test_a_finding_registered_after_the_run_is_shown_as_not_in_it():
    f12 = next(f for f in ALL_FINDINGS if f.id == "F12")
    before_f12 = [Cell("1.2.2", "airflow-inproc", "ran", findings={"F1": REPRODUCES}, registered=("F1",)),
                  Cell("1.3.2", "airflow-inproc", "ran", findings={"F1": REPRODUCES}, registered=("F1",))]
    assert verdict(f12, "1.3.2", before_f12) == NOT_RUN
    assert history(f12, before_f12) == (NOT_RUN, "—")
    f12_row = next(line for line in table(before_f12, "ci").splitlines() if line.startswith("| F12 |"))
    assert f12_row.count(NOT_RUN) == 3  # both releases and "introduced in"
    # A saved run that did not record what was registered says n/a, as it did.
    assert verdict(f12, "1.3.2", [attrs.evolve(c, registered=None) for c in before_f12]) == NOT_APPLICABLE


def test_introduced_and_fixed_follow_the_releases_in_order():
    def cell(release, outcome):
        return Cell(release, "airflow-inproc", "ran", findings={"F1": outcome} if outcome else {})

    cells = [cell("1.0.0", FIXED), cell("1.1.0", REPRODUCES), cell("1.2.0", REPRODUCES), cell("1.3.0", FIXED)]
    assert history(F1, cells) == ("1.1.0", "1.3.0")
    assert history(F1, cells[1:3]) == ("≤ 1.1.0", "not fixed (reproduces on 1.2.0)")
    # Nothing checked before it: "≤"; a release in between that could not run is named.
    broken = Cell("1.0.5", "airflow-inproc", "crashed")
    assert history(F1, [cell("1.0.0", None), *cells[1:]]) == ("≤ 1.1.0", "1.3.0")
    assert history(F1, [cells[0], broken, *cells[1:]]) == ("1.1.0 (or 1.0.5: not checked)", "1.3.0")
    assert history(F1, [cell("1.0.0", None)])[0] == "not checked by these targets"


def test_the_findings_section_is_replaced_in_place(tmp_path):
    findings_md = tmp_path / "FINDINGS.md"
    findings_md.write_text("# Findings\n\nkept above\n")
    cells = [Cell("1.3.2", "airflow-inproc", "ran", findings={"F1": REPRODUCES})]
    update_findings(findings_md, cells)
    update_findings(findings_md, cells)
    text = findings_md.read_text()
    assert text.startswith("# Findings\n\nkept above\n") and text.count("## Across releases") == 1
    assert "| F1 | ≤ 1.3.2 | not fixed (reproduces on 1.3.2) |" in findings_section(cells)


def test_an_unknown_release_is_refused_by_name():
    with pytest.raises(UnknownRelease, match="'0.0.1'"):
        python_for("0.0.1")
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "matrix", "--releases", "1.3.2,0.0.1"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode != 0 and "0.0.1" in done.stderr and "1.3.2" in done.stderr


def _children_running_pytest() -> set[int]:
    return children_running(b"pytest", b"--junit-xml")


def test_ctrl_c_kills_the_running_cells(tmp_path):
    from impl.compare.matrix import run_matrix

    seen: list[set[int]] = []

    def interrupt(cell):
        import time

        deadline = time.monotonic() + 60  # on a loaded machine the other cell's pytest may still be starting
        while not _children_running_pytest() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(_children_running_pytest())
        raise KeyboardInterrupt

    # The unknown release fails at once; the interrupt comes once the other cell's pytest is running.
    with pytest.raises(KeyboardInterrupt):
        run_matrix(("installed", "9.9.9"), ("airflow-inproc",), out=tmp_path, progress=interrupt)
    assert len(seen[0]) == 1, "the installed release's run was going when the interrupt came"
    assert not _children_running_pytest(), "a cell outlived the interrupt"


def test_a_terminated_matrix_leaves_no_cell_running(tmp_path):
    """A cancelled CI job's SIGTERM stops ``finalstate matrix --cell`` as Ctrl-C does: the cell's pytest and its
    xdist workers go with it."""
    import signal
    import time

    import psutil

    matrix = subprocess.Popen([sys.executable, "-m", "impl.compare.matrix", "--cell", "installed:airflow-inproc",
                               "--out", str(tmp_path), "--store", str(tmp_path / "store"), "--cell-workers", "2"],
                              cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        descendants: list[psutil.Process] = []
        while time.monotonic() < deadline and not any(b"pytest" in " ".join(p.cmdline()).encode()
                                                      for p in descendants if p.is_running()):
            time.sleep(0.2)
            descendants = psutil.Process(matrix.pid).children(recursive=True)
        assert descendants, "the cell's pytest never started"
        time.sleep(2)  # its xdist workers start
        descendants = psutil.Process(matrix.pid).children(recursive=True)
        matrix.send_signal(signal.SIGTERM)
        assert matrix.wait(30) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if matrix.poll() is None:
            matrix.kill()
