"""The in-process binding: it observes the real supervisor, raising included.

That the checker notices a changed branch of the real supervisor is tested with generated mutants
(``tests/test_coverage_mutate.py``, ``finalstate mutate``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the airflow-inproc target needs the airflow extra")

from impl.supervisor_inproc import target as inproc  # noqa: E402
from model.scenario import Scenario  # noqa: E402
from model.supervisor import run as model_run  # noqa: E402
from tests.test_model_supervisor import CASES  # noqa: E402


@pytest.mark.parametrize("text", CASES)
def test_hand_checked_cases_agree_with_the_real_supervisor(text):
    scenario = Scenario.from_text(text)
    assert inproc.run(scenario) == model_run(scenario)


def test_what_the_supervisor_raises_is_observed_not_crashed_on():
    observed = inproc.run(Scenario.from_text("send SucceedTask; overtime; exit 0"))
    assert observed.raised == "ServerResponseError(409)"
    assert observed.exit_code == -15


def test_replies_come_from_the_response_frames_on_the_wire():
    observed = inproc.run(Scenario.from_text(
        "execution_api_retries=1; fault retry transient; send RetryTask; send RetryTask; exit 0"))
    assert observed.replies == ("error", "ok")


def test_a_stalled_wake_up_sends_no_heartbeat_the_scenario_does_not_have(monkeypatch):
    """A loaded machine may stall the supervisor's loop past ``MIN_HEARTBEAT_INTERVAL``: no heartbeat falls due for that,
    only for a scenario's heartbeat event (each wake-up here takes a minute by the clock the supervisor reads)."""
    clock = iter(range(0, 10**6, 60))
    monkeypatch.setattr(inproc.time, "monotonic", lambda: float(next(clock)))
    scenario = Scenario.from_text("send MaskSecret; heartbeat 200; send MaskSecret; send SucceedTask; exit 0")
    observed = inproc.run(scenario)
    assert [c.name for c in observed.calls].count("heartbeat") == 1
    assert observed == model_run(scenario)


def _scope(depth: int, contexts: tuple):
    from impl.search.exhaustive import in_scope

    return [scenario for scenario, _, _ in in_scope(depth, contexts)]


def test_attempts_sharing_their_prefixes_observe_what_each_lives_alone():
    """``SharedPrefixes`` resumes a copy of the real supervisor paused after a scenario's events: on every
    scenario of the two-event scope (of a context that may retry and one that may not: client tries, exits, and the
    heartbeat sequences), in the scope's order, it observes what a fresh attempt does."""
    from impl.search.exhaustive import CONTEXTS

    shared = inproc.SharedPrefixes()
    differing = [s.to_text() for s in _scope(2, (CONTEXTS[0], CONTEXTS[2])) if shared(s) != inproc.run(s)]
    assert differing == []


@pytest.mark.parametrize("text", [
    "heartbeat 409; send SucceedTask; exit 0",  # killed by the server's refusal: the rest never happens
    "ignore sigterm; heartbeat 500; heartbeat 500; heartbeat 500; send SucceedTask; exit 1",  # killed, escalated
    "send SucceedTask; overtime; send RetryTask; exit 0",  # the overtime kill, then nothing
    "execution_api_retries=1; fault retry lost; send RetryTask; send SucceedTask; exit 1",
    # the SIGTERM handled: the rest of the events lived inside kill(), where a prefix pauses unresumable
    "handle sigterm; heartbeat 409; send SucceedTask; fault succeed lost; exit 1",
    "handle sigterm; user marks failed; heartbeat 200; send SucceedTask; exit hang",
    "send SucceedTask; user deletes; exit hang",  # time runs on once the events are over, then hung
    "user clears; heartbeat 200; send RetryTask; exit hang",
])
def test_a_prefix_whose_attempt_ended_is_not_resumed(text):
    """An attempt that ended before its prefix's last wake-up (its process killed) cannot go on: a scenario with more
    events after it is lived from its start, as alone."""
    scenario = Scenario.from_text(text)
    shared = inproc.SharedPrefixes()
    for n in range(len(scenario.events) + 1):
        part = inproc.replace(scenario, events=scenario.events[:n])
        assert shared(part) == inproc.run(part), part.to_text()


def test_a_pause_away_from_the_monitor_loop_is_not_resumable():
    """Only the monitor loop's own wait for events starts each iteration afresh from the supervisor's fields; a wake-up
    asked for from elsewhere (here: the test's own call) pauses an attempt that cannot be resumed."""
    attempt = inproc.Attempt.started(Scenario.from_text("exit 0"))
    attempt.selector.pausing = True
    with pytest.raises(inproc.Paused) as paused:
        attempt.sup._service_subprocess(max_wait_time=0)
    assert not paused.value.resumable


def test_a_paused_attempt_resumed_an_hour_later_lives_on_as_if_no_time_had_passed(monkeypatch):
    """A paused attempt's clocks stand still: resumed an hour (by the supervisor's clock) after it paused, it observes
    what a fresh attempt does."""
    scenarios = [Scenario.from_text(t) for t in (
        "send SucceedTask; overtime; exit 0", "heartbeat 500; heartbeat 500; heartbeat 500; exit 0",
        "send RetryTask; heartbeat 200; exit 1", "heartbeat 200; send TaskState failed; exit 0")]
    alone = [inproc.run(s) for s in scenarios]
    now = [1000.0]
    monkeypatch.setattr(inproc.time, "monotonic", lambda: now[0])
    shared = inproc.SharedPrefixes()
    for scenario, expected in zip(scenarios, alone):
        for n in range(len(scenario.events)):
            shared(inproc.replace(scenario, events=scenario.events[:n]))  # pauses after each prefix
            now[0] += 3600
        assert shared(scenario) == expected, scenario.to_text()


def test_faults_armed_on_different_calls_in_either_order_are_one_attempt_for_the_real_supervisor():
    """The scope takes the order between faults on different calls as one state (``exhaustive._abstract``): the real
    supervisor never sees a fault armed, and each call meets only its own. Every pair of faults on two calls, armed in
    both orders (side by side, and with a heartbeat between them), then every frame, with every exit: the real
    supervisor observes one attempt."""
    from impl.search.exhaustive import EXITS
    from impl.search.scenarios import EVENTS
    from model.scenario import Fault, Heartbeat, RunContext, Send

    faults = [e for e in EVENTS if isinstance(e, Fault)]
    frames = [e for e in EVENTS if isinstance(e, Send)]
    pairs = [(a, b) for i, a in enumerate(faults) for b in faults[i + 1:] if a.call != b.call]
    assert len(pairs) > 100
    differing = []
    for a, b in pairs:
        for between in ((), (Heartbeat(500),)):
            for frame in frames:
                for code in EXITS:
                    one, other = (Scenario(RunContext.from_server(1, 1), (x, *between, y, frame), code, 1)
                                  for x, y in ((a, b), (b, a)))
                    if inproc.run(one) != inproc.run(other):
                        differing.append(one.to_text())
    assert differing == []


def test_the_signal_handlers_the_supervisor_installs_stay_in_its_stand_in(monkeypatch):
    """``wait()`` forwards SIGTERM and SIGINT to its task's pid while it runs: in process that pid is the scripted
    process's, no process of ours, so its handlers go to ``SignalsKeptInProcess``, never to this process, and are
    put back when ``wait()`` ends."""
    import signal

    installed = []
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(signum))
    kept = inproc.SignalsKeptInProcess()
    monkeypatch.setattr(inproc, "_SIGNALS", kept)
    assert inproc.run(Scenario.from_text("send SucceedTask; exit 0")).final_state == "success"
    assert installed == []
    assert kept.handlers == {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.SIG_DFL}
    assert inproc.airflow_supervisor.signal is signal
