"""The scenario text form: what counterexamples print is what replay parses."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from model.scenario import Heartbeat, RunContext, Scenario, Send
from impl.search.scenarios import exit_codes, faults, frames, run_contexts

events = st.one_of(frames, faults, st.sampled_from([Heartbeat(200), Heartbeat(410)]))


@given(run_contexts, st.lists(events, max_size=8), exit_codes)
def test_text_round_trips(context, evs, code):
    scenario = Scenario(context, tuple(evs), code)
    assert Scenario.from_text(scenario.to_text()) == scenario
    assert Scenario.from_text("\n".join(scenario.to_lines())) == scenario


def test_context_may_be_left_out_and_should_retry_derived():
    assert Scenario.from_text("send RetryTask; exit 0").context == RunContext()
    assert Scenario.from_text("try_number=2 max_tries=3; exit 1").context == RunContext(2, 3, True)
    assert Scenario.from_text("try_number=4 max_tries=3; exit 1").context.should_retry is False


@pytest.mark.parametrize("text, message", [
    ("", "empty scenario"),
    ("send RetryTask", "ends with 'exit CODE'"),
    ("send Nope; exit 0", "bad event 'send Nope'"),
    ("send TaskState success; exit 0", "TaskState state 'success' is not known; allowed: failed"),
    ("send RetryTask failed; exit 0", "cannot carry state"),
    ("fault start transient; exit 0", "bad event"),
    ("heartbeat 418; exit 0", "bad event"),
    ("jump; exit 0", "unknown event 'jump'"),
    ("try_number=x; exit 0", "'x' is not an integer"),
    ("should_retry=yes; exit 0", "should_retry must be true or false"),
    ("exit one", "'one' is not an integer"),
])
def test_bad_text_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Scenario.from_text(text)


def test_send_validates_its_state():
    with pytest.raises(ValueError):
        Send("TaskState")


def _minimal(condition):
    from hypothesis import find, settings

    from impl.search.scenarios import scenarios
    return find(scenarios, condition, settings=settings(database=None, max_examples=2000))


def test_attempts_shrink_to_the_simplest_scenario_that_still_fails():
    """The compact draws (one string for the events) keep shrinking as good as a list of events:
    fewest events, earliest in the alphabet, consistent smallest context, exit 0."""
    from model.scenario import Fault, Overtime

    assert _minimal(lambda s: s.events) == Scenario(RunContext(1, 0, False), (Send("TaskState", "failed"),), 0)
    assert _minimal(lambda s: Overtime() in s.events) == Scenario(RunContext(1, 0, False), (Overtime(),), 0)
    assert _minimal(lambda s: sum(isinstance(e, Fault) for e in s.events) >= 2).events == (
        Fault("succeed", "transient"), Fault("succeed", "transient"))
    assert _minimal(lambda s: not s.context.consistent).context == RunContext(1, 0, True)
    assert _minimal(lambda s: s.context.try_number > 2 and s.exit_code < 0) == Scenario(RunContext(3, 0, False), (), -9)
