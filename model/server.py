"""The task instance row on the Execution API server, under the server's rules.

Specifies apache-airflow-core 3.3.2 (the release apache-airflow-task-sdk 1.3.2 installs):
``airflow/api_fastapi/execution_api/routes/task_instances.py`` (``ti_run``,
``ti_update_state``, ``ti_heartbeat``, ``ti_skip_downstream``) and the server-side actors that
move the row under a running task. ``properties/test_server_conformance.py`` checks this
model against that release's app on a real database, request by request; where they differ,
the real server is right.

The worker's requests, on the TI id it holds (``Server.held``):

- ``start`` (``PATCH .../run``): QUEUED or RESTARTING → RUNNING, 200, and the run context
  (``should_retry``: always after RESTARTING, else ``max_tries != 0 and try_number <= max_tries``);
  a repeated start by the same worker (same pid) of its RUNNING TI is 200 again; any other
  state is 409;
- a state update (succeed, retry, defer, reschedule, await_input, finish): the requested state
  already held is 200 (even if the row is not RUNNING; since core 3.3.0, ``Release.accepts_repeated_state``:
  the server of an older release, ``Server.release``, refuses it as below); else a row not RUNNING is 409; else the
  row takes the new state, 204. A retry archives the try: the live row gets a new id, the
  worker's id now names history. The server does not check the retry budget;
- ``heartbeat`` (``PUT .../heartbeat``): 204 while the TI is RUNNING under the worker's pid;
  409 if another pid holds it or it is not RUNNING;
- ``skip_downstream_tasks``: 204 whatever the row's state (it touches other rows only);
- an id no longer live is 404, but a heartbeat on an id in the TI's history is 410 (Gone).

The actors (on the live row, whatever id it has; nothing happens to a deleted row):
``mark`` (a user sets the state), ``clear`` (a user clears it: the try is archived, a RUNNING
TI becomes RESTARTING, any other loses its state and gets ``max_tries = try_number + retries``),
``delete``, ``heartbeat_timeout`` (the scheduler fails a RUNNING or RESTARTING TI: UP_FOR_RETRY
if eligible, archiving a RUNNING try, else FAILED) and ``requeue`` (the scheduler queues a
schedulable TI: a new try, or the same one after a reschedule).

Statuses are the HTTP statuses the app answers; ``client_status`` is what Airflow's client
makes of them (any 2xx: no error), which is what an observation records.

It also carries the faults a scenario injects, so that every target's fake server
answers from this one place: ``Server.call`` is the whole of the supervisor's side.
"""

from __future__ import annotations

import attrs

from model.frozen import replace
from model.release import SPECIFIED, Release
from model.scenario import (
    AWAITING_INPUT,
    DEFERRED,
    FAILED,
    HEARTBEAT_ERROR,
    HEARTBEAT_GONE,
    HEARTBEAT_NO_ANSWER,
    QUEUED,
    RUNNING,
    SUCCESS,
    TIMEOUT,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    Fault,
    RunContext,
    server_should_retry,
)

#: The state each dedicated Execution API call asks for (``finish`` names its own).
CALL_STATES = {
    "succeed": SUCCESS,
    "retry": UP_FOR_RETRY,
    "defer": DEFERRED,
    "reschedule": UP_FOR_RESCHEDULE,
    "await_input": AWAITING_INPUT,
}
#: A RUNNING TI a user cleared: it must stop, and its next start may always retry.
RESTARTING = "restarting"
#: The row's pseudo-state once a user deleted it (Airflow has no row, so no state, then).
DELETED = "deleted"
#: The states the scheduler's ``DagRun.schedule_tis`` queues (None: a cleared TI with no state).
SCHEDULABLE = (None, UP_FOR_RETRY, UP_FOR_RESCHEDULE)

OK = 200
NO_CONTENT = 204
NOT_FOUND = 404
CONFLICT = 409
GONE = 410
SERVER_ERROR = 500

#: The pid of the worker the supervisor model plays (any pid will do: only sameness matters).
WORKER = 1


def client_status(status: int | str) -> int | str:
    """What Airflow's client reports of a status: any 2xx as ``OK`` (it raises for nothing else)."""
    return OK if isinstance(status, int) and 200 <= status < 300 else status


@attrs.frozen(cache_hash=True)  # states are members of sets, hashed often
class Row:
    """The live TI row.

    ``state`` None: no state (cleared while not running); ``DELETED``: no row at all.
    ``retries`` is the task's ``retries`` (None: ``max_tries``, as a first try's row has it).
    ``ti_id`` numbers the row's ids: each archived try gives the live row the next one.
    ``pid`` is the pid of the worker that started it. ``gone`` records, for an observation,
    the status by which the server told the worker that its TI was taken away (404/409/410).
    """

    state: str | None = QUEUED
    try_number: int = 1
    max_tries: int = 0
    gone: int | None = None
    retries: int | None = None
    ti_id: int = 0
    pid: int | None = None

    @property
    def task_retries(self) -> int:
        return self.max_tries if self.retries is None else self.retries

    def next_try(self) -> Row:
        """The row the scheduler queues after UP_FOR_RETRY: the same TI, one try later."""
        if self.state != UP_FOR_RETRY:
            raise ValueError(f"only an up_for_retry row is queued for another try, not {self.state}")
        return replace(self, state=QUEUED, try_number=self.try_number + 1)


@attrs.frozen(cache_hash=True)  # states are members of sets, hashed often
class Server:
    """The row, the id the worker holds, the history of tries, and the faults armed; every method is pure.

    ``history`` holds ``(try_number, ti_id)`` per archived try: the first archive of a try is
    recorded, a later one of the same try is not (``TaskInstanceHistory.record_ti``), so that id
    is then in neither table. ``context`` is the run context the last successful ``start``
    handed out (None before).
    """

    row: Row = Row()
    faults: tuple[Fault, ...] = ()
    held: int = 0
    history: frozenset[tuple[int, int]] = frozenset()
    context: RunContext | None = None
    #: The release whose server this is, where server releases differ by design (``model.release``).
    release: Release = SPECIFIED

    @classmethod
    def queued(cls, context: RunContext, retries: int | None = None, release: Release = SPECIFIED) -> Server:
        """A QUEUED row with the context's counts; ``retries`` is the task's (default: ``max_tries``)."""
        return cls(Row(QUEUED, context.try_number, context.max_tries, retries=retries), release=release)

    @property
    def held_is_live(self) -> bool:
        """The worker's id still names the live row (not archived, not deleted)."""
        return self.row.state != DELETED and self.held == self.row.ti_id

    def arm(self, fault: Fault) -> Server:
        return replace(self, faults=(*self.faults, fault))

    # -- the worker's requests

    def fresh_worker(self) -> Server:
        """A new worker is handed the live TI: from now on requests carry the live row's id."""
        return self if self.row.state == DELETED else replace(self, held=self.row.ti_id)

    def start(self, pid: int = WORKER) -> tuple[Server, int]:
        """``ti_run``: QUEUED or RESTARTING → RUNNING (200, ``context`` set); the same pid's repeat is 200."""
        if not self.held_is_live:
            return self, NOT_FOUND
        row = self.row
        repeated = row.state == RUNNING and row.pid == pid
        if not repeated and row.state not in (QUEUED, RESTARTING):
            return self, CONFLICT
        should_retry = row.state == RESTARTING or server_should_retry(row.try_number, row.max_tries)
        context = RunContext(row.try_number, row.max_tries, should_retry)
        return replace(self, row=replace(row, state=RUNNING, pid=pid), context=context), OK

    def heartbeat_from(self, pid: int = WORKER) -> tuple[Server, int]:
        """``ti_heartbeat``: 204 for the RUNNING TI of ``pid``; 409 elsewhere or not running; once not live, 410 for
        an archived try's id (since core 3.2.2, ``Release.answers_gone``), else 404."""
        if not self.held_is_live:
            archived = any(ti_id == self.held for _, ti_id in self.history)
            return self, GONE if archived and self.release.answers_gone else NOT_FOUND
        if self.row.pid != pid or self.row.state != RUNNING:
            return self, CONFLICT
        return self, NO_CONTENT

    def heartbeat(self, answer: int) -> tuple[Server, int]:
        """The supervisor's heartbeat, with the world arranged so that the server answers ``answer``.

        For the TI while RUNNING: 404 a user deletes it first, 409 a user marks it failed, 410 a
        user clears it (as ``impl.server.airflow_attempt`` arranges the real world); 500 is an
        error in front of the app; ``timeout`` no answer (the request never reaches the app). Then
        the heartbeat itself; a 404/409/410 is recorded on the row as ``gone``.
        """
        if answer == HEARTBEAT_ERROR:
            return self, SERVER_ERROR
        if answer == HEARTBEAT_NO_ANSWER:
            return self, TIMEOUT
        world = self
        if self.row.state == RUNNING and self.held_is_live:
            if answer == NOT_FOUND:
                world = self.delete()
            elif answer == CONFLICT:
                world = self.mark(FAILED)
            elif answer == GONE:
                world = self.clear()
        server, status = world.heartbeat_from(WORKER)
        if status in HEARTBEAT_GONE:
            server = replace(server, row=replace(server.row, gone=status))
        return server, status

    def call(self, name: str, state: str | None = None) -> tuple[Server, int | str]:
        """A state-changing or side call by the supervisor; returns the new server and the status.

        ``name`` is the client method (``succeed``, ``retry``, ``finish``, ...); ``state`` is
        the state ``finish`` asks for. Armed faults apply first, in the order armed.
        """
        at = next((i for i, f in enumerate(self.faults) if f.call == name), None)
        if at is None:
            return self._apply(name, state)
        fault = self.faults[at]
        if fault.kind == "permanent":
            return self, SERVER_ERROR
        # By position: two equal faults armed are two faults (each disarms once), even as one object.
        disarmed = replace(self, faults=self.faults[:at] + self.faults[at + 1:])
        if fault.kind == "transient":
            return disarmed, SERVER_ERROR
        applied, _ = disarmed._apply(name, state)  # "lost": done on the server, answer never arrives
        return applied, TIMEOUT

    def _apply(self, name: str, state: str | None) -> tuple[Server, int]:
        """``ti_update_state`` (``ti_skip_downstream`` for ``skip_downstream_tasks``) on the held id."""
        if not self.held_is_live:
            return self, NOT_FOUND
        target = state if name == "finish" else CALL_STATES.get(name)
        if target is None:  # skip_downstream_tasks touches other rows only
            return self, NO_CONTENT
        if self.row.state == target and self.release.accepts_repeated_state:
            return self, OK
        if self.row.state != RUNNING:
            return self, CONFLICT
        moved = replace(self, row=replace(self.row, state=target))
        return (moved._archived() if target == UP_FOR_RETRY else moved), NO_CONTENT

    # -- the actors on the live row

    def mark(self, state: str) -> Server:
        """A user marks the TI ``state`` (``set_task_instance_state``)."""
        return self._live(lambda row: replace(row, state=state))

    def clear(self) -> Server:
        """A user clears the TI (``clear_task_instances``): the try is archived, then RUNNING → RESTARTING,
        anything else → no state with ``max_tries = try_number + retries``."""
        if self.row.state == DELETED:
            return self
        server = self._archived()
        if self.row.state == RUNNING:
            return server._live(lambda row: replace(row, state=RESTARTING))
        return server._live(lambda row: replace(row, state=None, max_tries=row.try_number + row.task_retries))

    def delete(self) -> Server:
        """A user deletes the TI: no live row, and its history goes with it (the foreign key cascades),
        so every id it had answers 404, a heartbeat on an archived one too."""
        if self.row.state == DELETED:
            return self
        return replace(self, row=replace(self.row, state=DELETED), history=frozenset())

    def heartbeat_timeout(self) -> Server:
        """The scheduler's task-heartbeat timeout on a RUNNING or RESTARTING TI (``TaskInstance.handle_failure``).

        Eligible to retry (RESTARTING, or the task has retries and ``try_number <= max_tries``):
        UP_FOR_RETRY, a RUNNING try archived first; else FAILED. Any other state: untouched.
        """
        row = self.row
        if row.state not in (RUNNING, RESTARTING):
            return self
        if not (row.state == RESTARTING or (row.task_retries and row.try_number <= row.max_tries)):
            return self.mark(FAILED)
        server = self._archived() if row.state == RUNNING else self
        return server.mark(UP_FOR_RETRY)

    def requeue(self) -> Server:
        """The scheduler queues a schedulable TI (``DagRun.schedule_tis``): a new try, except after a reschedule."""
        row = self.row
        if row.state not in SCHEDULABLE:
            return self
        try_number = row.try_number if row.state == UP_FOR_RESCHEDULE else row.try_number + 1
        return self._live(lambda r: replace(r, state=QUEUED, try_number=try_number))

    def _live(self, change) -> Server:
        if self.row.state == DELETED:
            return self
        return replace(self, row=change(self.row))

    def _archived(self) -> Server:
        """``prepare_db_for_next_try``: the try goes to history unless already there; the row takes the next id."""
        history = self.history
        if all(try_number != self.row.try_number for try_number, _ in history):
            history = history | {(self.row.try_number, self.row.ti_id)}
        return replace(self, history=history, row=replace(self.row, ti_id=self.row.ti_id + 1))
