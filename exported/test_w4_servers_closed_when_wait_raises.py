"""W4: when wait() raises (here: the closing finish() fails, finding F3) the coordinator's two listening sockets are
never closed: a worker leaks two descriptors per such task.

Where: _PopenActivitySubprocess.wait calls super().wait() and only then _close_unused_sockets(...), without
try/finally.

Releases (apache-airflow-task-sdk): from 1.3.0, still on the newest. This test fails on those and passes on the
others: it is the fix's regression test. Before task-sdk 1.3.0 it is skipped: the supervisor that launches a runtime
command came in 1.3.0.

Correct behaviour (servers_closed_when_wait_raises): whatever wait() raises, the supervisor closes the sockets it
opened: its two listening sockets (--comm, --logs) are closed once wait() is over.

How sure: contradicts Airflow's documented intent: task-sdk supervisor.py, ActivitySubprocess._cleanup_open_sockets
(its comment): "Without closing these sockets the supervisor would wait forever thinking they are still active. This
cleanup ensures we always release resources and exit.".

The run (finalstate's minimal counterexample): try_number=1 max_tries=0 should_retry=false execution_api_retries=1;
fault finish transient; exit 1.

Exported by `finalstate export` from finalstate's findings registry. It needs only apache-airflow-task-sdk and
pytest; its place in Airflow is task-sdk/tests/task_sdk/execution_time/ (it launches a runtime command, as the
coordinators' tests of _PopenActivitySubprocess do).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
import signal
import socket
import sys
import uuid
from contextlib import suppress
from datetime import datetime, timezone
from unittest import mock

import psutil
import pytest
from airflow.sdk.api.client import ServerResponseError
from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
from airflow.sdk.execution_time.comms import BundleInfo
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


def minimal_run() -> Launched:
    """W4's run: try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault finish transient; exit 1"""
    return launch(exit_code=1, failing=['finish'])


def test_w4_servers_closed_when_wait_raises():
    attempt = minimal_run()
    assert attempt.left_listening == 0, (
        f"wait() raised {attempt.raised} (exit {attempt.exit_code}, client calls {attempt.calls}) and the supervisor "
        f"left {attempt.left_listening} listening socket(s) open: a worker leaks them for every such task.")
