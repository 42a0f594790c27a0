"""Target ``airflow-task-runner``: the pinned task runner's real ``main`` on one generated try.

Nothing of the runtime is re-implemented. The real ``task_runner.main`` runs: ``startup``,
``run`` (``_run_task_and_map_outcome``, the failure handlers, the retry policy, the terminal
send and its fail-closed flag), ``finalize``, and the ``sys.exit`` it chooses. Only the edges
are stood in for:

- the supervisor channel (``SUPERVISOR_COMMS``, made by ``main`` through ``CommsDecoder``): a
  recording channel that hands out the generated ``StartupDetails`` and records every frame
  sent; its sends raise ``BrokenPipeError`` as the run's ``comms`` mode says;
- ``parse`` (the DAG bundle and DAG-file loading): returns a ``RuntimeTaskInstance`` whose task
  is a generated operator that ends as the run's outcome says, with the run's retry policy;
- ``run`` is wrapped only to record the state it returns.

Example plugins (and so their listeners) are switched off: ``AIRFLOW__CORE__LOAD_EXAMPLES=False``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import os
import signal
import uuid

os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

import structlog  # noqa: E402
from airflow.sdk import DAG, BaseOperator  # noqa: E402
from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext  # noqa: E402
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy  # noqa: E402
from airflow.sdk.exceptions import (  # noqa: E402
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowRuntimeError,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTerminated,
    AirflowTaskTimeout,
    DownstreamTasksSkipped,
    ErrorType,
    TaskAwaitingInput,
    TaskDeferred,
)
from airflow.sdk.execution_time import task_runner as airflow_task_runner  # noqa: E402
from airflow.sdk.execution_time.comms import BundleInfo, ErrorResponse, StartupDetails  # noqa: E402

from model.runtime import TERMINAL_FRAMES, Policy, RuntimeObservation, RuntimeRun, Sent  # noqa: E402
from model.scenario import Send  # noqa: E402

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
logging.getLogger("airflow").setLevel(logging.CRITICAL)

_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAG_ID, TASK_ID, RUN_ID = "finalstate", "task", "finalstate_run"


class FinalstateTrigger:
    """A trigger as ``_defer_task`` sees one: it only needs to serialize."""

    def serialize(self):
        return "impl.task_runner.FinalstateTrigger", {}


def _raise(outcome: str) -> None:
    """End the task's ``execute`` as ``outcome`` says (``model.runtime.PYTHON_OUTCOMES``)."""
    if outcome == "return":
        return None
    errors = {
        "AirflowSkipException": lambda: AirflowSkipException("finalstate"),
        "DownstreamTasksSkipped": lambda: DownstreamTasksSkipped(tasks=["downstream"]),
        "AirflowRescheduleException": lambda: AirflowRescheduleException(_NOW + dt.timedelta(hours=1)),
        "TaskDeferred": lambda: TaskDeferred(trigger=FinalstateTrigger(), method_name="execute_complete"),
        "TaskAwaitingInput": lambda: TaskAwaitingInput(method_name="execute_complete"),
        "AirflowFailException": lambda: AirflowFailException("finalstate"),
        "AirflowSensorTimeout": lambda: AirflowSensorTimeout("finalstate"),
        "AirflowTaskTerminated": lambda: AirflowTaskTerminated("finalstate"),
        "AirflowException": lambda: AirflowException("finalstate"),
        "AirflowTaskTimeout": lambda: AirflowTaskTimeout("finalstate"),
        "AirflowRuntimeError": lambda: AirflowRuntimeError(ErrorResponse(error=ErrorType.GENERIC_ERROR)),
        "SystemExit(0)": lambda: SystemExit(0),
        "SystemExit(1)": lambda: SystemExit(1),
        "ValueError": lambda: ValueError("finalstate"),
        "KeyboardInterrupt": lambda: KeyboardInterrupt(),
        # serde cannot serialize an arbitrary object: _defer_task raises TypeError.
        "TaskDeferredUnserializable": lambda: TaskDeferred(
            trigger=FinalstateTrigger(), method_name="execute_complete", kwargs={"unserializable": object()}),
    }
    raise errors[outcome]()


class ScriptedPolicy(RetryPolicy):
    """A retry policy that answers as the run says."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        action = self.policy.action
        if action == "raises":
            raise RuntimeError("finalstate: the retry policy itself fails")
        if action == "interrupted":
            raise KeyboardInterrupt()
        if action == "fail":
            return RetryDecision.fail()
        if action == "retry":
            delay = None if self.policy.delay is None else dt.timedelta(seconds=self.policy.delay)
            return RetryDecision.retry(delay=delay, reason=self.policy.reason)
        return RetryDecision.default()


class ScriptedOperator(BaseOperator):
    """An operator whose ``execute`` ends as the run's outcome says."""

    def __init__(self, *, outcome: str, **kwargs):
        super().__init__(**kwargs)
        self.outcome = outcome

    def execute(self, context):
        return _raise(self.outcome)


class _Bundle:
    """What ``main``'s ``BundleVersionLock`` reads of the bundle: an unversioned one locks nothing."""

    name = "finalstate"
    version = None


class RecordingChannel:
    """``SUPERVISOR_COMMS``: hands out the startup message; records each send, raising as ``comms`` says."""

    socket = None

    def __init__(self, startup: StartupDetails, comms: str):
        self.startup = startup
        self.comms = comms
        self.sent: list[Sent] = []
        self.retry: tuple[float | None, str | None] = (None, None)

    def __getitem__(self, _types):  # ``CommsDecoder[ToTask, ToSupervisor](log=log)``
        return self

    def __call__(self, **_kwargs):
        return self

    def _get_response(self):
        return self.startup

    def send(self, msg):
        name = msg.type
        state = getattr(msg, "state", None) if name == "TaskState" else None
        frame = Send(name, str(getattr(state, "value", state)) if state is not None else None)
        fails = self.comms == "every_send_fails" or (self.comms == "terminal_send_fails" and name in TERMINAL_FRAMES)
        self.sent.append(Sent(frame, not fails))
        if name == "RetryTask":
            self.retry = (msg.retry_delay_seconds, msg.retry_reason)
        if fails:
            raise BrokenPipeError("finalstate: the supervisor channel is broken")
        return None


def startup_details(run: RuntimeRun) -> StartupDetails:
    """The ``StartupDetails`` the supervisor would hand this try."""
    c = run.context
    dag_run = DagRun(
        dag_id=DAG_ID, run_id=RUN_ID, logical_date=_NOW, data_interval_start=_NOW, data_interval_end=_NOW,
        run_after=_NOW, start_date=_NOW, end_date=None, run_type="manual", state="running",
        consumed_asset_events=[], partition_key=None,
    )
    ti = TaskInstance(id=uuid.UUID(int=1), task_id=TASK_ID, dag_id=DAG_ID, run_id=RUN_ID,
                      try_number=c.try_number, map_index=-1, dag_version_id=uuid.UUID(int=2))
    return StartupDetails(
        ti=ti, dag_rel_path="finalstate.py", bundle_info=BundleInfo(name="finalstate", version=None),
        start_date=_NOW, ti_context=TIRunContext(dag_run=dag_run, max_tries=c.max_tries, should_retry=c.should_retry),
        sentry_integration="",
    )


def _task(run: RuntimeRun) -> BaseOperator:
    with DAG(DAG_ID, schedule=None):
        return ScriptedOperator(
            task_id=TASK_ID, outcome=run.outcome, retries=run.context.max_tries,
            retry_policy=ScriptedPolicy(run.policy) if run.policy else None,
        )


def run(runtime_run: RuntimeRun) -> RuntimeObservation:
    """One try through the real ``task_runner.main``; observe the frames, the state, the exit code."""
    channel = RecordingChannel(startup_details(runtime_run), runtime_run.comms)
    task = _task(runtime_run)
    returned: list = []
    real_run = airflow_task_runner.run

    def parse(what, log):
        return airflow_task_runner.RuntimeTaskInstance.model_construct(
            **what.ti.model_dump(exclude_unset=True), task=task, bundle_instance=_Bundle(),
            _ti_context_from_server=what.ti_context, max_tries=what.ti_context.max_tries,
            start_date=what.start_date, state="running", sentry_integration="",
        )

    def recording_run(ti, context, log):
        result = real_run(ti, context, log)
        returned.append(result[0])
        return result

    patches = {"CommsDecoder": channel, "parse": parse, "run": recording_run}
    saved = {name: getattr(airflow_task_runner, name) for name in patches}
    sigterm = signal.getsignal(signal.SIGTERM)  # _run_task_and_map_outcome installs its own
    try:
        for name, value in patches.items():
            setattr(airflow_task_runner, name, value)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                airflow_task_runner.main()
                exit_code = 0
            except SystemExit as e:
                exit_code = _exit_status(e.code)
    finally:
        for name, value in saved.items():
            setattr(airflow_task_runner, name, value)
        signal.signal(signal.SIGTERM, sigterm)
    state = returned[0] if returned else None
    delay, reason = channel.retry
    return RuntimeObservation(
        sent=tuple(channel.sent),
        state=None if state is None else str(getattr(state, "value", state)),
        exit_code=exit_code,
        retry_delay_seconds=delay,
        retry_reason=reason,
    )


def _exit_status(code) -> int:
    """The process status ``sys.exit(code)`` leaves (None → 0, an int as it is, anything else → 1)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def target(name: str):
    from impl.frontdoor.registry import Target
    from model.runtime import python_runtime

    return Target(name, run, python_runtime, kind="runtime")
