"""The coordinator-mode runtime model (``model.coordinator``): its runs' text, the frame it decides, the attempt its
world makes of it, and the invariants that tell a runtime that fails closed from one that does not."""

from __future__ import annotations

import pytest
from hypothesis import given

from impl.targets.kinds import KINDS, decides_the_attempt, exit_class
from impl.search.scenarios import coordinator_runs
from model.coordinator import (CONTRACT, FAILS_CLOSED_NEVER, SEED, CoordinatorRun, CoordinatorRuntime, coordinator_attempt,
                               coordinator_scenario, terminal_frame)
from model.runtime_invariants import coordinator_violations
from model.scenario import (FAILED, REMOVED, SERVER_TERMINATED, SUCCESS, UP_FOR_RETRY, Heartbeat, IgnoreSigterm,
                            Overtime, RunContext, Send)

RETRIES_LEFT = RunContext.from_server(1, 1)
LAST_TRY = RunContext.from_server(2, 1)
NO_FAIL_CLOSED = CoordinatorRuntime(fails_closed=FAILS_CLOSED_NEVER)


def attempt(text: str, runtime: CoordinatorRuntime = CONTRACT):
    return coordinator_attempt(CoordinatorRun.from_text(text), runtime)


@given(coordinator_runs)
def test_a_run_reads_back_from_its_text(run):
    assert CoordinatorRun.from_text(run.to_text()) == run


def test_the_text_form_places_the_world_around_the_task():
    run = CoordinatorRun.from_text("try_number=1 max_tries=1 execution_api_retries=1; ignore sigterm; heartbeat 500; "
                                   "task error; overtime")
    assert (run.context, run.execution_api_retries, run.outcome) == (RETRIES_LEFT, 1, "error")
    assert run.while_running == (IgnoreSigterm(), Heartbeat(500)) and run.after_frame == (Overtime(),)


@pytest.mark.parametrize("text,says", [
    ("try_number=1 max_tries=1; task nothing", "task OUTCOME', OUTCOME one of success, error, panic, unknown_task"),
    ("try_number=1 max_tries=1; heartbeat 200", "one 'task OUTCOME' part"),
    ("task error; task success", "one 'task OUTCOME' part"),
    ("heartbeat 200; ignore sigterm; task error", "'ignore sigterm' is how the runtime is from its start"),
    ("task error; heartbeat 404", "only the success overtime"),
    ("send RetryTask; task error", "while the task runs the world arms faults"),
])
def test_a_bad_run_is_refused_saying_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        CoordinatorRun.from_text(text)


@pytest.mark.parametrize("outcome,context,runtime,frame", [
    ("success", RETRIES_LEFT, CONTRACT, Send("SucceedTask")),
    ("unknown_task", RETRIES_LEFT, CONTRACT, Send("TaskState", REMOVED)),
    ("error", RETRIES_LEFT, CONTRACT, Send("RetryTask")),
    ("panic", LAST_TRY, CONTRACT, Send("TaskState", FAILED)),
    ("error", RETRIES_LEFT, SEED, Send("TaskState", FAILED)),  # apache/airflow#67797
    ("bad_ti_id", RETRIES_LEFT, CONTRACT, Send("TaskState", FAILED)),
])
def test_the_terminal_frame_follows_the_outcome_and_should_retry(outcome, context, runtime, frame):
    assert terminal_frame(CoordinatorRun(context, outcome), runtime) == frame


def test_the_seeds_bug_fails_a_task_with_retries_left():
    assert attempt("try_number=1 max_tries=1; task error").final_state == UP_FOR_RETRY
    seeded = CoordinatorRun(RETRIES_LEFT, "error")
    assert coordinator_attempt(seeded, SEED).final_state == FAILED
    assert [v.invariant for v in coordinator_violations(seeded, coordinator_attempt(seeded, SEED))] == [
        "failure_with_retries_left_ends_up_for_retry"]


def test_a_runtime_that_fails_closed_exits_1_when_its_failure_is_not_taken():
    text = "try_number=1 max_tries=1; fault retry permanent; task error"
    closed, open_ = attempt(text), attempt(text, NO_FAIL_CLOSED)
    assert (closed.exit_code, closed.replies, closed.final_state) == (1, ("error",), UP_FOR_RETRY)
    assert (open_.exit_code, open_.final_state) == (0, SUCCESS)  # a failed task recorded SUCCESS
    run = CoordinatorRun.from_text(text)
    assert coordinator_violations(run, closed) == ()
    assert [v.invariant for v in coordinator_violations(run, open_)] == ["failure_not_taken_fails_closed"]


def test_a_taken_failure_or_a_success_exits_0_either_way():
    for text in ("try_number=1 max_tries=1; task error", "try_number=1 max_tries=0; fault succeed permanent; task success"):
        assert attempt(text).exit_code == attempt(text, NO_FAIL_CLOSED).exit_code == 0, text


def test_a_server_side_action_kills_the_runtime_before_its_task_ends():
    observed = attempt("try_number=1 max_tries=1; heartbeat 404; task error")
    assert (observed.exit_code, observed.final_state, observed.replies) == (-15, SERVER_TERMINATED, ())
    trapped = attempt("try_number=1 max_tries=1; ignore sigterm; heartbeat 409; task error")
    assert (trapped.exit_code, trapped.final_state) == (-9, SERVER_TERMINATED)  # only the SIGKILL ends it


def test_the_overtime_meets_only_a_runtime_that_waits_for_its_answer():
    text = "try_number=1 max_tries=0; task success; overtime"
    assert attempt(text).exit_code == -15
    assert attempt(text, NO_FAIL_CLOSED).exit_code == 0
    assert coordinator_scenario(CoordinatorRun.from_text(text), NO_FAIL_CLOSED).events == (Send("SucceedTask"),)


def test_conformance_compares_what_decides_the_attempt():
    """A runtime that dies of the SIGKILL its trapped SIGTERM escalated to, or exits 70 for an error of its own, or
    sends a rendered map index, decides the attempt as the model's does; a different final state does not."""
    import attrs

    kind = KINDS["coordinator"]
    model = attempt("try_number=1 max_tries=1; heartbeat 404; task error")
    assert kind.agree(model, attrs.evolve(model, exit_code=-9, rendered_map_index="-1"))
    assert not kind.agree(model, attrs.evolve(model, final_state=FAILED))
    assert kind.differing(model, attrs.evolve(model, exit_code=0)) == ["exit_code"]
    assert [exit_class(c) for c in (0, 1, 70, -15, -9, None)] == ["0", "failure", "failure", "signal", "signal", "none"]
    assert "rendered_map_index" not in decides_the_attempt(model)
