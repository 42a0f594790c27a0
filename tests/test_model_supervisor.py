"""The supervisor model on cases worked out by hand from task-sdk 1.3.2's supervisor.py."""

from __future__ import annotations

import pytest

from model.scenario import Scenario
from model.supervisor import final_state, run

# scenario -> (exit_code, final_state, row, calls after start, replies, raised)
CASES = {
    # exit 0: the runtime's terminal state stands
    "try_number=1 max_tries=0; send TaskState failed; exit 0":
        (0, "failed", "failed", "finish(failed)->200", "ok", None),
    "try_number=1 max_tries=0; send TaskState skipped; exit 0":
        (0, "skipped", "skipped", "finish(skipped)->200", "ok", None),
    "try_number=1 max_tries=0; send SucceedTask; exit 0": (0, "success", "success", "succeed->200", "ok", None),
    "try_number=1 max_tries=2; send RetryTask; exit 0":
        (0, "up_for_retry", "up_for_retry", "retry->200", "ok", None),
    "try_number=1 max_tries=0; send DeferTask; exit 0": (0, "deferred", "deferred", "defer->200", "ok", None),
    "try_number=1 max_tries=0; send RescheduleTask; exit 0":
        (0, "up_for_reschedule", "up_for_reschedule", "reschedule->200", "ok", None),
    "try_number=1 max_tries=0; send AwaitInputTask; exit 0":
        (0, "awaiting_input", "awaiting_input", "await_input->200", "ok", None),
    # SkipDownstreamTasks is not terminal: the exit decides, and SUCCESS makes no call
    "try_number=1 max_tries=0; send SkipDownstreamTasks; exit 0":
        (0, "success", "running", "skip_downstream_tasks->200", "ok", None),
    # non-zero exit: should_retry decides, with no call for UP_FOR_RETRY
    "try_number=1 max_tries=0; exit 1": (1, "failed", "failed", "finish(failed)->200", "", None),
    "try_number=2 max_tries=3; exit -9": (-9, "up_for_retry", "running", "", "", None),
    # one try per request (execution_api_retries=1): a failed direct call stays pending and is replayed once at exit
    "try_number=1 max_tries=0 execution_api_retries=1; fault succeed transient; send SucceedTask; exit 0":
        (0, "success", "success", "succeed->500, succeed->200", "error", None),
    "try_number=1 max_tries=0 execution_api_retries=1; fault succeed permanent; send SucceedTask; exit 0":
        (0, "success", "running", "succeed->500, succeed->500", "error", None),
    # a lost answer: done on the server, replayed, and the replay is a 200 no-op ...
    "try_number=1 max_tries=0 execution_api_retries=1; fault succeed lost; send SucceedTask; exit 0":
        (0, "success", "success", "succeed->timeout, succeed->200", "error", None),
    # ... but not for a retry: it archived the try, so the replay on the old TI id is 404 (the row stays
    # UP_FOR_RETRY, and exit 0 with no terminal state is reported SUCCESS)
    "try_number=1 max_tries=2 execution_api_retries=1; fault retry lost; send RetryTask; exit 0":
        (0, "success", "up_for_retry", "retry->timeout, retry->404", "error", None),
    # heartbeat refusals kill with SIGTERM and end SERVER_TERMINATED, even with should_retry; the row is as
    # the actor behind the answer left it (409: a user marked it failed; 410: cleared; 404: deleted)
    "try_number=1 max_tries=2; heartbeat 409; exit 0":
        (-15, "SERVER_TERMINATED", "failed", "heartbeat->409", "", None),
    "try_number=1 max_tries=2; heartbeat 410; exit 0":
        (-15, "SERVER_TERMINATED", "restarting", "heartbeat->410", "", None),
    # three failed heartbeats in a row kill too, but without SERVER_TERMINATED
    "try_number=1 max_tries=0 execution_api_retries=1; heartbeat 500; heartbeat 500; heartbeat 500; exit 0":
        (-15, "failed", "failed", "heartbeat->500, heartbeat->500, heartbeat->500, finish(failed)->200", "", None),
    "try_number=1 max_tries=0 execution_api_retries=1; heartbeat 500; heartbeat 200; heartbeat 500; heartbeat 500; exit 0":
        (0, "success", "running", "heartbeat->500, heartbeat->200, heartbeat->500, heartbeat->500", "", None),
    # no heartbeat once a terminal state is known; overtime only after a task-ending frame
    "try_number=1 max_tries=0; send TaskState failed; heartbeat 410; exit 0":
        (0, "failed", "failed", "finish(failed)->200", "ok", None),
    "try_number=1 max_tries=0; send DeferTask; overtime; exit 0": (0, "deferred", "deferred", "defer->200", "ok", None),
    "try_number=1 max_tries=0; send SucceedTask; overtime; exit 0":
        (-15, "failed", "success", "succeed->200, finish(failed)->409", "ok", "ServerResponseError(409)"),
    # Airflow's default five tries: a 5xx or a lost answer is tried again at once; a 4xx is not
    "try_number=1 max_tries=0; fault succeed transient; send SucceedTask; exit 0":
        (0, "success", "success", "succeed->500, succeed->200", "ok", None),
    "try_number=1 max_tries=0; fault succeed lost; send SucceedTask; exit 0":
        (0, "success", "success", "succeed->timeout, succeed->200", "ok", None),
    "try_number=1 max_tries=0; fault succeed permanent; send SucceedTask; exit 0":
        (0, "success", "running", ", ".join(["succeed->500"] * 10), "error", None),
    "try_number=1 max_tries=2; fault retry lost; send RetryTask; exit 0":
        (0, "success", "up_for_retry", "retry->timeout, retry->404, retry->404", "error", None),
    "try_number=1 max_tries=0 execution_api_retries=2; fault finish transient; fault finish transient; exit 1":
        (1, "failed", "running", "finish(failed)->500, finish(failed)->500", "", "ServerResponseError(500)"),
    "try_number=1 max_tries=0 execution_api_retries=3; fault finish transient; fault finish transient; exit 1":
        (1, "failed", "failed", "finish(failed)->500, finish(failed)->500, finish(failed)->200", "", None),
    "try_number=1 max_tries=0; heartbeat 500; exit 0":
        (0, "success", "running", ", ".join(["heartbeat->500"] * 5), "", None),
    # a process that ignores SIGTERM dies of the SIGKILL the kill escalates to
    "try_number=1 max_tries=0; ignore sigterm; send SucceedTask; overtime; exit 0":
        (-9, "failed", "success", "succeed->200, finish(failed)->409", "ok", "ServerResponseError(409)"),
    "try_number=1 max_tries=2; ignore sigterm; heartbeat 410; exit 0":
        (-9, "SERVER_TERMINATED", "restarting", "heartbeat->410", "", None),
    # the process is dead after a kill: later frames never arrive
    "try_number=1 max_tries=0; heartbeat 404; send SucceedTask; exit 0":
        (-15, "SERVER_TERMINATED", "deleted", "heartbeat->404", "", None),
}


@pytest.mark.parametrize("text", CASES)
def test_hand_checked(text):
    exit_code, state, row, calls, replies, raised = CASES[text]
    observed = run(Scenario.from_text(text))
    assert observed.exit_code == exit_code
    assert observed.final_state == state
    assert observed.row == row
    assert ", ".join(map(str, observed.calls[1:])) == calls
    assert ", ".join(observed.replies) == replies
    assert observed.raised == raised
    assert str(observed.calls[0]) == "start->200"


@pytest.mark.parametrize("exit_code, terminal, should_retry, expected", [
    (0, None, True, "success"),
    (0, "failed", True, "failed"),
    (0, "SERVER_TERMINATED", False, "SERVER_TERMINATED"),
    (1, "success", False, "failed"),
    (1, "success", True, "up_for_retry"),
    (-15, "SERVER_TERMINATED", True, "SERVER_TERMINATED"),
    (-9, None, False, "failed"),
])
def test_final_state_table(exit_code, terminal, should_retry, expected):
    assert final_state(exit_code, terminal, should_retry) == expected
