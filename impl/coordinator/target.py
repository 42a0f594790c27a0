"""Targets ``reference-runtime`` and ``cmd:PROGRAM ARGS...``: a coordinator-mode runtime under the real supervisor.

A ``CoordinatorRun`` is lived end to end: ``impl.supervisor_process.supervise`` launches the
runtime's command with ``--comm``/``--logs`` through the real ``_PopenActivitySubprocess``, sends
it the real StartupDetails (the TI's ``task_id`` is the run's outcome, as ``runtimes/README.md``
says; the run context comes from the Execution API), the real ``wait()`` handles its terminal
frame and its exit, and the real ``final_state`` and ``update_task_state_if_needed`` close the
attempt. The command is an argv list, never a shell line.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Sequence

import msgpack

from impl.supervisor_process import helper, supervise
from model.runtime import CoordinatorRun, coordinator_attempt
from model.scenario import Observation

REFERENCE_RUNTIME = Path(__file__).resolve().parent / "reference_runtime.py"
CMD_PREFIX = "cmd:"


class BadCommand(ValueError):
    """A ``cmd:`` target whose program cannot be run; the message says why."""


def reference_command(runtime: Path = REFERENCE_RUNTIME) -> list[str]:
    """The command that runs the Python runtime script at ``runtime``."""
    return [sys.executable, "-I", str(runtime)]


def parse_command(name: str) -> list[str]:
    """The argv of a ``cmd:PROGRAM ARGS...`` target; ``BadCommand`` if PROGRAM cannot be run here.

    PROGRAM is looked up as a shell would (a path if it has a slash, else on ``PATH``), without a
    shell. A program that is missing but has a ``PROGRAM.unavailable`` file beside it (what
    ``scripts/build-runtimes`` writes when it cannot build) is unavailable for the reason given there.
    """
    argv = shlex.split(name.removeprefix(CMD_PREFIX))
    if not argv:
        raise BadCommand(f"{name!r}: no program after {CMD_PREFIX!r}; write cmd:PROGRAM ARGS...")
    program = argv[0]
    found = shutil.which(program) if "/" not in program else (program if os.path.exists(program) else None)
    if found is None:
        marker = Path(program + ".unavailable")
        if marker.exists():
            raise FileNotFoundError(f"{program} was not built: {marker.read_text().strip()}")
        raise BadCommand(f"{name!r}: program {program!r} not found" + ("" if "/" in program else " on PATH"))
    if not os.access(found, os.X_OK) or os.path.isdir(found):
        raise BadCommand(f"{name!r}: {program!r} is not an executable file")
    return [found if "/" in program else program, *argv[1:]]


def runner(command: Sequence[str]):
    """``CoordinatorRun -> Observation`` for the runtime ``command``, each try in a fresh process."""
    command = list(command)

    def run(coordinator_run: CoordinatorRun) -> Observation:
        return helper.in_helper(supervise.supervise_command, command, coordinator_run.context,
                                task_id=coordinator_run.outcome)
    return run


def python_runner(runtime: Path = REFERENCE_RUNTIME):
    """``CoordinatorRun -> Observation`` for the Python runtime file ``runtime`` (it has ``serve(comm, logs,
    started)``), on the fork path where there is one: forked from a server that imported it once, behind the
    launcher, instead of a fresh interpreter per try. The supervisor cannot tell the difference."""
    def run(coordinator_run: CoordinatorRun) -> Observation:
        return helper.in_helper(_supervise_python_runtime, str(runtime), coordinator_run.context, coordinator_run.outcome)
    return run


def _supervise_python_runtime(runtime: str, context, outcome: str) -> Observation:
    h = supervise.harness()
    if h.fork_server is None:
        command = reference_command(Path(runtime))
    else:
        script = h.workdir / f"python-runtime-{hashlib.sha256(runtime.encode()).hexdigest()[:12]}.script"
        if not script.exists():
            script.write_bytes(msgpack.packb({"python_runtime": runtime}))
        command = h.fork_server.command(script)
    return supervise.supervise_command(command, context, task_id=outcome)


def target(name: str):
    from impl.frontdoor.registry import Target, TargetUnavailable, UnknownTarget

    supervise.require_command_supervisor()  # before task-sdk 1.3.0 no supervisor launches a runtime command
    if name.startswith(CMD_PREFIX):
        try:
            command = parse_command(name)
        except BadCommand as e:
            raise UnknownTarget(str(e)) from None
        except FileNotFoundError as e:
            raise TargetUnavailable(str(e)) from None
        return Target(name, runner(command), reference=coordinator_attempt, close=helper.close, kind="coordinator")
    return Target(name, python_runner(), reference=coordinator_attempt, close=helper.close, kind="coordinator")
