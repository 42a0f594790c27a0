"""Where a private API of the task-sdk differs between releases: one adapter per difference.

Each adapter is named by the release that introduced the difference (``since_1_3_0_...``) and
answers for the installed release (``INSTALLED``, from ``importlib.metadata``): the bindings call
it instead of reaching for the private API themselves. A piece a release does not have at all
is ``missing(...)``: a ``TargetUnavailable`` naming the release and the piece, so the target is
skipped with that message.
"""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version

import attrs
from packaging.version import Version

try:
    #: The installed apache-airflow-task-sdk release, as its metadata says.
    INSTALLED = Version(version("apache-airflow-task-sdk"))
except PackageNotFoundError:  # the bindings import Airflow themselves, and say so when it is missing
    INSTALLED = Version("0")


def since(release: str) -> bool:
    """Whether the installed task-sdk is ``release`` or newer; a pre-release counts as its release (1.4.0b2 as 1.4.0)."""
    return INSTALLED.release >= Version(release).release


def missing(what: str, since_release: str):
    """The error for a target that needs ``what``, which came in ``since_release``: the installed release lacks it."""
    from impl.frontdoor.registry import TargetUnavailable

    return TargetUnavailable(f"apache-airflow-task-sdk {INSTALLED} has no {what} (it came in {since_release})")


@attrs.frozen
class ProcessTracking:
    """How the supervisor handles its task process: the base class a stand-in process extends, what the
    supervisor catches when the process is gone, and the exception a ``wait(timeout)`` that runs out raises."""

    base: type
    not_found: type[Exception]
    timeout_expired: type[Exception]

    def timed_out(self, timeout: float | None) -> Exception:
        if self.timeout_expired is subprocess.TimeoutExpired:
            return subprocess.TimeoutExpired("task", timeout)
        return self.timeout_expired(timeout)


def since_1_3_0_process_tracker() -> ProcessTracking:
    """Since 1.3.0 the supervisor holds a ``ProcessTracker`` (``NeverRaised``, ``subprocess.TimeoutExpired``
    for a stand-in); before, a ``psutil.Process`` (``psutil.NoSuchProcess``, ``psutil.TimeoutExpired``)."""
    if since("1.3.0"):
        from airflow.sdk.execution_time.supervisor import NeverRaised, ProcessTracker

        return ProcessTracking(ProcessTracker, NeverRaised, subprocess.TimeoutExpired)
    import psutil

    return ProcessTracking(object, psutil.NoSuchProcess, psutil.TimeoutExpired)


def since_1_1_2_should_retry(supervisor, should_retry: bool) -> None:
    """Hand ``supervisor`` the start's should_retry where the release keeps it: ``_should_retry``, read by
    ``final_state``, came in 1.1.2; before, the supervisor has no such attribute (its ``final_state`` never
    retries a failed exit) and cannot take one."""
    if since("1.1.2"):
        supervisor._should_retry = should_retry


def since_1_2_0_child_started_arguments() -> dict:
    """``ActivitySubprocess._on_child_started`` takes ``sentry_integration`` since 1.2.0 (keywords only)."""
    return {"sentry_integration": ""} if since("1.2.0") else {}


def since_1_0_3_length_prefixed_frames() -> None:
    """Since 1.0.3 supervisor and runtime speak length-prefixed msgpack frames with ids (``_RequestFrame``);
    before, JSON lines (and ``wait()`` counts open sockets): the bindings drive frames, so raise
    ``TargetUnavailable`` naming the release on an older one."""
    if not since("1.0.3"):
        raise missing("length-prefixed msgpack frames (_RequestFrame); its supervisor speaks JSON lines, "
                      "which finalstate's bindings do not drive", "1.0.3")


def request_for_handle_requests(frame_bytes: bytes, header_size: int):
    """What ``handle_requests`` is sent for one request: the ``_RequestFrame`` decoded from our codec's bytes."""
    return _request_decoder().decode(frame_bytes[header_size:])


@functools.lru_cache(maxsize=None)
def _request_decoder():
    import msgspec
    from airflow.sdk.execution_time.comms import _RequestFrame

    return msgspec.msgpack.Decoder(_RequestFrame)


@functools.lru_cache(maxsize=None)  # asked for by every attempt in process
def model_release():
    """The installed release as the model takes it (``model.release.Release``); the model's own when none is."""
    from model.release import SPECIFIED, Release

    return Release.parse(str(INSTALLED)) if INSTALLED.release[0] else SPECIFIED


def require_the_models_heartbeat_budget(configured: int) -> None:
    """``RuntimeError`` unless ``configured`` (the supervisor's ``MAX_FAILED_HEARTBEATS``) is the
    ``[workers] max_failed_heartbeats`` default the model takes for the installed release (3; 30 since 1.4.0)."""
    expected = model_release().max_failed_heartbeats
    if configured != expected:
        raise RuntimeError(f"[workers] max_failed_heartbeats is {configured}; the model assumes "
                           f"task-sdk {model_release()}'s default of {expected}")


def since_1_4_0_retried_request() -> str:
    """The name of the ``Client`` method that carries Airflow's tenacity retry (its ``retry_with`` makes a copy):
    ``_request_with_retry`` since 1.4.0 (``request`` chooses it, or no retry), ``request`` itself before."""
    return "_request_with_retry" if since("1.4.0") else "request"


def since_1_4_0_client_retry(attempts: int, before=None) -> tuple[str, object]:
    """Airflow's own retry of the ``Client``'s requests, with ``attempts`` tries and zero waits: ``(the name of
    the method that carries it, a copy of that tenacity-wrapped method)``.

    The copy is tenacity's ``retry_with`` of the shipped decorator: the same predicate (which errors are retried),
    ``reraise`` and retry log; only ``stop``, ``wait`` and the ``before`` hook (when given) change. Waits change
    when a retry happens, not what it does. The method is ``request`` before 1.4.0 and ``_request_with_retry``
    since (``since_1_4_0_retried_request``), where ``request`` chooses it or, for ``retry=False``, none.
    """
    if attempts < 1:
        raise ValueError(f"a client makes at least one attempt, not {attempts}")
    import tenacity
    from airflow.sdk.api.client import Client

    method = since_1_4_0_retried_request()
    hooks = {} if before is None else {"before": before}
    return method, getattr(Client, method).retry_with(stop=tenacity.stop_after_attempt(attempts),
                                                      wait=tenacity.wait_none(), **hooks)


def since_1_4_0_http_library():
    """The HTTP library Airflow's ``Client`` is built on (its ``Timeout``, transports and errors):
    ``httpx2`` since 1.4.0, ``httpx`` before."""
    import importlib

    return importlib.import_module("httpx2" if since("1.4.0") else "httpx")


def since_1_4_0_server_terminated() -> str:
    """``SERVER_TERMINATED`` as the installed supervisor spells it: ``"server_terminated"`` (the value of
    ``TerminalStateNonSuccess.SERVER_TERMINATED``) since 1.4.0, the module's own ``"SERVER_TERMINATED"`` before,
    which is the model's spelling."""
    from airflow.sdk.execution_time import supervisor

    return str(getattr(supervisor.SERVER_TERMINATED, "value", supervisor.SERVER_TERMINATED))


def model_state(state) -> str | None:
    """A state the supervisor holds, reports or sends (a ``TaskInstanceState``, its value, or the release's
    ``SERVER_TERMINATED``) as the model spells it; None stays None."""
    from model.scenario import SERVER_TERMINATED

    if state is None:
        return None
    value = str(getattr(state, "value", state))
    return SERVER_TERMINATED if value == since_1_4_0_server_terminated() else value


def supervisor_state(state: str | None):
    """A state as the model spells it, held as the installed supervisor holds it: a ``TaskInstanceState`` member,
    or the release's ``SERVER_TERMINATED`` (``since_1_4_0_server_terminated``); None stays None."""
    from airflow.sdk.execution_time import supervisor

    from model.scenario import SERVER_TERMINATED

    if state is None:
        return None
    return supervisor.SERVER_TERMINATED if state == SERVER_TERMINATED else supervisor.TaskInstanceState(state)


def since_1_2_0_defer_queue(body: dict) -> dict:
    """``DeferTask`` has a ``queue`` field since 1.2.0; before, its model forbids the key, so a body
    meant for an older supervisor leaves it out."""
    if body.get("type") == "DeferTask" and not since("1.2.0"):
        return {k: v for k, v in body.items() if k != "queue"}
    return body


def before_1_4_0_httpx_client(what: str) -> str | None:
    """Why ``what`` cannot drive the installed release's ``Client``, or None: since 1.4.0 the ``Client`` is
    built on httpx2 with its retry on ``_request_with_retry``. The exchange client of the real-server binding
    follows it (``since_1_4_0_client_retry``, ``since_1_4_0_http_library``; in process it answers there),
    but the uvicorn-served app of ``LoopbackServer`` is still reached through an httpx pool."""
    if since("1.4.0"):
        return (f"apache-airflow-task-sdk {INSTALLED}'s Client is built on httpx2 (since 1.4.0); "
                f"{what} drives the httpx Client of earlier releases")
    return None


def since_1_0_4_overtime_threshold(supervisor) -> float:
    """``task_success_overtime`` as the supervisor reads it: the module's ``TASK_OVERTIME_THRESHOLD`` since
    1.0.4, a class attribute of ``ActivitySubprocess`` before."""
    if since("1.0.4"):
        from airflow.sdk.execution_time import supervisor as airflow_supervisor

        return airflow_supervisor.TASK_OVERTIME_THRESHOLD
    return supervisor.TASK_OVERTIME_THRESHOLD
