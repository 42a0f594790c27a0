"""The README is short, and every command in it runs as shown: each ``sh`` block's commands are run here (the two
set-up commands as CI runs them), and where a ``text`` block shows what a command prints, the run prints it."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks() -> list[tuple[str, str]]:
    """The README's fenced blocks, in order: (language, text)."""
    return re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)


def commands() -> list[tuple[str, str | None]]:
    """Each command of an ``sh`` block (its comment left off), with the ``text`` block that shows its output, if the
    next block is one."""
    found = []
    fenced = blocks()
    for i, (language, text) in enumerate(fenced):
        if language != "sh":
            continue
        shown = fenced[i + 1][1] if i + 1 < len(fenced) and fenced[i + 1][0] == "text" else None
        lines = [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines()]
        found += [(line, shown) for line in lines if line]
    return found


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 150


def run(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command, shown", commands(), ids=[c for c, _ in commands()])
def test_a_readme_command_runs_as_shown(command, shown):
    if command == "scripts/test":
        # This run is it: CI's .ci/run executes scripts/test, which runs these tests.
        assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text()
        return
    if command == "scripts/check":
        # The checker's whole default run is what scripts/test runs on airflow-inproc; here it sets up and starts it.
        done = run("scripts/check -- --collect-only -q")
        assert done.returncode == 0 and "properties/test_supervisor.py::test_conformance[airflow-inproc]" in \
            done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
        return
    if "build/runtimes/go-runtime" in command and not (ROOT / "build" / "runtimes" / "go-runtime").exists():
        pytest.skip("the Go runtime is not built here (scripts/build-runtimes says why)")
    done = run(command)
    output = done.stdout + done.stderr
    # A command whose output the README shows may show a counterexample (exit 1); any other must succeed.
    assert done.returncode in ((0, 1) if shown is not None else (0,)), output[-3000:]
    if shown is not None:
        missing = [line for line in shown.splitlines() if line.strip() and line.rstrip() not in output]
        assert not missing, f"the README shows lines this run did not print: {missing}\n\n{output[-3000:]}"
