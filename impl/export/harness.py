# The harness every exported test module carries: ``impl.export.writer`` inlines the common section and the
# section of the finding's kind (each one's imports first, then each one's code). finalstate never imports this
# file: it imports Airflow, pytest and the standard library only, and runs on every task-sdk release from 1.0.3
# (the length-prefixed frames) on.
# --- imports: common ---
import dataclasses
import re
import uuid
from datetime import datetime, timezone
from unittest import mock

from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
from airflow.sdk.execution_time.supervisor import ActivitySubprocess
# --- imports: supervisor ---
import inspect

import psutil
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.execution_time.comms import _RequestFrame

try:  # the client is built on httpx2 from task-sdk 1.4.0, on httpx before
    import httpx2 as httpx
except ImportError:
    import httpx
# --- imports: runtime ---
import contextlib
import functools
import importlib
import io
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time

from airflow.sdk import DAG, BaseOperator
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import BundleInfo, StartupDetails, XComResult
# --- imports: wire ---
import os
import select
import signal
from contextlib import suppress

from airflow.sdk.execution_time.comms import BundleInfo
# --- imports: server ---
import gc
import json
import os
import shutil
import tempfile

import pytest
from airflow.sdk.api.client import Client
# --- imports: lifecycle ---
# --- imports: lifecycle_task_runner ---
# --- imports: launcher ---
import gc
import os
import signal
import socket
import sys
from contextlib import suppress

import psutil
import pytest
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.execution_time.comms import BundleInfo

try:  # the client is built on httpx2 from task-sdk 1.4.0, on httpx before
    import httpx2 as httpx
except ImportError:
    import httpx
# --- code: common ---
TI_ID = uuid.UUID("01970000-0000-7000-8000-000000000001")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
TERMINAL_FRAMES = {"TaskState", "SucceedTask", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"}


def _task_sdk_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(re.match(r"\d*", part).group() or 0) for part in version("apache-airflow-task-sdk").split(".")[:3])


def state_name(state) -> str | None:
    """A state as the supervisor holds or reports it (a ``TaskInstanceState``, or ``SERVER_TERMINATED`` in either
    spelling), as one lower-case string."""
    return None if state is None else str(getattr(state, "value", state)).lower()


def _model(model, **values):
    """``model`` of ``values``, less the fields the installed release's model does not have."""
    return model(**{k: v for k, v in values.items() if k in model.model_fields})


def run_context(max_tries: int, should_retry: bool) -> TIRunContext:
    """The ``TIRunContext`` the Execution API hands out as the attempt starts (``task_instances.start``)."""
    dag_run = _model(DagRun, dag_id="exported", run_id="run", logical_date=NOW, data_interval_start=NOW,
                     data_interval_end=NOW, run_after=NOW, start_date=NOW, end_date=None, run_type="manual",
                     state="running", consumed_asset_events=[], partition_key=None)
    return _model(TIRunContext, dag_run=dag_run, max_tries=max_tries, should_retry=should_retry, xcom_keys_to_clear=[])


def task_instance(try_number: int, ti_id: uuid.UUID = TI_ID) -> TaskInstance:
    """The task instance the attempt is of."""
    return _model(TaskInstance, id=ti_id, task_id="task", dag_id="exported", run_id="run", try_number=try_number,
                  map_index=-1, dag_version_id=uuid.UUID(int=2))
# --- code: supervisor ---
_REQUEST = httpx.Request("PATCH", f"http://execution-api.invalid/task-instances/{TI_ID}/state")


#: The Execution API released beside task-sdk 1.3.0 (apache-airflow-core 3.3.0) answers a state update asking for
#: the state the row already holds with 200; before, 409 like any update of a row that is no longer RUNNING.
REPEATED_STATE_IS_OK = _task_sdk_version() >= (1, 3, 0)
#: The exit of a task process that never exits on its own: only a signal of the supervisor's ends it.
HANG = "hang"
#: The supervisor's calls that deliver a runtime's terminal frame themselves (a TaskState's goes by ``finish``).
OUTCOME_CALLS = ("succeed", "retry", "defer", "reschedule", "await_input")


class AttemptHung(Exception):
    """The task process never exits, and once time had run on the supervisor had not ended it: its ``wait()`` would
    wait for ever, so the selector stops it here."""


@dataclasses.dataclass
class Call:
    """One call of the supervisor's client, as the supervisor saw it: its last try's answer ("timeout": none)."""

    name: str
    status: "int | str"
    state: "str | None" = None

    def __repr__(self) -> str:
        return f"{self.name}({self.state})->{self.status}" if self.state else f"{self.name}->{self.status}"


def met(faults: list) -> "str | None":
    """The fault one try of a call meets: the first armed on it, used up unless it is "permanent"; None if none is."""
    if not faults:
        return None
    return faults[0] if faults[0] == "permanent" else faults.pop(0)


class ExecutionAPI:
    """The Execution API for one task instance, behind a ``mock`` of the supervisor's ``Client``.

    It keeps the row's state as the server's ``ti_update_state`` moves it: a state update of a RUNNING row is
    applied (a retry archives the try, and the live row gets a new id, so the old id is answered 404 from then
    on); of a row that already left RUNNING, refused 409 (``REPEATED_STATE_IS_OK``). A heartbeat of a row that left
    RUNNING is refused 409; of a RUNNING one it gets ``heartbeat_answer`` (404/409/410: the server took the task
    instance away, and answers every later call so). ``faults`` make a call misbehave, per client method, each try
    meeting the first one armed: "transient" (that try gets a 500), "permanent" (it and every later try get a 500),
    "lost" (that try is applied but its answer never arrives: an ``httpx.ReadTimeout``). Each call is tried as
    Airflow's client tries it (``tries``, the worker's ``[workers] execution_api_retries``): again after a 5xx or a
    transport error.
    """

    _STATE_OF_CALL = {"succeed": "success", "retry": "up_for_retry", "defer": "deferred",
                      "reschedule": "up_for_reschedule", "await_input": "awaiting_input"}
    ti_id = TI_ID

    def __init__(self, *, try_number: int, max_tries: int, should_retry: bool, tries: int):
        self.try_number, self.tries = try_number, tries
        self.context = run_context(max_tries, should_retry)
        self.row, self.archived, self.gone = "running", False, None
        self.faults: dict[str, list[str]] = {}
        self.heartbeat_answer = 200
        self.calls: list[Call] = []
        self.moved_by_user = False

    def user_marks(self, state: str) -> None:
        """A user marks the running task instance ``state`` (the UI's or the REST API's "mark success/failed/skipped",
        ``set_task_instance_state``): the row holds it, and nothing tells the supervisor; its next heartbeat or state
        update meets a row that is no longer RUNNING."""
        self.row, self.moved_by_user = state, True

    def client(self) -> mock.Mock:
        client = mock.Mock(name="Client")
        tis = client.task_instances
        tis.start.side_effect = lambda *a, **kw: self._call("start") or self.context
        tis.heartbeat.side_effect = lambda *a, **kw: self._call("heartbeat")
        tis.finish.side_effect = lambda *a, state, **kw: self._call("finish", state_name(state))
        tis.skip_downstream_tasks.side_effect = lambda *a, **kw: self._call("skip_downstream_tasks")
        for name in self._STATE_OF_CALL:
            getattr(tis, name).side_effect = lambda *a, _name=name, **kw: self._call(_name)
        return client

    def _call(self, name: str, state: "str | None" = None) -> None:
        # Only refusals of a heartbeat are scripted (never tried again), so one try stands for the client's.
        for _ in range(1 if name == "heartbeat" else self.tries):
            status = self._try(name, state)
            if status != "timeout" and status < 500:
                break
        self.calls.append(Call(name, status, state))
        if status == "timeout":
            raise httpx.ReadTimeout("the answer never arrived", request=_REQUEST)
        if status >= 400:
            response = httpx.Response(status, json={"detail": {"reason": "refused"}}, request=_REQUEST)
            raise ServerResponseError.from_response(response)

    def _try(self, name: str, state: "str | None") -> "int | str":
        fault = met(self.faults.get(name, []))
        if fault in ("transient", "permanent"):
            return 500
        status = self._answer(name, state)
        return "timeout" if fault == "lost" else status

    def _answer(self, name: str, state: "str | None") -> int:
        if self.gone:
            return self.gone
        if name == "start":
            return 200
        if name == "finish" and state == "server_terminated":  # a stop report (task-sdk 1.4.0)
            return 200 if self.archived or self.row != "running" else 409
        if self.archived:
            return 404
        if name == "heartbeat":
            if self.row != "running":
                return 409
            if self.heartbeat_answer in (404, 409, 410):
                self.gone = self.heartbeat_answer
            return self.heartbeat_answer
        target = state if name == "finish" else self._STATE_OF_CALL.get(name)
        if target is None:  # skip_downstream_tasks changes other task instances only
            return 200
        if self.row == target and REPEATED_STATE_IS_OK:
            return 200
        if self.row != "running":
            return 409
        self.row, self.archived = target, target == "up_for_retry"
        return 200


class TaskProcess:
    """The task process: alive until the test ends it, or until the supervisor signals it (it dies of any signal)."""

    ProcessNotFound = psutil.NoSuchProcess
    TimeoutExpired = psutil.TimeoutExpired
    pid = 4242

    def __init__(self):
        self.exit_code = None

    def send_signal(self, sig) -> None:
        if self.exit_code is None:
            self.exit_code = -int(sig)

    def wait(self, timeout=None) -> int:
        if self.exit_code is None:
            raise psutil.TimeoutExpired(timeout)
        return self.exit_code


@dataclasses.dataclass
class Attempt:
    """What came of one attempt: the supervisor's ``final_state`` (None when ``wait()`` raised before it saw the
    exit), the process's exit, the server's row (``gone``: how the server answers once it took the task instance
    away), every call with its answer, and what ``wait()`` raised."""

    final_state: "str | None"
    exit_code: "int | None"
    row: str
    gone: "int | None"
    calls: list
    raised: "str | None"
    #: The process never exited and the supervisor never ended it: ``wait()`` would still be waiting.
    hung: bool = False
    #: The run context's should_retry, as the server handed it out at start.
    should_retry: bool = False
    #: The frames the task process handed the supervisor, as ``(type, state)`` (a TaskState's state, else None).
    sent: list = dataclasses.field(default_factory=list)
    #: Whether a user moved the task instance on the server while the attempt ran.
    moved_by_user: bool = False

    def ended(self) -> list:
        """The terminal frames the task process handed the supervisor: the task's end, as the runtime reported it."""
        return [(kind, state) for kind, state in self.sent if kind in TERMINAL_FRAMES]

    def outcome_calls(self) -> list:
        """The calls that delivered one of the runtime's terminal frames: a frame's own call, or a ``finish`` carrying
        a TaskState's state (not the supervisor's closing report of an exit)."""
        reported = {state for kind, state in self.sent if kind == "TaskState"}
        return [c for c in self.calls if c.name in OUTCOME_CALLS or (c.name == "finish" and c.state in reported)]


class Supervisor(ActivitySubprocess):
    """The real ``ActivitySubprocess``, noting how it answers each request: ``replies``, "ok" or "error"."""

    def send_msg(self, msg, request_id, error=None, **dump_opts):
        self.__dict__.setdefault("replies", []).append("ok" if error is None else "error")
        return super().send_msg(msg, request_id, error, **dump_opts)

    @property
    def replies(self) -> list:
        return self.__dict__.get("replies", [])


def run_attempt(api: ExecutionAPI, events: list, exit_code: "int | None" = None) -> Attempt:
    """One attempt of the real ``ActivitySubprocess``: started (``task_instances.start``), then its real ``wait()``,
    each wake-up of whose monitor loop (``selector.select``) delivers the next of ``events``, and after the last the
    process's exit. An event is ("fault", METHOD, KIND), ("send", FRAME) (the runtime's request, handed to
    ``handle_requests`` as its frame reader hands it), ("heartbeat", ANSWER) (a heartbeat falls due; none falls due
    otherwise), ("overtime",) (``task_success_overtime`` runs out), ("user", "marks", STATE) (a user marks the task
    instance on the server) or ("exit", CODE) (the process exits then; CODE may be a function of the supervisor's
    ``replies`` so far). ``events`` may also be a function of ``api``, called once the attempt has started (its run
    context known). Once the process is dead, nothing more comes from it.

    An ``exit_code`` of ``HANG`` is a process that never exits: after its last event time runs on once (a heartbeat
    falls due, answered as the server answers it then, and the success overtime runs out if it was started); if the
    supervisor has not ended the process by its next wake-up, nothing will, and the attempt is ``hung``."""
    process = TaskProcess()
    script = None
    ran_on = False
    sent: list = []

    def wake_up(timeout=None) -> list:
        nonlocal script, ran_on
        if sup._last_heartbeat_attempt != float("-inf"):  # only a heartbeat event makes one due
            sup._last_heartbeat_attempt = float("inf")
        if process.exit_code is not None:
            return []
        if script is None:
            script = iter(enumerate(events(api) if callable(events) else events, start=1))
        request_id, (kind, *args) = next(script, (None, ("exit", exit_code)))
        if kind == "exit" and args[0] == HANG:
            if ran_on:
                raise AttemptHung()
            ran_on = True  # time runs on: every clock of the supervisor runs out
            api.heartbeat_answer = 200
            sup._last_heartbeat_attempt = float("-inf")
            if sup._task_end_time_monotonic is not None:
                sup._task_end_time_monotonic = float("-inf")
        elif kind == "exit":
            process.exit_code = args[0](sup.replies) if callable(args[0]) else args[0]
        elif kind == "fault":
            api.faults.setdefault(args[0], []).append(args[1])
        elif kind == "send":
            sent.append((args[0].type, state_name(args[0].state) if args[0].type == "TaskState" else None))
            requests.send(_RequestFrame(id=request_id, body=args[0].model_dump()))
        elif kind == "heartbeat":
            api.heartbeat_answer = args[0]
            sup._last_heartbeat_attempt = float("-inf")
        elif kind == "overtime" and sup._task_end_time_monotonic is not None:
            sup._task_end_time_monotonic = float("-inf")
        elif kind == "user":
            api.user_marks(args[1])
        return []

    selector = mock.MagicMock(name="selector")
    selector.select.side_effect = wake_up
    sup = Supervisor(id=api.ti_id, pid=process.pid, process=process, stdin=mock.MagicMock(name="stdin"),
                     process_log=mock.MagicMock(name="process_log"), client=api.client(), selector=selector)
    started = {"ti": task_instance(api.try_number, api.ti_id), "dag_rel_path": "dag.py",
               "bundle_info": None}
    if "sentry_integration" in inspect.signature(sup._on_child_started).parameters:  # task-sdk 1.2.0 on
        started["sentry_integration"] = ""
    sup._on_child_started(**started)
    requests = sup.handle_requests(mock.MagicMock(name="log"))
    next(requests)
    raised, hung = None, False
    try:
        sup.wait()
    except AttemptHung:
        hung = True
    except Exception as e:  # what escaped the supervisor: part of what it did
        raised = type(e).__name__
    final = state_name(sup.final_state) if sup._exit_code is not None else None
    return Attempt(final, sup._exit_code, api.row, api.gone, api.calls, raised, hung,
                   bool(getattr(api.context, "should_retry", False)), sent, getattr(api, "moved_by_user", False))


# --- code: runtime ---
#: The module of the exceptions a task ends by: the SDK's own from task-sdk 1.2.0, apache-airflow-core's before.
exceptions = importlib.import_module("airflow.sdk.exceptions" if _task_sdk_version() >= (1, 2, 0) else "airflow.exceptions")


@dataclasses.dataclass
class Sent:
    """One request the task runner handed the supervisor channel, and whether it got through."""

    type: str
    state: "str | None"
    delivered: bool
    msg: object = dataclasses.field(default=None, repr=False, compare=False)  # the request itself

    def __repr__(self) -> str:
        return f"{self.type}({self.state or ''})" + ("" if self.delivered else " (send failed)")


class SupervisorChannel:
    """``SUPERVISOR_COMMS`` as ``main`` makes it (``CommsDecoder[...](log=...)``): it hands out ``startup``, records every
    request (and tells ``report``), answers as the supervisor does (GetXCom: no value), and raises ``BrokenPipeError``
    for the sends ``failing`` says: "terminal" (the terminal frame's), "every" (all), None (none)."""

    def __init__(self, startup: StartupDetails, failing: "str | None", report=lambda event: None):
        self.startup, self.failing, self.report = startup, failing, report
        self.sent: list[Sent] = []
        self.socket = mock.MagicMock(name="socket")

    def __getitem__(self, _types):
        return self

    def __call__(self, **_kwargs):
        return self

    def _get_response(self):
        return self.startup

    def send(self, msg):
        fails = self.failing == "every" or (self.failing == "terminal" and msg.type in TERMINAL_FRAMES)
        self.sent.append(Sent(msg.type, state_name(getattr(msg, "state", None)) if msg.type == "TaskState" else None,
                              not fails, msg))
        self.report(("sent", self.sent[-1]))
        if fails:
            raise BrokenPipeError("the supervisor channel is broken")
        return XComResult(key=msg.key, value=None) if msg.type == "GetXCom" else None


#: The task's state-change callbacks: each one the task runner runs is recorded by its name.
CALLBACKS = ("on_success_callback", "on_failure_callback", "on_retry_callback", "on_skipped_callback")


class ScriptedOperator(BaseOperator):
    """A task whose ``execute`` first gets SIGTERM if ``sigterm`` (as the supervisor's kill sends it while the task
    runs), forks a child that gets SIGTERM if ``child_exited`` is given (the child's exit status goes there), labels
    its map index if it has a ``map_index_template``, then raises ``error`` (returns when None). ``on_kill`` calls
    ``killed``; each of its state-change callbacks calls ``called_back`` with its name when run. (Functions, not
    attributes, carry what the task did out: the runner works on a copy of the operator.)"""

    def __init__(self, *, error: "BaseException | None" = None, sigterm: bool = False, killed=lambda: None,
                 child_exited=None, called_back=lambda name: None, **kwargs):
        super().__init__(**kwargs, **{name: [functools.partial(_called_back, called_back, name)] for name in CALLBACKS})
        self.error, self.sigterm, self.killed, self.child_exited = error, sigterm, killed, child_exited

    def execute(self, context):
        if self.sigterm:
            signal.raise_signal(signal.SIGTERM)  # a handler the runner installed runs before raise_signal returns
        if self.child_exited is not None:
            self.child_exited(fork_a_child_that_gets_sigterm())
        if self.map_index_template:
            context["label"] = "mapped"
        if self.error is not None:
            raise self.error

    def on_kill(self):
        self.killed()


def fork_a_child_that_gets_sigterm() -> int:
    """Fork a child, as a task that starts a subprocess does; the supervisor's SIGTERM reaches it (the kill signals the
    task runner's whole process group): it raises SIGTERM on itself, then leaves at once, exiting 0 if it carried on
    after the signal (70 if the handler raised). Its exit status, negative for a death by that signal."""
    pid = os.fork()
    if pid == 0:  # the child: it never returns into the test
        status = 0
        try:
            signal.raise_signal(signal.SIGTERM)
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def _called_back(called_back, name: str, context) -> None:
    called_back(name)


def _startup(try_number: int, max_tries: int, should_retry: bool) -> StartupDetails:
    return _model(StartupDetails, ti=task_instance(try_number), dag_rel_path="exported.py",
                  bundle_info=BundleInfo(name="exported", version=None), start_date=NOW,
                  ti_context=run_context(max_tries, should_retry), sentry_integration="")


class _Bundle:
    """The bundle as ``main``'s ``BundleVersionLock`` reads it: unversioned."""

    name = "exported"
    version = None


def final_state_for(exit_code: int, should_retry: bool) -> str:
    """The real supervisor's ``final_state`` for a task process that exited ``exit_code`` with no terminal state
    delivered, under the ``should_retry`` the server gave at start."""
    sup = ActivitySubprocess(id=TI_ID, pid=4242, process=mock.MagicMock(), stdin=mock.MagicMock(),
                             process_log=mock.MagicMock(), client=mock.MagicMock(), selector=mock.MagicMock())
    sup._exit_code = exit_code
    if hasattr(sup, "_should_retry"):  # task-sdk 1.1.2 on; before, a non-zero exit is always FAILED
        sup._should_retry = should_retry
    return state_name(sup.final_state)


@dataclasses.dataclass
class Try:
    """What came of one try of the real task runner: the state ``run`` decided, the exit ``main`` chose (or the signal
    its process died of, negative), every request it sent, what the supervisor's ``final_state`` records for that
    exit when no terminal frame got through (None when one did: the supervisor then goes by the frame), the task's
    state-change callbacks that ran, how many times its ``on_kill`` ran, and the exit status of the child it forked
    (None: it forked none)."""

    state: "str | None"
    exit_code: int
    sent: list
    recorded: "str | None"
    callbacks: list = dataclasses.field(default_factory=list)
    on_kill_calls: int = 0
    forked_child_exit: "int | None" = None


#: A try run in a child process of its own (one that gets SIGTERM) must be over within this; else it is ended.
TRY_DEADLINE_SECONDS = 60.0


def run_try(error: "BaseException | None", *, try_number: int, max_tries: int, should_retry: bool,
            failing: "str | None" = None, retry_policy=None, map_index_template: "str | None" = None,
            sigterm: bool = False, forked_child: bool = False, dag_found: bool = True) -> Try:
    """One try through the real ``task_runner.main`` (startup, ``run``, ``finalize``, its ``sys.exit``): the task raises
    ``error`` (returns when None), getting SIGTERM first if ``sigterm``, after forking a child that gets SIGTERM if
    ``forked_child``. Only the supervisor channel and the DAG file's parsing are stood in for; with ``dag_found``
    False the real ``parse`` runs, on a DAG bundle whose file defines no such DAG (a DAG not found at startup).

    A try that gets SIGTERM runs in a child process of its own, as the task runner runs in its own process: on a
    release whose runner installs no SIGTERM handler, the signal kills that process, not the test."""
    def live(report) -> None:
        _live_try(report, error, try_number=try_number, max_tries=max_tries, should_retry=should_retry,
                  failing=failing, retry_policy=retry_policy, map_index_template=map_index_template, sigterm=sigterm,
                  forked_child=forked_child, dag_found=dag_found)

    if not sigterm:
        events: list = []
        live(events.append)
        return _try_of(events, None, should_retry)
    return _try_of(*_in_a_child_process(live), should_retry)


def _live_try(report, error, *, try_number, max_tries, should_retry, failing, retry_policy, map_index_template,
              sigterm, forked_child, dag_found) -> None:
    """The try itself, telling ``report`` what happens as it happens: ("sent", Sent), ("callback", NAME), ("on_kill",),
    ("forked_child", STATUS), ("decided", STATE), ("exit", CODE)."""
    extra = {"retry_policy": retry_policy} if retry_policy is not None else {}
    with DAG("exported", schedule=None):
        task = ScriptedOperator(task_id="task", error=error, retries=max_tries, map_index_template=map_index_template,
                                sigterm=sigterm, killed=lambda: report(("on_kill",)),
                                child_exited=(lambda status: report(("forked_child", status))) if forked_child else None,
                                called_back=lambda name: report(("callback", name)), **extra)
    channel = SupervisorChannel(_startup(try_number, max_tries, should_retry), failing, report)
    real_run = task_runner.run

    def parse(what, log):
        return task_runner.RuntimeTaskInstance.model_construct(
            **what.ti.model_dump(exclude_unset=True), task=task, bundle_instance=_Bundle(),
            _ti_context_from_server=what.ti_context, max_tries=what.ti_context.max_tries,
            start_date=what.start_date, state="running", sentry_integration="")

    def recording_run(ti, context, log):
        result = real_run(ti, context, log)
        report(("decided", state_name(result[0])))
        return result

    stand_ins = {"CommsDecoder": channel, "run": recording_run, **({"parse": parse} if dag_found else {})}
    sigterm_handler = signal.getsignal(signal.SIGTERM)  # the runner installs its own
    exit_code = 0
    try:
        with mock.patch.multiple(task_runner, **stand_ins), _bundle_without_the_dag(dag_found), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            task_runner.main()
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, sigterm_handler)
    report(("exit", exit_code))


@contextlib.contextmanager
def _bundle_without_the_dag(dag_found: bool):
    """With ``dag_found`` False, the DAG bundle ``exported`` (``StartupDetails.bundle_info``) is a local bundle whose
    file ``exported.py`` defines no DAG, configured as a deployment configures its bundles
    (``[dag_processor] dag_bundle_config_list``); else nothing."""
    if dag_found:
        yield
        return
    folder = tempfile.mkdtemp(prefix="exported-bundle-")
    with open(os.path.join(folder, "exported.py"), "w") as f:
        f.write("# the DAG this file defined is gone (renamed, or not synced to this worker yet)\n")
    bundles = [{"name": "exported", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": folder}}]
    path = list(sys.path)
    try:
        with mock.patch.dict(os.environ, {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}):
            _bundle_configuration_changed()
            yield
    finally:
        _bundle_configuration_changed()
        sys.path[:] = path  # parse puts the bundle's root on it
        shutil.rmtree(folder, ignore_errors=True)


def _bundle_configuration_changed() -> None:
    """apache-airflow-core 3.4 reads the DAG bundles' configuration once per process (a cached snapshot): have it
    read again, the configuration having changed (earlier cores read it whenever a bundles manager is made)."""
    from airflow.dag_processing.bundles import manager

    snapshot = getattr(manager, "_load_bundle_config_snapshot", None)
    if hasattr(snapshot, "cache_clear"):
        snapshot.cache_clear()


def _in_a_child_process(live) -> "tuple[list, int]":
    """Run ``live`` (a try, telling its reporter what happens) in a forked child process; what it reported before it
    ended, and how its process ended (its exit status, negative for a death by signal)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it never returns into the test
        status = 0
        try:
            os.close(read_end)
            out = os.fdopen(write_end, "w", buffering=1)
            live(lambda event: out.write(json.dumps(_as_data(event)) + "\n"))
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + TRY_DEADLINE_SECONDS
    with os.fdopen(read_end, "rb", buffering=0) as lines:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([lines], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the try did not end within {TRY_DEADLINE_SECONDS:.0f} s; its process was killed")
            chunk = lines.read(1 << 16)
            if not chunk:
                break
            data += chunk
    _, wait_status = os.waitpid(pid, 0)
    events = [_from_data(json.loads(line)) for line in data.decode().splitlines()]
    return events, os.waitstatus_to_exitcode(wait_status)


def _as_data(event: tuple) -> list:
    return ["sent", event[1].type, event[1].state, event[1].delivered] if event[0] == "sent" else list(event)


def _from_data(event: list) -> tuple:
    return ("sent", Sent(*event[1:])) if event[0] == "sent" else tuple(event)


def _try_of(events: list, process_exit: "int | None", should_retry: bool) -> Try:
    """The ``Try`` the reported ``events`` make: its exit ``main``'s, or, where ``main`` never chose one (its process
    died first), ``process_exit``."""
    sent = [e[1] for e in events if e[0] == "sent"]
    decided = [e[1] for e in events if e[0] == "decided"]
    exit_code = next((e[1] for e in events if e[0] == "exit"), process_exit)
    child = [e[1] for e in events if e[0] == "forked_child"]
    through = any(s.delivered and s.type in TERMINAL_FRAMES for s in sent)
    return Try(decided[0] if decided else None, exit_code, sent,
               None if through else final_state_for(exit_code, should_retry),
               [e[1] for e in events if e[0] == "callback"], sum(1 for e in events if e[0] == "on_kill"),
               child[0] if child else None)


# --- code: wire ---
#: How long the task process awaits the answer to its request, and how it exits when none came.
ANSWER_WAIT_SECONDS = 5.0
NO_ANSWER = 3


def read_frame(fd: int) -> bytes:
    """One frame from the requests channel: its 4-byte big-endian length, then that many bytes."""
    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise EOFError("the supervisor closed the channel")
            data += chunk
        return data
    return read(int.from_bytes(read(4), "big"))


def answered(fd: int) -> bool:
    """Whether a frame comes back on ``fd`` within ``ANSWER_WAIT_SECONDS``."""
    if not select.select([fd], [], [], ANSWER_WAIT_SECONDS)[0]:
        return False
    with suppress(EOFError):
        read_frame(fd)
        return True
    return False


@dataclasses.dataclass
class Supervised:
    """What came of one attempt of a real task process: its exit, the supervisor's ``final_state`` (None when
    ``wait()`` raised before it decided one), what ``wait()`` raised, and the client's calls by name."""

    exit_code: "int | None"
    final_state: "str | None"
    raised: "str | None"
    calls: list


def supervise(child) -> Supervised:
    """Fork a task process running ``child`` under the real ``ActivitySubprocess.start`` (its requests channel is the
    child's fd 0, StartupDetails its first frame) and ``wait()`` for it, the client a mock that answers every call."""
    client = mock.MagicMock(name="Client")
    client.task_instances.start.return_value = run_context(max_tries=0, should_retry=False)
    sup = ActivitySubprocess.start(dag_rel_path=os.devnull, bundle_info=BundleInfo(name="exported", version=None),
                                   what=task_instance(1), client=client, target=child)
    raised = None
    try:
        sup.wait()
    except Exception as e:  # what escaped the supervisor: part of what it did
        raised = type(e).__name__
    finally:
        if sup._exit_code is None:  # wait() left the process running: end it here, so the test leaves nothing behind
            with suppress(OSError):
                os.kill(sup.pid, signal.SIGKILL)
                os.waitpid(sup.pid, 0)
    final = state_name(sup.final_state) if sup._exit_code is not None else None
    return Supervised(sup._exit_code, final, raised, [c[0] for c in client.task_instances.method_calls])


# --- code: server ---
#: The Execution API app in process answers the client from task-sdk 1.1.2 (apache-airflow-core 3.1.2) on: before, the
#: client sends its bodies with no content type, which the app refuses 422 (and core 3.0's has no DAG bag either).
SERVER_SINCE = (1, 1, 2)
#: The DAGs the runs are of: ``exported_rN``, one task whose ``retries`` is N (the server reads it where the row's
#: counts are not enough).
RETRIES_MAX = 3
DAG_FILE = f"""from airflow.sdk import DAG, BaseOperator

for retries in range({RETRIES_MAX} + 1):
    with DAG(f"exported_r{{retries}}", schedule=None, catchup=False):
        BaseOperator(task_id="task", retries=retries)
"""


#: The DAG folder, one per process whatever the server: apache-airflow-core 3.4 reads its DAG bundles' configuration
#: once per process.
DAGS_FOLDER = os.path.join(tempfile.gettempdir(), f"airflow-exported-dags-{os.getpid()}")


class ExecutionAPIServer:
    """apache-airflow-core's Execution API app in process (``InProcessExecutionAPI``, as ``dag.test()`` serves it:
    no sockets, no auth) on a SQLite database in a temporary ``AIRFLOW_HOME``, migrated as ``airflow db migrate``
    does, with the DAGs serialised into it as the DAG processor does. Airflow's configuration points there through
    the environment while it runs; ``close`` puts it back."""

    def __init__(self):
        if _task_sdk_version() < SERVER_SINCE:
            pytest.skip("the Execution API app in process answers the client from task-sdk 1.1.2 on (before, the "
                        "client's bodies carry no content type and are refused 422)")
        self.home = tempfile.mkdtemp(prefix="airflow-home-")
        dags = DAGS_FOLDER
        os.makedirs(dags, exist_ok=True)
        with open(os.path.join(dags, "exported.py"), "w") as f:
            f.write(DAG_FILE)
        bundles = [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": dags}}]
        self.environ = mock.patch.dict(os.environ, {
            "AIRFLOW_HOME": self.home, "AIRFLOW__CORE__DAGS_FOLDER": dags, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__API_AUTH__JWT_SECRET": "exported", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)})
        self.environ.start()
        os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", None)  # derived from the one above
        try:
            self._bind()
            from airflow.utils import db

            db.upgradedb()
            self._serialise_the_dag()
            from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

            self.api = InProcessExecutionAPI()
            self.transport = self.api.transport
        except BaseException:
            self.close()
            raise

    def _close_the_apps_loop(self) -> None:
        """The app's event loop stopped and closed. ``InProcessExecutionAPI`` stops it when its transport is collected,
        never closes it; collected later unclosed (at the latest as the interpreter exits), it is reported, or its
        ``__del__`` fails with ``ValueError: Invalid file descriptor: -1`` when its sockets were finalized first."""
        loop = getattr(getattr(getattr(self, "transport", None), "app", None), "loop", None)  # a2wsgi's middleware's
        self.api = self.transport = None
        gc.collect()  # the transport's finalizer ends the app's lifespan, stops the loop and joins its thread
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.close()

    @staticmethod
    def _bind() -> None:
        """Airflow's ORM bound to the database the environment names now."""
        from airflow import settings

        settings.dispose_orm(do_log=False)
        settings.configure_vars()
        settings.configure_orm()

    @staticmethod
    def _serialise_the_dag() -> None:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.utils.session import create_session

        manager = DagBundlesManager()
        with create_session() as session:
            manager.sync_bundles_to_db(session=session)
        bundle = manager.get_bundle("dags-folder")
        bundle.initialize()
        try:  # apache-airflow-core 3.2 on
            from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
        except ImportError:
            from airflow.models.dagbag import DagBag, sync_bag_to_db

            bag = DagBag(dag_folder=bundle.path, include_examples=False)
        else:
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if len(bag.dags) != RETRIES_MAX + 1:
            raise RuntimeError(f"the DAGs in {bundle.path} did not parse: {bag.import_errors or 'none found'}")
        sync_bag_to_db(bag, bundle.name, bundle.version)

    def new_run(self, retries: int) -> str:
        """A new DagRun (``create_dagrun``) of the DAG whose task has ``retries``, its task instance's first try
        QUEUED as the scheduler queues it (max_tries = retries): its run id."""
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        now = datetime.now(timezone.utc)
        run_id = f"exported__{uuid.uuid4().hex}"
        with create_session() as session:
            dag = DBDagBag().get_latest_version_of_dag(f"exported_r{retries}", session=session)
            run = dag.create_dagrun(run_id=run_id, run_after=now, run_type=DagRunType.MANUAL,
                                    state=DagRunState.RUNNING, triggered_by=DagRunTriggeredByType.TEST,
                                    start_date=now, session=session)
            (ti,) = run.task_instances
            ti.try_number, ti.max_tries, ti.state, ti.queued_dttm = 1, retries, TaskInstanceState.QUEUED, now
        return run_id

    def row(self, run_id: str) -> "tuple[uuid.UUID, str | None, int]":
        """The live task instance of ``run_id`` (read by run id: a retry gives the live row a new id): its id, state
        and try_number."""
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session

        with create_session() as session:
            ti = session.query(TI).filter(TI.run_id == run_id).one()
            return uuid.UUID(str(ti.id)), state_name(ti.state), ti.try_number

    def requeue(self, run_id: str) -> None:
        """The scheduler queues the next try of a task instance UP_FOR_RETRY (or UP_FOR_RESCHEDULE): its own
        ``DagRun.schedule_tis`` (SCHEDULED, try_number + 1), then the state change to QUEUED as it hands the try to
        an executor. The dependency checks before (the retry delay, upstreams) are not in the way here."""
        from airflow.models.dagbag import DBDagBag
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            ti = session.query(TI).filter(TI.run_id == run_id).one()
            ti.task = DBDagBag().get_latest_version_of_dag(ti.dag_id, session=session).get_task("task")
            ti.dag_run.schedule_tis([ti], session=session)
            session.flush()
            session.refresh(ti)
            if ti.state == TaskInstanceState.SCHEDULED:
                ti.state, ti.queued_dttm = TaskInstanceState.QUEUED, datetime.now(timezone.utc)

    def close(self) -> None:
        self._close_the_apps_loop()
        self.environ.stop()
        self._bind()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(DAGS_FOLDER, ignore_errors=True)


_servers: "list[ExecutionAPIServer]" = []


def execution_api_server() -> ExecutionAPIServer:
    """The module's server: made and migrated on first use, closed as the module's tests end."""
    if not _servers:
        _servers.append(ExecutionAPIServer())
    return _servers[0]


def close_execution_api_server() -> None:
    while _servers:
        _servers.pop().close()


@pytest.fixture(scope="module", autouse=True)
def _execution_api_server_of_the_module():
    """The server made before the module's tests run (one that cannot be had is an error of the set-up, not a failure
    of a test), closed after them."""
    execution_api_server()
    yield
    close_execution_api_server()


class RealExecutionAPI:
    """``ExecutionAPI``'s part played by the real app, for the try the live task instance of ``run_id`` is queued
    for; the supervisor's client is Airflow's ``Client`` over the app, each call tried as the worker's
    ``[workers] execution_api_retries`` = ``tries`` says (without the waits between).
    ``faults`` as ``ExecutionAPI``'s, made at the transport: "lost" is the server applying the request, its answer
    never arriving. ``row`` is the database's; ``calls`` each call with its answer as the supervisor saw it."""

    CALLS = ("start", "heartbeat", "finish", "succeed", "retry", "defer", "reschedule", "await_input",
             "skip_downstream_tasks")

    def __init__(self, server: ExecutionAPIServer, run_id: str, *, tries: int):
        self.server, self.run_id, self.tries = server, run_id, tries
        self.ti_id, _, self.try_number = server.row(run_id)
        self.faults: dict[str, list[str]] = {}
        self.armed: "list[str]" = []
        self.calls: list[Call] = []
        self.context = None  # the TIRunContext the start call got
        self.gone = None  # heartbeats are not played here: the server never takes the task instance away
        self.heartbeat_answer = 200

    @property
    def row(self) -> "str | None":
        return self.server.row(self.run_id)[1]

    def client(self) -> Client:
        retried = "_request_with_retry" if hasattr(Client, "_request_with_retry") else "request"  # 1.4.0 on
        tries = self.tries
        retry = getattr(Client, retried).retry_with(stop=lambda state: state.attempt_number >= tries,
                                                    wait=lambda state: 0)
        client = type("Client", (Client,), {retried: retry})(base_url="http://in-process.invalid./", token="",
                                                               transport=FaultyTransport(self.server.transport, self))
        client.__dict__["task_instances"] = RecordedOperations(client.task_instances, self)  # a cached_property
        return client

    def recorded(self, name: str, method):
        """``method``, the client's call ``name``, with this call's fault armed and its answer recorded."""
        def call(*args, **kwargs):
            state = state_name(kwargs.get("state")) if name == "finish" else None
            self.armed = self.faults.get(name, [])
            try:
                result = method(*args, **kwargs)
            except ServerResponseError as e:
                self.calls.append(Call(name, e.response.status_code, state))
                raise
            except httpx.TransportError:
                self.calls.append(Call(name, "timeout", state))
                raise
            finally:
                self.armed = []
            self.calls.append(Call(name, 200, state))
            if name == "start":
                self.context = result
            return result
        return call


class RecordedOperations:
    """The client's ``task_instances``, each call of the supervisor's recorded by ``api``."""

    def __init__(self, operations, api: RealExecutionAPI):
        self.operations, self.api = operations, api

    def __getattr__(self, name: str):
        method = getattr(self.operations, name)
        return self.api.recorded(name, method) if name in RealExecutionAPI.CALLS else method


class FaultyTransport(httpx.BaseTransport):
    """The app's transport, each try of the call being made meeting the first of its faults ``api.armed`` (``met``):
    "transient" (that try gets a 500), "permanent" (it and every later try get a 500), "lost" (that try is applied,
    and its answer lost)."""

    def __init__(self, inner, api: RealExecutionAPI):
        self.inner, self.api = inner, api

    def handle_request(self, request):
        fault = met(self.api.armed)
        if fault in ("transient", "permanent"):
            return httpx.Response(500, json={"detail": {"reason": "injected"}}, request=request)
        response = self.inner.handle_request(request)
        if fault == "lost":
            response.read()
            raise httpx.ReadTimeout("the answer never arrived", request=request)
        return response


# --- code: lifecycle_task_runner ---
def task_runner_try(error: "BaseException | None", failing: "str | None"):
    """A try's runtime: the real task runner (``run_try``) meeting ``error`` under the run context the server handed
    the supervisor, its channel's sends failing as ``failing`` says; the requests that got through are handed to the
    supervisor, then the task process exits as ``main`` did."""
    def events(api: RealExecutionAPI) -> list:
        tried = run_try(error, try_number=api.try_number, max_tries=api.context.max_tries,
                        should_retry=api.context.should_retry, failing=failing)
        return [*(("send", s.msg) for s in tried.sent if s.delivered), ("exit", tried.exit_code)]
    return events


# --- code: lifecycle ---
def fails_closed(replies: list) -> int:
    """A coordinator-mode runtime's exit after its failure report, as the runtimes' contract has it (the Java SDK's
    and the Python task runner's way): 1 unless the supervisor answered the report OK."""
    return 0 if replies[-1:] == ["ok"] else 1


@dataclasses.dataclass
class LivedTry:
    """One try of the task instance: the run context the server handed it (``ti_run``), whether the task failed in a
    way the design retries (nothing asked for no retry), what the supervisor reported (``final_state``; None when
    ``wait()`` raised first), the row at the try's end, and after the scheduler's step."""

    try_number: int
    max_tries: int
    should_retry: bool
    failure: bool
    final_state: "str | None"
    row: "str | None"
    row_after: str
    exit_code: "int | None"
    raised: "str | None"
    calls: list

    def __repr__(self) -> str:
        ended = f"final_state={self.final_state}" if self.raised is None else f"wait() raised {self.raised}"
        return (f"try {self.try_number} (max_tries={self.max_tries}, should_retry={self.should_retry}): exit "
                f"{self.exit_code}, {ended}, row {self.row}, then {self.row_after}; calls {self.calls}")


@dataclasses.dataclass
class Life:
    """A task instance's life across tries on the real Execution API."""

    retries: int
    tries: list


def live(retries: int, tries: list) -> Life:
    """A task instance of a task with ``retries`` lives ``tries`` (each ``(events, failure, client tries)``: its
    runtime's events for ``run_attempt``, whether the task fails, the worker's ``execution_api_retries``) on the real
    Execution API: each try the real ``ActivitySubprocess`` supervises on the live row; after it the scheduler's
    step (``requeue``) queues the next try of a row UP_FOR_RETRY. The life ends when the row is not queued again."""
    server = execution_api_server()
    run_id = server.new_run(retries)
    life = Life(retries, [])
    for events, failure, client_tries in tries:
        api = RealExecutionAPI(server, run_id, tries=client_tries)
        attempt = run_attempt(api, events)
        if attempt.row in ("up_for_retry", "up_for_reschedule"):
            server.requeue(run_id)
        _, state, try_number = server.row(run_id)
        life.tries.append(LivedTry(api.try_number, api.context.max_tries, api.context.should_retry, failure,
                                   attempt.final_state, attempt.row, f"{state} (try_number {try_number})",
                                   attempt.exit_code, attempt.raised, attempt.calls))
        if state != "queued":
            break
    return life


# --- code: launcher ---
coordinators = pytest.importorskip("airflow.sdk.coordinators._subprocess",
                                   reason="the supervisor that launches a runtime command came in task-sdk 1.3.0")

#: The runtime the supervisor launches: it connects to ``--comm`` and ``--logs`` as the SDKs' runtimes do, reads its
#: StartupDetails frame (a 4-byte big-endian length, then the body) and exits with the code it is given.
RUNTIME = """
import socket, sys
addresses = dict(arg[2:].split("=", 1) for arg in sys.argv[2:] if arg.startswith("--"))
comm, logs = (socket.create_connection((a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])))
              for a in (addresses["comm"], addresses["logs"]))
def read(n):
    data = b""
    while len(data) < n:
        chunk = comm.recv(n - len(data))
        if not chunk:
            sys.exit(2)
        data += chunk
    return data
read(int.from_bytes(read(4), "big"))
sys.exit(int(sys.argv[1]))
"""


def listening() -> set:
    """The file descriptors of this process's listening TCP sockets."""
    process = psutil.Process()
    connections = process.net_connections("tcp") if hasattr(process, "net_connections") else process.connections("tcp")
    return {c.fd for c in connections if c.status == psutil.CONN_LISTEN}


def refused(status: int) -> ServerResponseError:
    request = httpx.Request("PATCH", "http://execution-api.invalid/task-instances/state")
    return ServerResponseError.from_response(httpx.Response(status, json={"detail": {"reason": "refused"}},
                                                            request=request))


@dataclasses.dataclass
class Launched:
    """What came of one attempt of a launched runtime: its exit, the supervisor's ``final_state`` (None when ``wait()``
    raised before it decided one), what ``wait()`` raised, the client's calls by name, and how many listening sockets
    the supervisor left open once ``wait()`` was over."""

    exit_code: "int | None"
    final_state: "str | None"
    raised: "str | None"
    calls: list
    left_listening: int


def launch(exit_code: int, failing: list) -> Launched:
    """The real ``_PopenActivitySubprocess.start`` launching ``RUNTIME`` (exiting ``exit_code``) and its ``wait()``,
    the client a mock that answers every call but the first call of each of ``failing``, refused 500. The sockets the
    supervisor leaves listening are counted, then closed here, so the test leaves nothing behind."""
    client = mock.MagicMock(name="Client")
    client.task_instances.start.return_value = run_context(max_tries=0, should_retry=False)
    for name in failing:
        getattr(client.task_instances, name).side_effect = [refused(500), None, None]
    before = listening()
    sup = coordinators._PopenActivitySubprocess.start(
        what=task_instance(1), dag_rel_path=os.devnull, bundle_info=BundleInfo(name="exported", version=None),
        client=client, command=[sys.executable, "-c", RUNTIME, str(exit_code)])
    raised = None
    try:
        sup.wait()
    except Exception as e:  # what escaped the supervisor: part of what it did
        raised = type(e).__name__
    finally:
        if sup._exit_code is None:  # wait() left the process running: end it here
            with suppress(OSError):
                os.kill(sup.pid, signal.SIGKILL)
    left = listening() - before
    for sock in [o for o in gc.get_objects() if isinstance(o, socket.socket)]:
        with suppress(OSError):
            if sock.fileno() in left:
                sock.close()
    final = state_name(sup.final_state) if sup._exit_code is not None else None
    return Launched(sup._exit_code, final, raised, [c[0] for c in client.task_instances.method_calls], len(left))
