"""Where Airflow says what it means: the source of each invariant's intent, and how sure a finding on it can be.

The model mirrors Airflow's code, bugs included, so that conformance compares like with like; an invariant read off
that same code could not catch what the code gets wrong. Each invariant (``model.invariants``,
``model.runtime_invariants``, ``model.lifecycle``, and the wire invariants the properties of
``properties/test_process_wire.py`` check on real processes) therefore names where Airflow itself states the promise:

- ``documentation``: a page of Airflow's documentation, or a parameter's documented meaning;
- ``option``: an option's description in Airflow's ``config.yml``;
- ``aip-72``: AIP-72, the Task Execution Interface;
- ``maintainer``: what a maintainer wrote on an issue or pull request (its number, who, a short quote);
- ``source-comment``: a comment, docstring or answer text in Airflow's own source that says what the code is for;
- ``unreachable-branch``: a branch no code can reach any more, which states an intent the code no longer keeps;
- ``airflow-2``: Airflow 2's behaviour, where Airflow 3 meant to keep it (and where that was said).

``INTENT`` maps each invariant's name to its ``Intent``: the promise in one sentence, its sources, and where
Airflow's own texts read otherwise, that other reading (the intent is then an open question for the maintainers).
Each invariant's docstring ends with the same sources in words. A finding's confidence is its invariant's
(``Intent.confidence``), unless the finding sets its own (``impl.catalogue.findings.Finding``).

``DELIBERATE_CHANGES`` lists where Airflow 3 changed Airflow 2's behaviour on purpose, with the source that says so,
the invariants that judge such runs, and a run showing the change that those invariants must not flag.

The server's rules (``model.server``) are not promises but Airflow's as it is, checked request by request against
the real Execution API (``properties/test_server_conformance.py``); what the design asks of the server shows in the
invariants above (no transition of a row that left RUNNING, no retry past the budget).
"""

from __future__ import annotations

import attrs

#: What a source is (see the module's docstring).
SOURCE_KINDS = ("documentation", "option", "aip-72", "maintainer", "source-comment", "unreachable-branch", "airflow-2")

#: How sure a finding is, one of three, never mixed.
DOCUMENTED = "contradicts Airflow's documented intent"
AIRFLOW_2 = "differs from Airflow 2 behaviour that was meant to stay"
OPEN_QUESTION = "open question for the maintainers"
CONFIDENCES = (DOCUMENTED, AIRFLOW_2, OPEN_QUESTION)
#: Each confidence's short word, as data writes it (a corpus report's ``confidence = "documented"``).
CONFIDENCE_WORDS = {"documented": DOCUMENTED, "airflow-2": AIRFLOW_2, "open-question": OPEN_QUESTION}

#: The invariant families (``FAMILIES``' keys) and the module or property file that holds each one's invariants.
FAMILIES = {
    "supervisor": "model.invariants.SUPERVISOR_INVARIANTS",
    "runtime": "model.runtime_invariants.RUNTIME_INVARIANTS",
    "coordinator": "model.runtime_invariants.COORDINATOR_INVARIANTS",
    "lifecycle": "model.lifecycle.LIFECYCLE_INVARIANTS",
    "wire": "properties/test_process_wire.py",
}

_AIRFLOW = "https://github.com/apache/airflow"
_DOCS = "https://airflow.apache.org/docs/apache-airflow/stable"
_SDK_DOCS = "https://airflow.apache.org/docs/task-sdk/stable"
_TASK_RUNNER = f"{_AIRFLOW}/blob/main/task-sdk/src/airflow/sdk/execution_time/task_runner.py"
_SUPERVISOR = f"{_AIRFLOW}/blob/main/task-sdk/src/airflow/sdk/execution_time/supervisor.py"
_COMMS = f"{_AIRFLOW}/blob/main/task-sdk/src/airflow/sdk/execution_time/comms.py"
_ROUTES = f"{_AIRFLOW}/blob/main/airflow-core/src/airflow/api_fastapi/execution_api/routes/task_instances.py"
_AIRFLOW_2_TI = f"{_AIRFLOW}/blob/v2-10-stable/airflow/models/taskinstance.py"


@attrs.frozen
class Source:
    """One place where Airflow states an intent."""

    #: What it is: one of ``SOURCE_KINDS``.
    kind: str = attrs.field(validator=attrs.validators.in_(SOURCE_KINDS))
    #: The short name an invariant's docstring uses for it (``apache/airflow#66574``, ``tasks.rst``).
    cite: str
    #: Where, in full: who, for a maintainer; the function, for a comment or a branch.
    reference: str
    #: A short quote of what it says.
    quote: str
    #: Where a reader finds it.
    url: str

    def to_text(self) -> str:
        return f'{self.reference}: "{self.quote}"'


def _pr(number: int, who: str, quote: str, what: str = "") -> Source:
    """A maintainer's statement on apache/airflow's pull request or issue ``number``."""
    said = f"{who}, {what}" if what else who
    return Source("maintainer", f"apache/airflow#{number}", f"apache/airflow#{number} ({said})", quote,
                  f"{_AIRFLOW}/issues/{number}")


@attrs.frozen
class Intent:
    """What one invariant promises and why Airflow means it. Its confidence is an open question exactly when it is
    contested or has no source; Airflow 2's behaviour meant to stay only when it names that behaviour; documented
    intent only when it has a source other than that."""

    #: The invariant's family: a key of ``FAMILIES``.
    family: str = attrs.field(validator=attrs.validators.in_(tuple(FAMILIES)))
    #: The invariant in one sentence.
    promise: str
    #: Where Airflow states it (none: no source was found).
    sources: tuple[Source, ...]
    #: How sure a violation of it is: one of ``CONFIDENCES``.
    confidence: str = attrs.field(default=DOCUMENTED, validator=attrs.validators.in_(CONFIDENCES))
    #: Where Airflow's own texts read otherwise.
    contested_by: tuple[Source, ...] = ()
    #: What a reader needs besides: a case the sources leave open, a report upstream.
    note: str = ""

    def __attrs_post_init__(self):
        kinds = {s.kind for s in self.sources}
        if (self.confidence == OPEN_QUESTION) != (bool(self.contested_by) or not self.sources):
            raise ValueError("an intent is an open question exactly when it is contested or has no source")
        if self.confidence == AIRFLOW_2 and "airflow-2" not in kinds:
            raise ValueError("an intent resting on Airflow 2's behaviour names that behaviour as a source")
        if self.confidence == DOCUMENTED and not kinds - {"airflow-2"}:
            raise ValueError("documented intent needs a source other than Airflow 2's behaviour")


@attrs.frozen
class DeliberateChange:
    """Where Airflow 3 changed Airflow 2's behaviour on purpose, which the checker must not flag."""

    #: The change in one sentence.
    what: str
    #: What Airflow 2 did.
    airflow_2: str
    #: What Airflow 3 does instead.
    airflow_3: str
    #: Where the change was decided.
    sources: tuple[Source, ...]
    #: The invariants that judge such runs.
    judged_by: tuple[str, ...]
    #: How they accommodate the change.
    how: str
    #: The run language of ``run``: ``supervisor``, ``runtime`` or ``lifecycle``.
    language: str = attrs.field(validator=attrs.validators.in_(("supervisor", "runtime", "lifecycle")))
    #: A run showing the change, which none of ``judged_by`` may flag on the model.
    run: str


# -- the sources, each once ------------------------------------------------------------------------------------

TASK_STATES = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Task Instances'",
    "up_for_retry: The task failed, but has retry attempts left and will be rescheduled.",
    f"{_DOCS}/core-concepts/tasks.html#task-instances")
SUCCESS_STATE = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Task Instances'",
    "success: The task finished running without errors",
    f"{_DOCS}/core-concepts/tasks.html#task-instances")
FAILED_STATE = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Task Instances'",
    "failed: The task had an error during execution and failed to run",
    f"{_DOCS}/core-concepts/tasks.html#task-instances")
SPECIAL_EXCEPTIONS = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Special Exceptions'",
    "AirflowFailException will mark the current task as failed ignoring any remaining retry attempts",
    f"{_DOCS}/core-concepts/tasks.html#special-exceptions")
SENSOR_TIMEOUT = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Timeouts'",
    "If timeout is breached, AirflowSensorTimeout will be raised and the sensor fails immediately without retrying.",
    f"{_DOCS}/core-concepts/tasks.html#timeouts")
RETRY_POLICY_BOUND = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Retry Policies'",
    "The retry is still subject to the task's retries count -- a policy can fail earlier but cannot extend past the "
    "configured maximum.",
    f"{_DOCS}/core-concepts/tasks.html#retry-policies")
RETRY_POLICY_FAIL = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Retry Policies'",
    "FAIL -- fail immediately, skipping any remaining retries.",
    f"{_DOCS}/core-concepts/tasks.html#retry-policies")
WORKER_LOST = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Task Instance Heartbeat Timeout'",
    "TaskInstances may get stuck in a running state despite their associated jobs being inactive [...] Airflow will "
    "find these periodically, clean them up, and mark the TaskInstance as failed or retry it if it has available "
    "retries.",
    f"{_DOCS}/core-concepts/tasks.html#task-instance-heartbeat-timeout")
HEARTBEAT_TIMEOUT_OPTION = Source(
    "option", "[scheduler] task_instance_heartbeat_timeout", "config.yml, [scheduler] task_instance_heartbeat_timeout",
    "If the job has not heartbeat in this many seconds, the scheduler will mark the associated task instance as "
    "failed and will re-schedule the task.",
    f"{_DOCS}/configurations-ref.html#task-instance-heartbeat-timeout")
RETRIES_PARAMETER = Source(
    "documentation", "BaseOperator retries",
    "Task SDK reference, BaseOperator, parameter retries",
    "the number of retries that should be performed before failing the task",
    f"{_SDK_DOCS}/api.html#airflow.sdk.BaseOperator")
TASK_SUCCESS_OVERTIME = Source(
    "option", "[core] task_success_overtime", "config.yml, [core] task_success_overtime",
    "Maximum possible time (in seconds) that task will have for execution of auxiliary processes (like listeners, "
    "mini scheduler...) after task is marked as success.",
    f"{_DOCS}/configurations-ref.html#task-success-overtime")
DEFERRAL_FREES_THE_WORKER = Source(
    "documentation", "deferring.rst", "Airflow documentation, Authoring and Scheduling, Deferrable Operators & Triggers",
    "During the deferred phase of execution, since work has been offloaded to the triggerer, the task no longer "
    "occupies a worker slot", f"{_DOCS}/authoring-and-scheduling/deferring.html")
RESCHEDULE_FREES_THE_SLOT = Source(
    "documentation", "sensors.rst", "Airflow documentation, Core Concepts, Sensors",
    "reschedule: The Sensor takes up a worker slot only when it is checking, and sleeps for a set duration between "
    "checks", f"{_DOCS}/core-concepts/sensors.html")
RETRY_DELAY_PARAMETER = Source(
    "documentation", "BaseOperator retry_delay", "Task SDK reference, BaseOperator, parameter retry_delay",
    "delay between retries, can be set as timedelta or float seconds, which will be converted into timedelta",
    f"{_SDK_DOCS}/api.html#airflow.sdk.BaseOperator")
PROTOCOL_ANSWERS = Source(
    "documentation", "comms.py", "task-sdk execution_time/comms.py, the protocol's description (module docstring)",
    "Every request returns a response, even if the frame is otherwise empty.", _COMMS)
PROTOCOL_FRAMES = Source(
    "documentation", "comms.py", "task-sdk execution_time/comms.py, the protocol's description (module docstring)",
    "All communication is done over the subprocesses stdin in the form of a binary length-prefixed msgpack frame "
    "(4 byte, big-endian length, followed by the msgpack-encoded _RequestFrame.)", _COMMS)

STUCK_RUNNING = _pr(66574, "potiuk", "leaving the TaskInstance stuck RUNNING on the server forever, blocking "
                    "downstream dependencies and triggering false alerts", "merged")
SILENT_SUCCESS = _pr(66573, "potiuk", "A genuine task FAILURE was silently being upgraded to SUCCESS on transient IPC "
                     "failures, breaking downstream pipeline correctness without any signal.", "merged")
FAIL_CLOSED = _pr(66573, "potiuk", "Exit non-zero from the finally block when the terminal state is anything other "
                  "than SUCCESS, so the supervisor's final_state correctly classifies as FAILED (or UP_FOR_RETRY when "
                  "retries are configured).", "merged")
RETRY_ONLY_FROM = _pr(67797, "jason810496", "UP_FOR_RETRY is reachable only via a distinct RetryTask message, or a "
                      "non-zero exit combined with should_retry")
NEVER_RETRIED = _pr(67797, "jason810496", "a TaskInstance with retries configured is recorded FAILED and never "
                    "retried")
CLEAR_RESETS_RETRIES = _pr(73889, "amoghrajesh", "Clear retry policy state when a TI is cleared",
                           "its title, merged with kaxil's review")
SDK_SOURCE_OF_TRUTH = _pr(67797, "jason810496", "task-sdk/src/airflow/sdk/execution_time/task_runner.py is the "
                          "source of truth for SDK behavior.")
RETRY_ELIGIBILITY = _pr(47996, "uranusjr", "If the task is eligible for retry, the next state is set to UP_FOR_RETRY; "
                        "otherwise it's FAILED.", "merged")
RETRY_EAGERLY = _pr(47996, "uranusjr", "we calculate it eagerly and pass it to the runner, instead of lazily only "
                    "after the task has failed", "merged")
SIGNAL_KILLED_RETRIES = _pr(55767, "amoghrajesh", "When tasks are killed by system signals (SIGKILL for OOM, SIGTERM "
                            "for worker restarts), they immediately go to FAILED state instead of respecting the task "
                            "retries set", "merged")
EXISTING_RUN_NEVER_RETRIES = _pr(65390, "SamWheating", "In the case that a conflicting DAGRun exists, we should never "
                                 "be retrying (since this will just re-fail)", "merged")
CONFLICT_MEANS_TAKEN_AWAY = _pr(73249, "ashb, reviewed by kaxil; task-sdk 1.4.0 holds SERVER_TERMINATED on a 409 "
                               "to an outcome's call", "Separate task outcomes from report delivery in TaskSDK "
                               "Supervisor")
TRY_IDENTITY = _pr(73554, "ashb", "An attempt has a UUID A and try number N: (A,N). [...] We want to always allocate "
                   "both fields together, archiving (A,N) before creating (B,N+1).")
TERMINATION_NOT_IGNORED = Source(
    "airflow-2", "apache/airflow#37613",
    "apache/airflow#37613 (hterik, approved by potiuk; Airflow 2.9: the SIGTERM handler raises AirflowTaskTerminated, "
    "a BaseException)", "termination requests should not be ignored", f"{_AIRFLOW}/issues/37613")

FINAL_STATE_IS_THE_TIS = Source(
    "source-comment", "ActivitySubprocess.final_state",
    "task-sdk supervisor.py, ActivitySubprocess.final_state (its docstring)",
    "The final state of the TaskInstance.", _SUPERVISOR)
FINISH_REPORTS_THE_REST = Source(
    "source-comment", "update_task_state_if_needed",
    "task-sdk supervisor.py, ActivitySubprocess.update_task_state_if_needed (its comment)",
    "If the process has finished a non-directly-patched state (e.g. FAILED, UP_FOR_RETRY without RetryTask), "
    "`finish()` is the dedicated endpoint for those transitions.", _SUPERVISOR)
ALWAYS_EXIT = Source(
    "source-comment", "_cleanup_open_sockets",
    "task-sdk supervisor.py, ActivitySubprocess._cleanup_open_sockets (its comment)",
    "Without closing these sockets the supervisor would wait forever thinking they are still active. This cleanup "
    "ensures we always release resources and exit.", _SUPERVISOR)
SERVER_SAYS_STOP = Source(
    "source-comment", "ti_heartbeat", "apache-airflow-core Execution API, routes/task_instances.py, ti_heartbeat "
    "(its 409 answer)", "TI is no longer in the running state and task should terminate", _ROUTES)
SUPERVISOR_STOPS = Source(
    "source-comment", "_send_heartbeat_if_needed",
    "task-sdk supervisor.py, ActivitySubprocess._send_heartbeat_if_needed (on 404, 409, 410)",
    "Server indicated the task shouldn't be running anymore", _SUPERVISOR)
NOT_RUNNING_CANNOT_BE_UPDATED = Source(
    "source-comment", "ti_update_state", "apache-airflow-core Execution API, routes/task_instances.py, "
    "ti_update_state (its 409 answer)", "TI was not in the running state so it cannot be updated", _ROUTES)
CONFLICT_IS_A_BUG = Source(
    "source-comment", "task_runner.run",
    "task-sdk task_runner.py, run (its comment on a refused terminal-state report)",
    "the server already moved the TI to a terminal state and returns 409 - for example due to issue fixed by #65594",
    _TASK_RUNNER)
EXIT_0_IS_SUCCESS = Source(
    "source-comment", "task_runner.run", "task-sdk task_runner.py, run (its comment on the fail-closed exit)",
    "exiting 0 would let the supervisor's final_state property default to SUCCESS (exit_code == 0 with no "
    "_terminal_state set), turning a real failure into a silent data-quality bug", _TASK_RUNNER)
OTHERS_NEED_A_FIX = Source(
    "source-comment", "task_runner.run", "task-sdk task_runner.py, run (its comment on the fail-closed exit)",
    "SKIPPED / UP_FOR_RESCHEDULE / DEFERRED are intentionally not fail-closed: supervisor's final_state would "
    "misclassify them too [...] Those need a separate fix in supervisor's final_state.", _TASK_RUNNER)
POLICY_FALLS_BACK = Source(
    "source-comment", "_evaluate_retry_policy",
    "task-sdk task_runner.py, _evaluate_retry_policy (what it logs when the policy raises)",
    "Retry policy evaluation failed, falling back to default behaviour", _TASK_RUNNER)
RETRY_DECISION_DELAY = Source(
    "source-comment", "RetryDecision.retry_delay",
    "task-sdk definitions/retry_policy.py, RetryDecision.retry_delay (its annotation and docstring)",
    "retry_delay: timedelta | None = None [...] Override delay for this specific retry.",
    f"{_AIRFLOW}/blob/main/task-sdk/src/airflow/sdk/definitions/retry_policy.py")
SYSTEM_EXIT_RETRIED = Source(
    "source-comment", "_run_task_and_map_outcome",
    "task-sdk task_runner.py, _run_task_and_map_outcome (its except SystemExit, apache/airflow#45282, amoghrajesh)",
    "SystemExit needs to be retried if they are eligible.", _TASK_RUNNER)
TERMINATED_FAILS = Source(
    "unreachable-branch", "except AirflowTaskTerminated",
    "task-sdk task_runner.py, _run_task_and_map_outcome, except AirflowTaskTerminated (nothing in the task SDK raises "
    "it: the raise was dropped when the SIGTERM handler was ported, apache/airflow#73395)",
    "External state updates are already handled with `ti_heartbeat` [...] these exceptions should ideally never be "
    "thrown. If these are thrown, we should mark the TI state as failed.", _TASK_RUNNER)

AIRFLOW_2_SIGTERM = Source(
    "airflow-2", "Airflow 2 signal_handler",
    "Airflow 2 taskinstance.py, TaskInstance._execute_task_with_callbacks, signal_handler (SIGTERM while the task "
    "runs; its except clause, which task-sdk's _run_task_and_map_outcome keeps, shows Airflow 3 meant to keep it)",
    "self.log.error(\"Received SIGTERM. Terminating subprocesses.\") / self.task.on_kill() / raise "
    "AirflowException(\"Task received SIGTERM signal\")", _AIRFLOW_2_TI)
AIRFLOW_2_FORKED_CHILD = Source(
    "airflow-2", "Airflow 2 signal_handler",
    "Airflow 2 taskinstance.py, TaskInstance._execute_task_with_callbacks, signal_handler (in a process the task "
    "forked; task-sdk's _on_term keeps the same pid check, and returns instead)",
    "If a task forks during execution (from DAG code) for whatever reason, we want to make sure that we react to the "
    "signal only in the process that we've spawned ourselves [...] if pid != parent_pid: os._exit(1)", _AIRFLOW_2_TI)
KILL_REACHES_THE_TREE = Source(
    "source-comment", "WatchedSubprocess.start",
    "task-sdk supervisor.py, WatchedSubprocess.start (its comment on the task runner's own process group, "
    "apache/airflow#65505)",
    "The supervisor can then deliver signals to the whole tree via os.killpg(), reaching every subprocess the "
    "task-runner spawned [...] Without this, a SIGTERM from kill() only hits the task-runner and any Popen children are "
    "reparented to PID 1 and leak as orphans.", _SUPERVISOR)
ON_KILL_CLEANS_UP = Source(
    "documentation", "BaseOperator.on_kill", "Task SDK reference, BaseOperator.on_kill",
    "Any use of the threading, subprocess or multiprocessing module within an operator needs to be cleaned up, or it "
    "will leave ghost processes behind.", f"{_SDK_DOCS}/api.html#airflow.sdk.BaseOperator.on_kill")
WARM_SHUTDOWN = _pr(69034, "arkadiuszbach", "That is wrong for a graceful pod shutdown (spot interruption, scale-down, "
                   "rolling update). [...] this destroys in-flight work we want to let finish.", "merged")
ON_KILL_ON_SIGTERM = _pr(53718, "gopidesupavan", "When task killed externally the task process getting terminated "
                         "immediately and no way to trigger on_kill functionality.", "merged, closes #51005")
ON_KILL_PURPOSE = Source(
    "documentation", "BaseOperator.on_kill", "Task SDK reference, BaseOperator.on_kill",
    "Override this method to clean up subprocesses when a task instance gets killed.",
    f"{_SDK_DOCS}/api.html#airflow.sdk.BaseOperator.on_kill")
NOT_RUN_IS_RESCHEDULED = _pr(59604, "Lee-W", "Since the task has not actually run, Airflow should reschedule it "
                             "intelligently without counting against the task's retry limit.", "merged")
AIRFLOW_2_KILLED_RETRIES = Source(
    "airflow-2", "apache/airflow#16301",
    "apache/airflow#16301 (ephraimbuddy, merged into Airflow 2.1: 'Fix task retries when they receive sigkill and have "
    "retries'; its test's docstring)", "Test that ensures that task runner retries tasks when they receive sigkill or "
    "sigterm", f"{_AIRFLOW}/issues/16301")
AIRFLOW_2_CLEAN_EXIT = Source(
    "airflow-2", "Airflow 2 _execute_callable",
    "Airflow 2 taskinstance.py, _execute_task._execute_callable (apache/airflow#36986: hussein-awala 'I wonder if we "
    "should exclude the exit code 0 and set the state to success', potiuk 'yep')",
    "except SystemExit as e: # Handle only successful cases here. [...] if e.code is not None and e.code != 0: raise; "
    "return None", _AIRFLOW_2_TI)
CALLBACKS_DOCUMENTED = Source(
    "documentation", "callbacks.rst", "Airflow documentation, Callbacks (logging-monitoring/callbacks.rst)",
    "on_success_callback: Invoked when the task succeeds [...] on_failure_callback: Invoked when the task fails [...] "
    "on_retry_callback: Invoked when the task is up for retry",
    f"{_DOCS}/administration-and-deployment/logging-monitoring/callbacks.html")
CALLBACKS_MUST_RUN = _pr(66573, "kaxil, reviewing", "on_failure_callback, the on_task_instance_failed listener hook, "
                         "and email_on_failure no longer run [...] trades one silent correctness bug (FAILED -> "
                         "SUCCESS) for another (user callbacks/listeners/emails silently dropped)", "merged")
KILLED_TASKS_CALLBACKS = _pr(53058, "its author", "users have no way of knowing this happened", "merged")
SYSTEM_EXIT_PORTED = _pr(45282, "amoghrajesh", "The aim of this PR is to extend to the \"SystemExit\" exception if "
                         "thrown by tasks.", "merged; measured against legacy behaviour with exit(10) only")
AIRFLOW_2_TERMINATED_RETRIES = Source(
    "airflow-2", "Airflow 2 _run_raw_task",
    "Airflow 2 taskinstance.py, _run_raw_task: AirflowTaskTerminated goes to handle_failure without force_fail",
    "except (AirflowTaskTimeout, AirflowException, AirflowTaskTerminated) as e: [...] ti.handle_failure(e, test_mode, "
    "context, session=session)", _AIRFLOW_2_TI)
AIRFLOW_2_EXTERNAL_STATE = Source(
    "airflow-2", "Airflow 2 heartbeat_callback",
    "Airflow 2 local_task_job_runner.py, LocalTaskJobRunner.heartbeat_callback (a TI whose state was changed while it "
    "ran is terminated, the state left as set)",
    "State of this instance has been externally set to %s. Terminating instance.",
    f"{_AIRFLOW}/blob/v2-10-stable/airflow/jobs/local_task_job_runner.py")
AIRFLOW_2_RETRIES_BY_DEFAULT = Source(
    "documentation", "tasks.rst", "Airflow documentation, Core Concepts, Tasks, 'Retry Policies'",
    "By default, Airflow retries failed tasks with a fixed count and delay regardless of the error type.",
    f"{_DOCS}/core-concepts/tasks.html#retry-policies")


# -- every invariant's intent ----------------------------------------------------------------------------------

INTENT: dict[str, Intent] = {
    # supervisor (model.invariants)
    "up_for_retry_only_from_retry_frame_or_nonzero_exit_with_should_retry": Intent(
        "supervisor",
        "An attempt is recorded UP_FOR_RETRY only after a RetryTask frame, or after a non-zero exit while the server "
        "said should_retry.",
        (RETRY_ONLY_FROM, TASK_STATES)),
    "failure_never_recorded_as_success": Intent(
        "supervisor",
        "An attempt whose runtime reported a failure is never recorded SUCCESS, by the supervisor or on the server.",
        (SILENT_SUCCESS, SUCCESS_STATE)),
    "no_task_instance_left_running": Intent(
        "supervisor",
        "Once the attempt is over the server row is not RUNNING, unless the server itself took the task instance away.",
        (STUCK_RUNNING, FINISH_REPORTS_THE_REST)),
    "server_row_agrees_with_final_state": Intent(
        "supervisor",
        "The server row ends in the state the supervisor reports as the attempt's final state.",
        (FINAL_STATE_IS_THE_TIS, STUCK_RUNNING)),
    "no_second_transition": Intent(
        "supervisor",
        "The supervisor never asks to move a row that has already left RUNNING: no call of its is refused 409.",
        (NOT_RUNNING_CANNOT_BE_UPDATED, CONFLICT_IS_A_BUG, TASK_SUCCESS_OVERTIME)),
    "retries_within_budget": Intent(
        "supervisor",
        "With a server that follows its own retry rule, no attempt goes UP_FOR_RETRY past max_tries.",
        (RETRIES_PARAMETER, RETRY_POLICY_BOUND)),
    "server_terminated_wins": Intent(
        "supervisor",
        "Once the server says the task instance must stop (a heartbeat answered 404, 409 or 410; an outcome's call "
        "refused 409 after a user moved it), the attempt ends SERVER_TERMINATED, never retried nor reported "
        "otherwise.",
        (SERVER_SAYS_STOP, SUPERVISOR_STOPS, AIRFLOW_2_EXTERNAL_STATE, CONFLICT_MEANS_TAKEN_AWAY)),
    "crash_with_retries_left_ends_up_for_retry": Intent(
        "supervisor",
        "A task whose process exits non-zero or dies of a signal before it reported its end, while should_retry, is "
        "recorded UP_FOR_RETRY.",
        (AIRFLOW_2_KILLED_RETRIES, SIGNAL_KILLED_RETRIES),
        confidence=AIRFLOW_2),
    "an_attempt_whose_task_ended_ends": Intent(
        "supervisor",
        "Once the runtime has reported its task's end, the attempt ends even if the process does not exit.",
        (TASK_SUCCESS_OVERTIME, DEFERRAL_FREES_THE_WORKER, RESCHEDULE_FREES_THE_SLOT)),
    # runtime (model.runtime_invariants.RUNTIME_INVARIANTS)
    "failure_answered_with_retry_exactly_when_should_retry": Intent(
        "runtime",
        "A failure is answered with RetryTask exactly when should_retry, no retry policy says FAIL, and the exception "
        "is not one that never retries.",
        (RETRY_ELIGIBILITY, RETRY_POLICY_FAIL, SYSTEM_EXIT_RETRIED),
        note="Which exits are failures is taken as task-sdk has it: SystemExit(0) is one (its except SystemExit "
             "retries every code). Airflow 2 made sys.exit(0) and sys.exit() a success (apache/airflow#36986, "
             "taskinstance._execute_callable) and task-sdk's port (apache/airflow#45282) tested only a non-zero code, "
             "so whether a clean sys.exit() should now fail the task is an open question for the maintainers; no "
             "invariant here decides it."),
    "fail_exception_never_retries": Intent(
        "runtime",
        "AirflowFailException, AirflowSensorTimeout and AirflowTaskTerminated, and a DAG run to trigger that exists "
        "already, never ask for a retry.",
        (SPECIAL_EXCEPTIONS, SENSOR_TIMEOUT, TERMINATED_FAILS, EXISTING_RUN_NEVER_RETRIES)),
    "failure_never_exits_0_without_terminal_frame": Intent(
        "runtime",
        "A failed try never exits 0 unless its terminal frame got through.",
        (EXIT_0_IS_SUCCESS, SILENT_SUCCESS)),
    "non_success_never_recorded_success": Intent(
        "runtime",
        "A try the runtime decided is not a success is never recorded SUCCESS by the supervisor.",
        (OTHERS_NEED_A_FIX, SILENT_SUCCESS)),
    "failed_decision_never_recorded_up_for_retry": Intent(
        "runtime",
        "A try the runtime decided FAILED (no retry) is never recorded UP_FOR_RETRY by the supervisor.",
        (SPECIAL_EXCEPTIONS, RETRY_POLICY_FAIL)),
    "sigterm_never_ends_in_success": Intent(
        "runtime",
        "A try whose task gets SIGTERM while execute runs is never decided SUCCESS.",
        (AIRFLOW_2_SIGTERM, TERMINATION_NOT_IGNORED, TERMINATED_FAILS),
        confidence=OPEN_QUESTION,
        contested_by=(WARM_SHUTDOWN,),
        note="Reported upstream as apache/airflow#73006 and #71202 (KubernetesPodOperator tasks whose pod on_kill "
             "deleted are committed SUCCESS), with a fix proposed in apache/airflow#73395 (open). apache/airflow#69034 "
             "stops the supervisor forwarding a graceful shutdown's SIGTERM so that in-flight work may finish; a "
             "SIGTERM that still reaches the task runs its on_kill, which undoes the work. Whether the failure may "
             "retry is left open too: Airflow 2 retried it (handle_failure), the unreachable branch says FAILED."),
    "sigterm_calls_on_kill_once": Intent(
        "runtime",
        "A try whose task gets SIGTERM while execute runs has its on_kill called, once.",
        (ON_KILL_PURPOSE, ON_KILL_ON_SIGTERM)),
    "sys_exit_without_an_error_code_succeeds": Intent(
        "runtime",
        "A task that ends by sys.exit() or sys.exit(0) succeeds.",
        (AIRFLOW_2_CLEAN_EXIT, SYSTEM_EXIT_PORTED),
        confidence=OPEN_QUESTION,
        contested_by=(SYSTEM_EXIT_RETRIED,),
        note="Airflow 2 settled it in apache/airflow#36986's review (a code that is None or 0 is success); the task "
             "runner's except SystemExit (\"SystemExit needs to be retried if they are eligible\") came with "
             "apache/airflow#45282, which compared itself with Airflow 2 on exit(10) only. Whether a clean exit was "
             "meant to fail is for the maintainers to say."),
    "recorded_state_runs_its_callback_once": Intent(
        "runtime",
        "The state-change callback that the recorded state calls for runs, once, and no other.",
        (CALLBACKS_DOCUMENTED, CALLBACKS_MUST_RUN, KILLED_TASKS_CALLBACKS)),
    "forked_child_stops_on_sigterm": Intent(
        "runtime",
        "A process the task forked does not carry on after the SIGTERM that stops the task.",
        (KILL_REACHES_THE_TREE, ON_KILL_CLEANS_UP, AIRFLOW_2_FORKED_CHILD),
        confidence=OPEN_QUESTION,
        contested_by=(WARM_SHUTDOWN,),
        note="A graceful shutdown's SIGTERM reaches every process of the pod, a child the task forked included, and "
             "apache/airflow#69034 means in-flight work to finish then; the supervisor's own kill is meant to stop "
             "the whole tree. task-sdk's _on_term keeps Airflow 2's check that a signal is the runner's own process's (pid != "
             "parent_pid) but returns there instead of exiting, so a forked child that inherited it shrugs the "
             "signal off: the kill the supervisor sends to the whole process group since apache/airflow#65505 does "
             "not stop it."),
    "try_that_never_ran_is_not_failed": Intent(
        "runtime",
        "A try whose DAG is not found at startup asks to be rescheduled instead of failing: its task has not run.",
        (NOT_RUN_IS_RESCHEDULED,),
        note="Where the RescheduleTask cannot be sent (the channel broke), the runner exits 1 and the supervisor "
             "records FAILED, or UP_FOR_RETRY with retries left, counting against the retry limit; this invariant "
             "judges the runner's request, not that record."),
    # coordinator (model.runtime_invariants.COORDINATOR_INVARIANTS)
    "failure_with_retries_left_ends_up_for_retry": Intent(
        "coordinator",
        "A failing coordinator task whose try may retry, once the supervisor took its terminal frame, is recorded "
        "UP_FOR_RETRY.",
        (NEVER_RETRIED, TASK_STATES)),
    "failure_without_retries_ends_failed": Intent(
        "coordinator",
        "A failing coordinator task whose try may not retry, once the supervisor took its terminal frame, is recorded "
        "FAILED.",
        (RETRY_ELIGIBILITY, RETRIES_PARAMETER)),
    "failure_not_taken_fails_closed": Intent(
        "coordinator",
        "A failing coordinator task whose terminal frame the supervisor did not take never exits 0.",
        (FAIL_CLOSED, EXIT_0_IS_SUCCESS, SDK_SOURCE_OF_TRUTH)),
    # lifecycle (model.lifecycle)
    "tries_within_budget": Intent(
        "lifecycle",
        "A task instance is tried no more than its retries plus one times, counted again from a user's clear.",
        (RETRIES_PARAMETER, RETRY_POLICY_BOUND, CLEAR_RESETS_RETRIES)),
    "last_failing_try_ends_failed": Intent(
        "lifecycle",
        "A failing try (a try whose worker host was lost among them) with no retries left ends FAILED, never "
        "UP_FOR_RETRY.",
        (RETRIES_PARAMETER, FAILED_STATE, WORKER_LOST, HEARTBEAT_TIMEOUT_OPTION)),
    "failing_try_with_retries_left_ends_up_for_retry": Intent(
        "lifecycle",
        "A failing try (a try whose worker host was lost among them) with retries left ends UP_FOR_RETRY, so the task "
        "instance is tried again.",
        (TASK_STATES, NEVER_RETRIED, SIGNAL_KILLED_RETRIES, WORKER_LOST, HEARTBEAT_TIMEOUT_OPTION)),
    "no_try_leaves_row_running": Intent(
        "lifecycle",
        "No try leaves the task instance's row RUNNING, unless the server took the task instance away.",
        (STUCK_RUNNING, FINISH_REPORTS_THE_REST)),
    "try_count_matches_attempts": Intent(
        "lifecycle",
        "Tries are numbered 1, 2, ... and the row's try number counts the tries made; a try that ends UP_FOR_RETRY "
        "leaves the next one queued.",
        (TRY_IDENTITY, TASK_STATES)),
    # wire (properties/test_process_wire.py)
    "malformed_frame_still_ends_the_attempt": Intent(
        "wire",
        "A request frame the supervisor cannot decode does not end its supervision: the attempt still gets a final "
        "state, reported to the server.",
        (ALWAYS_EXIT, STUCK_RUNNING)),
    "every_request_is_answered": Intent(
        "wire",
        "Every request frame gets a response frame, an error one when its body cannot be validated.",
        (PROTOCOL_ANSWERS,)),
    "frame_length_is_bounded": Intent(
        "wire",
        "The supervisor bounds what it allocates for a frame before it reads the frame.",
        (),
        confidence=OPEN_QUESTION,
        contested_by=(PROTOCOL_FRAMES,),
        note="No Airflow text bounds a frame: the reading that a supervisor should not trust a length prefix from the "
             "task process is this project's, not Airflow's; the protocol's description gives a 4-byte length and no "
             "limit."),
    "servers_closed_when_wait_raises": Intent(
        "wire",
        "The supervisor closes its listening sockets however wait() ends, raising included.",
        (ALWAYS_EXIT,)),
    "answer_the_runtime_cannot_take_still_ends_the_attempt": Intent(
        "wire",
        "An answer the task process can no longer take does not keep wait() from returning once the process exited.",
        (ALWAYS_EXIT,)),
}


DELIBERATE_CHANGES: tuple[DeliberateChange, ...] = (
    DeliberateChange(
        "AirflowTaskTerminated fails the task without a retry.",
        "AirflowTaskTerminated (raised by the SIGTERM handler) went to handle_failure, which retried a task with "
        "retries left.",
        "_run_task_and_map_outcome answers it with TaskState(failed), as AirflowFailException: the server's heartbeat "
        "already stops a task whose state was changed, so the exception is not expected at all.",
        (TERMINATED_FAILS, AIRFLOW_2_TERMINATED_RETRIES),
        ("fail_exception_never_retries", "failure_answered_with_retry_exactly_when_should_retry"),
        "both count AirflowTaskTerminated among the exceptions that never retry",
        "runtime",
        "try_number=1 max_tries=1 should_retry=true; task raises AirflowTaskTerminated; policy none; comms ok"),
    DeliberateChange(
        "Whether a failure may retry is decided by the server when the try starts (should_retry), not when it fails.",
        "handle_failure asked the database whether the task instance was eligible to retry once the task had failed.",
        "ti_run computes should_retry (max_tries != 0 and try_number <= max_tries) into the run context; the runner "
        "and the supervisor decide from it.",
        (RETRY_EAGERLY,),
        ("failure_answered_with_retry_exactly_when_should_retry", "retries_within_budget",
         "up_for_retry_only_from_retry_frame_or_nonzero_exit_with_should_retry"),
        "they judge by the should_retry the try was started with; retries_within_budget holds only a server that "
        "follows its own rule to the budget, so a should_retry handed out otherwise is not flagged",
        "supervisor",
        "try_number=2 max_tries=1 should_retry=true; send RetryTask; exit 0"),
    DeliberateChange(
        "A retry policy may fail a task that has retries left.",
        "Every failure of a task with retries left was retried, whatever the error.",
        "A task's retry_policy (AIP-105, task-sdk 1.3.0) may answer FAIL: the task fails at once, skipping its "
        "remaining retries.",
        (RETRY_POLICY_FAIL, AIRFLOW_2_RETRIES_BY_DEFAULT),
        ("failure_answered_with_retry_exactly_when_should_retry", "failing_try_with_retries_left_ends_up_for_retry"),
        "a policy's FAIL makes the failure one that is not to be retried (model.runtime_invariants.retry_expected, "
        "model.lifecycle.Try.retryable_failure)",
        "lifecycle",
        "retries=1 | task raises ValueError; policy fail; comms ok"),
)
