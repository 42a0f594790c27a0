"""Findings: invariants the pinned apache-airflow-task-sdk release really breaks.

Each was found by the checker (``finalstate findings`` reruns the search and writes the
report); the scenario kept here is the minimal one it shrank to. While a finding stands,
its invariant's property is a strict expected failure on the targets listed.
"""

from __future__ import annotations

import attrs

SUPERVISOR_TARGETS = ("model", "airflow-inproc")


@attrs.frozen
class Finding:
    id: str
    invariant: str
    scenario: str
    headline: str
    upstream: str
    targets: tuple[str, ...] = SUPERVISOR_TARGETS


_CLOSE = "ActivitySubprocess.update_task_state_if_needed (with STATES_SENT_DIRECTLY)"

FINDINGS: tuple[Finding, ...] = (
    Finding(
        "F1", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false; exit 0",
        "a runtime that exits 0 without a terminal frame is reported SUCCESS but the TI stays RUNNING",
        f"{_CLOSE}: final_state falls back to SUCCESS, which is in STATES_SENT_DIRECTLY, so neither "
        "succeed() nor finish() is called",
    ),
    Finding(
        "F2", "no_task_instance_left_running",
        "try_number=1 max_tries=1 should_retry=true; exit 1",
        "a crash while should_retry is reported UP_FOR_RETRY but the TI stays RUNNING",
        f"{_CLOSE}: final_state is UP_FOR_RETRY from the exit code, which is in STATES_SENT_DIRECTLY, "
        "so no retry() or finish() call is made (the comment there says finish() should handle it)",
    ),
    Finding(
        "F3", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false; fault finish transient; exit 1",
        "one failed closing finish() leaves the TI RUNNING and wait() raises",
        f"{_CLOSE}: only direct calls are kept pending and replayed; a failed finish() is not retried "
        "by the supervisor (the client's own retries are assumed spent)",
    ),
    Finding(
        "F4", "no_second_transition",
        "try_number=1 max_tries=0 should_retry=false; send SucceedTask; overtime; exit 0",
        "the success-overtime kill turns a recorded SUCCESS into finish(FAILED), refused with 409, and wait() raises",
        "ActivitySubprocess._handle_process_overtime_if_needed kills with SIGTERM; final_state then ignores "
        "the delivered SUCCESS because the exit code is non-zero",
    ),
    Finding(
        "F5", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false; fault succeed transient; send SucceedTask; exit 1",
        "a replayed SucceedTask makes the row SUCCESS while final_state says FAILED",
        "ActivitySubprocess._replay_pending_terminal_state_msg succeeds on the server, but final_state "
        "looks only at the non-zero exit (the Python task runner's fail-closed exit after a failed send)",
    ),
    Finding(
        "F6", "retries_within_budget",
        "try_number=1 max_tries=0 should_retry=false; send RetryTask; exit 0",
        "a RetryTask frame is forwarded even when should_retry is false, so the TI retries past max_tries",
        "ActivitySubprocess._handle_request / _send_terminal_state_msg forward RetryTask without checking "
        "the should_retry the server gave at start (and the server's retry branch does not re-check it)",
    ),
    Finding(
        "F7", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false; send SucceedTask; exit 1",
        "a process that fails after its SucceedTask was recorded is reported FAILED while the row is SUCCESS",
        "ActivitySubprocess.final_state: on a non-zero exit the delivered terminal state is ignored; "
        "the closing finish(FAILED) is then refused with 409 and wait() raises",
    ),
)


def finding_for(target: str, invariant: str) -> Finding | None:
    return next((f for f in FINDINGS if f.invariant == invariant and target in f.targets), None)
