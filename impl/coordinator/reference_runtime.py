"""The reference coordinator-mode runtime: the seed's four steps (apache/airflow#67797) done right.

A language SDK runtime as the coordinator convention launches one:
``python impl/coordinator/reference_runtime.py --comm=HOST:PORT --logs=HOST:PORT`` (both appended by
``_PopenActivitySubprocess.start``). Only the standard library, msgpack and
``impl.wire.codec``. It

1. connects to ``--comm`` and ``--logs``, reads the StartupDetails frame, and parses the run
   context from ``ti_context``: ``should_retry`` and ``max_tries`` (``RunContext.decode``);
2. has a ``RetryTask`` outbound message with the Python wire shape (``retry_task``: the body
   ``comms.RetryTask`` has, checked against Airflow's ``schema.json`` in the tests);
3. runs the task registered under the TI's ``task_id`` and, on failure (an error, or a panic:
   any ``BaseException``), sends ``RetryTask`` when ``should_retry``, else ``TaskState(failed)``
   (``decide``, as ``_finalize_task_failure``); success → ``SucceedTask``; a TI id that is not a
   UUID → ``TaskState(failed)``; no task registered under the task_id → ``TaskState(removed)``;
4. exits 0 once the supervisor has acknowledged the terminal frame; if the supervisor answers it
   with an error, or the socket breaks, it exits 1 when the frame was a failure (FAILED or
   UP_FOR_RETRY: fail closed, as the Python task runner does) and 0 otherwise.

The task to run is the TI's ``task_id``, as ``runtimes/README.md`` says for every coordinator
runtime the checker drives: ``success``, ``error``, ``panic`` and ``cancellable`` (runs until it is
cancelled, which here only the end of the process does) are registered; any other task id is not
(the checker uses ``unknown_task``); ``bad_ti_id`` stands in for a supervisor sending a
malformed TI id (the runtime mangles the id it read before validating it).
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make ``impl`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from impl.wire import codec  # noqa: E402

FAIL_CLOSED_EXIT = 1
PROTOCOL_ERROR_EXIT = 70


class Panic(BaseException):
    """A task that panics: not an ``Exception``, as a Go panic is not an error value."""


@dataclass(frozen=True)
class RunContext:
    """What the runtime needs of ``StartupDetails.ti_context`` (step 1 of the seed)."""

    try_number: int
    max_tries: int
    should_retry: bool

    @classmethod
    def decode(cls, startup: dict) -> RunContext:
        ti_context = startup.get("ti_context") or {}
        return cls(
            try_number=int((startup.get("ti") or {}).get("try_number") or 1),
            max_tries=int(ti_context.get("max_tries") or 0),
            should_retry=bool(ti_context.get("should_retry") or False),
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def retry_task(end_date: dt.datetime, retry_delay_seconds: float | None = None, retry_reason: str | None = None) -> dict:
    """The ``RetryTask`` body, as ``comms.RetryTask`` puts it on the wire (step 2 of the seed)."""
    return {"type": "RetryTask", "state": "up_for_retry", "end_date": end_date, "rendered_map_index": None,
            "retry_delay_seconds": retry_delay_seconds, "retry_reason": retry_reason}


def task_state(state: str, end_date: dt.datetime) -> dict:
    return {"type": "TaskState", "state": state, "end_date": end_date, "rendered_map_index": None}


def succeed_task(end_date: dt.datetime) -> dict:
    return {"type": "SucceedTask", "state": "success", "end_date": end_date, "task_outlets": [],
            "outlet_events": [], "rendered_map_index": None}


def decide(context: RunContext, failure: BaseException) -> dict:
    """A task failed: RetryTask when the server said should_retry, else TaskState(failed) (step 3)."""
    if context.should_retry:
        return retry_task(_now())
    return task_state("failed", _now())


def _raise(error: BaseException):
    raise error


def _until_cancelled() -> None:
    """Run until cancelled. This runtime cancels nothing (SIGTERM keeps its default disposition, the contract's), so
    the task runs until the process is ended."""
    while True:
        time.sleep(3600)


TASK_BEHAVIOURS: dict[str, Callable[[], None]] = {
    "success": lambda: None,
    "error": lambda: _raise(RuntimeError("the task returned an error")),
    "panic": lambda: _raise(Panic("the task panicked")),
    "cancellable": _until_cancelled,
}


def execute(startup: dict, tasks: dict[str, Callable[[], None]] = TASK_BEHAVIOURS,
            decide_failure: Callable[[RunContext, BaseException], dict] = decide) -> dict:
    """The terminal body for one try: validate the TI, find its task, run it, map the outcome."""
    context = RunContext.decode(startup)
    ti = startup.get("ti") or {}
    ti_id = str(ti.get("id"))
    if ti.get("task_id") == "bad_ti_id":
        ti_id = "not-a-uuid:" + ti_id
    try:
        uuid.UUID(ti_id)
    except ValueError:
        return task_state("failed", _now())
    task = tasks.get(ti.get("task_id"))
    if task is None:
        return task_state("removed", _now())
    try:
        task()
    except BaseException as failure:  # noqa: BLE001 - a panic is a failure of the task too
        return decide_failure(context, failure)
    return succeed_task(_now())


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the supervisor closed the comm socket")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    header = _recv_exact(sock, codec.HEADER_SIZE)
    return header + _recv_exact(sock, codec.read_length(header))


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def _args(argv: list[str]) -> dict[str, str]:
    args = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not (key.startswith("--") and sep):
            raise SystemExit(f"usage: reference_runtime --comm=HOST:PORT --logs=HOST:PORT (got {arg!r})")
        args[key[2:]] = value
    return args


def main(argv: list[str] | None = None,
         decide_failure: Callable[[RunContext, BaseException], dict] = decide) -> int:
    """Run one try: connect as ``--comm``/``--logs`` say, then ``serve``; returns the exit status."""
    args = _args(sys.argv[1:] if argv is None else argv)
    comm = socket.create_connection(_address(args["comm"]))
    logs = socket.create_connection(_address(args["logs"]))
    return serve(comm, logs, decide_failure=decide_failure)


def serve(comm: socket.socket, logs: socket.socket, started: Callable[[], None] = lambda: None,
          decide_failure: Callable[[RunContext, BaseException], dict] = decide) -> int:
    """One try on connected sockets (steps 1 to 4); closes them and returns the exit status.

    ``started`` is called once StartupDetails has arrived (the fork server's launcher then drops
    its copies of the sockets, see ``impl/wire/launcher.c``).
    """
    try:
        startup = codec.decode_request(read_frame(comm))
        started()
        if not startup.body or startup.body.get("type") != "StartupDetails":
            print(f"reference_runtime: the first frame is not StartupDetails: {startup.body!r:.200}", file=sys.stderr)
            return PROTOCOL_ERROR_EXIT
        body = execute(startup.body, decide_failure=decide_failure)
        failure = body["type"] == "RetryTask" or (body["type"] == "TaskState" and body["state"] == "failed")
        try:
            comm.sendall(codec.encode_request(codec.RequestFrame(startup.id + 1, body)))
            answer = codec.decode_response(read_frame(comm))
            delivered = answer.error is None
        except (OSError, ConnectionError, codec.FrameError):
            delivered = False
        return FAIL_CLOSED_EXIT if failure and not delivered else 0
    finally:
        for sock in (comm, logs):
            try:
                sock.close()
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
