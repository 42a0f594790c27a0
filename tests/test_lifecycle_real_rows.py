"""Lives on real rows: every try of a life on one TaskInstance row of the real Execution API, the scheduler's own
step queueing the next. The smoke slice of ``pytest properties/test_lifecycle.py --target airflow-inproc --server airflow``."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="real rows need apache-airflow-core's Execution API")

from hypothesis import settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from impl.catalogue.findings import findings_on  # noqa: E402
from impl.search.lifecycle import life_machine, pairings_for, replay_life  # noqa: E402
from model.lifecycle import LIFECYCLE_INVARIANTS, life_violations  # noqa: E402

FAILS = "task raises ValueError; policy none; comms ok"
RETURNS = "task returns; policy none; comms ok"


@pytest.fixture(scope="module")
def pairings():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINALSTATE_SERVER", "airflow")
        found = pairings_for("airflow-inproc")
        yield found
        found[0].rows.run.close()


def test_a_supervisor_target_on_the_real_server_lives_on_real_rows(pairings):
    assert [p.name for p in pairings] == ["model-runtime+airflow-inproc, real rows",
                                          "model-coordinator+airflow-inproc, real rows"]
    assert all(p.rows is not None for p in pairings)


def test_the_second_try_is_numbered_by_the_server_after_the_scheduler_queued_it(pairings):
    life = replay_life(pairings[0], f"retries=1 | {FAILS} | {FAILS}")
    first, second = life.tries
    assert (first.context.try_number, first.context.should_retry, first.observation.row) == (1, True, "up_for_retry")
    assert first.row_after.state == "queued" and first.row_after.try_number == 2  # requeued by schedule_tis
    assert (second.context.try_number, second.context.should_retry, second.observation.row) == (2, False, "failed")
    assert (life.row.state, life.row.try_number, life.over) == ("failed", 2, True)


def test_l2_holds_on_real_rows(pairings):
    """L2, played on the real server's row: the SucceedTask never reaches the server, SUCCESS is reported, the row
    stays RUNNING."""
    life = replay_life(pairings[0], "retries=0 | task returns; policy none; comms terminal_send_fails")
    (only,) = life.tries
    assert (only.observation.final_state, only.observation.row, life.row.state) == ("success", "running", "running")


def test_a_success_after_a_retry_ends_the_life_on_the_same_row(pairings):
    life = replay_life(pairings[0], f"retries=2 | {FAILS} | {RETURNS}")
    assert [t.observation.row for t in life.tries] == ["up_for_retry", "success"]
    assert (life.row.state, life.row.try_number, life.row.max_tries) == ("success", 2, 2)


@pytest.mark.parametrize("invariant", LIFECYCLE_INVARIANTS, ids=lambda i: i.__name__)
def test_generated_lives_on_real_rows(pairings, invariant):
    """A few generated lives of the Python pairing per invariant, known findings counted (L1 and L2 hold on
    real rows too); the whole search of both pairings is the command in the module docstring."""
    known = findings_on("lifecycle", pairings[0].name, invariant.__name__)
    run_state_machine_as_test(life_machine(pairings[0], (invariant,), known),
                              settings=settings(settings.get_profile("ci"), max_examples=3, stateful_step_count=4))


def test_a_lost_host_is_ended_by_the_real_schedulers_heartbeat_timeout(pairings):
    """A try whose host died reports nothing; the scheduler's own heartbeat timeout makes the real row UP_FOR_RETRY
    while it may retry, and its step queues the next try; on the last try the row is FAILED."""
    life = replay_life(pairings[0], f"retries=1 | host lost | {FAILS}")
    (first, second), (third,) = life.tries, replay_life(pairings[1], "retries=0 | host lost").tries
    assert (first.context.try_number, first.context.should_retry, first.observation.final_state,
            first.observation.row) == (1, True, "none", "up_for_retry")
    assert (first.row_after.state, first.row_after.try_number) == ("queued", 2)
    assert (second.context.try_number, second.observation.row, life.row.state, life.over) == (2, "failed", "failed",
                                                                                              True)
    assert (third.context.should_retry, third.observation.row, third.row_after.state) == (False, "failed", "failed")


def test_a_deleted_row_keeps_the_count_of_its_tries(pairings):
    """A row deleted by a user has no try number to read; the life counts the tries made, as the model's rule does."""
    life = replay_life(pairings[1], "retries=1 | host lost | heartbeat 404; task success")
    assert (life.row.state, life.row.try_number, life.tries[-1].observation.row_gone) == ("deleted", 2, 404)
    assert not life_violations(life)
