"""``finalstate coverage``: branch coverage of the real terminal-state code, measured while the checker runs.

    finalstate coverage [--target airflow-inproc|airflow-task-runner] [--profile ci] [--fail-under PCT] [-- PYTEST-ARGS]

The checker's properties (``pytest --pyargs properties``) run on the target under coverage.py
with branch coverage, measuring one installed upstream file only, and the figures are reported
for the functions that decide a task's terminal state (``SCOPES``), not for the whole file:

- ``airflow-inproc``: ``airflow/sdk/execution_time/supervisor.py``, the ``ActivitySubprocess``
  methods ``final_state``, ``update_task_state_if_needed``, ``_send_terminal_state_msg``,
  ``_replay_pending_terminal_state_msg``, the terminal-frame branches of ``_handle_request``,
  the heartbeat (``_send_heartbeat_if_needed``, ``_handle_heartbeat_failures``) and the
  overtime handling (``_handle_process_overtime_if_needed``);
- ``airflow-task-runner``: ``airflow/sdk/execution_time/task_runner.py``, the outcome mapping
  (``_run_task_and_map_outcome``, ``run``), the failure handling (``_handle_current_task_failed``,
  ``_finalize_task_failure``, ``_handle_handler_failure``, ``_terminal_failure``), the retry
  policy (``_evaluate_retry_policy``) and ``main`` (its fail-closed exit).

Each function's lines come from ``ast`` on the installed source; the figures from coverage.py's
own analysis (``analysis2`` for lines, ``branch_stats`` and the missing branch arcs for
branches), narrowed to those lines. A branch no run of the target can take is listed in its
scope (``Unreachable``: the function, the branch by its source text, the reason); the report
counts it apart and prints the reason, and says so when a branch listed there was taken after all
or is no longer in the source. Other targets run the same code in other processes
(``airflow-process``, ``reference-runtime``) or no upstream code at all (``model``): they are
refused with the target to use instead.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs

from impl.search.profiles import PROFILES

#: The frame classes whose ``isinstance`` branches in ``ActivitySubprocess._handle_request`` are terminal-state handling.
TERMINAL_FRAMES = ("TaskState", "SucceedTask", "RetryTask", "DeferTask", "AwaitInputTask", "RescheduleTask",
                   "SkipDownstreamTasks")


@attrs.frozen
class Unreachable:
    """A branch of a measured function that no run of the target can take, and why.

    Named by source text, not line number, so that it follows the code between releases: ``line`` is
    the stripped text of the line the branch leaves, ``to`` that of the line it goes to (``"exit"``:
    out of the function), ``body`` the statement lines only that branch runs (each the first match
    after ``line``).
    """

    function: str
    line: str
    to: str
    reason: str
    body: tuple[str, ...] = ()


@attrs.frozen
class Scope:
    """The upstream module a target runs in process, the functions of it measured, the properties that drive it,
    and the branches of those functions no run can take."""

    module: str
    functions: tuple[str, ...]
    #: A ``[part]`` after a name narrows it: ``[terminal frames]`` keeps ``_handle_request``'s terminal branches.
    properties: str = "properties"
    unreachable: tuple[Unreachable, ...] = ()


SUPERVISOR = Scope("airflow.sdk.execution_time.supervisor", (
    "ActivitySubprocess.final_state",
    "ActivitySubprocess.update_task_state_if_needed",
    "ActivitySubprocess._handle_request[terminal frames]",
    "ActivitySubprocess._send_terminal_state_msg",
    "ActivitySubprocess._replay_pending_terminal_state_msg",
    "ActivitySubprocess._send_heartbeat_if_needed",
    "ActivitySubprocess._handle_heartbeat_failures",
    "ActivitySubprocess._handle_process_overtime_if_needed",
), unreachable=(
    Unreachable("ActivitySubprocess._send_terminal_state_msg", "elif isinstance(msg, AwaitInputTask):",
                "self._pending_terminal_state_msg = None",
                "every caller passes one of the terminal frames the chain tests (_handle_request's terminal "
                "branches, the replay of one of them)"),
    Unreachable("ActivitySubprocess._replay_pending_terminal_state_msg", "if msg is None:", "return",
                "its one caller (update_task_state_if_needed) calls it only when a message is pending",
                body=("return",)),
))
TASK_RUNNER = Scope("airflow.sdk.execution_time.task_runner", (
    "_run_task_and_map_outcome",
    "run",
    "_handle_current_task_failed",
    "_finalize_task_failure",
    "_evaluate_retry_policy",
    "_handle_handler_failure",
    "_terminal_failure",
    "main",
), unreachable=(
    Unreachable("_run_task_and_map_outcome", "if early_exit := _prepare(ti, log, context):", "msg = early_exit",
                "_prepare returns None on every path (it raises instead): dead code in this release",
                body=("msg = early_exit", "ti.state = state = TaskInstanceState.FAILED", "return state, msg, error")),
    Unreachable("run", "if msg:", "ti.state = state",
                "every path of _run_task_and_map_outcome and _handle_handler_failure that returns sets a message; "
                "msg stays None only while an exception (KeyboardInterrupt) leaves run"),
    Unreachable("main", "if SUPERVISOR_COMMS and SUPERVISOR_COMMS.socket:", "exit",
                "the channel main makes always has a socket: CommsDecoder opens one on fd 0 when made, and "
                "raises before the try if it cannot"),
))
SCOPES = {"airflow-inproc": SUPERVISOR, "airflow-task-runner": TASK_RUNNER}
_ELSEWHERE = {
    "airflow-process": "it runs the supervisor in other processes; airflow-inproc runs the same supervisor code in process",
    "reference-runtime": "it runs the supervisor in other processes; airflow-inproc runs the same supervisor code in process",
    "model": "the model is not upstream code; choose airflow-inproc (the supervisor) or airflow-task-runner",
}


class NotMeasurable(ValueError):
    """The target's upstream code does not run in the measured process (or it has none)."""


def scope_for(target: str) -> Scope:
    if target in SCOPES:
        return SCOPES[target]
    from impl.targets.registry import REGISTRY, known_targets

    if target not in REGISTRY:
        raise NotMeasurable(f"unknown target {target!r}; the known targets are:\n{known_targets()}")
    why = _ELSEWHERE.get(target, "no terminal-state scope is defined for it")
    raise NotMeasurable(f"coverage is measured on {' or '.join(SCOPES)}; not on {target}: {why}")


def source_path(module: str) -> Path:
    """The installed file of ``module``, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise NotMeasurable(f"{module} is not installed: pip install 'finalstate[airflow]'")
    return Path(spec.origin).resolve()


@attrs.frozen
class Region:
    """A measured function (or part of one): its body's line numbers in the upstream file."""

    name: str
    start: int
    end: int
    lines: frozenset[int]


def _find(tree: ast.Module, qualname: str) -> ast.FunctionDef:
    node: ast.AST = tree
    for part in qualname.split("."):
        body = getattr(node, "body", [])
        found = [n for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == part]
        if not found:
            raise LookupError(f"no {qualname} in the installed source (looking for {part!r})")
        node = found[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), qualname
    return node


def _span(node: ast.AST) -> set[int]:
    return set(range(node.lineno, node.end_lineno + 1))


def _frame_class(test: ast.expr) -> str | None:
    """``X`` for a test ``isinstance(msg, X)``, else None."""
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
            and len(test.args) == 2 and isinstance(test.args[1], ast.Name)):
        return test.args[1].id
    return None


def _terminal_frame_lines(func: ast.FunctionDef) -> set[int]:
    """The lines of ``_handle_request`` that handle terminal frames: each ``isinstance(msg, <terminal frame>)``
    test and its body, and the closing ``send_msg`` that answers them."""
    chain = next(n for n in func.body if isinstance(n, ast.If) and _frame_class(n.test) == "TaskState")
    lines: set[int] = set()
    node: ast.If | None = chain
    while node is not None:
        if _frame_class(node.test) in TERMINAL_FRAMES:
            lines |= _span(node.test)
            for stmt in node.body:
                lines |= _span(stmt)
        node = node.orelse[0] if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) else None
    lines |= _span(func.body[-1])  # self.send_msg(resp, ...): the reply to the frame
    return lines


def regions(scope: Scope, source: str) -> list[Region]:
    """Each function of ``scope`` located in ``source`` with ``ast``: its body's lines (the ``def`` and decorators left out)."""
    tree = ast.parse(source)
    found = []
    for name in scope.functions:
        qualname, _, part = name.partition("[")
        func = _find(tree, qualname)
        if part.rstrip("]") == "terminal frames":
            lines = _terminal_frame_lines(func)
        else:
            lines = set(range(func.body[0].lineno, func.end_lineno + 1))
        found.append(Region(name, min(lines), max(lines), frozenset(lines)))
    return found


@attrs.frozen
class FunctionCoverage:
    name: str
    start: int
    end: int
    lines: int
    lines_run: int
    branches: int
    branches_taken: int
    #: Statement lines never run.
    missing_lines: tuple[int, ...]
    #: ``(from_line, to_line)`` branch exits never taken from lines that did run; ``to_line < 0`` leaves the function.
    #: The unreachable ones are not among them.
    missing_branches: tuple[tuple[int, int], ...]
    #: ``(from_line, to_line, reason)``: the branch exits never taken that the scope lists as unreachable.
    unreachable_branches: tuple[tuple[int, int, str], ...] = ()
    #: Statement lines never run because only an unreachable branch leads to them (not in ``missing_lines``).
    unreachable_lines: tuple[int, ...] = ()
    #: What is wrong with the scope's list for this function: an unreachable branch taken, or not in the source.
    contradicted: tuple[str, ...] = ()

    @property
    def reachable_branches(self) -> int:
        return self.branches - len(self.unreachable_branches)


@attrs.frozen
class CoverageReport:
    target: str
    profile: str
    path: Path
    functions: tuple[FunctionCoverage, ...]
    source_lines: tuple[str, ...]
    pytest_status: int
    seconds: float

    @property
    def branches(self) -> tuple[int, int]:
        return sum(f.branches_taken for f in self.functions), sum(f.branches for f in self.functions)

    @property
    def reachable_branches(self) -> tuple[int, int]:
        """Branches taken, of those not listed unreachable."""
        return sum(f.branches_taken for f in self.functions), sum(f.reachable_branches for f in self.functions)

    @property
    def lines(self) -> tuple[int, int]:
        return sum(f.lines_run for f in self.functions), sum(f.lines for f in self.functions)

    def text(self, line_no: int) -> str:
        return self.source_lines[line_no - 1].strip() if 0 < line_no <= len(self.source_lines) else ""


def analyse(data_file: Path, path: Path, scope: Scope) -> list[FunctionCoverage]:
    """The figures of each function of ``scope`` from a coverage data file measured with branch coverage."""
    import coverage

    cov = coverage.Coverage(data_file=str(data_file), config_file=False, branch=True)
    cov.load()
    _, statements, _, missing, _ = cov.analysis2(str(path))
    stats = cov.branch_stats(str(path))  # {line: (exits, exits taken)}
    # The exits never taken, by line: coverage.py's own Analysis (its public Coverage API gives only the counts).
    missing_arcs = cov._analyze(str(path)).missing_branch_arcs()
    source_lines = path.read_text().splitlines()
    result = []
    for region in regions(scope, path.read_text()):
        lines = set(statements) & region.lines
        never = sorted(set(missing) & lines)
        branch_lines = sorted(line for line in stats if line in region.lines)
        missing_here = {(line, to) for line in branch_lines for to in missing_arcs.get(line, ())}
        listed = [u for u in scope.unreachable if u.function == region.name]
        unreachable, body, contradicted = _match_unreachable(listed, region, source_lines, missing_here)
        never_reachable = [line for line in never if line not in body]
        result.append(FunctionCoverage(
            name=region.name, start=region.start, end=region.end,
            lines=len(lines), lines_run=len(lines) - len(never),
            branches=sum(stats[line][0] for line in branch_lines),
            branches_taken=sum(stats[line][1] for line in branch_lines),
            missing_lines=tuple(never_reachable),
            missing_branches=tuple((line, to) for line, to in sorted(missing_here)
                                   if line not in never and not any(u[:2] == (line, to) for u in unreachable)),
            unreachable_branches=tuple(unreachable),
            unreachable_lines=tuple(sorted(set(never) & body)),
            contradicted=tuple(contradicted),
        ))
    return result


def _match_unreachable(listed: list[Unreachable], region: Region, source_lines: list[str],
                       missing: set[tuple[int, int]]) -> tuple[list[tuple[int, int, str]], set[int], list[str]]:
    """Find each listed branch in ``region`` by its text: the never-taken arcs it names, the body lines it
    accounts for, and what contradicts the list (the branch was taken, or its text is not there)."""
    def text(n: int) -> str:
        return source_lines[n - 1].strip() if 0 < n <= len(source_lines) else ""

    def goes_to(to: int, u: Unreachable) -> bool:
        return u.to == "exit" if to < 0 else text(to) == u.to

    ordered = sorted(region.lines)
    found: list[tuple[int, int, str]] = []
    body: set[int] = set()
    contradicted: list[str] = []
    for u in listed:
        starts = [n for n in ordered if text(n) == u.line]
        arcs = sorted((frm, to) for frm, to in missing if frm in starts and goes_to(to, u))
        if not starts:
            contradicted.append(f"listed unreachable, but not in the source: {u.line} -> {u.to}")
        elif not arcs:
            contradicted.append(f"listed unreachable, but taken (or no such branch): {u.line} -> {u.to}")
        for line, to in arcs:
            found.append((line, to, u.reason))
            for wanted in u.body:
                match = next((n for n in ordered if n > line and n not in body and text(n) == wanted), None)
                if match is None:
                    contradicted.append(f"listed unreachable, but its line is not in the source: {wanted}")
                else:
                    body.add(match)
    return found, body, contradicted


def project_root() -> Path:
    """Where ``--pyargs properties`` resolves: this checkout (or the installed package's site)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "properties").is_dir() else Path.cwd()


def measure(target: str, profile: str = "ci", pytest_args: list[str] | tuple[str, ...] = (),
            quiet: bool = True) -> CoverageReport:
    """Run the properties on ``target`` under coverage.py (branch coverage, the upstream file only) and analyse."""
    import time

    scope = scope_for(target)
    path = source_path(scope.module)
    with tempfile.TemporaryDirectory(prefix="finalstate-coverage-") as tmp:
        data_file, rcfile = Path(tmp) / ".coverage", Path(tmp) / "coveragerc"
        # None of the checkout's configuration applies. A process the checked code forks is measured too
        # (its data saved when it leaves by os._exit), each process into its own file, combined below.
        rcfile.write_text("[run]\nparallel = true\npatch = fork, _exit\n")
        cmd = [sys.executable, "-m", "coverage", "run", f"--rcfile={rcfile}", "--branch", f"--include={path}",
               f"--data-file={data_file}", "-m", "pytest", "--pyargs", scope.properties, f"--target={target}",
               f"--hypothesis-profile={profile}", "-p", "no:cacheprovider", "-q", *pytest_args]
        start = time.monotonic()
        root = project_root()
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(cmd, cwd=root, env=env,
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT, text=True)
        seconds = time.monotonic() - start
        _combine(data_file)
        if not data_file.exists():
            raise RuntimeError(f"coverage recorded nothing (exit {done.returncode}):\n{done.stdout or ''}")
        functions = analyse(data_file, path, scope)
    if done.returncode not in (0,) and quiet:
        sys.stderr.write(done.stdout[-4000:])
    return CoverageReport(target, profile, path, tuple(functions), tuple(path.read_text().splitlines()),
                          done.returncode, seconds)


def _combine(data_file: Path) -> None:
    """Combine the per-process data files next to ``data_file`` into it (none: nothing recorded)."""
    import coverage

    if not list(data_file.parent.glob(data_file.name + ".*")):
        return
    cov = coverage.Coverage(data_file=str(data_file), config_file=False, branch=True)
    cov.combine([str(data_file.parent)], keep=False)
    cov.save()


def _ratio(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "0/0"


def _where(report: CoverageReport, to: int) -> str:
    if to < 0:
        return "exit from the function"
    return f"line {to}: {report.text(to)}"


def format_report(report: CoverageReport) -> str:
    try:
        from importlib.metadata import version

        sdk = f"apache-airflow-task-sdk {version('apache-airflow-task-sdk')}"
    except Exception:  # pragma: no cover - the scope's module was found, so the distribution is there
        sdk = "apache-airflow-task-sdk"
    rel = "/".join(report.path.parts[report.path.parts.index("airflow"):]) if "airflow" in report.path.parts \
        else str(report.path)
    out = [f"branch coverage of {rel} ({sdk}) on {report.target}, profile {report.profile} "
           f"({report.seconds:.1f}s; pytest exit {report.pytest_status})",
           ]
    names = [f"{f.name} ({f.start}-{f.end})" for f in report.functions]
    width = max(len(n) for n in names)
    out.append(f"  {'function (lines of the file)':{width}} {'branches':>14} {'unreachable':>11}  "
               f"{'reachable taken':>15}  {'lines run':>14}")
    for name, f in zip(names, report.functions):
        out.append(f"  {name:{width}} {_ratio(f.branches_taken, f.branches):>14} {len(f.unreachable_branches):>11}  "
                   f"{_ratio(f.branches_taken, f.reachable_branches):>15}  {_ratio(f.lines_run, f.lines):>14}")
    (bt, b), (lr, ln) = report.branches, report.lines
    unreachable = sum(len(f.unreachable_branches) for f in report.functions)
    out.append(f"  {'total':{width}} {_ratio(bt, b):>14} {unreachable:>11}  "
               f"{_ratio(*report.reachable_branches):>15}  {_ratio(lr, ln):>14}")
    gaps = [f for f in report.functions if f.missing_lines or f.missing_branches]
    out.append("never reached:" if gaps else
               "never reached: nothing reachable (every branch of every function was taken, but those listed unreachable)")
    for f in gaps:
        out.append(f"  {f.name}")
        for line in f.missing_lines:
            out.append(f"    line {line} never ran: {report.text(line)}")
        for line, to in f.missing_branches:
            out.append(f"    branch {line} -> {'exit' if to < 0 else to} never taken: {report.text(line)}"
                       f"  ->  {_where(report, to)}")
    listed = [f for f in report.functions if f.unreachable_branches]
    if listed:
        out.append("unreachable (impl/power/coverage.py lists them, with the reason):")
    for f in listed:
        out.append(f"  {f.name}")
        for line, to, reason in f.unreachable_branches:
            out.append(f"    branch {line} -> {'exit' if to < 0 else to}: {report.text(line)}  ->  {_where(report, to)}")
            out.append(f"      why: {reason}")
        if f.unreachable_lines:
            out.append(f"    lines only those branches lead to: {', '.join(map(str, f.unreachable_lines))}")
    contradicted = [(f.name, c) for f in report.functions for c in f.contradicted]
    if contradicted:
        out.append("the list of unreachable branches is out of date:")
        out.extend(f"  {name}: {c}" for name, c in contradicted)
    return "\n".join(out)


def cmd_coverage(args) -> int:
    status = 0
    for target in [t.strip() for t in args.target.split(",") if t.strip()]:
        try:
            report = measure(target, args.profile, args.pytest_args)
        except NotMeasurable as e:
            raise SystemExit(f"finalstate: {e}") from None
        print(format_report(report))
        if report.pytest_status != 0:
            print(f"the properties failed on {target} (pytest exit {report.pytest_status}): "
                  "the figures are of that run", file=sys.stderr)
            status = status or report.pytest_status
        taken, total = report.branches
        if args.fail_under is not None and total and 100 * taken / total < args.fail_under:
            print(f"branch coverage {100 * taken / total:.1f}% is under {args.fail_under}%", file=sys.stderr)
            status = status or 2
    return status


def add_parser(subparsers) -> argparse.ArgumentParser:
    cov = subparsers.add_parser("coverage", help="run the properties under coverage.py and print the branch coverage "
                                                 "of the real terminal-state functions")
    cov.add_argument("--target", default="airflow-inproc",
                     help=f"{' or '.join(SCOPES)} (comma-separated for both)")
    cov.add_argument("--profile", default="ci", choices=PROFILES)
    cov.add_argument("--fail-under", type=float, default=None, metavar="PCT",
                     help="exit 2 if the branch coverage of the functions is under PCT percent")
    cov.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    cov.set_defaults(func=cmd_coverage)
    return cov

