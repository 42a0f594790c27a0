"""Retries across tries: the pairings of a runtime side and a supervisor side, and the machine that lives a TI's life.

Each ``--target`` gives one or more *pairings* of a runtime side and a supervisor side:

==========================  ==============================================  ==========================
``--target``                runtime side                                    supervisor side
==========================  ==============================================  ==========================
``model``                   ``model.runtime`` (Python; coordinator, fixed)  ``model.supervisor``
a supervisor target         ``model.runtime`` of the target's release       that target (real)
(``airflow-inproc``, ...)   (Python; coordinator, fixed)
``airflow-task-runner``     the real task runner                            ``model.supervisor`` of its release
``reference-runtime``,      the runtime under check, in its world, under the real ``_PopenActivitySubprocess``
``cmd:...``
==========================  ==============================================  ==========================

A supervisor target over real processes (``airflow-process``) pairs with the model's task runner only: a
coordinator's lives over real processes are those of a coordinator target, whose runtime is a real one too (its
conformance with the model's, try by try, is checked by the coordinator properties), so a model coordinator
scripted over the same supervisor would live the same lives less really, at the cost of a real process a try.

The machine: a TI is queued with ``retries`` drawn; each step starts the next try with the
server's run context, lets the runtime meet a drawn outcome, lets the supervisor record the end,
and moves the row on (``model.lifecycle.Life``). One try in eight the worker host is lost instead
(``host lost``): nothing is reported, and the scheduler's heartbeat timeout ends the try (on the
pairing's release of ``model.server``, or on the real row: ``Pairing.live``). After every try the
life is checked against one invariant of ``model.lifecycle``. Invariants a pairing breaks on the
pinned release are findings (``LIFECYCLE_FINDINGS``), strict expected failures; the properties are in ``properties/test_lifecycle.py``.
"""

from __future__ import annotations

import functools
from typing import Callable

import attrs
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from impl.search.ahead import drawn_by
from impl.targets.registry import TargetUnavailable, lived_once, load_target
from impl.search.report import InvariantViolation, explained, replay_command
from impl.search.scenarios import ending_coordinator_runs, life_features, playable_only, policies
from impl.releases.adapters import model_release
from model import coordinator as model_coordinator
from model import runtime as model_runtime
from model import supervisor as model_supervisor
from model.lifecycle import HOST_LOST, Life, Try, host_lost, life_violations, parse_life
from model.release import Release
from model.server import DELETED, Row
from model.coordinator import CoordinatorRun
from model.release import SPECIFIED
from model.runtime import COMMS_MODES, NEVER_RETRIED_FAILURES, PYTHON_OUTCOMES, RuntimeRun
from model.runtime_invariants import met_failure
from model.scenario import (NO_FINAL_STATE, UP_FOR_RESCHEDULE, UP_FOR_RETRY, ApiCall, Observation,
                            RunContext, UserAction)

#: A Python task runner try: a runtime run whose run context is the life's, set as it is lived; its features drawn
#: as ``scenarios.life_features`` says.
python_tries = st.builds(RuntimeRun, st.just(RunContext()), st.sampled_from(PYTHON_OUTCOMES), policies,
                         st.sampled_from(COMMS_MODES), life_features)
#: A coordinator try in its world whose task ends by itself (``scenarios.ending_coordinator_runs``); its run context is
#: the life's, set as it is lived.
coordinator_tries = ending_coordinator_runs
#: A TI's ``retries``.
RETRIES = st.integers(0, 3)
#: Whether the worker host is lost in a try (``model.lifecycle.HOST_LOST``): one try in eight; shrinks towards not.
HOST_LOSSES = st.sampled_from((False,) * 7 + (True,))


@attrs.frozen
class Pairing:
    """A runtime side and a supervisor side: ``attempt(context, drawn) -> Try``."""

    name: str
    tries: st.SearchStrategy = attrs.field(repr=False)  # its repr runs to tens of kB
    attempt: Callable[[RunContext, object], Try]
    unavailable: str | None = None
    #: The ``--target`` it stands for, to replay a life with.
    target: str = ""
    #: Lives on a real server's rows (``RealRows``): one TI row per life; None: the model's row accounting.
    rows: RealRows | None = None
    #: The kind of try its runtime side plays: ``runtime`` (the Python task runner's) or ``coordinator``.
    plays: str = "runtime"
    #: A coordinator target's tries lived ahead (``Target.live_ahead``), foreseen by the model's end to end
    #: (``forecast``, its reference): ``live_lives_ahead``. None: each try is lived when the life reaches it.
    live_ahead: Callable | None = None
    forecast: Callable | None = None
    #: The release whose server's rules end a try whose host was lost, where the life is not on real rows.
    release: Release = SPECIFIED

    def live(self, context: RunContext, drawn) -> Try:
        """One try: ``attempt``, or, for ``HOST_LOST``, the worker host dying in it: on real rows the real
        scheduler's heartbeat timeout ends it (``RealRows.lose_host``), else ``model.lifecycle.host_lost`` on
        ``release``'s server."""
        if drawn == HOST_LOST:
            return self.rows.lose_host(context) if self.rows is not None else host_lost(context, self.release)
        return self.attempt(context, drawn)


class RealRows:
    """One real TaskInstance row per life, on the real Execution API server (``--server airflow``).

    Each try runs on the life's row as the scheduler left it; after it, the scheduler's own step
    (``AirflowServer.requeue``: ``DagRun.schedule_tis``, then QUEUED) queues the next try of an
    UP_FOR_RETRY or UP_FOR_RESCHEDULE row, and the row read back is what the life goes on from: so
    the lifecycle invariants check the server's own try accounting, not the model's. A deferred or
    awaiting-input row waits for the triggerer or a person, which this does not play: the life ends there.
    """

    def __init__(self, run):
        self.run = run
        self.run_id: str | None = None

    @classmethod
    def of(cls, loaded) -> RealRows | None:
        """Real rows for a supervisor target on the real server whose run can play a try on a given row."""
        import inspect

        from impl.targets.registry import chosen_server

        takes_rows = "run_id" in inspect.signature(loaded.run).parameters if callable(loaded.run) else False
        return cls(loaded.run) if chosen_server() == "airflow" and takes_rows else None

    def open(self, retries: int) -> None:
        self.run_id = self.run.server.open_attempt(1, retries, retries=retries, start=False).run_id

    def supervise(self, scenario):
        return self.run(scenario, run_id=self.run_id)

    def row_after(self, context: RunContext) -> Row:
        """The life's row after the try of ``context``, as the scheduler's step left it. A deleted row has no try
        number left to read: it keeps the try's, as the model's rule does (``Life.record``)."""
        server = self.run.server
        row = server.row(self.run_id)
        if row is not None and row.state in (UP_FOR_RETRY, UP_FOR_RESCHEDULE):
            row = server.requeue(self.run_id)
        if row is None:
            return Row(DELETED, context.try_number, context.max_tries)
        return Row(row.state, row.try_number, row.max_tries)

    def lose_host(self, context: RunContext) -> Try:
        """A try whose worker host dies while its task runs, on the life's row: Airflow's client starts it as the
        supervisor would (``AirflowServer.run_attempt``: the real ``ti_run``), then nothing more; the scheduler's own
        heartbeat timeout strikes the row (``AirflowServer.heartbeat_timeout``) and its step queues what it may."""
        server = self.run.server
        started = server.run_attempt(self.run_id).context
        number = server.row(self.run_id).try_number
        context = RunContext(number, started.max_tries, started.should_retry)
        struck = server.heartbeat_timeout(self.run_id)
        observation = Observation(None, NO_FINAL_STATE, (ApiCall("start", 200),), (),
                                  DELETED if struck is None else str(struck.state))
        return Try(context, HOST_LOST, True, observation, "the host died: nothing reported", self.row_after(context))


def python_pairing(name: str, runtime, supervise, rows: RealRows | None = None,
                   release: Release = SPECIFIED) -> Pairing:
    """A Python task runner side (``runtime``: a ``RuntimeRun`` to its observation) and a supervisor side."""
    def attempt(context: RunContext, drawn: RuntimeRun) -> Try:
        run = attrs.evolve(drawn, context=context)
        observed = runtime(run)
        observation = supervise(model_runtime.to_scenario(context, observed))
        retryable = (met_failure(run, observed) and run.outcome not in NEVER_RETRIED_FAILURES
                     and not (run.policy is not None and run.policy.action == "fail"))
        return Try(context, python_met(run), retryable, observation,
                   f"sent {', '.join(map(str, observed.sent)) or 'nothing'}, exit {observed.exit_code}",
                   rows.row_after(context) if rows else None)
    return Pairing(name, python_tries, attempt, rows=rows, release=release)


def coordinator_pairing(name: str, end_to_end, rows: RealRows | None = None, release: Release = SPECIFIED) -> Pairing:
    """A coordinator-mode runtime in its world under a supervisor, end to end (``end_to_end``)."""
    def attempt(context: RunContext, drawn: CoordinatorRun) -> Try:
        run = attrs.evolve(drawn, context=context)
        observation = end_to_end(run)
        return Try(context, coordinator_met(run), run.failure, observation, f"exit {observation.exit_code}",
                   rows.row_after(context) if rows else None,
                   acted=[e for e in run.while_running if isinstance(e, UserAction)])
    return Pairing(name, coordinator_tries, attempt, rows=rows, plays="coordinator", release=release)


def python_met(run: RuntimeRun) -> str:
    """What a Python task runner try met, as a life's trace writes it: its run's text without the run context (the
    life's), every word of it kept (its features too)."""
    return run.to_text().split("; ", 1)[1]


def coordinator_met(run: CoordinatorRun) -> str:
    """What a coordinator try met, as a life's trace writes it: its run's text without the run context (the life's),
    the client's tries kept where they are not Airflow's default."""
    settings, rest = run.to_text().split("; ", 1)
    return "; ".join([*(w for w in settings.split() if w.startswith("execution_api_retries=")), rest])


def coordinator_model_with(supervise, release=SPECIFIED):
    """The model's coordinator runtime (the contract's) against a supervisor side (``release``'s)."""
    def end_to_end(run: CoordinatorRun):
        return supervise(model_coordinator.coordinator_scenario(run, release=release))
    return end_to_end


def pairings_for(target_name: str) -> list[Pairing]:
    """The pairings one ``--target`` stands for (see the module's table)."""
    return [attrs.evolve(p, target=target_name) for p in _pairings(target_name)]


class NotOnThisRelease(NotImplementedError):
    """A try the supervisor target's release cannot have (``model.runtime.impossible_on``)."""


def release_runtime(run: RuntimeRun, release: Release):
    """The model's task runner of ``release``, the runtime side paired with a supervisor target of that release; a
    try the release cannot have raises ``NotOnThisRelease`` (``playable_only`` rejects it in a search)."""
    reason = model_runtime.impossible_on(run, release)
    if reason is not None:
        raise NotOnThisRelease(reason)
    return model_runtime.python_runtime(run, release)


def _pairings(target_name: str) -> list[Pairing]:
    if target_name == "model":
        sup = model_supervisor.run
        return [python_pairing("model-runtime+model", model_runtime.python_runtime, sup),
                coordinator_pairing("model-coordinator+model", coordinator_model_with(sup))]
    try:
        loaded = load_target(target_name, "supervisor")
        runtime = playable_only(functools.partial(release_runtime, release=loaded.release))
        rows = RealRows.of(loaded)
        if rows is not None:
            on_rows = f"{target_name}, real rows"
            return [python_pairing(f"model-runtime+{on_rows}", runtime, rows.supervise, rows, loaded.release),
                    coordinator_pairing(f"model-coordinator+{on_rows}",
                                        coordinator_model_with(rows.supervise, loaded.release), rows, loaded.release)]
        lived = lived_once(loaded.run)
        pairings = [python_pairing(f"model-runtime+{target_name}", runtime, lived, release=loaded.release)]
        if loaded.in_process:  # over real processes, coordinator lives are the coordinator targets' own (below)
            pairings.append(coordinator_pairing(f"model-coordinator+{target_name}",
                                                coordinator_model_with(lived, loaded.release),
                                                release=loaded.release))
        return pairings
    except TargetUnavailable as not_supervisor:
        for kind in ("runtime", "coordinator"):
            try:
                loaded = load_target(target_name, kind)
            except TargetUnavailable:
                continue
            if kind == "runtime":
                return [python_pairing(f"{target_name}+model", lived_once(playable_only(loaded.run)),
                                       functools.partial(model_supervisor.run, release=model_release()),
                                       release=model_release())]
            return [attrs.evolve(coordinator_pairing(target_name, lived_once(loaded.run), release=loaded.release),
                                 live_ahead=loaded.live_ahead, forecast=loaded.reference)]
        return [Pairing(target_name, st.nothing(), lambda c, d: None, unavailable=str(not_supervisor))]


class LifeMachine(RuleBasedStateMachine):
    """Lives of one TI, one after another; subclassed per pairing and invariant by ``life_machine``."""

    pairing: Pairing
    checked: tuple  # not "invariants": RuleBasedStateMachine uses that name itself
    #: Registered findings whose violations are counted, not raised (``Finding.signature`` on the life).
    known: tuple = ()

    def __init__(self):
        super().__init__()
        self.life: Life | None = None

    @initialize(retries=RETRIES)
    def queue(self, retries):
        """A new TI, queued with ``retries``."""
        self.life = Life.new(retries)
        if self.pairing.rows is not None:
            self.pairing.rows.open(retries)

    # One rule, not a queue rule beside it: with preconditions choosing between two rules, Hypothesis
    # gave up on a quarter of the examples (no enabled rule drawn in its few tries), each after real tries.
    @rule(data=st.data())
    def next_try(self, data):
        """The next try of the TI; once its life is over, of a new TI."""
        if self.life.over:
            self.queue(data.draw(RETRIES, label="retries of the next TI"))
        context = self.life.next_context()
        lost = data.draw(HOST_LOSSES, label="the worker host is lost")
        drawn = HOST_LOST if lost else data.draw(self.pairing.tries, label="the task")
        self.life = self.life.record(self.pairing.live(context, drawn))
        if lost:
            event("a try's worker host was lost",
                  f"the heartbeat timeout left the row {self.life.tries[-1].observation.row}")
        found = []
        for violation in life_violations(self.life, self.checked):
            finding = explained(self.known, violation, self.life, None)
            if finding is None:
                found.append(violation)
            else:
                event(f"explained by known finding {finding.id}")
        if found:
            raise life_violation(self.pairing, self.life, found)


def live_lives_ahead(pairing: Pairing) -> None:
    """Hand the pairing's ``live_ahead`` the tries of the lives its machines will draw: the machine run first on the
    pairing's ``forecast`` (the model's runtime and supervisor), checking nothing, which lives the same lives as long
    as the real tries end as the model says and no invariant fails (``impl.search.ahead``). Forecast once per
    pairing and profile (its invariants' machines draw the same lives: ``life_machine``), handed over at each call (so
    that they go ahead of what was handed over since). Nothing where the pairing lives nothing ahead."""
    if pairing.live_ahead is None or pairing.forecast is None:
        return
    key = (pairing.name, settings.get_current_profile_name())
    if key not in _forecast:
        def search(record):
            def foreseen(run: CoordinatorRun):
                record(run)
                return pairing.forecast(run)

            dry = attrs.evolve(pairing, attempt=coordinator_pairing(pairing.name, foreseen).attempt)
            run_state_machine_as_test(life_machine(dry, ()))

        _forecast[key] = drawn_by(search)
    pairing.live_ahead(_forecast[key])


#: The tries of each pairing's lives (by its name and the profile), as ``live_lives_ahead`` forecast them.
_forecast: dict[tuple[str, str], list] = {}


def life_violation(pairing: Pairing, life: Life, found: list) -> InvariantViolation:
    """The failure of a life that broke ``found``: what broke, the command that replays the life, and the life."""
    return InvariantViolation("\n".join([
        f"VIOLATION on {pairing.name}: " + "; ".join(sorted({v.invariant for v in found})),
        f"replay: {replay_command(pairing.target, life)}",
        *(f"  - {v}" for v in found),
        "life:", *(f"  {line}" for line in life.to_lines()),
    ]))


#: The name of the machine of a pairing whose tries are lived ahead, whatever it checks (see ``life_machine``).
SHARED_LIVES = "Lives"


def life_machine(pairing: Pairing, invariants: tuple, known: tuple = ()) -> type[LifeMachine]:
    """The machine that lives ``pairing``'s lives and checks ``invariants`` after every try (``known`` findings counted).

    A derandomized search is seeded by its machine's name. Each invariant's machine has a name of its own, and so
    lives lives of its own; but a pairing whose tries are lived ahead (a real coordinator runtime: ``live_ahead``) has
    one name for all, so every invariant's property draws the same lives, each as many as before, and each try lived
    serves them all (``live_lives_ahead``) instead of each property living lives of its own."""
    name = SHARED_LIVES if pairing.live_ahead is not None else f"Life_{invariants[0].__name__}"
    return type(name, (LifeMachine,), {"pairing": pairing, "checked": invariants, "known": known})


class LifeOver(ValueError):
    """A life's text has tries after the try that ended it."""


def replay_life(pairing: Pairing, text: str) -> Life:
    """Live a finding's life again: ``retries=N | TRY | TRY ...`` (each TRY as the trace prints it). ``LifeOver`` when
    a try is left after the life ended (on this pairing), so that no try given is silently not lived."""
    retries, _, tries = parse_life(text)
    life = Life.new(retries)
    if pairing.rows is not None:
        pairing.rows.open(life.retries)
    for number, drawn in enumerate(tries, start=1):
        if life.over:
            raise LifeOver(f"on {pairing.name} the life is over after its try {number - 1} (the row is "
                           f"{life.row.state}): {len(tries) - number + 1} more given, which it does not live")
        life = life.record(pairing.live(life.next_context(), drawn))
    return life
