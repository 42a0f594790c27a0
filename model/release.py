"""Which task-sdk release the model specifies, and what differs between releases by design (not by bug).

The model specifies apache-airflow-task-sdk 1.3.2 with apache-airflow-core 3.3.2 (``SPECIFIED``)
unless it is handed another ``Release``: ``model.supervisor.run(scenario, release)``. Only
differences the releases were designed to have live here; a bug that a release has or lacks is
not a difference of the spec but a finding (``impl/frontdoor/findings.py``).
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
        """Whether the server answers a heartbeat on an archived try's id with 410 Gone: since core 3.2.2 (with
        task-sdk 1.2.2); before, 404 like any id that is not live."""
        return self.version >= (1, 2, 2)

    @property
    def accepts_repeated_state(self) -> bool:
        """Whether the server answers a state update asking for the state the row already holds with 200, whatever
        the row's state: since core 3.3.0 (task-sdk 1.3.0, the idempotency check of ``ti_update_state``); before,
        a row that is not RUNNING refuses it with 409 like any other update."""
        return self.version >= (1, 3, 0)

    @property
    def answers_every_request(self) -> bool:
        """Since 1.0.3 (length-prefixed frames with ids) every request is answered; before (JSON lines),
        a request was answered only when its handler had something to send: an error, for a terminal frame."""
        return self.version >= (1, 0, 3)

    @property
    def heartbeat_gone(self) -> tuple[int, ...]:
        """The heartbeat answers that mean the server took the TI away (the supervisor kills the task,
        SERVER_TERMINATED): 404 and 409, and 410 since 1.2.2 (core 3.2.2 began to answer 410 for an
        archived try; earlier cores never do, and earlier supervisors count it as a failed heartbeat)."""
        return (404, 409, 410) if self.version >= (1, 2, 2) else (404, 409)

    @property
    def max_failed_heartbeats(self) -> int:
        """``[workers] max_failed_heartbeats``, default: 3, and 30 since core 3.4 (task-sdk 1.4.0)."""
        return 30 if self.version >= (1, 4, 0) else 3


#: The release the model specifies when it is given none.
SPECIFIED = Release((1, 3, 2))
