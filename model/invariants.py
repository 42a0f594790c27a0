"""What the design promises of a finished attempt, whatever the implementation.

Each invariant is a function ``(scenario, observation) -> tuple[Violation, ...]`` that
returns the violations it finds, empty when the promise holds. They hold of the
design, not of any release: where the pinned release breaks one, that is a finding.
"""

from __future__ import annotations

from typing import Callable

import attrs

from model.scenario import (
    FAILED,
    HEARTBEAT_GONE,
    RUNNING,
    SERVER_TERMINATED,
    SUCCESS,
    UP_FOR_RETRY,
    Observation,
    Scenario,
    Send,
    UserAction,
    server_should_retry,
    signal_name,
)
from model.server import CONFLICT
from model.supervisor import DIRECT_FRAMES

#: The call each frame makes of its own, where it makes one (``_send_terminal_state_msg``, ``_handle_request``).
_CALL_OF_FRAME = {**{frame: call for frame, (call, _) in DIRECT_FRAMES.items()},
                  "SkipDownstreamTasks": "skip_downstream_tasks"}

TERMINAL_FRAMES = frozenset({"TaskState", "SucceedTask", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"})


@attrs.frozen
class Violation:
    #: The name of the invariant broken.
    invariant: str
    #: What broke it in this run, in words.
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


Invariant = Callable[[Scenario, Observation], "tuple[Violation, ...]"]


def frames_received(scenario: Scenario, observation: Observation) -> tuple[Send, ...]:
    """The frames the supervisor read before the process died: one reply was sent for each, in order.

    A frame the supervisor's release cannot decode (``AwaitInputTask`` before 1.3.0) gets no reply and makes no
    call, so before pairing replies with frames, a frame that makes a call of its own (``DIRECT_FRAMES``,
    ``SkipDownstreamTasks``) is set aside when no call of that name was made. A ``wait()`` that raised before it
    saw the exit (``exit_code`` None: a release before 1.2.2 whose call got no answer) read one frame more, the one
    whose handling raised, and answered it nothing.
    """
    called = {c.name for c in observation.calls}
    read = [e for e in scenario.events
            if isinstance(e, Send) and _CALL_OF_FRAME.get(e.frame, "") in ("", *called)]
    unanswered = 1 if observation.exit_code is None and observation.raised else 0
    return tuple(read[: len(observation.replies) + unanswered])


def last_terminal_frame(scenario: Scenario, observation: Observation) -> Send | None:
    terminal = [f for f in frames_received(scenario, observation) if f.frame in TERMINAL_FRAMES]
    return terminal[-1] if terminal else None


def runtime_reported_failure(scenario: Scenario, observation: Observation) -> bool:
    """The runtime never claimed success, and its last word was a failure.

    That is: no SucceedTask frame, and either its last terminal frame is TaskState(failed)
    or RetryTask, or it sent no terminal frame and exited non-zero (an exit the supervisor never saw, None, is none).
    """
    if any(f.frame == "SucceedTask" for f in frames_received(scenario, observation)):
        return False
    last = last_terminal_frame(scenario, observation)
    if last is None:
        return observation.exit_code not in (0, None)
    return last.frame == "RetryTask" or (last.frame == "TaskState" and last.state == FAILED)


def user_acted(scenario: Scenario) -> bool:
    """A user (or the scheduler's heartbeat timeout) acted on the task instance while the attempt ran
    (``UserAction``): the row's state is then their decision, and the supervisor's calls on it may be refused (409,
    404, 410) through no fault of its own.

    Read off the run, not the observation: an action the process did not live to see (after a kill that ended it)
    counts too, which can only hide a violation the same run shows without it.
    """
    return any(isinstance(e, UserAction) for e in scenario.events)


def taken_away(scenario: Scenario, observation: Observation) -> bool:
    """The server took the TI away from the supervisor (a heartbeat answered 404/409/410: ``row_gone``), or a user
    acted on it."""
    return observation.row_gone is not None or user_acted(scenario)


def _recorded(observation: Observation, scenario: Scenario | None = None) -> dict[str, str]:
    """What the attempt was recorded as: the supervisor's final state, and the server row unless a user decided it."""
    if scenario is not None and user_acted(scenario):
        return {"final_state": observation.final_state}
    return {"final_state": observation.final_state, "server row": observation.row}


def up_for_retry_only_from_retry_frame_or_nonzero_exit_with_should_retry(scenario, observation):
    """The seed's rule: UP_FOR_RETRY comes only from a RetryTask frame, or a non-zero exit while should_retry.

    Intent: apache/airflow#67797 (jason810496: UP_FOR_RETRY is reachable only via a RetryTask, or a non-zero exit with
    should_retry); tasks.rst (up_for_retry: the task failed, but has retry attempts left).
    """
    if UP_FOR_RETRY not in _recorded(observation, scenario).values():
        return ()  # nothing recorded up_for_retry: no frame to look for
    sent_retry = any(f.frame == "RetryTask" for f in frames_received(scenario, observation))
    allowed = sent_retry or (observation.exit_code not in (0, None) and scenario.context.should_retry)
    return tuple(
        Violation("up_for_retry_only_from_retry_frame_or_nonzero_exit_with_should_retry",
                  f"{where} is up_for_retry with no RetryTask frame received, exit {observation.exit_code}, "
                  f"should_retry={scenario.context.should_retry}")
        for where, state in _recorded(observation, scenario).items()
        if state == UP_FOR_RETRY and not allowed
    )


def failure_never_recorded_as_success(scenario, observation):
    """A failed attempt is never recorded SUCCESS, by the supervisor or on the server (a row a user moved is the
    user's decision, not the attempt's record).

    Intent: apache/airflow#66573 (potiuk: a genuine failure silently upgraded to SUCCESS breaks downstream pipelines);
    tasks.rst (success: the task finished running without errors).
    """
    recorded = _recorded(observation, scenario)
    if SUCCESS not in recorded.values() or not runtime_reported_failure(scenario, observation):
        return ()
    return tuple(
        Violation("failure_never_recorded_as_success", f"{where} is success although the runtime reported failure")
        for where, state in recorded.items()
        if state == SUCCESS
    )


def no_task_instance_left_running(scenario, observation):
    """After the attempt the server row is not RUNNING, unless the server itself took the TI away (an attempt that
    never ended, ``hung``, is judged by ``an_attempt_whose_task_ended_ends``).

    Intent: apache/airflow#66574 (potiuk: a TI stuck RUNNING forever blocks downstream tasks);
    update_task_state_if_needed (its comment: finish() reports FAILED, or UP_FOR_RETRY without a RetryTask).
    """
    if observation.row == RUNNING and observation.row_gone is None and not observation.hung:
        return (Violation("no_task_instance_left_running",
                          f"the server row is still running; the supervisor reported {observation.final_state}"),)
    return ()


def server_row_agrees_with_final_state(scenario, observation):
    """The server row ends in the state the supervisor reports (SERVER_TERMINATED: the server took the TI), unless a
    user decided the row's state (``user_acted``).

    Intent: ActivitySubprocess.final_state (its docstring: the final state of the TaskInstance); apache/airflow#66574
    (potiuk: a state the supervisor holds that the server never saw is the bug it fixed).
    """
    if user_acted(scenario) or observation.hung:
        return ()
    if observation.final_state == SERVER_TERMINATED:
        if observation.row_gone is None:
            return (Violation("server_row_agrees_with_final_state",
                              f"final_state is SERVER_TERMINATED but the server still holds the row as {observation.row}"),)
        return ()
    if observation.row_gone is None and observation.row != observation.final_state:
        return (Violation("server_row_agrees_with_final_state",
                          f"final_state is {observation.final_state} but the server row is {observation.row}"),)
    return ()


def no_second_transition(scenario, observation):
    """The supervisor never asks for a transition of a row that has already left RUNNING (no 409), unless the server
    took the TI away or a user moved it (``taken_away``: the supervisor cannot know before it asks).

    Intent: ti_update_state (its 409: a TI not running cannot be updated); task_runner.run (its comment: a 409 for a
    terminal report comes of a bug, #65594); [core] task_success_overtime (the overtime runs after the task is marked
    success, for its auxiliary processes).
    """
    if taken_away(scenario, observation):
        return ()  # every call on a TI the server took away, or a user moved, may be refused
    return tuple(
        Violation("no_second_transition", f"{call} was refused: the row had already left running")
        for call in observation.calls
        if call.name != "heartbeat" and call.status == CONFLICT
    )


def retries_within_budget(scenario, observation):
    """With a server that follows its own rule, no attempt goes UP_FOR_RETRY past max_tries.

    Intent: BaseOperator retries (the number of retries performed before failing the task); tasks.rst (a retry policy
    cannot extend past the configured maximum).
    """
    context = scenario.context
    if not context.consistent or server_should_retry(context.try_number, context.max_tries):
        return ()
    return tuple(
        Violation("retries_within_budget",
                  f"{where} is up_for_retry on try {context.try_number} of max_tries={context.max_tries}")
        for where, state in _recorded(observation, scenario).items()
        if state == UP_FOR_RETRY
    )


def outcome_calls(scenario: Scenario, observation: Observation) -> tuple:
    """The calls that deliver a frame of the runtime's: each frame's own call (``_CALL_OF_FRAME``), and a ``finish``
    carrying the state of a TaskState the supervisor received (not the supervisor's closing report of an exit)."""
    reported = {f.state for f in frames_received(scenario, observation) if f.frame == "TaskState"}
    own = set(_CALL_OF_FRAME.values()) - {"skip_downstream_tasks"}
    return tuple(c for c in observation.calls
                 if c.name in own or (c.name == "finish" and c.state in reported))


def server_terminated_wins(scenario, observation):
    """Once the server says the TI must stop, the attempt ends SERVER_TERMINATED, never retried: a heartbeat answered
    404/409/410, or, after a user moved the TI (``user_acted``), an outcome's call refused with 409 — "the server took
    the task instance away", as apache/airflow#73249 (task-sdk 1.4.0) reads a 409 on an outcome's call.

    Intent: ti_heartbeat (its 409: the task should terminate); _send_heartbeat_if_needed (the server indicated the task
    should not be running any more); Airflow 2 heartbeat_callback (a state set externally terminates the task and
    stays); apache/airflow#73249 (ashb: task-sdk 1.4.0 takes a 409 on an outcome's call as the server having taken
    the task instance away).
    """
    if observation.hung or observation.final_state == SERVER_TERMINATED:
        return ()
    told_to_stop = any(c.name == "heartbeat" and c.status in HEARTBEAT_GONE for c in observation.calls)
    if told_to_stop:
        return (Violation("server_terminated_wins",
                          f"a heartbeat was refused but final_state is {observation.final_state}"),)
    refused = [c for c in outcome_calls(scenario, observation) if c.status == CONFLICT]
    if refused and user_acted(scenario):
        return (Violation("server_terminated_wins",
                          f"{refused[0]} was refused after a user moved the task instance, but final_state is "
                          f"{observation.final_state}"),)
    return ()


def an_attempt_whose_task_ended_ends(scenario, observation):
    """Once the runtime has reported its task's end (a terminal frame the supervisor took), the attempt ends even if
    the process does not exit: ``[core] task_success_overtime`` gives a finished task "maximum possible time" for its
    auxiliary processes, and a deferred or rescheduled task frees its worker slot (the deferral and sensor docs).
    Judged on an attempt whose process never exits (``exit hang``).

    Intent: [core] task_success_overtime (the maximum time a task marked success has for its auxiliary processes);
    deferring.rst (a deferred task no longer occupies a worker slot); sensors.rst (a sensor in reschedule mode takes up
    a worker slot only when it is checking).
    """
    if not observation.hung:
        return ()
    ended = last_terminal_frame(scenario, observation)
    if ended is None:
        return ()  # a task still running: its own execution_timeout is the user's bound, not the supervisor's
    return (Violation("an_attempt_whose_task_ended_ends",
                      f"the task ended ({ended.frame}{' ' + ended.state if ended.state else ''} was taken) but its "
                      f"process never exited and the supervisor never ended it: the attempt never ends"),)


def crash_with_retries_left_ends_up_for_retry(scenario, observation):
    """A try whose process exits non-zero or dies of a signal before any terminal frame the supervisor took, while the
    server said should_retry, is recorded UP_FOR_RETRY: Airflow 2 retried a killed task with retries left
    (apache/airflow#16301, "Fix task retries when they receive sigkill and have retries"), and the reporter of
    apache/airflow#55753 (an OOM kill) expected it to stay so. A TI the server took away is ``server_terminated_wins``'s.

    Intent: Airflow 2 (apache/airflow#16301, ephraimbuddy: the task runner retries tasks when they receive sigkill or
    sigterm); apache/airflow#55767 (amoghrajesh: a task killed by a signal went to FAILED instead of respecting its
    retries, which it fixed).
    """
    if (observation.exit_code in (0, None) or observation.hung or not scenario.context.should_retry
            or last_terminal_frame(scenario, observation) is not None or taken_away(scenario, observation)):
        return ()
    if observation.final_state == UP_FOR_RETRY:
        return ()
    return (Violation("crash_with_retries_left_ends_up_for_retry",
                      f"the process exited {observation.exit_code} with no terminal frame taken, should_retry=true, "
                      f"but final_state is {observation.final_state}"),)


SUPERVISOR_INVARIANTS: tuple[Invariant, ...] = (
    up_for_retry_only_from_retry_frame_or_nonzero_exit_with_should_retry,
    failure_never_recorded_as_success,
    no_task_instance_left_running,
    server_row_agrees_with_final_state,
    no_second_transition,
    retries_within_budget,
    server_terminated_wins,
    an_attempt_whose_task_ended_ends,
    crash_with_retries_left_ends_up_for_retry,
)


def violations(scenario: Scenario, observation: Observation,
               invariants: tuple[Invariant, ...] = SUPERVISOR_INVARIANTS) -> tuple[Violation, ...]:
    """Every violation of ``invariants`` in one observation, in the order the invariants are listed."""
    return tuple(v for check in invariants for v in check(scenario, observation))
