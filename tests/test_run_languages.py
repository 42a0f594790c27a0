"""Nothing accepted and then dropped (issue 30, deliverable 4): every run language reads back what it writes, and every
word it accepts changes what runs.

- Round trips: every kind of run the checker generates (its own strategies: ``scenarios``, ``runtime_runs``,
  ``coordinator_runs``, and the lives the lifecycle machine draws) goes through its text and back to an equal run.
- Every word: for each word of each language, taken from the language's own tables (so a word is covered the day it
  lands), there is a run whose text with the word and the same text without it (or, for a word that fills a slot every
  run has, with another word there) parse to runs the model observes differently. A parser that accepted the word and
  dropped it would read both texts alike.
- A life's try keeps every word of its run language (its features too), or the life is refused.
"""

from __future__ import annotations

import typing

import attrs
import pytest
from hypothesis import HealthCheck, find, given, settings, strategies as st
from hypothesis.errors import NoSuchExample

from impl.search.lifecycle import HOST_LOSSES, RETRIES, LifeOver, pairings_for, replay_life
from impl.search.scenarios import EVENTS, EXIT_CODES, coordinator_runs, runtime_runs, scenarios
from model import supervisor
from model.coordinator import CoordinatorRun, coordinator_attempt
from model.lifecycle import HOST_LOST, Life, parse_life
from model.runtime import RETURN, RETRY_ACTIONS, Policy, RuntimeRun, python_runtime
from model.scenario import SETTINGS, Event, RunContext, Scenario, event_text

#: How hard ``assert_word_matters`` looks for a run in which a word matters (the model answers thousands a second).
SEARCH = settings(database=None, derandomize=True, max_examples=3000, deadline=None,
                  suppress_health_check=list(HealthCheck))
ROUND_TRIPS = settings(database=None, derandomize=True, max_examples=300, deadline=None,
                       suppress_health_check=list(HealthCheck))


# Each word's cases are pairs of texts (with the word, without it) a *change* makes of a drawn run: ``change(draw,
# run)``, drawing what else it needs (where the word goes). The same changes of a Python task runner's or a
# coordinator's run are made to a try of a drawn life (``in_a_life``): a life's try is read by the same parser.

def _parts(run) -> list[str]:
    return run.to_text().split("; ")


def allowed(cls, field: str) -> tuple[str, ...]:
    """The words a run's ``field`` takes: the options of its attrs ``in_`` validator, which the parser checks them
    against (of each member, for a set of words)."""
    validator = getattr(attrs.fields(cls), field).validator
    return tuple(getattr(validator, "member_validator", validator).options)


@st.composite
def cases(draw, runs: st.SearchStrategy, change):
    return change(draw, draw(runs))


def event_at(word: str, span):
    """Insert the event ``word`` among a run's events (``span(parts)``: the indices it may go at)."""
    def change(draw, run) -> tuple[str, str]:
        parts = _parts(run)
        at = draw(st.sampled_from(span(parts)))
        return "; ".join(parts[:at] + [word] + parts[at:]), "; ".join(parts)
    return change


def slot(prefix: str, word: str):
    """Write ``word`` in the part that starts ``prefix`` (every run has it), instead of what is there."""
    def change(draw, run) -> tuple[str, str]:
        parts = _parts(run)
        at = next(i for i, p in enumerate(parts) if p.startswith(prefix))
        return "; ".join([*parts[:at], word, *parts[at + 1:]]), "; ".join(parts)
    return change


def setting(key: str):
    """The run's first part with ``key=`` (and each of its other settings kept or left out), and without it."""
    def change(draw, run) -> tuple[str, str]:
        first, *rest = _parts(run)
        items = [i for i in first.split() if i.startswith(f"{key}=") or draw(st.booleans())]
        without = [i for i in items if not i.startswith(f"{key}=")]
        return tuple("; ".join(filter(None, [" ".join(kept), *rest])) for kept in (items, without))
    return change


def assert_word_matters(word: str, strategy: st.SearchStrategy, observe) -> None:
    """Some pair of texts ``strategy`` draws parses to two runs ``observe`` tells apart (a text refused is no pair)."""
    def differ(pair: tuple[str, str]) -> bool:
        try:
            return observe(pair[0]) != observe(pair[1])
        except (ValueError, LifeOver):
            return False
    try:
        find(strategy, differ, settings=SEARCH)
    except NoSuchExample:
        pytest.fail(f"{word!r} is accepted, and no run was found in which writing it changes what the model observes")


# -- the supervisor's language (model.scenario) -------------------------------------------------------------------

def observe_scenario(text: str):
    return supervisor.run(Scenario.from_text(text))


def test_the_table_of_events_holds_every_kind_of_event():
    """The words below are the generated events' (``scenarios.EVENTS``): every kind of event the language has
    (``model.scenario.Event``) is among them."""
    assert {type(e) for e in EVENTS} == set(typing.get_args(Event))


def _between_context_and_exit(parts: list[str]) -> list[int]:
    return list(range(1, len(parts)))


@pytest.mark.parametrize("word", sorted({event_text(e) for e in EVENTS}))
def test_every_event_changes_what_the_supervisor_does(word):
    assert_word_matters(word, cases(scenarios, event_at(word, _between_context_and_exit)), observe_scenario)


@pytest.mark.parametrize("word", [f"exit {code}" for code in EXIT_CODES])
def test_every_exit_changes_what_the_supervisor_does(word):
    assert_word_matters(word, cases(scenarios, slot("exit ", word)), observe_scenario)


@pytest.mark.parametrize("key", SETTINGS)
def test_every_setting_changes_what_the_supervisor_does(key):
    assert_word_matters(f"{key}=", cases(scenarios, setting(key)), observe_scenario)


# -- the Python task runner's language (model.runtime) ------------------------------------------------------------

def observe_runtime(text: str):
    return python_runtime(RuntimeRun.from_text(text))


def _outcome_text(outcome: str) -> str:
    return "task returns" if outcome == RETURN else f"task raises {outcome}"


def _policy_texts() -> list[str]:
    """No policy, each action (with the delay it must have), and each optional word of a retry decision."""
    optional = {"delay": 30, "reason": "flaky"}
    assert {f.name for f in attrs.fields(Policy)} == {"action", *optional}, "a new word of a policy: give it a value"
    texts = [Policy(a, delay=0 if a == "retry_int_delay" else None).to_text() for a in allowed(Policy, "action")]
    texts += [Policy(a, **{**({"delay": 0} if a == "retry_int_delay" else {}), name: value}).to_text()
              for a in RETRY_ACTIONS for name, value in optional.items()]
    return [f"policy {t}" for t in ("none", *dict.fromkeys(texts))]


def feature(name: str):
    """The run with feature ``name`` among its others, and without it."""
    def change(draw, run: RuntimeRun) -> tuple[str, str]:
        parts = _parts(attrs.evolve(run, features=run.features - {name}))
        with_it = ([*parts[:-1], f"{parts[-1]} {name}"] if parts[-1].startswith("with ")
                   else [*parts, f"with {name}"])
        return "; ".join(with_it), "; ".join(parts)
    return change


def _runtime_settings() -> tuple[str, ...]:
    """The settings a task runner try's text accepts (it refuses the others)."""
    def accepted(key: str) -> bool:
        try:
            RuntimeRun.from_text(f"{key}={'true' if key == 'should_retry' else '2'}; task returns")
        except ValueError:
            return False
        return True
    return tuple(k for k in SETTINGS if accepted(k))


#: (the word, its change of a task runner's run) for every word of the language but its settings.
RUNTIME_WORDS = [
    *((w, slot("task ", w)) for w in map(_outcome_text, allowed(RuntimeRun, "outcome"))),
    *((w, slot("policy ", w)) for w in _policy_texts()),
    *((f"comms {m}", slot("comms ", f"comms {m}")) for m in allowed(RuntimeRun, "comms")),
    *((f"with {f}", feature(f)) for f in allowed(RuntimeRun, "features")),
]


@pytest.mark.parametrize("word, change", RUNTIME_WORDS, ids=[w for w, _ in RUNTIME_WORDS])
def test_every_word_changes_what_the_task_runner_does(word, change):
    assert_word_matters(word, cases(runtime_runs, change), observe_runtime)


def test_a_task_runner_try_has_the_run_context_only():
    assert _runtime_settings() == ("try_number", "max_tries", "should_retry")
    with pytest.raises(ValueError, match="no execution_api_retries="):
        RuntimeRun.from_text("try_number=1 execution_api_retries=2; task returns")


@pytest.mark.parametrize("key", _runtime_settings())
def test_every_setting_changes_what_the_task_runner_does(key):
    assert_word_matters(f"{key}=", cases(runtime_runs, setting(key)), observe_runtime)


# -- a coordinator-mode runtime's language (model.coordinator) ----------------------------------------------------

def observe_coordinator(text: str):
    return coordinator_attempt(CoordinatorRun.from_text(text))


def _taken(where: str, event) -> bool:
    """Whether a coordinator run takes ``event`` ``where`` (while its task runs, or after its frame)."""
    try:
        CoordinatorRun(**{where: (event,)})
    except ValueError:
        return False
    return True


def _while_running(parts: list[str]) -> list[int]:
    return list(range(1, 1 + next(i for i, p in enumerate(parts) if p.startswith("task "))))


def _after_frame(parts: list[str]) -> list[int]:
    return list(range(1 + next(i for i, p in enumerate(parts) if p.startswith("task ")), 1 + len(parts)))


#: (the word, its change of a coordinator's run) for every word of the language but its settings.
COORDINATOR_WORDS = [
    *((event_text(e), event_at(event_text(e), _while_running)) for e in EVENTS if _taken("while_running", e)),
    *((event_text(e), event_at(event_text(e), _after_frame)) for e in EVENTS if _taken("after_frame", e)),
    *((f"task {o}", slot("task ", f"task {o}")) for o in allowed(CoordinatorRun, "outcome")),
]


@pytest.mark.parametrize("word, change", COORDINATOR_WORDS, ids=[w for w, _ in COORDINATOR_WORDS])
def test_every_word_changes_what_a_coordinator_try_comes_to(word, change):
    assert_word_matters(word, cases(coordinator_runs, change), observe_coordinator)


@pytest.mark.parametrize("key", SETTINGS)
def test_every_setting_changes_what_a_coordinator_try_comes_to(key):
    assert_word_matters(f"{key}=", cases(coordinator_runs, setting(key)), observe_coordinator)


# -- a life's language (impl.search.lifecycle) ------------------------------------------------------------------

MODEL_PYTHON, MODEL_COORDINATOR = pairings_for("model")


def draw_life(draw, pairing) -> tuple[int, tuple]:
    """A life as the lifecycle machine draws it on ``pairing``: its retries, then tries until it is over (at most
    five), each one the host's loss or the pairing's kind of try (its run context the default: the life's is set as
    it is lived)."""
    life = Life.new(draw(RETRIES))
    drawn = []
    while not life.over and len(drawn) < 5:
        tried = HOST_LOST if draw(HOST_LOSSES) else attrs.evolve(draw(pairing.tries), context=RunContext())
        drawn.append(tried)
        life = life.record(pairing.live(life.next_context(), tried))
    return life.retries, tuple(drawn)


def life_text(retries: int, drawn: tuple) -> str:
    return " | ".join([f"retries={retries}", *(try_text(d) for d in drawn)])


def try_text(drawn) -> str:
    """A try as a life writes it: a run's text without the settings a life's try may not have."""
    if drawn == HOST_LOST:
        return HOST_LOST
    return as_a_try(drawn.to_text())


def as_a_try(text: str) -> str:
    """A run's text as a try of a life: its first part only for the client's tries (a coordinator's), if any."""
    first, _, rest = text.partition("; ")
    if first.split()[0].partition("=")[0] not in SETTINGS:
        return text
    kept = " ".join(w for w in first.split() if w.startswith("execution_api_retries="))
    return f"{kept}; {rest}" if kept else rest


@pytest.mark.parametrize("pairing", [MODEL_PYTHON, MODEL_COORDINATOR], ids=lambda p: p.name)
@given(data=st.data())
@ROUND_TRIPS
def test_a_generated_life_round_trips_through_its_text(pairing, data):
    retries, drawn = draw_life(data.draw, pairing)
    lived = replay_life(pairing, life_text(retries, drawn))
    assert lived.to_text() == life_text(retries, drawn)
    assert parse_life(lived.to_text())[2] == drawn
    assert replay_life(pairing, lived.to_text()) == lived


@st.composite
def in_a_life(draw, pairing, change):
    """A drawn life with one of its tries changed by ``change`` (as that try's run language has it), and as drawn."""
    retries, drawn = draw_life(draw, pairing)
    at = draw(st.integers(0, len(drawn) - 1))
    if drawn[at] == HOST_LOST:
        return ("",) * 2
    changed = [as_a_try(text) for text in change(draw, drawn[at])]
    return tuple(life_text(retries, drawn[:at]) + " | " + " | ".join([t, *map(try_text, drawn[at + 1:])])
                 for t in changed)


def observe_life(pairing):
    def observe(text: str) -> Life:
        return replay_life(pairing, text)
    return observe


@pytest.mark.parametrize("word, change", RUNTIME_WORDS, ids=[w for w, _ in RUNTIME_WORDS])
def test_every_word_of_a_task_runner_try_changes_the_life(word, change):
    assert_word_matters(word, in_a_life(MODEL_PYTHON, change), observe_life(MODEL_PYTHON))


#: A coordinator try's words, and the one setting a life's try may have.
LIFE_COORDINATOR_WORDS = [*COORDINATOR_WORDS, ("execution_api_retries=", setting("execution_api_retries"))]


@pytest.mark.parametrize("word, change", LIFE_COORDINATOR_WORDS, ids=[w for w, _ in LIFE_COORDINATOR_WORDS])
def test_every_word_of_a_coordinator_try_changes_the_life(word, change):
    assert_word_matters(word, in_a_life(MODEL_COORDINATOR, change), observe_life(MODEL_COORDINATOR))


@st.composite
def _host_lost_in_a_life(draw, pairing):
    retries, drawn = draw_life(draw, pairing)
    at = draw(st.integers(0, len(drawn)))
    return life_text(retries, (*drawn[:at], HOST_LOST, *drawn[at:])), life_text(retries, drawn)


@st.composite
def _other_retries(draw, pairing):
    retries, drawn = draw_life(draw, pairing)
    return life_text(draw(RETRIES), drawn), life_text(retries, drawn)


@pytest.mark.parametrize("pairing", [MODEL_PYTHON, MODEL_COORDINATOR], ids=lambda p: p.name)
def test_a_lost_host_and_the_retries_change_the_life(pairing):
    assert_word_matters(HOST_LOST, _host_lost_in_a_life(pairing), observe_life(pairing))
    assert_word_matters("retries=", _other_retries(pairing), observe_life(pairing))


# -- the life issue 30 names: kept with its feature, or refused; never changed -----------------------------------

def test_a_lives_try_keeps_its_features():
    text = "retries=0 | task returns; policy none; comms ok; with sigterm"
    retries, plays, (drawn,) = parse_life(text)
    assert (retries, plays, drawn.features) == (0, "runtime", frozenset({"sigterm"}))
    life = replay_life(MODEL_PYTHON, text)
    assert life.to_text() == text
    assert life == replay_life(MODEL_PYTHON, life.to_text())
    without = replay_life(MODEL_PYTHON, "retries=0 | task returns; policy none; comms ok")
    assert life.tries[0].observation == without.tries[0].observation  # on_kill runs; the task goes on to succeed
    assert life != without


@pytest.mark.parametrize("text, refused", [
    ("retries=1 | try_number=3; task raises ValueError; policy none; comms ok", "takes its run context from the life"),
    ("retries=1 | execution_api_retries=1; task returns", "no execution_api_retries="),
    ("retries=1 | max_tries=4; task error", "takes its run context from the life"),
    ("retries=1 | ", "none of them empty"),
    ("retries=1 | task error | task returns", "all of one runtime's kind"),
])
def test_a_life_refuses_what_it_would_not_act_on(text, refused):
    with pytest.raises(ValueError, match=refused):
        replay_life(MODEL_PYTHON, text)


def test_a_life_with_tries_after_its_end_is_refused():
    with pytest.raises(LifeOver, match="over after its try 1"):
        replay_life(MODEL_PYTHON, "retries=0 | task raises ValueError; policy none; comms ok | task returns")


@pytest.mark.parametrize("text, refused", [
    ("task returns; task raises ValueError", "second 'task ...' part"),
    ("task returns; with sigterm; with fork_exec", "second 'with ...' part"),
    ("task returns; with sigterm sigterm", "feature 'sigterm' is given twice"),
    ("task raises ValueError; policy retry delay=1 delay=2", "delay= is given twice"),
    ("try_number=1 try_number=2; task returns", "try_number= is given twice"),
])
def test_a_task_runner_try_refuses_a_word_it_would_drop(text, refused):
    with pytest.raises(ValueError, match=refused):
        RuntimeRun.from_text(text)


def test_a_coordinator_try_refuses_a_fault_on_a_call_it_never_makes():
    with pytest.raises(ValueError, match="no coordinator try makes"):
        CoordinatorRun.from_text("fault defer transient; task error")


# -- round trips of the single-run languages ----------------------------------------------------------------------

@given(scenarios)
@ROUND_TRIPS
def test_a_generated_scenario_round_trips_through_its_text(run):
    assert Scenario.from_text(run.to_text()) == run


@given(runtime_runs)
@ROUND_TRIPS
def test_a_generated_task_runner_run_round_trips_through_its_text(run):
    assert RuntimeRun.from_text(run.to_text()) == run


@given(coordinator_runs)
@ROUND_TRIPS
def test_a_generated_coordinator_run_round_trips_through_its_text(run):
    assert CoordinatorRun.from_text(run.to_text()) == run
