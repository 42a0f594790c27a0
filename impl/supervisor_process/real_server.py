"""``--server airflow`` for real-process supervisors: the real Execution API over loopback HTTP.

Where the attempts run (the helper process, inside its network namespace when it has one), one
``RealServerSide`` per process: the real app of apache-airflow-core on its own SQLite copy
(``impl.server.airflow_attempt.open_server``: migrated once, copied per process, no per-attempt
migration or app build) served by uvicorn on 127.0.0.1 (``impl.server.airflow_api.LoopbackServer``),
started on first use and stopped by ``close``. Being in the same process as the supervisor, the
server is reachable from wherever the supervisor runs.

Each attempt is an ``impl.server.airflow_attempt.AirflowAttempt`` (its own DagRun and TI, the
scenario's faults on the client's transport, heartbeat answers made by the world) with
Airflow's real ``Client`` over loopback HTTP: the scenario's ``execution_api_retries``, zero waits. A
``RealAttempt`` puts it where the control channel (``impl.server.model_api``) expects an
attempt: the runtime's ``arm``, ``act`` and ``heartbeat`` requests reach it by the runtime's token.
"""

from __future__ import annotations

import threading

from impl.releases.adapters import since_1_4_0_heartbeat_due
from impl.server.airflow_api import LoopbackServer
from impl.server.airflow_attempt import AirflowAttempt, AttemptRecord, observed_row, open_server
from model.scenario import ApiCall, Fault, RunContext, UserAction


class RealAttempt:
    """One attempt on the real server, as the control channel and the supervision see it.

    ``ti_id`` is the real row's id (the TI the supervisor is handed); ``client`` the
    supervisor's client. ``runtime_pid``, ``attached``, ``lock``, ``lost_in_flight`` and
    ``unexpected`` are what ``supervise`` reads of any attempt (a lost answer here is settled
    before the client raises, so nothing is ever in flight).
    """

    def __init__(self, real: AirflowAttempt):
        self.real = real
        self.ti_id = str(real.ti_id)
        self.client = real.client
        self.runtime_pid: int | None = None
        self.supervisor = None
        self.attached = threading.Event()
        self.lock = threading.Condition()
        self.lost_in_flight = 0
        self.unexpected: list[str] = []
        self.record: AttemptRecord | None = None

    def attach(self, supervisor) -> None:
        self.supervisor = supervisor
        self.attached.set()

    def arm(self, fault: Fault) -> None:
        self.real.arm(fault)

    def act(self, action: UserAction) -> None:
        """A user acts on the real row: marks, clears or deletes it (``AirflowAttempt.act``)."""
        self.real.act(action)

    def heartbeat_due(self, answer: int) -> None:
        """As airflow-inproc: the world acts only when the supervisor will send the heartbeat
        (``since_1_4_0_heartbeat_due``: no terminal state held yet, or since 1.4.0 an outcome not delivered yet)."""
        if self.supervisor is None or since_1_4_0_heartbeat_due(self.supervisor):
            self.real.heartbeat_due(answer)

    def finish(self) -> tuple[tuple[ApiCall, ...], str, int | None, str | None]:
        """The calls, the row as read back, the status the world made the server answer and the rendered map index
        the last call that passes one on carried; releases the client."""
        calls, map_index_sent = self.real.calls(), self.real.map_index_sent()
        self.record = self.real.close()
        return calls, observed_row(self.record.row_after), self.real.gone, map_index_sent


class RealServerSide:
    """The real app on its database, served by uvicorn on loopback; one per process (Airflow's ORM is global)."""

    def __init__(self):
        self.server = open_server()
        try:
            self.loopback = LoopbackServer(self.server)
        except BaseException:
            self.server.close()
            raise

    def open(self, context: RunContext, tries: int) -> RealAttempt:
        """A new attempt: its DagRun and QUEUED TI, and a client over loopback that tries each request ``tries``
        times (raises ``Unsupported`` for a run context the real server cannot hand out)."""
        client = self.loopback.client(attempts=tries)
        try:
            return RealAttempt(AirflowAttempt(self.server, context, client=client))
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        """Stop uvicorn (its thread joined, nothing listening), then the app and its database copy."""
        try:
            self.loopback.close()
        finally:
            self.server.close()
