"""``finalstate diff A B``: the terminal-state behaviour that changed between two implementations, no model needed.

    finalstate diff 1.2.0 1.3.2 [--target airflow-inproc] [--profile ci] [--max-differences 8] [--out PATH]
    finalstate diff 1.3.2 src:/path/to/airflow          (a release against a checkout)

A and B are each a release (``impl.releases.environments.RELEASES``), ``installed`` (this
checkout's ``.venv``) or ``src:PATH`` (a checkout of apache/airflow). Each side gets one
persistent worker, ``<python_for(side)> -m impl.compare.observe --target T``; this process runs
Hypothesis over the checker's own generators (``impl.search.scenarios``: the attempt machine
for a supervisor target, the runtime or coordinator runs otherwise), sends every run to both
workers, compares the two observations, and lets Hypothesis shrink a run on which they differ.

Several distinct differences, not just the first: a search fails only on a run whose difference is
*new* — a (decision, side A's value, side B's value) not reported yet — so each search after a
find goes on to the next kind of change (as ``impl.findings.search.discover`` does per invariant).
The decisions are the parts of an observation a maintainer reviews: the final state, the calls
made, the server row, the exit (``DECISIONS``). Searching stops when a search finds nothing new or
``max_differences`` are found. The report (Markdown, for a pull request review) groups the
differences by the first decision each changed, with the minimal run and both observations side by
side, and says how many runs were compared and how fast.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import attrs
from hypothesis import given, settings

from impl.targets.kinds import KINDS
from impl.search.scenarios import RUNS, machine_for, run_machine
from impl.places import code_root

#: The decisions an observation records, most important first, and the observation fields that make
#: each one (supervisor ``Observation`` and runtime ``RuntimeObservation`` fields alike).
DECISIONS: dict[str, tuple[str, ...]] = {
    "final state": ("final_state", "state"),
    "row": ("row", "row_gone"),
    "calls made": ("calls", "sent", "retry_delay_seconds", "retry_reason"),
    "replies to the runtime": ("replies",),
    "rendered map index sent": ("rendered_map_index",),
    "exit": ("exit_code", "raised", "harness"),
    "target error": ("error",),
}
#: A worker that takes longer than this for one run is stuck: it is killed and named.
RUN_DEADLINE = 120.0
#: How long a worker may take to import its release and load the target.
START_DEADLINE = 180.0


class WorkerFailed(RuntimeError):
    """A side's worker died, hung, or could not load its target; the message names the side."""


@attrs.frozen
class Side:
    """One implementation under comparison: a release spec, and extra environment for its worker (tests
    use ``FINALSTATE_MUTANT`` to make a side a deliberately different implementation)."""

    spec: str
    env: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.spec + (" (" + ", ".join(f"{k}={Path(v.split('=', 1)[-1]).name}" for k, v in self.env) + ")"
                            if self.env else "")


class Worker:
    """``python -m impl.compare.observe`` for one side: a run's text in, its observation (JSON) out.

    Started in its own session so a terminal's Ctrl-C reaches only us; ``close`` kills its process
    group, whatever state it is in. Its stderr goes to a temporary file, shown when it fails.
    """

    def __init__(self, side: Side, python: Path, target: str):
        self.side = side
        self._stderr = tempfile.TemporaryFile()
        root = code_root()
        env = {**os.environ, **dict(side.env), "PYTHONPATH": os.pathsep.join(
            filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen([str(python), "-m", "impl.compare.observe", "--target", target],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         cwd=root, env=env, start_new_session=True)
        self._buffer = b""
        self.ready: dict = {}

    def wait_ready(self) -> dict:
        """What the worker loaded (target, kind, release), once it has; ``WorkerFailed`` if it cannot."""
        hello = self._read(START_DEADLINE)
        if "ready" not in hello:
            self.close()
            raise WorkerFailed(f"side {self.side.label}: {hello.get('fatal', hello)}")
        self.ready = hello["ready"]
        return self.ready

    def send(self, text: str) -> None:
        try:
            self._process.stdin.write(text.encode() + b"\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._failed("its worker died") from None

    def receive(self) -> dict:
        return self._read(RUN_DEADLINE)

    def _read(self, deadline: float) -> dict:
        until = time.monotonic() + deadline
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = until - time.monotonic()
                if left <= 0:
                    raise self._failed(f"its worker gave no answer within {deadline:.0f}s")
                if not selector.select(left):
                    continue
                chunk = os.read(self._process.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise self._failed("its worker died")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _failed(self, what: str) -> WorkerFailed:
        self.close()
        self._stderr.seek(0)
        tail = "\n".join(self._stderr.read().decode(errors="replace").strip().splitlines()[-12:])
        return WorkerFailed(f"side {self.side.label}: {what} (exit {self._process.returncode})"
                            + (f"; its last output:\n{tail}" if tail else ""))

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except OSError:
                pass  # a pipe the dead worker left unflushed
        self._stderr.close()


@attrs.frozen
class Difference:
    """One run on which the two sides' observations differ, and which decisions changed."""

    run: str
    changed: tuple[str, ...]
    a: dict
    b: dict

    def signatures(self) -> set[tuple]:
        return {signature(d, self.a, self.b) for d in self.changed}


def decision_of(field: str) -> str:
    return next((d for d, fields in DECISIONS.items() if field in fields), field)


def _fields(answer: dict) -> dict:
    return answer.get("observation") or {"error": answer.get("error")}


def changed_decisions(a: dict, b: dict) -> tuple[str, ...]:
    """The decisions on which two workers' answers differ, in ``DECISIONS`` order (unknown fields after)."""
    fa, fb = _fields(a), _fields(b)
    fields = [f for f in {**fa, **fb} if fa.get(f) != fb.get(f)]
    found = {decision_of(f) for f in fields}
    return tuple(d for d in DECISIONS if d in found) + tuple(sorted(found - set(DECISIONS)))


def signature(decision: str, a: dict, b: dict) -> tuple:
    """What makes two differences in ``decision`` the same kind of change: each side's value of it; where they
    differ in a sequence (the calls, the frames sent, the replies), the first item on which they part (so a longer
    run with the same change is not new)."""
    fa, fb = _fields(a), _fields(b)
    names = [f for f in DECISIONS.get(decision, (decision,)) if f in fa or f in fb]
    for name in names:
        xs, ys = fa.get(name) or [], fb.get(name) or []
        if xs != ys and isinstance(xs, list) and isinstance(ys, list):
            at = next((i for i, (x, y) in enumerate(zip(xs, ys)) if x != y), min(len(xs), len(ys)))
            part = lambda seq: json.dumps(seq[at]) if at < len(seq) else "(nothing)"  # noqa: E731
            return decision, name, part(xs), part(ys)
    return (decision, *(json.dumps(fa.get(n)) for n in names), *(json.dumps(fb.get(n)) for n in names))


class _Differs(AssertionError):
    def __init__(self, difference: Difference):
        super().__init__(f"{difference.run}: {', '.join(difference.changed)} changed")
        self.difference = difference


@attrs.define
class Comparison:
    """Both workers, and what comparing runs on them has come to."""

    a: Worker
    b: Worker
    runs: int = 0
    seconds: float = 0.0

    def observe(self, text: str) -> tuple[dict, dict]:
        """Both sides' answers for one run; the two workers work on it at once."""
        start = time.perf_counter()
        self.a.send(text)
        self.b.send(text)
        answers = self.a.receive(), self.b.receive()
        self.seconds += time.perf_counter() - start
        self.runs += 1
        return answers

    def compare(self, text: str) -> Difference | None:
        a, b = self.observe(text)
        changed = changed_decisions(a, b)
        return Difference(text, changed, a, b) if changed else None


def search(comparison: Comparison, kind: str, seen: set[tuple], profile: settings) -> Difference | None:
    """The minimal run whose difference has a signature not in ``seen``, or None if the search finds none."""
    def check(run) -> None:
        found = comparison.compare(run.to_text())
        if found is not None and not found.signatures() <= seen:
            raise _Differs(found)

    try:
        if kind == "supervisor":
            run_machine(machine_for("Diff", check), profile)
        else:
            settings(profile)(given(RUNS[kind])(check))()
    except _Differs as e:
        return e.difference
    except ExceptionGroup as group:  # Hypothesis reports distinct failures together; any one is a find
        first = group.subgroup(_Differs)
        if first is None:
            raise
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        return first.difference
    return None


@attrs.frozen
class DiffResult:
    a: Side
    b: Side
    target: str
    kind: str
    releases: tuple[str, str]
    differences: tuple[Difference, ...]
    runs: int
    #: Time spent waiting on the two workers (both observe each run at once).
    seconds: float
    #: The searches end to end: generating, comparing, shrinking (start-up excluded).
    search_seconds: float
    wall: float

    @property
    def rate(self) -> float:
        """Runs per second through the whole search (generation and shrinking included)."""
        return self.runs / self.search_seconds if self.search_seconds else 0.0


def diff(a: Side, b: Side, target: str = "airflow-inproc", profile: settings | None = None,
         max_differences: int = 8, python_for: Callable[[str], Path] | None = None,
         progress: Callable[[str], None] = lambda line: None) -> DiffResult:
    """Compare ``a`` and ``b`` on ``target`` under ``profile``: up to ``max_differences`` distinct minimal differences.

    Raises ``WorkerFailed`` naming the side whose worker died, hung or could not load the target,
    and what ``python_for`` raises for a side that is not a release, not installed or not a checkout.
    """
    if python_for is None:
        from impl.releases.environments import python_for
    import impl.search.profiles  # noqa: F401  registers the profiles

    profile = profile or settings.get_profile("ci")
    started = time.perf_counter()
    pythons = python_for(a.spec), python_for(b.spec)
    worker_a = Worker(a, pythons[0], target)
    try:
        worker_b = Worker(b, pythons[1], target)
    except BaseException:
        worker_a.close()
        raise
    comparison = Comparison(worker_a, worker_b)
    try:
        worker_a.wait_ready()  # both import their release at once
        worker_b.wait_ready()
        kind = worker_a.ready["kind"]
        if worker_b.ready["kind"] != kind:
            raise WorkerFailed(f"target {target} takes {kind} runs on {a.label} but {worker_b.ready['kind']} runs "
                               f"on {b.label}")
        found: list[Difference] = []
        seen: set[tuple] = set()
        searching = time.perf_counter()
        while len(found) < max_differences:
            progress(f"searching ({len(found)} difference(s) so far, {comparison.runs} runs compared)...")
            difference = search(comparison, kind, seen, profile)
            if difference is None:
                break
            found.append(difference)
            seen |= difference.signatures()
        return DiffResult(a, b, target, kind, (worker_a.ready["release"], worker_b.ready["release"]),
                          tuple(found), comparison.runs, comparison.seconds, time.perf_counter() - searching,
                          time.perf_counter() - started)
    finally:
        worker_a.close()
        worker_b.close()


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _replay(side: Side, target: str, run: str) -> str:
    where = "" if side.spec == "installed" else (
        f" --airflow-src {shlex.quote(side.spec[4:])}" if side.spec.startswith("src:") else f" --release {side.spec}")
    return f"finalstate replay{where} --target {shlex.quote(target)} {shlex.quote(run)}"


def report(result: DiffResult) -> str:
    """The Markdown a maintainer pastes into a review: the differences grouped by the first decision each changed."""
    a, b = result.a.label, result.b.label
    lines = [f"## finalstate diff: `{a}` → `{b}` on `{result.target}`", "",
             f"task-sdk {result.releases[0]} → {result.releases[1]}; {result.kind} runs generated by finalstate's "
             f"checker and run on both: {result.runs} runs compared in {result.search_seconds:.1f}s, "
             f"{result.rate:.0f} runs/s ({result.seconds:.1f}s of it waiting on the two sides; "
             f"{result.wall:.1f}s wall with start-up).", ""]
    if not result.differences:
        return "\n".join(lines + ["No behaviour change: every run was observed the same on both sides.", ""])
    lines += [f"{len(result.differences)} distinct behaviour change(s), each shrunk to a minimal run.", ""]
    groups: dict[str, list[Difference]] = {}
    for d in result.differences:
        groups.setdefault(d.changed[0], []).append(d)
    number = 0
    for decision in [*DECISIONS, *sorted(set(groups) - set(DECISIONS))]:
        if decision not in groups:
            continue
        lines += [f"### {decision} changed", ""]
        for d in groups[decision]:
            number += 1
            also = [c for c in d.changed[1:]]
            lines += [f"**{number}.** {_cell(d.run)}" + (f" (also changed: {', '.join(also)})" if also else ""), "",
                      f"| | `{a}` | `{b}` |", "|---|---|---|"]
            shown_a, shown_b = d.a.get("shown") or {"error": d.a.get("error")}, d.b.get("shown") or {"error": d.b.get("error")}
            for name in dict.fromkeys([*shown_a, *shown_b]):
                x, y = shown_a.get(name, "—"), shown_b.get(name, "—")
                if x == y and x in ("None", "none"):
                    continue
                mark = "**" if x != y else ""
                lines.append(f"| {mark}{name}{mark} | {_cell(x)} | {_cell(y)} |")
            lines += ["", "Replay: " + _cell(_replay(result.a, result.target, d.run)) + " / "
                      + _cell(_replay(result.b, result.target, d.run)), ""]
    return "\n".join(lines)


def cmd_diff(args) -> int:
    from hypothesis import settings as hypothesis_settings

    import impl.search.profiles  # noqa: F401  registers the profiles
    from impl.releases.environments import EnvironmentFailed, NotACheckout, UnknownRelease

    try:
        result = diff(Side(args.a), Side(args.b), args.target, hypothesis_settings.get_profile(args.profile),
                      args.max_differences, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (UnknownRelease, NotACheckout, EnvironmentFailed, WorkerFailed) as e:
        raise SystemExit(f"finalstate diff: {e}") from None
    text = report(result)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if result.differences else 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    df = subparsers.add_parser("diff", help="the terminal-state behaviour that changed between two releases (or a "
                                            "release and a checkout): shrunk runs, both outcomes side by side")
    df.add_argument("a", help="a release (e.g. 1.2.0), 'installed' (this .venv) or src:PATH (an apache/airflow checkout)")
    df.add_argument("b", help="the same, for the other side")
    df.add_argument("--target", default="airflow-inproc", help="the target both sides run (same kind on both)")
    df.add_argument("--profile", default="ci", choices=("dev", "ci", "nightly"),
                    help="how hard each search looks (its max_examples)")
    df.add_argument("--max-differences", type=int, default=8, help="stop after this many distinct differences")
    df.add_argument("--out", metavar="PATH", help="also write the Markdown report there")
    df.set_defaults(func=cmd_diff)
    return df
