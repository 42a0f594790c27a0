"""``model.server`` on the differences the conformance property found against airflow-core 3.3.2's and 3.4.0b2's app.

Each case is a request sequence whose answers were read off the real Execution API
(``properties/test_server_conformance.py``, ``impl.server.conformance.play_real``), where the
model once answered otherwise. The property keeps checking them all; these say which rule is which.
"""

from __future__ import annotations

import pytest

from impl.server.conformance import Act, Call, Case, Heartbeat, Opening, Start, play_model
from model.release import Release
from model.scenario import FAILED, SERVER_TERMINATED, RunContext
from model.server import RESTARTING, Server, client_status


def statuses(opening: Opening, *steps) -> list:
    return [seen.status for seen in play_model(Case(opening, steps))]


def test_a_state_update_that_changes_the_row_is_204_a_repeat_is_200():
    assert statuses(Opening(), Start(1), Call("succeed"), Call("succeed")) == [200, 204, 200]
    assert statuses(Opening(), Start(1), Call("finish", FAILED), Call("finish", FAILED)) == [200, 204, 200]


def test_heartbeat_and_skip_downstream_answer_204():
    assert statuses(Opening(), Start(1), Heartbeat(1), Call("skip_downstream_tasks")) == [200, 204, 204]


def test_the_same_worker_may_start_its_running_ti_again_another_may_not():
    assert statuses(Opening(), Start(1), Start(1, fresh=False), Start(2)) == [200, 200, 409]
    assert statuses(Opening(), Start(1), Heartbeat(2)) == [200, 409]


def test_a_retry_archives_the_try_so_the_old_id_is_404_and_its_heartbeat_410():
    (*_, after) = play_model(Case(Opening(1, 2, 2), (Start(1), Call("retry"))))
    assert after.row == ("up_for_retry", 1, 2) and not after.held_is_live
    assert statuses(Opening(1, 2, 2), Start(1), Call("retry"), Call("retry"), Heartbeat(1)) == [200, 204, 404, 410]


def test_the_server_does_not_enforce_the_retry_budget():
    assert statuses(Opening(1, 0, 0), Start(1), Call("retry")) == [200, 204]


def test_409_is_not_gone_a_user_marked_failed_ti_answers_as_any_failed_row():
    assert statuses(Opening(), Start(1), Act("mark", FAILED), Call("finish", FAILED), Call("succeed"),
                    Heartbeat(1)) == [200, None, 200, 409, 409]


def test_a_cleared_running_ti_is_restarting_under_a_new_id_and_its_next_start_may_retry():
    seen = play_model(Case(Opening(1, 0, 0), (Start(1), Act("clear"), Call("succeed"), Heartbeat(1), Start(1))))
    assert [s.status for s in seen] == [200, None, 404, 410, 200]
    assert seen[1].row == (RESTARTING, 1, 0)
    assert seen[-1].context == (True, 0)  # RESTARTING: always eligible to retry


def test_a_try_archived_twice_keeps_its_first_id_in_history_only():
    assert statuses(Opening(), Act("clear"), Start(1), Act("clear"), Heartbeat(1)) == [None, 409, None, 404]


def test_a_deleted_ti_takes_its_history_with_it():
    assert statuses(Opening(1, 2, 2), Start(1), Call("retry"), Act("delete"), Heartbeat(1)) == [200, 204, None, 404]


def test_client_status_is_ok_for_any_2xx():
    assert [client_status(s) for s in (200, 204, 409, "timeout")] == [200, 200, 409, "timeout"]


@pytest.mark.parametrize("answer, row", [(404, "deleted"), (409, FAILED), (410, RESTARTING), (200, "running")])
def test_the_supervisors_heartbeat_answer_comes_from_the_world_the_actor_leaves(answer, row):
    server, status = Server.queued(RunContext()).start()[0].heartbeat(answer)
    assert (client_status(status), server.row.state) == (answer, row)
    assert server.row.gone == (answer if answer != 200 else None)


def test_two_equal_faults_armed_are_two_faults_even_as_one_object():
    """A scenario's events may be one shared value (generation draws them from one alphabet): each disarms once."""
    from model.scenario import Fault
    from model.server import SERVER_ERROR

    fault = Fault("reschedule", "transient")
    server = Server.queued(RunContext(1, 0, False)).start()[0].arm(fault).arm(fault)
    server, first = server.call("reschedule")
    server, second = server.call("reschedule")
    assert (first, second) == (SERVER_ERROR, SERVER_ERROR)


# -- core 3.4.0 (task-sdk 1.4.0), each case read off 3.4.0b2's app by the conformance property ------------------------

CORE_3_4 = Release.parse("1.4.0b2")


def seen_on_3_4(opening: Opening, *steps) -> list:
    return [(s.status, s.row, s.held_is_live) for s in play_model(Case(opening, steps), CORE_3_4)]


def test_since_core_3_4_archiving_numbers_the_next_try_and_the_scheduler_keeps_it():
    """``numbers_a_try_when_archiving`` (apache/airflow#73554): the retry's successor is try 2 at once."""
    assert seen_on_3_4(Opening(1, 0, 0), Start(1), Call("retry"), Act("requeue")) == [
        (200, ("running", 1, 0), True), (204, ("up_for_retry", 2, 0), False), (None, ("queued", 2, 0), False)]
    (*_, requeued) = play_model(Case(Opening(1, 0, 0), (Start(1), Call("retry"), Act("requeue"))))
    assert requeued.row == ("queued", 2, 0)  # core 3.3: the same try number, added by the scheduler


def test_since_core_3_4_a_clear_archives_only_a_try_that_ran():
    """A retried (UP_FOR_RETRY) row keeps its id and number; a finished one is archived and numbered on."""
    assert seen_on_3_4(Opening(1, 1, 1), Start(1), Call("retry"), Act("clear"))[-1] == (None, (None, 2, 2), False)
    assert seen_on_3_4(Opening(1, 1, 1), Start(1), Call("succeed"), Act("clear"))[-1] == (None, (None, 2, 2), False)
    assert seen_on_3_4(Opening(2, 1, 1), Act("clear"), Act("requeue"))[-1] == (None, ("queued", 3, 3), False)


def test_since_core_3_4_a_cleared_running_try_stays_live_until_it_stops():
    """``restarts_a_cleared_try_once_stopped``: RESTARTING under the same id, refused to every start, its heartbeat
    409; the worker's stop report (``takes_stop_reports``) completes the restart, another worker's is 409."""
    seen = seen_on_3_4(Opening(1, 1, 1), Start(1), Act("clear"), Heartbeat(1), Start(1, fresh=False), Start(2),
                       Call("finish", SERVER_TERMINATED, 2), Call("finish", SERVER_TERMINATED, 1), Heartbeat(1))
    assert seen == [(200, ("running", 1, 1), True), (None, (RESTARTING, 1, 1), True), (409, (RESTARTING, 1, 1), True),
                    (409, (RESTARTING, 1, 1), True), (409, (RESTARTING, 1, 1), True), (409, (RESTARTING, 1, 1), True),
                    (204, (None, 2, 2), False), (410, (None, 2, 2), False)]


def test_since_core_3_4_the_heartbeat_timeout_completes_a_restart():
    assert seen_on_3_4(Opening(1, 1, 1), Start(1), Act("clear"), Act("heartbeat_timeout"))[-1] == (
        None, (None, 2, 2), False)


def test_since_core_3_4_a_change_on_an_archived_try_is_410_and_a_stop_report_204():
    """``answers_gone_to_an_archived_change``; a stop report on an archived try's id is taken (204), on a deleted
    TI's 404."""
    assert [s for s, _, _ in seen_on_3_4(Opening(1, 1, 1), Start(1), Call("retry"), Call("succeed"), Start(1, False),
                                         Call("skip_downstream_tasks"), Call("finish", SERVER_TERMINATED, 1),
                                         Act("delete"), Call("finish", SERVER_TERMINATED, 1), Call("succeed"))] == [
        200, 204, 410, 410, 410, 204, None, 404, 404]


def test_since_core_3_4_a_stop_report_leaves_a_finished_row_and_refuses_a_running_one():
    """Refused before a start (no worker), while RUNNING, and from another worker; a finished row is left as it is."""
    report, other = Call("finish", SERVER_TERMINATED, 1), Call("finish", SERVER_TERMINATED, 2)
    seen = seen_on_3_4(Opening(), report, Start(1), report, Call("succeed"), report, other)
    assert [s for s, _, _ in seen] == [409, 200, 409, 204, 204, 409]
    assert seen[-1][1] == ("success", 1, 0)


def test_since_core_3_4_the_world_of_a_heartbeat_410_is_a_clear_then_the_heartbeat_timeout():
    """A clear alone leaves the running try live (its heartbeat would be 409): the scheduler archives it."""
    server, status = Server.queued(RunContext(1, 1), release=CORE_3_4).start()[0].heartbeat(410)
    assert (status, server.row.state, server.row.try_number, server.row.gone) == (410, None, 2, 410)


def test_an_observed_row_with_no_state_is_spelled_as_the_real_server_binding_reads_it():
    """Since core 3.4 a supervisor attempt can leave a live row with no state (a heartbeat 410's world completes the
    restart): the model's observation and the real server's (``observed_row``) both say ``none``."""
    from model.scenario import NO_STATE, Scenario
    from model.supervisor import run

    observed = run(Scenario.from_text("try_number=1 max_tries=1; heartbeat 410; exit 0"), CORE_3_4)
    assert (observed.row, observed.row_gone) == (NO_STATE, 410)
    assert str(observed.calls[-1]) == "finish(SERVER_TERMINATED)->200"
