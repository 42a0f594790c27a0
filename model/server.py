"""The task instance row on the Execution API server, under the server's rules.

Specifies apache-airflow-core 3.3.2 (the release apache-airflow-task-sdk 1.3.2 installs) by default, and the
core of any other release handed to it (``Server.release``; the server release pairs with the task-sdk release,
core 3.4.0 with task-sdk 1.4.0, checked on 3.4.0b2): ``airflow/api_fastapi/execution_api/routes/task_instances.py``
(``ti_run``, ``ti_update_state``, ``ti_heartbeat``, ``ti_skip_downstream``) and the server-side actors that move the
row under a running task. Each difference between server releases is one trait of ``model.release.Release``, named
below where a rule depends on it. ``properties/test_server_conformance.py`` checks this model against the installed
release's app on a real database, request by request; where they differ, the real server is right.

Tries. Each try of the TI has its own id; archiving a try (``prepare_db_for_next_try``: a retry, a clear, the
heartbeat timeout) moves it to the TI's history and gives the live row a new id. The live row keeps the archived
try's number until the scheduler queues it again (core 3.3), or takes the next number at once, which the scheduler
then keeps (since core 3.4.0, ``Release.numbers_a_try_when_archiving``).

The worker's requests, on the TI id it holds (``Server.held``):

- ``start`` (``PATCH .../run``): QUEUED → RUNNING, 200, and the run context (``should_retry``:
  ``max_tries != 0 and try_number <= max_tries``); RESTARTING → RUNNING too, always with ``should_retry``, where a
  clear archives a running try at once (before core 3.4.0; since, RESTARTING is refused:
  ``Release.restarts_a_cleared_try_once_stopped``); a repeated start by the same worker (same pid) of its RUNNING
  TI is 200 again; any other state is 409;
- a state update (succeed, retry, defer, reschedule, await_input, finish): the requested state
  already held is 200 (even if the row is not RUNNING; since core 3.3.0, ``Release.accepts_repeated_state``:
  the server of an older release refuses it as below); else a row not RUNNING is 409; else the
  row takes the new state, 204. A retry archives the try: the worker's id now names history. The server does not
  check the retry budget;
- a stop report (``finish(SERVER_TERMINATED)``, since core 3.4.0: ``Release.takes_stop_reports``): 204 on an
  archived try's id; on the live row 409 unless the worker that started it reports, then a RESTARTING try's restart
  is completed (archived; the successor has no state and ``max_tries`` its last try plus the task's retries), a
  finished row is left as it is (204), any other state is 409;
- ``heartbeat`` (``PUT .../heartbeat``): 204 while the TI is RUNNING under the worker's pid;
  409 if another pid holds it or it is not RUNNING;
- ``skip_downstream_tasks``: 204 whatever the row's state (it touches other rows only);
- an id no longer live is 404; a heartbeat on an archived try's id is 410 (Gone, since core 3.2.1:
  ``Release.answers_gone``), and so is a start, a state update or skip-downstream (since core 3.4.0, to task-sdk
  1.4.0's client: ``Release.answers_gone_to_an_archived_change``).

The actors (on the live row, whatever id it has; nothing happens to a deleted row):
``mark`` (a user sets the state), ``clear`` (a user clears it: a RUNNING TI becomes RESTARTING, its try archived
at once before core 3.4.0, left live until it stops since; any other loses its state and gets ``max_tries`` =
the last try that ran + retries, its try archived first, except since core 3.4.0 a try that has not run: no state
or UP_FOR_RETRY), ``delete`` (the TI and its history), ``heartbeat_timeout`` (the scheduler fails a RUNNING or
RESTARTING TI: UP_FOR_RETRY if eligible, archiving a RUNNING try, else FAILED; since core 3.4.0 a RESTARTING try's
restart is completed instead) and ``requeue`` (the scheduler queues a schedulable TI: a new try, or the same one after
a reschedule; since core 3.4.0 the number archiving gave it).

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
    REMOVED,
    RUNNING,
    SERVER_TERMINATED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    SCHEDULER_TIMES_OUT,
    USER_CLEARS,
    USER_MARKS,
    Fault,
    RunContext,
    UserAction,
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
#: A TI state no task sends: the scheduler fails a task whose upstream failed.
UPSTREAM_FAILED = "upstream_failed"
#: ``TerminalTIState``: the states in which a try is finished (a stop report leaves them as they are).
FINISHED = frozenset({SUCCESS, FAILED, SKIPPED, UPSTREAM_FAILED, REMOVED})

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

    #: The row's state (None: none; ``DELETED``: no row).
    state: str | None = QUEUED
    #: The row's try number.
    try_number: int = 1
    #: The row's ``max_tries``.
    max_tries: int = 0
    #: For an observation: the status by which the server told the worker its task instance was taken away.
    gone: int | None = None
    #: The task's ``retries`` (None: ``max_tries``, as a first try's row has it).
    retries: int | None = None
    #: Which of the task instance's ids the live row has: each archived try gives it the next.
    ti_id: int = 0
    #: The pid of the worker that started it.
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
    is then in neither table (since core 3.4.0 every archive is of a try number of its own, kept in
    ``task_instance`` out of the working set). ``context`` is the run context the last successful ``start``
    handed out (None before).
    """

    #: The live row.
    row: Row = Row()
    #: The faults armed, in the order armed.
    faults: tuple[Fault, ...] = ()
    #: The id the worker's requests carry.
    held: int = 0
    #: ``(try_number, ti_id)`` of each archived try.
    history: frozenset[tuple[int, int]] = frozenset()
    #: The run context the last successful ``start`` handed out (None before).
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
        """``ti_run``: QUEUED → RUNNING (200, ``context`` set), and RESTARTING too where a cleared try is archived at
        once (not ``Release.restarts_a_cleared_try_once_stopped``); the same pid's repeat is 200."""
        if not self.held_is_live:
            return self, self._not_live()
        row = self.row
        repeated = row.state == RUNNING and row.pid == pid
        startable = (QUEUED,) if self.release.restarts_a_cleared_try_once_stopped else (QUEUED, RESTARTING)
        if not repeated and row.state not in startable:
            return self, CONFLICT
        should_retry = row.state == RESTARTING or server_should_retry(row.try_number, row.max_tries)
        context = RunContext(row.try_number, row.max_tries, should_retry)
        return replace(self, row=replace(row, state=RUNNING, pid=pid), context=context), OK

    @property
    def held_is_archived(self) -> bool:
        """The worker's id names an archived try (one the TI's history still holds)."""
        return any(ti_id == self.held for _, ti_id in self.history)

    def _not_live(self) -> int:
        """A change (start, state update, skip-downstream) on an id that is not live: 410 for an archived try's id
        since core 3.4.0 (``Release.answers_gone_to_an_archived_change``), else 404."""
        return GONE if self.held_is_archived and self.release.answers_gone_to_an_archived_change else NOT_FOUND

    def heartbeat_from(self, pid: int = WORKER) -> tuple[Server, int]:
        """``ti_heartbeat``: 204 for the RUNNING TI of ``pid``; 409 elsewhere or not running; once not live, 410 for
        an archived try's id (since core 3.2.1, ``Release.answers_gone``), else 404."""
        if not self.held_is_live:
            return self, GONE if self.held_is_archived and self.release.answers_gone else NOT_FOUND
        if self.row.pid != pid or self.row.state != RUNNING:
            return self, CONFLICT
        return self, NO_CONTENT

    def heartbeat(self, answer: int) -> tuple[Server, int]:
        """The supervisor's heartbeat, with the world arranged so that the server answers ``answer``.

        For the TI while RUNNING: 404 a user deletes it first, 409 a user marks it failed, 410 a
        user clears it, and where a cleared try stays live until it stops
        (``Release.restarts_a_cleared_try_once_stopped``) the scheduler's heartbeat timeout then
        completes its restart, archiving it (as ``impl.server.airflow_attempt`` arranges the real
        world); 500 is an error in front of the app; ``timeout`` no answer (the request never
        reaches the app). Then the heartbeat itself; a 404/409/410 is recorded on the row as ``gone``.
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
                if self.release.restarts_a_cleared_try_once_stopped:
                    world = world.heartbeat_timeout()
        server, status = world.heartbeat_from(WORKER)
        if status in HEARTBEAT_GONE:
            server = replace(server, row=replace(server.row, gone=status))
        return server, status

    def call(self, name: str, state: str | None = None, pid: int = WORKER) -> tuple[Server, int | str]:
        """A state-changing or side call by the supervisor; returns the new server and the status.

        ``name`` is the client method (``succeed``, ``retry``, ``finish``, ...); ``state`` is
        the state ``finish`` asks for; ``pid`` the worker's, which a stop report carries. Armed
        faults apply first, in the order armed.
        """
        at = next((i for i, f in enumerate(self.faults) if f.call == name), None)
        if at is None:
            return self._apply(name, state, pid)
        fault = self.faults[at]
        if fault.kind == "permanent":
            return self, SERVER_ERROR
        # By position: two equal faults armed are two faults (each disarms once), even as one object.
        disarmed = replace(self, faults=self.faults[:at] + self.faults[at + 1:])
        if fault.kind == "transient":
            return disarmed, SERVER_ERROR
        applied, _ = disarmed._apply(name, state, pid)  # "lost": done on the server, answer never arrives
        return applied, TIMEOUT

    def _apply(self, name: str, state: str | None, pid: int = WORKER) -> tuple[Server, int]:
        """``ti_update_state`` (``ti_skip_downstream`` for ``skip_downstream_tasks``) on the held id."""
        if name == "finish" and state == SERVER_TERMINATED and self.release.takes_stop_reports:
            return self._stop_report(pid)
        if not self.held_is_live:
            return self, self._not_live()
        target = state if name == "finish" else CALL_STATES.get(name)
        if target is None:  # skip_downstream_tasks touches other rows only
            return self, NO_CONTENT
        if self.row.state == target and self.release.accepts_repeated_state:
            return self, OK
        if self.row.state != RUNNING:
            return self, CONFLICT
        moved = replace(self, row=replace(self.row, state=target))
        return (moved._archived() if target == UP_FOR_RETRY else moved), NO_CONTENT

    def _stop_report(self, pid: int) -> tuple[Server, int]:
        """``finish(SERVER_TERMINATED)``: the worker ``pid`` reports that the try it was told to stop has stopped
        (``Release.takes_stop_reports``). 204 on an archived try's id, 404 on an id in neither table; on the live row
        409 unless ``pid`` started it, then a RESTARTING try's restart is completed, a finished row is left as it is
        (204), and any other state is 409."""
        if not self.held_is_live:
            return self, NO_CONTENT if self.held_is_archived else NOT_FOUND
        if self.row.pid != pid:
            return self, CONFLICT
        if self.row.state == RESTARTING:
            return self._restart_completed(), NO_CONTENT
        return self, NO_CONTENT if self.row.state in FINISHED else CONFLICT

    # -- the actors on the live row

    def act(self, action: UserAction) -> Server:
        """An action on the task instance by someone else (``model.scenario.UserAction``): a user's ``mark``, ``clear``
        or ``delete``, or the scheduler's ``heartbeat_timeout``."""
        if action.action == USER_MARKS:
            return self.mark(action.state)
        if action.action == SCHEDULER_TIMES_OUT:
            return self.heartbeat_timeout()
        return self.clear() if action.action == USER_CLEARS else self.delete()

    def mark(self, state: str) -> Server:
        """A user marks the TI ``state`` (``set_task_instance_state``)."""
        return self._live(lambda row: replace(row, state=state))

    def clear(self) -> Server:
        """A user clears the TI (``clear_task_instances``).

        A RUNNING try becomes RESTARTING: archived at once before core 3.4.0; since, left live (and a RESTARTING one
        as it is) until it stops (``Release.restarts_a_cleared_try_once_stopped``). Any other TI loses its state, with
        ``max_tries`` the last try that ran plus the task's retries, its try archived first: whatever its state before
        core 3.4.0, since only a try that ran (not one with no state or UP_FOR_RETRY:
        ``Release.numbers_a_try_when_archiving``).
        """
        state = self.row.state
        if state == DELETED:
            return self
        if self.release.restarts_a_cleared_try_once_stopped and state in (RUNNING, RESTARTING):
            return self.mark(RESTARTING)
        if self.release.numbers_a_try_when_archiving and state in (None, UP_FOR_RETRY):
            return self._reset()
        server = self._archived()
        if state == RUNNING:
            return server.mark(RESTARTING)
        return server._reset()

    def delete(self) -> Server:
        """A user deletes the TI: no live row, and its history goes with it (the foreign key cascades),
        so every id it had answers 404, a heartbeat on an archived one too."""
        if self.row.state == DELETED:
            return self
        return replace(self, row=replace(self.row, state=DELETED), history=frozenset())

    def heartbeat_timeout(self) -> Server:
        """The scheduler's task-heartbeat timeout on a RUNNING or RESTARTING TI (``TaskInstance.handle_failure``).

        A RESTARTING try whose clear left it live until it stopped (``Release.restarts_a_cleared_try_once_stopped``)
        has its restart completed (``complete_restart``). Otherwise, eligible to retry (RESTARTING, or the task has
        retries and ``try_number <= max_tries``): UP_FOR_RETRY, a RUNNING try archived first; else FAILED. Any other
        state: untouched.
        """
        row = self.row
        if row.state not in (RUNNING, RESTARTING):
            return self
        if row.state == RESTARTING and self.release.restarts_a_cleared_try_once_stopped:
            return self._restart_completed()
        if not (row.state == RESTARTING or (row.task_retries and row.try_number <= row.max_tries)):
            return self.mark(FAILED)
        server = self._archived() if row.state == RUNNING else self
        return server.mark(UP_FOR_RETRY)

    def requeue(self) -> Server:
        """The scheduler queues a schedulable TI (``DagRun.schedule_tis``): a new try, except after a reschedule; since
        core 3.4.0 the try number archiving allocated (``Release.numbers_a_try_when_archiving``)."""
        row = self.row
        if row.state not in SCHEDULABLE:
            return self
        same = row.state == UP_FOR_RESCHEDULE or self.release.numbers_a_try_when_archiving
        try_number = row.try_number if same else row.try_number + 1
        return self._live(lambda r: replace(r, state=QUEUED, try_number=try_number))

    def _live(self, change) -> Server:
        if self.row.state == DELETED:
            return self
        return replace(self, row=change(self.row))

    def _archived(self) -> Server:
        """``prepare_db_for_next_try``: the try goes to history unless already there; the row takes the next id, and
        since core 3.4.0 the next try number (``Release.numbers_a_try_when_archiving``)."""
        row = self.row
        history = self.history
        if all(try_number != row.try_number for try_number, _ in history):
            history = history | {(row.try_number, row.ti_id)}
        try_number = row.try_number + 1 if self.release.numbers_a_try_when_archiving else row.try_number
        return replace(self, history=history, row=replace(row, ti_id=row.ti_id + 1, try_number=try_number))

    def _reset(self) -> Server:
        """The live row of a cleared TI: no state, ``max_tries`` the last try that ran (the row's own, or the one
        before it where archiving numbers the next try) plus the task's retries."""
        ran = self.row.try_number - 1 if self.release.numbers_a_try_when_archiving else self.row.try_number
        return self._live(lambda row: replace(row, state=None, max_tries=ran + row.task_retries))

    def _restart_completed(self) -> Server:
        """``complete_restart`` of a RESTARTING try that has stopped: archived, its successor reset (``_reset``)."""
        return self._archived()._reset()
