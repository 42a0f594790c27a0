"""What the design promises of a runtime's try, whatever the runtime.

Two families, both returning ``Violation`` values like ``model.invariants``:

- ``RUNTIME_INVARIANTS``: ``(run, observation) -> violations`` for one try of the Python task
  runner (``model.runtime.RuntimeRun`` / ``RuntimeObservation``). Some look only at what the
  runtime sent; the last two ask what the supervisor records of it (``model.runtime.compose``,
  the supervisor model), because a runtime's exit code only means something to a supervisor.
- ``COORDINATOR_INVARIANTS``: ``(run, observation) -> violations`` for one try of a coordinator-mode
  runtime seen end to end (``model.coordinator.CoordinatorRun`` and the supervisor's ``Observation``):
  the seed's acceptance criteria, and the fail-closed exit that keeps a failure from being lost when the
  supervisor could not take it.

They hold of the design, not of any release; where the pinned release breaks one, that is a
finding (``properties/findings.py``).
"""

from __future__ import annotations

from model.invariants import Violation
from model.runtime import (
    EXECUTION_TIMEOUT,
    FAILURE_OUTCOMES,
    NEVER_RETRIED_FAILURES,
    SIGTERM,
    STARTUP_RESCHEDULE,
    STATE_CHANGE_CALLBACKS,
    TERMINAL_FRAMES,
    TRIGGER_DAG_RUN_OUTCOMES,
    RuntimeObservation,
    RuntimeRun,
    compose,
    executes,
    reached_outcome,
    task_runs,
)
from model.coordinator import CoordinatorRun
from model.scenario import FAILED, SUCCESS, UP_FOR_RETRY, Observation


def met_failure(run: RuntimeRun, observed: RuntimeObservation) -> bool:
    """The task ran and failed, or a request of the try other than its terminal frame failed (the
    XCom clearing before the task, the map-index update after it, the SkipDownstreamTasks of its
    outcome's handler, the log channel at startup). A task whose execution timeout runs out failed by it, whatever
    its ``execute`` would have done.

    A deferral whose kwargs cannot be serialized fails where ``_defer_task`` serializes them (since 1.2.0:
    ``model.release.Release.serializes_deferral_kwargs``); a runtime that sent its DeferTask all the same (an earlier
    one, whose frame writes the value as its text) deferred the task, which did not fail."""
    deferred = run.outcome == "TaskDeferredUnserializable" and any(s.frame.frame == "DeferTask" for s in observed.sent)
    failed = EXECUTION_TIMEOUT in run.features or (run.outcome in FAILURE_OUTCOMES and not deferred)
    return (task_runs(run) and failed) or bool(observed.failed_requests)


def met_never_retry(run: RuntimeRun, observed: RuntimeObservation) -> bool:
    """The task ran and met a failure that means "do not retry": it raised one of those exceptions, or
    the DAG run it triggers was answered as existing already (so only once its TriggerDagRun got through). An
    execution timeout that runs out first leaves the task no such end (``model.runtime.reached_outcome``)."""
    if not (task_runs(run) and reached_outcome(run) in NEVER_RETRIED_FAILURES):
        return False
    return (run.outcome not in TRIGGER_DAG_RUN_OUTCOMES
            or any(s.frame.frame == "TriggerDagRun" and s.delivered for s in observed.sent))


def _delivered_terminal(observed: RuntimeObservation) -> bool:
    return any(f.frame in TERMINAL_FRAMES for f in observed.delivered)


def retry_expected(run, observed) -> bool:
    """Whether a failure of this try is to be answered with RetryTask: should_retry, no policy says FAIL, and the
    exception is not one that never retries (``met_never_retry``)."""
    return (run.context.should_retry
            and not met_never_retry(run, observed)
            and not (run.policy is not None and run.policy.action == "fail"))


def failure_answered_with_retry_exactly_when_should_retry(run, observed):
    """A failure is answered with RetryTask exactly when should_retry, no policy says FAIL, and the
    exception is not one that never retries (AirflowFailException, AirflowSensorTimeout,
    AirflowTaskTerminated). Only a try that got as far as a terminal frame is judged.

    Intent: apache/airflow#47996 (uranusjr: eligible for retry, UP_FOR_RETRY; otherwise FAILED); tasks.rst (a retry
    policy's FAIL skips the remaining retries); _run_task_and_map_outcome (its except SystemExit: retried if eligible,
    which makes SystemExit(0) a failure; Airflow 2 made a clean exit a success, an open question this invariant does not
    decide).
    """
    terminal = observed.terminal
    if not met_failure(run, observed) or terminal is None:
        return ()
    expected = retry_expected(run, observed)
    if (terminal.frame == "RetryTask") == expected:
        return ()
    got = terminal.frame + (f"({terminal.state})" if terminal.state else "")
    return (Violation("failure_answered_with_retry_exactly_when_should_retry",
                      f"{run.outcome} answered with {got}; expected {'RetryTask' if expected else 'no RetryTask'} "
                      f"(should_retry={str(run.context.should_retry).lower()}, "
                      f"policy {run.policy.to_text() if run.policy else 'none'})"),)


def fail_exception_never_retries(run, observed):
    """AirflowFailException, AirflowSensorTimeout and AirflowTaskTerminated never ask for a retry (raised by
    the task, or by its outcome's handler), nor does a DAG run to trigger that exists already (``met_never_retry``).

    Intent: tasks.rst (AirflowFailException fails the task ignoring any remaining retries; AirflowSensorTimeout fails it
    without retrying); except AirflowTaskTerminated (an unreachable branch of _run_task_and_map_outcome: if thrown, the
    TI is failed); apache/airflow#65390 (SamWheating: a conflicting DAG run should never be retried).
    """
    if not met_never_retry(run, observed):
        return ()
    if any(s.frame.frame == "RetryTask" for s in observed.sent) or observed.state == UP_FOR_RETRY:
        return (Violation("fail_exception_never_retries",
                          f"{run.outcome} was answered with a retry (state {observed.state})"),)
    return ()


def failure_never_exits_0_without_terminal_frame(run, observed):
    """A failed try never leaves with exit 0 unless its terminal frame got through (exit 0 and no
    terminal state is SUCCESS to the supervisor).

    Intent: task_runner.run (its comment: exiting 0 lets final_state default to SUCCESS, a silent data-quality bug);
    apache/airflow#66573 (potiuk: a genuine failure silently upgraded to SUCCESS).
    """
    if met_failure(run, observed) and observed.exit_code == 0 and not _delivered_terminal(observed):
        return (Violation("failure_never_exits_0_without_terminal_frame",
                          f"{run.outcome} left with exit 0 and no terminal frame delivered"),)
    return ()


def non_success_never_recorded_success(run, observed):
    """A try the runtime decided is not a success is never recorded SUCCESS by the supervisor.

    Intent: task_runner.run (its comment: final_state misclassifies SKIPPED, UP_FOR_RESCHEDULE and DEFERRED too, which
    need a separate fix there); apache/airflow#66573 (potiuk: a failure upgraded to SUCCESS).
    """
    if observed.state in (None, SUCCESS):
        return ()
    recorded = compose(run.context, observed)
    if recorded.final_state == SUCCESS:
        return (Violation("non_success_never_recorded_success",
                          f"the runtime decided {observed.state}, the supervisor records success "
                          f"(exit {observed.exit_code}, delivered: {', '.join(f.frame for f in observed.delivered) or 'nothing'})"),)
    return ()


def failed_decision_never_recorded_up_for_retry(run, observed):
    """A try the runtime decided FAILED (no retry) is never recorded UP_FOR_RETRY by the supervisor.

    Intent: tasks.rst (AirflowFailException ignores any remaining retries; a retry policy's FAIL skips them).
    """
    if observed.state != FAILED:
        return ()
    recorded = compose(run.context, observed)
    if recorded.final_state == UP_FOR_RETRY:
        return (Violation("failed_decision_never_recorded_up_for_retry",
                          f"the runtime decided failed ({run.outcome}, policy "
                          f"{run.policy.to_text() if run.policy else 'none'}), the supervisor records up_for_retry "
                          f"(exit {observed.exit_code}, should_retry={str(run.context.should_retry).lower()})"),)
    return ()


def sigterm_never_ends_in_success(run, observed):
    """A task that gets SIGTERM while its ``execute`` runs is never decided SUCCESS: once ``on_kill`` has run, what
    the task was doing was stopped, and the try did not do its work.

    Intent: Airflow 2 signal_handler (SIGTERM while the task runs: on_kill, then the handler raises, and the task
    fails); apache/airflow#37613 (termination requests should not be ignored); except AirflowTaskTerminated (the
    branch task-sdk kept for it, unreachable since the raise was dropped: the TI is failed). Read otherwise by
    apache/airflow#69034 (a graceful shutdown's SIGTERM should let in-flight work finish): an open question.
    """
    if SIGTERM not in run.features or not task_runs(run) or observed.state != SUCCESS:
        return ()
    return (Violation("sigterm_never_ends_in_success",
                      f"the task got SIGTERM while execute ran (on_kill ran {observed.on_kill_calls} time(s)), and the "
                      f"try was decided success: {run.outcome} after the signal"),)


def sigterm_calls_on_kill_once(run, observed):
    """A task that gets SIGTERM while its ``execute`` runs has its ``on_kill`` called, once, to clean up what it
    started. An execution timeout that runs out as well is a kill of its own, with its own ``on_kill``.

    Intent: BaseOperator.on_kill (override it to clean up subprocesses when a task instance gets killed);
    apache/airflow#53718 (gopidesupavan: a task killed externally was terminated at once, with no way to trigger
    on_kill, which it fixed).
    """
    kills = 1 + int(EXECUTION_TIMEOUT in run.features)
    if SIGTERM not in run.features or not task_runs(run) or observed.on_kill_calls == kills:
        return ()
    return (Violation("sigterm_calls_on_kill_once",
                      f"the task got SIGTERM while execute ran{' and its execution timeout ran out' if kills > 1 else ''}, "
                      f"and on_kill ran {observed.on_kill_calls} time(s) for {kills} kill(s) (exit {observed.exit_code})"),)


def try_that_never_ran_is_not_failed(run, observed):
    """A try whose DAG is not found at startup asks to be rescheduled (RescheduleTask) instead of failing: its task
    has not run, so neither a failure nor a retry is its due. Judged where startup reached the DAG (the log channel,
    where the runner asks for it, got through).

    Intent: apache/airflow#59604 (Lee-W: since the task has not actually run, Airflow should reschedule it without
    counting against its retry limit).
    """
    if STARTUP_RESCHEDULE not in run.features or any(
            s.frame.frame == "ResendLoggingFD" and not s.delivered for s in observed.sent):
        return ()
    if any(s.frame.frame == "RescheduleTask" for s in observed.sent):
        return ()
    return (Violation("try_that_never_ran_is_not_failed",
                      f"the DAG was not found at startup and the runner asked for no reschedule: it exited "
                      f"{observed.exit_code}, which the supervisor records {compose(run.context, observed).final_state}"),)


def forked_child_stops_on_sigterm(run, observed):
    """A process the task forked stops when SIGTERM reaches it (the supervisor's kill reaches the task runner's whole
    process group): it dies of the signal, or exits at once, never carrying on as it would have.

    Intent: WatchedSubprocess.start (its comment: the kill reaches every subprocess the task runner spawned, so none
    leaks as an orphan); BaseOperator.on_kill (an operator's subprocesses must be cleaned up, or ghost processes are
    left behind); Airflow 2 signal_handler (in a process the task forked, the handler exits it at once). Read
    otherwise by apache/airflow#69034 (a graceful shutdown's SIGTERM should let in-flight work finish): an open
    question.
    """
    if observed.forked_child_exit != 0:
        return ()
    return (Violation("forked_child_stops_on_sigterm",
                      "the process the task forked got SIGTERM and carried on: it exited 0 as it would have, the "
                      "inherited handler having done nothing in it"),)


#: ``sys.exit()`` and ``sys.exit(0)``: the ends of a task by ``SystemExit`` that Airflow 2 took as success.
SYS_EXIT_WITHOUT_AN_ERROR_CODE = ("SystemExit()", "SystemExit(0)")


def sys_exit_without_an_error_code_succeeds(run, observed):
    """A task that ends by ``sys.exit()`` or ``sys.exit(0)`` succeeds: the runtime decides SUCCESS and sends SucceedTask
    (a try the runtime decides nothing of, killed before, is not judged).

    Source: Airflow 2 behaviour Airflow 3 meant to keep. apache/airflow#36986 (Airflow 2.8, "Handle SystemExit raised
    in the task") first failed every SystemExit; in its review hussein-awala asked "I wonder if we should exclude the
    exit code 0 and set the state to success", and potiuk answered "yep. And actually we should handle None here as
    well in the same way": the merged ``_execute_callable`` returns for a code that is None or 0 ("Handle only
    successful cases here. Failure cases will be handled upper in the exception chain"), and ``_run_raw_task`` fails
    only the others. AIP-72's port, apache/airflow#45282 ("Handling SystemExit from task sdk"), states its aim as "to
    extend to the 'SystemExit' exception if thrown by tasks" and measures itself against "Behaviour in legacy (non task
    sdk)" with ``exit(10)`` only; nothing in it asks for ``sys.exit()`` or ``sys.exit(0)`` to fail, so the task
    runner's ``except SystemExit`` ("SystemExit needs to be retried if they are eligible") dropped the success case
    without deciding to.

    Intent: Airflow 2 _execute_callable (apache/airflow#36986: a code that is None or 0 is success);
    apache/airflow#45282 (amoghrajesh: the port extends SystemExit handling, measured against exit(10) only). Read
    otherwise by the task runner's own comment in _run_task_and_map_outcome ("SystemExit needs to be retried if they
    are eligible"): an open question.
    """
    if not (executes(run) and reached_outcome(run) in SYS_EXIT_WITHOUT_AN_ERROR_CODE):
        return ()
    terminal = observed.terminal
    if (terminal is None or terminal.frame == "SucceedTask") and observed.state in (None, SUCCESS):
        return ()
    tried = terminal.frame + (f"({terminal.state})" if terminal.state else "") if terminal else "no terminal frame"
    return (Violation("sys_exit_without_an_error_code_succeeds",
                      f"the task ended by {run.outcome}, which Airflow 2 took as success; the runtime decided "
                      f"{observed.state} ({tried})"),)


def recorded_state_runs_its_callback_once(run, observed):
    """The state-change callback that the state the supervisor records of the try calls for runs, once, and no other:
    ``on_success_callback`` for SUCCESS, ``on_failure_callback`` for FAILED, ``on_retry_callback`` for UP_FOR_RETRY,
    ``on_skipped_callback`` for SKIPPED, none for a state that does not end the task (deferred, up_for_reschedule,
    awaiting_input). The record (``model.runtime.compose``) decides, as in ``non_success_never_recorded_success``: it is
    what the task instance is, and what the callback tells its owner.

    Source: Airflow's documentation, "Callbacks" (administration-and-deployment/logging-monitoring/callbacks, 3.0 on):
    "on_success_callback: Invoked when the task succeeds", "on_failure_callback: Invoked when the task fails",
    "on_retry_callback: Invoked when the task is up for retry", "on_skipped_callback: Invoked when the task is running
    and AirflowSkipException raised"; "Callback functions are only invoked when the task state changes due to execution
    by a worker" (here the state is the worker's own). And the maintainers on apache/airflow#66573 (the fail-closed
    exit): kaxil's review refused an exit that skipped ``finalize`` because "on_failure_callback, the
    on_task_instance_failed listener hook, and email_on_failure no longer run", which "trades one silent correctness
    bug (FAILED -> SUCCESS) for another (user callbacks/listeners/emails silently dropped)"; apache/airflow#53058 runs
    the failure callbacks of a task killed from outside because otherwise "users have no way of knowing this happened".

    Intent: callbacks.rst (each state-change callback is invoked when the task enters its state);
    apache/airflow#66573 (kaxil: an exit that skips finalize silently drops the failure callbacks);
    apache/airflow#53058 (a killed task's failure callbacks: "users have no way of knowing this happened").
    """
    recorded = compose(run.context, observed).final_state
    expected = STATE_CHANGE_CALLBACKS.get(recorded)
    if tuple(observed.callbacks) == ((expected,) if expected else ()):
        return ()
    return (Violation("recorded_state_runs_its_callback_once",
                      f"the supervisor records {recorded}, which calls for {expected or 'no callback'}; the task ran "
                      f"{', '.join(observed.callbacks) or 'none'} (decided {observed.state}, exit {observed.exit_code})"),)


RUNTIME_INVARIANTS = (
    failure_answered_with_retry_exactly_when_should_retry,
    fail_exception_never_retries,
    failure_never_exits_0_without_terminal_frame,
    non_success_never_recorded_success,
    failed_decision_never_recorded_up_for_retry,
    sigterm_never_ends_in_success,
    sigterm_calls_on_kill_once,
    forked_child_stops_on_sigterm,
    try_that_never_ran_is_not_failed,
    sys_exit_without_an_error_code_succeeds,
    recorded_state_runs_its_callback_once,
)


def runtime_violations(run: RuntimeRun, observed: RuntimeObservation, invariants=RUNTIME_INVARIANTS) -> tuple[Violation, ...]:
    return tuple(v for check in invariants for v in check(run, observed))


# -- a coordinator-mode runtime's try, end to end (model.coordinator) -------------------------------


def _taken(observation: Observation) -> bool:
    """The supervisor took the runtime's terminal frame: it answered it, and without an error."""
    return observation.replies[-1:] == ("ok",)


def failure_with_retries_left_ends_up_for_retry(run: CoordinatorRun, observation: Observation):
    """The seed's first criterion: a failing task whose TI has retries left (should_retry), once the supervisor took
    its terminal frame, is recorded UP_FOR_RETRY, not FAILED.

    Intent: apache/airflow#67797 (jason810496: a TI with retries configured recorded FAILED and never retried is the
    bug); tasks.rst (up_for_retry: failed, with retry attempts left).
    """
    if run.failure and run.context.should_retry and _taken(observation) and observation.final_state != UP_FOR_RETRY:
        return (Violation("failure_with_retries_left_ends_up_for_retry",
                          f"task fails → {observation.final_state.upper()}, expected UP_FOR_RETRY "
                          f"(should_retry=true, server row {observation.row})"),)
    return ()


def failure_without_retries_ends_failed(run: CoordinatorRun, observation: Observation):
    """The seed's second criterion: a failing task whose TI has no retries left (not should_retry), once the
    supervisor took its terminal frame, is recorded FAILED.

    Intent: apache/airflow#47996 (uranusjr: not eligible for retry, FAILED); BaseOperator retries (the retries
    performed before failing the task).
    """
    if run.failure and not run.context.should_retry and _taken(observation) and observation.final_state != FAILED:
        return (Violation("failure_without_retries_ends_failed",
                          f"task fails → {observation.final_state.upper()}, expected FAILED "
                          f"(should_retry=false, server row {observation.row})"),)
    return ()


def failure_not_taken_fails_closed(run: CoordinatorRun, observation: Observation):
    """A failing task whose terminal frame the supervisor did not take (it answered with an error, or not at all)
    never exits 0: exit 0 lets the supervisor record the attempt from what it holds (SUCCESS when it holds nothing),
    as Airflow's Python task runner knows since task-sdk 1.2.2, which exits 1 then (apache/airflow#66573).

    Intent: apache/airflow#66573 (potiuk: exit non-zero when the terminal state is not SUCCESS, so that final_state
    classifies it FAILED or UP_FOR_RETRY); task_runner.run (its comment: exiting 0 lets final_state default to SUCCESS);
    apache/airflow#67797 (jason810496: the Python task runner is the source of truth for SDK behaviour).
    """
    if not run.failure or observation.exit_code != 0 or _taken(observation):
        return ()
    told = observation.replies[-1] if observation.replies else "no answer"
    return (Violation("failure_not_taken_fails_closed",
                      f"task fails, its terminal frame was not taken (the supervisor answered: {told}), and the "
                      f"runtime exited 0: the attempt is recorded {observation.final_state.upper()}, "
                      f"server row {observation.row}"),)


COORDINATOR_INVARIANTS = (failure_with_retries_left_ends_up_for_retry, failure_without_retries_ends_failed,
                          failure_not_taken_fails_closed)


def coordinator_violations(run: CoordinatorRun, observation: Observation,
                           invariants=COORDINATOR_INVARIANTS) -> tuple[Violation, ...]:
    return tuple(v for check in invariants for v in check(run, observation))
