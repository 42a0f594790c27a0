"""Target ``reference-runtime``: a coordinator-mode runtime command under the real ``_PopenActivitySubprocess``.

A ``CoordinatorRun`` is lived end to end: ``impl.supervisor_process.supervise`` launches
``impl/coordinator/reference_runtime.py --task=OUTCOME`` with ``--comm``/``--logs``, sends it the
real StartupDetails (carrying the run context the Execution API hands out), the real ``wait()``
handles its terminal frame and its exit, and the real ``final_state`` and
``update_task_state_if_needed`` close the attempt.
"""

from __future__ import annotations

import sys
from pathlib import Path

from impl.supervisor_process import helper, supervise
from model.runtime import CoordinatorRun, coordinator_attempt
from model.scenario import Observation

REFERENCE_RUNTIME = Path(__file__).resolve().parent / "reference_runtime.py"


def reference_command(outcome: str, runtime: Path = REFERENCE_RUNTIME) -> list[str]:
    """The command that runs one try of ``outcome`` with the runtime at ``runtime``."""
    return [sys.executable, "-I", str(runtime), f"--task={outcome}"]


def runner(runtime: Path = REFERENCE_RUNTIME):
    """``CoordinatorRun -> Observation`` for the runtime script at ``runtime``."""
    def run(coordinator_run: CoordinatorRun) -> Observation:
        return helper.in_helper(supervise.supervise_command, reference_command(coordinator_run.outcome, runtime),
                                coordinator_run.context)
    return run


def target(name: str):
    from impl.frontdoor.registry import Target

    return Target(name, runner(), coordinator_attempt, close=helper.close, kind="coordinator")
