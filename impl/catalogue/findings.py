"""Findings: invariants the pinned apache-airflow-task-sdk release really breaks.

Each was found by the checker (``finalstate findings`` reruns the search and writes the
report); the scenario kept here is the minimal one it shrank to. While a finding stands,
its invariant's property is a strict expected failure on the targets listed. The report and
the properties both read this table; a new finding is one more row in it.
"""

from __future__ import annotations

import fnmatch
from typing import Callable

import attrs

from model.client import as_seen, requests
from model.intent import (INTENT, OPEN_QUESTION, POLICY_FALLS_BACK, RETRY_DECISION_DELAY, RETRY_DELAY_PARAMETER,
                          Intent, Source)
from model.invariants import frames_received, last_terminal_frame, outcome_calls, user_acted
from model.release import SPECIFIED, Release
from model.runtime import NEVER_RETRIED_FAILURES, TERMINAL_FRAMES, reached_outcome
from model.runtime_invariants import SYS_EXIT_WITHOUT_AN_ERROR_CODE
from model.scenario import (FAILED, HEARTBEAT_GONE, RUNNING, SERVER_TERMINATED, SUCCESS, TIMEOUT, UP_FOR_RETRY, Observation, Overtime,
                            Scenario)
from model.server import CONFLICT

SUPERVISOR_TARGETS = ("model", "airflow-inproc", "airflow-process")


@attrs.frozen
class Finding:
    """``scenario`` is in the text form of what ``kind`` of property found it: a supervisor
    ``Scenario`` (``supervisor``), a ``model.runtime.RuntimeRun`` (``runtime``), a
    ``CoordinatorRun`` (``coordinator``), or a lifecycle trace (``lifecycle``)."""

    id: str
    invariant: str
    scenario: str
    headline: str
    upstream: str
    targets: tuple[str, ...] = SUPERVISOR_TARGETS
    kind: str = "supervisor"
    #: The cause, as a predicate on a run and its observation: true when a violation is this known bug.
    #: None: the finding explains no violation but its own (its property stays a strict expected failure).
    signature: Callable[[object, object], bool] | None = attrs.field(default=None, eq=False)
    #: The invariants this cause breaks; ``invariant`` first.
    also_breaks: tuple[str, ...] = ()
    #: The task-sdk release that fixed it (its apache-airflow-core with it), None while it stands. From that
    #: release on its run must no longer break the invariant (a regression test), and its signature explains nothing.
    fixed_in: str | None = None
    #: The task-sdk release that brought it (None: every release checked has it, from 1.0.0); before it, as from
    #: ``fixed_in`` on, its run must not break the invariant. Newer than the pinned release for a pre-release's new bug.
    introduced_in: str | None = None
    #: What was established beyond the minimal run (on the real server, in the SDKs' sources), in Markdown: the
    #: report prints it under the finding.
    details: str = ""
    #: How sure this finding is, where its invariant's intent (``model.intent.INTENT``) is not enough to say: its own
    #: ``Intent`` (sources, confidence, the other reading). None: its invariant's.
    intent: Intent | None = None
    #: The SDK profiles (``model.sdks.PROFILES``) a coordinator finding holds for: it is about every coordinator target
    #: declared to be one of them (``--profile NAME``), beside the ``targets`` it names.
    profiles: tuple[str, ...] = ()

    @property
    def how_sure(self) -> Intent:
        """The intent this finding's confidence rests on: its own, else its invariant's."""
        return self.intent or INTENT[self.invariant]

    @property
    def confidence(self) -> str:
        """One of ``model.intent.CONFIDENCES``."""
        return self.how_sure.confidence

    #: The invariants this finding's cause breaks: ``invariant`` and ``also_breaks``.
    explains: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    @explains.default
    def _every_invariant_broken(self) -> tuple[str, ...]:
        return (self.invariant, *self.also_breaks)

    @property
    def shown_on(self) -> str | None:
        """A release to show a finding that does not stand on the pinned one: the first it came in, or the last
        before its fix (``impl.releases.environments.release_standing_for``); None for one that stands there."""
        if self.stands_on(SPECIFIED):
            return None
        from impl.releases.environments import release_standing_for

        return release_standing_for(self.introduced_in, self.fixed_in)

    def stands_on(self, release: Release) -> bool:
        """Whether the bug is there on ``release`` (a ``model.release.Release``): brought by then, not yet fixed."""
        brought = self.introduced_in is None or release.version >= Release.parse(self.introduced_in).version
        return brought and (self.fixed_in is None or release.version < Release.parse(self.fixed_in).version)

    def about(self, target: str, profile: str | None = None) -> bool:
        """Whether this finding is about ``target`` (or pairing): named in ``targets``, or matching one of its
        patterns (``cmd:*``: every coordinator-mode program a user points the checker at), or declared to be the SDK
        profile ``profile``, one it holds for (``profiles``)."""
        return (profile is not None and profile in self.profiles
                or any(fnmatch.fnmatchcase(target, pattern) for pattern in self.targets))

    def explains_violation(self, invariant: str, run, observation) -> bool:
        """Is a violation of ``invariant`` in this run this finding (its cause), not another bug?"""
        return self.signature is not None and invariant in self.explains and self.signature(run, observation)


_CLOSE = "ActivitySubprocess.update_task_state_if_needed (with STATES_SENT_DIRECTLY)"
#: The supervisor's calls that report a terminal frame directly (``_send_terminal_state_msg``).
_DIRECT_CALLS = ("succeed", "retry", "defer", "reschedule", "await_input")


def how_sure_in_words(finding: Finding) -> str:
    """The finding's confidence and what it rests on, in one paragraph the report and the exported module both print:
    the sources quoted; for an open question, both readings."""
    stated = finding.how_sure

    def quoted(sources: tuple[Source, ...]) -> str:
        return "; ".join(s.to_text() for s in sources)

    if stated.confidence != OPEN_QUESTION:
        return f"{stated.confidence}: {quoted(stated.sources)}."
    read_so = f"read one way, {quoted(stated.sources)}" if stated.sources else "no Airflow text says so"
    return (f"{stated.confidence}: {read_so}; read the other way, {quoted(stated.contested_by)}."
            + (f" {stated.note}" if stated.note else ""))


def _seen(s: Scenario, o: Observation):
    """The calls as the supervisor saw them: each request's last try (``model.client.as_seen``)."""
    return as_seen(o.calls, s.execution_api_retries)


def _ok(s: Scenario, o: Observation, *names: str) -> bool:
    return any(c.name in names and c.status == 200 for c in _seen(s, o))


def _left_running_by_skip(state: str):
    """F1/F2's cause: ``state`` is in STATES_SENT_DIRECTLY, yet no direct call delivered it: no call at all."""
    def signature(s: Scenario, o: Observation) -> bool:
        return (o.final_state == state and o.row == RUNNING and o.row_gone is None
                and not any(c.name in (*_DIRECT_CALLS, "finish") for c in _seen(s, o)))
    return signature


def _failed_finish(s: Scenario, o: Observation) -> bool:
    """F3's cause: the closing finish() failed, and nothing retries it."""
    return o.row == RUNNING and any(c.name == "finish" and c.status != 200 for c in _seen(s, o))


def _delivered_then_nonzero_exit(overtime: bool):
    """F4/F7's cause: a direct call delivered a terminal state, then a non-zero exit (the overtime kill
    for F4, the process's own for F7) makes final_state ignore it."""
    def signature(s: Scenario, o: Observation) -> bool:
        killed_by_overtime = o.exit_code == -15 and any(isinstance(e, Overtime) for e in s.events)
        return (o.exit_code != 0 and killed_by_overtime == overtime and _ok(s, o, *_DIRECT_CALLS)
                and o.row_gone is None and o.row != o.final_state)
    return signature


def _failed_call_reached_the_server(s: Scenario, o: Observation) -> bool:
    """F5's cause: a direct call the supervisor counted as failed still moved the row (its replay at close
    delivered it, or the server applied it and the answer was lost), and final_state looks only at the exit."""
    return (o.exit_code != 0 and o.row_gone is None and o.row not in (RUNNING, o.final_state)
            and any(c.name in _DIRECT_CALLS and c.status != 200 for c in _seen(s, o)))


def _terminal_frame_after_delivery(s: Scenario, o: Observation) -> bool:
    """F10's cause: after a direct call delivered a terminal state, a later terminal frame was taken too."""
    terminal = [f for f in frames_received(s, o) if f.frame in TERMINAL_FRAMES]
    return _ok(s, o, *_DIRECT_CALLS) and len(terminal) >= 2


def _refused_after_lost_answer(s: Scenario, o: Observation) -> bool:
    """F11's cause: the server applied a direct call whose answer was lost (a try timed out), and the supervisor
    counted the call failed (the request's answer, its last try, is that timeout or a failed resend); a later call for
    another transition meets the moved row and is refused 409. (The same call again, refused for asking the state the
    row already holds, is F13's.)"""
    asked = requests(o.calls, s.execution_api_retries)
    lost = next((i for i, tried in enumerate(asked) if tried[0].name in _DIRECT_CALLS and tried[-1].status != 200
                 and any(t.status == TIMEOUT for t in tried)), None)
    if lost is None:
        return False
    applied = asked[lost][0]
    return any(r[-1].status == CONFLICT and r[-1].name not in ("heartbeat", applied.name) for r in asked[lost + 1:])


def _replay_failed(s: Scenario, o: Observation) -> bool:
    """F9's cause: the last direct call failed (its replay at close, as the supervisor saw it) and nothing else
    reports the end: no finish(), and final_state reads only the exit code (the row then differs from it, unless a
    user moved it). Not F12's archived retry."""
    direct = [c for c in _seen(s, o) if c.name in _DIRECT_CALLS]
    return (bool(direct) and direct[-1].status != 200 and not any(c.name == "finish" for c in o.calls)
            and o.row_gone is None and (o.row != o.final_state or user_acted(s)) and not _applied_retry_refused(s, o))


def _applied_retry_refused(s: Scenario, o: Observation) -> bool:
    """F12's cause: the server applied a retry (row UP_FOR_RETRY, the try archived under a new TI id), yet the
    supervisor saw the call fail (answer lost, then 404 for the old id) and reported something else."""
    return (o.row == UP_FOR_RETRY and o.row_gone is None and o.final_state != UP_FOR_RETRY
            and any(c.name == "retry" and c.status == 404 for c in o.calls))


def _retry_without_should_retry(s: Scenario, o: Observation) -> bool:
    """F6's cause: RetryTask is forwarded although the server said should_retry=false."""
    return not s.context.should_retry and any(c.name == "retry" for c in o.calls)


def _replay_after_server_terminated(s: Scenario, o: Observation) -> bool:
    """F8's cause: after a heartbeat the server refused (404/409/410), the pending call's replay still ran."""
    gone = next((i for i, c in enumerate(o.calls) if c.name == "heartbeat" and c.status in HEARTBEAT_GONE), None)
    return gone is not None and any(c.name in _DIRECT_CALLS for c in o.calls[gone + 1:])

def _resend_refused(s: Scenario, o: Observation) -> bool:
    """F13's cause: a call whose answer was lost is sent again (a later try of the client's, or the supervisor's
    replay) and refused with 409, the server having applied the first."""
    return any(a.name != "heartbeat" and a.status == TIMEOUT
               and any(b.name == a.name and b.state == a.state and b.status == CONFLICT for b in o.calls[i + 1:])
               for i, a in enumerate(o.calls))


def _escaped_wait(s: Scenario, o: Observation) -> bool:
    """F14's cause: a transport error out of a request's handling left ``wait()`` before it saw the exit."""
    return o.exit_code is None and o.raised == "ReadTimeout"


def _held_state_delivered_against_the_exit(s: Scenario, o: Observation) -> bool:
    """F15's cause: the state a TaskState held reached the row by its own finish() (answered, or applied with the
    answer lost) whatever the exit, and final_state read the non-zero exit."""
    return (o.exit_code not in (0, None) and o.row_gone is None and o.row != o.final_state
            and any(c.name == "finish" and c.state == o.row for c in o.calls))


_F11_DETAILS = """\
On the real Execution API (apache-airflow-core 3.3.2, SQLite, Airflow's default five tries of each request):
`finalstate replay --server airflow --target airflow-inproc 'try_number=1 max_tries=1 should_retry=true; fault succeed
lost; fault succeed permanent; send SucceedTask; send RetryTask; exit 0'` records `PATCH .../state` (succeed) answered
204 by the server with the answer lost, four resends 500 (never reaching the app), then `PATCH .../state` (retry) 409
twice (the RetryTask, then its replay at close); the row stays `success`, the runtime was told `error` twice. The same
with DeferTask as the second frame, and with exits 1 and -9 (then the attempt is also reported `up_for_retry` while
the row is `success`), confirmed alike (`impl/findings/confirm.py`). Under `execution_api_retries=1` the lost answer
alone does it (`fault reschedule lost; send RescheduleTask; send SucceedTask`); with the default retries and no later
failure, the client's resend is answered 200 (core 3.3.0 on; 409 before, which is F13).

Which runtimes send a second terminal frame after their first was refused, read from their sources: **none of
Airflow's own.** The Python task runner sends one terminal frame, from `task_runner.run`'s `finally` (as read in
1.0.0, 1.2.2, 1.3.2 and 1.4.0b2); when that send raises for SUCCESS it logs the error and `main` exits 0 after `finalize` (the
supervisor's replay at close is then the only further call, answered alike); for FAILED and UP_FOR_RETRY it exits 1
(since 1.2.2). The Go SDK never reads the answer to its terminal frame (C1), the Java SDK throws on an error answer and
its JVM exits 1, the TypeScript SDK does not read it. So the run needs a runtime of its own that reports again after
being told its outcome failed (the `cmd:` contract asks it to exit instead, `runtimes/README.md`); the supervisor
forwards that frame to a row it could have known had moved.
"""


def _refused_after_a_user_moved_it(s: Scenario, o: Observation) -> bool:
    """F18's cause: a user moved the TI, an outcome's call was refused 409, and the supervisor reported otherwise."""
    return (user_acted(s) and o.final_state != SERVER_TERMINATED
            and any(c.status == CONFLICT for c in outcome_calls(s, o)))


def _crash_recorded_failed(s: Scenario, o: Observation) -> bool:
    """F19's cause: final_state took the non-zero exit for FAILED although the server said should_retry."""
    return o.exit_code not in (0, None) and s.context.should_retry and o.final_state == FAILED


#: The terminal frames that do not start the success-overtime clock (``_task_end_time_monotonic``).
_FRAMES_WITHOUT_OVERTIME = ("DeferTask", "RescheduleTask", "AwaitInputTask")


def _hung_after(frames: tuple[str, ...]):
    """F16/F17's cause: the attempt never ended though the task did, its last terminal frame one of ``frames``."""
    def signature(s: Scenario, o: Observation) -> bool:
        last = last_terminal_frame(s, o)
        return o.hung and last is not None and last.frame in frames
    return signature


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "F1", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false; exit 0",
        "a runtime that exits 0 without a terminal frame is reported SUCCESS but the TI stays RUNNING",
        f"{_CLOSE}: final_state falls back to SUCCESS, which is in STATES_SENT_DIRECTLY, so neither "
        "succeed() nor finish() is called",
        signature=_left_running_by_skip(SUCCESS), also_breaks=("server_row_agrees_with_final_state",),
    ),
    Finding(
        "F2", "no_task_instance_left_running",
        "try_number=1 max_tries=1 should_retry=true; exit -9",
        "a task that crashes or is killed while should_retry is reported UP_FOR_RETRY but the TI stays RUNNING",
        f"{_CLOSE}: final_state is UP_FOR_RETRY from the exit code, which is in STATES_SENT_DIRECTLY, "
        "so no retry() or finish() call is made (the comment there says finish() should handle it)",
        signature=_left_running_by_skip(UP_FOR_RETRY), also_breaks=("server_row_agrees_with_final_state",),
        # A kill (exit -9: the OOM killer's SIGKILL) is UP_FOR_RETRY from 1.1.2, any non-zero exit from 1.1.4
        # (Release.retries_after_exit); before 1.1.2 both are FAILED, which finish() reports. So the kill is the run
        # that stands on every release the bug is on: the search shrinks to it on 1.1.2-1.1.3, to exit 1 from 1.1.4.
        introduced_in="1.1.2",
    ),
    Finding(
        "F3", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault finish transient; exit 1",
        "one failed closing finish() leaves the TI RUNNING and wait() raises (the client's one try under "
        "execution_api_retries=1; under the default five, finish() must fail five times: a permanent fault)",
        f"{_CLOSE}: only direct calls are kept pending and replayed; a failed finish() is not retried "
        "by the supervisor (the client's own retries are assumed spent)",
        signature=_failed_finish, also_breaks=("server_row_agrees_with_final_state",),
    ),
    Finding(
        "F4", "no_second_transition",
        "try_number=1 max_tries=0 should_retry=false; send SucceedTask; overtime; exit 0",
        "the success-overtime kill turns a recorded SUCCESS into finish(FAILED), refused with 409, and wait() raises",
        "ActivitySubprocess._handle_process_overtime_if_needed kills with SIGTERM; final_state then ignores "
        "the delivered SUCCESS because the exit code is non-zero",
        signature=_delivered_then_nonzero_exit(overtime=True), also_breaks=("server_row_agrees_with_final_state",),
    ),
    Finding(
        "F5", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault succeed transient; send SucceedTask; exit 1",
        "a replayed SucceedTask makes the row SUCCESS while final_state says FAILED (likewise any terminal call the "
        "supervisor counted as failed that still reached the server: replayed, or applied with its answer lost)",
        "ActivitySubprocess._replay_pending_terminal_state_msg succeeds on the server, but final_state "
        "looks only at the non-zero exit (the Python task runner's fail-closed exit after a failed send)",
        signature=_failed_call_reached_the_server,
        # The replay came in 1.2.2 (Release.keeps_an_undelivered_outcome); before, the failed call is forgotten and
        # finish(FAILED) reports the exit.
        introduced_in="1.2.2",
    ),
    Finding(
        "F6", "retries_within_budget",
        "try_number=1 max_tries=0 should_retry=false; send RetryTask; exit 0",
        "a RetryTask frame is forwarded even when should_retry is false, so the TI retries past max_tries",
        "ActivitySubprocess._handle_request / _send_terminal_state_msg forward RetryTask without checking "
        "the should_retry the server gave at start (and the server's retry branch does not re-check it)",
        signature=_retry_without_should_retry,
    ),
    Finding(
        "F7", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false; send SucceedTask; exit 1",
        "a process that fails after its SucceedTask was recorded is reported FAILED while the row is SUCCESS",
        "ActivitySubprocess.final_state: on a non-zero exit the delivered terminal state is ignored; "
        "the closing finish(FAILED) is then refused with 409 and wait() raises",
        signature=_delivered_then_nonzero_exit(overtime=False), also_breaks=("no_second_transition",),
    ),
    Finding(
        "F8", "server_terminated_wins",
        "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault reschedule lost; send RescheduleTask; heartbeat 200; exit 0",
        "a heartbeat refused with 409 kills the task as SERVER_TERMINATED, then the replay of a terminal call "
        "whose answer was lost overwrites SERVER_TERMINATED, and the attempt is reported FAILED",
        "ActivitySubprocess.update_task_state_if_needed replays _pending_terminal_state_msg; "
        "_send_terminal_state_msg sets _terminal_state on success, replacing SERVER_TERMINATED; final_state "
        "then sees a non-zero exit",
        signature=_replay_after_server_terminated, also_breaks=("server_row_agrees_with_final_state",),
        fixed_in="1.4.0",  # apache/airflow#73249: a held SERVER_TERMINATED is final, nothing replayed over it
        # Before 1.2.2 the lost answer escapes wait() (F14); in 1.2.2 the replay is refused 409 by the server, which
        # takes a repeated state only from core 3.3.0 (Release.accepts_repeated_state): SERVER_TERMINATED stands.
        introduced_in="1.3.0",
    ),
    Finding(
        "F9", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false; fault succeed permanent; send SucceedTask; exit 0",
        "a terminal call that keeps failing (its replay at close too) leaves the TI RUNNING, and the attempt is "
        "reported as the exit code alone says (here SUCCESS, even after a RetryTask); wait() returns normally",
        "ActivitySubprocess.update_task_state_if_needed: once _replay_pending_terminal_state_msg has run (and "
        "swallowed its failure) it returns without finish(); final_state then reads only the exit code",
        signature=_replay_failed,
        also_breaks=("server_row_agrees_with_final_state", "failure_never_recorded_as_success"),
    ),
    Finding(
        "F10", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false; send SucceedTask; send TaskState failed; exit 0",
        "a terminal frame after one already delivered is taken as well: a TaskState replaces the delivered state "
        "(row SUCCESS, reported FAILED, finish refused with 409, wait() raises); a direct frame is forwarded and "
        "refused with 409",
        "ActivitySubprocess._handle_request sets _terminal_state for every TaskState (and _send_terminal_state_msg "
        "for every direct frame) without asking whether a terminal state was already delivered",
        signature=_terminal_frame_after_delivery, also_breaks=("no_second_transition",),
    ),
    Finding(
        "F11", "no_second_transition",
        "try_number=1 max_tries=1 should_retry=true; fault succeed lost; fault succeed permanent; send SucceedTask; "
        "send RetryTask; exit 0",
        "a terminal call the server applied is counted failed when its answer is lost and the client's resends fail "
        "too (or, under execution_api_retries=1, when its one answer is lost): the runtime is told its outcome "
        "failed, and the next terminal frame it sends is forwarded to a row that already moved and refused with 409 "
        "(with Airflow's default client retries, on the real server too)",
        "ActivitySubprocess._send_terminal_state_msg keeps a call that raised pending as if nothing of it had reached "
        "the server (the client's tries are hidden from it), answers the runtime with an error, and forwards the "
        "runtime's next terminal frame without asking the server what it holds",
        signature=_refused_after_lost_answer, also_breaks=("server_row_agrees_with_final_state",),
        details=_F11_DETAILS,
    ),
    Finding(
        "F12", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=0 should_retry=false; fault retry lost; send RetryTask; exit 1",
        "a RetryTask whose answer is lost was applied: the retry archived the try under a new TI id, so the "
        "client's resend (and since 1.2.2 the supervisor's replay) is refused 404; the attempt is then reported by "
        "its exit (FAILED here; SUCCESS after exit 0 from 1.2.2) while the row is UP_FOR_RETRY (with Airflow's "
        "default client retries, on the real server too)",
        "ActivitySubprocess._send_terminal_state_msg / _replay_pending_terminal_state_msg resend a retry to the "
        "TI id the retry itself archived, and take the 404 for a failed call; final_state then reads the exit code",
        signature=_applied_retry_refused, also_breaks=("failure_never_recorded_as_success",),
        # The exit 1 is reported FAILED on every release before 1.4.0 (an exit 0 only from 1.2.2: before, the state is
        # held from the call on, Release.holds_an_undelivered_outcome); 1.4.0 keeps the held UP_FOR_RETRY over a
        # failed exit (Release.keeps_over_a_failed_exit, apache/airflow#73249).
        fixed_in="1.4.0",
    ),
    Finding(
        "F13", "no_second_transition",
        "try_number=1 max_tries=0 should_retry=false; fault defer lost; send DeferTask; exit 0",
        "a terminal call whose answer is lost is sent again (the client's retry, then the supervisor's replay) and "
        "refused with 409 by a server that applied it: the attempt is reported SUCCESS while the row is DEFERRED "
        "(with Airflow's default client retries; fixed with apache-airflow-core 3.3.0)",
        "the Execution API's ti_update_state (apache-airflow-core before 3.3.0) refuses any update of a row that is "
        "not RUNNING, the state it already holds included; ActivitySubprocess._send_terminal_state_msg then counts "
        "the call failed and final_state reads the exit code",
        signature=_resend_refused, also_breaks=("server_row_agrees_with_final_state",), fixed_in="1.3.0",
        details="""\
Seen on 1.2.2 (apache-airflow-core 3.2.2) on the real Execution API, SQLite, the client's default retries
(`finalstate replay --release 1.2.2 --server airflow --target airflow-inproc '...'`): the first `PATCH .../state`
[defer] is applied (the server answered 204, the answer lost), its resend and the replay are answered 409, the row
ends `deferred`, the attempt `success`.
""",
    ),
    Finding(
        "F14", "no_task_instance_left_running",
        "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; send TaskState failed; "
        "fault skip_downstream_tasks lost; send SkipDownstreamTasks; exit 1",
        "a request whose answer never came (a transport error, not an error status) escapes wait() before it has "
        "seen the process exit: no final state, no closing call, the TI stays RUNNING (under "
        "execution_api_retries=1; fixed in 1.2.2)",
        "ActivitySubprocess.handle_requests answers only a ServerResponseError with an error reply; any other "
        "exception from _handle_request ends the request generator and leaves _monitor_subprocess, so wait() raises",
        signature=_escaped_wait, also_breaks=("server_row_agrees_with_final_state",), fixed_in="1.2.2",
    ),
    Finding(
        "F15", "server_row_agrees_with_final_state",
        "try_number=1 max_tries=1 should_retry=true; send TaskState failed; exit -9",
        "a TaskState is delivered by its own finish() at close whatever the exit, while final_state reads the "
        "non-zero exit: the row ends as the frame said (here FAILED), the attempt is reported UP_FOR_RETRY "
        "(new in 1.4.0b2)",
        "ActivitySubprocess.update_task_state_if_needed (1.4.0b2) sends the held TaskState with finish(); "
        "final_state still maps a non-zero exit under should_retry to UP_FOR_RETRY",
        signature=_held_state_delivered_against_the_exit, introduced_in="1.4.0",
        details="""\
On 1.4.0b2 (the replay above, agreeing with the model of that release): `exit_code=-9`, `final_state=up_for_retry`,
`row=failed`, calls `start->200, finish(failed)->200`. On 1.3.2 the same run is F2 (no call, row RUNNING).

Seen on 1.4.0b2 (apache-airflow-core 3.4.0b2) on the real Execution API, SQLite, the client's default retries, with
a real runtime process (`finalstate replay --release 1.4.0b2 --target airflow-process --server airflow
'try_number=1 max_tries=1 should_retry=true; send TaskState failed; exit -9'`): `PATCH .../run` 200, then at close
`PATCH .../state` `finish(failed)` 204; the row ends `failed try_number=1 max_tries=1` while the supervisor reports
`up_for_retry`. The open [#73142](https://github.com/apache/airflow/pull/73142) (a confirmed terminal state before
the exit code) is the nearest upstream change; 1.4.0b2 does not have it.
""",
    ),
    Finding(
        "F16", "an_attempt_whose_task_ended_ends",
        "try_number=1 max_tries=1 should_retry=true; send DeferTask; exit hang",
        "a process that does not exit after its task deferred (or rescheduled, or awaits input) is never ended: "
        "the supervisor holds the state, stops heartbeating, starts no overtime clock, and waits for ever while the "
        "task instance is DEFERRED and its worker slot stays taken",
        "ActivitySubprocess._handle_request stamps _task_end_time_monotonic only for TaskState, SucceedTask and "
        "RetryTask, so _handle_process_overtime_if_needed never ends a process after DeferTask, RescheduleTask or "
        "AwaitInputTask; the deferral docs say a deferred task no longer occupies a worker slot",
        signature=_hung_after(_FRAMES_WITHOUT_OVERTIME),
        details="""\
The overtime was ported to the supervisor by apache/airflow#44590 (AIP-72), whose description says it "applies to all
states not just success, as was the case with LTJ" (the Airflow 2 LocalTaskJob); the supervisor that ships stamps the
task's end only for TaskState, SucceedTask and RetryTask. On the real Execution API (the table below) the row stays
DEFERRED and no call follows the defer: the triggerer may resume the task on another worker while this process still
holds its slot.
""",
    ),
    Finding(
        "F17", "an_attempt_whose_task_ended_ends",
        "try_number=1 max_tries=1 should_retry=true execution_api_retries=1; fault succeed transient; "
        "send SucceedTask; exit hang",
        "a process that does not exit after its task ended is never ended when the terminal call failed: no state is "
        "held, so the success overtime never runs out and the supervisor heartbeats the finished task for ever "
        "(from 1.2.2, which holds a state only once its call answered; fixed in 1.4.0, whose overtime runs from the "
        "task's end alone)",
        "ActivitySubprocess._handle_process_overtime_if_needed returns while no _terminal_state is held, and "
        "_send_terminal_state_msg (1.2.2-1.3.x) holds it only once the call answered 2xx",
        signature=_hung_after(("TaskState", "SucceedTask", "RetryTask")),
        introduced_in="1.2.2", fixed_in="1.4.0",
        details="""\
Stated under `execution_api_retries=1` so that one 5xx fails the call. Under Airflow's default five tries the same
end comes of an Execution API that stays down while the task ends: `finalstate replay --server airflow --target
airflow-inproc 'try_number=1 max_tries=1 should_retry=true; fault succeed permanent; send SucceedTask; exit hang'`
records `PATCH .../run` 200, five `PATCH .../state` [succeed] 500, then `PUT .../heartbeat` 204 once time runs on,
no final state, the row `running` (apache-airflow-core 3.3.2, SQLite): the supervisor keeps heartbeating for a task
that is over, so the scheduler's heartbeat timeout never strikes it either.
""",
    ),
    Finding(
        "F18", "server_terminated_wins",
        "try_number=1 max_tries=1 should_retry=true; user marks success; send RetryTask; exit 0",
        "an outcome's call refused with 409 because a user moved the task instance (marked it, or cleared it) is "
        "taken for a failed call: the attempt is then reported by its exit code (here SUCCESS, after a RetryTask), "
        "not SERVER_TERMINATED (fixed in 1.4.0, where a 409 on an outcome's call means the server took the TI away)",
        "ActivitySubprocess._send_terminal_state_msg and update_task_state_if_needed (before 1.4.0) treat every "
        "ServerResponseError alike; apache/airflow#73249 made a 409 there SERVER_TERMINATED",
        signature=_refused_after_a_user_moved_it, also_breaks=("failure_never_recorded_as_success",),
        fixed_in="1.4.0",
    ),    Finding(
        "F19", "crash_with_retries_left_ends_up_for_retry",
        "try_number=1 max_tries=1 should_retry=true; exit 1",
        "a task that crashes or is killed with retries left is recorded FAILED: every non-zero exit before 1.1.2, a "
        "positive exit code (a crash, not a signal) before 1.1.4 (apache/airflow#55753: an OOM kill not retried)",
        "ActivitySubprocess.final_state (before 1.1.4) ignores should_retry for a positive exit code, and before "
        "1.1.2 for a signal too (apache/airflow#55767 brought retries for signals, 1.1.4 for every exit)",
        signature=_crash_recorded_failed, fixed_in="1.1.4",
    ),
)




# -- the runtime side (properties/test_runtime.py, properties/test_lifecycle.py) ---------------
# Kept apart from FINDINGS, whose scenarios are supervisor scenarios.

RUNTIME_TARGETS = ("model", "airflow-task-runner")


def _unsent_terminal(run, o) -> bool:
    return not any(s.delivered for s in o.sent if s.frame.frame in TERMINAL_FRAMES)


def _unsent_non_failure_exits_0(run, o) -> bool:
    """R1's cause: the fail-closed exit covers only FAILED and UP_FOR_RETRY."""
    return _unsent_terminal(run, o) and o.state not in (None, SUCCESS, FAILED, UP_FOR_RETRY) and o.exit_code == 0


def _unsent_failed_exits_1_while_should_retry(run, o) -> bool:
    """R2's cause: the fail-closed exit 1 meets final_state's 'non-zero exit and should_retry is UP_FOR_RETRY'."""
    return _unsent_terminal(run, o) and o.state == FAILED and o.exit_code != 0 and run.context.should_retry


def _int_delay_fails_closed(run, o) -> bool:
    """R3's cause: a retry policy's RETRY whose delay is a number, not a timedelta, makes the retry path raise."""
    return (run.policy is not None and run.policy.action == "retry_int_delay" and run.context.should_retry
            and o.state == FAILED)


def _map_index_send_masks_the_exception(run, o) -> bool:
    """R4's cause: the failed SetRenderedMapIndex send replaces the task's never-retry exception, which is then
    answered with a retry (the state decided, or, before 1.2.2 where an unsent outcome leaves no state decided, the
    RetryTask tried)."""
    retried = o.state == UP_FOR_RETRY or (o.terminal is not None and o.terminal.frame == "RetryTask")
    return run.outcome in NEVER_RETRIED_FAILURES and "SetRenderedMapIndex" in o.failed_requests and retried


def _sys_exit_taken_as_a_failure(run, o) -> bool:
    """R5's cause: ``except SystemExit`` sends every SystemExit down the failure path, ``sys.exit()`` and
    ``sys.exit(0)`` included (the decision, or the terminal frame tried, is a failure's)."""
    tried = o.terminal.frame if o.terminal is not None else None
    return (reached_outcome(run) in SYS_EXIT_WITHOUT_AN_ERROR_CODE
            and (o.state in (FAILED, UP_FOR_RETRY) or tried in ("TaskState", "RetryTask")))


def _left_before_finalize(run, o) -> bool:
    """R6's cause: the task process left before ``finalize`` (``run`` decided nothing: a KeyboardInterrupt, an error
    that reached ``main``, a signal's death), so no callback ran, and its non-zero exit is what the supervisor records."""
    return o.state is None and o.exit_code != 0 and not o.callbacks


def _crash_with_retries_left_failed(life, _=None) -> bool:
    """L3's cause: a failing try with retries left whose process exited non-zero, no RetryTask delivered, is FAILED."""
    return any(t.retryable_failure and t.context.should_retry and t.observation.exit_code not in (0, None)
               and t.observation.final_state == FAILED and t.observation.row_gone is None for t in life.tries)


def _try_left_running_as(state: str):
    """L1/L2: a try the supervisor reported ``state`` left the row RUNNING (F2/F1 across tries)."""
    def signature(life, _=None) -> bool:
        return any(t.observation.final_state == state and t.observation.row == RUNNING
                   and t.observation.row_gone is None for t in life.tries)
    return signature
def _killed_without_on_kill(run, o) -> bool:
    """R5's cause: the SIGTERM killed the task's process (exit -15) before any on_kill."""
    return o.on_kill_calls == 0 and o.exit_code == -15


def _succeeded_after_sigterm(run, o) -> bool:
    """R6's cause: on_kill ran, and the task went on to succeed."""
    return o.on_kill_calls >= 1 and o.state == SUCCESS


def _forked_child_carried_on(run, o) -> bool:
    """R8's cause: the forked child exited 0 after its SIGTERM, as it would have without one."""
    return o.forked_child_exit == 0


def _startup_failure_exits_1(run, o) -> bool:
    """R7's cause: the startup that did not find the DAG exited 1 and sent nothing."""
    return o.exit_code == 1 and not o.sent


_FAIL_CLOSED = ("task_runner.run: when the terminal send raises, only FAILED and UP_FOR_RETRY are made "
                "to exit 1 (main's fail-closed sys.exit)")

RUNTIME_FINDINGS: tuple[Finding, ...] = (
    Finding(
        "R1", "non_success_never_recorded_success",
        "try_number=1 max_tries=0 should_retry=false; task raises AirflowSkipException; policy none; "
        "comms terminal_send_fails",
        "a skipped task whose TaskState(skipped) cannot be sent exits 0 and is recorded SUCCESS",
        f"{_FAIL_CLOSED}; SKIPPED (and UP_FOR_RESCHEDULE, DEFERRED, AWAITING_INPUT) exit 0, and "
        "ActivitySubprocess.final_state takes exit 0 with no terminal state as SUCCESS (the comment in "
        "run() says these need a separate fix in final_state)",
        RUNTIME_TARGETS, "runtime", _unsent_non_failure_exits_0,
        # The callback finalize runs is the decided state's (on_skipped_callback), not the recorded SUCCESS's.
        also_breaks=("recorded_state_runs_its_callback_once",),
        # The fail-closed exit came in 1.2.2 (Release.fails_closed_on_an_unsent_outcome); before, any unsent outcome
        # leaves run and main exits 1, which the supervisor records FAILED.
        introduced_in="1.2.2",
    ),
    Finding(
        "R2", "failed_decision_never_recorded_up_for_retry",
        "try_number=1 max_tries=1 should_retry=true; task raises AirflowFailException; policy none; "
        "comms terminal_send_fails",
        "AirflowFailException (never retry) is retried when its TaskState(failed) cannot be sent",
        f"{_FAIL_CLOSED}; ActivitySubprocess.final_state maps any non-zero exit to UP_FOR_RETRY while "
        "should_retry, so the runtime's no-retry decision (AirflowFailException, AirflowSensorTimeout, "
        "AirflowTaskTerminated, a retry policy's FAIL) is lost",
        RUNTIME_TARGETS, "runtime", _unsent_failed_exits_1_while_should_retry,
        # finalize runs on_failure_callback for the decided FAILED; the supervisor records UP_FOR_RETRY.
        also_breaks=("recorded_state_runs_its_callback_once",),
        # Before 1.2.2 the unsent outcome leaves run with no state decided (Release.fails_closed_on_an_unsent_outcome).
        introduced_in="1.2.2",
    ),
    Finding(
        "R3", "failure_answered_with_retry_exactly_when_should_retry",
        "try_number=1 max_tries=1 should_retry=true; task raises AirflowException; policy retry_int_delay delay=0; "
        "comms ok",
        "a retry policy's RETRY with the delay in seconds (an int, as BaseOperator's retry_delay takes it) fails "
        "the task for good although it has retries left",
        "task_runner._finalize_task_failure calls retry_delay_override.total_seconds() (RetryDecision does not "
        "convert a number); the AttributeError reaches _handle_handler_failure, whose second pass raises the same "
        "way and fails closed to TaskState(failed) (_evaluate_retry_policy falls back to the default only when "
        "evaluate itself raises)",
        RUNTIME_TARGETS, "runtime", _int_delay_fails_closed,
        # In 1.3.0 (the first with retry policies) the failure path's error leaves run with no frame sent; the fail
        # closed TaskState(failed) came in 1.3.1 (Release.catches_a_failing_outcome_handler).
        introduced_in="1.3.1",
        # Its invariant's intent is documented, but whether a delay in plain seconds is a policy's to give is not.
        intent=Intent(
            "runtime",
            "A retry policy's RETRY with its delay in seconds retries the task, or at worst falls back to the default.",
            (RETRY_DELAY_PARAMETER, POLICY_FALLS_BACK), OPEN_QUESTION, (RETRY_DECISION_DELAY,),
            note="BaseOperator takes a delay in seconds and a policy that fails is meant to fall back to the "
                 "default retry; RetryDecision asks for a timedelta, so a plain number may be a misuse that the task "
                 "pays for."),
    ),
    Finding(
        "R4", "fail_exception_never_retries",
        "try_number=1 max_tries=1 should_retry=true; task raises AirflowFailException; policy none; "
        "comms every_send_fails; with map_index_template",
        "AirflowFailException is answered with RetryTask when the map-index update after it cannot be sent",
        "task_runner._run_task_and_map_outcome: the except Exception around _execute_task re-renders the map "
        "index and sends SetRenderedMapIndex before re-raising; a send that raises replaces the task's "
        "exception, which then takes except BaseException (_handle_current_task_failed), not the never-retry "
        "branch (the comment there means the rendering error not to mask the task's)",
        RUNTIME_TARGETS, "runtime", _map_index_send_masks_the_exception,
        also_breaks=("failure_answered_with_retry_exactly_when_should_retry",),
        # SetRenderedMapIndex came in 1.2.0 (Release.sends_the_rendered_map_index); before, no request follows the task.
        introduced_in="1.2.0",
    ),
    Finding(
        "R5", "sigterm_calls_on_kill_once",
        "try_number=1 max_tries=0 should_retry=false; task returns; policy none; comms ok; with sigterm",
        "a task killed while it runs never gets its on_kill called: its process dies of SIGTERM (fixed in 1.0.4)",
        "task_runner.main (before 1.0.4) installs no SIGTERM handler (apache/airflow#51005, fixed by #53718)",
        RUNTIME_TARGETS, "runtime", _killed_without_on_kill, fixed_in="1.0.4",
        also_breaks=("recorded_state_runs_its_callback_once",),
    ),
    Finding(
        "R6", "sigterm_never_ends_in_success",
        "try_number=1 max_tries=0 should_retry=false; task returns; policy none; comms ok; with sigterm",
        "a task killed while it runs has on_kill called and then goes on: a task that then returns is recorded "
        "SUCCESS, though Airflow 2 failed it and the runner still catches the AirflowTaskTerminated nothing raises "
        "(apache/airflow#73006, #71202; open upstream)",
        "task_runner._run_task_and_map_outcome's _on_term calls task.on_kill() and returns to execute(); its except "
        "AirflowTaskTerminated (\"If these are thrown, we should mark the TI state as failed\") is unreachable",
        RUNTIME_TARGETS, "runtime", _succeeded_after_sigterm, introduced_in="1.0.4",
    ),
    Finding(
        "R7", "try_that_never_ran_is_not_failed",
        "try_number=1 max_tries=0 should_retry=false; task returns; policy none; comms ok; with startup_reschedule",
        "a try whose DAG is not found at startup exits 1 without running its task, and is recorded FAILED (or "
        "UP_FOR_RETRY, spending a retry; fixed in 1.1.7)",
        "task_runner.parse (before 1.1.7) calls sys.exit(1) when the DAG or task cannot be loaded "
        "(apache/airflow#59604 reschedules instead)",
        RUNTIME_TARGETS, "runtime", _startup_failure_exits_1, fixed_in="1.1.7",
        also_breaks=("recorded_state_runs_its_callback_once",),
    ),
    Finding(
        "R8", "forked_child_stops_on_sigterm",
        "try_number=1 max_tries=0 should_retry=false; task returns; policy none; comms ok; with forked_child",
        "a process the task forked carries on when the supervisor's SIGTERM reaches it: it inherited the runner's "
        "SIGTERM handler, which does nothing outside the runner's own process, so the child neither dies nor is told",
        "task_runner._run_task_and_map_outcome's _on_term returns at once when os.getpid() is not the runner's "
        "(since 1.0.4, apache/airflow#53718); before, the child died of the signal",
        RUNTIME_TARGETS, "runtime", _forked_child_carried_on, introduced_in="1.0.4",
    ),
    Finding(
        "R9", "sys_exit_without_an_error_code_succeeds",
        "try_number=1 max_tries=0 should_retry=false; task raises SystemExit(); policy none; comms ok",
        "a task that ends by sys.exit() (or sys.exit(0)) fails, and is retried while it has retries left, where "
        "Airflow 2 recorded it SUCCESS",
        "task_runner._run_task_and_map_outcome: except SystemExit hands every SystemExit, whatever its code, to "
        "_handle_current_task_failed (\"SystemExit needs to be retried if they are eligible\", from AIP-72's "
        "apache/airflow#45282); Airflow 2's _execute_callable returned for a code that is None or 0 "
        "(apache/airflow#36986), and nothing in the port asked to change that",
        RUNTIME_TARGETS, "runtime", _sys_exit_taken_as_a_failure,
        details="Differs from Airflow 2 behaviour that was meant to stay (the invariant's docstring quotes both pull "
                "requests). `sys.exit(0)` (`task raises SystemExit(0)`) ends the same way; `sys.exit(1)` fails in "
                "Airflow 2 as in Airflow 3.",
    ),
    Finding(
        "R10", "recorded_state_runs_its_callback_once",
        "try_number=1 max_tries=0 should_retry=false; task raises AirflowException; policy interrupted; comms ok",
        "a try whose process leaves before finalize (here a KeyboardInterrupt in the failure path: exit 2) is recorded "
        "FAILED, or UP_FOR_RETRY, from its exit, and no on_failure_callback (on_retry_callback) runs",
        "task_runner.main: except KeyboardInterrupt (sys.exit(2)) and except Exception (a top-level error: sys.exit(1))"
        " leave before finalize, which alone runs the state-change callbacks; ActivitySubprocess.final_state then "
        "records the exit, and nothing on that path runs the callback of the state it records (the task process "
        "killed by a signal the same: apache/airflow#60858, open)",
        RUNTIME_TARGETS, "runtime", _left_before_finalize,
        details="The same cause ends, on other releases and runs, every try whose process leaves with no state "
                "decided: a startup whose request cannot be sent (the DAG not found and its RescheduleTask unsent, "
                "the log channel after fork+exec), and before 1.3.1 an outcome handler that raises, before 1.2.2 an "
                "unsent terminal frame, before 1.0.4 a SIGTERM. Airflow 2 ran the failure callback there "
                "(`_run_raw_task`'s `except BaseException: handle_failure(...)`; on SIGTERM since apache/airflow#29743).",
    ),
)

#: The lifecycle pairings that run the Python task runner (real or model) against a supervisor with F1/F2.
PYTHON_LIFECYCLE_PAIRINGS = ("model-runtime+model", "airflow-task-runner+model", "model-runtime+airflow-inproc",
                             "model-runtime+airflow-process", "model-runtime+airflow-inproc, real rows")

#: The lifecycle pairings whose runtime side is a coordinator-mode runtime in its world (``model.coordinator``): the
#: model's, paired with a supervisor; or a runtime under check, paired with the real supervisor (``cmd:*``).
COORDINATOR_LIFECYCLE_PAIRINGS = ("model-coordinator+model", "model-coordinator+airflow-inproc",
                                  "model-coordinator+airflow-inproc, real rows", "reference-runtime", "cmd:*")


def _undelivered_success_left_running(life, _=None) -> bool:
    """L5's cause (F9 and F1 across tries): a try whose succeed() the supervisor could not deliver left the row
    running, whatever it reported: SUCCESS on the exit 0 (F1's skip), or, from 1.4.0b2, FAILED when the success
    overtime killed it with no closing call (F9)."""
    return _try_left_running_as(SUCCESS)(life) or any(
        t.observation.row == RUNNING and t.observation.row_gone is None
        and any(c.name == "succeed" and c.status != 200 for c in t.observation.calls)
        and not any(c.name == "finish" for c in t.observation.calls) for t in life.tries)


def _finish_failed_left_running(life, _=None) -> bool:
    """L6's cause (F3 across tries): a try whose closing finish() failed left the row running."""
    return any(t.observation.row == RUNNING and t.observation.row_gone is None
               and any(c.name == "finish" and c.status != 200 for c in t.observation.calls) for t in life.tries)


def _wait_escaped(life, _=None) -> bool:
    """L8's cause (F14 across tries): a try's ``wait()`` raised a transport error before it saw the exit."""
    return any(t.observation.exit_code is None and t.observation.raised == "ReadTimeout" for t in life.tries)


LIFECYCLE_FINDINGS: tuple[Finding, ...] = (
    Finding(
        "L1", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | task raises DownstreamTasksSkipped; policy none; comms every_send_fails",
        "a failing try whose terminal frame cannot be sent exits 1 (fail closed); the supervisor reports "
        "UP_FOR_RETRY but the row stays RUNNING, so the TI is never retried",
        "the runtime's fail-closed exit (task_runner.run/main) meets supervisor finding F2: "
        "ActivitySubprocess.update_task_state_if_needed makes no call for UP_FOR_RETRY (STATES_SENT_DIRECTLY)",
        PYTHON_LIFECYCLE_PAIRINGS, "lifecycle", _try_left_running_as(UP_FOR_RETRY),
        also_breaks=("no_try_leaves_row_running",),
        # F2's: before 1.1.4 the exit 1 is FAILED, and finish() reports it (L3 there).
        introduced_in="1.1.4",
    ),
    Finding(
        "L2", "no_try_leaves_row_running",
        "retries=0 | task returns; policy none; comms terminal_send_fails",
        "a succeeding try whose SucceedTask cannot be sent exits 0; the supervisor reports SUCCESS but the "
        "row stays RUNNING",
        "supervisor finding F1 (final_state falls back to SUCCESS, in STATES_SENT_DIRECTLY, no call made); "
        "the task runner does not fail closed for SUCCESS",
        PYTHON_LIFECYCLE_PAIRINGS, "lifecycle", _try_left_running_as(SUCCESS),
        # F1's, met by a SucceedTask that cannot be sent only once main exits 0 for it: the fail-closed exit of 1.2.2
        # (Release.fails_closed_on_an_unsent_outcome); before, it exits 1 and finish(FAILED) ends the row.
        introduced_in="1.2.2",
    ),
    Finding(
        "L3", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | task raises ValueError; policy none; comms terminal_send_fails",
        "a failing try with retries left whose RetryTask cannot be sent exits 1 and is reported FAILED: the TI is "
        "not retried (before 1.1.4)",
        "ActivitySubprocess.final_state before task-sdk 1.1.4 makes any non-zero exit FAILED whatever the should_retry "
        "the server gave at start (1.1.2-1.1.3 retry a signal-killed task only, apache/airflow#55767); finish(FAILED) "
        "then ends the TI",
        PYTHON_LIFECYCLE_PAIRINGS, "lifecycle", _crash_with_retries_left_failed, fixed_in="1.1.4",
    ),
    Finding(
        "L4", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | fault retry permanent; task error",
        "a failing coordinator try whose RetryTask the supervisor cannot deliver exits 1 (it fails closed); the "
        "supervisor reports UP_FOR_RETRY but the row stays RUNNING, so the TI is never retried (a try the supervisor "
        "kills instead: L9)",
        "the runtime's fail-closed exit meets supervisor findings F9 and F2: "
        "ActivitySubprocess.update_task_state_if_needed replays the failed retry() and, it failing again, makes no "
        "call for UP_FOR_RETRY (STATES_SENT_DIRECTLY)",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _try_left_running_as(UP_FOR_RETRY),
        also_breaks=("no_try_leaves_row_running",), introduced_in="1.1.4",
    ),
    Finding(
        "L5", "no_try_leaves_row_running",
        "retries=0 | fault succeed permanent; task success",
        "a succeeding coordinator try whose SucceedTask the supervisor cannot deliver is reported SUCCESS, and the "
        "row stays RUNNING (from 1.4.0b2, when the success overtime kills it: reported FAILED, the row RUNNING all "
        "the same)",
        "supervisor findings F9 and F1: the failed succeed() (since 1.2.2 replayed at close, failing again) leaves "
        "SUCCESS as the final state on exit 0, which is in STATES_SENT_DIRECTLY, so no call reports it; from "
        "1.4.0b2 the overtime runs from the held SUCCESS, and after its kill update_task_state_if_needed makes no "
        "finish() either (F9)",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _undelivered_success_left_running,
        # Before 1.2.2 nothing is replayed, but the failed succeed() leaves SUCCESS held all the same (the state is
        # held from the call on: Release.holds_an_undelivered_outcome), and F1's skip leaves the row RUNNING.
    ),
    Finding(
        "L6", "last_failing_try_ends_failed",
        "retries=0 | fault finish permanent; task error",
        "a failing coordinator try with no retries left whose closing finish(failed) fails leaves the row RUNNING: "
        "the TI is never failed",
        "supervisor finding F3: ActivitySubprocess.update_task_state_if_needed does not retry a failed finish()",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _finish_failed_left_running,
        also_breaks=("no_try_leaves_row_running",),
    ),
    Finding(
        "L7", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | fault retry permanent; task error",
        "a failing coordinator try with retries left whose RetryTask the supervisor cannot deliver exits 1 (it fails "
        "closed) and is reported FAILED: the TI is not retried (before 1.1.4; L3's cause, met by a coordinator runtime)",
        "ActivitySubprocess.final_state before task-sdk 1.1.4 makes any non-zero exit FAILED whatever the should_retry "
        "the server gave at start; finish(FAILED) then ends the TI",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _crash_with_retries_left_failed, fixed_in="1.1.4",
    ),
    Finding(
        "L8", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | execution_api_retries=1; fault retry lost; task error",
        "a coordinator try whose terminal call's answer is lost ends with no final state: wait() raises the transport "
        "error before it has seen the exit, and the try is reported as nothing (under execution_api_retries=1; before "
        "1.2.2; F14 across tries)",
        "supervisor finding F14: ActivitySubprocess.handle_requests answers only a ServerResponseError; a ReadTimeout "
        "leaves _monitor_subprocess, so wait() raises",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _wait_escaped,
        also_breaks=("last_failing_try_ends_failed", "no_try_leaves_row_running"), fixed_in="1.2.2",
    ),
    Finding(
        "L9", "failing_try_with_retries_left_ends_up_for_retry",
        "retries=1 | fault retry permanent; task error; overtime",
        "a coordinator try the supervisor kills while should_retry (here the success overtime after a RetryTask it "
        "could not deliver; likewise too many failed heartbeats) is reported UP_FOR_RETRY but the row stays RUNNING, "
        "so the TI is never retried (from 1.1.2; F2 across tries)",
        "supervisor finding F2: ActivitySubprocess.final_state makes a signal-killed process UP_FOR_RETRY while "
        "should_retry (since task-sdk 1.1.2, apache/airflow#55767), a state in STATES_SENT_DIRECTLY, so "
        "update_task_state_if_needed makes no call for it",
        COORDINATOR_LIFECYCLE_PAIRINGS, "lifecycle", _try_left_running_as(UP_FOR_RETRY),
        also_breaks=("no_try_leaves_row_running",),
        # Before 1.1.2 the kill is FAILED, and finish() reports it (L7 there).
        introduced_in="1.1.2",
    ),
)




# -- coordinator-mode runtimes (properties/test_coordinator.py) ---------------------------------------------------
# A coordinator finding's ``scenario`` is a ``model.coordinator.CoordinatorRun``; its target is a runtime of this
# project's that does what an SDK's runtime does (runtimes/README.md), since the SDKs cannot be built here.

def _not_failed_closed(run, o: Observation) -> bool:
    """C1's cause: a failing task's frame was not taken (an error answer, or none), and the runtime exited 0 all the
    same: it never read the answer."""
    return run.failure and o.exit_code == 0 and o.replies[-1:] != ("ok",)


def _failed_with_retries_left(run, o: Observation) -> bool:
    """C2's cause: a failing task with retries left was answered with TaskState(failed), which the supervisor took and
    reported by ``finish(failed)``: no RetryTask was sent."""
    return (run.failure and run.context.should_retry and o.final_state == FAILED
            and any(c.name == "finish" and c.state == FAILED for c in o.calls)
            and not any(c.name == "retry" for c in o.calls))


#: The Go runtime doing what the Go SDK's ``Serve`` does with its terminal frame (``runtimes/go``: --no-fail-closed),
#: named ``go-runtime`` or by its path (``build/runtimes/go-runtime``, or where an installed finalstate built it).
GO_SDK_SHAPED = ("cmd:go-runtime --no-fail-closed", "cmd:*/go-runtime --no-fail-closed")

_C1_DETAILS = """\
C1 on the real Execution API (apache-airflow-core 3.3.2, SQLite, Airflow's default five tries of each request):
`finalstate replay --server airflow --target 'cmd:build/runtimes/go-runtime --no-fail-closed'
'try_number=1 max_tries=1 should_retry=true; fault retry permanent; task error'` records `PATCH .../run` 200, ten
`PATCH .../state` (retry) 500 (the client's five tries, then the supervisor's replay at close), the runtime told
`error`, exit 0, final state `success`, the row `running`. With `fault retry lost` instead (the retry applied, its
answer lost; the resends 404): final state `success`, the row `up_for_retry`. The same runs with the runtime that fails
closed (no flag) exit 1 and are recorded `up_for_retry`.

Which SDK runtimes have C1's shape, read from their published sources in apache/airflow (the newest stored versions;
neither SDK is served by the registries here, so neither was run):

- **Go SDK: yes.** `go-sdk/pkg/execution/server.go`, `Serve`: in its `StartupDetails` case it calls `RunTask`, then
  `comm.SendRequest(frame.ID, result)` and `return nil`, never reading the supervisor's answer; the bundle's `main`
  (`log.Fatal` only on an error from `Serve`) exits 0 once the write succeeded, whatever the answer. Its own tests
  (`TestServeStartupDetailsEndToEnd`) expect `Serve` to return nil without answering the terminal frame. Only a failed
  write exits 1. (The Dag-parse path of the same `Serve` does wait for its answer.)
- **Java SDK: no.** `java-sdk/sdk/src/main/kotlin/org/apache/airflow/sdk/execution/Comm.kt`,
  `CoordinatorComm.handleIncoming` sends the task's result with `communicate`, which reads the answer and throws
  `ApiError` on an `ErrorResponse`, a wrong id or no answer; it leaves `Server.serve` uncaught, and the JVM exits 1 (for
  a SucceedTask too).
- **Python task runner: no** since task-sdk 1.2.2 (`task_runner.run`/`main`, apache/airflow#66573), for FAILED and
  UP_FOR_RETRY (R1 is what it leaves out).

Under the SDK profiles (`model.sdks`, `finalstate profiles`): C1 holds for `go-sdk-1.0.0` (`Serve` as above) and
`ts-sdk-1.0.0` (`ts-sdk/src/coordinator/runtime.ts`, `startCoordinator` / `sendSupervisorResponse`: the frame is
written as the response to StartupDetails and the channels closed, no answer read), whose `fails_closed` is `never`;
not for `go-sdk-before-68554`, whose every failure is a TaskState(failed) that the supervisor takes at once and reports
by its closing `finish()` (C2 is what it loses), nor for the Java SDK's profiles, which fail closed after any frame.
The Go runtime with each profile's flags (`--profile ci,go-sdk-1.0.0`, ...) over the complete coordinator scope breaks
`failure_not_taken_fails_closed` only where its RetryTask is not taken: a fault keeps it from the server (`fault retry
transient` under one client try, `permanent`, `lost`), or a user's action made the server refuse it (`user marks
failed`, `user clears`, ...: 409, 410, 404), every time C1.
"""

_C2_DETAILS = """The seed of this project (apache/airflow#67797) and its Java twin (#67798), as the SDK profiles before their fixes
have them (`model.sdks`): `go-sdk-before-68554` (`go-sdk/pkg/execution/task_runner.go`, `RunTask`: every error or
recovered panic is `TaskState(failed)`; `ti_context.should_retry` is never read) and `java-sdk-before-68555`
(`java-sdk/sdk/src/main/kotlin/org/apache/airflow/sdk/execution/Task.kt`, `run`: `catch (e: Exception)` sends
`TaskState(failed)`). The supervisor takes the frame, holds FAILED, and reports it by `finish(failed)` at close: a
task with retries left is recorded FAILED, and the server never schedules its next try. Fixed by apache/airflow#68554
(`go-sdk-1.0.0`: RetryTask while `should_retry`) and #68555 (`java-sdk-1.0.0`, which also catches `Throwable`).

Before #68555 a task that throws a `java.lang.Error` escapes that `catch` (`panic_escapes`): no terminal frame, the JVM
exits 1, and the supervisor decides by the exit code alone: UP_FOR_RETRY while `should_retry`, which it never reports
to the server (`STATES_SENT_DIRECTLY`), so the row stays RUNNING: F2's cause, L9's across tries. No coordinator
invariant sees that try (its frame was never taken); the lifecycle properties do.
"""

COORDINATOR_FINDINGS: tuple[Finding, ...] = (
    Finding(
        "C1", "failure_not_taken_fails_closed",
        "try_number=1 max_tries=1 should_retry=true; fault retry permanent; task error",
        "a coordinator runtime that does not fail closed turns a failed task into SUCCESS when the supervisor cannot "
        "deliver its RetryTask: it exits 0 once the frame is written, and the supervisor records the attempt SUCCESS "
        "while the row stays RUNNING (a lost answer instead: SUCCESS while the server retries the task; on the real "
        "Execution API with Airflow's default client retries)",
        "go-sdk/pkg/execution/server.go, Serve: after RunTask it writes the terminal frame (comm.SendRequest on "
        "StartupDetails' id) and returns nil without reading the supervisor's answer, so the bundle's main exits 0; "
        "ActivitySubprocess.final_state then takes exit 0 as the state it holds (none: SUCCESS). The Python task "
        "runner exits 1 there (task_runner.run/main, apache/airflow#66573); the Java SDK's CoordinatorComm.communicate "
        "throws on the error answer and the JVM exits 1",
        GO_SDK_SHAPED, "coordinator", details=_C1_DETAILS, signature=_not_failed_closed,
        profiles=("go-sdk-1.0.0", "ts-sdk-1.0.0"),
    ),
    Finding(
        "C2", "failure_with_retries_left_ends_up_for_retry",
        "try_number=1 max_tries=1 should_retry=true; task error",
        "a coordinator runtime without the retry branch answers every failure with TaskState(failed): a failing task "
        "with retries left is recorded FAILED and never retried (the Go SDK before apache/airflow#68554, the seed "
        "#67797; the Java SDK before #68555, #67798)",
        "go-sdk/pkg/execution/task_runner.go, RunTask, before apache/airflow#68554: every error or recovered panic is "
        "TaskState(failed), ti_context.should_retry never read; java-sdk/.../execution/Task.kt, run, before #68555: "
        "catch (e: Exception) sends TaskState(failed). The supervisor takes the frame and finish(failed) reports it",
        (), "coordinator", details=_C2_DETAILS, signature=_failed_with_retries_left,
        profiles=("go-sdk-before-68554", "java-sdk-before-68555"),
    ),
)


# -- the wire, as only real processes can exercise it (properties/test_process_wire.py) ----------
# A wire finding's ``scenario`` is a runtime script in words: what the runtime writes on the comm
# socket (hex), then what it does; its property lives in properties/test_process_wire.py.

PROCESS_TARGETS = ("airflow-process",)

WIRE_FINDINGS: tuple[Finding, ...] = (
    Finding(
        "W1", "malformed_frame_still_ends_the_attempt",
        "write 00000004c1c1c1c1 (a payload that is not msgpack); exit 1",
        "a request frame whose payload is not msgpack (or not an [id, body, carrier] array, or has a "
        "non-integer id) makes wait() raise: no final state, no finish(), the TI stays RUNNING, the "
        "process is neither killed nor reaped, and the supervisor's sockets and servers stay open",
        "supervisor.length_prefixed_frame_reader calls msgspec's decode without catching DecodeError/"
        "ValidationError; the exception leaves _service_subprocess and _monitor_subprocess, so wait() "
        "never reaches update_task_state_if_needed",
        PROCESS_TARGETS, "wire",
        # Frames came in 1.0.3; before, a line the JSON-lines reader cannot decode is logged and passed over.
        introduced_in="1.0.3",
    ),
    Finding(
        "W2", "every_request_is_answered",
        "write a frame with body {type: NoSuchThing}; await its response; exit 0",
        "a request whose body fails validation (unknown type, ill-typed field) gets no response at all: a "
        "runtime awaiting one (as every SDK's comms client does) hangs until something kills it",
        "ActivitySubprocess.handle_requests logs 'Unable to decode message' and continues without "
        "send_msg(error=...), while every other failure path answers with an ErrorResponse",
        PROCESS_TARGETS, "wire",
    ),
    Finding(
        "W3", "frame_length_is_bounded",
        "write ffffffff (a 4-byte length prefix of 4 GiB) and nothing else; exit 1",
        "a length prefix is trusted: 0xFFFFFFFF makes the supervisor allocate and zero 4 GiB before it "
        "reads one byte of payload (here: >10 s and 4 GB of memory for four bytes)",
        "supervisor.length_prefixed_frame_reader: memoryview(bytearray(length_needed)) with no limit",
        PROCESS_TARGETS, "wire",
        introduced_in="1.0.3",  # no length prefix before: JSON lines
    ),
    Finding(
        "W4", "servers_closed_when_wait_raises",
        "try_number=1 max_tries=0 should_retry=false execution_api_retries=1; fault finish transient; exit 1",
        "when wait() raises (here: the closing finish() fails, finding F3) the coordinator's two listening "
        "sockets are never closed: a worker leaks two descriptors per such task",
        "_PopenActivitySubprocess.wait calls super().wait() and only then _close_unused_sockets(...), "
        "without try/finally",
        PROCESS_TARGETS, "wire",
        # _PopenActivitySubprocess came in 1.3.0; the forking supervisor before it has no listening sockets, and its
        # wait() has read every socket to its end before update_task_state_if_needed can raise.
        introduced_in="1.3.0",
    ),
    Finding(
        "W5", "answer_the_runtime_cannot_take_still_ends_the_attempt",
        "take no more answers; write a request that has one (GetVariable); exit 0",
        "an answer written to a runtime that can no longer take it (it has died, or shut its end) leaves wait() "
        "waiting for ever after the process exited: no final state, no closing call, the worker hangs (before 1.0.3)",
        "ActivitySubprocess._service_subprocess (task-sdk before 1.0.3) takes the BrokenPipeError of send_msg out of "
        "the requests reader as the end of that socket (the catch of apache/airflow#49128) and closes it, but only the "
        "reader's own EOF path calls _on_socket_closed: _num_open_sockets never reaches 0 and _monitor_subprocess "
        "loops on. 1.0.3 tracks the sockets themselves (_open_sockets) and the loop removes one however it ended",
        PROCESS_TARGETS, "wire", fixed_in="1.0.3",
    ),
)


ALL_FINDINGS = FINDINGS + RUNTIME_FINDINGS + LIFECYCLE_FINDINGS + COORDINATOR_FINDINGS + WIRE_FINDINGS


def findings_on(kind: str, target: str, invariant: str, registry: tuple[Finding, ...] = ALL_FINDINGS,
                release: Release | None = None, profile: str | None = None) -> tuple[Finding, ...]:
    """Every registered finding whose cause can break ``invariant`` on ``target`` (declared to be the SDK profile
    ``profile``, if any), for properties of ``kind``, and that stands on ``release`` (default: the installed one): a
    fixed bug that comes back is a new violation."""
    release = installed_release() if release is None else release
    return tuple(f for f in registry if f.kind == kind and invariant in f.explains and f.about(target, profile)
                 and f.stands_on(release))


def installed_release() -> Release:
    """The installed task-sdk release as the model takes it (the model's own when none is installed)."""
    from impl.releases.adapters import model_release

    return model_release()
