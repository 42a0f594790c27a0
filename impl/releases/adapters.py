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

from impl.wire import codec

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
    from impl.places import TargetUnavailable

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


@attrs.frozen
class RequestsWire:
    """How the installed supervisor and its runtime talk over the requests channel: ``framed``, length-prefixed
    msgpack frames with ids (``_RequestFrame``, ``_ResponseFrame``), each request answered by one response frame; else
    JSON lines, a request being its body on one line, written to the descriptor ``StartupDetails.requests_fd`` names,
    and the supervisor writing a line back (to the runtime's stdin) only when handling gave it something to send."""

    framed: bool

    def request(self, request_id: int, body: dict) -> bytes:
        """One request as the runtime writes it (the id goes only into a frame)."""
        if self.framed:
            return codec.encode_request(codec.RequestFrame(request_id, body))
        return codec.encode_request_line(body)

    def handed_to_handle_requests(self, data: bytes):
        """What the supervisor's reader hands ``handle_requests`` for one whole request: the ``_RequestFrame`` msgspec
        decodes (``length_prefixed_frame_reader``), or the line itself (``make_buffered_socket_reader``)."""
        if self.framed:
            return _request_decoder().decode(data[codec.HEADER_SIZE:])
        return data

    def replies(self):
        """A recorder of what the runtime is told for each request (``impl.wire.codec.FrameReplies`` or
        ``LineReplies``): it is told the bytes the supervisor writes (``sent``) and, before each, which request the
        supervisor decoded (``handling``)."""
        return codec.FrameReplies() if self.framed else codec.LineReplies()

    @property
    def supervisor_without_sockets(self) -> dict:
        """The constructor arguments of a supervisor whose task process has no sockets (the in-process target): none
        with frames, where ``wait()`` waits for the sockets it registered (``_open_sockets``); before, the descriptor
        its runtime writes requests to (``requests_fd``) and no open socket to count down (``num_open_sockets``: 4 by
        default, and ``wait()`` waits until it reaches 0)."""
        return {} if self.framed else {"requests_fd": -1, "num_open_sockets": 0}

    @property
    def startup_without_sockets(self) -> dict:
        """What ``StartupDetails`` says of the channel to a runtime whose channel is a stand-in (the task-runner
        target): nothing with frames, where requests and answers share the runtime's fd 0; before, the descriptor to
        write requests to (``requests_fd``, required), none here."""
        return {} if self.framed else {"requests_fd": -1}


def since_1_0_3_length_prefixed_frames() -> RequestsWire:
    """The installed release's requests wire: length-prefixed msgpack frames with ids since 1.0.3 (apache/airflow#51699,
    backported as #51924); JSON lines before."""
    return RequestsWire(framed=since("1.0.3"))


def since_1_0_3_open_sockets(supervisor):
    """A function answering, whenever asked, the sockets ``supervisor`` still reads from: those it keeps since 1.0.3
    (``_open_sockets``); before, it only counts them (``_num_open_sockets``) and its ``wait()`` closes its selector
    whatever happens, so they are the file objects registered in the selector when this is called (right after
    ``start``; a stand-in's among them, such as an exit watch, is the caller's to leave out) that are not closed yet."""
    if since("1.0.3"):
        return lambda: list(supervisor._open_sockets)
    registered = [key.fileobj for key in supervisor.selector.get_map().values()]
    return lambda: [sock for sock in registered if sock.fileno() != -1]


def since_1_0_3_selector_entry(handler, on_close):
    """What a file object is registered in the supervisor's selector with, to be served by ``_service_subprocess``:
    ``(handler, on_close)`` since 1.0.3, ``on_close(fileobj)`` being called once the handler says it needs no more;
    before, the handler alone (the loop then unregisters and closes the file object itself)."""
    return (handler, on_close) if since("1.0.3") else handler


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


@functools.lru_cache(maxsize=None)  # a handful of states, asked for at every attempt's end
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
    return supervisor.SERVER_TERMINATED if state == SERVER_TERMINATED else since_1_0_1_task_instance_state(state)


def since_1_0_1_task_instance_state(state: str):
    """``state`` (a TI state's value) as the installed supervisor holds one: a ``TaskInstanceState`` member since 1.0.1;
    before, a ``TerminalTIState`` member for a terminal state and an ``IntermediateTIState`` one for any other."""
    from airflow.sdk.api.datamodels import _generated

    if since("1.0.1"):
        return _generated.TaskInstanceState(state)
    terminal = {member.value for member in _generated.TerminalTIState}
    return _generated.TerminalTIState(state) if state in terminal else _generated.IntermediateTIState(state)


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


def since_1_0_1_rendered_map_index(body: dict) -> dict:
    """The terminal frames carry a ``rendered_map_index`` since 1.0.1; before, no frame has one (``SucceedTask`` and
    ``RetryTask`` forbid the key), so a body meant for an older supervisor leaves it out."""
    return body if since("1.0.1") else {k: v for k, v in body.items() if k != "rendered_map_index"}


def request_body(frame: str, state: str | None, rendered_map_index: str | None) -> dict:
    """The body of a scenario's ``send`` as the installed release takes it: a non-terminal request is the release's
    no-op (``since_1_0_6_mask_secret_no_op``), a terminal frame its body without fields the release forbids
    (``since_1_2_0_defer_queue``, ``since_1_0_1_rendered_map_index``)."""
    from model.scenario import NON_TERMINAL_FRAMES

    if frame in NON_TERMINAL_FRAMES:
        return since_1_0_6_mask_secret_no_op()
    body = codec.terminal_body(frame, state, rendered_map_index=rendered_map_index)
    return since_1_0_1_rendered_map_index(since_1_2_0_defer_queue(body))


def since_1_4_0_delete_every_attempt(session, ti) -> None:
    """A user deletes ``ti`` as the public API's ``delete_task_instance`` does: since 1.4.0 (apache-airflow-core
    3.4.0, where an archived try is a row of ``task_instance`` itself, out of the working set)
    ``TaskInstance.delete_attempts``, every try of the task at once; before, ``session.delete`` of the live row, whose
    ``task_instance_history`` rows the foreign key takes with it."""
    if not since("1.4.0"):
        session.delete(ti)
        return
    type(ti).delete_attempts(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.region_index,
                             region_id=ti.region_id, session=session)


def since_1_4_0_purge_without_heartbeats(runner, found, *, executor, session) -> None:
    """What the scheduler ``runner`` (a ``SchedulerJobRunner`` with its job and heartbeat timeout set) does with the
    TIs it ``found`` without a heartbeat, one ``BaseExecutor`` ``executor`` told: since 1.4.0 (apache-airflow-core
    3.4.0) ``SchedulerJobRunner._purge_task_instances_without_heartbeats`` fails each itself (``handle_failure``; a
    RESTARTING one's restart completed, ``complete_restart``) and then tells the executor, reading the runner's DAG
    bag and executors, set here (one executor, no multi-team); before, it only tells the executor the TI failed
    (``change_state``), and ``process_executor_events``, run after it, fails the TI."""
    from airflow.utils.state import TaskInstanceState

    if not since("1.4.0"):
        for ti in found:
            executor.change_state(ti.key, TaskInstanceState.FAILED, remove_running=True)
        return
    from airflow.models.dagbag import DBDagBag

    runner.scheduler_dag_bag = DBDagBag()
    runner._multi_team = False
    runner.executor = executor
    runner.executors = [executor]
    runner._purge_task_instances_without_heartbeats(list(found), session=session)



def since_1_2_0_bundle_dag_bag(bundle):
    """The DAGs of ``bundle`` (an initialised DAG bundle) parsed as the DAG processor parses them, and the function
    that writes such a bag to the database (``sync_bag_to_db(bag, bundle_name, bundle_version)``): since 1.2.0
    (apache-airflow-core 3.2.0) ``airflow.dag_processing.dagbag``'s ``BundleDagBag``; before, ``airflow.models.dagbag``'s
    ``DagBag`` of the bundle's folder (core 3.1 has no bundle-aware bag) and its ``sync_bag_to_db``."""
    if since("1.2.0"):
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

        return BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name), sync_bag_to_db
    from airflow.models.dagbag import DagBag, sync_bag_to_db

    return DagBag(dag_folder=bundle.path, include_examples=False), sync_bag_to_db
