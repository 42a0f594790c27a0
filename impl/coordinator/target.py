"""Targets ``reference-runtime`` and ``cmd:PROGRAM ARGS...``: a coordinator-mode runtime under the real supervisor.

A ``CoordinatorRun`` is lived end to end: ``impl.supervisor_process.supervise`` launches the
runtime's command with ``--comm``/``--logs`` through the real ``_PopenActivitySubprocess``, sends
it the real StartupDetails (the TI's ``task_id`` is the run's outcome, as ``runtimes/README.md``
says; the run context comes from the Execution API), the real ``wait()`` handles its terminal
frame and its exit, and the real ``final_state`` and ``update_task_state_if_needed`` close the
attempt. The run's world (faults, heartbeat answers and the server's actions behind them, a trapped
SIGTERM, the success overtime) is performed around the runtime by the harness
(``impl.supervisor_process.world``). The command is an argv list, never a shell line.

The server. As for the supervisor targets (``target(name, server=None)``: ``server`` or, when None,
``$FINALSTATE_SERVER``, default ``model``): ``model.server`` behind a fake of the Execution API, or the real
Execution API of apache-airflow-core on a real database (``--server airflow``), each try its own DagRun and
TI; a run context the real server cannot hand out is not playable there (``Unsupported``).

What it is compared with. A target declared to be an SDK profile (``--profile java-sdk-1.0.0``: ``model.sdks``) is
compared with that profile's runtime in the model; an undeclared one with the contract, and where the contract does
not explain a run, with every profile: it is accepted where one does, and the profiles that did are named
(``impl.targets.registry.coordinator_references``). The invariants judge it either way.
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

from impl.coordinator import go_runtime
from impl.coordinator.lived import lived_tries
from impl.releases.adapters import model_release
from impl.supervisor_process import helper, supervise
from impl.supervisor_process.world import World
from model.coordinator import CANCELLABLE, CoordinatorRun
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
    shell; a relative path is made absolute here, so it means the same wherever the runtime is launched
    from. One name is finalstate's own: ``go-runtime`` alone is the Go runtime of ``runtimes/go``
    (``impl.coordinator.go_runtime``), and so is the path it is built at (``build/runtimes/go-runtime``
    in a checkout); either is built on first use, and rebuilt when its source changed. A program that
    is missing but has a ``PROGRAM.unavailable`` file beside it (what that build writes when it cannot
    build) is unavailable (``FileNotFoundError``) for the reason given there.
    """
    argv = shlex.split(name.removeprefix(CMD_PREFIX))
    if not argv:
        raise BadCommand(f"{name!r}: no program after {CMD_PREFIX!r}; write cmd:PROGRAM ARGS...")
    program = argv[0]
    ours = os.path.realpath(go_runtime.binary())
    if program == go_runtime.NAME or ("/" in program and os.path.realpath(program) == ours):
        try:
            return [str(go_runtime.ensure_built().path), *argv[1:]]
        except go_runtime.GoRuntimeUnavailable as e:
            raise FileNotFoundError(f"{program} was not built: {e}") from None
    if "/" in program:
        found = os.path.abspath(program) if os.path.exists(program) else None
    else:
        found = shutil.which(program)
    if found is None:
        marker = Path(program + ".unavailable")
        if marker.exists():
            raise FileNotFoundError(f"{program} was not built: {marker.read_text().strip()}")
        raise BadCommand(f"{name!r}: program {program!r} not found" + ("" if "/" in program else " on PATH"))
    if not os.access(found, os.X_OK) or os.path.isdir(found):
        raise BadCommand(f"{name!r}: {program!r} is not an executable file")
    return [found if "/" in program else program, *argv[1:]]


def runner(command: Sequence[str], server: str = "model"):
    """``CoordinatorRun -> Observation`` for the runtime ``command``, each try in a fresh process, each distinct run
    lived once (``lived``)."""
    command = list(command)

    def job(coordinator_run: CoordinatorRun) -> tuple:
        return supervise.supervise_command, (command, coordinator_run.context), _try(coordinator_run, server)
    return lived_tries(("cmd", *command, server), job, server)


def python_runner(runtime: Path = REFERENCE_RUNTIME, server: str = "model"):
    """``CoordinatorRun -> Observation`` for the Python runtime file ``runtime`` (it has ``serve(comm, logs,
    started)``), on the fork path where there is one: forked from a server that imported it once, behind the
    launcher, instead of a fresh interpreter per try. The supervisor cannot tell the difference. Each distinct run
    is lived once (``lived``)."""
    def job(coordinator_run: CoordinatorRun) -> tuple:
        return _supervise_python_runtime, (str(runtime), coordinator_run.context), _try(coordinator_run, server)
    return lived_tries(("python", str(runtime), server), job, server)


def _try(run: CoordinatorRun, server: str) -> dict:
    """``supervise_command``'s keywords for one try: the task, the world, the server and the client's tries."""
    return dict(task_id=run.outcome, world=World(run.while_running, run.after_frame, run.outcome == CANCELLABLE),
                server=server, execution_api_retries=run.execution_api_retries)


def _supervise_python_runtime(runtime: str, context, **keywords) -> Observation:
    h = supervise.harness()
    if h.fork_server is None:
        command = reference_command(Path(runtime))
    else:
        script = h.workdir / f"python-runtime-{hashlib.sha256(runtime.encode()).hexdigest()[:12]}.script"
        if not script.exists():
            script.write_bytes(msgpack.packb({"python_runtime": runtime}))
        command = h.fork_server.command(script)
    return supervise.supervise_command(command, context, **keywords)


class RealServerRunner:
    """A runner on the real Execution API (``--server airflow``): the server starts apart, with a budget of its own
    (an attempt's budget is for the attempt)."""

    def __init__(self, run):
        self._run = run

    def __call__(self, coordinator_run: CoordinatorRun) -> Observation:
        helper.in_helper(supervise.start_real_server, budget=supervise.REAL_SERVER_START_BUDGET)
        return self._run(coordinator_run)


def target(name: str, server: str | None = None, profile: str | None = None):
    """The target ``name`` on ``server``, declared to be the SDK profile ``profile`` (see the module; None: as
    ``$FINALSTATE_SDK_PROFILE`` says, undeclared if unset: ``registry.coordinator_references``); loading it starts
    nothing."""
    from impl.targets.registry import (Target, TargetUnavailable, UnknownTarget, chosen_server,
                                         coordinator_references, require_real_server)

    supervise.require_command_supervisor()  # before task-sdk 1.3.0 no supervisor launches a runtime command
    server = chosen_server(server)
    if server == "airflow":
        require_real_server(name)
    if name.startswith(CMD_PREFIX):
        try:
            command = parse_command(name)
        except BadCommand as e:
            raise UnknownTarget(str(e)) from None
        except FileNotFoundError as e:
            raise TargetUnavailable(str(e)) from None
        run = runner(command, server)
    else:
        run = python_runner(server=server)
    release = model_release()
    declared = coordinator_references(release, profile)
    return Target(name, RealServerRunner(run) if server == "airflow" else run, release=release, close=helper.close,
                  kind="coordinator", live_ahead=getattr(run, "live_ahead", None), **declared)
