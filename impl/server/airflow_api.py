"""The real Execution API of the installed apache-airflow-core, on a real database.

``AirflowServer`` (one per process) answers the supervisor's Execution API calls with Airflow's
own app (``airflow.api_fastapi.execution_api``) over Airflow's own rows: each attempt is a real
``DagRun`` and ``TaskInstance`` made through Airflow's models, started by the real ``ti_run``;
the server-side actors (a user marking, clearing or deleting the TI, the scheduler's
heartbeat-timeout handling) are airflow-core's own functions. What the supervisor sees of the
server is what the server says, and every exchange is recorded.

The database (``db_url``; None: ``$FINALSTATE_SERVER_DB``, else ``sqlite``). ``sqlite``, the
default: created by Airflow's own migration code (``airflow db migrate``'s ``upgradedb``) once
per airflow-core release into a *template* under ``build/server/``, with the one-task DAGs
serialised into it (one per task ``retries``); every process copies the template, so a fresh
start costs a file copy and the app's first-request warm-up. ``local``: the same on a private
PostgreSQL started from a wheel (``impl.server.postgres``): the template is a database, migrated
once, and each process clones it into a database of its own. A URL (``postgresql://...``, driver
psycopg 3 where none is named and psycopg2 is missing): that database, migrated in place and
shared; one that does not connect raises ``ServerUnavailable`` naming it (password masked). Each
attempt gets its own DagRun, so attempts never share a row; ``reset`` empties what attempts wrote.

Isolation. Airflow reads its configuration from the environment: ``start`` points
``AIRFLOW_HOME`` and the options it needs (database, dags folder, logs) at the private
directory through ``AIRFLOW__*`` variables, which win over any ``airflow.cfg`` of the user's,
and rebinds Airflow's global ORM (``airflow.settings``) to the private database. The process
is Airflow's from then on: one ``AirflowServer`` per process.

The client. ``AirflowServer.client`` is ``airflow.sdk.api.client.Client`` itself, over the
app in process (``InProcessExecutionAPI().transport``: no sockets, no auth), with Airflow's
retry decorator kept as it is but for two settings: the *waits* are zero (they change timing,
not behaviour) and the number of attempts is a parameter whose default is Airflow's
(``[workers] execution_api_retries``). ``LoopbackServer`` serves the same app with uvicorn on
127.0.0.1 for supervisors in real processes. Between client and app sits ``ExchangeTransport``:
it records each HTTP exchange and injects the transport faults a scenario arms.

Specifies nothing: the rules are the server's. Pinned against apache-airflow-core 3.3.2.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
import types
import uuid
from pathlib import Path

import attrs
from airflow.sdk.api.client import Client

from impl.places import build_dir
from impl.releases.adapters import (since_1_2_0_bundle_dag_bag, since_1_4_0_client_retry, since_1_4_0_delete_every_attempt,
                                    since_1_4_0_http_library, since_1_4_0_purge_without_heartbeats)
from impl.server.postgres import LOCAL, SERVER_DB_ENV, SQLITE, LocalPostgres, PostgresUnavailable, alive
from impl.server.model_api import requested

BUILD_DIR = build_dir("server")
DAG_ID = "finalstate"
TASK_ID = "attempt"
#: The scheduler job that "queued" the attempts; only its TIs are seen by its heartbeat-timeout check.
SCHEDULER_JOB_ID = 1
#: The client's base URL in process, as ``dag.test()`` spells it (the app serves at its root).
IN_PROCESS_URL = "http://in-process.invalid./"

#: One DAG per task ``retries`` value, 0..RETRIES_MAX: the server reads the task's retries where the
#: row's counts are not enough (heartbeat-timeout handling asks ``task.retries != 0``; a clear sets
#: ``max_tries = try_number + task.retries``).
RETRIES_MAX = 8
_DAG_FILE = f'''\
"""The one-task DAGs finalstate attempts run as, one per task retries value (written by impl/server/airflow_api.py)."""
from airflow.sdk import DAG, BaseOperator

for retries in range({RETRIES_MAX} + 1):
    with DAG(f"{DAG_ID}_r{{retries}}", schedule=None, catchup=False):
        BaseOperator(task_id={TASK_ID!r}, retries=retries)
'''

#: ``PATCH .../state`` payload states, by the client method that sends them (all others: ``finish``).
_STATE_CALLS = {
    "success": "succeed",
    "up_for_retry": "retry",
    "deferred": "defer",
    "up_for_reschedule": "reschedule",
    "awaiting_input": "await_input",
}
_ACTION_CALLS = {("PATCH", "run"): "start", ("PUT", "heartbeat"): "heartbeat",
                 ("PATCH", "skip-downstream"): "skip_downstream_tasks"}

FAULT_KINDS = ("refuse", "timeout", "5xx", "lost")
#: The tables attempts write to (the start, the state updates, the actors, the heartbeat timeout), children
#: first; measured, and checked by tests/test_postgres.py: a reset leaves every table as the template has it.
ATTEMPT_TABLES = ("log", "task_instance_history", "task_instance", "dag_run")


class ServerUnavailable(RuntimeError):
    """The real server cannot be had here: the database does not connect, or migration failed."""


# -- values --------------------------------------------------------------------------------------


@attrs.frozen
class Attempt:
    """One started attempt: its TI id (the id of this try), its DagRun's id, the run context the server sent."""

    ti_id: uuid.UUID
    run_id: str
    context: object  # airflow.sdk.api.datamodels._generated.TIRunContext, as the client parsed it


@attrs.frozen
class RowState:
    """The live TaskInstance row of a run, as the database holds it (``state`` None: not yet queued)."""

    state: str | None
    try_number: int
    max_tries: int


@attrs.frozen
class LiveTI:
    """The live TaskInstance of a run: its id (the id of this try) and its row."""

    id: uuid.UUID
    row: RowState


@attrs.frozen
class Exchange:
    """One HTTP request of the client and what became of it.

    ``call`` numbers the client's calls (one per ``Client.request``), ``attempt`` the try within
    the client's retries (from 1). ``status`` is the HTTP status the client received, or None
    when it received none (``error``: the httpx exception it got instead); ``server_status`` is
    what the app answered, None when the request never reached it. They differ for an injected
    5xx (the app never saw it) and a lost answer (the app answered, the client never heard).
    ``state`` is the state a ``finish`` asks for (``failed``, ``skipped``, ...); None for any other call.
    ``rendered_map_index`` is what the request body carried as one (None: nothing).
    """

    call: int
    attempt: int
    method: str
    path: str
    name: str
    status: int | None
    error: str | None = None
    server_status: int | None = None
    state: str | None = None
    rendered_map_index: str | None = None

    def to_text(self) -> str:
        seen = str(self.status) if self.status is not None else self.error
        if self.server_status is None:
            note = " (never reached the server)"
        elif self.server_status != self.status:
            note = f" (the server answered {self.server_status})"
        else:
            note = ""
        name = f"{self.name}({self.state})" if self.state else self.name
        return f"#{self.call}.{self.attempt} {self.method} {self.path} [{name}] -> {seen}{note}"


@attrs.frozen
class TransportFault:
    """The next ``times`` requests named ``call`` (``None``: every one) misbehave as ``kind`` says.

    - ``refuse``: the connection is refused (``httpx.ConnectError``); the app never sees it;
    - ``timeout``: connecting times out (``httpx.ConnectTimeout``); the app never sees it;
    - ``5xx``: answered ``status`` by something in front of the app; the app never sees it;
    - ``lost``: the app handles it, then the answer is lost (``httpx.ReadTimeout``).

    Each is retried by Airflow's client as any such error is; a fault counts requests, not calls.
    """

    call: str
    kind: str = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))
    times: int | None = 1
    status: int = 500


def call_name(method: str, path: str, content: bytes | None) -> str:
    """The client method an Execution API request comes from (``start``, ``heartbeat``, ``succeed``, ...).

    Named as ``model.server`` names them; a state update is named by the state it asks for
    (``finish`` for failed, skipped, removed, ...). Any other request is named by its last path segment.
    """
    parts = path.strip("/").split("/")
    action = parts[-1] if parts else ""
    if _is_state_update(method, parts):
        return _STATE_CALLS.get(requested(content, "state"), "finish")
    return _ACTION_CALLS.get((method, action), action)


def finish_state(method: str, path: str, content: bytes | None) -> str | None:
    """The state a ``finish`` request asks for (``failed``, ``skipped``, ...); None for any other request."""
    if not _is_state_update(method, path.strip("/").split("/")):
        return None
    state = requested(content, "state")
    return None if state in _STATE_CALLS else state


def _is_state_update(method: str, parts: list[str]) -> bool:
    return method == "PATCH" and "task-instances" in parts and parts[-1] == "state"


# -- the client side -----------------------------------------------------------------------------


#: The HTTP library the installed release's ``Client`` is built on (httpx, httpx2 since 1.4.0): the transport in
#: front of the app and the errors it injects must be that library's, or the client's retry rule would not see them.
_http = since_1_4_0_http_library()


def default_attempts() -> int:
    """Airflow's default number of attempts per client request: ``[workers] execution_api_retries`` as shipped.

    The shipped default (5), not whatever an ``airflow.cfg`` on this machine says.
    """
    from airflow.sdk.configuration import conf

    return int(conf.get_default_value("workers", "execution_api_retries"))


class ExchangeTransport(_http.BaseTransport):
    """An httpx transport in front of another: records every exchange, injects the armed faults.

    ``faults`` apply in the order given; the first one naming a request's call that still has
    requests left to spoil decides. ``exchanges`` is the record, in order; ``call`` and
    ``attempt`` are set by the client (``ExchangeClient``) before each request.
    """

    def __init__(self, inner: _http.BaseTransport, faults: tuple[TransportFault, ...] = (), *,
                 owns_inner: bool = False):
        self.inner = inner
        self.owns_inner = owns_inner
        self.faults = tuple(faults)
        self._left = [f.times for f in self.faults]
        self.exchanges: list[Exchange] = []
        self.call = 0
        self.attempt = 0

    def arm(self, fault: TransportFault) -> None:
        self.faults += (fault,)
        self._left.append(fault.times)

    def _fault_for(self, name: str) -> TransportFault | None:
        for i, fault in enumerate(self.faults):
            if fault.call == name and (self._left[i] is None or self._left[i] > 0):
                if self._left[i] is not None:
                    self._left[i] -= 1
                return fault
        return None

    def handle_request(self, request: _http.Request) -> _http.Response:
        name = call_name(request.method, request.url.path, request.content)
        record = dict(call=self.call, attempt=self.attempt, method=request.method, path=request.url.path, name=name,
                      state=finish_state(request.method, request.url.path, request.content),
                      rendered_map_index=requested(request.content, "rendered_map_index"))
        fault = self._fault_for(name)
        if fault is not None and fault.kind != "lost":
            if fault.kind == "5xx":
                self.exchanges.append(Exchange(**record, status=fault.status))
                return _http.Response(fault.status, json={"detail": "finalstate: injected server error"},
                                      request=request)
            error = (_http.ConnectError("[Errno 111] Connection refused", request=request)
                     if fault.kind == "refuse" else _http.ConnectTimeout("timed out", request=request))
            self.exchanges.append(Exchange(**record, status=None, error=type(error).__name__))
            raise error
        if self.inner is None:
            raise RuntimeError("this client's server is closed")
        try:
            response = self.inner.handle_request(request)
        except Exception as e:
            self.exchanges.append(Exchange(**record, status=None, error=type(e).__name__))
            raise
        if fault is not None:  # lost: the app has answered; the client never hears it
            response.read()
            response.close()
            self.exchanges.append(Exchange(**record, status=None, error="ReadTimeout",
                                           server_status=response.status_code))
            raise _http.ReadTimeout("finalstate: the answer was lost", request=request)
        self.exchanges.append(Exchange(**record, status=response.status_code, server_status=response.status_code))
        return response

    def close(self) -> None:
        if self.owns_inner and self.inner is not None:
            self.inner.close()  # a loopback client's own connection pool; the in-process one is the server's


class ExchangeClient(Client):
    """Airflow's ``Client``, keeping Airflow's retry rule but for zero waits and ``attempts`` tries.

    The retry is the release's own decorator, copied by ``since_1_4_0_client_retry`` with only
    ``stop``, ``wait`` and a ``before`` hook (that tells the transport the attempt number) changed;
    it stands where the release keeps it: on ``request`` before 1.4.0, on ``_request_with_retry``
    since (so a ``retry=False`` request, a heartbeat there, is still made once). ``request``
    counts each call once, whatever its attempts.
    """

    def __init__(self, wire: ExchangeTransport, *, base_url: str, attempts: int):
        self.wire = wire
        self.exchanges = wire.exchanges
        self.attempts = attempts
        self._retried, retrying = since_1_4_0_client_retry(attempts, before=self._before)
        self._retrying = types.MethodType(retrying, self)
        super().__init__(base_url=base_url, token="", transport=wire)

    def _before(self, retry_state) -> None:
        self.wire.attempt = retry_state.attempt_number

    def request(self, *args, **kwargs):
        self.wire.call += 1
        self.wire.attempt = 1  # the ``before`` hook numbers the attempts of a retried request
        if self._retried == "request":
            return self._retrying(*args, **kwargs)
        return super().request(*args, **kwargs)

    def _request_with_retry(self, *args, **kwargs):
        """Since 1.4.0, what ``request`` calls unless told ``retry=False``: the copied retry."""
        return self._retrying(*args, **kwargs)


def make_client(transport: _http.BaseTransport, *, base_url: str = IN_PROCESS_URL, attempts: int | None = None,
                faults: tuple[TransportFault, ...] = (), owns_transport: bool = False) -> ExchangeClient:
    """Airflow's ``Client`` over ``transport`` with Airflow's retry rule, waits zeroed, ``attempts`` tries.

    ``attempts`` None: Airflow's default (``default_attempts``). The client's ``exchanges`` lists
    what went over the wire; ``wire`` is its ``ExchangeTransport`` (arm more faults there).
    ``owns_transport``: closing the client closes ``transport`` too.
    """
    attempts = default_attempts() if attempts is None else attempts
    wire = ExchangeTransport(transport, faults, owns_inner=owns_transport)
    return ExchangeClient(wire, base_url=base_url, attempts=attempts)


# -- the server ----------------------------------------------------------------------------------

_lock = threading.Lock()
_active: AirflowServer | None = None


class AirflowServer:
    """The real Execution API on a private database; one per process, started on first use.

    Every method that touches rows takes the run id (``Attempt.run_id``): a TI's id changes
    when the retry path or a clear archives its try, its run id does not.
    """

    def __init__(self, db_url: str | None = None, home: str | os.PathLike | None = None):
        self.home = Path(home) if home is not None else BUILD_DIR
        self.db_url = db_url or os.environ.get(SERVER_DB_ENV) or SQLITE
        self.url: str | None = None  # the database bound, once started
        #: The local PostgreSQL's home (``db_url`` ``local``): beside the default home, else inside the given one.
        self.postgres_home = build_dir("postgres") if home is None else self.home / "postgres"
        self._postgres: LocalPostgres | None = None
        self._started = False
        self._api = None
        self._transport = None
        self._starter = None
        self._dags: dict[int, object] = {}
        self._db_file: Path | None = None
        self._clients: list = []
        self._saved_env: dict[str, str | None] | None = None
        self._sharers = 0  # users beyond the first (``share``): ``close`` stops the server only after the last

    # -- lifecycle

    def share(self) -> AirflowServer:
        """One more user of this started server (Airflow's ORM is global: one server per process); each
        user calls ``close`` when done, and the last one stops it."""
        if not self._started:
            raise RuntimeError("only a started AirflowServer can be shared")
        self._sharers += 1
        return self

    def start(self) -> AirflowServer:
        """Make the database (template copy, or migrate ``db_url``), serialise the DAGs, build the app. Idempotent."""
        global _active
        if self._started:
            return self
        if self.db_url not in (SQLITE, LOCAL):
            probe(self.db_url)  # before anything global changes
        with _lock:
            if _active is not None and _active is not self:
                raise RuntimeError("one AirflowServer per process: Airflow's ORM is global; close the other first")
            _active = self
        try:
            self._start()
        except ModuleNotFoundError as e:  # an older apache-airflow-core lacks a module this binding drives
            self.close()
            if not (e.name or "").startswith("airflow."):
                raise
            from importlib.metadata import version

            raise ServerUnavailable(f"apache-airflow-core {version('apache-airflow-core')} has no {e.name}, "
                                    "which the real server binding needs") from None
        except BaseException:
            self.close()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        dags = self.home / "dags"
        _write_if_changed(dags / "finalstate_dag.py", _DAG_FILE)
        self._saved_env = _isolate(self.home, dags)
        if self.db_url == SQLITE:
            _remove_stale_copies(self.home / "workers")
            template = self._template()
            self._db_file = self.home / "workers" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.db"
            self._db_file.parent.mkdir(exist_ok=True)
            shutil.copyfile(template, self._db_file)
            self.url = f"sqlite:///{self._db_file}"
            _bind(self.url)
        elif self.db_url == LOCAL:
            self.url = self._local_database()
            _bind(self.url)
        else:
            self.url = self.db_url
            _bind(self.url)
            with open(self.home / "template.lock", "w") as lock:  # workers of one machine, one at a time
                fcntl.flock(lock, fcntl.LOCK_EX)
                _migrate(self.url)
                if _serialized_dag(0) is None:
                    _sync_dag()
        from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

        self._api = InProcessExecutionAPI()
        self._transport = self._api.transport
        self._starter = make_client(self._transport, attempts=1)
        _warm_up(self._starter)

    def _template(self) -> Path:
        """The migrated template for this airflow-core release and DAG file: made once, under a lock, atomically."""
        template = self.home / f"template-{_template_id()}.db"
        if template.exists():
            return template
        with open(self.home / "template.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not template.exists():
                fd, tmp = tempfile.mkstemp(suffix=".db", dir=self.home)
                os.close(fd)
                try:
                    _fill_template(f"sqlite:///{tmp}")
                    os.replace(tmp, template)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        return template

    def _local_database(self) -> str:
        """This process's own database on the local PostgreSQL, cloned from the template database (made once).

        As ``_template``, on PostgreSQL: the template is filled under another name and renamed
        when done, so a killed migration never passes for a template.
        """
        import re

        try:
            self._postgres = pg = LocalPostgres(self.postgres_home).start()
            template = "finalstate_template_" + re.sub(r"[^a-z0-9]", "_", _template_id().lower())
            if template not in pg.databases():
                with pg.locked("template"):
                    if template not in pg.databases():
                        making = f"{template}_making"
                        pg.drop_database(making)
                        pg.create_database(making)
                        _fill_template(pg.url(making))
                        pg.rename_database(making, template)
            return pg.url(pg.worker_database(template))
        except PostgresUnavailable as e:
            raise ServerUnavailable(str(e)) from None

    def close(self) -> None:
        """Stop the app's loop thread, close every client, release the ORM, delete this process's copy
        (once its last user closes it, see ``share``)."""
        global _active
        if self._sharers:
            self._sharers -= 1
            return
        for client in self._clients:
            client.close()
            client.wire.inner = None  # a client kept by its caller no longer holds the app alive
        self._clients.clear()
        if self._starter is not None:
            self._starter.close()
            self._starter.wire.inner = None
        self._starter = self._transport = self._api = None
        self._dags.clear()
        import gc

        gc.collect()  # the in-process app's loop thread stops when its transport is collected
        for thread in threading.enumerate():
            if thread.name == "InProcessExecutionAPI-loop":
                thread.join(5)
        if self._started or _active is self:
            _dispose()
        if self._saved_env is not None:
            _restore(self._saved_env)
            self._saved_env = None
        if self._db_file is not None:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self._db_file}{suffix}")
            self._db_file = None
        if self._postgres is not None:
            self._postgres.close()  # drops this process's database; the last user stops the cluster
            self._postgres = None
        self.url = None
        self._started = False
        with _lock:
            if _active is self:
                _active = None

    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the supervisor's side

    @property
    def transport(self):
        """The in-process httpx transport to the app (no sockets)."""
        return self.start()._transport

    @property
    def app(self):
        """The Execution API FastAPI app (auth bypassed for in-process callers, as ``dag.test()`` does)."""
        return self.start()._api.app

    def client(self, attempts: int | None = None, faults: tuple[TransportFault, ...] = ()):
        """Airflow's ``Client`` to this server in process; see ``make_client``. Closed with the server."""
        client = make_client(self.transport, attempts=attempts, faults=faults)
        self._clients.append(client)
        return client

    def release(self, client) -> None:
        """Close a client from ``client`` before the server closes."""
        client.close()
        with contextlib.suppress(ValueError):
            self._clients.remove(client)

    def open_attempt(self, try_number: int = 1, max_tries: int = 0, *, retries: int | None = None,
                     pid: int | None = None, start: bool = True) -> Attempt:
        """A new DagRun whose TI is QUEUED with these counts; then the real ``ti_run`` makes it RUNNING.

        The run and its TI are made by ``SerializedDAG.create_dagrun`` of the DAG whose task has
        ``retries`` (default ``min(max_tries, RETRIES_MAX)``, as a first try's row has); the
        counts are then set on the TI model as the scheduler leaves them when it queues a try.
        ``start``: ``ti_run`` is called as the supervisor calls it (``run_attempt``); else the TI
        stays QUEUED for the supervisor under check to start, and ``context`` is None.
        """
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        self.start()
        retries = min(max_tries, RETRIES_MAX) if retries is None else retries
        if not 0 <= retries <= RETRIES_MAX:
            raise ValueError(f"retries must be within 0..{RETRIES_MAX}, not {retries}")
        now = _now()
        run_id = f"finalstate__{uuid.uuid4().hex}"
        with create_session() as session:
            run = self._dag(retries).create_dagrun(
                run_id=run_id, run_after=now, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                triggered_by=DagRunTriggeredByType.TEST, start_date=now, session=session,
            )
            (ti,) = run.task_instances
            ti.try_number = try_number
            ti.max_tries = max_tries
            ti.state = TaskInstanceState.QUEUED
            ti.queued_dttm = now
            ti_id = ti.id
        if not start:
            return Attempt(ti_id=ti_id, run_id=run_id, context=None)
        return self.run_attempt(run_id, pid, ti_id=ti_id)

    def run_attempt(self, run_id: str, pid: int | None = None, *, ti_id: uuid.UUID | None = None) -> Attempt:
        """``PATCH .../run`` on the live TI of ``run_id`` through Airflow's client (``task_instances.start``).

        ``pid`` is the pid later heartbeats must carry (default: this process's); the hostname is
        the client's own. Raises what the client raises (a 409 as ``ServerResponseError``).
        """
        ti_id = ti_id or self.ti_id(run_id)
        if ti_id is None:
            raise LookupError(f"no live task instance in run {run_id}")
        context = self._starter.task_instances.start(ti_id, os.getpid() if pid is None else pid, _now())
        return Attempt(ti_id=ti_id, run_id=run_id, context=context)

    def requeue(self, run_id: str) -> RowState | None:
        """The scheduler queues the TI's next try: ``DagRun.schedule_tis`` (SCHEDULED, try_number + 1), then QUEUED.

        ``schedule_tis`` is the scheduler's own step (it leaves try_number alone for a reschedule,
        and touches only TIs in a schedulable state: None, UP_FOR_RETRY, UP_FOR_RESCHEDULE);
        the dependency checks before it (retry delay, upstreams) are skipped, and the executor
        step after it is the scheduler's state change to QUEUED.
        """
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            ti = _live_ti(session, run_id)
            ti.task = self._dag_of(ti).get_task(TASK_ID)
            ti.dag_run.schedule_tis([ti], session=session)
            session.flush()
            session.refresh(ti)
            if ti.state == TaskInstanceState.SCHEDULED:
                ti.state = TaskInstanceState.QUEUED
                ti.queued_dttm = _now()
        return self.row(run_id)

    def row(self, run_id: str) -> RowState | None:
        """The live TI row of ``run_id``: state, try_number, max_tries; None once deleted."""
        live = self.live(run_id)
        return None if live is None else live.row

    def live(self, run_id: str) -> LiveTI | None:
        """The live TI of ``run_id`` in one read: its id and its row; None once deleted."""
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.execute(
                select(TI.id, TI.state, TI.try_number, TI.max_tries).where(TI.run_id == run_id, TI.task_id == TASK_ID)
            ).one_or_none()
        if found is None:
            return None
        ti_id, state, try_number, max_tries = found
        return LiveTI(ti_id, RowState(None if state is None else str(getattr(state, "value", state)), try_number,
                                      max_tries))

    def reset(self) -> None:
        """Empty the tables attempts write (``ATTEMPT_TABLES``): the rows are then as the template has them.

        Attempts never share a row (each has its own DagRun), so this is for a caller that wants
        the database itself clean. ``DELETE``, children first: on PostgreSQL it is measured
        faster than ``TRUNCATE`` (~11 ms against ~170 ms after a few attempts) and than cloning
        the template again (~1 s); one transaction rolled back cannot hold the app's own commits.
        """
        from airflow.utils.session import create_session
        from sqlalchemy import text

        with create_session() as session:
            for table in ATTEMPT_TABLES:
                session.execute(text(f"delete from {table}"))

    def ti_id(self, run_id: str) -> uuid.UUID | None:
        """The live TI's id (it changes each time a try is archived); None once deleted."""
        live = self.live(run_id)
        return None if live is None else live.id

    # -- the actors: airflow-core's own code on the live row

    def mark(self, run_id: str, state: str) -> bool:
        """A user marks the TI ``state`` (success, failed, ...) as the public API's PATCH does.

        ``SerializedDAG.set_task_instance_state``, as ``patch_task_instance`` calls it. False when
        nothing changed (the public API answers that with 409).
        """
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            altered = self._dag_of(_live_ti(session, run_id)).set_task_instance_state(
                task_id=TASK_ID, run_id=run_id, map_indexes=None, state=TaskInstanceState(state),
                commit=True, session=session,
            )
        return bool(altered)

    def clear(self, run_id: str) -> None:
        """A user clears the TI (a new try), as the public API's clear does: ``clear_task_instances``.

        The try is archived (the live row gets a new id); a RUNNING TI becomes RESTARTING, any
        other loses its state and gets ``max_tries = try_number + task.retries``; a finished run
        goes back to QUEUED (``reset_dag_runs``' default).
        """
        from airflow.models.taskinstance import clear_task_instances
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState

        with create_session() as session:
            clear_task_instances([_live_ti(session, run_id)], session, DagRunState.QUEUED)

    def delete(self, run_id: str) -> None:
        """A user deletes the TI, as the public API's ``delete_task_instance`` does (its tries with it:
        ``since_1_4_0_delete_every_attempt``)."""
        from airflow.utils.session import create_session

        with create_session() as session:
            since_1_4_0_delete_every_attempt(session, _live_ti(session, run_id))

    def heartbeat_timeout(self, run_id: str) -> RowState | None:
        """The scheduler's task-heartbeat timeout strikes the TI; returns its row afterwards.

        Time is moved, not waited: the TI's ``last_heartbeat_at`` is set back beyond
        ``[scheduler] task_instance_heartbeat_timeout``. Then the scheduler's own pieces run:
        ``SchedulerJobRunner._find_task_instances_without_heartbeats`` finds it (as this
        scheduler's job), ``_purge_task_instances_without_heartbeats`` strikes it as the installed release
        does (``since_1_4_0_purge_without_heartbeats``: the executor is told it failed, and since core 3.4
        the TI is failed there and then), and ``SchedulerJobRunner.process_executor_events`` reacts
        (``ti.handle_failure``: UP_FOR_RETRY when the task has retries and the try is within max_tries,
        else FAILED; since core 3.4 a RESTARTING TI's restart completed). Left out: the callback request
        to the DAG processor (it runs user callbacks; these DAGs have none) and stats.
        A TI that is not RUNNING or RESTARTING is not touched.
        """
        from types import SimpleNamespace

        from airflow.configuration import conf
        from airflow.executors.base_executor import BaseExecutor
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session

        timeout = conf.getint("scheduler", "task_instance_heartbeat_timeout")
        with create_session() as session:
            ti = _live_ti(session, run_id)
            ti.queued_by_job_id = SCHEDULER_JOB_ID
            ti.last_heartbeat_at = _now() - datetime.timedelta(seconds=timeout + 1)
        # The scheduler's own class with no job loop: only what the two steps read is set (their logger is the
        # class's own; the purge's DAG bag and executors are set by since_1_4_0_purge_without_heartbeats).
        runner = object.__new__(SchedulerJobRunner)
        runner.job = SimpleNamespace(id=SCHEDULER_JOB_ID)
        runner._task_instance_heartbeat_timeout_secs = timeout
        executor = _executor(BaseExecutor)
        with create_session() as session:
            found = runner._find_task_instances_without_heartbeats(session=session)
            since_1_4_0_purge_without_heartbeats(runner, [ti for ti in found if ti.run_id == run_id],
                                                 executor=executor, session=session)
        with create_session() as session:
            SchedulerJobRunner.process_executor_events(executor=executor, job_id=SCHEDULER_JOB_ID,
                                                       scheduler_dag_bag=DBDagBag(), session=session)
        return self.row(run_id)

    def _dag_of(self, ti):
        return self._dag(int(ti.dag_id.rsplit("_r", 1)[1]))

    def _dag(self, retries: int):
        if retries not in self._dags:
            dag = _serialized_dag(retries)
            if dag is None:
                raise ServerUnavailable(f"the DAG {DAG_ID}_r{retries} is not in the database")
            self._dags[retries] = dag
        return self._dags[retries]


#: How long uvicorn may take to serve (the app's lifespan start-up): seconds here, far more on a loaded machine.
LOOPBACK_START_TIMEOUT = 120.0


class LoopbackServer:
    """The same Execution API app served by uvicorn on 127.0.0.1, an ephemeral port, its own thread.

    ``base_url`` ends in ``/execution/`` as in production. Its clients share one connection pool
    (keep-alive: an attempt's client does not pay a TCP connect per request). ``close`` closes the
    pool, stops the server and joins its thread; no socket is left listening. Needs a started
    ``AirflowServer`` (the database).
    """

    def __init__(self, server: AirflowServer):
        import uvicorn
        from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

        server.start()
        app = InProcessExecutionAPI().app  # its own app and lifespan: uvicorn runs it on its own loop
        self._server = uvicorn.Server(uvicorn.Config(_Prefixed(app, "/execution"), host="127.0.0.1", port=0,
                                                     log_level="warning", lifespan="on", access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="finalstate-uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + LOOPBACK_START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                self.close()
                raise ServerUnavailable("uvicorn stopped before serving the Execution API on 127.0.0.1 "
                                        "(the app's lifespan or the socket failed; its log says which)")
            if time.monotonic() > deadline:
                self.close()
                raise ServerUnavailable(f"uvicorn did not start the Execution API on 127.0.0.1 within "
                                        f"{LOOPBACK_START_TIMEOUT:g} s")
            time.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/execution/"
        self._pool = _http.HTTPTransport()  # the library the installed Client is built on (httpx2 since 1.4.0)
        try:
            with self.client(attempts=1) as client:
                _warm_up(client)
        except BaseException:
            self.close()
            raise

    def client(self, attempts: int | None = None, faults: tuple[TransportFault, ...] = ()) -> ExchangeClient:
        """Airflow's ``Client`` to this server over loopback HTTP, on the server's shared pool; see ``make_client``."""
        return make_client(self._pool, base_url=self.base_url, attempts=attempts, faults=faults)

    def close(self) -> None:
        """Stop serving: the pool's connections closed, then uvicorn closes its listening socket; its thread is joined."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
        self._server.should_exit = True
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 10 s")

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Prefixed:
    """ASGI: serve ``app`` under ``prefix`` (as the api-server mounts the Execution API), lifespan passed through."""

    def __init__(self, app, prefix: str):
        self.app, self.prefix = app, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if not path.startswith(self.prefix + "/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope = dict(scope, path=path[len(self.prefix):], root_path=scope.get("root_path", "") + self.prefix)
        await self.app(scope, receive, send)


# -- Airflow's globals ---------------------------------------------------------------------------


def saved_logging():
    """Airflow's logging set-up as it is now (structlog's configuration, the level ``quiet_logs`` sets); call
    the result to put it back, e.g. after ``quiet_logs``."""
    import structlog

    config, level = structlog.get_config(), os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL")

    def restore() -> None:
        structlog.configure(**config)
        if level is None:
            os.environ.pop("AIRFLOW__LOGGING__LOGGING_LEVEL", None)
        else:
            os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = level
    return restore


def quiet_logs() -> None:
    """Airflow logs only CRITICAL from now on, set up by Airflow's own ``configure_logging``.

    Prefer this to a bare ``structlog.configure(make_filtering_bound_logger(...))``: that
    wrapper lacks the stdlib API (``isEnabledFor``) that Airflow's scheduler code calls
    (``DagRun.schedule_tis``), which then raises.
    """
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "CRITICAL"
    from airflow.logging_config import configure_logging

    configure_logging()


def _warm_up(client) -> None:
    """One request, so that the app's one-time work is done now: cadwyn builds its versioned routes
    on the first request it serves (seconds), not in ``create_task_execution_api_app``."""
    response = client.get("health/ping")
    if response.status_code != 200:
        raise ServerUnavailable(f"the Execution API app does not answer: GET health/ping -> {response.status_code}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


#: The environment variables ``start`` sets; ``close`` puts back what was there.
_ENV_KEYS = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
             "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
             "AIRFLOW__API_AUTH__JWT_SECRET")


def _isolate(home: Path, dags: Path) -> dict[str, str | None]:
    """Point Airflow's configuration at ``home`` through the environment (it wins over any airflow.cfg).

    Returns the values it replaced (None: unset), for ``_restore``.
    """
    saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    (home / "logs").mkdir(exist_ok=True)
    (home / "plugins").mkdir(exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # core 3.2.x's in-process app still builds a JWT validator in its lifespan (3.3 registers none there); with
        # no secret the lifespan dies unseen and every request is a 500. Auth is bypassed in process either way.
        "AIRFLOW__API_AUTH__JWT_SECRET": os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET") or "finalstate-in-process",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([{
            "name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(dags)}}]),
    })
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    """Put the environment back as ``_isolate`` found it and rebind Airflow's ORM to what it names."""
    from airflow import settings

    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    settings.dispose_orm(do_log=False)
    settings.configure_vars()
    settings.configure_orm()  # lazy: nothing connects until used


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # shown as given unless it may hold a password
        return "<not a database URL>" if "@" in url else repr(url)


def probe(url: str) -> None:
    """Connect to ``url`` once (5 s connect timeout); raise ``ServerUnavailable`` naming it (masked) if that fails."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    try:
        make_url(url)
    except Exception as e:
        raise ServerUnavailable(f"not a database URL, nor {SQLITE!r} or {LOCAL!r}: {masked(url)} ({e})") from None
    try:
        engine = create_engine(_with_driver(url), connect_args=_connect_timeout(url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
        finally:
            engine.dispose()
    except ModuleNotFoundError as e:
        raise ServerUnavailable(f"the database {masked(url)} needs the driver {e.name!r}, which is not installed"
                                ) from None
    except Exception as e:
        reason = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        raise ServerUnavailable(f"cannot connect to the database {masked(url)}: {reason}") from None


def _bind(url: str) -> None:
    """Rebind Airflow's global ORM (``airflow.settings``) to ``url``."""
    from airflow import settings

    url = _with_driver(url)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = url
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = _async_url(url)
    settings.dispose_orm(do_log=False)
    settings.configure_vars()
    settings.configure_orm()


def _async_url(url: str) -> str:
    """The async twin of ``url`` Airflow's app needs beside it (Airflow's own mapping, but psycopg 3 where
    asyncpg is missing: it serves both)."""
    import importlib.util

    from airflow.settings import _get_async_conn_uri_from_sync

    scheme, rest = url.split(":", 1)
    if scheme.split("+")[0] in ("postgresql", "postgres") and importlib.util.find_spec("asyncpg") is None:
        return f"postgresql+psycopg:{rest}"
    return _get_async_conn_uri_from_sync(url)


def _with_driver(url: str) -> str:
    """``url`` with psycopg 3 as its driver where it is a ``postgresql://`` URL naming none and psycopg2 (SQLAlchemy's
    default for it) is not installed; any other URL as it is."""
    import importlib.util

    scheme, sep, rest = url.partition(":")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None:
        return f"postgresql+psycopg:{rest}"
    return url


def _connect_timeout(url: str) -> dict:
    if url.startswith("postgres"):
        return {"connect_timeout": 5}
    if url.startswith("sqlite"):
        return {"timeout": 5}
    return {}


def _dispose() -> None:
    from airflow import settings

    settings.dispose_orm(do_log=False)


def _template_id() -> str:
    """What a template is made of: the airflow-core release that migrated it and a digest of the DAG file."""
    import hashlib

    import airflow

    return f"{airflow.__version__}-{hashlib.sha256(_DAG_FILE.encode()).hexdigest()[:8]}"


def _fill_template(url: str) -> None:
    """Migrate the empty database ``url`` and serialise the DAGs into it; the ORM lets go of it after."""
    _bind(url)
    _migrate(url)
    _sync_dag()
    _dispose()


def _migrate(url: str) -> None:
    """``airflow db migrate``: Airflow's ``upgradedb`` (a new database is created from the ORM and stamped)."""
    from airflow.utils import db

    try:
        db.upgradedb()
    except (Exception, SystemExit) as e:  # upgradedb exit()s on migration errors
        raise ServerUnavailable(f"migrating the database {masked(url)} failed: {type(e).__name__}: {e}") from e


def _sync_dag() -> None:
    """Serialise the DAGs as the DAG processor would: sync the bundle, parse its folder, write the bag."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag, sync_bag_to_db = since_1_2_0_bundle_dag_bag(bundle)
    if len(bag.dags) != RETRIES_MAX + 1:
        raise ServerUnavailable(f"the finalstate DAGs did not parse: {bag.import_errors}")
    sync_bag_to_db(bag, bundle.name, bundle.version)


def _serialized_dag(retries: int):
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        return DBDagBag().get_latest_version_of_dag(f"{DAG_ID}_r{retries}", session=session)


def _live_ti(session, run_id: str):
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    ti = session.scalar(select(TI).where(TI.run_id == run_id, TI.task_id == TASK_ID))
    if ti is None:
        raise LookupError(f"no live task instance in run {run_id}")
    return ti


def _executor(base):
    """A ``BaseExecutor`` that runs nothing: the scheduler's bookkeeping of its events is what is exercised."""

    class _Nothing(base):
        def execute_async(self, *args, **kwargs):
            raise NotImplementedError

        def sync(self) -> None:
            pass

        def send_callback(self, request) -> None:
            pass  # the DAG processor's callbacks run user code; these DAGs have none

    return _Nothing()


def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def _remove_stale_copies(workers: Path) -> None:
    """Delete database copies left by processes that are gone (a killed run's leftovers)."""
    if not workers.is_dir():
        return
    for copy in workers.glob("*.db*"):
        pid = copy.name.split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()


# -- for sharers (added for impl/server/conformance.py) ------------------------------------------


def active_server() -> AirflowServer | None:
    """The process's started ``AirflowServer``, if any: one per process, so a second user shares it."""
    return _active if _active is not None and _active._started else None
