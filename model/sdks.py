"""Airflow's language SDK runtimes as they are: a profile per SDK release, each trait read from the SDK's source.

A *profile* is a named ``model.coordinator.CoordinatorRuntime`` with, for each trait, where in apache/airflow it was
read (``Trait``): the file and the function, and what it does there. The profiles are the runtimes a ``cmd:`` target
may be declared to be (``finalstate check --profile NAME``); an undeclared one is accepted where the contract or some
profile explains what it did (``explaining``), and the report names which. The invariants judge every runtime alike,
whatever its profile: a profile says what a runtime *is*, not that it is right.

The SDKs' 1.0.0 releases (November 2026) are not served by the registries this project reaches; the sources were
read in apache/airflow (``go-sdk/``, ``java-sdk/``, ``ts-sdk/``), and the Go runtime of this project reproduces each
trait by a flag (``runtimes/README.md``), so every profile is checked against the real supervisor.
"""

from __future__ import annotations

import operator
from typing import Callable

import attrs

from model.coordinator import (CONTRACT, FAILS_CLOSED_AFTER_ANY_FRAME, FAILS_CLOSED_NEVER, FRAME_ID_COUNTED,
                               FRAME_ID_REUSED, SEED, SIGTERM_CANCELS, SIGTERM_DIES, SIGTERM_EXITS_143,
                               SIGTERM_GRACE_THEN_EXIT_1, SIGTERM_TRAPS, CoordinatorRun, CoordinatorRuntime,
                               coordinator_attempt)
from model.release import SPECIFIED, Release
from model.scenario import Observation


@attrs.frozen
class Trait:
    """Where one trait of a profile was read: the trait (a ``CoordinatorRuntime`` field), the file in apache/airflow,
    the function, and what the code does there."""

    #: The trait: a ``CoordinatorRuntime`` field.
    name: str
    #: The file in apache/airflow it was read from.
    file: str
    #: The function there.
    function: str
    #: What the code does there, in words.
    reads: str


@attrs.frozen
class Profile:
    """An SDK release's runtime: its name (``go-sdk-1.0.0``), what it is (``runtime``), where each trait was read, and
    the upstream change that separates it from its neighbour (``change``, e.g. the retry fix)."""

    #: The SDK release's name (``go-sdk-1.0.0``).
    name: str
    #: What its runtime does, trait by trait.
    runtime: CoordinatorRuntime
    #: Where each trait was read.
    traits: tuple[Trait, ...]
    #: The upstream change that separates it from its neighbour.
    change: str = ""

    def __attrs_post_init__(self):
        fields = {f.name for f in attrs.fields(CoordinatorRuntime)} - {"escape_exit"}
        missing = fields - {t.name for t in self.traits}
        if missing:
            raise ValueError(f"profile {self.name}: no source for {', '.join(sorted(missing))}")


_GO_SERVER = "go-sdk/pkg/execution/server.go"
_GO_RUNNER = "go-sdk/pkg/execution/task_runner.go"
_JAVA = "java-sdk/sdk/src/main/kotlin/org/apache/airflow/sdk"
_TS = "ts-sdk/src/coordinator/runtime.ts"

GO_SDK_1_0_0 = Profile(
    "go-sdk-1.0.0",
    CoordinatorRuntime(retries=True, fails_closed=FAILS_CLOSED_NEVER, sigterm_waiting=SIGTERM_TRAPS,
                       sigterm_running=SIGTERM_CANCELS, frame_id=FRAME_ID_REUSED, retry_reason=True,
                       lookup_first=True),
    (Trait("retries", _GO_RUNNER, "RunTask", "an error or a recovered panic is RetryTask while ti_context.should_retry, "
           "else TaskState(failed)"),
     Trait("fails_closed", _GO_SERVER, "Serve", "writes the task's result with SendRequest and returns nil: the "
           "answer is never read, the process exits 0"),
     Trait("sigterm_waiting", "go-sdk (package airflow)", "BundleRef.Serve",
           "signal.NotifyContext traps SIGTERM; a runtime blocked reading StartupDetails never looks at the context, "
           "so only the supervisor's SIGKILL ends it"),
     Trait("sigterm_running", "go-sdk (package airflow)", "BundleRef.Serve",
           "the task's context is cancelled; a task that honours it returns its error, which RunTask reports"),
     Trait("panic_escapes", _GO_RUNNER, "RunTask", "a panic in the task is recovered and reported as a failure"),
     Trait("frame_id", _GO_SERVER, "Serve", "SendRequest(frame.ID, result): the terminal frame reuses StartupDetails' "
           "id 0"),
     Trait("retry_reason", "go-sdk/pkg/execution/messages.go", "RetryTask", "carries retry_reason, the error's text"),
     Trait("lookup_first", _GO_RUNNER, "RunTask", "the task is looked up before the TI id is validated: an unknown "
           "task is TaskState(removed) whatever the id")),
    change="apache/airflow#68554 (the fix of #67797): the retry branch",
)
GO_SDK_BEFORE_THE_RETRY_FIX = Profile(
    "go-sdk-before-68554",
    attrs.evolve(SEED, sigterm_waiting=SIGTERM_DIES, sigterm_running=SIGTERM_DIES),
    (Trait("retries", _GO_RUNNER, "RunTask", "every error is TaskState(failed): no retry branch (apache/airflow#67797)"),
     Trait("fails_closed", _GO_SERVER, "Serve", "writes the result and returns nil, never reading the answer"),
     Trait("sigterm_waiting", _GO_SERVER, "Serve", "installs no signal handler: SIGTERM's default disposition"),
     Trait("sigterm_running", _GO_SERVER, "Serve", "installs no signal handler: SIGTERM's default disposition"),
     Trait("panic_escapes", _GO_RUNNER, "RunTask", "a panic in the task is recovered and reported as a failure"),
     Trait("frame_id", _GO_SERVER, "Serve", "SendRequest(frame.ID, result): StartupDetails' id 0"),
     Trait("retry_reason", _GO_RUNNER, "RunTask", "sends no RetryTask at all"),
     Trait("lookup_first", _GO_RUNNER, "RunTask", "the task is looked up before the TI id is validated")),
    change="the seed, apache/airflow#67797: never retried",
)
JAVA_SDK_1_0_0 = Profile(
    "java-sdk-1.0.0",
    CoordinatorRuntime(retries=True, fails_closed=FAILS_CLOSED_AFTER_ANY_FRAME, sigterm_waiting=SIGTERM_EXITS_143,
                       sigterm_running=SIGTERM_EXITS_143, frame_id=FRAME_ID_COUNTED, retry_reason=False,
                       lookup_first=True),
    (Trait("retries", f"{_JAVA}/execution/Task.kt", "run", "catch (e: Throwable): RetryTask while shouldRetry, else "
           "TaskState(failed)"),
     Trait("fails_closed", f"{_JAVA}/CoordinatorComm.kt", "communicate", "reads exactly one answer to every frame and "
           "throws on an error answer or none: the JVM exits 1 after any frame the supervisor did not take"),
     Trait("sigterm_waiting", f"{_JAVA}/Server.kt", "serve", "installs no handler: the JVM runs its shutdown hooks on "
           "SIGTERM and exits 128 + 15"),
     Trait("sigterm_running", f"{_JAVA}/Server.kt", "serve", "installs no handler: the JVM runs its shutdown hooks on "
           "SIGTERM and exits 128 + 15, sending nothing more"),
     Trait("panic_escapes", f"{_JAVA}/execution/Task.kt", "run", "catch (e: Throwable) catches an Error too"),
     Trait("frame_id", f"{_JAVA}/CoordinatorComm.kt", "communicate", "request ids count from 0 on its own"),
     Trait("retry_reason", f"{_JAVA}/execution/Task.kt", "run", "RetryTask without retry_reason"),
     Trait("lookup_first", f"{_JAVA}/execution/Task.kt", "run", "an unknown task is TaskState(removed), looked up "
           "before any check of the TI id")),
    change="apache/airflow#68555 (the fix of #67798): the retry branch, and Throwable caught",
)
JAVA_SDK_BEFORE_THE_RETRY_FIX = Profile(
    "java-sdk-before-68555",
    attrs.evolve(JAVA_SDK_1_0_0.runtime, retries=False, panic_escapes=True),
    (Trait("retries", f"{_JAVA}/execution/Task.kt", "run", "catch (e: Exception): TaskState(failed), no retry branch "
           "(apache/airflow#67798)"),
     *(t for t in JAVA_SDK_1_0_0.traits if t.name not in ("retries", "panic_escapes")),
     Trait("panic_escapes", f"{_JAVA}/execution/Task.kt", "run", "catch (e: Exception) misses an Error: it escapes with "
           "no terminal frame, and the JVM exits 1")),
    change="apache/airflow#67798: never retried, and an Error escaped",
)
TS_SDK_1_0_0 = Profile(
    "ts-sdk-1.0.0",
    CoordinatorRuntime(retries=True, fails_closed=FAILS_CLOSED_NEVER, sigterm_waiting=SIGTERM_DIES,
                       sigterm_running=SIGTERM_GRACE_THEN_EXIT_1, frame_id=FRAME_ID_REUSED, retry_reason=True,
                       lookup_first=True),
    (Trait("retries", _TS, "buildFailureResponse", "RetryTask (retry_reason: the error's message, 500 characters at "
           "most) while ti_context.should_retry, else TaskState(failed)"),
     Trait("fails_closed", _TS, "startCoordinator / sendSupervisorResponse", "writes its frame as the response to "
           "StartupDetails and closes its channels: no answer read"),
     Trait("sigterm_waiting", _TS, "startCoordinator", "createRuntimeAbort is installed only once the first frame has "
           "arrived, and disposed of once the frame is sent: SIGTERM's default disposition while it waits"),
     Trait("sigterm_running", _TS, "createRuntimeAbort", "SIGTERM aborts the task's AbortSignal and forces exit 1 after "
           "ABORT_GRACE_PERIOD_MS (30 s); a task that honours the abort rejects, and handleTask reports it first"),
     Trait("panic_escapes", _TS, "handleTask", "catch (err) takes whatever the task throws"),
     Trait("frame_id", _TS, "startCoordinator", "sendSupervisorResponse(firstFrame.id, ...): StartupDetails' id"),
     Trait("retry_reason", _TS, "buildFailureResponse", "RetryTask carries retry_reason"),
     Trait("lookup_first", _TS, "handleTask", "getRegisteredTask first: a missing handler is TaskState(removed), with "
           "no check of the TI id")),
)
CONTRACT_PROFILE = Profile(
    "contract",
    CONTRACT,
    tuple(Trait(name, "runtimes/README.md", "the coordinator contract", reads) for name, reads in (
        ("retries", "RetryTask while should_retry, else TaskState(failed)"),
        ("fails_closed", "waits for its answer; exits 1 when a failure's frame was not taken"),
        ("sigterm_waiting", "SIGTERM's default disposition"), ("sigterm_running", "SIGTERM's default disposition"),
        ("panic_escapes", "a panic is a failure"), ("frame_id", "its own count"),
        ("retry_reason", "none"), ("lookup_first", "the TI id is checked first"))),
)

#: Every profile, by name: the contract first, then each SDK release, newest first.
PROFILES: dict[str, Profile] = {p.name: p for p in (
    CONTRACT_PROFILE, GO_SDK_1_0_0, GO_SDK_BEFORE_THE_RETRY_FIX, JAVA_SDK_1_0_0, JAVA_SDK_BEFORE_THE_RETRY_FIX,
    TS_SDK_1_0_0,
)}


def profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` naming the profiles there are."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown SDK profile {name!r}; the profiles are: {', '.join(PROFILES)}") from None


def explaining(run: CoordinatorRun, observed: Observation,
               same: Callable[[Observation, Observation], bool] = operator.eq,
               release: Release = SPECIFIED) -> tuple[str, ...]:
    """The profiles whose runtime, meeting ``run`` under ``release``'s supervisor, is observed as ``observed`` was (by
    ``same``: conformance compares what decides the attempt, ``impl.targets.kinds.decides_the_attempt``), in
    ``PROFILES``' order, the contract first; empty when none explains it."""
    return tuple(name for name, p in PROFILES.items() if same(coordinator_attempt(run, p.runtime, release), observed))
