"""The supervisor model on cases worked out by hand from task-sdk 1.3.2's supervisor.py."""

from __future__ import annotations

import pytest

from model.release import Release
from model.scenario import NO_FINAL_STATE, Scenario
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


# -- each release as it is: one trait of model.release.Release at a time, on the releases either side of its change.
#    Every case here was replayed on the real supervisor of both releases (airflow-inproc) and agrees.

def _seen(text: str, release: str) -> tuple:
    """(exit_code, final_state, row, calls after start, replies, raised) of the model of ``release``."""
    observed = run(Scenario.from_text(text), Release.parse(release))
    return (observed.exit_code, observed.final_state, observed.row, ", ".join(map(str, observed.calls[1:])),
            ", ".join(observed.replies), observed.raised)


def test_before_1_0_3_a_frame_handled_with_nothing_to_send_is_answered_nothing():
    """``answers_every_request`` (apache/airflow#51699): on JSON lines the supervisor writes a line only when it has
    something to send (an error; the answer to a request that asks for something); a frame handled well is
    ``unanswered``, one entry still per frame read."""
    text = ("try_number=1 max_tries=0 execution_api_retries=1; send SkipDownstreamTasks; fault defer transient; "
            "send DeferTask; send MaskSecret; send TaskState failed; exit 0")
    calls = "skip_downstream_tasks->200, defer->500, finish(failed)->200"
    assert _seen(text, "1.0.2") == (0, "failed", "failed", calls, "unanswered, error, ok, unanswered", None)
    assert _seen(text, "1.0.3") == (0, "failed", "failed", calls, "ok, error, ok, ok", None)


def test_since_1_0_1_the_calls_pass_the_rendered_map_index_on():
    """``carries_the_rendered_map_index`` (apache/airflow#49809): 1.0.0's frames and calls have no such field."""
    text = "try_number=1 max_tries=0; send SucceedTask; exit 0"
    assert run(Scenario.from_text(text), Release.parse("1.0.0")).rendered_map_index is None
    assert run(Scenario.from_text(text), Release.parse("1.0.1")).rendered_map_index == "finalstate-0"


def test_since_1_2_2_a_failed_outcome_call_is_kept_and_made_again_at_close():
    """``keeps_an_undelivered_outcome`` (apache/airflow#66574): 1.2.1 forgets the failed call, the row stays RUNNING."""
    text = "try_number=1 max_tries=0 execution_api_retries=1; fault succeed transient; send SucceedTask; exit 0"
    assert _seen(text, "1.2.1") == (0, "success", "running", "succeed->500", "error", None)
    assert _seen(text, "1.2.2") == (0, "success", "success", "succeed->500, succeed->200", "error", None)


def test_an_undelivered_outcome_is_held_before_1_2_2_and_again_since_1_4_0():
    """``holds_an_undelivered_outcome``: a held state starts the overtime kill, so a SucceedTask whose call failed is
    killed on overtime by 1.2.1 and 1.4.0, not by 1.2.2-1.3.x (which hold nothing until the call answers 2xx)."""
    text = ("try_number=1 max_tries=0 execution_api_retries=1; fault succeed permanent; send SucceedTask; overtime; "
            "exit 0")
    assert _seen(text, "1.2.1") == (-15, "failed", "failed", "succeed->500, finish(failed)->200", "error", None)
    assert _seen(text, "1.2.2") == (0, "success", "running", "succeed->500, succeed->500", "error", None)
    assert _seen(text, "1.3.2") == _seen(text, "1.2.2")
    assert _seen(text, "1.4.0b2") == (-15, "failed", "running", "succeed->500, succeed->500", "error", None)


def test_before_1_2_2_a_call_that_got_no_answer_escapes_wait_before_the_exit():
    """``answers_a_transport_error`` (apache/airflow#66572): 1.2.1's ``wait()`` raises the ReadTimeout out of its
    monitor loop, with no reply, no exit seen and no final state decided; 1.2.2 answers it with an error."""
    text = "try_number=1 max_tries=0 execution_api_retries=1; fault succeed lost; send SucceedTask; exit 0"
    assert _seen(text, "1.2.1") == (None, NO_FINAL_STATE, "success", "succeed->timeout", "", "ReadTimeout")
    assert _seen(text, "1.2.2") == (0, "success", "success", "succeed->timeout, succeed->409", "error", None)
    skip = ("try_number=1 max_tries=1 execution_api_retries=1; fault skip_downstream_tasks lost; "
            "send SkipDownstreamTasks; exit 1")
    assert _seen(skip, "1.1.2") == (None, NO_FINAL_STATE, "running", "skip_downstream_tasks->timeout", "",
                                    "ReadTimeout")
    assert _seen(skip, "1.2.2") == (1, "up_for_retry", "running", "skip_downstream_tasks->timeout", "error", None)


def test_since_1_4_0_a_retry_is_held_for_close_and_delivered_by_its_own_call():
    """``held_for_close`` and ``delivers_a_held_outcome_itself``: 1.3.2 makes the retry call at once; 1.4.0 at close,
    where its failure raises from ``wait()``."""
    text = "try_number=1 max_tries=2 execution_api_retries=1; send RetryTask; fault retry permanent; exit 0"
    assert _seen(text, "1.3.2") == (0, "up_for_retry", "up_for_retry", "retry->200", "ok", None)
    assert _seen(text, "1.4.0b2") == (0, "up_for_retry", "running", "retry->500", "ok", "ServerResponseError(500)")


def test_since_1_4_0_a_task_state_is_finished_with_its_own_state_whatever_the_exit():
    """``delivers_a_held_outcome_itself``: 1.3.2 reports a TaskState by ``finish(final_state)``, none for the
    UP_FOR_RETRY a failed exit makes of it; 1.4.0 sends ``finish(failed)`` (and still decides UP_FOR_RETRY)."""
    text = "try_number=1 max_tries=2; send TaskState failed; exit 1"
    assert _seen(text, "1.3.2") == (1, "up_for_retry", "running", "", "ok", None)
    assert _seen(text, "1.4.0b2") == (1, "up_for_retry", "failed", "finish(failed)->200", "ok", None)


def test_since_1_4_0_a_conflict_is_server_terminated_final_and_acknowledged():
    """``conflict_means_server_terminated``, ``server_termination_is_final``, ``acknowledges_server_termination``:
    1.3.2 answers the refused defer with an error, replays it at close and takes the later TaskState; 1.4.0 holds
    SERVER_TERMINATED, ignores the TaskState and says ``finish(SERVER_TERMINATED)``, which core 3.4 answers 204 on the
    finished row (``Release.takes_stop_reports``; before it knew stop reports, the model answered 409, taken
    quietly)."""
    text = "try_number=1 max_tries=0; send SucceedTask; send DeferTask; send TaskState failed; exit 0"
    assert _seen(text, "1.3.2") == (0, "failed", "success", "succeed->200, defer->409, defer->409", "ok, error, ok",
                                    None)
    assert _seen(text, "1.4.0b2") == (0, "SERVER_TERMINATED", "success",
                                      "succeed->200, defer->409, finish(SERVER_TERMINATED)->200", "ok, ok, ok", None)


def test_since_1_4_0_a_heartbeat_refusal_discards_the_undelivered_outcome():
    """``server_termination_is_final``: 1.3.2 (holding nothing, the call failed) keeps the failed succeed over the
    heartbeat's SERVER_TERMINATED and replays it at close; 1.4.0 (heartbeating while the succeed is undelivered)
    drops it for ``finish(SERVER_TERMINATED)``."""
    text = ("try_number=1 max_tries=0 execution_api_retries=1; fault succeed permanent; send SucceedTask; "
            "heartbeat 404; exit 0")
    assert _seen(text, "1.3.2") == (-15, "SERVER_TERMINATED", "deleted", "succeed->500, heartbeat->404, succeed->500",
                                    "error", None)
    assert _seen(text, "1.4.0b2") == (-15, "SERVER_TERMINATED", "deleted",
                                      "succeed->500, heartbeat->404, finish(SERVER_TERMINATED)->404", "error", None)


def test_since_1_4_0_heartbeats_go_on_while_the_held_outcome_is_undelivered():
    """``heartbeats_while_undelivered``: 1.3.2 sends none once a TaskState is held; 1.4.0 does until close. A heartbeat
    that fell due while none is sent goes at the first wake-up that sends one (the TaskState after a delivered
    SucceedTask), and its refusal ends the attempt SERVER_TERMINATED."""
    held = "try_number=1 max_tries=0; send TaskState failed; heartbeat 200; exit 0"
    assert _seen(held, "1.3.2") == (0, "failed", "failed", "finish(failed)->200", "ok", None)
    assert _seen(held, "1.4.0b2") == (0, "failed", "failed", "heartbeat->200, finish(failed)->200", "ok", None)
    overdue = "try_number=1 max_tries=0; send SucceedTask; heartbeat 200; send TaskState failed; exit 0"
    assert _seen(overdue, "1.3.2") == (0, "failed", "success", "succeed->200, finish(failed)->409", "ok, ok",
                                       "ServerResponseError(409)")
    assert _seen(overdue, "1.4.0b2") == (-15, "SERVER_TERMINATED", "success",
                                         "succeed->200, heartbeat->409, finish(SERVER_TERMINATED)->200", "ok, ok", None)


def test_since_1_2_1_a_heartbeat_on_a_cleared_try_is_410_and_means_server_terminated():
    """``answers_gone`` and ``heartbeat_gone`` (apache/airflow#61631): core 3.2.0 answers 404 for the archived try,
    3.2.1 answers 410, and the 1.2.1 supervisor takes it as SERVER_TERMINATED."""
    text = "try_number=1 max_tries=2; heartbeat 410; exit 0"
    assert _seen(text, "1.2.0") == (-15, "SERVER_TERMINATED", "restarting", "heartbeat->404", "", None)
    assert _seen(text, "1.2.1") == (-15, "SERVER_TERMINATED", "restarting", "heartbeat->410", "", None)
    assert not {410} & set(Release.parse("1.2.0").heartbeat_gone) and 410 in Release.parse("1.2.1").heartbeat_gone
