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


@functools.lru_cache(maxsize=None)  # asked for by every attempt in process; INSTALLED never changes
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


@functools.lru_cache(maxsize=None)  # asked for by every state an attempt in process reports
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


def decided_final_state(supervisor) -> str:
    """The supervisor's ``final_state`` as the model spells it; ``NO_FINAL_STATE`` when ``wait()`` raised before it saw
    the process exit (``final_state`` is not valid then, and 1.1.2-1.1.3's raises ``TypeError`` on it)."""
    from model.scenario import NO_FINAL_STATE

    return NO_FINAL_STATE if supervisor._exit_code is None else model_state(supervisor.final_state)


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


def since_1_0_4_overtime_threshold(supervisor) -> float:
    """``task_success_overtime`` as the supervisor reads it: ``TASK_OVERTIME_THRESHOLD`` where it lives
    (``since_1_0_4_overtime_owner``)."""
    return since_1_0_4_overtime_owner(type(supervisor)).TASK_OVERTIME_THRESHOLD


@attrs.frozen
class RealProcessSupervisor:
    """How the installed release supervises a real task process: ``base``, the supervisor class an attempt starts;
    ``launches_commands``, whether its ``start`` launches a runtime command (``start(command=[...],
    startup_timeout=...)``, the runtime connecting back over TCP) or forks and runs a callable in the child
    (``start(target=...)``, the child's requests on a socketpair at its fd 0)."""

    base: type
    launches_commands: bool


def since_1_3_0_command_supervisor() -> RealProcessSupervisor:
    """The real-process supervisor: since 1.3.0 ``airflow.sdk.coordinators._subprocess._PopenActivitySubprocess``,
    which launches a runtime command; before, ``ActivitySubprocess`` itself, whose ``start`` forks and runs its
    ``target`` in the child (``WatchedSubprocess.start``, ``_fork_main``)."""
    if since("1.3.0"):
        from airflow.sdk.coordinators._subprocess import _PopenActivitySubprocess

        return RealProcessSupervisor(_PopenActivitySubprocess, True)
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    return RealProcessSupervisor(ActivitySubprocess, False)


def since_1_0_6_mask_secret_no_op() -> dict:
    """The body of a request the supervisor answers and that changes nothing of the attempt: ``MaskSecret`` with an
    empty value since 1.0.6 (it exists since then); before, ``GetVariable`` of a key no server has (the supervisor
    asks the Execution API, which answers 404, and answers the runtime ``VARIABLE_NOT_FOUND``; no task-instance
    call is made). A frame the release cannot decode would get no answer at all."""
    if since("1.0.6"):
        return {"type": "MaskSecret", "value": "", "name": None}
    return {"type": "GetVariable", "key": "finalstate-no-op"}


def since_1_0_4_overtime_owner(supervisor_class: type):
    """Where ``TASK_OVERTIME_THRESHOLD`` lives, to be set (``since_1_0_4_overtime_threshold`` reads it): the
    supervisor module since 1.0.4, ``supervisor_class`` (a class attribute of ``ActivitySubprocess``) before."""
    if since("1.0.4"):
        from airflow.sdk.execution_time import supervisor as airflow_supervisor

        return airflow_supervisor
    return supervisor_class


def since_1_0_6_dag_run_state(dag_run: dict) -> dict:
    """The ``DagRun`` of a ``TIRunContext`` answer has a ``state`` since 1.0.6; before, the release's model forbids
    the key (``extra="forbid"``), so an answer meant for an older client leaves it out."""
    return dag_run if since("1.0.6") else {k: v for k, v in dag_run.items() if k != "state"}


def since_1_2_0_dag_run_partition_key(dag_run: dict) -> dict:
    """The ``DagRun`` of a ``TIRunContext`` answer has a ``partition_key`` since 1.2.0; before, the release's model
    forbids the key, so an answer meant for an older client leaves it out."""
    return dag_run if since("1.2.0") else {k: v for k, v in dag_run.items() if k != "partition_key"}


def dag_run_fields(dag_run: dict) -> dict:
    """A ``DagRun``'s fields as the installed release's model accepts them (``since_1_0_6_dag_run_state``,
    ``since_1_2_0_dag_run_partition_key``)."""
    return since_1_2_0_dag_run_partition_key(since_1_0_6_dag_run_state(dag_run))


def since_1_4_0_heartbeat_due(supervisor) -> bool:
    """Whether ``supervisor``'s ``_send_heartbeat_if_needed`` sends a heartbeat that falls due now, read from its own
    fields (the world arranges a heartbeat's answer only for one that is sent): none once it holds a terminal state;
    since 1.4.0 one while its outcome is still undelivered (``_pending_terminal_state_msg``), unless it holds
    SERVER_TERMINATED."""
    from model.scenario import SERVER_TERMINATED

    held = supervisor._terminal_state
    if not held:
        return True
    if not since("1.4.0"):
        return False
    return model_state(held) != SERVER_TERMINATED and supervisor._pending_terminal_state_msg is not None


@attrs.frozen
class RetryPolicies:
    """The retry-policy API a task's ``retry_policy`` is written against: the class a policy extends and the decision
    its ``evaluate`` answers."""

    base: type
    decision: type


def since_1_3_0_retry_policy() -> RetryPolicies | None:
    """Retry policies (``airflow.sdk.definitions.retry_policy``, AIP-105): since 1.3.0; None before, where an operator
    takes no ``retry_policy`` and the task runner consults none (a try with a policy is not one that release can
    have)."""
    if not since("1.3.0"):
        return None
    from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

    return RetryPolicies(RetryPolicy, RetryDecision)


def since_1_2_0_task_exceptions():
    """The module of the exceptions the task runner maps a task's end by (``AirflowException``,
    ``AirflowFailException``, ``AirflowSkipException``, ``TaskDeferred``, ``DagRunTriggerException``, ...):
    ``airflow.sdk.exceptions`` since 1.2.0; before, apache-airflow-core's ``airflow.exceptions`` (the SDK's own module
    then held ``AirflowRuntimeError`` and ``ErrorType``, which stay there)."""
    import importlib

    return importlib.import_module("airflow.sdk.exceptions" if since("1.2.0") else "airflow.exceptions")


def since_1_3_0_task_awaiting_input() -> type | None:
    """``TaskAwaitingInput`` (a task pausing for a person's input, answered with ``AwaitInputTask``): since 1.3.0;
    None before, where no task can raise it."""
    return since_1_2_0_task_exceptions().TaskAwaitingInput if since("1.3.0") else None


def since_1_0_4_sigterm_handler() -> bool:
    """Whether the installed task runner's ``run`` installs a SIGTERM handler (``_on_term``, which calls the task's
    ``on_kill``): since 1.0.4; before, SIGTERM keeps the process's default disposition and kills it."""
    return since("1.0.4")


def since_1_1_7_startup_reschedule(reschedule_date) -> BaseException:
    """What the installed ``parse`` raises for a DAG not found at startup, with reschedules left: since 1.1.7
    ``AirflowRescheduleException`` (``_maybe_reschedule_startup_failure``), which ``main`` answers with
    RescheduleTask; before, ``SystemExit(1)`` (``parse`` exits 1 itself, having logged the DAG as not found)."""
    if since("1.1.7"):
        return since_1_2_0_task_exceptions().AirflowRescheduleException(reschedule_date=reschedule_date)
    return SystemExit(1)


def request_body(frame: str, state: str | None, rendered_map_index: str | None) -> dict:
    """The body of a scenario's ``send`` as the installed release takes it: a non-terminal request is the release's
    no-op (``since_1_0_6_mask_secret_no_op``), a terminal frame its body without fields the release forbids
    (``since_1_2_0_defer_queue``)."""
    from impl.wire import codec
    from model.scenario import NON_TERMINAL_FRAMES

    if frame in NON_TERMINAL_FRAMES:
        return since_1_0_6_mask_secret_no_op()
    return since_1_2_0_defer_queue(codec.terminal_body(frame, state, rendered_map_index=rendered_map_index))
