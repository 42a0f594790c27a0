"""``finalstate mutate``: the mutation score of the checker on the real supervisor's terminal-state code.

    finalstate mutate [--target airflow-inproc] [--workers 2] [--profile ci] [--sample N] [--seed S]
                      [--functions NAME[,NAME...]] [--timeout SECONDS] [--no-ttfc] [--list]

Mutants of the functions ``impl.power.coverage`` measures on ``airflow-inproc`` (``final_state``,
``update_task_state_if_needed``, the terminal-frame branches of ``_handle_request``,
``_send_terminal_state_msg``, ``_replay_pending_terminal_state_msg``, the heartbeat and the overtime
handling) are generated with Cosmic Ray's operators (comparison, binary and unary operator
replacement, ``and``/``or`` and ``True``/``False`` swaps, number and exception-handler replacement)
and five operators of this module written to Cosmic Ray's ``Operator`` interface (``OPERATORS``):
statement deletion, negation of every ``if``/``elif``/``while`` condition, a condition made
``True``/``False``, a boolean operator replaced by one of its operands, a ``TaskInstanceState`` member
replaced by another. Mutations inside logging calls are not generated: logs are not part of what the
checker observes.

The installed file is never written. Each mutant is a copy in a temporary directory; a child
process imports ``impl.power.mutate`` first, whose import puts a finder at the head of
``sys.meta_path`` that loads the copy as ``airflow.sdk.execution_time.supervisor`` (``ENV``), checks
that the module imported is the copy, and runs the supervisor properties
(``properties/test_supervisor.py`` with ``-x``, the profile without its shrink phase: a kill needs
the first failure only) on it. A mutant is *killed* when that run
fails (a strict expected failure that passes fails it too), *killed by timeout* when it outlives
``--timeout``, *survived* otherwise. For each killed mutant the child then runs the conformance
state machine in process (``run_state_machine_as_test``, the profile's settings, no shrinking) and
times the first ``Disagreement``: the *time to first counterexample*.

Survivors argued equivalent are listed in ``EQUIVALENT`` (with the argument); the score counts
them out.
"""

from __future__ import annotations

import os
import sys

#: ``MODULE=PATH``: in a child process, ``MODULE`` is loaded from ``PATH`` (a mutant's copy) on first import.
ENV = "FINALSTATE_MUTANT"


class _MutantFinder:
    """A meta-path finder that answers one module name with a file of our choosing."""

    def __init__(self, module: str, path: str):
        self.module, self.path = module, path

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.module:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, self.path)


def install_mutant(module: str, path: str) -> None:
    """Make the next import of ``module`` load ``path``; refused if ``module`` was already imported."""
    if module in sys.modules:
        raise RuntimeError(f"{module} was imported before the mutant loader was installed")
    sys.meta_path.insert(0, _MutantFinder(module, path))


if os.environ.get(ENV):  # a mutant's child process: before anything can import the module
    install_mutant(*os.environ[ENV].split("=", 1))


import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import difflib  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import attrs  # noqa: E402

from impl.power.coverage import SUPERVISOR, Scope, project_root, regions, source_path  # noqa: E402
from impl.search.profiles import PROFILES  # noqa: E402

#: The targets mutants can run on: the supervisor code must run in the child process itself.
TARGETS = {"airflow-inproc": SUPERVISOR}
#: What the child runs per mutant.
PROPERTIES = "properties.test_supervisor"


# ---------------------------------------------------------------------------------------------
# Operators: Cosmic Ray's, and five of our own written to its Operator interface (parso nodes).
# ---------------------------------------------------------------------------------------------

#: Cosmic Ray's core operators used (its binary-operator set is cut to the inverse of each operator,
#: its variable operators, which draw random replacements, and AddNot, which NegateCondition extends
#: to ``elif``, are left out).
COSMIC_RAY_OPERATORS = (
    *(f"core/ReplaceComparisonOperator_{a}_{b}" for a in ("Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot")
      for b in ("Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot") if a != b),
    "core/ReplaceBinaryOperator_Add_Sub", "core/ReplaceBinaryOperator_Sub_Add",
    "core/ReplaceBinaryOperator_Mul_Div", "core/ReplaceBinaryOperator_Div_Mul",
    "core/ReplaceUnaryOperator_Delete_Not", "core/ReplaceUnaryOperator_USub_UAdd",
    "core/ReplaceTrueWithFalse", "core/ReplaceFalseWithTrue", "core/ReplaceAndWithOr", "core/ReplaceOrWithAnd",
    "core/NumberReplacer", "core/ExceptionReplacer",
)


def _operator_base():
    from cosmic_ray.operators.operator import Operator

    return Operator


def _condition_slots(node) -> list[int]:
    """Indices in ``node.children`` of the conditions of an ``if``/``elif``/``while`` statement or a ternary."""
    if node.type == "if_stmt":
        return [i + 1 for i, c in enumerate(node.children) if c.type == "keyword" and c.value in ("if", "elif")]
    if node.type == "while_stmt":
        return [1]
    if node.type == "test" and len(node.children) == 5:  # a if b else c
        return [2]
    return []


def _replace_expression(node, slot: int, code: str) -> None:
    """Put the expression ``code`` in ``node.children[slot]``, keeping the whitespace before it."""
    import parso

    old = node.children[slot]
    new = parso.parse(code).children[0]
    assert new.get_code() == code, code
    new.get_first_leaf().prefix = old.get_first_leaf().prefix
    new.parent = node
    node.children[slot] = new


def _make_operators() -> dict[str, type]:
    """This module's operators, as Cosmic Ray ``Operator`` classes (made on first use: Cosmic Ray is imported lazily)."""
    import parso.python.tree as pt

    class Operator(_operator_base()):
        """Cosmic Ray's interface; ``examples`` (its self-test hook) is not used here."""

        @classmethod
        def examples(cls):
            return ()

    class NegateCondition(Operator):
        """``if c:``/``elif c:``/``while c:``/``a if c else b`` → ``not (c)``: every branch of a chain, not only the first."""

        def mutation_positions(self, node):
            for slot in _condition_slots(node):
                yield node.children[slot].start_pos, node.children[slot].end_pos

        def mutate(self, node, index):
            slot = _condition_slots(node)[index]
            _replace_expression(node, slot, f"not ({node.children[slot].get_code(include_prefix=False)})")
            return node

    class _ConditionConstant(Operator):
        constant = "True"

        def _slots(self, node) -> list[int]:
            return [s for s in _condition_slots(node) if node.children[s].get_code(include_prefix=False) != self.constant]

        def mutation_positions(self, node):
            for slot in self._slots(node):
                yield node.children[slot].start_pos, node.children[slot].end_pos

        def mutate(self, node, index):
            _replace_expression(node, self._slots(node)[index], self.constant)
            return node

    class ConditionTrue(_ConditionConstant):
        """A condition made ``True``: its branch always taken."""

        constant = "True"

    class ConditionFalse(_ConditionConstant):
        """A condition made ``False``: its branch never taken."""

        constant = "False"

    class KeepOneOperand(Operator):
        """``a and b`` → ``a``, → ``b`` (``or`` alike): a clause of a condition dropped."""

        def mutation_positions(self, node):
            if node.type in ("and_test", "or_test"):
                for operand in node.children[::2]:
                    yield operand.start_pos, operand.end_pos

        def mutate(self, node, index):
            operand = node.children[::2][index]
            operand.get_first_leaf().prefix = node.get_first_leaf().prefix
            operand.parent = node.parent
            return operand

    class DeleteStatement(Operator):
        """A simple statement (an assignment, a call, a ``return``, a ``raise``) replaced by ``pass``."""

        def mutation_positions(self, node):
            if node.type == "simple_stmt" and len(node.children) == 2 and _deletable(node.children[0]):
                yield node.children[0].start_pos, node.children[0].end_pos

        def mutate(self, node, index):
            old = node.children[0]
            new = pt.Keyword("pass", old.start_pos, prefix=old.get_first_leaf().prefix)
            new.parent = node
            node.children[0] = new
            return node

    class ReplaceTaskState(Operator):
        """``TaskInstanceState.X`` → another terminal state; ``SERVER_TERMINATED`` → ``TaskInstanceState.FAILED``."""

        def mutation_positions(self, node):
            for _ in self._alternatives(node):
                yield node.start_pos, node.end_pos

        def mutate(self, node, index):
            new = self._alternatives(node)[index]
            if node.type == "name":
                node.value = new
            else:
                node.children[1].children[1].value = new
            return node

        @staticmethod
        def _alternatives(node) -> list[str]:
            if node.type == "name" and node.value == "SERVER_TERMINATED" and node.parent.type != "import_as_names":
                return ["TaskInstanceState.FAILED"]
            if (node.type in ("atom_expr", "power") and len(node.children) == 2
                    and node.children[0].type == "name" and node.children[0].value == "TaskInstanceState"
                    and node.children[1].type == "trailer" and node.children[1].children[0].value == "."):
                member = node.children[1].children[1].value
                return [s for s in STATE_SWAPS.get(member, ()) if s != member]
            return []

    return {f"finalstate/{c.__name__}": c for c in (
        NegateCondition, ConditionTrue, ConditionFalse, KeepOneOperand, DeleteStatement, ReplaceTaskState)}


#: What each state is replaced by: the states a terminal decision chooses between.
STATE_SWAPS = {
    "SUCCESS": ("FAILED", "UP_FOR_RETRY"),
    "FAILED": ("SUCCESS", "UP_FOR_RETRY"),
    "UP_FOR_RETRY": ("FAILED", "SUCCESS"),
    "DEFERRED": ("FAILED", "SUCCESS"),
    "UP_FOR_RESCHEDULE": ("FAILED", "SUCCESS"),
    "AWAITING_INPUT": ("FAILED", "SUCCESS"),
    "SKIPPED": ("FAILED", "SUCCESS"),
}


def _is_logging_call(node) -> bool:
    """``log.x(...)``, ``self.process_log.x(...)``: what the checker does not observe."""
    if node.type not in ("atom_expr", "power"):
        return False
    code = node.get_code(include_prefix=False)
    return code.startswith(("log.", "self.process_log.", "logger.")) and node.children[-1].type == "trailer" \
        and node.children[-1].children[0].value == "("


def _deletable(stmt) -> bool:
    if stmt.type in ("string", "keyword") and stmt.get_code(include_prefix=False) in ("pass", "..."):
        return False
    if stmt.type == "string":  # a docstring
        return False
    return not _is_logging_call(stmt)


def _in_unobserved_code(node) -> bool:
    """Inside a logging call or an annotation."""
    while node is not None:
        if _is_logging_call(node) or node.type in ("annassign", "tfpdef"):
            return True
        node = node.parent
    return False


def operators() -> dict[str, object]:
    """Every operator used, by name: Cosmic Ray's core ones and this module's."""
    from cosmic_ray.plugins import get_operator

    ops = {name: get_operator(name)() for name in COSMIC_RAY_OPERATORS}
    ops.update({name: cls() for name, cls in _make_operators().items()})
    return ops


# ---------------------------------------------------------------------------------------------
# Mutants.
# ---------------------------------------------------------------------------------------------

@attrs.frozen
class Unit:
    """A function of the upstream file, cut out and dedented so its mutants are made on it alone."""

    name: str
    first: int  # the file's line number of the unit's first line (a decorator, or the def)
    indent: str
    text: str  # dedented
    lines: frozenset[int]  # the file's lines mutants may start on (the region measured by coverage)


@attrs.frozen
class Mutant:
    id: int
    function: str
    operator: str
    occurrence: int  # the operator's occurrence within the unit (Cosmic Ray's counting)
    line: int  # the file's line of the mutation
    before: str  # the changed line(s), as they were
    after: str  # as the mutant has them
    unit_text: str  # the mutated unit, dedented

    @property
    def key(self) -> str:
        """What names a mutant across runs (and in ``EQUIVALENT``): function, operator, the change."""
        return f"{self.function} | {self.operator.split('/')[-1]} | {self.before} => {self.after}"


@functools.lru_cache(maxsize=4)
def units(scope: Scope, source: str) -> tuple[Unit, ...]:
    import ast

    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    found = []
    for region in regions(scope, source):
        node = tree
        for part in region.name.partition("[")[0].split("."):
            node = next(n for n in node.body if getattr(n, "name", None) == part)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        block = "".join(lines[first - 1:node.end_lineno])
        indent = block[:len(block) - len(block.lstrip(" "))]
        text = textwrap.dedent(block)
        if textwrap.indent(text, indent) != block:
            raise RuntimeError(f"{region.name}: cannot cut it out of the file unchanged")
        found.append(Unit(region.name, first, indent, text, region.lines))
    return tuple(found)


def _changed(before: str, after: str) -> tuple[str, str]:
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    old, new = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old += [s.strip() for s in a[i1:i2]]
            new += [s.strip() for s in b[j1:j2]]
    return " / ".join(old), " / ".join(new)


def generate(scope: Scope = SUPERVISOR, source: str | None = None, functions: tuple[str, ...] = ()) -> list[Mutant]:
    """Every mutant of the scope's functions (or of ``functions``, by name or bare method name), in file order.

    Mutants that do not compile and duplicates (the same mutated code) are dropped.
    """
    from cosmic_ray.ast import ast_nodes, get_ast
    from cosmic_ray.mutating import mutate_code

    source = source if source is not None else source_path(scope.module).read_text()
    ops = operators()
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for unit in units(scope, source):
        if functions and not any(f in (unit.name, unit.name.split(".")[-1], unit.name.partition("[")[0],
                                       unit.name.partition("[")[0].split(".")[-1]) for f in functions):
            continue
        tree = get_ast(unit.text)
        nodes = list(ast_nodes(tree))
        for name, op in ops.items():
            occurrence = -1
            for node in nodes:
                for (line, _col), _end in op.mutation_positions(node):
                    occurrence += 1
                    file_line = unit.first + line - 1
                    if file_line not in unit.lines or _in_unobserved_code(node):
                        continue
                    mutated = mutate_code(unit.text, op, occurrence)
                    if mutated is None or mutated == unit.text or mutated in seen:
                        continue
                    try:
                        compile(mutated, unit.name, "exec")
                    except SyntaxError:
                        continue
                    seen.add(mutated)
                    before, after = _changed(unit.text, mutated)
                    mutants.append(Mutant(0, unit.name, name, occurrence, file_line, before, after, mutated))
    mutants.sort(key=lambda m: (m.line, m.operator, m.occurrence))
    return [attrs.evolve(m, id=i + 1) for i, m in enumerate(mutants)]


def mutated_source(source: str, mutant: Mutant, scope: Scope = SUPERVISOR) -> str:
    """The whole file with ``mutant``'s unit in place of the original."""
    unit = next(u for u in units(scope, source) if u.name == mutant.function)
    lines = source.splitlines(keepends=True)
    original = textwrap.indent(unit.text, unit.indent)
    end = unit.first - 1 + len(original.splitlines())
    return "".join(lines[:unit.first - 1]) + textwrap.indent(mutant.unit_text, unit.indent) + "".join(lines[end:])


def diff(source: str, mutant: Mutant, path: str = "airflow/sdk/execution_time/supervisor.py", context: int = 3) -> str:
    return "\n".join(difflib.unified_diff(source.splitlines(), mutated_source(source, mutant).splitlines(),
                                          f"a/{path}", f"b/{path}", n=context, lineterm=""))


# ---------------------------------------------------------------------------------------------
# Survivors argued equivalent: key -> the argument.
# ---------------------------------------------------------------------------------------------

_SEND, _REPLAY = "ActivitySubprocess._send_terminal_state_msg", "ActivitySubprocess._replay_pending_terminal_state_msg"
_FS, _HB, _HBF = ("ActivitySubprocess.final_state", "ActivitySubprocess._send_heartbeat_if_needed",
                  "ActivitySubprocess._handle_heartbeat_failures")
_OVERTIME = "ActivitySubprocess._handle_process_overtime_if_needed"
EQUIVALENT: dict[str, str] = {
    f"{_HB} | DeleteStatement | self._last_successful_heartbeat = time.monotonic() => pass":
        "in the specified release the stamp of the last successful heartbeat is read only by _monitor_subprocess, "
        "for how long its select may sleep (HEARTBEAT_TIMEOUT - 0.75 x its age): stale, the loop wakes more often, "
        "and no decision about the terminal state, the calls or the kills reads it",
    f"{_SEND} | ConditionTrue | elif isinstance(msg, AwaitInputTask): => elif True:":
        "every caller passes one of the five terminal messages, so the last elif is reached only by an AwaitInputTask",
    f"{_REPLAY} | ConditionFalse | if msg is None: => if False:":
        "the one caller (update_task_state_if_needed) calls it only when the pending message is not None",
    f"{_REPLAY} | DeleteStatement | return => pass":
        "the return is reached only when the pending message is None, which the one caller rules out",
    f"{_OVERTIME} | ReplaceComparisonOperator_Gt_GtE | and (time.monotonic() - self._task_end_time_monotonic) > "
    "TASK_OVERTIME_THRESHOLD => and (time.monotonic() - self._task_end_time_monotonic) >= TASK_OVERTIME_THRESHOLD":
        "differs only when two monotonic clock readings are exactly the threshold apart (a float tie), "
        "which no scenario or real run can aim at",
    f"{_HB} | ReplaceComparisonOperator_Lt_LtE | if (time.monotonic() - self._last_heartbeat_attempt) < "
    "MIN_HEARTBEAT_INTERVAL: => if (time.monotonic() - self._last_heartbeat_attempt) <= MIN_HEARTBEAT_INTERVAL:":
        "differs only on an exact float tie of the elapsed time with the interval",
    f"{_HBF} | ReplaceComparisonOperator_GtE_Eq | if self.failed_heartbeats >= MAX_FAILED_HEARTBEATS: => "
    "if self.failed_heartbeats == MAX_FAILED_HEARTBEATS:":
        "the count rises by one per failure from 0, and the kill at MAX_FAILED_HEARTBEATS ends the process "
        "(force=True escalates to SIGKILL), after which no heartbeat is sent: the count never passes the maximum",
    f"{_HBF} | ReplaceComparisonOperator_GtE_Is | if self.failed_heartbeats >= MAX_FAILED_HEARTBEATS: => "
    "if self.failed_heartbeats is MAX_FAILED_HEARTBEATS:":
        "as == (the count never passes the maximum), and small ints are one object each in CPython",
    f"{_FS} | ReplaceComparisonOperator_Eq_Is | if self._exit_code != 0 and self._terminal_state == SERVER_TERMINATED:"
    " => if self._exit_code != 0 and self._terminal_state is SERVER_TERMINATED:":
        "_terminal_state equals SERVER_TERMINATED only when that very constant was assigned (frames carry "
        "TaskInstanceState members, never this string)",
    f"{_FS} | KeepOneOperand | if self._exit_code != 0 and self._terminal_state == SERVER_TERMINATED: => "
    "if self._terminal_state == SERVER_TERMINATED:":
        "the line before returns for exit code 0, so _exit_code != 0 always holds here",
    f"{_FS} | KeepOneOperand | if self._exit_code != 0 and self._should_retry: => if self._should_retry:":
        "the first branch returns for exit code 0, so _exit_code != 0 always holds here",
}


# ---------------------------------------------------------------------------------------------
# The child: load the mutant, run the properties, time the first counterexample.
# ---------------------------------------------------------------------------------------------

def time_to_first_counterexample(target_name: str = "airflow-inproc", profile: str = "ci") -> dict:
    """Run the conformance machine in process and time the first failing check (no shrinking).

    Returns ``{"seconds": s, "error": name}`` for the first check that raised, or ``{"seconds": None}``.
    """
    from hypothesis import Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    from impl.targets.registry import load_target
    from impl.search.report import check_conformance
    from impl.search.scenarios import machine_for

    target = load_target(target_name)
    first: list[tuple[float, str]] = []
    start = time.perf_counter()

    def check(scenario):
        try:
            return check_conformance(target, scenario)
        except BaseException as e:
            if not first:
                first.append((time.perf_counter() - start, type(e).__name__))
            raise

    machine = machine_for("Conformance", check, target.attempts_per_step)
    try:
        run_state_machine_as_test(machine, settings=settings(settings.get_profile(profile), database=None,
                                                             phases=(Phase.explicit, Phase.generate)))
    except BaseException:  # noqa: BLE001  the mutant's failure is what is timed, whatever it is
        pass
    finally:
        target.close()
    return {"seconds": first[0][0], "error": first[0][1]} if first else {"seconds": None, "error": None}


class _Failures:
    """A pytest plugin recording the first failing test and its first line."""

    def __init__(self):
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.failed and len(self.failed) < 3:
            text = getattr(report, "longreprtext", "") or str(report.longrepr or "")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            telling = [line for line in lines if line.startswith(("E ", "[XPASS")) or "DISAGREEMENT" in line
                       or "VIOLATION" in line]
            why = (telling or lines or [""])[0].lstrip("E ").strip()[:200]
            self.failed.append(f"{report.nodeid.split('::')[-1]}: {why}")


def child_main(argv: list[str]) -> int:
    """In the child: check the mutant is what gets imported, run the properties, then time the first counterexample."""
    p = argparse.ArgumentParser()
    p.add_argument("--target", default="airflow-inproc")
    p.add_argument("--profile", default="ci")
    p.add_argument("--result", required=True)
    p.add_argument("--ttfc", action="store_true")
    p.add_argument("--properties", default=None)
    args = p.parse_args(argv)
    module, path = os.environ[ENV].split("=", 1)
    result: dict = {"loaded": None}

    def save():
        Path(args.result).write_text(json.dumps(result))

    import builtins
    import importlib

    from cosmic_ray.exceptions import CosmicRayTestingException

    builtins.CosmicRayTestingException = CosmicRayTestingException  # what ExceptionReplacer's handlers name
    imported = importlib.import_module(module)
    result["loaded"] = os.path.samefile(imported.__file__, path)
    if not result["loaded"]:
        save()
        return 3
    import pytest
    from hypothesis import Phase, settings

    import impl.search.profiles  # noqa: F401  registers the profiles, so that one can be derived here

    # A kill needs the first failure only: the profile as asked, without shrinking; and a mutant's
    # counterexamples are not the project's, so none is saved to (or replayed from) its example database.
    settings.register_profile(f"{args.profile}-mutant", settings.get_profile(args.profile),
                              phases=(Phase.explicit, Phase.generate), database=None)
    failures = _Failures()
    start = time.perf_counter()
    import importlib.util

    tests = importlib.util.find_spec(PROPERTIES).origin  # a path, so that pytest loads properties/conftest.py
    selected = ["-k", args.properties] if args.properties else []
    rc = int(pytest.main([tests, f"--target={args.target}", f"--hypothesis-profile={args.profile}-mutant",
                          "-p", "no:cacheprovider", "-x", "-q", "--tb=short", "--no-header", "-o", "addopts=",
                          *selected], plugins=[failures]))
    result.update(pytest=rc, seconds=time.perf_counter() - start, failed=failures.failed,
                  still_loaded=sys.modules[module] is imported)
    save()
    if rc != 0 and args.ttfc:
        result["ttfc"] = time_to_first_counterexample(args.target, args.profile)
        save()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent: run every mutant in a child, in parallel, and report.
# ---------------------------------------------------------------------------------------------

@attrs.frozen
class Outcome:
    mutant: Mutant | None  # None: the unmutated copy (the baseline)
    status: str  # killed | timeout | survived | error
    seconds: float
    detail: str = ""
    ttfc: float | None = None
    ttfc_error: str | None = None


def run_mutant(source_text: str, module: str, target: str, profile: str, timeout: float, ttfc: bool,
               mutant: Mutant | None, workdir: Path, properties: str | None = None) -> Outcome:
    """``mutant`` (None: the unmutated copy) loaded in a child in place of ``module``, judged by the supervisor
    properties (``properties``: a pytest ``-k`` expression choosing some of them; None: all) on ``target``."""
    where = Path(tempfile.mkdtemp(prefix=f"mutant-{mutant.id if mutant else 0}-", dir=workdir))
    copy = where / Path(module.replace(".", "/")).with_suffix(".py").name
    copy.write_text(source_text)
    result_file = where / "result.json"
    root = project_root()
    env = {**os.environ, ENV: f"{module}={copy}", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", "import sys, impl.power.mutate as m; sys.exit(m.child_main(sys.argv[1:]))",
           f"--target={target}", f"--profile={profile}", f"--result={result_file}", *(["--ttfc"] if ttfc else []),
           *([f"--properties={properties}"] if properties else [])]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    seconds = time.monotonic() - start
    try:
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    finally:
        shutil.rmtree(where, ignore_errors=True)
    ttfc = result.get("ttfc") or {}
    if result.get("loaded") is False:
        return Outcome(mutant, "error", seconds, "the child imported the installed module, not the mutant")
    if "pytest" in result and result["pytest"] != 0:
        detail = "; ".join(result.get("failed") or []) or f"pytest exit {result['pytest']}"
        return Outcome(mutant, "killed", seconds, detail, ttfc.get("seconds"), ttfc.get("error"))
    if timed_out:
        return Outcome(mutant, "timeout", seconds, f"still running after {timeout:.0f}s")
    if result.get("pytest") == 0 and proc.returncode == 0:
        return Outcome(mutant, "survived", seconds)
    return Outcome(mutant, "error", seconds, f"child exit {proc.returncode}: {(out or '')[-600:]}")


@attrs.frozen
class MutationReport:
    target: str
    profile: str
    workers: int
    generated: int
    outcomes: tuple[Outcome, ...]
    baseline: Outcome
    seconds: float
    source: str
    unchanged: bool  # the installed file hashed the same before and after
    properties: str | None = None  # the pytest -k expression that chose the properties judging each mutant; None: all

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def equivalent(self) -> list[Outcome]:
        return [o for o in self.of("survived") if o.mutant.key in EQUIVALENT]

    @property
    def survivors(self) -> list[Outcome]:
        return [o for o in self.of("survived") if o.mutant.key not in EQUIVALENT]

    @property
    def score(self) -> float:
        counted = len(self.outcomes) - len(self.equivalent) - len(self.of("error"))
        return (len(self.of("killed")) + len(self.of("timeout"))) / counted if counted else 0.0

    @property
    def ttfc(self) -> list[float]:
        return sorted(o.ttfc for o in self.of("killed") if o.ttfc is not None)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(target: str = "airflow-inproc", profile: str = "ci", workers: int = 2, sample: int | None = None,
        seed: int = 0, functions: tuple[str, ...] = (), timeout: float | None = None, ttfc: bool = True,
        mutants: list[Mutant] | None = None, progress=None, properties: str | None = None) -> MutationReport:
    """Generate (or take) the mutants, check the unmutated copy passes, run every mutant, and report; each judged by
    the supervisor properties ``properties`` (a pytest ``-k`` expression) chooses, all of them when None."""
    scope = TARGETS[target]
    path = source_path(scope.module)
    before = file_hash(path)
    source = path.read_text()
    start = time.monotonic()
    everything = mutants if mutants is not None else generate(scope, source, functions)
    chosen = everything if sample is None or sample >= len(everything) else \
        sorted(random.Random(seed).sample(everything, sample), key=lambda m: m.id)
    with tempfile.TemporaryDirectory(prefix="finalstate-mutate-") as tmp:
        workdir = Path(tmp)
        baseline = run_mutant(source, scope.module, target, profile, timeout or 600, False, None, workdir, properties)
        if baseline.status != "survived":
            raise RuntimeError(f"the unmutated copy does not pass the properties ({baseline.status}): "
                               f"{baseline.detail}")
        limit = timeout if timeout is not None else max(60.0, 5 * baseline.seconds)
        outcomes: list[Outcome] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(run_mutant, mutated_source(source, m, scope), scope.module, target, profile, limit,
                                   ttfc, m, workdir, properties) for m in chosen]
            for future in concurrent.futures.as_completed(futures):
                outcomes.append(future.result())
                if progress:
                    progress(outcomes[-1])
    outcomes.sort(key=lambda o: o.mutant.id)
    return MutationReport(target, profile, workers, len(everything), tuple(outcomes), baseline,
                          time.monotonic() - start, source, file_hash(path) == before, properties)


def format_outcomes(report: MutationReport) -> str:
    """One line per mutant: its outcome, the time to its first counterexample, what killed it."""
    lines = []
    for o in report.outcomes:
        ttfc = f"{o.ttfc:.3f}s" if o.ttfc is not None else "-"
        status = "equivalent" if o.status == "survived" and o.mutant.key in EQUIVALENT else o.status
        lines.append(f"#{o.mutant.id:<4} {status:10} ttfc {ttfc:>7}  {o.seconds:5.1f}s  line {o.mutant.line}  "
                     f"{o.mutant.key}" + (f"\n        {o.detail}" if o.detail else ""))
    return "\n".join(lines)


def format_report(report: MutationReport, diffs: bool = True) -> str:
    killed, timeouts, survived = report.of("killed"), report.of("timeout"), report.of("survived")
    errors, equivalent, survivors = report.of("error"), report.equivalent, report.survivors
    n = len(report.outcomes)
    out = [
        f"mutation of {TARGETS[report.target].module} on {report.target}, profile {report.profile}, "
        f"{report.workers} worker(s)"
        + (f", judged by the properties -k {report.properties!r} only" if report.properties else ""),
        f"  mutants:   {n}" + (f" (a sample of {report.generated})" if n < report.generated else ""),
        f"  killed:    {len(killed)}",
        f"  timeouts:  {len(timeouts)} (killed by timeout)",
        f"  survived:  {len(survived)} ({len(equivalent)} argued equivalent, {len(survivors)} not)",
        *([f"  errors:    {len(errors)} (not counted)"] if errors else []),
        f"  score:     {100 * report.score:.1f}% (killed and timeouts over mutants, equivalent ones left out)",
    ]
    by_function: dict[str, list[int]] = {}
    for o in report.outcomes:
        k = by_function.setdefault(o.mutant.function, [0, 0])
        k[0] += o.status in ("killed", "timeout")
        k[1] += o.status != "error" and not (o.status == "survived" and o.mutant.key in EQUIVALENT)
    for name, (k, total) in by_function.items():
        out.append(f"    {name:56} {k}/{total} killed")
    times = report.ttfc
    conformance_missed = [o for o in killed if o.ttfc is None]
    if times:
        out.append(f"  time to first counterexample (conformance, in process): median {statistics.median(times):.3f}s, "
                   f"p90 {times[int(0.9 * (len(times) - 1))]:.3f}s, max {times[-1]:.3f}s over {len(times)} killed "
                   "mutant(s)" + (f"; {len(conformance_missed)} killed only by other properties"
                                  if conformance_missed else ""))
    per = report.seconds / n if n else 0
    out.append(f"  wall time: {report.seconds:.0f}s ({per:.1f}s per mutant with {report.workers} worker(s); "
               f"the unmutated run {report.baseline.seconds:.1f}s)")
    out.append(f"  installed file unchanged: {'yes' if report.unchanged else 'NO'}")
    for o in errors:
        out.append(f"error #{o.mutant.id} {o.mutant.key}: {o.detail}")
    for title, group in (("survivor", survivors), ("equivalent", equivalent)):
        for o in group:
            out.append(f"{title} #{o.mutant.id} [{o.mutant.function}, {o.mutant.operator}] line {o.mutant.line}")
            if title == "equivalent":
                out.append(f"  why equivalent: {EQUIVALENT[o.mutant.key]}")
            if diffs:
                out.append(textwrap.indent(diff(report.source, o.mutant), "  "))
    return "\n".join(out)


def cmd_mutate(args) -> int:
    if args.target not in TARGETS:
        raise SystemExit(f"finalstate: mutants run on {', '.join(TARGETS)}, where the supervisor runs in the checked "
                         f"process; not on {args.target}")
    functions = tuple(f.strip() for f in (args.functions or "").split(",") if f.strip())
    mutants = generate(TARGETS[args.target], functions=functions)
    if args.list:
        for m in mutants:
            print(f"#{m.id:<4} line {m.line:<5} {m.key}")
        print(f"{len(mutants)} mutants")
        return 0
    marks = {"killed": ".", "timeout": "T", "survived": "S", "error": "E"}
    report = run(args.target, args.profile, args.workers, args.sample, args.seed, functions, args.timeout,
                 not args.no_ttfc, mutants,
                 progress=lambda o: (sys.stderr.write(marks[o.status]), sys.stderr.flush()),
                 properties=args.properties)
    sys.stderr.write("\n")
    if args.verbose:
        print(format_outcomes(report))
    print(format_report(report))
    if not report.unchanged:
        print("the installed supervisor file changed during the run", file=sys.stderr)
        return 2
    return 1 if report.survivors or report.of("error") else 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    mut = subparsers.add_parser("mutate", help="mutate the real supervisor's terminal-state functions and print how "
                                               "many mutants the checker kills")
    mut.add_argument("--target", default="airflow-inproc", help=f"where mutants run: {', '.join(TARGETS)}")
    mut.add_argument("--profile", default="ci", choices=PROFILES)
    mut.add_argument("--workers", type=int, default=2, help="mutants run at once, each in its own process")
    mut.add_argument("--sample", type=int, default=None, metavar="N", help="run N mutants drawn at random (seeded)")
    mut.add_argument("--seed", type=int, default=0, help="the seed of --sample")
    mut.add_argument("--functions", default="", help="only these functions (comma-separated, e.g. final_state)")
    mut.add_argument("--timeout", type=float, default=None,
                     help="seconds per mutant (default: 5x the unmutated run, at least 60)")
    mut.add_argument("--no-ttfc", action="store_true", help="do not time the first counterexample of killed mutants")
    mut.add_argument("--properties", default=None, metavar="EXPR",
                     help="judge each mutant by these supervisor properties only (a pytest -k expression, e.g. "
                          "test_conformance); default: all of them")
    mut.add_argument("--list", action="store_true", help="print the mutants and stop")
    mut.add_argument("-v", "--verbose", action="store_true",
                     help="also print every mutant's outcome, time to first counterexample and what killed it")
    mut.set_defaults(func=cmd_mutate)
    return mut
