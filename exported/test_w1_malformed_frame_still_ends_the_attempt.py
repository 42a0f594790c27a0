"""W1: a request frame whose payload is not msgpack (or not an [id, body, carrier] array, or has a non-integer id)
makes wait() raise: no final state, no finish(), the TI stays RUNNING, the process is neither killed nor reaped, and
the supervisor's sockets and servers stay open.

Where: supervisor.length_prefixed_frame_reader calls msgspec's decode without catching DecodeError/ValidationError;
the exception leaves _service_subprocess and _monitor_subprocess, so wait() never reaches
update_task_state_if_needed.

Releases (apache-airflow-task-sdk): from 1.0.3, still on the newest. This test fails on those and passes on the
others: it is the fix's regression test.

Correct behaviour (malformed_frame_still_ends_the_attempt): a request frame the supervisor cannot decode does not
end its supervision: wait() still sees the exit, decides a final state and reports it.

How sure: contradicts Airflow's documented intent: task-sdk supervisor.py, ActivitySubprocess._cleanup_open_sockets
(its comment): "Without closing these sockets the supervisor would wait forever thinking they are still active. This
cleanup ensures we always release resources and exit."; apache/airflow#66574 (potiuk, merged): "leaving the
TaskInstance stuck RUNNING on the server forever, blocking downstream dependencies and triggering false alerts".

The run (finalstate's minimal counterexample): write 00000004c1c1c1c1 (a payload that is not msgpack); exit 1.

Exported by `finalstate export` from finalstate's findings registry. It needs only apache-airflow-task-sdk and
pytest; its place in Airflow is task-sdk/tests/task_sdk/execution_time/ (it forks the task process, as
test_supervisor.py's tests of ActivitySubprocess.start do).
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import signal
import uuid
from contextlib import suppress
from datetime import datetime, timezone
from unittest import mock

from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
from airflow.sdk.execution_time.comms import BundleInfo
from airflow.sdk.execution_time.supervisor import ActivitySubprocess

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


def child():
    """The task process: write 00000004c1c1c1c1 (a payload that is not msgpack); exit 1."""
    read_frame(0)  # StartupDetails
    os.write(0, bytes.fromhex("00000004c1c1c1c1"))
    os._exit(1)


def minimal_run() -> Supervised:
    """W1's run: write 00000004c1c1c1c1 (a payload that is not msgpack); exit 1"""
    return supervise(child)


def test_w1_malformed_frame_still_ends_the_attempt():
    attempt = minimal_run()
    assert attempt.raised is None and attempt.final_state is not None, (
        f"A request frame the supervisor cannot decode made wait() raise {attempt.raised}: no final state was decided "
        f"and nothing reported the attempt (client calls: {attempt.calls}), so the task instance stays RUNNING.")
