"""The task instance row on the Execution API server, under the server's rules.

Mirrors ``airflow/api_fastapi/execution_api/routes/task_instances.py`` as far as the
terminal-state logic needs it:

- ``PATCH .../run`` moves the row from QUEUED to RUNNING and hands out the run context;
- a state update (succeed, retry, defer, reschedule, await_input, finish) on a row that
  is already in the requested state is a 200 no-op; on a row not RUNNING it is a 409;
  otherwise the row takes the new state;
- once the server has taken the TI away (cleared, deleted, archived: a heartbeat
  answered 404/409/410) every later call on it gets that same status;
- a heartbeat on a row that is not RUNNING is a 409;
- a retry moves to the next try: ``try_number + 1``, should_retry recomputed.

It also carries the faults a scenario injects, so that every target's fake server
answers from this one place: ``Server.call`` is the whole of the server's behaviour.
"""

from __future__ import annotations

import attrs

from model.scenario import (
    AWAITING_INPUT,
    DEFERRED,
    HEARTBEAT_GONE,
    QUEUED,
    RUNNING,
    SUCCESS,
    TIMEOUT,
    UP_FOR_RESCHEDULE,
    UP_FOR_RETRY,
    Fault,
    RunContext,
)

#: The state each dedicated Execution API call asks for (``finish`` names its own).
CALL_STATES = {
    "succeed": SUCCESS,
    "retry": UP_FOR_RETRY,
    "defer": DEFERRED,
    "reschedule": UP_FOR_RESCHEDULE,
    "await_input": AWAITING_INPUT,
}
SERVER_ERROR = 500
CONFLICT = 409
OK = 200


@attrs.frozen
class Row:
    """The TI row: its state, its try, and the status it answers with once taken away."""

    state: str = QUEUED
    try_number: int = 1
    max_tries: int = 0
    gone: int | None = None

    def next_try(self) -> Row:
        """The row the scheduler queues after UP_FOR_RETRY: the same TI, one try later."""
        if self.state != UP_FOR_RETRY:
            raise ValueError(f"only an up_for_retry row is queued for another try, not {self.state}")
        return attrs.evolve(self, state=QUEUED, try_number=self.try_number + 1)


@attrs.frozen
class Server:
    """The row plus the faults armed on the supervisor's calls; every method is pure."""

    row: Row = Row()
    faults: tuple[Fault, ...] = ()

    @classmethod
    def queued(cls, context: RunContext) -> Server:
        return cls(Row(QUEUED, context.try_number, context.max_tries))

    def arm(self, fault: Fault) -> Server:
        return attrs.evolve(self, faults=(*self.faults, fault))

    def start(self) -> tuple[Server, int]:
        """``PATCH /run``: QUEUED → RUNNING."""
        if self.row.state != QUEUED:
            return self, CONFLICT
        return attrs.evolve(self, row=attrs.evolve(self.row, state=RUNNING)), OK

    def call(self, name: str, state: str | None = None) -> tuple[Server, int | str]:
        """A state-changing or side call by the supervisor; returns the new server and the status.

        ``name`` is the client method (``succeed``, ``retry``, ``finish``, ...); ``state`` is
        the state ``finish`` asks for. Armed faults apply first, in the order armed.
        """
        fault = next((f for f in self.faults if f.call == name), None)
        if fault is None:
            return self._apply(name, state)
        if fault.kind == "permanent":
            return self, SERVER_ERROR
        disarmed = attrs.evolve(self, faults=tuple(f for f in self.faults if f is not fault))
        if fault.kind == "transient":
            return disarmed, SERVER_ERROR
        applied, _ = disarmed._apply(name, state)  # "lost": done on the server, answer never arrives
        return applied, TIMEOUT

    def heartbeat(self, answer: int) -> tuple[Server, int]:
        """``PUT /heartbeat``; ``answer`` is what the server says of a still-RUNNING TI."""
        if self.row.gone:
            return self, self.row.gone
        if self.row.state != RUNNING:
            return self, CONFLICT
        if answer in HEARTBEAT_GONE:
            return attrs.evolve(self, row=attrs.evolve(self.row, gone=answer)), answer
        return self, answer

    def _apply(self, name: str, state: str | None) -> tuple[Server, int]:
        if self.row.gone:
            return self, self.row.gone
        target = state if name == "finish" else CALL_STATES.get(name)
        if target is None:  # skip_downstream_tasks touches other rows only
            return self, OK
        if self.row.state == target:
            return self, OK
        if self.row.state != RUNNING:
            return self, CONFLICT
        return attrs.evolve(self, row=attrs.evolve(self.row, state=target)), OK
