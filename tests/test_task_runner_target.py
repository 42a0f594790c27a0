"""The ``airflow-task-runner`` binding (``impl.task_runner.target``) on the words of the widened world: the real
``task_runner.main`` meeting ``sys.exit()``, a real ``execution_timeout`` that runs out, and real callbacks."""

from __future__ import annotations

import signal
import time

import pytest

from impl.releases.adapters import model_release
from impl.task_runner import target
from model.runtime import RuntimeRun, python_runtime


def real(text: str):
    """The real runner's try, and the model's of the installed release."""
    run = RuntimeRun.from_text(text)
    return target.run(run), python_runtime(run, model_release())


@pytest.mark.parametrize("context,frame,callback", [
    ("try_number=1 max_tries=1", "RetryTask", "on_retry_callback"),
    ("try_number=1 max_tries=0", "TaskState(failed)", "on_failure_callback"),
])
def test_sys_exit_without_a_code_takes_the_failure_path(context, frame, callback):
    observed, expected = real(f"{context}; task raises SystemExit(); policy none; comms ok")
    assert ([str(s) for s in observed.sent], observed.exit_code, observed.callbacks) == ([frame], 0, (callback,))
    assert observed == expected


def test_a_real_execution_timeout_interrupts_execute_and_calls_on_kill():
    """The runner's own timer (SIGALRM) ends ``execute``'s wait long before it would end by itself, and the task
    fails by it: on_kill once, RetryTask, on_retry_callback; the outcome execute would have reached is not."""
    began = time.monotonic()
    observed, expected = real("try_number=1 max_tries=1; task raises AirflowSkipException; policy none; comms ok; "
                              "with execution_timeout")
    assert time.monotonic() - began < target.TIMED_OUT_EXECUTE_WAITS / 2
    assert ([str(s) for s in observed.sent], observed.on_kill_calls, observed.callbacks) == (
        [*(["SetExecutionTimeout"] if model_release().announces_the_execution_timeout else []), "RetryTask"], 1,
        ("on_retry_callback",))
    assert observed == expected


def test_a_timed_out_try_leaves_the_checkers_signals_as_they_were():
    alarm = signal.getsignal(signal.SIGALRM)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    real("try_number=1 max_tries=1; task returns; policy none; comms ok; with execution_timeout")
    assert signal.getsignal(signal.SIGALRM) is alarm
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == mask
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize("text,callbacks", [
    ("task returns; policy none; comms ok", ("on_success_callback",)),
    ("task raises AirflowSkipException; policy none; comms ok", ("on_skipped_callback",)),
    ("task raises AirflowFailException; policy none; comms ok", ("on_failure_callback",)),
    ("task raises TaskDeferred; policy none; comms ok", ()),
    ("task returns; policy none; comms terminal_send_fails; with startup_reschedule", ()),
])
def test_the_tasks_real_callbacks_are_observed(text, callbacks):
    observed, expected = real(f"try_number=1 max_tries=1; {text}")
    assert observed.callbacks == callbacks
    assert observed == expected


@pytest.mark.parametrize("outcome,callback", [("AirflowSkipException", "on_skipped_callback"),
                                              ("AirflowFailException", "on_failure_callback")])
def test_an_unsent_outcome_runs_the_decided_states_callback_since_1_2_2(outcome, callback):
    """finalize runs after the terminal send failed since 1.2.2 (the fail-closed exit after it); before, the send's
    error leaves run and main exits 1 without it."""
    observed, expected = real(f"try_number=1 max_tries=1; task raises {outcome}; policy none; comms terminal_send_fails")
    assert observed.callbacks == ((callback,) if model_release().fails_closed_on_an_unsent_outcome else ())
    assert observed == expected


def test_a_keyboard_interrupt_leaves_before_finalize_and_runs_no_callback():
    if not model_release().has_retry_policies:
        pytest.skip(f"task-sdk {model_release()} has no retry policies (they came in 1.3.0)")
    observed, expected = real("try_number=1 max_tries=1; task raises ValueError; policy interrupted; comms ok")
    assert (observed.state, observed.exit_code, observed.callbacks) == (None, 2, ())
    assert observed == expected


def test_a_try_the_sigterm_kills_is_observed_from_a_process_of_its_own(monkeypatch):
    """Before 1.0.4 the task runner installs no SIGTERM handler and the signal kills its process: the binding runs such
    a try in a forked process of its own and observes what it did before it died. Here the installed runner is kept
    from installing its handler, as 1.0.3's never does; the try dies of the signal, with nothing sent, no on_kill, its
    channel never closed by main, and the checker lives on."""
    real_signal = signal.signal
    monkeypatch.setattr(signal, "signal", lambda signum, handler: (signal.getsignal(signum) if signum == signal.SIGTERM
                                                                    else real_signal(signum, handler)))
    killed = target._in_a_process_of_its_own(
        RuntimeRun.from_text("try_number=1 max_tries=0; task returns; policy none; comms ok; with sigterm"))
    assert (killed.sent, killed.state, killed.exit_code, killed.on_kill_calls, killed.channel_closed,
            killed.callbacks) == ((), None, -signal.SIGTERM, 0, False, ())
    # a try that lives to its end is observed there as it is here
    lived = RuntimeRun.from_text("try_number=1 max_tries=1; task raises AirflowException; policy none; "
                                 "comms terminal_send_fails")
    assert target._in_a_process_of_its_own(lived) == target._run_here(lived)
