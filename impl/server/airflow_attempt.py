"""One scenario's attempt on the real Execution API: its row, the supervisor's client, the world around it.

The twin of ``model_client`` for ``--server airflow``: where ``RecordingClient`` answers from
``model.server``, an ``AirflowAttempt`` gives the supervisor Airflow's real ``Client`` (trying each
request the scenario's ``execution_api_retries`` times, zero waits) to the real app of
``airflow_api.AirflowServer``, and moves the scenario's faults and heartbeat answers to where they happen.

The row. Each attempt is its own DagRun and TaskInstance, QUEUED with the scenario's
``try_number`` and ``max_tries`` (``AirflowServer.open_attempt(..., start=False)``); the
supervisor's own ``start`` is the real ``ti_run``, so ``should_retry`` comes from the server. A run
context whose ``should_retry`` is not the server's rule cannot be had from the real server:
``Unsupported``.

The events (``fault`` and ``heartbeat`` arm, before the call they are about):

- ``fault CALL transient``: the transport answers 500 to the next such request only; the
  client's next try then reaches the app (so with more than one try it is invisible);
- ``fault CALL permanent``: 500 to every request of that call from now on;
- ``fault CALL lost``: the next such request is applied by the app and its answer lost (the
  client retries it against what the server already did);
- ``heartbeat 200``: nothing; ``heartbeat 500``: 500 to every try of that heartbeat; ``heartbeat
  timeout``: every try of it times out connecting (it never reaches the app);
- ``heartbeat 404`` / ``409`` / ``410``: the world, by airflow-core's own code, just before the
  heartbeat: a user deletes the TI (404), marks it failed (409), clears it (410: the try is
  archived; since core 3.4 a cleared running try stays live until it stops, so the scheduler's
  heartbeat timeout then completes its restart: ``Release.restarts_a_cleared_try_once_stopped``).
  Only while the row is RUNNING, as ``model.server`` acts only on its RUNNING TI; otherwise the
  heartbeat meets the row as it is. ``row_gone`` is the status of the last heartbeat the server
  refused with 404/409/410, whoever made it refuse (``gone``).

The calls. One ``ApiCall(name, status, state)`` per HTTP request (each try of a client call), as
``model.client`` records them, named as ``model.server`` names them, with the status the client
saw: any 2xx as 200 (``model.server.OK``; the real app answers 200 or 204), a 4xx/5xx as it is, no
answer (a lost answer) as ``TIMEOUT``. ``state`` only for ``finish``. The full record, with what
the app answered to a request whose answer was lost, is ``AttemptRecord.exchanges``.
"""

from __future__ import annotations

import attrs

from impl.releases.adapters import model_release, model_state
from impl.server.airflow_api import (AirflowServer, Attempt, Exchange, RowState, TransportFault, active_server,
                                     quiet_logs)
from model.scenario import (CALLS_WITH_MAP_INDEX, FAILED, HEARTBEAT_ERROR, HEARTBEAT_GONE, HEARTBEAT_NO_ANSWER, NO_STATE,
                            RUNNING, SCHEDULER_TIMES_OUT, TIMEOUT, USER_CLEARS, USER_MARKS, ApiCall, Fault, RunContext, UserAction)
from model.server import client_status

#: Scenario fault kinds → what the transport does (``TransportFault`` kind, how many requests: None = all).
_FAULTS = {"transient": ("5xx", 1), "permanent": ("5xx", None), "lost": ("lost", 1)}
#: ``Observation.row`` for a TI the server no longer holds (deleted).
DELETED = "deleted"


class Unsupported(NotImplementedError):
    """A scenario the real server backend cannot play (yet); the message names what and why."""


@attrs.frozen
class AttemptRecord:
    """What went on between the supervisor and the real server in one attempt, for a person to read."""

    run_id: str
    ti_id: str
    row_before: RowState | None
    row_after: RowState | None
    exchanges: tuple[Exchange, ...]

    def to_lines(self) -> list[str]:
        return [f"run_id={self.run_id} ti_id={self.ti_id}",
                f"row before: {row_text(self.row_before)}",
                "exchanges:", *(f"  {e.to_text()}" for e in self.exchanges),
                f"row after: {row_text(self.row_after)}"]


def row_text(row: RowState | None) -> str:
    if row is None:
        return DELETED
    return f"{row.state} try_number={row.try_number} max_tries={row.max_tries}"


def open_server() -> AirflowServer:
    """The process's ``AirflowServer`` (home ``build/server/``), started, Airflow's logs quieted: the one already
    running, shared (``AirflowServer.share``), or a new one. Each caller closes it when done."""
    quiet_logs()
    running = active_server()
    return running.share() if running is not None else AirflowServer().start()


class AirflowAttempt:
    """One attempt's row and client; ``arm`` and ``heartbeat_due`` are the scenario's world (see the module).

    ``client``: the supervisor's client, e.g. ``LoopbackServer.client()`` for a supervisor whose
    runtime is a real process; None: ``server.client(attempts=tries)``, in process (``tries`` None: Airflow's
    default).
    """

    def __init__(self, server: AirflowServer, context: RunContext, client=None, run_id: str | None = None,
                 tries: int | None = None):
        """``run_id``: play the attempt on that run's live TI as the scheduler left it (a later try of one
        TI's life), instead of on a new row QUEUED with ``context``'s counts."""
        if run_id is not None:
            ti_id = server.ti_id(run_id)
            if ti_id is None:
                raise LookupError(f"no live task instance in run {run_id}")
            self.attempt = Attempt(ti_id=ti_id, run_id=run_id, context=None)
        elif not context.consistent:
            raise Unsupported(
                f"--server airflow: the run context should_retry={str(context.should_retry).lower()} with "
                f"try_number={context.try_number} max_tries={context.max_tries} is not what the real server "
                "hands out (it decides should_retry itself); not supported by the real server backend")
        else:
            self.attempt = server.open_attempt(context.try_number, context.max_tries, start=False)
        self.server = server
        self.row_before = server.row(self.attempt.run_id)
        #: Airflow's client to ``server`` (default: in process, ``AirflowServer.client``); released by ``close``.
        self.client = client if client is not None else server.client(attempts=tries)

    @property
    def ti_id(self):
        return self.attempt.ti_id

    @property
    def gone(self) -> int | None:
        """The status by which the server last told the supervisor, at a heartbeat, that its TI is taken away."""
        refused = [e.status for e in self.client.exchanges if e.name == "heartbeat" and e.status in HEARTBEAT_GONE]
        return refused[-1] if refused else None

    def arm(self, fault: Fault) -> None:
        kind, times = _FAULTS[fault.kind]
        self.client.wire.arm(TransportFault(fault.call, kind, times=times))

    def heartbeat_due(self, answer: int) -> None:
        """The next heartbeat is to be answered ``answer``; call only when the supervisor will send it."""
        run_id = self.attempt.run_id
        if answer in (HEARTBEAT_ERROR, HEARTBEAT_NO_ANSWER):
            kind = "5xx" if answer == HEARTBEAT_ERROR else "timeout"
            tries = self.client.attempts if model_release().retries_heartbeats else 1  # 1.4.0 tries a heartbeat once
            self.client.wire.arm(TransportFault("heartbeat", kind, times=tries))
            return
        if answer not in HEARTBEAT_GONE or getattr(self.server.row(run_id), "state", None) != RUNNING:
            return
        if answer == 404:
            self.server.delete(run_id)
        elif answer == 409:
            self.server.mark(run_id, FAILED)
        else:
            self.server.clear(run_id)
            if model_release().restarts_a_cleared_try_once_stopped:  # the cleared try is still live: archive it
                self.server.heartbeat_timeout(run_id)

    def act(self, action: UserAction) -> None:
        """Someone acts on the live task instance: a user as the UI or REST API would (marks it, clears it, deletes
        it), or the scheduler's heartbeat timeout (its own code: ``AirflowServer.heartbeat_timeout``)."""
        run_id = self.attempt.run_id
        if action.action == USER_MARKS:
            self.server.mark(run_id, action.state)
        elif action.action == USER_CLEARS:
            self.server.clear(run_id)
        elif action.action == SCHEDULER_TIMES_OUT:
            self.server.heartbeat_timeout(run_id)
        else:
            self.server.delete(run_id)

    def map_index_sent(self) -> str | None:
        """What the last succeed, retry or finish request carried as ``rendered_map_index``."""
        sent = [e.rendered_map_index for e in self.client.exchanges if e.name in CALLS_WITH_MAP_INDEX]
        return sent[-1] if sent else None

    def calls(self) -> tuple[ApiCall, ...]:
        """One ``ApiCall`` per request, with the status the client saw (see the module)."""
        return tuple(map(_api_call, self.client.exchanges))

    def close(self) -> AttemptRecord:
        """Read the row back, release the client; the record of the attempt."""
        row = self.server.row(self.attempt.run_id)
        self.server.release(self.client)
        return AttemptRecord(self.attempt.run_id, str(self.attempt.ti_id), self.row_before, row,
                             tuple(self.client.exchanges))


def _api_call(exchange: Exchange) -> ApiCall:
    status = TIMEOUT if exchange.status is None else client_status(exchange.status)
    return ApiCall(exchange.name, status, model_state(exchange.state))  # the release's server_terminated as the model's


def observed_row(row: RowState | None) -> str:
    """``Observation.row`` of a real row: its state, ``deleted`` once gone, ``NO_STATE`` for a row with no state."""
    if row is None:
        return DELETED
    return NO_STATE if row.state is None else str(row.state).lower()

