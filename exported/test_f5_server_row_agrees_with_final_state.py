"""F5: a replayed SucceedTask makes the row SUCCESS while final_state says FAILED (likewise any terminal call the
supervisor counted as failed that still reached the server: replayed, or applied with its answer lost).

Where: ActivitySubprocess._replay_pending_terminal_state_msg succeeds on the server, but final_state looks only at
the non-zero exit (the Python task runner's fail-closed exit after a failed send).

Releases (apache-airflow-task-sdk): from 1.2.2, still on the newest. This test fails on those and passes on the
others: it is the fix's regression test.

Correct behaviour (server_row_agrees_with_final_state): the server's row ends in the state the supervisor reports as
final_state (SERVER_TERMINATED: the server took the task instance away).

How sure: contradicts Airflow's documented intent: task-sdk supervisor.py, ActivitySubprocess.final_state (its
docstring): "The final state of the TaskInstance."; apache/airflow#66574 (potiuk, merged): "leaving the TaskInstance
stuck RUNNING on the server forever, blocking downstream dependencies and triggering false alerts".

The run (finalstate's minimal counterexample): try_number=1 max_tries=0 should_retry=false execution_api_retries=1;
fault succeed transient; send SucceedTask; exit 1. As finalstate's model of task-sdk 1.3.2 has it, the supervisor's
calls are start->200, succeed->500, succeed->200; its final_state is failed and the server's row success.

Exported by `finalstate export` from finalstate's findings registry. It needs only apache-airflow-task-sdk and
pytest; its place in Airflow is task-sdk/tests/task_sdk/execution_time/.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import uuid
from datetime import datetime, timezone
from unittest import mock

import psutil
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
from airflow.sdk.execution_time.comms import _RequestFrame
from airflow.sdk.execution_time.comms import SucceedTask
from airflow.sdk.execution_time.supervisor import ActivitySubprocess

try:  # the client is built on httpx2 from task-sdk 1.4.0, on httpx before
    import httpx2 as httpx
except ImportError:
    import httpx

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


class ExecutionAPI:
    """The Execution API for one task instance, behind a ``mock`` of the supervisor's ``Client``.

    It keeps the row's state as the server's ``ti_update_state`` moves it: a state update of a RUNNING row is
    applied (a retry archives the try, and the live row gets a new id, so the old id is answered 404 from then
    on); of a row that already left RUNNING, refused 409 (``REPEATED_STATE_IS_OK``). A heartbeat of a row that left
    RUNNING is refused 409; of a RUNNING one it gets ``heartbeat_answer`` (404/409/410: the server took the task
    instance away, and answers every later call so). ``faults`` make a call misbehave, per client method:
    "transient" (the next try gets a 500), "permanent" (every try gets a 500), "lost" (the next try is applied but its
    answer never arrives: an ``httpx.ReadTimeout``). Each call is tried as Airflow's client tries it (``tries``, the
    worker's ``[workers] execution_api_retries``): again after a 5xx or a transport error.
    """

    _STATE_OF_CALL = {"succeed": "success", "retry": "up_for_retry", "defer": "deferred",
                      "reschedule": "up_for_reschedule", "await_input": "awaiting_input"}
    ti_id = TI_ID

    def __init__(self, *, try_number: int, max_tries: int, should_retry: bool, tries: int):
        self.try_number, self.tries = try_number, tries
        self.context = run_context(max_tries, should_retry)
        self.row, self.archived, self.gone = "running", False, None
        self.faults: dict[str, str] = {}
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
        fault = self.faults.get(name)
        if fault == "permanent":
            return 500
        if fault is not None:
            del self.faults[name]
            if fault == "transient":
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
            api.faults[args[0]] = args[1]
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


def minimal_run() -> Attempt:
    """F5's run: try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault succeed transient; send SucceedTask; exit 1"""
    api = ExecutionAPI(try_number=1, max_tries=0, should_retry=False, tries=1)
    events = [
        ('fault', 'succeed', 'transient'),
        ('send', SucceedTask(end_date=NOW, task_outlets=[], outlet_events=[])),
    ]
    return run_attempt(api, events, exit_code=1)


def test_f5_server_row_agrees_with_final_state():
    attempt = minimal_run()
    if attempt.final_state == "server_terminated":  # then the server must have taken the task instance away
        agrees = attempt.gone is not None
    else:
        agrees = attempt.gone is not None or attempt.row == attempt.final_state
    assert agrees, (
        f"The supervisor reports final_state={attempt.final_state}, but the Execution API holds the task instance as "
        f"{attempt.row}: the worker and the server disagree on how the attempt ended. "
        f"Calls (answers as the supervisor saw them): {attempt.calls}")
