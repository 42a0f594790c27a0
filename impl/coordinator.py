"""Target ``reference-runtime``: a coordinator-mode runtime command under the real ``_PopenActivitySubprocess``.

A ``CoordinatorRun`` is lived end to end: the real ``_PopenActivitySubprocess.start`` launches
``impl/reference_runtime.py --task=OUTCOME`` with ``--comm``/``--logs``, sends it the real
StartupDetails (carrying the run context the fake Execution API hands out), the real ``wait()``
handles its terminal frame and its exit, and the real ``final_state`` and
``update_task_state_if_needed`` close the attempt against ``impl.api_server`` (the server model).

``supervise_command`` runs any coordinator-convention command this way. It reuses the harness of
``impl.process`` (fake API server, one-shot client, stretched clocks, exit watch, reply recording)
but takes a command rather than a script: ``impl.process.supervise`` only runs its own scripted
runtime. (To merge: ``impl.process`` could expose this as its command-level entry point.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Sequence

from airflow.sdk.api.datamodels._generated import TaskInstance
from airflow.sdk.coordinators._subprocess import _PopenActivitySubprocess

from impl import process
from model.runtime import CoordinatorRun
from model.scenario import Observation, RunContext

REFERENCE_RUNTIME = Path(__file__).resolve().parent / "reference_runtime.py"


def reference_command(outcome: str, runtime: Path = REFERENCE_RUNTIME) -> list[str]:
    """The command that runs one try of ``outcome`` with the runtime at ``runtime``."""
    return [sys.executable, "-I", str(runtime), f"--task={outcome}"]


def supervise_command(command: Sequence[str], context: RunContext = RunContext(), *,
                      deadline: float = process.DEFAULT_DEADLINE,
                      startup_timeout: float = process.DEFAULT_STARTUP_TIMEOUT) -> Observation:
    """One attempt: ``command`` (plus ``--comm``/``--logs``) under the real supervisor; what it recorded."""
    h = process.harness()
    with h.lock:
        ti_id = uuid.uuid4()
        attempt = h.api.open(str(ti_id), context)
        ti = TaskInstance(id=ti_id, task_id="task", dag_id="finalstate", run_id="manual__finalstate",
                          try_number=context.try_number, dag_version_id=uuid.UUID(int=0))
        notes: list[str] = []
        try:
            with process.stretched_clocks():
                try:
                    sup = _PopenActivitySubprocess.start(
                        what=ti, dag_rel_path="dag.py", bundle_info=None, client=h.client, logger=process._QUIET,
                        command=list(command), startup_timeout=startup_timeout, subprocess_logs_to_stdout=False,
                    )
                except Exception as e:
                    return process._not_started(attempt, e, startup_timeout)
                comm = process.RecordingComm(sup.stdin)
                sup.stdin = comm
                watch = process.ExitWatch(sup.pid)
                watch.register(sup.selector)
                attempt.attach(sup)
                timer = threading.Timer(deadline, _kill, (sup.pid, deadline, notes))
                timer.daemon = True
                timer.start()
                raised = None
                try:
                    sup.wait()
                except Exception as e:  # the supervisor raising is part of what it did
                    raised = process._error_name(e)
                finally:
                    timer.cancel()
                    watch.close()
            with attempt.lock:
                attempt.lock.wait_for(lambda: not attempt.lost_in_flight, timeout=10)
            notes += attempt.unexpected
            row = attempt.server.row
            return Observation(
                exit_code=sup._exit_code,
                final_state=str(getattr(sup.final_state, "value", sup.final_state)),
                calls=tuple(attempt.calls),
                replies=tuple(comm.replies),
                row=row.state,
                row_gone=row.gone,
                raised=raised,
                harness="; ".join(notes) or None,
            )
        finally:
            h.api.close_attempt(str(ti_id))


def _kill(pid: int, deadline: float, notes: list[str]) -> None:
    notes.append(f"deadline: the runtime was still running after {deadline:g}s; the harness killed it (SIGKILL)")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def runner(runtime: Path = REFERENCE_RUNTIME):
    """``CoordinatorRun -> Observation`` for the runtime script at ``runtime``."""
    def run(coordinator_run: CoordinatorRun) -> Observation:
        return supervise_command(reference_command(coordinator_run.outcome, runtime), coordinator_run.context)
    return run


def target(name: str):
    from impl.targets import Target
    from properties.runtime_strategies import coordinator_end_to_end

    return Target(name, runner(), coordinator_end_to_end, close=process.close_harness, kind="coordinator")
