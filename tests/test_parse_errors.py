"""A mistyped run is refused in at most two lines that name the wrong word and the words allowed there, for every
kind of run ``finalstate replay`` takes (supervisor scenario, task-runner run, coordinator run, lifecycle)."""

from __future__ import annotations

import pytest

from impl.frontdoor.cli import main

#: (target, the run as a newcomer might mistype it, the wrong word, words the message must offer instead)
MISTYPED = [
    ("model", "try_number=1 max_tries=0; send SucceedTaskk; exit 0", "SucceedTaskk", ("SucceedTask", "RetryTask")),
    ("model", "fault succeed flaky; exit 0", "flaky", ("transient", "permanent", "lost")),
    ("model", "fault sucess transient; exit 0", "sucess", ("succeed", "retry")),
    ("model", "heartbeat 201; exit 0", "201", ("404", "409", "timeout")),
    ("model", "send TaskState runnning; exit 0", "runnning", ("failed", "skipped")),
    ("model", "try_numbr=1; exit 0", "try_numbr", ("try_number=", "max_tries=")),
    ("model", "send SucceedTask", "send SucceedTask", ("exit CODE",)),
    ("airflow-task-runner", "try_number=1 max_tries=0 should_retry=false; task raises RuntimeError; policy fail",
     "RuntimeError", ("AirflowException", "ValueError")),
    ("airflow-task-runner", "task raises ValueError; policy failx", "failx", ("fail", "retry")),
    ("airflow-task-runner", "task raises ValueError; comms oops", "oops", ("terminal_send_fails",)),
    ("airflow-task-runner", "task returns; policy retry delay=x", "delay=x", ("delay=N",)),
    ("model", "try_number=1 max_tries=1; task boom", "boom", ("success", "error", "panic")),
    ("model", "retries=x | task error", "retries=x", ("retries=N",)),
    ("airflow-inproc", "retries=1 | task raises Boom; policy none; comms ok", "Boom", ("AirflowFailException",)),
    ("airflow-inproc", "retries=1 | task eror", "eror", ("success", "error")),
    ("airflow-task-runner", "task returns; with sigterm sigterm", "sigterm", ("twice",)),
    ("airflow-task-runner", "task returns; task raises ValueError", "task raises ValueError", ("second",)),
    ("model", "fault defer transient; task error", "fault defer transient", ("succeed", "retry", "finish")),
    ("model", "retries=1 | try_number=3; task error", "try_number=3", ("retries=N", "execution_api_retries=")),
    ("model", "retries=0 | task error | task success", "over after its try 1", ("1 more given",)),
]


@pytest.mark.parametrize("target, text, wrong, allowed", MISTYPED, ids=[m[1] for m in MISTYPED])
def test_a_mistyped_run_names_the_word_and_what_is_allowed(target, text, wrong, allowed):
    with pytest.raises(SystemExit) as refused:
        main(["replay", "--target", target, text])
    message = str(refused.value.code)
    assert message.startswith("finalstate: bad scenario: "), message
    assert len(message.splitlines()) <= 2, message
    assert wrong in message, f"the wrong word {wrong!r} is not named: {message}"
    for word in allowed:
        assert word in message, f"{word!r} is not offered: {message}"
