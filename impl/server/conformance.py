"""``model.server`` against the real Execution API app: one alphabet of steps, played on both, compared step by step.

A *case* is a TI row as the scheduler queued it (``Opening``: try_number, max_tries, the task's
retries) and a sequence of steps drawn from ``ALPHABET``: the worker's requests (start,
heartbeat, the state updates, skip-downstream), each on the TI id the worker holds, and the
actors that move the row under it (a user marks, clears or deletes the TI; the scheduler's
heartbeat timeout fails it, or it queues the next try). A ``Start`` is made either by a fresh
worker, handed the live row's id, or by the same worker again on the id it holds.

``play_model`` runs a case on ``model.server.Server``; ``play_real`` on an ``AirflowServer``
through Airflow's own ``Client`` with one attempt per request, so every HTTP status is seen as
the app answered it. Both give one ``Seen`` per step: the status (None for an actor), the row
afterwards, whether the worker's id still names the live row, and the run context a
successful start handed out. ``first_difference`` is the readable trace of where they part.
"""

from __future__ import annotations

import datetime as dt

import attrs
from hypothesis import strategies as st

from impl.releases.adapters import supervisor_state
from model.release import SPECIFIED, Release
from model.scenario import FAILED, REMOVED, SERVER_TERMINATED, SKIPPED, SUCCESS, RunContext
from model.server import DELETED, Server


# -- the alphabet --------------------------------------------------------------------------------


@attrs.frozen
class Opening:
    """The row as the scheduler queued it: its counts and the task's ``retries``."""

    try_number: int = 1
    max_tries: int = 0
    retries: int = 0

    def __str__(self) -> str:
        return f"queued try_number={self.try_number} max_tries={self.max_tries} retries={self.retries}"


@attrs.frozen
class Start:
    """``PATCH .../run`` by worker ``pid``; ``fresh``: a new worker handed the live row's id, else the held id again."""

    pid: int = 1
    fresh: bool = True

    def __str__(self) -> str:
        return f"start pid={self.pid}" + ("" if self.fresh else " (held id)")


@attrs.frozen
class Heartbeat:
    """``PUT .../heartbeat`` by worker ``pid`` on the held id."""

    pid: int = 1

    def __str__(self) -> str:
        return f"heartbeat pid={self.pid}"


@attrs.frozen
class Call:
    """A state update (or skip-downstream) on the held id, named as ``Server.call`` names it; ``pid``, the worker's,
    matters only to a stop report (``finish(SERVER_TERMINATED)``, which carries it)."""

    name: str
    state: str | None = None
    pid: int = 1

    def __str__(self) -> str:
        text = f"{self.name}({self.state})" if self.state else self.name
        return text + (f" pid={self.pid}" if self.state == SERVER_TERMINATED else "")


@attrs.frozen
class Act:
    """A server-side actor on the live row: ``mark`` (with ``state``), ``clear``, ``delete``,
    ``heartbeat_timeout``, ``requeue``."""

    actor: str
    state: str | None = None

    def __str__(self) -> str:
        return f"[{self.actor}" + (f" {self.state}" if self.state else "") + "]"


Step = Start | Heartbeat | Call | Act

#: The frame behind each state update the supervisor sends from a runtime's frame alone (``_send_terminal_state_msg``).
_FRAMES = {"defer": "DeferTask", "reschedule": "RescheduleTask", "await_input": "AwaitInputTask",
           "skip_downstream_tasks": "SkipDownstreamTasks"}

#: Every step, simplest first (the shrinker moves towards the front). Two workers: pid 1 and pid 2.
ALPHABET: tuple[Step, ...] = (
    Start(1), Call("succeed"), Heartbeat(1), Call("retry"), Call("finish", FAILED),
    Call("defer"), Call("reschedule"), Call("await_input"), Call("finish", SKIPPED), Call("finish", REMOVED),
    Call("skip_downstream_tasks"), Start(1, fresh=False), Start(2), Start(2, fresh=False), Heartbeat(2),
    Act("mark", FAILED), Act("mark", SUCCESS), Act("clear"), Act("delete"), Act("heartbeat_timeout"), Act("requeue"),
    Call("finish", SERVER_TERMINATED, 1), Call("finish", SERVER_TERMINATED, 2),
)


@attrs.frozen
class Case:
    """One row's life: how it was queued, then the steps in order."""

    opening: Opening
    steps: tuple[Step, ...]


openings = st.builds(Opening, st.integers(1, 3), st.integers(0, 3), st.integers(0, 3))


def alphabet_of(release: Release = SPECIFIED) -> tuple[Step, ...]:
    """``ALPHABET`` as ``release`` has it: a state update whose frame the release does not know is no request its
    client can make (``await_input`` came with ``AwaitInputTask`` in 1.3.0; core 3.2 has no route for it either),
    nor is a stop report before the server takes one (``Release.takes_stop_reports``: 1.4.0)."""
    def known(step: Step) -> bool:
        if not isinstance(step, Call):
            return True
        if step.state == SERVER_TERMINATED:
            return release.takes_stop_reports
        return step.name not in _FRAMES or _FRAMES[step.name] in release.terminal_frames

    return tuple(filter(known, ALPHABET))


@st.composite
def cases(draw, release: Release = SPECIFIED) -> Case:
    """An opening and up to 12 steps of ``release``'s alphabet, half of the time after a first start (most requests
    matter on a RUNNING row); shrinks towards no start, fewer and simpler steps."""
    opening = draw(openings)
    started = draw(st.booleans())
    steps = draw(st.lists(st.sampled_from(alphabet_of(release)), max_size=12))
    return Case(opening, ((Start(1),) if started else ()) + tuple(steps))


# -- what a side says ----------------------------------------------------------------------------


@attrs.frozen
class Seen:
    """One step's outcome: HTTP status (None: an actor), the row (None: deleted) as (state, try_number, max_tries),
    whether the held id is the live row's, and the (should_retry, max_tries) a 2xx start handed out."""

    status: int | None
    row: tuple[str | None, int, int] | None
    held_is_live: bool
    context: tuple[bool, int] | None = None

    def __str__(self) -> str:
        status = "-" if self.status is None else str(self.status)
        if self.row is None:
            row = "deleted"
        else:
            state, try_number, max_tries = self.row
            row = f"{state or 'no state'} try_number={try_number} max_tries={max_tries}"
        held = "" if self.held_is_live else ", held id not live"
        context = "" if self.context is None else f", should_retry={str(self.context[0]).lower()}"
        return f"{status}; row {row}{held}{context}"


def _model_seen(server: Server, status: int | None, started: bool) -> Seen:
    row = None if server.row.state == DELETED else (server.row.state, server.row.try_number, server.row.max_tries)
    context = (server.context.should_retry, server.context.max_tries) if started else None
    return Seen(status, row, server.held_is_live, context)


def play_model(case: Case, release: Release = SPECIFIED) -> tuple[Seen, ...]:
    """The case on ``model.server``, as ``release``'s server answers."""
    o = case.opening
    server = Server.queued(RunContext(o.try_number, o.max_tries), retries=o.retries, release=release)
    seen = []
    for step in case.steps:
        status = None
        if isinstance(step, Start):
            server = server.fresh_worker() if step.fresh else server
            server, status = server.start(step.pid)
        elif isinstance(step, Heartbeat):
            server, status = server.heartbeat_from(step.pid)
        elif isinstance(step, Call):
            server, status = server.call(step.name, step.state, step.pid)
        elif step.actor == "mark":
            server = server.mark(step.state)
        else:
            server = getattr(server, step.actor)()
        seen.append(_model_seen(server, status, isinstance(step, Start) and status == 200))
    return tuple(seen)


# -- the real app --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _message(frame: str):
    """The runtime's frame ``frame`` as the supervisor holds it: our body, parsed by the supervisor's own decoder."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    from impl.wire import codec

    return ActivitySubprocess.decoder.validate_python(codec.terminal_body(frame))




def _request(client, step: Step, ti_id):
    """One request of ``step`` on ``ti_id`` through Airflow's client, as the supervisor makes it; ``start``
    returns the run context the server handed out."""
    tis = client.task_instances
    if isinstance(step, Start):
        return tis.start(ti_id, step.pid, _now())
    if isinstance(step, Heartbeat):
        tis.heartbeat(ti_id, step.pid)
    elif step.name == "succeed":
        tis.succeed(ti_id, _now(), [], [], None)
    elif step.name == "retry":
        tis.retry(ti_id, _now(), None)
    elif step.name == "finish" and step.state == SERVER_TERMINATED:
        tis.finish(ti_id, supervisor_state(step.state), _now(), None, pid=step.pid)
    elif step.name == "finish":
        tis.finish(ti_id, step.state, _now(), None)
    else:
        getattr(tis, step.name)(ti_id, _message(_FRAMES[step.name]))


def play_real(server, case: Case) -> tuple[Seen, ...]:
    """The case on ``server`` (a started ``impl.server.airflow_api.AirflowServer``), on a run of its own.

    The live TI is read once per step, after it (``AirflowServer.live``): nothing but the step moves the row, so
    that read is also what the next step starts from (whether there is a row to act on, the id a fresh worker
    is handed)."""
    from airflow.sdk.api.client import ServerResponseError
    from airflow.sdk.exceptions import TaskAlreadyRunningError

    o = case.opening
    attempt = server.open_attempt(o.try_number, o.max_tries, retries=o.retries, start=False)
    run_id, held, live_id = attempt.run_id, attempt.ti_id, attempt.ti_id
    client = server.client(attempts=1)
    seen = []
    try:
        for step in case.steps:
            status = context = None
            if isinstance(step, Act):
                if live_id is not None:  # nothing to act on once deleted
                    if step.actor == "mark":
                        server.mark(run_id, step.state)
                    else:
                        getattr(server, step.actor)(run_id)
            else:
                if isinstance(step, Start) and step.fresh:
                    held = live_id or held
                try:
                    handed = _request(client, step, held)
                except (ServerResponseError, TaskAlreadyRunningError):
                    handed = None
                status = client.exchanges[-1].status
                if isinstance(step, Start) and handed is not None:
                    context = (handed.should_retry, handed.max_tries)
            live = server.live(run_id)
            live_id = None if live is None else live.id
            row = None if live is None else (live.row.state, live.row.try_number, live.row.max_tries)
            seen.append(Seen(status, row, live_id == held, context))
    finally:
        server.release(client)
    return tuple(seen)


# -- the comparison ------------------------------------------------------------------------------


def first_difference(case: Case, model: tuple[Seen, ...], real: tuple[Seen, ...]) -> str | None:
    """None if the two agree at every step; else the case up to the first step where they part, both sides shown."""
    for i, (m, r) in enumerate(zip(model, real)):
        if m != r:
            lines = [str(case.opening)]
            for j, step in enumerate(case.steps[: i + 1], 1):
                lines.append(f"{j}. {step}: real {real[j - 1]}")
            lines.append(f"   model says: {m}")
            return "\n".join(["model.server and the real Execution API differ at step "
                              f"{i + 1} ({case.steps[i]}):", *lines])
    return None
