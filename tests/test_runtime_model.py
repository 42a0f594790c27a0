"""The runtime and lifecycle models: spec sentences as examples, text forms, composition, and the machine biting."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis.stateful import run_state_machine_as_test

from impl.catalogue.findings import RUNTIME_FINDINGS
from impl.search.report import InvariantViolation
from model.invariants import Violation
from model.lifecycle import (Life, Try, failing_try_with_retries_left_ends_up_for_retry, host_lost,
                             last_failing_try_ends_failed, life_violations, try_count_matches_attempts)
from model.release import SPECIFIED, Release
from model.coordinator import CoordinatorRun, coordinator_attempt, seed_coordinator_attempt
from model.runtime import Policy, RuntimeRun, python_runtime, task_runs, to_scenario
from model.runtime_invariants import met_failure, runtime_violations
from model.scenario import FAILED, UP_FOR_RETRY, RunContext, Send
from model.server import Row
from impl.search.scenarios import runtime_runs

RETRIES_LEFT = RunContext.from_server(1, 1)
LAST_TRY = RunContext.from_server(2, 1)


def sent(run):
    return [str(s) for s in python_runtime(run).sent]


@pytest.mark.parametrize("text,frames,exit_code", [
    ("task raises AirflowException; policy none; comms ok", ["RetryTask"], 0),
    ("task raises AirflowFailException; policy none; comms ok", ["TaskState(failed)"], 0),
    ("task raises ValueError; policy fail; comms ok", ["TaskState(failed)"], 0),
    ("task raises KeyboardInterrupt; policy retry delay=5; comms ok", ["RetryTask"], 0),
    ("task raises ValueError; policy interrupted; comms ok", [], 2),
    ("task raises AirflowException; policy none; comms terminal_send_fails", ["RetryTask [send failed]"], 1),
    ("task raises AirflowSkipException; policy none; comms terminal_send_fails", ["TaskState(skipped) [send failed]"], 0),
    ("task raises DownstreamTasksSkipped; policy none; comms ok", ["SkipDownstreamTasks", "SucceedTask"], 0),
    ("task raises DownstreamTasksSkipped; policy none; comms every_send_fails",
     ["SkipDownstreamTasks [send failed]", "RetryTask [send failed]"], 1),
    # sys.exit(): except SystemExit takes it down the failure path as any code (finding R5)
    ("task raises SystemExit(); policy none; comms ok", ["RetryTask"], 0),
    ("task raises SystemExit(); policy fail; comms ok", ["TaskState(failed)"], 0),
])
def test_python_runtime_with_retries_left(text, frames, exit_code):
    run = RuntimeRun.from_text(f"try_number=1 max_tries=1; {text}")
    assert (sent(run), python_runtime(run).exit_code) == (frames, exit_code)


@pytest.mark.parametrize("text,frames,exit_code", [
    # what else a try meets: startup, the server's context, the task's map index, the channel
    ("task returns; policy none; comms ok; with fork_exec xcom_keys_to_clear map_index_template",
     ["ResendLoggingFD", "GetXCom", "DeleteXCom", "SetRenderedMapIndex", "SucceedTask"], 0),
    ("task returns; policy none; comms every_send_fails; with fork_exec", ["ResendLoggingFD [send failed]"], 1),
    ("task raises ValueError; policy none; comms ok; with startup_reschedule", ["RescheduleTask"], 0),
    ("task returns; policy none; comms terminal_send_fails; with startup_reschedule",
     ["RescheduleTask [send failed]"], 1),
    ("task raises AirflowFailException; policy none; comms every_send_fails; with xcom_keys_to_clear",
     ["GetXCom [send failed]", "RetryTask [send failed]"], 1),
    # the failed map-index send replaces the task's own exception (finding R4) ...
    ("task raises AirflowFailException; policy none; comms every_send_fails; with map_index_template",
     ["SetRenderedMapIndex [send failed]", "RetryTask [send failed]"], 1),
    # ... but only an Exception is re-rendered: TaskDeferred is a BaseException
    ("task raises TaskDeferred; policy none; comms every_send_fails; with map_index_template",
     ["DeferTask [send failed]"], 0),
    ("task raises AirflowSkipException(); policy none; comms ok", ["TaskState(skipped)"], 0),
    ("task raises TaskDeferred(serialize=AirflowFailException); policy none; comms ok", ["TaskState(failed)"], 0),
    # a RETRY whose delay is an int raises in the retry path, twice, and fails closed (finding R3)
    ("task raises ValueError; policy retry_int_delay delay=5; comms ok", ["TaskState(failed)"], 0),
    ("task raises DagRunTriggerException; policy none; comms ok", ["TriggerDagRun", "SetXCom", "SucceedTask"], 0),
    ("task raises DagRunTriggerException(exists); policy none; comms ok", ["TriggerDagRun", "TaskState(failed)"], 0),
    ("task raises DagRunTriggerException(exists,skip); policy none; comms ok",
     ["TriggerDagRun", "TaskState(skipped)"], 0),
    ("task raises DagRunTriggerException(exists); policy none; comms every_send_fails",
     ["TriggerDagRun [send failed]", "RetryTask [send failed]"], 1),
])
def test_python_runtime_features_with_retries_left(text, frames, exit_code):
    run = RuntimeRun.from_text(f"try_number=1 max_tries=1; {text}")
    observed = python_runtime(run)
    assert (sent(run), observed.exit_code, observed.channel_closed) == (frames, exit_code, True)


def test_sigterm_calls_on_kill_once_only_when_the_task_runs():
    runs = RuntimeRun(RETRIES_LEFT, "ValueError", features={"sigterm"})
    assert python_runtime(runs).on_kill_calls == 1
    assert python_runtime(attrs.evolve(runs, features={"sigterm", "startup_reschedule"})).on_kill_calls == 0
    never_runs = RuntimeRun(RETRIES_LEFT, "return", comms="every_send_fails", features={"sigterm", "xcom_keys_to_clear"})
    assert python_runtime(never_runs).on_kill_calls == 0


def test_an_execution_timeout_that_runs_out_calls_on_kill_and_fails_the_task_whatever_its_outcome():
    """The timer interrupts execute: on_kill, then AirflowTaskTimeout down the failure path (retryable, the policy
    consulted); the outcome the task would have reached, a never-retry one included, is never reached."""
    for outcome in ("return", "AirflowFailException", "AirflowSkipException", "SystemExit()"):
        observed = python_runtime(RuntimeRun(RETRIES_LEFT, outcome, features={"execution_timeout"}))
        assert ([str(s) for s in observed.sent], observed.on_kill_calls, observed.callbacks) == (
            ["RetryTask"], 1, ("on_retry_callback",)), outcome
    assert sent(RuntimeRun(RETRIES_LEFT, "return", Policy("fail"), features={"execution_timeout"})) == [
        "TaskState(failed)"]
    assert sent(RuntimeRun(LAST_TRY, "return", features={"execution_timeout"})) == ["TaskState(failed)"]
    both = python_runtime(RuntimeRun(RETRIES_LEFT, "return", features={"execution_timeout", "sigterm"}))
    assert both.on_kill_calls == 2  # the SIGTERM's, then the timer's
    # AirflowTaskTimeout is no Exception: the map index is not rendered after it
    assert sent(RuntimeRun(RETRIES_LEFT, "return", features={"execution_timeout", "map_index_template"})) == [
        "RetryTask"]
    never_runs = python_runtime(RuntimeRun(RETRIES_LEFT, "return", features={"execution_timeout", "startup_reschedule"}))
    assert never_runs.on_kill_calls == 0


def test_since_1_4_0_the_execution_timeout_is_told_to_the_supervisor_first():
    """apache/airflow#72493: SetExecutionTimeout before execute; a send that raises fails the task before execute runs
    (no on_kill, no SIGTERM met, no map index label to render)."""
    text = "task returns; policy none; comms ok; with execution_timeout"
    assert on("1.3.2", text) == (["RetryTask"], UP_FOR_RETRY, 0)
    assert on("1.4.0b2", text) == (["SetExecutionTimeout", "RetryTask"], UP_FOR_RETRY, 0)
    run = RuntimeRun(RETRIES_LEFT, "return", comms="every_send_fails",
                     features={"execution_timeout", "sigterm", "map_index_template"})
    unsent = python_runtime(run, Release.parse("1.4.0b2"))
    assert ([str(s) for s in unsent.sent], unsent.exit_code, unsent.on_kill_calls) == (
        ["SetExecutionTimeout [send failed]", "RetryTask [send failed]"], 1, 0)
    assert python_runtime(run).on_kill_calls == 2  # 1.3.2 sends nothing before execute
    assert (Release.parse("1.3.2").announces_the_execution_timeout,
            Release.parse("1.4.0b2").announces_the_execution_timeout) == (False, True)


@pytest.mark.parametrize("text,callbacks", [
    ("task returns; policy none; comms ok", ["on_success_callback"]),
    ("task raises ValueError; policy none; comms ok", ["on_retry_callback"]),
    ("task raises AirflowFailException; policy none; comms ok", ["on_failure_callback"]),
    ("task raises AirflowSkipException; policy none; comms ok", ["on_skipped_callback"]),
    ("task raises TaskDeferred; policy none; comms ok", []),
    ("task raises AirflowRescheduleException; policy none; comms ok", []),
    # finalize runs after an unsent terminal frame too, by the state decided (R1, R2 then record another)
    ("task raises AirflowSkipException; policy none; comms terminal_send_fails", ["on_skipped_callback"]),
    ("task raises AirflowFailException; policy none; comms terminal_send_fails", ["on_failure_callback"]),
    # main's exits before finalize run none (R6)
    ("task raises ValueError; policy interrupted; comms ok", []),
    ("task returns; policy none; comms terminal_send_fails; with startup_reschedule", []),
])
def test_finalize_runs_the_callback_of_the_state_run_decided(text, callbacks):
    assert list(python_runtime(RuntimeRun.from_text(f"try_number=1 max_tries=1; {text}")).callbacks) == callbacks


def test_before_1_2_2_an_unsent_outcome_runs_no_callback():
    run = RuntimeRun.from_text("try_number=1 max_tries=1; task returns; policy none; comms terminal_send_fails")
    assert python_runtime(run, Release.parse("1.2.1")).callbacks == ()
    assert python_runtime(run, Release.parse("1.2.2")).callbacks == ("on_success_callback",)


@pytest.mark.parametrize("text,broken", [
    # sys.exit() and sys.exit(0) are taken as failures (R5); sys.exit(1) is one
    ("try_number=1 max_tries=0; task raises SystemExit(); policy none; comms ok", ["sys_exit_without_an_error_code_succeeds"]),
    ("try_number=1 max_tries=1; task raises SystemExit(0); policy none; comms ok", ["sys_exit_without_an_error_code_succeeds"]),
    ("try_number=1 max_tries=1; task raises SystemExit(1); policy none; comms ok", []),
    # a timeout keeps the task from its sys.exit(), as from an AirflowFailException
    ("try_number=1 max_tries=1; task raises SystemExit(); policy none; comms ok; with execution_timeout", []),
    ("try_number=1 max_tries=1; task raises AirflowFailException; policy none; comms ok; with execution_timeout", []),
    # the callback the record calls for: R1's and R2's runs record another state than finalize ran for, R6's none
    ("try_number=1 max_tries=1; task raises AirflowSkipException; policy none; comms terminal_send_fails",
     ["non_success_never_recorded_success", "recorded_state_runs_its_callback_once"]),
    ("try_number=1 max_tries=1; task raises AirflowFailException; policy none; comms terminal_send_fails",
     ["failed_decision_never_recorded_up_for_retry", "recorded_state_runs_its_callback_once"]),
    ("try_number=1 max_tries=1; task raises ValueError; policy interrupted; comms ok", ["recorded_state_runs_its_callback_once"]),
    ("try_number=1 max_tries=1; task raises ValueError; policy none; comms terminal_send_fails", []),
    ("try_number=1 max_tries=1; task raises TaskDeferred; policy none; comms ok", []),
])
def test_the_new_invariants_judge_the_model(text, broken):
    run = RuntimeRun.from_text(text)
    assert sorted(v.invariant for v in runtime_violations(run, python_runtime(run))) == broken


def test_the_callback_invariant_counts_a_callback_run_twice():
    run = RuntimeRun.from_text("try_number=1 max_tries=1; task returns; policy none; comms ok")
    twice = attrs.evolve(python_runtime(run), callbacks=("on_success_callback", "on_success_callback"))
    assert [v.invariant for v in runtime_violations(run, twice)] == ["recorded_state_runs_its_callback_once"]


def test_a_child_the_task_forks_survives_sigterm_only_when_the_task_runs():
    """The child inherits _on_term, which returns in a process that is not the runtime's: it exits 0."""
    forks = RuntimeRun(RETRIES_LEFT, "ValueError", features={"forked_child"})
    assert (python_runtime(forks).forked_child_exit, python_runtime(forks).on_kill_calls) == (0, 0)
    never_runs = attrs.evolve(forks, comms="every_send_fails", features={"forked_child", "fork_exec"})
    assert python_runtime(never_runs).forked_child_exit is None


def test_a_trigger_that_never_got_its_answer_is_not_a_never_retry_failure():
    """DagRunTriggerException(exists) fails without retry only once the supervisor said the run exists."""
    run = RuntimeRun.from_text("try_number=1 max_tries=1; task raises DagRunTriggerException(exists); policy none; "
                               "comms every_send_fails")
    observed = python_runtime(run)
    assert met_failure(run, observed) and observed.state == UP_FOR_RETRY
    assert runtime_violations(run, observed) == ()


def test_bad_features_and_policies_are_named():
    with pytest.raises(ValueError, match="bad runtime run"):
        RuntimeRun.from_text("task returns; with nonsense")
    with pytest.raises(ValueError, match="retry_int_delay needs a delay"):
        Policy("retry_int_delay")


def test_policy_retry_cannot_extend_past_the_budget_and_reason_is_truncated():
    last = RuntimeRun(LAST_TRY, "ValueError", Policy("retry", 5, "r" * 600))
    assert sent(last) == ["TaskState(failed)"]
    left = python_runtime(RuntimeRun(RETRIES_LEFT, "ValueError", Policy("retry", 5, "r" * 600)))
    assert (left.retry_delay_seconds, len(left.retry_reason)) == (5.0, 500)


# -- the task runner of earlier releases (``model.release.Release``'s runtime traits) --------------------

def on(release: str, text: str):
    """The model's try on ``release``: (frames sent, state, exit code)."""
    observed = python_runtime(RuntimeRun.from_text(f"try_number=1 max_tries=1; {text}"), Release.parse(release))
    return [str(s) for s in observed.sent], observed.state, observed.exit_code


def test_the_runtime_traits_change_at_the_release_that_brought_them():
    traits = {  # trait: (last release without it, first release with it)
        "has_retry_policies": ("1.2.2", "1.3.0"),
        "fails_closed_on_an_unsent_outcome": ("1.2.1", "1.2.2"),
        "catches_a_failing_outcome_handler": ("1.3.0", "1.3.1"),
        "calls_on_kill_on_sigterm": ("1.0.3", "1.0.4"),
        "closes_the_channel_on_exit": ("1.0.2", "1.0.3"),
        "reschedules_a_startup_without_its_dag": ("1.1.6", "1.1.7"),
        "sends_the_rendered_map_index": ("1.1.8", "1.2.0"),
        "serializes_deferral_kwargs": ("1.1.8", "1.2.0"),
        "asks_for_the_log_channel_after_fork_exec": ("1.2.1", "1.2.2"),
    }
    for trait, (before, since) in traits.items():
        assert (getattr(Release.parse(before), trait), getattr(Release.parse(since), trait)) == (False, True), trait
        assert getattr(SPECIFIED, trait), trait
    assert not Release.parse("1.4.0b2").asks_for_the_log_channel_after_fork_exec  # the channel is inherited since 1.4.0


def test_before_1_3_0_no_retry_policy_is_consulted():
    assert on("1.2.2", "task raises ValueError; policy fail; comms ok") == (["RetryTask"], UP_FOR_RETRY, 0)
    assert on("1.3.0", "task raises ValueError; policy fail; comms ok") == (["TaskState(failed)"], FAILED, 0)


def test_before_1_2_2_an_unsent_outcome_leaves_run_and_main_exits_1_whatever_it_was():
    """apache/airflow#66573: before it, the send's error leaves run's finally; main exits 1 on a top-level error."""
    assert on("1.2.1", "task raises AirflowSkipException; policy none; comms terminal_send_fails") == (
        ["TaskState(skipped) [send failed]"], None, 1)
    assert on("1.2.1", "task returns; policy none; comms terminal_send_fails") == (
        ["SucceedTask [send failed]"], None, 1)
    assert on("1.2.2", "task raises AirflowSkipException; policy none; comms terminal_send_fails") == (
        ["TaskState(skipped) [send failed]"], "skipped", 0)
    assert on("1.2.2", "task raises AirflowFailException; policy none; comms terminal_send_fails") == (
        ["TaskState(failed) [send failed]"], FAILED, 1)


def test_before_1_3_1_a_failing_outcome_handler_leaves_run_with_nothing_sent():
    """apache/airflow#70719: before it, an error raised inside an except clause of run escapes it."""
    for text in ("task raises TaskDeferred(serialize=AirflowFailException); policy none; comms ok",
                 "task raises DownstreamTasksSkipped; policy none; comms every_send_fails",
                 "task raises DagRunTriggerException; policy none; comms every_send_fails"):
        assert on("1.3.0", text)[1:] == (None, 1), text
        assert on("1.3.1", text)[1] in (FAILED, UP_FOR_RETRY), text
    # the failure path raising itself (a RETRY with a plain number of seconds, finding R3) too
    assert on("1.3.0", "task raises ValueError; policy retry_int_delay delay=5; comms ok") == ([], None, 1)
    assert on("1.3.1", "task raises ValueError; policy retry_int_delay delay=5; comms ok") == (
        ["TaskState(failed)"], FAILED, 0)


def test_before_1_0_4_sigterm_kills_the_task_process_and_a_child_it_forked():
    run = RuntimeRun(RETRIES_LEFT, "return", features={"sigterm", "forked_child", "xcom_keys_to_clear"})
    killed = python_runtime(run, Release.parse("1.0.3"))
    assert ([str(s) for s in killed.sent], killed.state, killed.exit_code) == (["GetXCom", "DeleteXCom"], None, -15)
    assert (killed.on_kill_calls, killed.forked_child_exit) == (0, None)  # dead before it forks
    child = python_runtime(RuntimeRun(RETRIES_LEFT, "return", features={"forked_child"}), Release.parse("1.0.3"))
    assert (child.forked_child_exit, child.exit_code) == (-15, 0)
    survives = python_runtime(run, Release.parse("1.0.4"))
    assert (survives.on_kill_calls, survives.forked_child_exit, survives.state) == (1, 0, "success")


def test_before_1_1_7_a_dag_not_found_at_startup_exits_1_without_rescheduling():
    assert on("1.1.6", "task returns; policy none; comms ok; with startup_reschedule") == ([], None, 1)
    assert on("1.1.7", "task returns; policy none; comms ok; with startup_reschedule") == (["RescheduleTask"], None, 0)


def test_before_1_2_0_the_rendered_map_index_is_not_sent_on_its_own():
    text = "task raises AirflowFailException; policy none; comms every_send_fails; with map_index_template"
    assert on("1.1.8", text) == (["TaskState(failed) [send failed]"], None, 1)  # no R4 before 1.2.0
    assert on("1.2.0", "task returns; policy none; comms ok; with map_index_template") == (
        ["SetRenderedMapIndex", "SucceedTask"], "success", 0)


def test_before_1_2_0_a_deferral_serde_cannot_take_still_defers():
    text = "task raises TaskDeferredUnserializable; policy none; comms ok"
    assert on("1.1.8", text) == (["DeferTask"], "deferred", 0)
    assert on("1.2.0", text) == ([], None, 1)  # serde raises in the handler, and there is no #70719 yet
    assert on("1.3.1", text) == (["RetryTask"], UP_FOR_RETRY, 0)


def test_the_log_channel_is_asked_for_after_fork_exec_from_1_2_2_until_1_4_0():
    text = "task returns; policy none; comms ok; with fork_exec"
    assert on("1.2.1", text)[0] == on("1.4.0b2", text)[0] == ["SucceedTask"]
    assert on("1.2.2", text)[0] == ["ResendLoggingFD", "SucceedTask"]
    run = RuntimeRun(RETRIES_LEFT, "ValueError", comms="every_send_fails", features={"fork_exec"})
    assert task_runs(run, Release.parse("1.2.1")) and not task_runs(run)


@given(runtime_runs)
def test_runtime_run_text_round_trips(run):
    assert RuntimeRun.from_text(run.to_text()) == run


def test_to_scenario_keeps_only_delivered_frames():
    run = RuntimeRun(RETRIES_LEFT, "AirflowException", comms="terminal_send_fails")
    assert to_scenario(run.context, python_runtime(run)).to_text() == "try_number=1 max_tries=1 should_retry=true; exit 1"


@pytest.mark.parametrize("finding", RUNTIME_FINDINGS, ids=lambda f: f.id)
def test_runtime_findings_hold_of_the_model(finding):
    """Each runtime finding's run breaks exactly the invariants it names on the model, and its signature explains them."""
    run = RuntimeRun.from_text(finding.scenario)
    shown_on = finding.shown_on  # a finding that does not stand on the specified release: the model of one it does
    observed = python_runtime(run) if shown_on is None else python_runtime(run, Release.parse(shown_on))
    violations = runtime_violations(run, observed)
    assert sorted(v.invariant for v in violations) == sorted(finding.explains)
    assert all(finding.explains_violation(v.invariant, run, observed) for v in violations)


def test_life_moves_to_the_next_try_on_up_for_retry():
    life = Life.new(1)
    context = life.next_context()
    observation = coordinator_attempt(CoordinatorRun(context, "error"))
    life = life.record(Try(context, "task error", True, observation))
    assert (life.row.state, life.row.try_number, life.next_context()) == ("queued", 2, LAST_TRY)
    context = life.next_context()
    life = life.record(Try(context, "task error", True, coordinator_attempt(CoordinatorRun(context, "error"))))
    assert life.over and life.row.state == FAILED and not life_violations(life)


def test_lifecycle_machine_catches_the_seed_coordinator_model():
    from impl.search.lifecycle import coordinator_pairing, life_machine

    machine = life_machine(coordinator_pairing("seed-model", seed_coordinator_attempt),
                           (failing_try_with_retries_left_ends_up_for_retry,))
    with pytest.raises(InvariantViolation, match="try 1 of max_tries=1 failed with retries left"):
        run_state_machine_as_test(machine)


@pytest.mark.parametrize("release", [SPECIFIED, Release.parse("1.4.0")], ids=str)
def test_a_lost_host_is_retried_then_failed_by_the_schedulers_heartbeat_timeout(release):
    """Nothing is reported of a try whose host died; the heartbeat timeout makes its row UP_FOR_RETRY while it may
    retry (the next try queued with the next number, on core 3.3 by the scheduler's queueing, since 3.4 by the
    archiving), else FAILED."""
    life = Life.new(1)
    first = host_lost(life.next_context(), release)
    assert (first.lost, first.retryable_failure, first.observation.final_state, first.observation.exit_code,
            [str(c) for c in first.observation.calls], first.observation.row) == (
        True, True, "none", None, ["start->200"], UP_FOR_RETRY)
    life = life.record(first)
    assert (life.row.state, life.row.try_number, life.next_context()) == ("queued", 2, LAST_TRY)
    life = life.record(host_lost(life.next_context(), release))
    assert (life.over, life.row.state, life.row.try_number) == (True, FAILED, 2)
    assert life.to_text() == "retries=1 | host lost | host lost"
    assert not life_violations(life)


def _lost(context: RunContext, row: str) -> Try:
    """A lost try whose row the scheduler left ``row`` (not what the server model does: to show the invariants bite)."""
    tried = host_lost(context)
    return attrs.evolve(tried, observation=attrs.evolve(tried.observation, row=row))


def test_a_lost_try_is_judged_as_a_failing_one_by_its_row():
    kept_running = Life.new(1).record(_lost(RETRIES_LEFT, "running"))
    assert [str(v) for v in failing_try_with_retries_left_ends_up_for_retry(kept_running)] == [
        str(Violation("failing_try_with_retries_left_ends_up_for_retry",
                      "try 1 of max_tries=1 was lost with retries left; server row is running, expected up_for_retry"))]
    last = Life.new(0).record(_lost(RunContext.from_server(1, 0), UP_FOR_RETRY))
    assert [v.message for v in last_failing_try_ends_failed(last)] == [
        "try 1 of max_tries=0 was lost with no retries left; server row is up_for_retry, expected failed"]
    not_queued = Life.new(1).record(attrs.evolve(host_lost(RETRIES_LEFT), row_after=Row(UP_FOR_RETRY, 2, 1)))
    assert [v.message for v in try_count_matches_attempts(not_queued)] == [
        "try 1 ended up_for_retry and the row is up_for_retry: no next try queued"]


def test_a_try_the_sigterm_kills_never_reaches_mains_finally_and_one_it_never_reaches_does():
    """Before 1.0.4 a SIGTERM kills the task runner's process (exit -15): main's finally, which closes its channel
    (since 1.0.3), never runs. A try with the same feature whose task never ran (its GetXCom failed first) is not
    killed, and closes its channel as any other."""
    release = Release.parse("1.0.3")
    killed = python_runtime(RuntimeRun.from_text("try_number=1 max_tries=0; task returns; policy none; comms ok; "
                                                 "with sigterm"), release)
    assert (killed.exit_code, killed.on_kill_calls, killed.channel_closed) == (-15, 0, False)
    never_ran = python_runtime(RuntimeRun.from_text("try_number=1 max_tries=0; task returns; policy none; "
                                                    "comms every_send_fails; with xcom_keys_to_clear sigterm"), release)
    assert (never_ran.exit_code, never_ran.channel_closed) == (1, True)


@pytest.mark.parametrize("life", ["retries=0 | user marks success; task error",
                                  "retries=1 | user marks success; task error",
                                  "retries=0 | user clears; scheduler times out; task success | task success"])
def test_a_life_someone_acted_on_is_judged_as_the_supervisors_attempts_are(life):
    """A user's mark decides the row (only the supervisor's final state is the try's), and a clear gives the task
    instance its retries again: lives the coordinator search drew once users could act in them."""
    from impl.search.lifecycle import coordinator_model_with, coordinator_pairing, replay_life
    from model import supervisor as model_supervisor

    lived = replay_life(coordinator_pairing("model", coordinator_model_with(model_supervisor.run)), life)
    assert [t.acted for t in lived.tries][0], lived.to_lines()
    assert not life_violations(lived), lived.to_lines()
    unacted = attrs.evolve(lived, tries=tuple(attrs.evolve(t, acted=()) for t in lived.tries))
    assert life_violations(unacted), "with nothing done to the row the invariants would bite: the test cannot fail"
