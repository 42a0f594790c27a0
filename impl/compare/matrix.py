"""``finalstate matrix``: every registered finding on every release, and the new violations each release shows.

    finalstate matrix [--releases 1.2.0,1.3.2] [--targets airflow-inproc,airflow-task-runner] [--profile ci]
                      [--workers 2] [--out build/matrix.md] [--update-findings FINDINGS.md]

For each release (``impl.releases.environments.RELEASES``) and target, one *cell*: the checker run
as CI runs it, ``<python_for(release)> -m pytest properties/ --target T --hypothesis-profile=ci
--junit-xml=...``, at most ``--workers`` at once. From each cell's JUnit XML:

* a registered finding (``impl.catalogue.findings.ALL_FINDINGS``) is *reproduced* where its strict
  expected failure failed as expected (XFAIL), *fixed* where it passed (the strict XPASS failure, or,
  on a release from its ``fixed_in`` on, its ordinary test passed with the ``finding absent`` property),
  and *not applicable* where its test was skipped or not run (the target does not check it). A
  test is tied to its finding by the xfail's reason, which is the finding's headline: exactly what
  ``properties/conftest.assert_reproduces`` and the wire properties mark, never a guess from names;
* every other failure is *new* on that release: an invariant violation no finding explains, or a
  disagreement with the model (which specifies the pinned release).

A cell whose environment did not build, whose run crashed (no JUnit report, a pytest exit other
than 0 or 1) or overran is marked so in the table, never dropped. The Markdown goes to stdout and
``build/matrix.md``; the per-cell JSON beside it is what ``--update-findings`` reads to rewrite the
"introduced in / fixed in" section of FINDINGS.md.

Each cell's result is kept in a store (``impl.compare.store``, ``--store``, default ``build/matrix-store``) under
the key of what it checked; a cell whose key is stored is taken from there and not run again (``--fresh`` runs
every cell). As CI jobs (``ci/finalstate-nightly.yml``):

    finalstate matrix --plan                                # the cells, as a job matrix: {"include": [...]}
    finalstate matrix --cell 1.3.2:airflow-inproc --out DIR # one job: one cell, its record and JUnit report
    finalstate matrix --merge DIR... [--update-findings FINDINGS.md]   # the table; a missing cell is named
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import attrs

from impl.catalogue.findings import ALL_FINDINGS, Finding
from impl.places import build_dir, code_root
from impl.compare.store import DEFAULT_STORE, Store, cell_key

BUILD = build_dir("matrix")
#: The targets the matrix runs by default: a supervisor and a runtime target, in process (real-process
#: targets, ``airflow-process`` and ``reference-runtime``, can be added with ``--targets``).
DEFAULT_TARGETS = ("airflow-inproc", "airflow-task-runner")
#: A cell that runs longer than this is stopped and marked overrun.
CELL_TIMEOUT = 1800.0
#: A single test running longer than this has pytest's faulthandler dump every stack into the cell's log,
#: so a hang says where it hangs.
STACK_DUMP_AFTER = 300

REPRODUCES, FIXED, NOT_APPLICABLE, BROKE, UNSUPPORTED = "reproduces", "fixed", "n/a", "error", "unsupported"
#: The finding was not registered in the checkout any cell of the release ran (a run from before it was found).
NOT_RUN = "not in this run"
#: A finding's own test, as every property file names it: ``test_..._finding_still_reproduces[<target>-<id>]``.
_FINDING_TEST = re.compile(r"finding_still_reproduces\[(.*)-([A-Z]\d+)\]$")

#: Each finding's upstream status in apache/airflow's public tracker (searched 2026-11-25 in copies of its
#: issues and pull requests, by the behaviour each describes): an issue or pull request that reports this very
#: bug, else "apparently new" — with a related one named only where it bears on the same code.
_AF = "https://github.com/apache/airflow"
UPSTREAM: dict[str, str] = {
    "F1": f"apparently new as a report of its own; its mechanism (exit 0, no terminal state, SUCCESS is in "
          f"STATES_SENT_DIRECTLY, no call, TI RUNNING) is spelled out in [#67266]({_AF}/pull/67266) (closed "
          f"unmerged), a fix for R1",
    "F2": f"apparently new; it came with [#55767]({_AF}/pull/55767) (in 1.1.2: a signal-killed task with should_retry "
          "is UP_FOR_RETRY, a state no call then reports), and 1.1.4 made every non-zero exit so",
    "F3": f"apparently new ([#66574]({_AF}/pull/66574), merged, recovers failed direct calls, not a failed finish())",
    "F4": f"reported with F7: the fix proposed in [#73142]({_AF}/pull/73142) (open) names the overtime SIGTERM case",
    "F5": "apparently new",
    "F6": "apparently new",
    "F7": f"reported: [#65708]({_AF}/issues/65708) (open, HTTP 409 invalid_state on finish after succeed); fix "
          f"proposed in [#73142]({_AF}/pull/73142) (open)",
    "F8": "apparently new",
    "F9": f"apparently new (the replay it defeats came with [#66574]({_AF}/pull/66574))",
    "F10": "apparently new",
    "F11": f"related: [#64023]({_AF}/pull/64023) (closed unmerged): a lost answer to the SUCCESS update, resent and "
           "refused with 409",
    "F12": f"apparently new; related: [#68902]({_AF}/pull/68902) (merged: 410, not 404, for an id a retry archived, "
           f"on the RTIF endpoint only) and [#73554]({_AF}/pull/73554) (open: keep attempt UUIDs and try numbers aligned)",
    "F13": f"reported: [#63183]({_AF}/issues/63183) (a duplicate SUCCESS update refused 409); fixed by "
           f"[#63355]({_AF}/pull/63355) (merged: the server answers 200 for the state the row already holds)",
    "F14": f"fixed by [#66572]({_AF}/pull/66572) (merged, in task-sdk 1.2.2: a transport error is answered "
           f"with an error reply)",
    "F15": "apparently new (on the pre-release 1.4.0b2 only, with the held-outcome delivery of "
           f"[#73249]({_AF}/pull/73249)); related: [#73142]({_AF}/pull/73142) (open: a confirmed terminal "
           "state before the exit code), not in 1.4.0b2",
    "F16": f"apparently new; the overtime's port to the supervisor, [#44590]({_AF}/pull/44590) (merged), says it "
           "\"applies to all states not just success\", yet only TaskState, SucceedTask and RetryTask start it",
    "F17": f"apparently new; it came with [#66574]({_AF}/pull/66574) (in 1.2.2: a failed direct call is kept pending, "
           f"its state held only once delivered), and the change of [#73249]({_AF}/pull/73249) (in 1.4.0b2) runs the "
           "overtime from the task's end",
    "F18": f"reported: [#59650]({_AF}/pull/59650) (closed unmerged: a late state update of a row another component "
           f"ended crashes the task); the change of [#73249]({_AF}/pull/73249) (in 1.4.0b2) takes a 409 on an "
           "outcome's call as SERVER_TERMINATED",
    "F19": f"reported: [#55753]({_AF}/issues/55753) (an OOM-killed task not retried); fixed by "
           f"[#55767]({_AF}/pull/55767) (in 1.1.2, for a signal) and [#58384]({_AF}/pull/58384) (in 1.1.4, for every "
           "non-zero exit)",
    "R1": f"reported: [#67266]({_AF}/pull/67266) (closed unmerged: 'Recover SKIPPED state when supervisor IPC fails on "
          f"terminal-state send'); the fail-closed exit of [#66573]({_AF}/pull/66573) covers only FAILED/UP_FOR_RETRY",
    "R2": f"apparently new (a side effect of [#66573]({_AF}/pull/66573)'s fail-closed exit)",
    "R5": f"reported: [#51005]({_AF}/issues/51005) (on_kill not executed on task stop); fixed by "
          f"[#53718]({_AF}/pull/53718) (in 1.0.4: the task runner's SIGTERM handler calls on_kill)",
    "R6": f"reported: [#73006]({_AF}/issues/73006) and [#71202]({_AF}/issues/71202) (open: a KubernetesPodOperator task "
          f"killed mid-execute marked SUCCESS); [#73395]({_AF}/pull/73395) (open) raises AirflowTaskTerminated from the "
          f"handler; contested by [#69034]({_AF}/pull/69034) (merged: a warm shutdown lets in-flight work finish)",
    "R7": f"fixed by [#59604]({_AF}/pull/59604) (in 1.1.7: a DAG not found at startup is rescheduled, not failed)",
    "R8": f"apparently new; related: [#65738]({_AF}/pull/65738) (merged, for [#65505]({_AF}/issues/65505): the kill "
          "signals the task runner's whole process group, so that no subprocess is orphaned), whose SIGTERM the child's "
          "inherited handler ignores",
    "R9": f"related: [#45282]({_AF}/pull/45282) (merged, AIP-72: every SystemExit goes down the failure path), "
          f"measured against Airflow 2's exit(10) only; Airflow 2 settled exit codes None and 0 as success in "
          f"[#36986]({_AF}/pull/36986)",
    "R10": f"reported for a SIGKILL: [#60858]({_AF}/issues/60858) (open: task failure callbacks not run when the task is "
           f"killed); [#53058]({_AF}/pull/53058) (merged) runs them on the DAG processor for a task killed externally",
    "L1": "apparently new (F2 across tries)",
    "L2": "see F1 and R1 (F1 across tries)",
    "L3": f"fixed in 1.1.4 (a non-zero exit with should_retry is UP_FOR_RETRY); [#55767]({_AF}/pull/55767) (in 1.1.2) "
          "did it for a signal-killed task only",
    "L4": "see F9 and F2 (across a coordinator runtime's tries)",
    "L5": "see F9 and F1 (across a coordinator runtime's tries)",
    "L6": "see F3 (across a coordinator runtime's tries)",
    "L7": "fixed in 1.1.4, as L3 (a coordinator runtime's fail-closed exit meets the same rule)",
    "L8": f"fixed in 1.2.2, as F14 ([#66572]({_AF}/pull/66572))",
    "L9": f"see F2 (across a coordinator runtime's tries; from [#55767]({_AF}/pull/55767), in 1.1.2)",
    "C1": f"apparently new (searched 2026-12-06): the Go SDK's Serve never reads the answer to its terminal frame; "
          f"[#68554]({_AF}/pull/68554), the fix of [#67797]({_AF}/issues/67797), added the retry branch, not a "
          "fail-closed exit",
    "C2": f"fixed upstream: [#67797]({_AF}/issues/67797) by [#68554]({_AF}/pull/68554) (Go SDK), "
          f"[#67798]({_AF}/issues/67798) by [#68555]({_AF}/pull/68555) (Java SDK); the SDKs' releases before the "
          "fixes (model.sdks' go-sdk-before-68554, java-sdk-before-68555)",
    "W1": "apparently new",
    "W2": f"related: [#46426]({_AF}/issues/46426) (open: 'every request should have a response'), not this case",
    "W3": "apparently new",
    "W4": f"apparently new (the unguarded close came with [#67635]({_AF}/pull/67635))",
    "W5": f"apparently new; the catch that skips the count came with [#49128]({_AF}/pull/49128); gone in 1.0.3, whose "
          f"loop tracks the sockets themselves (with [#51180]({_AF}/pull/51180), lingering supervisors, "
          f"[#50500]({_AF}/issues/50500))",
}


@attrs.frozen
class Cell:
    """One release × target run: ``status`` is ``ran``, ``env failed``, ``crashed`` or ``overran``."""

    release: str
    target: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    #: finding id -> ``reproduces`` / ``fixed`` (findings whose test was skipped or not run are absent).
    findings: dict = attrs.field(factory=dict)
    #: failures no finding accounts for: (test id, first line of the message, the command that replays it or "").
    new: tuple = ()
    #: Hypothesis test cases the run's properties executed (from the statistics in the JUnit report).
    examples: int = 0
    counts: dict = attrs.field(factory=dict)
    #: The findings registered in the checkout the cell ran (``registered_findings``); None where unknown (a run
    #: saved before this was recorded).
    registered: tuple | None = None
    #: What the cell checked (``impl.compare.store.cell_key``; empty where unknown), and whether this result was
    #: taken from the store rather than run now.
    key: str = ""
    stored: bool = False


_BY_HEADLINE = {f.headline: f for f in ALL_FINDINGS}
_BY_ID = {f.id: f for f in ALL_FINDINGS}
_EXAMPLES = re.compile(r"(\d+) passing, (\d+) failing, and (\d+) invalid")


def finding_of(message: str, headlines: dict[str, str] | None = None) -> str | None:
    """The id of the finding whose strict expected failure carries ``message`` (an xfail reason, or
    ``[XPASS(strict)] reason``); ``headlines`` (headline -> id) is the registry the run had, this one's by default."""
    reason = message.removeprefix("[XPASS(strict)]").strip()
    if headlines is None:
        finding = _BY_HEADLINE.get(reason)
        return None if finding is None else finding.id
    return headlines.get(reason)


def read_junit(path: Path, headlines: dict[str, str] | None = None) -> tuple[dict, tuple, int, dict]:
    """From a JUnit report: finding id -> outcome, the unexplained failures, the examples run, outcome counts.
    ``headlines`` (headline -> id): the registry of the checkout that ran, when it is not this one's."""
    root = ET.parse(path).getroot()
    findings: dict[str, str] = {}
    new: list[tuple[str, str]] = []
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for case in root.iter("testcase"):
        test = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        fixed = next((p.get("value") for p in case.iter("property") if p.get("name") == "finding absent"), None)
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        skipped = next((c for c in case if c.tag == "skipped"), None)
        if problem is not None:
            counts["failed"] += 1
            message = problem.get("message") or ""
            whole = problem.text or message  # the message attribute may be cut short; the text is whole
            finding = finding_of(whole, headlines) if whole.startswith("[XPASS(strict)]") else None
            if finding is not None:
                findings.setdefault(finding, FIXED)  # a reproduction on another test of the same cell wins
                continue
            first = next((line.strip() for line in message.splitlines() if line.strip()), problem.tag)
            replay = next((line.split("replay: ", 1)[1].strip() for line in whole.splitlines() if "replay: finalstate"
                           in line), "")  # "E   replay: finalstate replay ..." in pytest's text
            new.append((test, first[:300], replay))
            if fixed is not None:  # its run broke the invariant where the finding does not stand: back, and new here
                findings[fixed] = REPRODUCES
                continue
            own = _FINDING_TEST.search(case.get("name", ""))
            if own:  # the finding's own run raised something else than its violation: neither reproduced nor fixed
                findings.setdefault(own.group(2), BROKE)
        elif skipped is not None and skipped.get("type") == "pytest.xfail":
            counts["xfailed"] += 1
            finding = finding_of(skipped.get("message") or "", headlines)
            if finding is not None:
                findings[finding] = REPRODUCES
            else:
                new.append((test, f"an expected failure of no registered finding: {skipped.get('message')}"))
        elif skipped is not None:
            counts["skipped"] += 1
            # A finding's own test on a target it is about, skipped by properties/conftest with "target NAME: why":
            # that target cannot run on this release.
            own = _FINDING_TEST.search(case.get("name", ""))
            finding = _BY_ID.get(own.group(2)) if own else None
            if (finding is not None and finding.about(own.group(1))
                    and (skipped.get("message") or "").startswith("target ")):
                findings.setdefault(finding.id, UNSUPPORTED)
        else:
            counts["passed"] += 1
            if fixed is not None:  # a finding's own run where it does not stand (fixed, or not brought yet): absent
                findings.setdefault(fixed, FIXED)
    examples = 0
    for prop in root.iter("property"):
        if prop.get("name", "").startswith("hypothesis-statistics-"):
            text = base64.b64decode(prop.get("value", "")).decode(errors="replace")
            examples += sum(int(a) + int(b) + int(c) for a, b, c in _EXAMPLES.findall(text))
    return findings, tuple(new), examples, counts


def registered_findings(python: Path, checkout: Path) -> dict[str, str] | None:
    """The findings registered in ``checkout`` (its ``impl.catalogue.findings``), id -> headline, as the cell's
    python imports them: what a cell run there checks, and the xfail reasons its report carries. None if they
    cannot be read (the cell's own run will say why)."""
    done = subprocess.run([str(python), "-c", "import json; from impl.catalogue.findings import ALL_FINDINGS; "
                           "print(json.dumps({f.id: f.headline for f in ALL_FINDINGS}))"], cwd=checkout,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(checkout)})
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cell(release: str, target: str, profile: str = "ci", python_for: Callable[[str], Path] | None = None,
             out: Path = BUILD, timeout: float = CELL_TIMEOUT, pytest_args: tuple[str, ...] = (),
             on_start: Callable[[subprocess.Popen], None] = lambda process: None, checkout: Path | None = None,
             cell_workers: int = 1) -> Cell:
    """Build (or reuse) ``release``'s environment and run the properties on ``target`` there (``pytest_args``
    added); never raises for a release that does not install or a run that crashes: the cell says so.
    ``on_start`` is handed the pytest process (its own process group) as it starts. ``checkout`` is the
    finalstate checkout whose properties run (first on the path, so a worktree of one commit runs as it is; default:
    this one, or where finalstate runs installed, the copy of its packages ``impl.places.code_root`` makes).
    ``cell_workers`` above 1 spreads the cell's tests over that many pytest-xdist workers (it changes how fast the
    cell runs, not what it checks: each test's examples are the profile's, in whichever worker)."""
    if python_for is None:
        from impl.releases.environments import python_for
    checkout = checkout or code_root()
    started = time.perf_counter()
    try:
        python = python_for(release)
    except Exception as e:  # UnknownRelease, EnvironmentFailed, NotACheckout: the cell carries the message
        return Cell(release, target, "env failed", f"{type(e).__name__}: {e}", time.perf_counter() - started)
    junit, log = cell_file(out, release, target, ".xml"), cell_file(out, release, target, ".log")
    out.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    command = [str(python), "-m", "pytest", str(checkout / "properties"), f"--target={target}",
               f"--hypothesis-profile={profile}", f"--junit-xml={junit}", "-o", "junit_logging=no",
               "-p", "no:cacheprovider", "-q", "--continue-on-collection-errors", "-o", f"faulthandler_timeout={min(STACK_DUMP_AFTER, max(5, int(timeout * 0.8)))}", *pytest_args,
               *(("-n", str(cell_workers), "--dist", "worksteal") if cell_workers > 1 else ())]
    run_started = time.perf_counter()
    with open(log, "w") as logfile:
        process = subprocess.Popen(command, cwd=checkout, stdout=logfile, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                       filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))})
        try:
            on_start(process)
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            return Cell(release, target, "overran", f"stopped after {timeout:.0f}s; log: {log}",
                        time.perf_counter() - run_started)
        except BaseException:
            _kill(process)
            raise
        if code < 0:  # killed: by the matrix's own interrupt, or from outside
            return Cell(release, target, "crashed", f"pytest was killed by signal {-code} (log: {log})",
                        time.perf_counter() - run_started)
    seconds = time.perf_counter() - run_started
    if code not in (0, 1) or not junit.exists():
        tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        return Cell(release, target, "crashed", f"pytest exited {code}: {tail[:400]} (log: {log})", seconds)
    registry = registered_findings(python, checkout)
    findings, new, examples, counts = read_junit(junit, None if registry is None else
                                                 {headline: id_ for id_, headline in registry.items()})
    return Cell(release, target, "ran", f"log: {log}", seconds, findings, new, examples, counts,
                None if registry is None else tuple(registry))


def cell_file(directory: Path, release: str, target: str, suffix: str) -> Path:
    """Where a cell's file of ``suffix`` goes in ``directory`` (its report, log, record)."""
    return directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{release}--{target}") + suffix)


def look_up(release: str, target: str, profile: str = "ci", store: Store | None = None, fresh: bool = False,
            python_for: Callable[[str], Path] | None = None, out: Path = BUILD,
            pytest_args: tuple[str, ...] = (), checkout: Path | None = None) -> Cell | tuple[Path, str]:
    """What is known of a cell before it runs: its result, if ``store`` holds the cell's key
    (``impl.compare.store.cell_key``) and not ``fresh`` (its JUnit report copied to ``out``), or the environment
    that did not build; else the python to run it with and its key."""
    if python_for is None:
        from impl.releases.environments import python_for
    started = time.perf_counter()
    try:
        python = python_for(release)
        key = cell_key(release, target, profile, python, checkout, pytest_args)
    except Exception as e:  # UnknownRelease, EnvironmentFailed, NotACheckout: the cell carries the message
        return Cell(release, target, "env failed", f"{type(e).__name__}: {e}", time.perf_counter() - started)
    stored = None if store is None or fresh else store.get(key)
    if stored is None:
        return python, key
    out.mkdir(parents=True, exist_ok=True)
    cell_file(out, release, target, ".xml").write_text(stored.get("junit", ""))
    return cell_from(stored["cell"], stored=True, detail=f"stored under {key}")


def cell_for(release: str, target: str, profile: str = "ci", store: Store | None = None, fresh: bool = False,
             python_for: Callable[[str], Path] | None = None, out: Path = BUILD, timeout: float = CELL_TIMEOUT,
             pytest_args: tuple[str, ...] = (), on_start: Callable[[subprocess.Popen], None] = lambda process: None,
             checkout: Path | None = None, cell_workers: int = 1, known: Cell | tuple[Path, str] | None = None) -> Cell:
    """The cell's result: ``look_up``'s (or ``known``, what it already said), else ``run_cell``'s, stored when it
    ran to the end (with its JUnit report). Never raises for an environment that does not build: the cell says so."""
    known = known or look_up(release, target, profile, store, fresh, python_for, out, pytest_args, checkout)
    if isinstance(known, Cell):
        return known
    python, key = known
    cell = attrs.evolve(run_cell(release, target, profile, lambda _: python, out, timeout, pytest_args, on_start,
                                 checkout, cell_workers), key=key)
    if store is not None and cell.status == "ran":
        junit = cell_file(out, release, target, ".xml")
        store.put(key, {"cell": attrs.asdict(cell), "junit": junit.read_text(errors="replace")})
    return cell


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


#: ``--findings-only``: each cell runs only the findings' own tests, not the searches (so it finds nothing new).
FINDINGS_ONLY = ("-k", "finding_still_reproduces")
#: Properties that take no target (they check the release's server, whatever ``--target`` says): a release's
#: first target cell runs them, its other cells would only repeat them.
ONCE_PER_RELEASE = ("properties/test_server_conformance.py",)


def cell_arguments(target: str, targets: tuple[str, ...], pytest_args: tuple[str, ...]) -> tuple[str, ...]:
    """A cell's pytest arguments: ``pytest_args``, and for every target but a release's first, the properties
    that take no target deselected (``ONCE_PER_RELEASE``)."""
    if target == targets[0]:
        return pytest_args
    return (*pytest_args, *(arg for path in ONCE_PER_RELEASE for arg in ("--deselect", path)))


def run_matrix(releases: tuple[str, ...], targets: tuple[str, ...] = DEFAULT_TARGETS, profile: str = "ci",
               workers: int = 2, python_for: Callable[[str], Path] | None = None, out: Path = BUILD,
               progress: Callable[[Cell], None] = lambda cell: None, pytest_args: tuple[str, ...] = (),
               timeout: float = CELL_TIMEOUT, checkout: Path | None = None, store: Store | None = None,
               fresh: bool = False, cell_workers: int | None = None) -> list[Cell]:
    """Every ``releases`` × ``targets`` cell, ``workers`` at a time, in that order; each taken from ``store`` where
    it holds the cell's key, unless ``fresh`` (``look_up``), the others run (``cell_for``).

    Each running cell gets ``cell_workers`` pytest-xdist workers; by default (None) every core when no more cells
    are left to run than ``workers`` (a changed checkout among stored releases: the slower cell takes the cores the
    quicker one leaves), else one.

    On Ctrl-C (or any exception here) the cells not started are cancelled and the running ones killed
    (their whole process groups) before it propagates.
    """
    jobs = planned(releases, targets)
    running: set[subprocess.Popen] = set()
    stopping = threading.Event()

    def started(process: subprocess.Popen) -> None:
        running.add(process)
        if stopping.is_set():  # started just as we stopped: the loop below may have missed it
            _kill(process)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    try:
        known = dict(zip(jobs, pool.map(lambda job: look_up(*job, profile, store, fresh, python_for, out,
                                                            cell_arguments(job[1], targets, pytest_args), checkout),
                                        jobs)))
        cells = {job: cell for job, cell in known.items() if isinstance(cell, Cell)}
        left = [job for job in jobs if job not in cells]
        if cell_workers is None:
            cell_workers = (os.cpu_count() or 1) if len(left) <= workers else 1
        futures = {pool.submit(cell_for, r, t, profile, store, fresh, python_for, out, timeout,
                               cell_arguments(t, targets, pytest_args), started, checkout, cell_workers,
                               known[(r, t)]): (r, t) for r, t in left}
        for job in jobs:
            if job in cells:
                progress(cells[job])
        for future in concurrent.futures.as_completed(futures):
            cell = future.result()
            cells[futures[future]] = cell
            progress(cell)
    except BaseException:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(running):
            if process.poll() is None:
                _kill(process)
        pool.shutdown(wait=True)  # each thread ends as its process is gone (one in an environment build finishes it)
        raise
    pool.shutdown()
    return [cells[job] for job in jobs]


# -- the table -----------------------------------------------------------------------------------

def _seen(finding: Finding, release: str, cells: list[Cell]) -> dict[str, str]:
    """target -> reproduces / fixed, for the release's cells whose run reached the finding's test."""
    return {c.target: c.findings[finding.id] for c in cells if c.release == release and finding.id in c.findings}


def verdict(finding: Finding, release: str, cells: list[Cell]) -> str:
    """``reproduces`` on any target, ``fixed`` on all that checked it, ``error`` when its own run raised something
    else on every target that ran it, else ``n/a`` or why the release did not run."""
    seen = set(_seen(finding, release, cells).values())
    for verdict_ in (REPRODUCES, FIXED, BROKE, UNSUPPORTED):
        if verdict_ in seen:
            return verdict_
    failed = [c.status for c in cells if c.release == release and c.status != "ran"]
    if failed:
        return failed[0]
    ran = [c for c in cells if c.release == release]
    if ran and all(c.registered is not None and finding.id not in c.registered for c in ran):
        return NOT_RUN
    return NOT_APPLICABLE


def finding_cell(finding: Finding, release: str, cells: list[Cell]) -> str:
    """The table's cell: the verdict, with the targets named when they do not agree."""
    seen = _seen(finding, release, cells)
    if len(set(seen.values())) > 1:
        return "; ".join(f"{v} on {t}" for t, v in sorted(seen.items()))
    return verdict(finding, release, cells)


def releases_of(cells: list[Cell]) -> list[str]:
    """The releases of ``cells``, oldest first (pre-releases before their final); other specs after, as given."""
    from packaging.version import InvalidVersion, Version

    def order(release: str):
        try:
            return (0, Version(release))
        except InvalidVersion:
            return (1, Version("0"))
    return sorted(dict.fromkeys(c.release for c in cells), key=order)


def history(finding: Finding, cells: list[Cell]) -> tuple[str, str]:
    """``(introduced in, fixed in)`` from the finding's verdicts, releases in the table's order.

    Introduced in: the first release where it reproduces, "≤" when no earlier release was checked;
    fixed in: the first release after the last reproducing one where it passes. Releases in between
    that could not be checked (unsupported, crashed, no environment) are named: the change may lie there.
    """
    releases = releases_of(cells)
    verdicts = [(r, verdict(finding, r, cells)) for r in releases]
    known = [(i, r, v) for i, (r, v) in enumerate(verdicts) if v in (REPRODUCES, FIXED)]
    if not known:
        if verdicts and all(v == NOT_RUN for _, v in verdicts):
            return NOT_RUN, "—"
        return "not checked by these targets", "—"
    hits = [k for k, (_, _, v) in enumerate(known) if v == REPRODUCES]
    if not hits:
        return "not seen (passes on every release checked)", "—"

    def unchecked(after: int, before: int) -> str:
        gap = [r for r, v in verdicts[after + 1:before] if v not in (NOT_APPLICABLE,)]
        return f" (or {', '.join(gap)}: not checked)" if gap else ""

    first, last = hits[0], hits[-1]
    at = known[first][0]
    introduced = f"≤ {known[first][1]}" if first == 0 else known[first][1] + unchecked(known[first - 1][0], at)
    after = [k for k in range(last + 1, len(known)) if known[k][2] == FIXED]
    if after:
        fixed = known[after[0]][1] + unchecked(known[last][0], known[after[0]][0])
    else:
        fixed = f"not fixed (reproduces on {known[last][1]})"
    gaps = [r for _, r, v in known[first:last] if v == FIXED]
    if gaps:
        fixed += f"; passed in between on {', '.join(gaps)}"
    return introduced, fixed


def table(cells: list[Cell], profile: str, findings_only: bool = False) -> str:
    """The matrix as Markdown: run figures per release, every finding × release, the new violations per release."""
    releases = releases_of(cells)
    targets = list(dict.fromkeys(c.target for c in cells))
    what = "the findings' own tests only (--findings-only: no search, so nothing new can show)" if findings_only \
        else f"{profile} profile"
    lines = [f"# finalstate matrix ({what}; targets: {', '.join(targets)})", "",
             "## The runs", "", "| release | target | status | wall time | examples | examples/s | passed | "
             "failed | xfailed | skipped |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(cells, key=lambda c: (releases.index(c.release), c.target)):
        rate = f"{c.examples / c.seconds:.0f}" if c.seconds and c.examples else "—"
        status = c.status if c.status == "ran" else f"**{c.status}**: {c.detail}"
        n = c.counts
        lines.append(f"| {c.release} | {c.target} | {status} | {c.seconds:.0f} s | {c.examples or '—'} | {rate} | "
                     f"{n.get('passed', '—')} | {n.get('failed', '—')} | {n.get('xfailed', '—')} | "
                     f"{n.get('skipped', '—')} |")
    lines += ["", "Examples are Hypothesis test cases (a supervisor example lives up to five attempts in a row). "
              f"Properties that take no target ({', '.join(ONCE_PER_RELEASE)}) run in each release's "
              f"{targets[0]} cell only.",
              "", "## Findings × releases", "",
              "reproduces: its strict expected failure failed as expected; fixed: its run did not break the invariant "
              "(a strict XPASS, or the passing ordinary test of a finding registered as absent there); "
              "error: its own run raised something else (listed below); unsupported: the target cannot run on this "
              "release (the skip says why); n/a: its test is not about these targets; not in this run: the run "
              "predates the finding (run the matrix again); crashed / overran / env "
              "failed: the release's run did not finish.",
              "", "| finding | " + " | ".join(releases) + " | introduced in | fixed in |",
              "|---|" + "---|" * (len(releases) + 2)]
    for finding in ALL_FINDINGS:
        introduced, fixed = history(finding, cells)
        lines.append(f"| {finding.id} | " + " | ".join(finding_cell(finding, r, cells) for r in releases)
                     + f" | {introduced} | {fixed} |")
    lines += ["", "## New on each release (failures no registered finding accounts for)", ""]
    for release in releases:
        new = [(c.target, test, message) for c in cells if c.release == release for test, message, *_ in c.new]
        broken = [c for c in cells if c.release == release and c.status != "ran"]
        if not new and not broken:
            lines.append(f"- **{release}**: none")
            continue
        lines.append(f"- **{release}**: {len(new)} failure(s)" + "".join(
            f"; {c.target} **{c.status}**" for c in broken))
        lines += [f"  - {target} `{test}`: {message}" for target, test, message in new]
    return "\n".join(lines) + "\n"


def save(cells: list[Cell], path: Path, profile: str, findings_only: bool) -> None:
    path.write_text(json.dumps({"profile": profile, "findings_only": findings_only,
                                "cells": [attrs.asdict(c) for c in cells]}, indent=1))


def load(path: Path) -> tuple[list[Cell], str, bool]:
    """A saved run: its cells, profile, and whether it ran the findings' tests only."""
    saved = json.loads(path.read_text())
    return [cell_from(c) for c in saved["cells"]], saved["profile"], saved["findings_only"]


def cell_from(record: dict, **changes) -> Cell:
    """A ``Cell`` from its JSON record (``attrs.asdict``), with ``changes``."""
    return Cell(**{**record, "new": tuple(tuple(n) for n in record["new"]),
                   "registered": None if record.get("registered") is None else tuple(record["registered"]), **changes})


# -- FINDINGS.md ----------------------------------------------------------------------------------

BEGIN, END = "<!-- finalstate matrix: begin -->", "<!-- finalstate matrix: end -->"


def findings_section(cells: list[Cell], findings_only: bool = False) -> str:
    """The "Across releases" section of FINDINGS.md: per finding, introduced in, fixed in, upstream status."""
    releases = releases_of(cells)
    targets = ", ".join(dict.fromkeys(c.target for c in cells))
    lines = [BEGIN, "## Across releases", "",
             f"From `finalstate matrix{' --findings-only' if findings_only else ''}` ({len(releases)} releases, "
             f"{releases[0]} … {releases[-1]}; targets {targets}; regenerate with "
             f"`finalstate matrix{' --findings-only' if findings_only else ''} --update-findings FINDINGS.md`). "
             "*Introduced in* is the first release "
             "where the finding's strict expected failure reproduces, *fixed in* the first release after the last "
             "reproducing one where it passes; \"≤\" where no earlier release could be checked. The upstream status "
             "was looked up in apache/airflow's public tracker.",
             "", "| finding | introduced in | fixed in | upstream status |", "|---|---|---|---|"]
    for finding in ALL_FINDINGS:
        introduced, fixed = history(finding, cells)
        upstream = UPSTREAM.get(finding.id, "apparently new")
        if _is_prerelease(fixed):
            upstream = f"fixed on the pre-release {fixed}; {upstream}"
        lines.append(f"| {finding.id} | {introduced} | {fixed} | {upstream} |")
    return "\n".join(lines + ["", END])


def _is_prerelease(release: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(release).is_prerelease
    except InvalidVersion:
        return False


def update_findings(path: Path, cells: list[Cell], findings_only: bool = False) -> None:
    """Replace the section between ``BEGIN`` and ``END`` in ``path`` (or append it)."""
    text = path.read_text() if path.exists() else ""
    section = findings_section(cells, findings_only)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


# -- the command -----------------------------------------------------------------------------------

def planned(releases: tuple[str, ...], targets: tuple[str, ...]) -> list[tuple[str, str]]:
    """The cells of a matrix, in its order: every release × every target."""
    return [(r, t) for r in releases for t in targets]


def plan(releases: tuple[str, ...], targets: tuple[str, ...], profile: str, checkout: Path | None = None) -> dict:
    """The cells as a CI job matrix takes them (``strategy.matrix: ${{ fromJSON(...) }}``): ``{"include": [...]}``, a
    job each, with its release, target, profile, its ``cell`` (``RELEASE:TARGET``, what ``--cell`` takes) and its
    ``key`` where the release's environment is built here already (else null: the job computes it once it has
    built it, as ``--cell`` does)."""
    from impl.releases.environments import ENVS, python_for

    include = []
    for release, target in planned(releases, targets):
        python = ENVS / release / "bin" / "python" if release != "installed" else python_for("installed")
        key = None
        if not release.startswith("src:") and python.exists():
            key = cell_key(release, target, profile, python, checkout, cell_arguments(target, targets, ()))
        include.append({"release": release, "target": target, "profile": profile, "cell": f"{release}:{target}",
                        "key": key})
    return {"include": include}


def write_record(cell: Cell, out: Path) -> Path:
    """The cell's result record in ``out`` (beside its JUnit report): what ``--merge`` reads."""
    out.mkdir(parents=True, exist_ok=True)
    path = cell_file(out, cell.release, cell.target, ".json")
    path.write_text(json.dumps({"cell": attrs.asdict(cell), "junit": cell_file(out, cell.release, cell.target,
                                                                                ".xml").name}, indent=1))
    return path


def merge(directories: list[Path], releases: tuple[str, ...], targets: tuple[str, ...]) -> list[Cell]:
    """The planned cells from the records ``--cell`` wrote in ``directories``; a planned cell with no record is
    ``missing`` (named, never left out), and a record of a cell not planned is left out."""
    found: dict[tuple[str, str], Cell] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.json")):
            try:
                cell = cell_from(json.loads(path.read_text())["cell"])
            except (ValueError, KeyError, TypeError) as e:
                raise SystemExit(f"finalstate matrix --merge: {path} is not a cell's record ({type(e).__name__}: {e})")
            found[(cell.release, cell.target)] = cell
    where = ", ".join(map(str, directories))
    return [found.get((r, t)) or Cell(r, t, "missing", f"no record of this cell in {where}") for r, t in
            planned(releases, targets)]


def _progress(started: float):
    def progress(cell: Cell) -> None:
        rate = f", {cell.examples / cell.seconds:.0f} examples/s" if cell.examples and cell.seconds else ""
        how = f"stored, not run again ({cell.detail})" if cell.stored else f"{cell.status} in {cell.seconds:.0f}s{rate}"
        print(f"  [{time.perf_counter() - started:5.0f}s] {cell.release} {cell.target}: {how}"
              + ("" if cell.status == "ran" else f" — {cell.detail}"), flush=True)
    return progress


def _stop_on_sigterm(signum, frame) -> None:
    """A SIGTERM (a cancelled CI job, a ``kill``) stops the matrix as Ctrl-C does: the running cells' process groups
    are killed on the way out, none left behind."""
    raise SystemExit(128 + signum)


def cmd_matrix(args) -> int:
    from impl.releases.environments import RELEASES, UnknownRelease

    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    releases = tuple(r.strip() for r in args.releases.split(",") if r.strip()) if args.releases else tuple(RELEASES)
    if args.airflow_src:
        releases += (f"src:{Path(args.airflow_src).expanduser().resolve()}",)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    planned_targets = targets  # a cell runs with the arguments it has in the whole matrix (cell_arguments)
    if args.cell:
        release, sep, target = args.cell.rpartition(":")
        if not sep or not release or not target:
            raise SystemExit(f"finalstate matrix --cell: {args.cell!r} is not RELEASE:TARGET (e.g. 1.3.2:airflow-inproc)")
        releases, targets = (release,), (target,)
    unknown = [r for r in releases if r not in RELEASES and r != "installed" and not r.startswith("src:")]
    if unknown:
        known = ", ".join(RELEASES)
        raise SystemExit(f"finalstate matrix: {UnknownRelease(f'unknown task-sdk release(s) {unknown}; known: {known}')}")
    checkout = Path(args.checkout).resolve() if args.checkout else None
    if args.plan:
        print(json.dumps(plan(releases, targets, args.profile, checkout), indent=1))
        return 0
    store = Store(Path(args.store))
    findings_only = args.findings_only
    pytest_args = FINDINGS_ONLY if findings_only else ()
    if args.cell:
        out = Path(args.out if args.out != DEFAULT_OUT else BUILD / "cells")
        started = time.perf_counter()
        cell = cell_for(release, target, args.profile, store, args.fresh, out=out, timeout=args.cell_timeout,
                        pytest_args=cell_arguments(target, planned_targets, pytest_args), checkout=checkout,
                        cell_workers=args.cell_workers or os.cpu_count() or 1)
        _progress(started)(cell)
        print(f"wrote {write_record(cell, out)} and {cell_file(out, release, target, '.xml')} "
              f"({time.perf_counter() - started:.1f}s)")
        return 0 if cell.status == "ran" and not cell.new else 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cells_json = out.with_suffix(".json")
    if args.merge:
        cells = merge([Path(d) for d in args.merge], releases, targets)
        save(cells, cells_json, args.profile, findings_only)
    elif args.from_json:
        cells, args.profile, findings_only = load(Path(args.from_json))
    else:
        started = time.perf_counter()
        print(f"{len(releases)} release(s) × {len(targets)} target(s), {args.workers} at a time, {args.profile} profile; "
              f"results stored in {store.directory}" + (" (--fresh: every cell run again)" if args.fresh else ""),
              flush=True)
        cells = run_matrix(releases, targets, args.profile, args.workers, progress=_progress(started),
                           pytest_args=pytest_args, timeout=args.cell_timeout, checkout=checkout, store=store,
                           fresh=args.fresh, cell_workers=args.cell_workers)
        ran = sum(1 for c in cells if not c.stored)
        print(f"the whole matrix: {time.perf_counter() - started:.0f}s wall; {ran} cell(s) run, "
              f"{len(cells) - ran} taken from the store", flush=True)
        save(cells, cells_json, args.profile, findings_only)
    text = table(cells, args.profile, findings_only)
    out.write_text(text)
    print(text)
    print(f"wrote {out} and {cells_json}")
    if args.update_findings:
        update_findings(Path(args.update_findings), cells, findings_only)
        print(f"updated the 'Across releases' section of {args.update_findings}")
    return 1 if any(c.status != "ran" for c in cells) else 0


DEFAULT_OUT = str(build_dir("matrix.md"))


def add_parser(subparsers) -> argparse.ArgumentParser:
    mx = subparsers.add_parser("matrix", help="every registered finding on every task-sdk release (and the new "
                                              "violations each shows): one checker run per release and target")
    mx.add_argument("--releases", help="comma-separated releases (default: every known one, see impl/releases)")
    mx.add_argument("--airflow-src", metavar="PATH", help="also a checkout of apache/airflow (its task-sdk and "
                                                           "airflow-core), as one more release column")
    mx.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated targets")
    mx.add_argument("--profile", default="ci", choices=("dev", "ci", "nightly"))
    mx.add_argument("--workers", type=int, default=2, help="cells run at once")
    mx.add_argument("--out", default=DEFAULT_OUT, help="the Markdown table (the cells' JSON goes beside it); with "
                                                       "--cell, the directory the cell's record and report go to "
                                                       "(default build/matrix/cells)")
    mx.add_argument("--checkout", metavar="PATH",
                    help="the finalstate checkout whose properties each cell runs (e.g. a git worktree of one commit, "
                         "so edits in progress do not leak in); default: this one")
    mx.add_argument("--cell-workers", type=int, metavar="N",
                    help="pytest-xdist workers inside each cell (not part of its key: they change how fast it runs, "
                         "not what it checks). Default: with --cell, every core (one CI job per cell); else every "
                         "core when no more cells are left to run than --workers, one otherwise")
    mx.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, metavar="SECONDS",
                    help="a cell running longer is killed and marked overran")
    mx.add_argument("--findings-only", action="store_true",
                    help="run only each finding's own test per cell (seconds, not minutes): the findings × releases "
                         "table without the searches, so no new violation can show")
    mx.add_argument("--store", default=str(DEFAULT_STORE), metavar="DIR",
                    help="where cells' results are kept by the key of what they checked (impl/compare/store.py); a "
                         "cell whose key is stored is not run again. A CI cache can carry it. Default: "
                         "build/matrix-store")
    mx.add_argument("--fresh", action="store_true", help="check every cell again, whatever the store holds (the new "
                                                         "results are stored)")
    how = mx.add_mutually_exclusive_group()
    how.add_argument("--plan", action="store_true", help="print the cells as JSON a CI job matrix takes ({include: "
                                                        "[...]}) and run nothing")
    how.add_argument("--cell", metavar="RELEASE:TARGET", help="run one cell (or take it from the store) and write its "
                                                              "record and JUnit report to --out")
    how.add_argument("--merge", nargs="+", metavar="DIR", help="build the table (and with --update-findings, "
                                                               "FINDINGS.md's section) from the records --cell wrote; "
                                                               "a planned cell with no record is named missing")
    how.add_argument("--from-json", metavar="PATH", help="rebuild the table from a saved run's JSON instead of running")
    mx.add_argument("--update-findings", metavar="FINDINGS.md", help="rewrite that file's 'Across releases' section "
                                                                     "from this table")
    mx.set_defaults(func=cmd_matrix)
    return mx


if __name__ == "__main__":
    sys.exit(cmd_matrix(add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(sys.argv[1:])))
