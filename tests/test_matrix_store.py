"""The matrix as CI jobs: the plan, one cell, the merge, and the store that keeps each cell's result by what it checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from impl.compare import matrix
from impl.releases.environments import RELEASES
from impl.compare.matrix import REPRODUCES, Cell, cell_for, merge, plan, table, write_record
from impl.compare.store import CHECKER_PARTS, Store, cell_key

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)


def test_the_plan_is_a_job_matrix_of_every_release_and_target():
    planned = plan(tuple(RELEASES), matrix.DEFAULT_TARGETS, "ci")
    cells = planned["include"]
    assert len(cells) == len(RELEASES) * len(matrix.DEFAULT_TARGETS) == 44
    assert cells[0] == {"release": "1.0.0", "target": "airflow-inproc", "profile": "ci", "cell": "1.0.0:airflow-inproc",
                        "key": cells[0]["key"]}
    assert len({c["cell"] for c in cells}) == 44
    json.dumps(planned)  # as the job matrix takes it


def test_a_cells_key_changes_with_what_it_checks_and_nothing_else(tmp_path):
    checkout = tmp_path / "finalstate"
    for part in CHECKER_PARTS:
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, checkout / part)
    key = cell_key("installed", "airflow-inproc", "ci", PYTHON, checkout)
    assert cell_key("installed", "airflow-inproc", "ci", PYTHON, checkout) == key
    assert cell_key("installed", "airflow-task-runner", "ci", PYTHON, checkout) != key
    assert cell_key("installed", "airflow-inproc", "nightly", PYTHON, checkout) != key
    (checkout / "model" / "__pycache__").mkdir(exist_ok=True)
    (checkout / "model" / "__pycache__" / "x.pyc").write_bytes(b"cache")  # not part of the checker
    assert cell_key("installed", "airflow-inproc", "ci", PYTHON, checkout) == key
    touched = checkout / "model" / "scenario.py"
    touched.write_text(touched.read_text() + "\n")
    assert cell_key("installed", "airflow-inproc", "ci", PYTHON, checkout) != key


def _cell(release="installed", target="airflow-inproc", **kw) -> Cell:
    return Cell(release, target, "ran", "log: x", 12.0, {"F1": REPRODUCES}, (("t::x", "VIOLATION on x", "finalstate replay ..."),),
                300, {"passed": 3, "failed": 1, "xfailed": 1, "skipped": 0}, ("F1",), **kw)


def test_a_stored_cell_is_not_run_again_until_fresh(tmp_path, monkeypatch):
    runs = []

    def run_cell(release, target, profile, python_for, out, *args):
        runs.append((release, target))
        out.mkdir(parents=True, exist_ok=True)
        matrix.cell_file(out, release, target, ".xml").write_text("<testsuites/>")
        return _cell(release, target)

    monkeypatch.setattr(matrix, "run_cell", run_cell)
    monkeypatch.setattr(matrix, "cell_key", lambda *args: "k" * 32)
    store = Store(tmp_path / "store")
    first = cell_for("installed", "airflow-inproc", store=store, python_for=lambda r: PYTHON, out=tmp_path / "a")
    again = cell_for("installed", "airflow-inproc", store=store, python_for=lambda r: PYTHON, out=tmp_path / "b")
    assert runs == [("installed", "airflow-inproc")] and not first.stored and again.stored
    assert attrs.evolve(again, stored=False, detail=first.detail) == first
    assert (tmp_path / "b" / "installed--airflow-inproc.xml").read_text() == "<testsuites/>"
    cell_for("installed", "airflow-inproc", store=store, fresh=True, python_for=lambda r: PYTHON, out=tmp_path / "c")
    assert len(runs) == 2


def test_a_merge_builds_the_table_a_run_builds_and_names_a_missing_cell(tmp_path):
    cells = [_cell("1.3.2", "airflow-inproc"), _cell("1.3.2", "airflow-task-runner")]
    for cell in cells:
        write_record(cell, tmp_path / cell.target)
    merged = merge([tmp_path / "airflow-inproc", tmp_path / "airflow-task-runner"], ("1.3.2",),
                   ("airflow-inproc", "airflow-task-runner"))
    assert merged == cells and table(merged, "ci") == table(cells, "ci")
    partial = merge([tmp_path / "airflow-inproc"], ("1.3.2",), ("airflow-inproc", "airflow-task-runner"))
    assert partial[1].status == "missing" and "no record of this cell" in partial[1].detail
    assert "**missing**" in table(partial, "ci")


def test_a_cell_that_is_not_release_colon_target_is_refused_by_name():
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "matrix", "--cell", "airflow-inproc"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode != 0 and "'airflow-inproc' is not RELEASE:TARGET" in done.stderr


def test_two_searches_share_what_they_find_through_one_example_database(tmp_path):
    """Two runs of one property, each with a database of its own and one shared (FINALSTATE_SHARED_EXAMPLE_DB): the
    second, with nothing of its own yet, replays the first one's counterexample before it searches."""
    seed = ROOT / "tests" / "fixtures" / "seed_runtime.py"
    command = [sys.executable, "-m", "pytest", str(ROOT / "properties" / "test_coordinator.py"),
               f"--target=cmd:{sys.executable} -I {seed}", "--hypothesis-profile=dev", "-p", "no:cacheprovider", "-q",
               "-k", "invariant and retries_left", "--hypothesis-show-statistics"]

    def search(machine: str) -> str:
        env = {**__import__("os").environ, "FINALSTATE_EXAMPLE_DB": str(tmp_path / machine),
               "FINALSTATE_SHARED_EXAMPLE_DB": str(tmp_path / "shared")}
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        assert done.returncode == 1, done.stdout[-2000:]  # the seed's bug, found
        return done.stdout

    first = search("one")
    assert "during generate phase" in first and any((tmp_path / "shared").iterdir())
    second = search("two")
    reuse = second.split("during reuse phase", 1)
    assert len(reuse) == 2 and "0 passing, 1 failing" in reuse[1].split("phase", 1)[0], second[-3000:]
