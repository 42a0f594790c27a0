"""Target ``airflow-inproc``: a scenario replayed onto the real ``ActivitySubprocess``, in process.

Nothing of the supervisor is re-implemented here. The real ``wait()`` runs the real
``_monitor_subprocess`` loop; only the edges of the process are stood in for:

- the selector: each ``select()`` is one wake-up of the loop, and delivers the scenario's
  next event (a frame, encoded on the wire and decoded by Airflow's own frame decoder,
  into the real ``handle_requests`` generator; or a due heartbeat; or the overtime clock
  running out; or the process exit);
- the process: dies of the first signal the supervisor sends it, else exits as the scenario says;
  once it ignores SIGTERM (``ignore sigterm``), a SIGTERM leaves it alive and silent, and only the
  escalation to SIGKILL ends it (else its own exit, ``IGNORED_SIGTERM_GRACE`` later); once it handles
  SIGTERM (``handle sigterm``), a SIGTERM leaves it running: the kill's first wait for it
  (``_service_subprocess``, one ``select()``) is handed the rest of its events at once (inside ``kill()``
  the supervisor does nothing but handle them), then it exits as the scenario says, or hangs until the
  escalation's SIGKILL. The supervisor's escalation delay is made tiny (``ESCALATION_DELAY``): it changes
  when the SIGKILL comes, not whether. A process that never exits (``exit hang``) meets time running on
  (``model.supervisor.TIME_RUNS_ON``: a heartbeat falls due, the overtime runs out), and if nothing kills
  it the selector stops ``wait()`` (``AttemptHung``): the observation is ``hung``;
- the Execution API client: ``impl.server.model_client`` answers from ``model.server.Server``
  (the server's rules and the scenario's faults), tried as Airflow's client tries, raising what
  Airflow's client raises, and records every try;
- the child's socket: what the supervisor writes is decoded to learn what the runtime was told.

The wire is the installed release's (``since_1_0_3_length_prefixed_frames``): each frame is encoded as its runtime
writes it (a length-prefixed msgpack frame, or before 1.0.3 a JSON line) and handed to ``handle_requests`` as the
release's reader hands it; what the runtime is told is recorded per request (``RequestsWire.replies``; before 1.0.3 a
frame handled with nothing to send back is ``unanswered``). A supervisor of a release before 1.0.3 is constructed as
one whose process has no sockets (``RequestsWire.supervisor_without_sockets``), as the stand-in selector registers none.

The server. ``target(name, server=None)`` chooses what answers the supervisor: ``server`` or,
when None, the environment variable ``FINALSTATE_SERVER`` (``registry.SERVER_ENV``, which
``finalstate replay --server`` and ``pytest --server`` set), default ``model``:

- ``model``: the recording client above; the default, and unchanged;
- ``airflow``: Airflow's real ``Client`` (the scenario's tries, zero waits) to the real Execution
  API app in process on SQLite (``impl.server.airflow_api``); each scenario is its own DagRun
  and TaskInstance, the supervisor's ``start`` is the real ``ti_run``, the TI id is that row's,
  and faults and heartbeat answers happen in the transport and the world
  (``impl.server.airflow_attempt``). The run function keeps the last attempt's record
  (exchanges, row before and after) as ``run.last``. A scenario it cannot play raises
  ``airflow_attempt.Unsupported`` (a ``NotImplementedError``) naming what.

The target's name is ``airflow-inproc`` either way.

A whole scope (``impl.search.exhaustive``, on the model server) is lived by ``SharedPrefixes``
(``Target.scope_run``): the scenarios come prefix by prefix, and each attempt goes on from a copy of
the real supervisor paused at the monitor loop's wake-up after its events, instead of living them
again from the start; every event of every scenario is still lived by the real supervisor.

While a ``wait()`` runs here, the signal handlers it installs (it forwards SIGTERM and SIGINT to its task's pid) go
to a stand-in of the ``signal`` module (``SignalsKeptInProcess``), not to this process.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import operator
import signal
import sys
import time
import uuid
from collections import deque
from typing import Callable

import attrs
import structlog
from airflow.sdk.execution_time import supervisor as airflow_supervisor
from airflow.sdk.execution_time.supervisor import ActivitySubprocess

from impl.releases.adapters import (decided_final_state, model_release, model_state, request_body,
                                    require_the_models_heartbeat_budget, since_1_0_3_length_prefixed_frames,
                                    since_1_0_4_overtime_threshold, since_1_1_2_should_retry,
                                    since_1_2_0_child_started_arguments, since_1_3_0_process_tracker,
                                    since_1_4_0_heartbeat_due, supervisor_state)
from impl.server.model_client import RecordingClient, error_name
from impl.wire import codec
from model.frozen import replace
from model.scenario import (HANG, Fault, HandleSigterm, Heartbeat, IgnoreSigterm, Observation, Overtime, Scenario, Send,
                            UserAction)
from model.supervisor import SIGTERM_DIES, SIGTERM_HANDLED, SIGTERM_IGNORED, TIME_RUNS_ON

# The supervisor logs every frame and every refused call; in a checker running thousands of
# scenarios that is noise and time. Its loggers are structlog proxies, so this reaches them.
structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
    logger_factory=structlog.ReturnLoggerFactory(),
)
_QUIET = structlog.get_logger("finalstate")
_TRACKING = since_1_3_0_process_tracker()
#: How the installed supervisor and its runtime talk: frames since 1.0.3, JSON lines before.
_WIRE = since_1_0_3_length_prefixed_frames()
TI_ID = uuid.UUID(int=1)
#: The supervisor's wait before it escalates a kill's signal (Airflow's: 5 s), in process: the scripted process
#: dies at once of any signal it does not ignore.
ESCALATION_DELAY = 1e-4
#: How long a process that ignored SIGTERM lives on before its own exit, when no SIGKILL comes: far beyond
#: ``ESCALATION_DELAY``, so only a supervisor that never escalates lets it run out.
IGNORED_SIGTERM_GRACE = 1.0

require_the_models_heartbeat_budget(airflow_supervisor.MAX_FAILED_HEARTBEATS)


class AttemptHung(Exception):
    """A process that never exits, which nothing killed once time had run on: ``wait()`` would wait for ever."""


class ScriptedProcess(_TRACKING.base):
    """The task process: alive until the scenario's exit, or until the supervisor signals it.

    What SIGTERM does to it is ``sigterm`` (``model.supervisor``'s dispositions). Ignored, a SIGTERM leaves it alive
    (``sigterm_ignored_at``); it then does nothing more and ends, if no SIGKILL comes, with its own exit
    ``IGNORED_SIGTERM_GRACE`` seconds later (``exit_when_ignored``; a hanging process never). Handled, a SIGTERM
    leaves it running (``handling_sigterm``): the selector plays the rest of its life inside the kill.
    """

    ProcessNotFound = _TRACKING.not_found
    TimeoutExpired = _TRACKING.timeout_expired

    def __init__(self, exit_when_ignored: int | str = 0):
        self.exit_code: int | None = None
        self.sigterm = SIGTERM_DIES
        self.sigterm_ignored_at: float | None = None
        self.handling_sigterm = False
        self.exit_when_ignored = exit_when_ignored

    @property
    def pid(self) -> int:
        return 4242

    def send_signal(self, s: signal.Signals) -> None:
        if self.exit_code is not None:
            return
        if s == signal.SIGTERM and self.sigterm == SIGTERM_IGNORED:
            self.sigterm_ignored_at = self.sigterm_ignored_at or time.monotonic()
            return
        if s == signal.SIGTERM and self.sigterm == SIGTERM_HANDLED:
            self.handling_sigterm = True
            return
        self.exit_code = -int(s)

    def silenced(self) -> bool:
        """Alive after ignoring a SIGTERM: nothing more arrives from it (until its own exit, after the grace)."""
        self._exit_once_the_grace_is_over()
        return self.exit_code is None and self.sigterm_ignored_at is not None

    def _exit_once_the_grace_is_over(self) -> None:
        if (self.exit_code is None and self.sigterm_ignored_at is not None and self.exit_when_ignored != HANG
                and time.monotonic() - self.sigterm_ignored_at > IGNORED_SIGTERM_GRACE):
            self.exit_code = self.exit_when_ignored

    def wait(self, timeout: float | None) -> int:
        self._exit_once_the_grace_is_over()
        if self.exit_code is None:
            raise _timed_out(timeout)
        return self.exit_code


@functools.lru_cache(maxsize=None)
def _timed_out_once(timeout: float | None) -> Exception:
    return _TRACKING.timed_out(timeout)


def _timed_out(timeout: float | None) -> Exception:
    """What a ``wait(timeout)`` that runs out raises, made once per timeout: the supervisor polls a live process at every
    wake-up, catches it at once and keeps nothing of it (its traceback is cleared, or every raise would lengthen it)."""
    raised = _timed_out_once(timeout)
    raised.__traceback__ = None
    return raised


class ChildEnd:
    """The child's end of the comms socket: records what the runtime is told for each frame (``RequestsWire.replies``;
    the first write, StartupDetails, is no reply to anything)."""

    def __init__(self):
        self.recorded = _WIRE.replies()

    @property
    def replies(self) -> list[str]:
        return self.recorded.replies

    def sendall(self, data: bytes) -> None:
        self.recorded.sent(data)

    def close(self) -> None:
        pass


#: The supervisor's last heartbeat attempt and its task's end as the selector keeps them between the events that run
#: those clocks out: no heartbeat and no overtime falls due unless an event says so, however long a stalled wake-up
#: takes on a loaded machine (``time.monotonic() - NEVER_DUE`` is never past ``MIN_HEARTBEAT_INTERVAL`` or
#: ``TASK_OVERTIME_THRESHOLD``).
NEVER_DUE = float("inf")


class ScriptedSelector:
    """The monitor loop's selector: each ``select()`` is a wake-up that delivers the next event.

    ``world`` takes the scenario's faults (``arm``) and heartbeat answers (``heartbeat_due``, only
    when a heartbeat will be sent: none is once the supervisor holds a terminal state).
    """

    def __init__(self, scenario: Scenario, process: ScriptedProcess, world):
        self.events = deque(scenario.events)
        self.exit_code = scenario.exit_code
        #: At the wake-up after the last event: pause the attempt there (``Paused``) instead of the process's exit.
        self.pausing = False
        self.rendered_map_index = scenario.rendered_map_index
        self.process = process
        self.world = world
        self.next_id = 1
        #: The answer of the heartbeat that fell due and was not sent yet: the world is told it only once the
        #: supervisor will send it (a 1.4.0 supervisor holding a delivered outcome sends none until another is held).
        self.overdue = None
        #: Whether an overtime event ran out the supervisor's overtime (from then on it stays run out).
        self.overtime_ran_out = False
        #: Whether a process that never exits has met time running on (``TIME_RUNS_ON``) already.
        self.time_ran_on = False

    def attach(self, supervisor: ActivitySubprocess) -> None:
        """Serve ``supervisor``: its frames go into its own ``handle_requests`` generator, started here."""
        self.supervisor = supervisor
        self.requests = supervisor.handle_requests(_QUIET)
        next(self.requests)

    def select(self, timeout=None):
        sup = self.supervisor
        self._hold_clocks()
        if self.process.exit_code is not None or self.process.silenced():
            return []  # dead, or silent after ignoring SIGTERM: nothing more arrives
        if self.process.handling_sigterm:
            return self._live_on_inside_the_kill()
        now = time.monotonic()
        if not self.events:
            if self.pausing:  # before anything of this wake-up happens: resumed, it happens as it would have
                raise Paused(resumable=sys._getframe(2).f_code.co_name == "_monitor_subprocess")
            return self._end()
        event = self.events.popleft()
        if isinstance(event, Send):
            self._deliver(event)
        elif isinstance(event, Fault):
            self.world.arm(event)
        elif isinstance(event, UserAction):
            self.world.act(event)
        elif isinstance(event, Heartbeat):
            self.overdue = event.answer
            sup._last_heartbeat_attempt = now - airflow_supervisor.MIN_HEARTBEAT_INTERVAL - 1
        elif isinstance(event, Overtime) and sup._task_end_time_monotonic is not None:
            self.overtime_ran_out = True
            sup._task_end_time_monotonic = now - since_1_0_4_overtime_threshold(sup) - 1
        elif isinstance(event, IgnoreSigterm):
            self.process.sigterm = SIGTERM_IGNORED
        elif isinstance(event, HandleSigterm):
            self.process.sigterm = SIGTERM_HANDLED
        if self.overdue is not None and since_1_4_0_heartbeat_due(sup):  # this wake-up sends the heartbeat due
            self.world.heartbeat_due(self.overdue)
            self.overdue = None
        elif not isinstance(event, Heartbeat):
            self._hold_clocks()  # a frame just handled may have stamped the task's end
        return []

    def _end(self) -> list:
        """The events are over: the process exits as the scenario says; one that never exits meets time running on
        once, then, if nothing killed it, ``wait()`` is stopped (``AttemptHung``)."""
        if self.exit_code != HANG:
            self.process.exit_code = self.exit_code
        elif self.time_ran_on:
            raise AttemptHung()
        else:
            self.time_ran_on = True
            self.events.extend(TIME_RUNS_ON)
        return []

    def _live_on_inside_the_kill(self) -> list:
        """The process handled the kill's SIGTERM and carries on: in this one wait of ``kill()`` it lives the rest of
        its events (the supervisor handles its frames, the world goes on; heartbeats and the overtime are not the
        kill's business), then exits as the scenario says, or hangs until the escalation's SIGKILL. A prefix paused
        here is not resumable (``Paused``: not the monitor loop's wait): a scenario that goes on from it is lived from
        its start."""
        if self.pausing:
            raise Paused(resumable=False)
        while self.events:
            event = self.events.popleft()
            if isinstance(event, Send):
                self._deliver(event)
            elif isinstance(event, Fault):
                self.world.arm(event)
            elif isinstance(event, UserAction):
                self.world.act(event)
        if self.exit_code != HANG:
            self.process.exit_code = self.exit_code
        return []

    def _hold_clocks(self) -> None:
        """Put the supervisor's own stamps (after a heartbeat it sent, at the terminal state it took) out of reach
        of the wall clock, unless an event ran that clock out: only the events make a heartbeat or overtime due.
        (A stamp already held is left alone: the supervisor's fields are set through attrs' hooks, which cost.)"""
        sup = self.supervisor
        if self.overdue is None and sup._last_heartbeat_attempt != NEVER_DUE:
            sup._last_heartbeat_attempt = NEVER_DUE
        ended = sup._task_end_time_monotonic
        if ended is not None and ended != NEVER_DUE and not self.overtime_ran_out:
            sup._task_end_time_monotonic = NEVER_DUE

    def _deliver(self, event: Send) -> None:
        """Put one frame on the wire and hand it to the supervisor as its frame reader would."""
        data = _request(self.next_id, event.frame, event.state, self.rendered_map_index)
        self.next_id += 1
        self.requests.send(_WIRE.handed_to_handle_requests(data))

    def register(self, *args, **kwargs):
        raise AssertionError("the in-process target registers no file objects")

    def unregister(self, fileobj):
        raise KeyError(fileobj)

    def get_key(self, fileobj):
        raise KeyError(fileobj)

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=1024)
def _request(request_id: int, frame: str, state: str | None, rendered_map_index: str | None) -> bytes:
    """One frame of the runtime's as it writes it on the wire: the same bytes for the same request (its ``end_date`` is
    fixed), so written once."""
    return _WIRE.request(request_id, request_body(frame, state, rendered_map_index))


class QuickEscalation(ActivitySubprocess):
    """The real ``ActivitySubprocess``, its kill escalating after ``ESCALATION_DELAY`` instead of Airflow's 5 s; the
    child end is told of each request it decoded before handling it (what is written back next answers that one)."""

    def kill(self, signal_to_send=signal.SIGINT, escalation_delay=None, force=False):
        return super().kill(signal_to_send, ESCALATION_DELAY, force)

    def _handle_request(self, msg, log, *request_id):
        recorded = self.stdin.recorded
        recorded.handling(own=True, request_id=request_id[0] if request_id else None)
        result = super()._handle_request(msg, log, *request_id)
        recorded.handled()
        return result


def _supervisor(scenario: Scenario, client, world=None, ti_id: uuid.UUID = TI_ID
                ) -> tuple[ActivitySubprocess, ChildEnd]:
    """A real ``ActivitySubprocess`` wired to the scripted process, selector and child socket.

    ``world``: what takes the scenario's faults and heartbeat answers (default: the recording client's).
    """
    process, child = ScriptedProcess(scenario.exit_code), ChildEnd()
    selector = ScriptedSelector(scenario, process, world or client.task_instances)
    sup = QuickEscalation(id=ti_id, pid=process.pid, process=process, stdin=child, process_log=_QUIET,
                          client=client, selector=selector, **_WIRE.supervisor_without_sockets)
    selector.attach(sup)
    sup._last_heartbeat_attempt = NEVER_DUE
    return sup, child


class SignalsKeptInProcess:
    """The ``signal`` module as the supervisor sees it while its ``wait()`` runs here: the handlers it installs and
    restores (``wait()`` forwards SIGTERM and SIGINT to its task's pid) are kept in ``handlers``, not given to this
    process. This process is the checker, not the supervisor's, and the task is the scripted process: its pid is no
    process of ours, and a real forward would signal whatever process has that pid. Every other name is the real
    module's."""

    def __init__(self):
        vars(self).update((name, value) for name, value in vars(signal).items()
                          if not name.startswith("__") and name not in ("signal", "getsignal"))
        self.handlers: dict[int, object] = {}

    def getsignal(self, signum: int):
        return self.handlers.get(signum, signal.SIG_DFL)

    def signal(self, signum: int, handler):
        previous = self.getsignal(signum)
        self.handlers[signum] = handler
        return previous


_SIGNALS = SignalsKeptInProcess()


def _wait(sup: ActivitySubprocess) -> int:
    """The real ``sup.wait()``, the handlers it installs kept in process (``SignalsKeptInProcess``)."""
    airflow_supervisor.signal = _SIGNALS
    try:
        return sup.wait()
    finally:
        airflow_supervisor.signal = signal


def _start(sup: ActivitySubprocess, ti) -> None:
    """``_on_child_started``: the start call, and the StartupDetails sent to the process."""
    sup._on_child_started(ti=ti, dag_rel_path="dag.py", bundle_info=None, **since_1_2_0_child_started_arguments())


def _live(sup: ActivitySubprocess, ti) -> tuple[str | None, bool]:
    """Start the attempt and run the real ``wait()``; what it raised, by name (part of what it did), and whether the
    attempt hung (``AttemptHung``: stopped by the selector, not by anything of the supervisor's)."""
    _start(sup, ti)
    try:
        _wait(sup)
    except AttemptHung:
        return None, True
    except Exception as e:
        return error_name(e), False
    return None, False


def run(scenario: Scenario) -> Observation:
    """Replay ``scenario`` onto a real ``ActivitySubprocess`` and observe it (server: ``model.server``)."""
    client = RecordingClient(scenario)
    sup, child = _supervisor(scenario, client)
    raised, hung = _live(sup, _task_instance(scenario.context.try_number))
    try:
        return _observed(sup, child, client, raised, hung)
    finally:
        sup.selector.supervisor = sup.selector.requests = None  # the cycles (``Attempt.release``)


def _observed(sup: ActivitySubprocess, child: ChildEnd, client: RecordingClient, raised: str | None,
              hung: bool) -> Observation:
    """What an attempt on the server model did, once its ``wait()`` is over."""
    row = client.task_instances.server.row
    return Observation(
        exit_code=sup._exit_code,
        final_state=decided_final_state(sup),
        calls=tuple(client.task_instances.calls),
        replies=tuple(child.replies),
        row=row.state,
        row_gone=row.gone,
        raised=raised,
        rendered_map_index=client.task_instances.map_index_sent,
        hung=hung,
    )


# -- a whole scope, its attempts sharing their common prefixes -----------------------------------------------------


class Paused(Exception):
    """The selector's wake-up after a prefix's last event, raised out of ``wait()`` before anything of that wake-up
    happened; ``resumable``: it came from the monitor loop's own wait for events (``_monitor_subprocess``), whose
    every iteration starts afresh from the supervisor's fields, so that ``wait()`` called again goes on from there."""

    def __init__(self, resumable: bool):
        super().__init__("paused after the prefix's last event")
        self.resumable = resumable


#: The supervisor's clocks (``time.monotonic()`` stamps) that a paused attempt holds, each where the release has it.
_CLOCKS = ("start_time", "_last_successful_heartbeat", "_last_heartbeat_attempt", "_task_end_time_monotonic",
           "_process_exit_monotonic")


@attrs.define
class Attempt:
    """One real ``ActivitySubprocess`` with the stand-ins around it: started (``_on_child_started``) or paused after
    some of its events (``paused_at``: when, by the monotonic clock), and then ``resumable`` (``Paused.resumable``);
    or over (``raised``: what its ``wait()`` raised; ``hung``: the selector stopped it, ``AttemptHung``)."""

    sup: ActivitySubprocess
    child: ChildEnd
    client: RecordingClient
    process: ScriptedProcess
    selector: ScriptedSelector
    paused_at: float | None = None
    resumable: bool = True
    raised: str | None = None
    hung: bool = False

    @classmethod
    def started(cls, scenario: Scenario) -> Attempt:
        """The attempt of ``scenario``'s run context, client tries and map index, started and not yet waited on."""
        client = RecordingClient(scenario)
        sup, child = _supervisor(scenario, client)
        _start(sup, _task_instance(scenario.context.try_number))
        return cls(sup, child, client, sup._process, sup.selector, paused_at=time.monotonic())

    def resumed(self, events: tuple, exit_code: int, pausing: bool) -> Attempt:
        """A copy of this paused attempt (this one stays as it is), its clocks moved on by the time it was paused, that
        lives ``events`` and then pauses again (``pausing``) or exits with ``exit_code``; its ``wait()`` is over."""
        twin = self._copy(time.monotonic() - self.paused_at)
        twin.selector.events = deque(events)
        twin.selector.exit_code = twin.process.exit_when_ignored = exit_code
        twin.selector.pausing = pausing
        try:
            _wait(twin.sup)
        except Paused as paused:
            twin.paused_at, twin.resumable = time.monotonic(), paused.resumable
        except AttemptHung:
            twin.hung, twin.resumable = True, False
        except Exception as e:
            twin.raised, twin.resumable = error_name(e), False
        else:
            twin.resumable = False
        return twin

    def _copy(self, stopped: float) -> Attempt:
        process, client, child = _twin(self.process), self.client.copy(), _twin(self.child)
        child.recorded = self.child.recorded.copy()
        selector = _twin(self.selector)
        selector.process, selector.world = process, client.task_instances
        sup = _copied_supervisor(self.sup, stopped, _process=process, stdin=child, client=client, selector=selector)
        selector.attach(sup)
        return Attempt(sup, child, client, process, selector)

    def observed(self) -> Observation:
        return _observed(self.sup, self.child, self.client, self.raised, self.hung)

    def release(self) -> None:
        """Let go of the supervisor: the selector's and its request generator's hold on it are the cycles that would
        otherwise leave every attempt to the garbage collector."""
        self.selector.supervisor = self.selector.requests = None
        _still_without_sockets(self.sup)


def _twin(value):
    """A shallow copy of one of this binding's stand-ins (a plain instance: its ``__dict__``)."""
    twin = object.__new__(type(value))
    twin.__dict__.update(value.__dict__)
    return twin


@attrs.frozen
class _Layout:
    """Where an instance of a class (an attrs class with slots, and its subclasses) keeps its fields: each slot's
    place by its name, what reads them all at once in that order (``read``), what sets each one as attrs' ``__init__``
    sets it, without the class's ``on_setattr`` hooks (``setters``), and the places of the clocks (``_CLOCKS``) among
    them (``clocks``)."""

    place: dict[str, int]
    read: Callable[[object], tuple]
    setters: tuple[Callable[[object, object], None], ...]
    clocks: tuple[int, ...]

    @classmethod
    @functools.lru_cache(maxsize=None)
    def of(cls, klass: type) -> _Layout:
        slots = {name: vars(k)[name] for k in reversed(klass.__mro__) for name in vars(k).get("__slots__", ())
                 if name not in ("__weakref__", "__dict__")}
        names = tuple(slots)
        place = {name: n for n, name in enumerate(names)}
        clocks = [name for name in _CLOCKS if hasattr(klass, name)]
        if not set(clocks) <= set(names):
            raise TypeError(f"{klass.__name__} keeps a clock outside its slots: {sorted(set(clocks) - set(names))}")
        return cls(place, operator.attrgetter(*names), tuple(slots[name].__set__ for name in names),
                   tuple(place[name] for name in clocks))


#: Calls each of its items to the end, keeping nothing (``collections.deque(maxlen=0)``: the loop runs in C).
_exhaust = deque(maxlen=0).extend


def _still_without_sockets(sup: ActivitySubprocess) -> None:
    """The sockets a supervisor of the framed wire keeps (``_open_sockets``) are one empty mapping, shared by an
    attempt and its copies: in process the task has no sockets, and a copy that found one there would not be one."""
    if getattr(sup, "_open_sockets", None):
        raise AssertionError(f"an in-process supervisor registered sockets: {list(sup._open_sockets.values())}")


def _copied_supervisor(sup: ActivitySubprocess, stopped: float, **stand_ins) -> ActivitySubprocess:
    """A shallow copy of the real supervisor: every field as it is (set as attrs sets them in ``__init__``), and
    whatever it keeps besides, but for its clocks, moved on by ``stopped`` seconds, and ``stand_ins`` (its fields of
    that name)."""
    layout = _Layout.of(type(sup))
    fields = list(layout.read(sup))
    for place in layout.clocks:
        stamp = fields[place]
        if type(stamp) is float and math.isfinite(stamp):  # a stamp the clock made (not a default, not held)
            fields[place] = stamp + stopped
    for name, value in stand_ins.items():
        fields[layout.place[name]] = value
    twin = object.__new__(type(sup))
    _exhaust(map(operator.call, layout.setters, itertools.repeat(twin), fields))
    if getattr(sup, "__dict__", None):
        twin.__dict__.update(sup.__dict__)
    return twin


class SharedPrefixes:
    """``run`` for a whole scope whose scenarios come prefix by prefix (``impl.search.exhaustive``: breadth first),
    each attempt resumed from the attempt paused after its events, instead of lived from its start.

    The real supervisor lives every event of every scenario; only the events a scenario has in common with the ones
    before it are lived once: ``Attempt.resumed`` copies the real ``ActivitySubprocess`` (and the stand-ins) where the
    attempt paused, at a wake-up of its monitor loop, and calls its real ``wait()`` again, which goes on to the
    process's exit. Where the attempt did not pause after the scenario's events (its ``wait()`` ended in them, or a
    wake-up came from elsewhere) the scenario goes on from the attempt paused before its last event, and where that
    did not pause either it is lived from its start, as ``run`` does.

    The attempt paused after the prefix asked for last is kept for each length of prefix (and every started one: one
    per run context, client tries and map index): a scope's scenarios come in runs of one prefix, each prefix's
    extensions in a row, so one per length is all a scope asks for again.
    """

    def __init__(self):
        self.started: dict[tuple, Attempt] = {}
        #: By the length of its prefix: the prefix asked for last, ``(start, events)``, and its attempt.
        self.paused: dict[int, tuple[tuple, Attempt]] = {}

    def __call__(self, scenario: Scenario) -> Observation:
        start = (scenario.context, scenario.execution_api_retries, scenario.rendered_map_index)
        if start not in self.started:
            self.started[start] = Attempt.started(replace(scenario, events=()))
        events = scenario.events
        paused = self._paused_after(start, events)
        if paused.resumable:
            attempt = paused.resumed((), scenario.exit_code, pausing=False)
        elif events and (before := self._paused_after(start, events[:-1])).resumable:
            attempt = before.resumed(events[-1:], scenario.exit_code, pausing=False)
        else:
            return run(scenario)
        try:
            return attempt.observed()
        finally:
            attempt.release()

    def _paused_after(self, start: tuple, events: tuple) -> Attempt:
        """The attempt of ``start`` paused after ``events``: kept, or resumed from the one paused before the last."""
        if not events:
            return self.started[start]
        asked = (start, events)
        kept = self.paused.get(len(events))
        if kept is not None and kept[0] == asked:
            return kept[1]
        before = self._paused_after(start, events[:-1])
        paused = before.resumed(events[-1:], 0, pausing=True) if before.resumable else before
        # The prefix kept at this length is not asked for again; an unresumable attempt may stand for a shorter one too.
        if kept is not None and kept[1] is not before:
            kept[1].release()
        self.paused[len(events)] = (asked, paused)
        return paused


class AirflowServerRun:
    """``run`` on the real Execution API (server ``airflow``): one attempt per scenario; ``last`` its record.

    ``calls`` are mapped from the HTTP exchanges as ``impl.server.airflow_attempt`` says (one per
    client call, its final status, 2xx as 200); ``row`` is read back by run id after the attempt
    (``deleted`` once the TI is gone), ``row_gone`` the status the world's actor made the server answer.
    """

    def __init__(self):
        from impl.server.airflow_api import saved_logging
        from impl.server.airflow_attempt import open_server

        self._restore_logging = saved_logging()
        self.server = open_server()
        self.last = None

    def __call__(self, scenario: Scenario, run_id: str | None = None) -> Observation:
        """``run_id``: on that run's live TI as the scheduler left it (a later try of one life), not a new row."""
        from impl.server.airflow_attempt import AirflowAttempt, observed_row

        attempt = AirflowAttempt(self.server, scenario.context, run_id=run_id, tries=scenario.execution_api_retries)
        sup, child = _supervisor(scenario, attempt.client, attempt, attempt.ti_id)
        ti = airflow_supervisor.TaskInstance.model_construct(id=attempt.ti_id, try_number=scenario.context.try_number)
        raised, hung = _live(sup, ti)
        calls = attempt.calls()
        self.last = attempt.close()
        return Observation(
            exit_code=sup._exit_code,
            final_state=decided_final_state(sup),
            calls=calls,
            replies=tuple(child.replies),
            row=observed_row(self.last.row_after),
            row_gone=attempt.gone,
            raised=raised,
            rendered_map_index=attempt.map_index_sent(),
            hung=hung,
        )

    def close(self) -> None:
        """Stop the server (its database copy is deleted) and put the logging set-up back as it was."""
        self.server.close()
        self._restore_logging()


@functools.lru_cache(maxsize=None)
def _task_instance(try_number: int):
    return airflow_supervisor.TaskInstance.model_construct(id=TI_ID, try_number=try_number)


def raw_rate_probe(scenario: Scenario, client=None) -> str:
    """The benchmark's floor: the real supervisor's methods called directly, no event loop or wire.

    With ``client=None`` this binding's recording client answers; pass a ``unittest.mock.MagicMock``
    to measure the rate the design quotes (every call succeeds, nothing recorded).
    """
    sup, _ = _supervisor(scenario, client or RecordingClient(scenario))
    since_1_1_2_should_retry(sup, scenario.context.should_retry)
    for event in scenario.events:
        if isinstance(event, Send):
            msg = ActivitySubprocess.decoder.validate_python(codec.terminal_body(event.frame, event.state))
            try:
                sup._handle_request(msg, _QUIET, 1)
            except Exception:
                pass
    sup._exit_code = scenario.exit_code
    try:
        sup.update_task_state_if_needed()
    except Exception:
        pass
    return sup.final_state


def decide_final_state(exit_code: int, terminal_state: str | None, should_retry: bool) -> str:
    """The real ``ActivitySubprocess.final_state`` on these inputs alone (no attempt lived): its decision table.

    ``terminal_state`` is a state as the model spells it, held as the supervisor holds it (``supervisor_state``:
    a ``TaskInstanceState`` member, or the release's ``SERVER_TERMINATED``); the decision comes back in the
    model's spelling.
    """
    sup = ActivitySubprocess.__new__(ActivitySubprocess)
    sup._exit_code = exit_code
    since_1_1_2_should_retry(sup, should_retry)
    sup._terminal_state = supervisor_state(terminal_state)
    return model_state(sup.final_state)


def target(name: str, server: str | None = None):
    """The ``airflow-inproc`` target on ``server`` (None: ``$FINALSTATE_SERVER``, default ``model``); see the module."""
    from impl.targets.registry import Target, TargetUnavailable, chosen_server, require_real_server

    if chosen_server(server) == "model":
        return Target(name, run, release=model_release(), final_state=decide_final_state, in_process=True,
                      scope_run=SharedPrefixes)
    require_real_server(name)
    from impl.server.airflow_api import ServerUnavailable

    try:
        real = AirflowServerRun()
    except ServerUnavailable as e:  # its database does not connect or migrate (--server-db): say so, no traceback
        raise TargetUnavailable(f"{name} with --server airflow: {e}") from None
    return Target(name, real, release=model_release(), close=real.close, final_state=decide_final_state)
