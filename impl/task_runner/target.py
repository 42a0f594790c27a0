"""Target ``airflow-task-runner``: the pinned task runner's real ``main`` on one generated try.

Nothing of the runtime is re-implemented. The real ``task_runner.main`` runs: ``startup``,
``run`` (``_run_task_and_map_outcome``, the failure handlers, the retry policy, the terminal
send and its fail-closed flag), ``finalize``, and the ``sys.exit`` it chooses. Only the edges
are stood in for:

- the supervisor channel (``SUPERVISOR_COMMS``, made by ``main`` through ``CommsDecoder``): a
  recording channel that hands out the generated ``StartupDetails``, records every request sent
  and answers the ones that need an answer (GetXCom: no value) as the supervisor would; its
  sends raise ``BrokenPipeError`` as the run's ``comms`` mode says; its socket records its closing.
  It speaks both of the runner's comms: ``send`` (a request and its answer) since 1.0.3, and before,
  over JSON lines, ``send_request`` (the request alone) and ``get_message`` (the next line written
  back: StartupDetails, then the answer of each request that has one), under the ``lock`` the callers hold;
- ``parse`` (the DAG bundle and DAG-file loading): returns a ``RuntimeTaskInstance`` whose task
  is a generated operator that ends as the run's outcome says, with the run's retry policy (or,
  for ``startup_reschedule``, raises what the real ``parse`` raises for a DAG not found yet);
- ``run`` is wrapped only to record the state it returns.

The run's features (``model.runtime.FEATURES``) are set up as Airflow would meet them: XCom keys
to clear in the ``TIRunContext``, a ``map_index_template`` on the operator, a SIGTERM raised in the
process from ``execute`` (and, for ``forked_child``, in a child ``execute`` forks and waits for),
``_AIRFLOW_FORK_EXEC=1`` in the environment, and for ``execution_timeout`` a real ``execution_timeout`` on the
operator, whose ``execute``, once it has done the rest, brings the runner's own timer forward to now and waits
(``TIMED_OUT_EXECUTE_WAITS``) until it interrupts it. The task's state-change callbacks are real callbacks that record that they ran.

Example plugins (and so their listeners) are switched off: ``AIRFLOW__CORE__LOAD_EXAMPLES=False``.

On any release (``impl.releases.adapters``: the exceptions' module, what ``parse`` raises for a DAG not found, retry
policies, what ``StartupDetails`` says of the channel), checked against the model of that release (``model_release``). A try the installed
release cannot have is refused with ``NotPlayable`` naming why (a ``NotImplementedError``: a search rejects it):
a retry policy or ``TaskAwaitingInput`` before 1.3.0. A SIGTERM before 1.0.4, whose runner installs no handler, would
kill the checker itself: that try runs in a forked process of its own (``_in_a_process_of_its_own``), which the
signal kills as it kills the task runner's, and what the try did before it died is observed from there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import deque

os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

import structlog  # noqa: E402
from airflow.sdk import DAG, BaseOperator  # noqa: E402
from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext  # noqa: E402
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType  # noqa: E402
from airflow.sdk.execution_time import task_runner as airflow_task_runner  # noqa: E402
from airflow.sdk.execution_time.comms import (  # noqa: E402
    BundleInfo,
    ErrorResponse,
    OKResponse,
    StartupDetails,
    XComResult,
)

from model.runtime import (  # noqa: E402
    EXECUTION_TIMEOUT,
    FORK_EXEC,
    FORKED_CHILD,
    MAP_INDEX_TEMPLATE,
    OTHER_REQUESTS,
    SIGTERM,
    STARTUP_RESCHEDULE,
    STATE_CHANGE_CALLBACKS,
    TERMINAL_FRAMES,
    XCOM_KEYS_TO_CLEAR,
    Policy,
    Request,
    RuntimeObservation,
    RuntimeRun,
    Sent,
    impossible_on,
)
from model.scenario import Send  # noqa: E402
from impl.releases.adapters import (  # noqa: E402
    dag_run_fields,
    model_release,
    since_1_0_3_length_prefixed_frames,
    since_1_0_4_sigterm_handler,
    since_1_1_7_startup_reschedule,
    since_1_2_0_task_exceptions,
    since_1_3_0_retry_policy,
    since_1_3_0_task_awaiting_input,
)

#: The exceptions a task ends by, from where the installed runner takes them (``since_1_2_0_task_exceptions``).
_EXCEPTIONS = since_1_2_0_task_exceptions()
AirflowException = _EXCEPTIONS.AirflowException
AirflowFailException = _EXCEPTIONS.AirflowFailException
AirflowRescheduleException = _EXCEPTIONS.AirflowRescheduleException
AirflowSensorTimeout = _EXCEPTIONS.AirflowSensorTimeout
AirflowSkipException = _EXCEPTIONS.AirflowSkipException
AirflowTaskTerminated = _EXCEPTIONS.AirflowTaskTerminated
AirflowTaskTimeout = _EXCEPTIONS.AirflowTaskTimeout
DagRunTriggerException = _EXCEPTIONS.DagRunTriggerException
DownstreamTasksSkipped = _EXCEPTIONS.DownstreamTasksSkipped
TaskDeferred = _EXCEPTIONS.TaskDeferred
#: None before 1.3.0.
TaskAwaitingInput = since_1_3_0_task_awaiting_input()
#: The retry-policy API; None before 1.3.0.
RETRY_POLICIES = since_1_3_0_retry_policy()

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


class FailingTrigger:
    """A trigger whose ``serialize`` (user code, called by ``_defer_task``) raises AirflowFailException."""

    def serialize(self):
        raise AirflowFailException("finalstate: the trigger cannot be serialized")


def _raise(outcome: str) -> None:
    """End the task's ``execute`` as ``outcome`` says (``model.runtime.PYTHON_OUTCOMES``)."""
    if outcome == "return":
        return None
    errors = {
        "AirflowSkipException": lambda: AirflowSkipException("finalstate"),
        "AirflowSkipException()": lambda: AirflowSkipException(),
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
        "SystemExit()": lambda: SystemExit(),  # sys.exit()
        "SystemExit(1)": lambda: SystemExit(1),
        "ValueError": lambda: ValueError("finalstate"),
        "KeyboardInterrupt": lambda: KeyboardInterrupt(),
        # serde cannot serialize an arbitrary object: _defer_task raises TypeError.
        "TaskDeferredUnserializable": lambda: TaskDeferred(
            trigger=FinalstateTrigger(), method_name="execute_complete", kwargs={"unserializable": object()}),
        "TaskDeferred(serialize=AirflowFailException)": lambda: TaskDeferred(
            trigger=FailingTrigger(), method_name="execute_complete"),
        # TriggerDagRunOperator, fire and forget; whether the run exists is the channel's answer.
        "DagRunTriggerException": lambda: _trigger_dag_run(skip_when_already_exists=False),
        "DagRunTriggerException(exists,skip)": lambda: _trigger_dag_run(skip_when_already_exists=True),
        "DagRunTriggerException(exists)": lambda: _trigger_dag_run(skip_when_already_exists=False),
    }
    raise errors[outcome]()


def _trigger_dag_run(skip_when_already_exists: bool) -> DagRunTriggerException:
    """What TriggerDagRunOperator raises to have a run triggered, without waiting for it."""
    return DagRunTriggerException(
        trigger_dag_id="finalstate_triggered", dag_run_id="finalstate_triggered_run", conf=None, logical_date=None,
        reset_dag_run=False, skip_when_already_exists=skip_when_already_exists, wait_for_completion=False,
        allowed_states=["success"], failed_states=["failed"], poke_interval=1, deferrable=False,
    )


class ScriptedPolicy(RETRY_POLICIES.base if RETRY_POLICIES else object):
    """A retry policy that answers as the run says (made only where the release has retry policies)."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def evaluate(self, exception, try_number, max_tries, context=None):
        RetryDecision = RETRY_POLICIES.decision
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
        if action == "retry_int_delay":  # seconds, as BaseOperator(retry_delay=...) would take them
            return RetryDecision.retry(delay=self.policy.delay, reason=self.policy.reason)
        return RetryDecision.default()


#: The ``map_index_template`` of a task with ``map_index_template``: undefined until ``execute`` sets it.
MAP_INDEX_LABEL = "finalstate_label"
#: A task with ``execution_timeout``: its timeout (longer than any try; ``execute`` brings the timer forward), and how
#: long its ``execute`` waits for the timer to interrupt it. A timer that never fires lets ``execute`` go on to its outcome after the wait,
#: which the model's answer then disagrees with: the check fails, and does not hang.
EXECUTION_TIMEOUT_DELTA = dt.timedelta(hours=1)
TIMED_OUT_EXECUTE_WAITS = 5.0


class ScriptedOperator(BaseOperator):
    """An operator whose ``execute`` ends as the run's outcome says, after the SIGTERM, the forked child and
    the map-index label its run asks for; ``on_kill`` calls ``killed`` and the child's exit status goes to
    ``child_exited`` (closures: the runner works on a copy of the operator). With an ``execution_timeout``, ``execute``
    then lets the runner's timer run out: it brings the timer the runner set forward to now (``ITIMER_REAL``, whose
    SIGALRM the runner's handler turns into ``AirflowTaskTimeout``) and waits; the handler raises inside the wait.
    A short ``execution_timeout`` instead could run out before ``execute`` has done the rest on a busy machine (a
    blocked SIGALRM does not help: another thread, such as xdist's, takes it, and Python runs the handler anyway)."""

    def __init__(self, *, outcome: str, sigterm: bool = False, killed=lambda: None, child_exited=None, **kwargs):
        super().__init__(**kwargs)
        self.outcome = outcome
        self.sigterm = sigterm
        self.killed = killed
        self.child_exited = child_exited

    def execute(self, context):
        if self.sigterm:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before raise_signal returns
        if self.child_exited is not None:
            self.child_exited(_fork_a_child_that_gets_sigterm())
        if self.map_index_template:
            context[MAP_INDEX_LABEL] = "finalstate"
        if self.execution_timeout:
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            time.sleep(TIMED_OUT_EXECUTE_WAITS)
        return _raise(self.outcome)

    def on_kill(self):
        self.killed()


def _fork_a_child_that_gets_sigterm() -> int:
    """Fork; the child raises SIGTERM on itself and leaves at once (0 if it survived the signal, 70 if the
    handler raised); the parent reaps it and answers its exit status (negative: killed by that signal)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the checker
        status = 0
        try:
            signal.raise_signal(signal.SIGTERM)
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


class _Bundle:
    """What ``main``'s ``BundleVersionLock`` reads of the bundle: an unversioned one locks nothing."""

    name = "finalstate"
    version = None


class RecordingSocket:
    """The channel's socket, as far as ``main``'s ``finally`` uses it: it records its closing."""

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class RecordingChannel:
    """``SUPERVISOR_COMMS``: hands out the startup message; records each send, raising as ``comms`` says,
    and answers as the supervisor does: GetXCom with no value, TriggerDagRun with OK or, when the run
    exists already, the DAGRUN_ALREADY_EXISTS error. Since 1.0.3 ``send`` answers at once; before, ``send_request``
    queues the answer of a request that has one (a line written back) for ``get_message``."""

    def __init__(self, startup: StartupDetails, comms: str, dag_run_exists: bool = False):
        self.startup = startup
        self.comms = comms
        self.dag_run_exists = dag_run_exists
        self.socket = RecordingSocket()
        self.sent: list[Sent] = []
        self.retry: tuple[float | None, str | None] = (None, None)
        #: Before 1.0.3: the lines written back and not read yet, StartupDetails first.
        self.lines: deque = deque([startup])
        self.lock = threading.Lock()

    def __getitem__(self, _types):  # ``CommsDecoder[ToTask, ToSupervisor](log=log)``
        return self

    def __call__(self, **_kwargs):
        return self

    def _get_response(self):
        return self.startup

    def send(self, msg):
        name = msg.type
        state = getattr(msg, "state", None) if name == "TaskState" else None
        if name in OTHER_REQUESTS:
            frame = Request(name)
        else:
            frame = Send(name, str(getattr(state, "value", state)) if state is not None else None)
        fails = self.comms == "every_send_fails" or (self.comms == "terminal_send_fails" and name in TERMINAL_FRAMES)
        self.sent.append(Sent(frame, not fails))
        if name == "RetryTask":  # a delay and a reason only since 1.3.0 (retry policies)
            self.retry = (getattr(msg, "retry_delay_seconds", None), getattr(msg, "retry_reason", None))
        if fails:
            raise BrokenPipeError("finalstate: the supervisor channel is broken")
        if name == "GetXCom":
            return XComResult(key=msg.key, value=None)
        if name == "TriggerDagRun":
            return ErrorResponse(error=ErrorType.DAGRUN_ALREADY_EXISTS) if self.dag_run_exists else OKResponse(ok=True)
        return None

    def send_request(self, log, msg) -> None:
        """Before 1.0.3: write the request; the supervisor writes a line back only for one that has an answer."""
        answer = self.send(msg)
        if answer is not None:
            self.lines.append(answer)

    def get_message(self):
        """Before 1.0.3: the next line the supervisor wrote back (there is one whenever the runner reads)."""
        return self.lines.popleft()


def startup_details(run: RuntimeRun) -> StartupDetails:
    """The ``StartupDetails`` the supervisor would hand this try."""
    c = run.context
    dag_run = DagRun(**dag_run_fields(dict(
        dag_id=DAG_ID, run_id=RUN_ID, logical_date=_NOW, data_interval_start=_NOW, data_interval_end=_NOW,
        run_after=_NOW, start_date=_NOW, end_date=None, run_type="manual", state="running",
        consumed_asset_events=[], partition_key=None,
    )))
    ti = TaskInstance(id=uuid.UUID(int=1), task_id=TASK_ID, dag_id=DAG_ID, run_id=RUN_ID,
                      try_number=c.try_number, map_index=-1, dag_version_id=uuid.UUID(int=2))
    return StartupDetails(
        ti=ti, dag_rel_path="finalstate.py", bundle_info=BundleInfo(name="finalstate", version=None),
        start_date=_NOW, ti_context=TIRunContext(
            dag_run=dag_run, max_tries=c.max_tries, should_retry=c.should_retry,
            xcom_keys_to_clear=["finalstate"] if XCOM_KEYS_TO_CLEAR in run.features else []),
        sentry_integration="", **since_1_0_3_length_prefixed_frames().startup_without_sockets,
    )


def _task(run: RuntimeRun, killed, child_exited, called_back) -> BaseOperator:
    """The try's operator; each state-change callback (``STATE_CHANGE_CALLBACKS``) hands its name to ``called_back``."""
    policy = {} if RETRY_POLICIES is None else {"retry_policy": ScriptedPolicy(run.policy) if run.policy else None}
    callbacks = {name: [functools.partial(_called_back, called_back, name)] for name in STATE_CHANGE_CALLBACKS.values()}
    with DAG(DAG_ID, schedule=None):
        return ScriptedOperator(
            task_id=TASK_ID, outcome=run.outcome, retries=run.context.max_tries, **policy, **callbacks,
            map_index_template="{{ %s }}" % MAP_INDEX_LABEL if MAP_INDEX_TEMPLATE in run.features else None,
            execution_timeout=EXECUTION_TIMEOUT_DELTA if EXECUTION_TIMEOUT in run.features else None,
            sigterm=SIGTERM in run.features, killed=killed,
            child_exited=child_exited if FORKED_CHILD in run.features else None,
        )


def _called_back(called_back, name: str, context) -> None:
    """A task callback (``on_success_callback``, ...): the runner calls it with the task's context."""
    called_back(name)


class NotPlayable(NotImplementedError):
    """A try the installed release cannot have, or this target cannot play in process; the message says why."""


def refuse_what_the_release_cannot_have(run: RuntimeRun) -> None:
    """Raise ``NotPlayable`` for a try the installed release cannot have."""
    impossible = impossible_on(run, model_release())
    if impossible is not None:
        raise NotPlayable(f"{impossible}; no task of it can have this try ({run.to_text()})")


def run(runtime_run: RuntimeRun) -> RuntimeObservation:
    """One try through the real ``task_runner.main``; observe the frames, the state, the exit code. A try whose
    SIGTERM no handler of the runner's catches (before 1.0.4) runs in a process of its own."""
    refuse_what_the_release_cannot_have(runtime_run)
    if SIGTERM in runtime_run.features and not since_1_0_4_sigterm_handler():
        return _in_a_process_of_its_own(runtime_run)
    return _run_here(runtime_run)


#: How long a try in a process of its own may take (a try takes well under a second); then it is killed.
OWN_PROCESS_DEADLINE = 120.0


class _Told(list):
    """A record of the try that also tells ``tell`` each item as it is appended (from a process that may die)."""

    def __init__(self, name: str, tell):
        super().__init__()
        self.name, self.tell = name, tell

    def append(self, item) -> None:
        super().append(item)
        self.tell((self.name, item))


class _ToldSocket(RecordingSocket):
    """The channel's socket, telling ``tell`` when ``main`` closes it."""

    def __init__(self, tell):
        super().__init__()
        self.tell = tell

    def close(self):
        super().close()
        self.tell(("closed", True))


def _in_a_process_of_its_own(runtime_run: RuntimeRun) -> RuntimeObservation:
    """The try in a forked process, as the task runner runs in a process of its own: what it recorded, item by item,
    reaches this one over a pipe, and if a signal kills that process (the SIGTERM no handler catches before 1.0.4),
    the observation is what it did before, its exit minus the signal's number."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child: it never returns into the checker
        status = 0
        try:
            reader.close()
            writer.send(("done", _run_here(runtime_run, tell=writer.send)))
        except BaseException as e:
            status = 70
            with contextlib.suppress(Exception):
                writer.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            os._exit(status)
    writer.close()
    told: dict[str, list] = {}
    done = error = None
    deadline = time.monotonic() + OWN_PROCESS_DEADLINE
    try:
        while True:
            if not reader.poll(max(0.0, deadline - time.monotonic())):
                os.kill(pid, signal.SIGKILL)
                raise RuntimeError(f"the try in a process of its own ran over {OWN_PROCESS_DEADLINE:.0f}s and was "
                                   f"killed ({runtime_run.to_text()})")
            try:
                name, item = reader.recv()
            except EOFError:
                break
            if name == "done":
                done = item
            elif name == "error":
                error = item
            else:
                told.setdefault(name, []).append(item)
    finally:
        reader.close()
        _, wait_status = os.waitpid(pid, 0)
    if error is not None:
        raise RuntimeError(f"the try in a process of its own raised {error} ({runtime_run.to_text()})")
    if done is not None:
        return done
    returned = told.get("returned", [])
    return RuntimeObservation(
        sent=tuple(told.get("sent", ())),
        state=returned[0] if returned else None,
        exit_code=os.waitstatus_to_exitcode(wait_status),
        on_kill_calls=len(told.get("on_kill", ())),
        channel_closed=bool(told.get("closed")),
        forked_child_exit=told["child_exits"][0] if told.get("child_exits") else None,
        callbacks=tuple(told.get("callbacks", ())),
    )


def _run_here(runtime_run: RuntimeRun, tell=None) -> RuntimeObservation:
    """The try in this process. ``tell``: also told each record of the try as it is made (``_Told``)."""
    def record(name: str) -> list:
        return [] if tell is None else _Told(name, tell)

    channel = RecordingChannel(startup_details(runtime_run), runtime_run.comms,
                               dag_run_exists=runtime_run.outcome.startswith("DagRunTriggerException(exists"))
    channel.sent = record("sent")
    if tell is not None:  # main's closing of the channel, told as it happens
        channel.socket = _ToldSocket(tell)
    on_kill_calls, child_exits, callbacks = record("on_kill"), record("child_exits"), record("callbacks")
    task = _task(runtime_run, lambda: on_kill_calls.append(None), child_exits.append, callbacks.append)
    returned = record("returned")
    real_run = airflow_task_runner.run

    def parse(what, log):
        if STARTUP_RESCHEDULE in runtime_run.features:
            # What the real parse raises for a DAG not found yet (since 1.1.7 _maybe_reschedule_startup_failure).
            raise since_1_1_7_startup_reschedule(_NOW + dt.timedelta(minutes=1))
        return airflow_task_runner.RuntimeTaskInstance.model_construct(
            **what.ti.model_dump(exclude_unset=True), task=task, bundle_instance=_Bundle(),
            _ti_context_from_server=what.ti_context, max_tries=what.ti_context.max_tries,
            start_date=what.start_date, state="running", sentry_integration="",
        )

    def recording_run(ti, context, log):
        result = real_run(ti, context, log)
        returned.append(None if result[0] is None else str(getattr(result[0], "value", result[0])))
        return result

    patches = {"CommsDecoder": channel, "parse": parse, "run": recording_run}
    saved = {name: getattr(airflow_task_runner, name) for name in patches}
    sigterm = signal.getsignal(signal.SIGTERM)  # _run_task_and_map_outcome installs its own
    sigalrm = signal.getsignal(signal.SIGALRM)  # and the execution timeout's timer its own
    try:
        for name, value in patches.items():
            setattr(airflow_task_runner, name, value)
        if FORK_EXEC in runtime_run.features:
            os.environ["_AIRFLOW_FORK_EXEC"] = "1"  # main pops it
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                airflow_task_runner.main()
                exit_code = 0
            except SystemExit as e:
                exit_code = _exit_status(e.code)
    finally:
        for name, value in saved.items():
            setattr(airflow_task_runner, name, value)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, sigalrm)
        signal.signal(signal.SIGTERM, sigterm)
        os.environ.pop("_AIRFLOW_FORK_EXEC", None)
    delay, reason = channel.retry
    return RuntimeObservation(
        sent=tuple(channel.sent),
        state=returned[0] if returned else None,
        exit_code=exit_code,
        retry_delay_seconds=delay,
        retry_reason=reason,
        on_kill_calls=len(on_kill_calls),
        channel_closed=channel.socket.closed,
        forked_child_exit=child_exits[0] if child_exits else None,
        callbacks=tuple(callbacks),
    )


def _exit_status(code) -> int:
    """The process status ``sys.exit(code)`` leaves (None → 0, an int as it is, anything else → 1)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def target(name: str):
    from impl.targets.registry import Target
    from model.runtime import python_runtime

    release = model_release()
    return Target(name, run, release=release, reference=functools.partial(python_runtime, release=release),
                  kind="runtime")
