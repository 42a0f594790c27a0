"""``finalstate export``: each registered finding as a pytest module an Airflow maintainer can paste.

An exported module imports Airflow (task-sdk), pytest and the standard library only (and psutil and httpx, which the
task-sdk brings). It carries a short harness (``harness.py``: its common section and its kind's, inlined) that
drives the real code as Airflow's own tests of it do: for a supervisor finding the real ``ActivitySubprocess`` with a
``mock`` client answering as the Execution API would, the runtime's frames as ``comms`` classes handed to
``handle_requests``, the heartbeat and the overtime as its monitor loop meets them, the process's exit and the real
``wait()``; for a task-runner finding the real ``task_runner.main`` with a failing supervisor channel; for a wire
finding a task process forked by the real ``ActivitySubprocess.start``; for a finding of the Execution API itself
(kind ``server``) the same supervisor with Airflow's ``Client`` against apache-airflow-core's Execution API app in
process, on a SQLite database the module migrates (its harness section ``server``); for a lifecycle finding the
life's tries on that server's row, each the real supervisor with the try's runtime (the real task runner, or a
coordinator-mode runtime as the runtimes' contract has it), the scheduler's ``schedule_tis`` between tries. Its test
is the finding's minimal run and one ``assert``: the finding's invariant, written out.

The run is the finding's registered one (``Finding.scenario``); what finalstate's model makes of it on a release is
written into the docstring. A module must fail on every release its finding stands on (``Finding.stands_on``) and
pass on every other (``expected_outcome`` says where the matrix excuses another finding's cause): ``check`` runs the
modules in environments without finalstate and compares.

A finding that cannot be exported gets a ``NotExported`` naming why; none is left out silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

import attrs

from impl.catalogue.findings import ALL_FINDINGS, Finding, how_sure_in_words
from impl.places import build_dir
from impl.wire import codec
from model.client import as_seen
from model.lifecycle import HOST_LOST
from model.release import SPECIFIED, Release
from model.runtime import FORKED_CHILD, MAP_INDEX_TEMPLATE, RETURN, SIGTERM, STARTUP_RESCHEDULE
from model.scenario import HANG, USER_MARKS, Fault, Heartbeat, Overtime, Scenario, Send, UserAction

ROOT = Path(__file__).resolve().parents[2]
#: Where the exported modules are kept in this repository (FINDINGS.md links to them).
EXPORTED = ROOT / "exported"
#: The environments ``check`` runs the modules in: a release and pytest, no finalstate.
CLEAN_ENVS = build_dir("export-envs")
_HARNESS = Path(__file__).with_name("harness.py")
#: The earliest release the harness drives (length-prefixed frames, ``_RequestFrame``).
EARLIEST = "1.0.3"
#: A pytest run of the modules on one release that runs longer is stopped.
CHECK_TIMEOUT_SECONDS = 600


class UnknownFinding(ValueError):
    """A finding id no registry has."""


@attrs.frozen
class Exported:
    """One finding's module: ``name`` its file name, ``source`` its text."""

    finding: Finding
    name: str
    source: str


@attrs.frozen
class NotExported:
    """A finding with no module, and why."""

    finding: Finding
    reason: str


@attrs.frozen
class Invariant:
    """An invariant as an exported test says it: the correct behaviour in words, and the assertion (code over
    ``attempt``, what the kind's harness returns: ``Attempt``, ``Try`` or ``Supervised``) with a message a maintainer
    reads without knowing finalstate."""

    correct: str
    assertion: str


INVARIANTS: dict[str, Invariant] = {
    "no_task_instance_left_running": Invariant(
        "once the attempt is over, the task instance has left RUNNING on the server (unless the server itself took it "
        "away): whatever final state the supervisor decides, some call reports it.",
        """assert attempt.row != "running" or attempt.gone is not None, (
    f"The attempt is over (final_state={attempt.final_state}, exit {attempt.exit_code}, wait() raised "
    f"{attempt.raised}), but no call reported it to the Execution API: the task instance stays RUNNING on the "
    f"server and nothing will end it. "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "server_row_agrees_with_final_state": Invariant(
        "the server's row ends in the state the supervisor reports as final_state (SERVER_TERMINATED: the server "
        "took the task instance away).",
        """if attempt.final_state == "server_terminated":  # then the server must have taken the task instance away
    agrees = attempt.gone is not None
else:
    agrees = attempt.gone is not None or attempt.row == attempt.final_state
assert agrees, (
    f"The supervisor reports final_state={attempt.final_state}, but the Execution API holds the task instance as "
    f"{attempt.row}: the worker and the server disagree on how the attempt ended. "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "no_second_transition": Invariant(
        "the supervisor never asks for a transition of a task instance that has already left RUNNING (no call is "
        "refused with 409 Conflict).",
        """refused = [c for c in attempt.calls if c.name != "heartbeat" and c.status == 409]
assert attempt.gone is not None or not refused, (
    f"The supervisor asked to move a task instance that had already left RUNNING: {refused} refused with 409 "
    f"Conflict (final_state={attempt.final_state}, row {attempt.row}, wait() raised {attempt.raised}). "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "retries_within_budget": Invariant(
        "a try the server says must not be retried (should_retry false: no retries left) never goes UP_FOR_RETRY.",
        """assert "up_for_retry" not in (attempt.final_state, attempt.row), (
    f"A try with no retries left went UP_FOR_RETRY (final_state={attempt.final_state}, row {attempt.row}): the "
    f"task instance retries past max_tries. "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "server_terminated_wins": Invariant(
        "once the server says the task must stop (a heartbeat refused 404/409/410, or, after a user moved the task "
        "instance, an outcome's call refused 409), the attempt ends SERVER_TERMINATED; nothing later replaces it.",
        """stop = [c for c in attempt.calls if c.name == "heartbeat" and c.status in (404, 409, 410)]
stop += [c for c in attempt.outcome_calls() if c.status == 409] if attempt.moved_by_user else []
assert attempt.hung or not stop or attempt.final_state == "server_terminated", (
    f"The server said the task must stop ({stop[0] if stop else ''}: a heartbeat refused, or an outcome's call "
    f"refused after a user moved the task instance), yet final_state is {attempt.final_state}, not "
    f"SERVER_TERMINATED (the row is {attempt.row}). "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "an_attempt_whose_task_ended_ends": Invariant(
        "once the runtime has reported its task's end (a terminal frame the supervisor took), the attempt ends even "
        "if the task process does not exit: the supervisor ends it (the success overtime; a deferred or rescheduled "
        "task frees its worker slot).",
        """assert not (attempt.hung and attempt.ended()), (
    f"The task ended (the runtime sent {attempt.ended()}), but its process never exited, and once every clock of "
    f"the supervisor had run out the supervisor had still not ended it: wait() waits for ever, the worker slot stays "
    f"taken, and the task instance stays {attempt.row}. "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "crash_with_retries_left_ends_up_for_retry": Invariant(
        "a try whose task process exits non-zero or dies of a signal before sending a terminal frame, while the "
        "server says should_retry (retries left), is recorded UP_FOR_RETRY, as Airflow 2 retried a task that crashed "
        "or was killed.",
        """crashed = (attempt.exit_code not in (0, None) and attempt.should_retry and not attempt.ended()
           and attempt.gone is None and not attempt.moved_by_user)
assert not crashed or attempt.final_state == "up_for_retry", (
    f"The task process exited {attempt.exit_code} without sending a terminal frame, with retries left "
    f"(should_retry), yet the supervisor's final_state is {attempt.final_state}: the task instance is not retried. "\n    f"Calls (answers as the supervisor saw them): {attempt.calls}")"""),
    "malformed_frame_still_ends_the_attempt": Invariant(
        "a request frame the supervisor cannot decode does not end its supervision: wait() still sees the exit, "
        "decides a final state and reports it.",
        """assert attempt.raised is None and attempt.final_state is not None, (
    f"A request frame the supervisor cannot decode made wait() raise {attempt.raised}: no final state was decided "
    f"and nothing reported the attempt (client calls: {attempt.calls}), so the task instance stays RUNNING.")"""),
    "every_request_is_answered": Invariant(
        "every request frame gets a response frame (an error one when its body cannot be validated): a runtime "
        "awaiting it never hangs.",
        """assert attempt.exit_code != NO_ANSWER, (
    f"The task process sent a request whose body fails validation and got no response within "
    f"{ANSWER_WAIT_SECONDS} s: a runtime awaiting one, as every SDK's comms client does, hangs until something "
    f"kills it.")"""),
    "non_success_never_recorded_success": Invariant(
        "a try the task runner decided is not a success (skipped, failed, up_for_retry, ...) is never recorded SUCCESS "
        "by the supervisor, whether or not its terminal frame got through.",
        """assert attempt.state in (None, "success") or attempt.recorded != "success", (
    f"The task runner decided {attempt.state}, but its terminal frame never got through ({attempt.sent}) and it "
    f"exited {attempt.exit_code}: the supervisor's final_state for that exit is success, so a task that did not "
    f"succeed is recorded SUCCESS.")"""),
    "failed_decision_never_recorded_up_for_retry": Invariant(
        "a try the task runner decided FAILED (it must not be retried) is never recorded UP_FOR_RETRY by the "
        "supervisor, whether or not its TaskState got through.",
        """assert attempt.state != "failed" or attempt.recorded != "up_for_retry", (
    f"The task runner decided failed (no retry), but its TaskState never got through ({attempt.sent}) and it exited "
    f"{attempt.exit_code}: the supervisor's final_state for that exit, under should_retry, is up_for_retry, so the "
    f"task is retried against its own decision.")"""),
    "failure_answered_with_retry_exactly_when_should_retry": Invariant(
        "a failure is answered with RetryTask exactly when should_retry, no retry policy says FAIL, and the exception "
        "is not one that never retries.",
        """must_retry = EXPECTED_RETRY  # WHY_RETRY
terminal = [s for s in attempt.sent if s.type in TERMINAL_FRAMES]
assert not terminal or (terminal[-1].type == "RetryTask") == must_retry, (
    f"The failure must be answered with {'RetryTask' if must_retry else 'no RetryTask'} (WHY_RETRY), yet the "
    f"task runner's terminal frame is {terminal[-1] if terminal else None} (it decided {attempt.state}).")"""),
    "fail_exception_never_retries": Invariant(
        "AirflowFailException (and AirflowSensorTimeout, AirflowTaskTerminated) never asks for a retry, whatever else "
        "fails on the way.",
        """assert not any(s.type == "RetryTask" for s in attempt.sent) and attempt.state != "up_for_retry", (
    f"The task raised an exception that must never be retried, yet the task runner answered with a retry "
    f"(it decided {attempt.state}; sent {attempt.sent}).")"""),
    "sys_exit_without_an_error_code_succeeds": Invariant(
        "a task that ends by sys.exit() or sys.exit(0) succeeds, as in Airflow 2 (apache/airflow#36986): the task "
        "runner decides success and sends SucceedTask.",
        """terminal = [s for s in attempt.sent if s.type in TERMINAL_FRAMES]
assert attempt.state == "success" and [s.type for s in terminal] == ["SucceedTask"], (
    f"The task ended by sys.exit() with no error code, which Airflow 2 recorded as success; the task runner "
    f"decided {attempt.state} and sent {attempt.sent}.")"""),
    "recorded_state_runs_its_callback_once": Invariant(
        "the state-change callback that the state the supervisor records calls for runs once, and no other: "
        "on_success_callback for success, on_failure_callback for failed, on_retry_callback for up_for_retry, "
        "on_skipped_callback for skipped (Airflow's callbacks documentation).",
        """recorded = attempt.state if attempt.recorded is None else attempt.recorded  # a frame that got through: its state
callback = {"success": "on_success_callback", "failed": "on_failure_callback", "up_for_retry": "on_retry_callback",
            "skipped": "on_skipped_callback"}.get(recorded)
assert attempt.callbacks == ([callback] if callback else []), (
    f"The supervisor records the try {recorded} (the task runner decided {attempt.state}, sent {attempt.sent} and "
    f"exited {attempt.exit_code}), which calls for {callback or 'no callback'}; the task's callbacks that ran: "
    f"{attempt.callbacks or 'none'}.")"""),
    "servers_closed_when_wait_raises": Invariant(
        "whatever wait() raises, the supervisor closes the sockets it opened: its two listening sockets (--comm, "
        "--logs) are closed once wait() is over.",
        """assert attempt.left_listening == 0, (
    f"wait() raised {attempt.raised} (exit {attempt.exit_code}, client calls {attempt.calls}) and the supervisor "
    f"left {attempt.left_listening} listening socket(s) open: a worker leaks them for every such task.")"""),
    "sigterm_calls_on_kill_once": Invariant(
        "a task that gets SIGTERM while its execute runs (the supervisor's kill) has its on_kill called, once, to "
        "clean up what it started.",
        """assert attempt.on_kill_calls == 1, (
    f"The task got SIGTERM while execute ran, as the supervisor's kill sends it, and its on_kill ran "
    f"{attempt.on_kill_calls} time(s), not once: what the task started is not cleaned up (the task runner's process "
    f"ended with {attempt.exit_code}; sent {attempt.sent}).")"""),
    "sigterm_never_ends_in_success": Invariant(
        "a task that gets SIGTERM while its execute runs (the supervisor's kill) is never decided SUCCESS: once on_kill "
        "has stopped what it was doing, the try did not do its work.",
        """assert attempt.state != "success", (
    f"The task got SIGTERM while execute ran, as the supervisor's kill sends it (on_kill ran {attempt.on_kill_calls} "
    f"time(s)), and the task runner went on and decided success (sent {attempt.sent}): a killed try is recorded as "
    f"one that did its work.")"""),
    "forked_child_stops_on_sigterm": Invariant(
        "a process the task forked stops when SIGTERM reaches it (the supervisor's kill signals the task runner's whole "
        "process group): it dies of the signal, or exits at once, never carrying on.",
        """assert attempt.forked_child_exit != 0, (
    f"The process the task forked got SIGTERM, as the supervisor's kill of the task runner's process group sends it, "
    f"and carried on: it exited {attempt.forked_child_exit}, as it would have without the signal. The SIGTERM "
    f"handler it inherited from the task runner did nothing in it, and nothing told it to stop.")"""),
    "try_that_never_ran_is_not_failed": Invariant(
        "a try whose DAG is not found at startup asks to be rescheduled (RescheduleTask) instead of failing: its task "
        "has not run, so neither a failure nor a retry is its due.",
        """lost_the_log_channel = any(s.type == "ResendLoggingFD" and not s.delivered for s in attempt.sent)
assert lost_the_log_channel or any(s.type == "RescheduleTask" for s in attempt.sent), (
    f"The DAG was not found at startup, so the task never ran; yet the task runner asked for no reschedule: it "
    f"exited {attempt.exit_code} (sent {attempt.sent}), which the supervisor records {attempt.recorded}, spending the "
    f"try on a task that never ran.")"""),
    # -- across tries (``model.lifecycle``): over ``life``, what the lifecycle harness's ``live`` returns
    "failing_try_with_retries_left_ends_up_for_retry": Invariant(
        "a try that fails with retries left (should_retry) ends UP_FOR_RETRY: the supervisor reports it so and the "
        "task instance is so on the server, so that the scheduler queues the next try.",
        """wrong = [t for t in life.tries
         if t.failure and t.should_retry and (t.final_state, t.row) != ("up_for_retry", "up_for_retry")]
assert not wrong, (
    f"Try {wrong[0].try_number} failed with retries left (max_tries={wrong[0].max_tries}), so it must end "
    f"UP_FOR_RETRY for the scheduler to retry it; but the supervisor reported {wrong[0].final_state} and the task "
    f"instance is {wrong[0].row} (after the scheduler's step: {wrong[0].row_after}): it will never be retried. "\n    f"The life: {life.tries}")"""),
    "no_try_leaves_row_running": Invariant(
        "no try leaves the task instance RUNNING on the server once it is over: whatever the supervisor reports, some "
        "call reports it.",
        """running = [t for t in life.tries if t.row == "running"]
assert not running, (
    f"Try {running[0].try_number} is over (exit {running[0].exit_code}, final_state={running[0].final_state}), but "
    f"the task instance is still RUNNING on the server: no call ended it, and nothing will. "\n    f"The life: {life.tries}")"""),
    "last_failing_try_ends_failed": Invariant(
        "a try that fails with no retries left ends FAILED: the supervisor reports it so and the task instance is so on "
        "the server.",
        """wrong = [t for t in life.tries if t.failure and not t.should_retry and (t.final_state, t.row) != ("failed", "failed")]
assert not wrong, (
    f"Try {wrong[0].try_number} failed with no retries left (max_tries={wrong[0].max_tries}), so it must end FAILED; "
    f"but the supervisor reported {wrong[0].final_state} and the task instance is {wrong[0].row} (after the "
    f"scheduler's step: {wrong[0].row_after}). "\n    f"The life: {life.tries}")"""),
}

#: Why each kind of finding the harness does not drive is not exported (yet): named by the command.
_NOT_EXPORTED_KINDS = {
    "coordinator": "about a coordinator-mode runtime under check (the Go-SDK-shaped runtime of runtimes/go), not about "
                   "an Airflow release: its test belongs to that runtime's suite, and no task-sdk release fixes it",
}
#: Findings of an exported kind that are not exported all the same, and why.
_NOT_EXPORTED = {
    "W3": "its run makes the supervisor allocate and zero 4 GiB: not a test to add to a suite; a bounded variant "
          "(a length prefix over a limit the fix sets) is for the fix to write",
    "W5": f"fixed in 1.0.3, before the earliest release the harness drives ({EARLIEST}: its wire before was JSON "
          "lines): its test would pass on every release it can run on",
}


def find(finding_id: str) -> Finding:
    """The registered finding ``finding_id`` (any registry); ``UnknownFinding`` naming the known ones."""
    for f in ALL_FINDINGS:
        if f.id == finding_id:
            return f
    raise UnknownFinding(f"unknown finding {finding_id!r}; known: {', '.join(f.id for f in ALL_FINDINGS)}")


def module_name(finding: Finding) -> str:
    """``test_f8_server_terminated_wins.py``: the finding's id and the invariant its test asserts."""
    return f"test_{finding.id.lower()}_{finding.invariant}.py"


def not_exported_because(finding: Finding) -> str | None:
    """Why ``finding`` has no exported module, or None when it has one."""
    if kind_of(finding) not in KINDS:
        causes = [c for c in dict.fromkeys(re.findall(r"\bF\d+\b", finding.upstream)) if c != finding.id]
        return _NOT_EXPORTED_KINDS[finding.kind] + (f"; its cause in one try has an exported test: {', '.join(causes)}"
                                                     if causes else "")
    if finding.id in _NOT_EXPORTED:
        return _NOT_EXPORTED[finding.id]
    if finding.invariant not in INVARIANTS:
        return f"its invariant {finding.invariant} has no written-out assertion yet"
    try:
        run = KINDS[kind_of(finding)].parse(finding.scenario)
    except ValueError as e:
        return f"the harness does not play its run: {e}"
    return KINDS[kind_of(finding)].unsupported(finding, run)


def export(finding: Finding, release: Release) -> Exported | NotExported:
    """``finding``'s module, its docstring telling what the model makes of the run on ``release`` (or, where the
    finding does not stand there, on a release it stands on); else why there is none."""
    reason = not_exported_because(finding)
    if reason:
        return NotExported(finding, reason)
    return Exported(finding, module_name(finding), _module(finding, _shown_on(finding, release)))


def report_line(finding: Finding) -> str:
    """The findings report's line linking ``finding`` to its module in ``exported/``, or saying why it has none."""
    reason = not_exported_because(finding)
    if reason:
        return f"- exported test: none ({reason})"
    path = f"{EXPORTED.name}/{module_name(finding)}"
    place = KINDS[kind_of(finding)].place.split(" (")[0]
    return f"- exported test: [{path}]({path}) (Airflow and pytest only; in Airflow's {place}; `finalstate export`)"


def export_all(release: Release, findings: tuple[Finding, ...] = ALL_FINDINGS
               ) -> tuple[Exported | NotExported, ...]:
    return tuple(export(f, release) for f in findings)


def write(results: tuple[Exported | NotExported, ...], out: Path) -> None:
    """Write each exported module into ``out`` (created), replacing any exported module there no longer exported."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("test_*.py"):
        stale.unlink()
    for r in results:
        if isinstance(r, Exported):
            (out / r.name).write_text(r.source)


def _unsupported_scenario(finding: Finding, scenario: Scenario) -> str | None:
    """Why the supervisor harness cannot play ``scenario`` faithfully, or None."""
    for e in scenario.events:
        if isinstance(e, Heartbeat) and e.answer not in (200, 404, 409, 410):
            return f"a heartbeat answered {e.answer} (its tries differ by release) is not played by the harness"
        if isinstance(e, UserAction) and e.action != USER_MARKS:
            return (f"the harness plays a user's mark, not 'user {e.action}' (what the server answers after it differs "
                    "by release)")
        if not isinstance(e, (Send, Fault, Heartbeat, Overtime, UserAction)):
            return f"the harness does not play {type(e).__name__}"
    if finding.invariant == "retries_within_budget" and (scenario.context.should_retry or not scenario.context.consistent):
        return "retries_within_budget is asserted for a try the server (consistently) says has no retries left"
    return None


#: The exceptions the runtime harness raises as a task's end (by name, from the release's exceptions module), and
#: what each comms mode makes fail.
_TASK_ERRORS = ("AirflowSkipException", "AirflowFailException", "AirflowException", "SystemExit()")
#: The outcomes the runtime harness plays: a task that returns (``model.runtime.RETURN``), or raises one of
#: ``_TASK_ERRORS``.
_TASK_OUTCOMES = (RETURN, *_TASK_ERRORS)
#: The retry policies the runtime harness writes out: their class's name and its ``evaluate``'s body.
_POLICIES = {
    "retry_int_delay": ("RetryWithDelayInSeconds",
                        "RETRY, its delay a plain number of seconds, as BaseOperator\'s retry_delay takes one.",
                        "return retry_policy.RetryDecision.retry(delay={delay})"),
    "interrupted": ("InterruptedRetryPolicy", "Ctrl-C while the retry policy decides.", "raise KeyboardInterrupt"),
}
_CHANNEL = {"ok": None, "terminal_send_fails": "terminal", "every_send_fails": "every"}
#: The features the runtime harness plays (``model.runtime.FEATURES``), each as its ``run_try`` argument.
_TRY_FEATURES = {MAP_INDEX_TEMPLATE: 'map_index_template="{{ label }}"', SIGTERM: "sigterm=True",
                 FORKED_CHILD: "forked_child=True", STARTUP_RESCHEDULE: "dag_found=False"}
#: Invariants that judge what the supervisor records of the try's exit: only a try none of whose terminal frames got
#: through is recorded by its exit alone (``final_state_for``).
_RECORDED_BY_THE_EXIT = ("non_success_never_recorded_success", "failed_decision_never_recorded_up_for_retry")


def _unsupported_try(finding: Finding, run) -> str | None:
    """Why the runtime harness cannot play the try ``run`` faithfully, or None."""
    if run.outcome not in _TASK_OUTCOMES:
        return f"the harness does not raise {run.outcome}"
    if run.policy is not None and run.policy.action not in _POLICIES:
        return f"the harness has no retry policy answering {run.policy.action}"
    if set(run.features) - set(_TRY_FEATURES):
        return f"the harness does not play {', '.join(sorted(set(run.features) - set(_TRY_FEATURES)))}"
    if finding.invariant in _RECORDED_BY_THE_EXIT and run.comms == "ok":
        return "the supervisor's record is read from the exit alone, so the terminal frame must not get through"
    return None


def _shown_on(finding: Finding, release: Release) -> Release:
    from impl.releases.environments import release_standing_for

    if finding.stands_on(release):
        return release
    return Release.parse(release_standing_for(finding.introduced_in, finding.fixed_in))


def release_range(finding: Finding) -> str:
    """The task-sdk releases ``finding`` stands on, in words."""
    since = KINDS[kind_of(finding)].since if kind_of(finding) in KINDS else None
    start = (f"from {finding.introduced_in}" if finding.introduced_in
             else f"every release the test drives (from {since or EARLIEST})")
    return f"{start}, fixed in {finding.fixed_in}" if finding.fixed_in else f"{start}, still on the newest"


def _module(finding: Finding, shown_on: Release) -> str:
    """The module's text: its docstring, the harness (common, then the kind's), the finding's run and its test."""
    kind = KINDS[kind_of(finding)]
    run = kind.parse(finding.scenario)
    invariant = INVARIANTS[finding.invariant]
    doc = "\n\n".join([
        f"{finding.id}: {finding.headline}.",
        f"Where: {finding.upstream}.",
        f"Releases (apache-airflow-task-sdk): {release_range(finding)}. This test fails on those and passes on the "
        "others: it is the fix's regression test."
        + (f" Before task-sdk {kind.since} it is skipped: {kind.skipped_before}." if kind.since else ""),
        f"Correct behaviour ({finding.invariant}): {invariant.correct}",
        f"How sure: {how_sure_in_words(finding)}",
        *_also_failing(finding),
        f"The run (finalstate's minimal counterexample): {run.to_text()}."
        + (f" As finalstate's model of task-sdk {shown_on} has it, {kind.described(run, kind.model_run(run, shown_on))}."
           if kind.model_run else ""),
        "Exported by `finalstate export` from finalstate's findings registry. It needs only "
        f"{kind.needs} and pytest; its place in Airflow is {kind.place}.",
    ])
    imports, code = _harness(kind.sections(run) if callable(kind.sections) else kind.sections)
    assertion = invariant.assertion
    if "EXPECTED_RETRY" in assertion:  # what the invariant asks of this run (failure_answered_with_retry_...)
        assertion = assertion.replace("EXPECTED_RETRY", repr(_retry_expected(run))).replace("WHY_RETRY", _why_retry(run))
    return "\n".join([
        '"""' + "\n\n".join(textwrap.fill(p, 116, break_on_hyphens=False) for p in doc.split("\n\n")) + '\n"""',
        "",
        "from __future__ import annotations",
        "",
        _grouped("\n".join([imports, *kind.imports(run)])),
        "",
        code,
        "",
        "",
        *kind.body(finding, run),
        "",
        "",
        f"def {module_name(finding)[:-3]}():",
        f"    {kind.subject} = minimal_run()",
        textwrap.indent(assertion, "    "),
        "",
    ])


def _harness(sections: tuple[str, ...]) -> tuple[str, str]:
    """The harness's imports and code of ``sections`` (the common one first), in that order."""
    text = dict(re.findall(r"# --- (\w+: \w+) ---\n(.*?)(?=# --- |\Z)", _HARNESS.read_text(), re.S))
    imports, code = ("\n".join(text[f"{part}: {section}"] for section in sections) for part in ("imports", "code"))
    return imports, re.sub(r"\n{3,}(?=\S)", "\n\n\n", code.strip("\n"))


def _grouped(imports: str) -> str:
    """Import lines as a linter wants them: the standard library's, then the others', then anything else (a
    ``try``/``except`` import), each once, in the order met."""
    standard, others, rest = [], [], []
    for line in filter(str.strip, imports.splitlines()):
        group = rest
        if line.startswith(("import ", "from ")):
            group = standard if line.split()[1].split(".")[0] in sys.stdlib_module_names else others
        if line not in group:
            group.append(line)
    def by_module(line: str) -> tuple[bool, str]:
        return line.startswith("from "), line.split()[1]
    return "\n\n".join("\n".join(g) for g in (sorted(standard, key=by_module), sorted(others, key=by_module), rest)
                       if g)


def _supervisor_imports(scenario: Scenario) -> list[str]:
    frames = sorted({e.frame for e in scenario.events if isinstance(e, Send)})
    return [f"from airflow.sdk.execution_time.comms import {', '.join(frames)}"] if frames else []


def _supervisor_body(finding: Finding, scenario: Scenario) -> list[str]:
    c = scenario.context
    return [
        "def minimal_run() -> Attempt:",
        f'    """{finding.id}\'s run: {scenario.to_text()}"""',
        f"    api = ExecutionAPI(try_number={c.try_number}, max_tries={c.max_tries}, should_retry={c.should_retry}, "
        f"tries={scenario.execution_api_retries})",
        *(["    events = [", *(f"        {_event(e)}," for e in scenario.events), "    ]"] if scenario.events
          else ["    events = []"]),
        f"    return run_attempt(api, events, exit_code={_exit(scenario)})",
    ]


def _exit(scenario: Scenario) -> str:
    """The run's exit as the harness takes it: a code, or ``HANG``."""
    return "HANG" if scenario.exit_code == HANG else str(scenario.exit_code)


def _unsupported_on_the_server(finding: Finding, scenario: Scenario) -> str | None:
    """Why the real Execution API cannot play ``scenario``, or None: the row is a first try's as the scheduler queues
    it (its counts consistent), and only the supervisor's own calls and their faults are played."""
    c = scenario.context
    if not c.consistent or c.try_number != 1 or c.max_tries > RETRIES_MAX:
        return f"the real server's row is a first try's with at most {RETRIES_MAX} retries, its run context the server's own"
    if any(not isinstance(e, (Send, Fault)) for e in scenario.events) or scenario.exit_code == HANG:
        return "only frames, faults and an exit are played against the real server"
    return None


def _server_body(finding: Finding, scenario: Scenario) -> list[str]:
    c = scenario.context
    return [
        "def minimal_run() -> Attempt:",
        f'    """{finding.id}\'s run: {scenario.to_text()}"""',
        "    server = execution_api_server()",
        f"    api = RealExecutionAPI(server, server.new_run(retries={c.max_tries}), "
        f"tries={scenario.execution_api_retries})",
        *(["    events = [", *(f"        {_event(e)}," for e in scenario.events), "    ]"] if scenario.events
          else ["    events = []"]),
        f"    return run_attempt(api, events, exit_code={scenario.exit_code})",
    ]


def _unsupported_launch(finding: Finding, scenario: Scenario) -> str | None:
    """Why the launcher harness cannot play ``scenario``, or None: a call refused once (the client trying each call
    once), then the exit."""
    if any(not (isinstance(e, Fault) and (e.kind == "permanent" or scenario.execution_api_retries == 1)
                and e.kind in ("transient", "permanent")) for e in scenario.events):
        return "the launcher harness plays calls refused with 500 only, under execution_api_retries=1"
    return None


def _launch_body(finding: Finding, scenario: Scenario) -> list[str]:
    failing = [e.call for e in scenario.events]
    return [
        "def minimal_run() -> Launched:",
        f'    """{finding.id}\'s run: {scenario.to_text()}"""',
        f"    return launch(exit_code={scenario.exit_code}, failing={failing!r})",
    ]


def _supervisor_described(scenario: Scenario, observed) -> str:
    calls = ", ".join(map(str, as_seen(observed.calls, scenario.execution_api_retries)))
    if observed.hung:
        return (f"the supervisor's calls are {calls or 'none'}; it never ends the process, so wait() waits for ever "
                f"(no final_state), the server's row {observed.row}")
    return (f"the supervisor's calls are {calls or 'none'}; its final_state is {observed.final_state} and the "
            f"server's row {observed.row}")


def _runtime_imports(run) -> list[str]:
    if run.policy is None:
        return []
    return ["", "import pytest", "",
            'retry_policy = pytest.importorskip("airflow.sdk.definitions.retry_policy", '
            'reason="retry policies came in task-sdk 1.3.0")']


def _runtime_body(finding: Finding, run) -> list[str]:
    c = run.context
    policy = []
    if run.policy is not None:  # one of _POLICIES (_unsupported_try)
        name, doc, answer = _POLICIES[run.policy.action]
        policy = [f"class {name}(retry_policy.RetryPolicy):",
                  f'    """{doc}"""',
                  "",
                  "    def evaluate(self, exception, try_number, max_tries, context=None):",
                  f"        {answer.format(delay=run.policy.delay)}",
                  "", ""]
    return [
        *policy,
        "def minimal_run() -> Try:",
        f'    """{finding.id}\'s run: {run.to_text()}"""',
        f"    return run_try({_task_error(finding, run)}, try_number={c.try_number}, "
        f"max_tries={c.max_tries}, should_retry={c.should_retry},",
        f"                   failing={_CHANNEL[run.comms]!r}"
        + (f", retry_policy={_POLICIES[run.policy.action][0]}()" if run.policy else "")
        + "".join(f", {_TRY_FEATURES[feature]}" for feature in run.features) + ")",
    ]


def _task_error(finding: Finding, run) -> str:
    """What the harness's task raises, as code: None for a task that returns."""
    if run.outcome == RETURN:
        return "None"
    return "SystemExit()" if run.outcome == "SystemExit()" else f"exceptions.{run.outcome}(\"{finding.id}\")"


def _runtime_described(run, observed) -> str:
    from model.runtime import compose

    sent = ", ".join(map(str, observed.sent)) or "nothing"
    also = "".join([f"; on_kill runs {observed.on_kill_calls} time(s)" if SIGTERM in run.features else "",
                    f"; the forked child exits {observed.forked_child_exit}" if FORKED_CHILD in run.features else ""])
    return (f"the task runner sends {sent}, decides {observed.state}, runs "
            f"{', '.join(observed.callbacks) or 'no callback'} and exits {observed.exit_code}; the supervisor records "
            f"{compose(run.context, observed).final_state}{also}")


def _retry_expected(run) -> bool:
    """Whether the invariant asks the try's failure to be answered with RetryTask (``model.runtime_invariants``), as
    the model's run of the pinned release meets it."""
    from model.runtime_invariants import retry_expected

    return retry_expected(run, _model_runtime(run, SPECIFIED))


def _why_retry(run) -> str:
    answers = {"retry_int_delay": "RETRY (its delay a number of seconds)"}
    policy = f"the retry policy answers {answers.get(run.policy.action, run.policy.action)}" if run.policy else "no retry policy"
    return f"should_retry={run.context.should_retry}, the task raised {run.outcome}, {policy}"


@attrs.frozen
class WireScript:
    """A task process's script in a wire finding's words: the bytes it writes on the requests channel once it has its
    StartupDetails, whether it then awaits an answer, and its exit."""

    text: str
    writes: tuple[bytes, ...]
    awaits: bool
    exit_code: int

    def to_text(self) -> str:
        return self.text


def _parse_wire(text: str) -> WireScript:
    """``write HEX (...)``, ``write a frame with body {type: NAME}``, ``await its response``, ``exit N``, separated by
    ``;``; ``ValueError`` naming a part the harness does not play."""
    writes, awaits, exit_code = [], False, None
    for part in (p.strip() for p in text.split(";")):
        hex_write = re.fullmatch(r"write ([0-9a-f]+)( \(.*\))?( and nothing else)?", part)
        frame_write = re.fullmatch(r"write a frame with body \{type: (\w+)\}", part)
        if hex_write:
            writes.append(bytes.fromhex(hex_write.group(1)))
        elif frame_write:
            writes.append(codec.encode_request(codec.RequestFrame(1, {"type": frame_write.group(1)})))
        elif part == "await its response":
            awaits = True
        elif re.fullmatch(r"exit -?\d+", part):
            exit_code = int(part.split()[1])
        else:
            raise ValueError(f"{part!r}")
    if exit_code is None:
        raise ValueError("no exit")
    return WireScript(text, tuple(writes), awaits, exit_code)


def _wire_body(finding: Finding, script: WireScript) -> list[str]:
    ending = (f"os._exit({script.exit_code} if answered(0) else NO_ANSWER)" if script.awaits
              else f"os._exit({script.exit_code})")
    return [
        "def child():",
        f'    """The task process: {script.text}."""',
        "    read_frame(0)  # StartupDetails",
        *(f'    os.write(0, bytes.fromhex("{data.hex()}"))' for data in script.writes),
        f"    {ending}",
        "",
        "",
        "def minimal_run() -> Supervised:",
        f'    """{finding.id}\'s run: {script.text}"""',
        "    return supervise(child)",
    ]


@attrs.frozen
class LifeRun:
    """A lifecycle finding's life (``retries=N | TRY | ...``), read as ``model.lifecycle.parse_life`` reads
    it: the task's retries, whose runtime plays the tries (``runtime``: the Python task runner; ``coordinator``; None:
    every try is ``host lost``), and each try as drawn."""

    text: str
    retries: int
    plays: str | None
    tries: tuple

    def to_text(self) -> str:
        return self.text


def _parse_life(text: str) -> LifeRun:
    from model.lifecycle import parse_life

    return LifeRun(text, *parse_life(text))


def _model_life(run: LifeRun, release: Release):
    """The life as finalstate's model of ``release`` lives it: the model's runtime of that release (the task runner,
    or the contract's coordinator runtime) and its supervisor, the row by the server's rules."""
    import functools

    from impl.search.lifecycle import (coordinator_model_with, coordinator_pairing, python_pairing, release_runtime,
                                          replay_life)
    from model import supervisor

    supervise = functools.partial(supervisor.run, release=release)
    if run.plays == "coordinator":
        pairing = coordinator_pairing(_life_target(run), coordinator_model_with(supervise, release), release=release)
    else:
        pairing = python_pairing(_life_target(run), functools.partial(release_runtime, release=release), supervise,
                                 release=release)
    return replay_life(pairing, run.text)


def _life_target(run: LifeRun) -> str:
    """The model's pairing a life's matrix cells are checked on (``impl.search.lifecycle``)."""
    return "model-coordinator+model" if run.plays == "coordinator" else "model-runtime+model"


def _life_described(run: LifeRun, life) -> str:
    return "; ".join(t.to_text() for t in life.tries)


#: The exceptions a task runner try of a lifecycle module raises, as the harness writes them.
_LIFE_ERRORS = {"return": "None", "ValueError": 'ValueError("{id}")',
                "DownstreamTasksSkipped": 'exceptions.DownstreamTasksSkipped(tasks=["downstream"])',
                **{name: f'exceptions.{name}("{{id}}")' for name in _TASK_ERRORS}}


def _unsupported_life(finding: Finding, run: LifeRun) -> str | None:
    """Why the lifecycle harness cannot live ``run``, or None."""
    if run.retries > RETRIES_MAX:
        return f"the harness's real server has tasks of at most {RETRIES_MAX} retries"
    for drawn in run.tries:
        if drawn == HOST_LOST:
            return "the harness does not lose a worker host (a try the scheduler's heartbeat timeout ends)"
        if run.plays == "coordinator":
            if drawn.outcome not in ("success", "error") or any(
                    not isinstance(e, (Fault, Overtime)) for e in (*drawn.while_running, *drawn.after_frame)):
                return "the harness plays a coordinator try of success or error, with faults and the overtime only"
            continue
        if drawn.policy is not None:
            return "the harness plays a task runner try under no retry policy"
        if drawn.features:
            return "the harness plays a task runner try with no features"
        if drawn.outcome not in _LIFE_ERRORS:
            return f"the harness does not raise {drawn.outcome}"
        if drawn.comms not in _CHANNEL:
            return f"the harness does not play comms {drawn.comms}"
    return None


def _life_sections(run: LifeRun) -> tuple[str, ...]:
    """A life of task runner tries carries the runtime harness too (its ``run_try``); a coordinator's does not."""
    if run.plays == "runtime":
        return ("common", "supervisor", "runtime", "server", "lifecycle_task_runner", "lifecycle")
    return ("common", "supervisor", "server", "lifecycle")


def _life_imports(run: LifeRun) -> list[str]:
    if run.plays != "coordinator":
        return []
    from model.coordinator import terminal_frame
    from model.scenario import RunContext

    frames = sorted({terminal_frame(attrs.evolve(d, context=RunContext.from_server(1, run.retries))).frame
                     for d in run.tries if d != HOST_LOST})
    return [f"from airflow.sdk.execution_time.comms import {', '.join(frames)}"]


def _life_body(finding: Finding, run: LifeRun) -> list[str]:
    from model.coordinator import terminal_frame
    from model.scenario import DEFAULT_EXECUTION_API_RETRIES, RunContext

    life = _model_life(run, _shown_on(finding, SPECIFIED))
    tries = []
    for number, (drawn, lived) in enumerate(zip(run.tries, life.tries), start=1):
        if run.plays == "coordinator":
            context = RunContext.from_server(lived.context.try_number, lived.context.max_tries)
            frame = terminal_frame(attrs.evolve(drawn, context=context))
            reports_failure = frame.frame != "SucceedTask"
            events = [_event(e) for e in drawn.while_running] + [f"('send', {_frame(frame)})"] + \
                     [_event(e) for e in drawn.after_frame] + [f"('exit', {'fails_closed' if reports_failure else 0})"]
            tries.append(f"        ([{', '.join(events)}],\n         {lived.retryable_failure}, "
                         f"{drawn.execution_api_retries}),")
        else:
            error = _LIFE_ERRORS[drawn.outcome].format(id=finding.id)
            tries.append(f"        (task_runner_try({error}, failing={_CHANNEL[drawn.comms]!r}), {lived.retryable_failure}, "
                         f"{DEFAULT_EXECUTION_API_RETRIES}),")
    return [
        "def minimal_run() -> Life:",
        f'    """{finding.id}\'s life: {run.text}.',
        "",
        "    Each try: (its runtime, whether its task fails, the worker's execution_api_retries).\"\"\"",
        f"    return live(retries={run.retries}, tries=[",
        *tries,
        "    ])",
    ]


@attrs.frozen
class ExportKind:
    """How one kind of finding is exported: its run parsed, what finalstate's model makes of it on a release (and in
    words), what the harness cannot play, the module's imports and functions for the run, and the target its matrix
    cells are checked on; the harness's sections its module carries (the common one first), what it needs installed
    and where in Airflow it belongs."""

    parse: Callable
    model_run: Callable | None  # None: the model has no such runs (the wire)
    described: Callable | None
    unsupported: Callable
    imports: Callable
    body: Callable
    target: str
    invariants: str | None
    sections: tuple[str, ...] | Callable  # or a function of the run
    needs: str = "apache-airflow-task-sdk"
    place: str = "task-sdk/tests/task_sdk/execution_time/"
    #: The first task-sdk release its module runs on (before: skipped, for the reason ``skipped_before``), None: every
    #: one from ``EARLIEST``.
    since: str | None = None
    skipped_before: str = ""
    #: What the test calls what ``minimal_run`` returns (the name its invariant's assertion reads).
    subject: str = "attempt"
    #: What an invariant of ``invariants`` and a finding's ``explains_violation`` take of a run and the model's
    #: observation of it, as two argument tuples: ``(run, observed)`` both, as the one-try invariants take them.
    judged: Callable = lambda run, observed: ((run, observed), (run, observed))


def _model_supervisor(scenario: Scenario, release: Release):
    from model import supervisor

    return supervisor.run(scenario, release)


def _model_runtime(run, release: Release):
    from model.runtime import python_runtime

    return python_runtime(run, release)


def _parse_try(text: str):
    from model.runtime import RuntimeRun

    return RuntimeRun.from_text(text)


#: The task-sdk release from which the harness's real Execution API (``ExecutionAPIServer``) answers the client: before
#: it the client sends its bodies with no content type, refused 422 by the app in process (measured on 1.0.3-1.1.1).
SERVER_SINCE = "1.1.2"
_SERVER_SKIPPED = "that release's client sends its bodies with no content type, which the Execution API app refuses"
#: Where a module on the real Execution API belongs in Airflow: airflow-core's tests of the app.
SERVER_PLACE = ("airflow-core/tests/unit/api_fastapi/execution_api/ (it serves apache-airflow-core's Execution API app "
                "in process on a migrated SQLite database, as those tests do through their conftest)")

KINDS: dict[str, ExportKind] = {
    "supervisor": ExportKind(Scenario.from_text, _model_supervisor, _supervisor_described, _unsupported_scenario,
                             _supervisor_imports, _supervisor_body, "airflow-inproc", "model.invariants",
                             ("common", "supervisor")),
    "runtime": ExportKind(_parse_try, _model_runtime, _runtime_described, _unsupported_try, _runtime_imports,
                          _runtime_body, "airflow-task-runner", "model.runtime_invariants", ("common", "runtime")),
    "wire": ExportKind(_parse_wire, None, None, lambda finding, script: None, lambda script: [], _wire_body,
                       "airflow-process", None, ("common", "wire"),
                       place="task-sdk/tests/task_sdk/execution_time/ (it forks the task process, as "
                             "test_supervisor.py's tests of ActivitySubprocess.start do)"),
    # A supervisor finding whose cause is the Execution API's own answer: its run against the real app.
    "server": ExportKind(Scenario.from_text, _model_supervisor, _supervisor_described, _unsupported_on_the_server,
                         _supervisor_imports, _server_body, "airflow-inproc", "model.invariants",
                         ("common", "supervisor", "server"), "apache-airflow-task-sdk, apache-airflow-core",
                         SERVER_PLACE, SERVER_SINCE, _SERVER_SKIPPED),
    # A wire finding of the supervisor that launches a runtime command (``_PopenActivitySubprocess``, 1.3.0 on).
    "launcher": ExportKind(Scenario.from_text, None, None, _unsupported_launch, lambda scenario: [], _launch_body,
                           "airflow-process", None, ("common", "launcher"),
                           place="task-sdk/tests/task_sdk/execution_time/ (it launches a runtime command, as the "
                                 "coordinators' tests of _PopenActivitySubprocess do)", since="1.3.0",
                           skipped_before="the supervisor that launches a runtime command came in 1.3.0"),
    # A finding across tries: its life on the real Execution API's row, the scheduler's step between tries.
    "lifecycle": ExportKind(_parse_life, _model_life, _life_described, _unsupported_life, _life_imports, _life_body,
                            _life_target, "model.lifecycle", _life_sections,
                            "apache-airflow-task-sdk, apache-airflow-core", SERVER_PLACE, SERVER_SINCE, _SERVER_SKIPPED,
                            "life",
                            lambda run, life: ((life,), (life, None))),
}
#: The most retries a task of the harness's real server has (its DAGs ``exported_r0`` .. ``exported_r3``).
RETRIES_MAX = 3
#: Supervisor findings exported as their run against the real Execution API (kind ``server``), not a stand-in.
_ON_THE_REAL_SERVER = ("F13",)
#: Wire findings of the supervisor that launches a runtime command (kind ``launcher``).
_OF_THE_LAUNCHER = ("W4",)


def kind_of(finding: Finding) -> str:
    """The kind of module ``finding`` is exported as: its registry kind, but ``server`` for a supervisor finding of
    the Execution API itself (``_ON_THE_REAL_SERVER``), ``launcher`` for a wire finding of the command launcher."""
    if finding.id in _ON_THE_REAL_SERVER:
        return "server"
    return "launcher" if finding.id in _OF_THE_LAUNCHER else finding.kind


def _also_failing(finding: Finding) -> list[str]:
    """A paragraph naming the releases where ``finding`` does not stand but its run breaks the invariant all the
    same, by another finding's cause (``other_causes``): its test fails there too, and that other test says why."""
    from packaging.version import Version

    from impl.releases.environments import RELEASES

    first = Release.parse(KINDS[kind_of(finding)].since or EARLIEST).version  # the first release its module runs on
    known = [r for r in sorted(RELEASES, key=Version) if Release.parse(r).version >= first]
    by_cause: dict[tuple[str, ...], list[int]] = {}
    for at, name in enumerate(known):
        release = Release.parse(name)
        if not finding.stands_on(release):
            others = other_causes(finding, release)
            if others:
                by_cause.setdefault(others, []).append(at)
    return [f"On task-sdk {_span([known[i] for i in at], contiguous=at == list(range(at[0], at[-1] + 1)))} this run "
            f"breaks the invariant all the same, by the cause of {' and '.join(others)} (see its test): this test "
            "fails there until that is fixed." for others, at in by_cause.items()]


def _span(names: list[str], contiguous: bool) -> str:
    return f"{names[0]} to {names[-1]}" if contiguous and len(names) > 2 else ", ".join(names)


def _event(event) -> str:
    """One scenario event as the harness's event tuple, a frame as its ``comms`` class."""
    if isinstance(event, Fault):
        return f"({'fault'!r}, {event.call!r}, {event.kind!r})"
    if isinstance(event, Heartbeat):
        return f"('heartbeat', {event.answer})"
    if isinstance(event, Overtime):
        return "('overtime',)"
    if isinstance(event, UserAction):  # a mark (_unsupported_scenario)
        return f"('user', {event.action!r}, {event.state!r})"
    return f"('send', {_frame(event)})"


def _frame(send: Send) -> str:
    """The frame as the Python task runner builds it (``codec.terminal_body``), fields at their defaults left out."""
    body = codec.terminal_body(send.frame, send.state)
    fields = {k: v for k, v in body.items() if k != "type" and v is not None and (k != "state" or send.frame == "TaskState")}
    args = ", ".join(f"{k}={'NOW' if k.endswith('_date') else repr(v)}" for k, v in fields.items())
    return f"{send.frame}({args})"


# -- the check: every module on every release, in environments without finalstate --------------------------------

def other_causes(finding: Finding, release: Release) -> tuple[str, ...]:
    """The findings other than ``finding`` standing on ``release`` whose cause breaks ``finding``'s invariant in its
    run there, as finalstate's model of that release has it (F2's for F15's run before 1.4.0, say). Where ``finding``
    does not stand, the matrix excuses such a failure of its run (``properties.conftest.assert_reproduces``)."""
    import importlib

    from impl.catalogue.findings import findings_on

    kind = KINDS[kind_of(finding)]
    if kind.model_run is None:
        return ()
    run = kind.parse(finding.scenario)
    observed = kind.model_run(run, release)
    checked, explained = kind.judged(run, observed)
    if not getattr(importlib.import_module(kind.invariants), finding.invariant)(*checked):
        return ()
    target = kind.target(run) if callable(kind.target) else kind.target
    return tuple(f.id for f in findings_on(finding.kind, target, finding.invariant, release=release)
                 if f.id != finding.id and f.explains_violation(finding.invariant, *explained))


def expected_outcome(finding: Finding, release: Release) -> str:
    """What the matrix says of ``finding``'s test on ``release``: ``skipped`` where no task of that release can have
    its run (a retry policy before 1.3.0); ``fails`` where it stands; where it does not, ``passes``, or ``fails by
    F2`` where another finding standing there breaks the same invariant in its run."""
    since = KINDS[kind_of(finding)].since if kind_of(finding) in KINDS else None
    if since is not None and release.version < Release.parse(since).version:
        return "skipped"
    if finding.kind == "runtime":
        from model.runtime import impossible_on

        if impossible_on(KINDS["runtime"].parse(finding.scenario), release):
            return "skipped"
    if finding.stands_on(release):
        return "fails"
    others = other_causes(finding, release)
    return f"fails by {', '.join(others)}" if others else "passes"


@attrs.frozen
class Row:
    """One finding on one release: what its test did (``fails``, ``passes``, or ``error: ...``) and what the
    matrix says (``expected_outcome``)."""

    finding: str
    release: str
    outcome: str
    expected: str

    @property
    def agrees(self) -> bool:
        return self.outcome == self.expected.split(" by ")[0]

    @property
    def cell(self) -> str:
        return self.expected if self.agrees else f"**{self.outcome}** ✗ (matrix: {self.expected})"


class CheckFailed(RuntimeError):
    """The modules could not be run on a release (no environment, finalstate importable there, pytest overran)."""


def clean_python_for(release: str) -> Path:
    """The python of an environment with ``release`` (its apache-airflow-core, as ``RELEASES`` pairs them) and
    pytest, and nothing of finalstate; built once with uv under ``build/export-envs``."""
    from impl.releases.environments import RELEASES, UnknownRelease, _prerelease, _uv

    known = RELEASES.get(release)
    if known is None:
        raise UnknownRelease(f"unknown task-sdk release {release!r}; known: {', '.join(RELEASES)}")
    if Release.parse(release).version < Release.parse(EARLIEST).version:
        raise CheckFailed(f"the exported modules drive task-sdk {EARLIEST} and later, not {release}")
    env = CLEAN_ENVS / release
    python = env / "bin" / "python"
    stamp = env / "export-stamp"
    wanted = " ".join(known.requirements + ("pytest",))
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(env, ignore_errors=True)
    _uv(release, "venv", "--quiet", "--python", str(Path(os.path.realpath(_base_python()))), str(env))
    args = ["pip", "install", "--python", str(python), "--link-mode", "hardlink",
            *(["--prerelease", "allow"] if _prerelease(release) else []), *known.requirements, "pytest"]
    if known.overrides_core_pin:
        (env / "overrides.txt").write_text(f"apache-airflow-task-sdk=={known.version}\n")
        args += ["--overrides", str(env / "overrides.txt")]
    _uv(release, *args)
    stamp.write_text(wanted)
    return python


def _base_python() -> str:
    import sys

    return getattr(sys, "_base_executable", sys.executable)


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _require_no_finalstate(python: Path, cwd: str) -> None:
    probe = "import importlib.util as u, sys; sys.exit(1 if any(u.find_spec(m) for m in ('finalstate', 'impl', 'model')) else 0)"
    if subprocess.run([str(python), "-c", probe], cwd=cwd, env=_clean_environ(), timeout=60).returncode:
        raise CheckFailed(f"{python}: finalstate (impl or model) is importable there; the check needs an environment "
                          "without it")


def run_modules(out: Path, release: str) -> dict[str, str]:
    """Run pytest on the modules in ``out`` in ``release``'s clean environment, from a directory outside this
    checkout: each module's outcome (``fails``/``passes``/``error: ...``) by its file name."""
    python = clean_python_for(release)
    with tempfile.TemporaryDirectory(prefix="finalstate-export-") as cwd:
        _require_no_finalstate(python, cwd)
        junit = Path(cwd) / "junit.xml"
        command = [str(python), "-m", "pytest", str(out.resolve()), "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", "-o", "junit_family=xunit2"]
        process = subprocess.Popen(command, cwd=cwd, env=_clean_environ(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=CHECK_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.communicate()
            raise CheckFailed(f"pytest of the exported modules on {release} ran over {CHECK_TIMEOUT_SECONDS}s") from None
        if not junit.exists():
            raise CheckFailed(f"pytest of the exported modules on {release} wrote no report:\n{output[-2000:]}")
        return _outcomes(junit)


def _outcomes(junit: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        # A module skipped as it is collected (``pytest.importorskip``) is a case with no classname, named by it.
        module = (case.get("classname") or case.get("name", "")).rsplit(".", 1)[-1] + ".py"
        if case.find("failure") is not None:
            outcomes[module] = "fails"
        elif case.find("error") is not None:
            outcomes[module] = "error: " + (case.find("error").get("message") or "")[:80]
        elif case.find("skipped") is not None:
            outcomes[module] = "skipped"
        else:
            outcomes[module] = "passes"
    return outcomes


def check(out: Path, releases: tuple[str, ...]) -> tuple[Row, ...]:
    """Every module in ``out`` (an exported finding's) on every release: its outcome against the registry's."""
    order = {f.id: i for i, f in enumerate(ALL_FINDINGS)}
    found = {m.name: find(_finding_id(m.name)) for m in out.glob("test_*.py")}
    modules = dict(sorted(found.items(), key=lambda item: order[item[1].id]))
    if not modules:
        raise CheckFailed(f"no exported modules in {out}; run finalstate export --out {out} first")
    from impl.releases.environments import RELEASES, UnknownRelease

    unknown = [r for r in releases if r not in RELEASES]
    if unknown:  # before any environment is built or any module run
        raise UnknownRelease(f"unknown task-sdk release(s) {', '.join(unknown)}; known: {', '.join(RELEASES)}")
    rows = []
    for release in releases:
        outcomes = run_modules(out, release)
        for name, finding in modules.items():
            rows.append(Row(finding.id, release, outcomes.get(name, "error: not run"),
                            expected_outcome(finding, Release.parse(release))))
    return tuple(rows)


def _finding_id(module: str) -> str:
    match = re.match(r"test_([a-z]\d+)_", module)
    if match is None:
        raise UnknownFinding(f"{module} is not an exported module's name (test_<finding>_<invariant>.py)")
    return match.group(1).upper()


def table(rows: tuple[Row, ...]) -> str:
    """The findings × releases table: each cell the test's outcome (``fails by F2``: another finding's cause, which the
    matrix excuses), marked ✗ with the matrix's word where they disagree."""
    releases = list(dict.fromkeys(r.release for r in rows))
    findings = list(dict.fromkeys(r.finding for r in rows))
    cell = {(r.finding, r.release): r for r in rows}
    lines = ["| finding | " + " | ".join(releases) + " |", "|---|" + "---|" * len(releases)]
    for f in findings:
        lines.append(f"| {f} | " + " | ".join(cell[(f, release)].cell for release in releases) + " |")
    agreeing = sum(r.agrees for r in rows)
    lines.append("")
    lines.append(f"{agreeing} of {len(rows)} cells agree with the matrix (fails where the finding stands; where it "
                 "does not, passes, or fails by another finding standing there)")
    return "\n".join(lines)
