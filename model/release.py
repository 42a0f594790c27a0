"""Which task-sdk release the model specifies, and every way the releases differ: one named trait each.

The model specifies apache-airflow-task-sdk 1.3.2 with apache-airflow-core 3.3.2 (``SPECIFIED``)
unless it is handed another ``Release``: ``model.supervisor.run(scenario, release)``. The model
mirrors each release as it is, bugs included, so that conformance holds on each: every difference
between releases, by design or by a bug one release has and another lacks, is a trait of
``Release`` here (a property or a method), named for what it decides, with the release that brought
it; a trait that fixed a bug says so and names the upstream pull request. Whether a release breaks
a promise of the design is not decided here: that is an invariant (``model.invariants``), and where
a release breaks it, a finding (``impl/catalogue/findings.py``).
"""

from __future__ import annotations

import re

import attrs

from model.scenario import AWAITING_INPUT, SERVER_TERMINATED, UP_FOR_RETRY

#: Every terminal frame the model knows, as the newest release has them.
TERMINAL_FRAMES = frozenset({"TaskState", "SucceedTask", "RetryTask", "DeferTask", "RescheduleTask",
                             "AwaitInputTask", "SkipDownstreamTasks"})


@attrs.frozen
class Release:
    """A task-sdk release, as its (major, minor, micro) numbers; its by-design traits are derived from them."""

    #: The release's (major, minor, micro) numbers; a pre-release counts as its release.
    version: tuple[int, int, int]

    @classmethod
    def parse(cls, text: str) -> Release:
        """``"1.2.0"``, ``"1.4.0b2"`` or ``"1.4.0.dev0"``: the release numbers (a pre-release counts as its release)."""
        found = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
        if found is None:
            raise ValueError(f"not a task-sdk release number: {text!r}")
        return cls(tuple(int(n) for n in found.groups()))

    def __str__(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def terminal_frames(self) -> frozenset[str]:
        """The terminal frames the supervisor decodes: ``AwaitInputTask`` came in 1.3.0 (a frame the
        release does not know fails its decoder: the supervisor logs it and goes on, no call, no reply)."""
        return TERMINAL_FRAMES if self.version >= (1, 3, 0) else TERMINAL_FRAMES - {"AwaitInputTask"}

    def holds(self, state: str | None) -> bool:
        """Whether this release's supervisor can hold ``state`` as the attempt's terminal state: every state but
        ``awaiting_input`` always; that one since 1.3.0, with ``AwaitInputTask`` (``TaskInstanceState`` has no
        such member before)."""
        return state != AWAITING_INPUT or "AwaitInputTask" in self.terminal_frames

    def retries_after_exit(self, exit_code: int) -> bool:
        """Whether ``final_state`` makes a non-zero ``exit_code`` UP_FOR_RETRY when the server said should_retry.

        Every one since 1.1.4; only a signal kill (a negative code) in 1.1.2-1.1.3, which brought retries for
        signal-killed tasks (apache/airflow#55767); none before, where any non-zero exit is FAILED.
        """
        if self.version >= (1, 1, 4):
            return True
        return self.version >= (1, 1, 2) and exit_code < 0

    def keeps_over_a_failed_exit(self, state: str | None) -> bool:
        """Whether ``final_state`` keeps the held ``state`` whatever non-zero exit follows: SERVER_TERMINATED always;
        UP_FOR_RETRY too since 1.4.0 (a retry already recorded is not turned into FAILED by the exit code)."""
        return state == SERVER_TERMINATED or (state == UP_FOR_RETRY and self.version >= (1, 4, 0))

    @property
    def answers_gone(self) -> bool:
        """Whether the server answers a heartbeat on an archived try's id with 410 Gone: since core 3.2.1 (with
        task-sdk 1.2.1, apache/airflow#61631); before, 404 like any id that is not live."""
        return self.version >= (1, 2, 1)

    @property
    def accepts_repeated_state(self) -> bool:
        """Whether the server answers a state update asking for the state the row already holds with 200, whatever
        the row's state: since core 3.3.0 (task-sdk 1.3.0, the idempotency check of ``ti_update_state``); before,
        a row that is not RUNNING refuses it with 409 like any other update."""
        return self.version >= (1, 3, 0)

    @property
    def numbers_a_try_when_archiving(self) -> bool:
        """Whether archiving a try gives its successor the next try number at once: since core 3.4.0 (task-sdk 1.4.0,
        apache/airflow#73554, "Keep task attempt UUIDs and try numbers aligned"). ``prepare_db_for_next_try`` archives
        (id, N) and makes the live row (a new id, N + 1), which the scheduler's ``schedule_tis`` queues as it is; a
        clear archives no try that has not run (no state, or UP_FOR_RETRY: its successor is the allocated one), and
        gives the live row ``max_tries = try_number - 1 + retries``. Before, the live row keeps N under its new id and
        ``schedule_tis`` adds one (not after a reschedule); a clear archives the try whatever its state (each try number
        once) and gives ``max_tries = try_number + retries``."""
        return self.version >= (1, 4, 0)

    @property
    def restarts_a_cleared_try_once_stopped(self) -> bool:
        """Whether a user's clear leaves a RUNNING try live until it has stopped: since core 3.4.0 (task-sdk 1.4.0,
        apache/airflow#73554). The TI is RESTARTING under the same id and try number (clearing it again changes
        nothing), ``ti_run`` refuses it (409, whoever asks), and it is archived, its successor numbered with no state
        and ``max_tries = try_number + retries`` (``complete_restart``), once its worker reports it stopped
        (``takes_stop_reports``) or the scheduler's heartbeat timeout finds it. Before, the clear archives the try at
        once: the live row is RESTARTING under a new id, any worker may start it (and may always retry), and the
        heartbeat timeout makes it UP_FOR_RETRY."""
        return self.version >= (1, 4, 0)

    @property
    def takes_stop_reports(self) -> bool:
        """Whether ``ti_update_state`` takes ``finish(SERVER_TERMINATED)``, a worker's report that the try the server
        told to stop has stopped (Execution API 2026-10-30, ``AddStoppedTaskReport``): since core 3.4.0 (task-sdk 1.4.0,
        apache/airflow#73554; its supervisor sends it, ``acknowledges_server_termination``). 204 on an archived try's
        id; on the live row 409 unless the worker (host and pid) that started it reports; then a RESTARTING try's
        restart is completed (``restarts_a_cleared_try_once_stopped``), a finished row (success, failed, skipped,
        upstream_failed, removed) is left as it is with 204, and any other state is 409. Before, the server has no such
        state, and no supervisor sends it."""
        return self.version >= (1, 4, 0)

    @property
    def answers_gone_to_an_archived_change(self) -> bool:
        """Whether a request that changes something (``ti_run``, a state update, ``ti_skip_downstream``) on an archived
        try's id is answered 410 Gone, as a heartbeat is (``answers_gone``): since core 3.4.0, to a client speaking
        Execution API 2026-10-30, task-sdk 1.4.0's (``IdentifyArchivedTaskStateUpdates``; ``require_auth`` asks that
        the id is in the working set). Before, 404 like any id that is not live."""
        return self.version >= (1, 4, 0)

    @property
    def answers_every_request(self) -> bool:
        """Whether the supervisor answers every request it handles, a terminal frame handled well included (with an
        empty response frame): since 1.0.3, a design change (apache/airflow#51699: length-prefixed msgpack frames with
        ids replaced JSON lines, so that every request could be told of its error). Before, it writes a line back
        only when handling gave it something to send: the answer to a request that asks for something, or an error
        for a call that failed; a terminal frame handled well is answered nothing (``UNANSWERED``)."""
        return self.version >= (1, 0, 3)

    @property
    def carries_the_rendered_map_index(self) -> bool:
        """Whether the runtime's terminal frames carry the task's rendered ``map_index_template`` and the supervisor
        passes it on in its succeed, retry and finish calls: since 1.0.1, by design (apache/airflow#49809, for #49224).
        Before, no frame or call has the field (the frames' models forbid it): no call carries one."""
        return self.version >= (1, 0, 1)

    @property
    def heartbeat_gone(self) -> tuple[int, ...]:
        """The heartbeat answers that mean the server took the TI away (the supervisor kills the task,
        SERVER_TERMINATED): 404 and 409, and 410 since 1.2.1 (apache/airflow#61631: core 3.2.1 began to answer
        410 for an archived try; earlier cores never do, and earlier supervisors count it as a failed heartbeat)."""
        return (404, 409, 410) if self.version >= (1, 2, 1) else (404, 409)

    @property
    def retries_heartbeats(self) -> bool:
        """Whether the client tries a heartbeat as often as any request (``execution_api_retries``): before 1.4.0.
        Since 1.4.0 ``task_instances.heartbeat`` asks for one try (``retry=False``): the supervisor's loop sends the
        next heartbeat anyway, and counts the failed ones."""
        return self.version < (1, 4, 0)

    @property
    def max_failed_heartbeats(self) -> int:
        """``[workers] max_failed_heartbeats``, default: 3, and 30 since core 3.4 (task-sdk 1.4.0)."""
        return 30 if self.version >= (1, 4, 0) else 3

    # -- what the supervisor reads, and how an outcome reaches the server (``_handle_request``,
    #    ``_send_terminal_state_msg``, ``update_task_state_if_needed``)

    @property
    def keeps_an_undelivered_outcome(self) -> bool:
        """Whether the frame of an outcome call that failed is kept (``_pending_terminal_state_msg``) and its call
        made again at close (``_replay_pending_terminal_state_msg``): since 1.2.2, a bug fix (apache/airflow#66574).
        Before, a failed call is forgotten: nothing tells the server, whose row may stay RUNNING."""
        return self.version >= (1, 2, 2)

    @property
    def holds_an_undelivered_outcome(self) -> bool:
        """Whether the supervisor holds an outcome's state from the moment it makes the outcome's call, delivered or
        not. Before 1.2.2 it does, a bug: a failed call is taken as delivered (apache/airflow#66574 fixed it, holding
        the state only once the call answered 2xx); since 1.4.0 it does again, by design (apache/airflow#73249: the
        outcome is the worker's, and its delivery is tracked apart, ``keeps_an_undelivered_outcome``)."""
        return not (1, 2, 2) <= self.version < (1, 4, 0)

    @property
    def answers_a_transport_error(self) -> bool:
        """Whether ``handle_requests`` answers a request whose handling raised anything but the client's
        ``ServerResponseError`` (a transport error: an answer that never came, ``ReadTimeout``) with an error reply:
        since 1.2.2, a bug fix (apache/airflow#66572). Before, only a ``ServerResponseError`` is answered; anything
        else ends the request generator and escapes ``_monitor_subprocess``, so ``wait()`` raises it before it has
        seen the process exit, and decides no final state."""
        return self.version >= (1, 2, 2)

    @property
    def held_for_close(self) -> frozenset[str]:
        """The terminal frames whose state the supervisor holds with no call when they arrive, to report at close:
        ``TaskState`` always; ``RetryTask`` too since 1.4.0 (apache/airflow#73249), which before made its ``retry``
        call at once."""
        return frozenset({"TaskState", "RetryTask"} if self.version >= (1, 4, 0) else {"TaskState"})

    @property
    def delivers_a_held_outcome_itself(self) -> bool:
        """Whether a frame held for close (``held_for_close``) is delivered by its own call, whatever the exit: since
        1.4.0 (apache/airflow#73249) ``finish`` with the frame's state, or ``retry``, and a failure of that call
        raises from ``wait()``. Before, a held ``TaskState`` is reported by ``finish(final_state)`` when the exit
        leaves it standing, and by nothing when the exit decides a state sent directly (UP_FOR_RETRY)."""
        return self.version >= (1, 4, 0)

    @property
    def conflict_means_server_terminated(self) -> bool:
        """Whether a 409 on an outcome's call means the server took the TI away: since 1.4.0 (apache/airflow#73249)
        the supervisor then holds SERVER_TERMINATED, discards the outcome and answers the frame as handled. Before,
        a 409 is a failed call like any other (an error reply)."""
        return self.version >= (1, 4, 0)

    @property
    def server_termination_is_final(self) -> bool:
        """Whether SERVER_TERMINATED, once held, discards the undelivered outcome and stands over any later one (a
        later TaskState or RetryTask changes nothing, a later outcome makes no call): since 1.4.0
        (apache/airflow#73249). Before, a heartbeat's SERVER_TERMINATED keeps the undelivered frame, replayed at
        close, and a later frame's state replaces it."""
        return self.version >= (1, 4, 0)

    @property
    def acknowledges_server_termination(self) -> bool:
        """Whether the supervisor holding SERVER_TERMINATED tells the server at close: since 1.4.0
        (apache/airflow#73249) ``finish(SERVER_TERMINATED)``, a 404, 409 or 410 refusal taken quietly (the process
        has stopped anyway), any other failure raised from ``wait()``. Before, SERVER_TERMINATED is one of
        ``STATES_SENT_DIRECTLY``: no call."""
        return self.version >= (1, 4, 0)

    @property
    def heartbeats_while_undelivered(self) -> bool:
        """Whether heartbeats go on while the held outcome is not delivered yet (a frame held for close, a call that
        failed): since 1.4.0 (apache/airflow#73249), until it is delivered or SERVER_TERMINATED is held. Before,
        they stop as soon as any state is held."""
        return self.version >= (1, 4, 0)

    # -- the Python task runner (``task_runner.main``, ``run``; ``model.runtime.python_runtime``)

    @property
    def has_retry_policies(self) -> bool:
        """Whether a task can have a ``retry_policy`` that the runner consults on a failure: since 1.3.0 (AIP-105,
        apache/airflow#65474). Before, there is no such thing: a try with a policy is not one the release can have."""
        return self.version >= (1, 3, 0)

    @property
    def closes_the_channel_on_exit(self) -> bool:
        """Whether ``main`` closes its channel's socket on the way out, whatever happened: since 1.0.3, a bug fix (the
        child-side socket cleanup of apache/airflow#51180, for supervisors that waited for ever on an EOF they had
        missed, with the channel of #51699). Before, the socket is left open until the process exits."""
        return self.version >= (1, 0, 3)

    @property
    def fails_closed_on_an_unsent_outcome(self) -> bool:
        """Whether ``run`` survives a terminal frame whose send raised, and has ``main`` exit 1 after ``finalize`` when
        that frame was FAILED or UP_FOR_RETRY (any other state exits 0): since 1.2.2, a bug fix (apache/airflow#66573).
        Before, the send's error leaves ``run`` from its ``finally``: ``main`` logs a top-level error and exits 1
        whatever the state, and ``run`` returns none."""
        return self.version >= (1, 2, 2)

    @property
    def catches_a_failing_outcome_handler(self) -> bool:
        """Whether ``run`` decides an outcome whose handler itself raised (``_handle_handler_failure``: a never-retry
        exception stays FAILED, any other takes the failure path, which fails closed as FAILED if it raises too): since
        1.3.1, a bug fix (apache/airflow#70719, for #70683). Before, the error leaves ``run`` with no terminal frame
        sent, and ``main`` exits 1 on it as a top-level error."""
        return self.version >= (1, 3, 1)

    @property
    def calls_on_kill_on_sigterm(self) -> bool:
        """Whether ``run`` installs a SIGTERM handler that calls ``task.on_kill()`` in the task's own process (and does
        nothing in a child the task forked, which survives the signal): since 1.0.4, a bug fix (apache/airflow#53718,
        for #51005). Before, SIGTERM has the task process's default disposition: the process, or a child it forked,
        dies of it."""
        return self.version >= (1, 0, 4)

    @property
    def calls_on_kill_on_execution_timeout(self) -> bool:
        """Whether the runner calls ``task.on_kill()`` when the task's ``execution_timeout`` runs out, before the
        ``AirflowTaskTimeout`` goes on down the failure path: since 1.0.2 (``_execute_task``'s ``except
        AirflowTaskTimeout: task.on_kill()``, where 1.0.0 and 1.0.1 had ``# TODO: handle on kill callback here`` and
        re-raised). Before, the timed-out task is failed without its ``on_kill``."""
        return self.version >= (1, 0, 2)

    @property
    def reschedules_a_startup_without_its_dag(self) -> bool:
        """Whether a DAG not found at startup makes ``parse`` reschedule the try (``_maybe_reschedule_startup_failure``)
        and ``main`` send RescheduleTask, then exit 0: since 1.1.7 (apache/airflow#59604). Before, ``parse`` exits 1
        itself, having sent nothing."""
        return self.version >= (1, 1, 7)

    @property
    def sends_the_rendered_map_index(self) -> bool:
        """Whether a task's ``map_index_template`` rendered after ``execute`` is sent at once (``SetRenderedMapIndex``;
        a send that raises there fails the task): since 1.2.0 (apache/airflow#57208). Before, the rendered index only
        rides on the terminal frame, and no request is made for it."""
        return self.version >= (1, 2, 0)

    @property
    def serializes_deferral_kwargs(self) -> bool:
        """Whether ``_defer_task`` passes the trigger's and the task's kwargs through serde before it builds DeferTask,
        so that a value serde cannot take raises there, in the outcome's handler: since 1.2.0 (apache/airflow#59711).
        Before, DeferTask takes them as they are and its own serialization writes a value it does not know as its
        text: the task defers all the same."""
        return self.version >= (1, 2, 0)

    @property
    def asks_for_the_log_channel_after_fork_exec(self) -> bool:
        """Whether ``main``, started by fork+exec (``_AIRFLOW_FORK_EXEC=1``), first asks the supervisor for the log
        channel again (``reinit_supervisor_comms``: ResendLoggingFD): from 1.2.2 (apache/airflow#64874, a fix of a
        macOS crash) until 1.4.0, where the exec'd child inherits the channel on a fixed descriptor instead
        (apache/airflow#69008). Before 1.2.2 nothing is started by fork+exec, and the variable is not read."""
        return (1, 2, 2) <= self.version < (1, 4, 0)

    @property
    def announces_the_execution_timeout(self) -> bool:
        """Whether the runner tells the supervisor a task's ``execution_timeout`` right before it arms its own timer
        (``SetExecutionTimeout``, sent from ``_run_execute_callable``; a send that raises there fails the task before
        ``execute`` runs): since 1.4.0 (apache/airflow#72493, for #53337), so that the supervisor can stop a task
        whose timer never fires. Before, the timeout is the runner's alone, and no request is made for it."""
        return self.version >= (1, 4, 0)


#: The release the model specifies when it is given none.
SPECIFIED = Release((1, 3, 2))
