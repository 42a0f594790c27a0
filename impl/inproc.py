"""Target ``airflow-inproc``: a scenario replayed onto the real ``ActivitySubprocess``, in process.

Nothing of the supervisor is re-implemented here. The real ``wait()`` runs the real
``_monitor_subprocess`` loop; only the edges of the process are stood in for:

- the selector: each ``select()`` is one wake-up of the loop, and delivers the scenario's
  next event (a frame, encoded on the wire and decoded by Airflow's own frame decoder,
  into the real ``handle_requests`` generator; or a due heartbeat; or the overtime clock
  running out; or the process exit);
- the process: dies of the first signal the supervisor sends it, else exits as the scenario says;
- the Execution API client: answers from ``model.server.Server`` (the server's rules and the
  scenario's faults), raising what Airflow's client raises, and records every call;
- the child's socket: response frames are decoded to learn what the runtime was told.
"""

from __future__ import annotations

import copy
import functools
import logging
import signal
import subprocess
import time
import uuid
from collections import deque
from datetime import datetime, timezone

import httpx
import msgspec
import structlog
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext
from airflow.sdk.execution_time import supervisor as airflow_supervisor
from airflow.sdk.execution_time.comms import _RequestFrame
from airflow.sdk.execution_time.supervisor import ActivitySubprocess, NeverRaised, ProcessTracker

from impl import codec
from model.scenario import TIMEOUT, ApiCall, RunContext, Fault, Heartbeat, Observation, Overtime, Scenario, Send
from model.server import OK, Server
from model.supervisor import MAX_FAILED_HEARTBEATS

_REQUEST_DECODER = msgspec.msgpack.Decoder(_RequestFrame)
# The supervisor logs every frame and every refused call; in a checker running thousands of
# scenarios that is noise and time. Its loggers are structlog proxies, so this reaches them.
structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
_QUIET = structlog.get_logger("finalstate")
_REQUEST = httpx.Request("PATCH", "http://execution-api.invalid/")
TI_ID = uuid.UUID(int=1)

if airflow_supervisor.MAX_FAILED_HEARTBEATS != MAX_FAILED_HEARTBEATS:
    raise RuntimeError(
        f"[workers] max_failed_heartbeats is {airflow_supervisor.MAX_FAILED_HEARTBEATS}; "
        f"the model assumes Airflow's default of {MAX_FAILED_HEARTBEATS}"
    )


@functools.lru_cache(maxsize=None)
def _error_prototype(status: int | str) -> Exception:
    if status == TIMEOUT:
        return httpx.ReadTimeout("the answer never arrived", request=_REQUEST)
    response = httpx.Response(status, json={"detail": {"reason": "finalstate"}}, request=_REQUEST)
    return ServerResponseError.from_response(response)


def api_error(status: int | str) -> Exception:
    """What Airflow's client raises for a failed call: ``ServerResponseError``, or a timeout.

    A fresh copy each time (a raised exception keeps its traceback); building the httpx
    response anew per call was most of this binding's cost.
    """
    return copy.copy(_error_prototype(status))


@functools.lru_cache(maxsize=None)
def _run_context(context: RunContext) -> TIRunContext:
    """The ``TIRunContext`` the server hands out; the supervisor only reads it."""
    return TIRunContext.model_construct(
        dag_run=DagRun.model_construct(), max_tries=context.max_tries,
        should_retry=context.should_retry, start_date=None,
    )


class RecordingTaskInstances:
    """``client.task_instances``, answering from the server model and recording each call."""

    def __init__(self, scenario: Scenario):
        self.context = scenario.context
        self.server = Server.queued(scenario.context)
        self.calls: list[ApiCall] = []
        self.heartbeat_answer = 200

    def _answer(self, name: str, status: int | str, state: str | None = None) -> None:
        self.calls.append(ApiCall(name, status, state))
        if status != OK:
            raise api_error(status)

    def _call(self, name: str, state: str | None = None) -> None:
        self.server, status = self.server.call(name, state)
        self._answer(name, status, state)

    def start(self, id, pid, when) -> TIRunContext:
        self.server, status = self.server.start()
        self._answer("start", status)
        return _run_context(self.context)

    def heartbeat(self, id, pid) -> None:
        self.server, status = self.server.heartbeat(self.heartbeat_answer)
        self._answer("heartbeat", status)

    def finish(self, id, state, when, rendered_map_index) -> None:
        self._call("finish", str(getattr(state, "value", state)))

    def succeed(self, id, when, task_outlets, outlet_events, rendered_map_index) -> None:
        self._call("succeed")

    def retry(self, id, end_date, rendered_map_index, retry_delay_seconds=None, retry_reason=None) -> None:
        self._call("retry")

    def defer(self, id, msg) -> None:
        self._call("defer")

    def reschedule(self, id, msg) -> None:
        self._call("reschedule")

    def await_input(self, id, msg) -> None:
        self._call("await_input")

    def skip_downstream_tasks(self, id, msg) -> None:
        self._call("skip_downstream_tasks")


class RecordingClient:
    def __init__(self, scenario: Scenario):
        self.task_instances = RecordingTaskInstances(scenario)


class ScriptedProcess(ProcessTracker):
    """The task process: alive until the scenario's exit, or until the supervisor signals it."""

    ProcessNotFound = NeverRaised
    TimeoutExpired = subprocess.TimeoutExpired

    def __init__(self):
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return 4242

    def send_signal(self, s: signal.Signals) -> None:
        if self.exit_code is None:
            self.exit_code = -int(s)

    def wait(self, timeout: float | None) -> int:
        if self.exit_code is None:
            raise subprocess.TimeoutExpired("task", timeout)
        return self.exit_code


class ChildEnd:
    """The child's end of the comms socket: reads the supervisor's response frames.

    The first frame is StartupDetails, which is no reply to anything.
    """

    def __init__(self):
        self.replies: list[str] = []
        self.started = False

    def sendall(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            return
        frame = codec.decode_response(bytes(data))
        self.replies.append("error" if frame.error else "ok")

    def close(self) -> None:
        pass


class ScriptedSelector:
    """The monitor loop's selector: each ``select()`` is a wake-up that delivers the next event."""

    def __init__(self, scenario: Scenario, process: ScriptedProcess, client: RecordingClient):
        self.events = deque(scenario.events)
        self.exit_code = scenario.exit_code
        self.process = process
        self.ti = client.task_instances
        self.next_id = 1

    def attach(self, supervisor: ActivitySubprocess) -> None:
        self.supervisor = supervisor
        self.requests = supervisor.handle_requests(_QUIET)
        next(self.requests)

    def select(self, timeout=None):
        sup = self.supervisor
        if self.process.exit_code is not None:
            return []  # dead: nothing more arrives, kill()'s wait sees the exit at once
        now = time.monotonic()
        sup._last_heartbeat_attempt = now  # no heartbeat falls due unless the event says so
        if not self.events:
            self.process.exit_code = self.exit_code
            return []
        event = self.events.popleft()
        if isinstance(event, Send):
            self._deliver(event)
        elif isinstance(event, Fault):
            self.ti.server = self.ti.server.arm(event)
        elif isinstance(event, Heartbeat):
            self.ti.heartbeat_answer = event.answer
            sup._last_heartbeat_attempt = now - airflow_supervisor.MIN_HEARTBEAT_INTERVAL - 1
        elif isinstance(event, Overtime) and sup._task_end_time_monotonic is not None:
            sup._task_end_time_monotonic = now - airflow_supervisor.TASK_OVERTIME_THRESHOLD - 1
        return []

    def _deliver(self, event: Send) -> None:
        """Put one frame on the wire and hand it to the supervisor as its frame reader would."""
        data = codec.encode_request(codec.RequestFrame(self.next_id, codec.terminal_body(event.frame, event.state)))
        self.next_id += 1
        self.requests.send(_REQUEST_DECODER.decode(data[codec.HEADER_SIZE:]))

    def register(self, *args, **kwargs):
        raise AssertionError("the in-process target registers no file objects")

    def unregister(self, fileobj):
        raise KeyError(fileobj)

    def get_key(self, fileobj):
        raise KeyError(fileobj)

    def close(self) -> None:
        pass


def _supervisor(scenario: Scenario, client) -> tuple[ActivitySubprocess, ChildEnd]:
    """A real ``ActivitySubprocess`` wired to the scripted process, selector and child socket."""
    process, child = ScriptedProcess(), ChildEnd()
    selector = ScriptedSelector(scenario, process, client)
    sup = ActivitySubprocess(id=TI_ID, pid=process.pid, process=process, stdin=child, process_log=_QUIET,
                             client=client, selector=selector)
    selector.attach(sup)
    return sup, child


def run(scenario: Scenario) -> Observation:
    """Replay ``scenario`` onto a real ``ActivitySubprocess`` and observe it."""
    client = RecordingClient(scenario)
    sup, child = _supervisor(scenario, client)
    sup._on_child_started(ti=_task_instance(scenario.context.try_number), dag_rel_path="dag.py", bundle_info=None,
                          sentry_integration="")
    raised = None
    try:
        sup.wait()
    except Exception as e:  # the supervisor raising is part of what it did
        raised = _error_name(e)
    row = client.task_instances.server.row
    return Observation(
        exit_code=sup._exit_code,
        final_state=str(getattr(sup.final_state, "value", sup.final_state)),
        calls=tuple(client.task_instances.calls),
        replies=tuple(child.replies),
        row=row.state,
        row_gone=row.gone,
        raised=raised,
    )


@functools.lru_cache(maxsize=None)
def _task_instance(try_number: int):
    return airflow_supervisor.TaskInstance.model_construct(id=TI_ID, try_number=try_number)


def _error_name(e: Exception) -> str:
    if isinstance(e, ServerResponseError):
        return f"ServerResponseError({e.response.status_code})"
    return type(e).__name__


def raw_rate_probe(scenario: Scenario, client=None) -> str:
    """The benchmark's floor: the real supervisor's methods called directly, no event loop or wire.

    With ``client=None`` this binding's recording client answers; pass a ``unittest.mock.MagicMock``
    to measure the rate the design quotes (every call succeeds, nothing recorded).
    """
    sup, _ = _supervisor(scenario, client or RecordingClient(scenario))
    sup._should_retry = scenario.context.should_retry
    for event in scenario.events:
        if isinstance(event, Send):
            msg = ActivitySubprocess.decoder.validate_python(codec.terminal_body(event.frame, event.state))
            try:
                sup._handle_request(msg, _QUIET, 1)
            except Exception:
                pass
    sup._exit_code = scenario.exit_code
    try:
        sup.update_task_state_if_needed()
    except Exception:
        pass
    return sup.final_state


def target(name: str):
    from impl.targets import Target

    return Target(name, run)
