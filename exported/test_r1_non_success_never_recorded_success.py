"""R1: a skipped task whose TaskState(skipped) cannot be sent exits 0 and is recorded SUCCESS.

Where: task_runner.run: when the terminal send raises, only FAILED and UP_FOR_RETRY are made to exit 1 (main's
fail-closed sys.exit); SKIPPED (and UP_FOR_RESCHEDULE, DEFERRED, AWAITING_INPUT) exit 0, and
ActivitySubprocess.final_state takes exit 0 with no terminal state as SUCCESS (the comment in run() says these need
a separate fix in final_state).

Releases (apache-airflow-task-sdk): from 1.2.2, still on the newest. This test fails on those and passes on the
others: it is the fix's regression test.

Correct behaviour (non_success_never_recorded_success): a try the task runner decided is not a success (skipped,
failed, up_for_retry, ...) is never recorded SUCCESS by the supervisor, whether or not its terminal frame got
through.

How sure: contradicts Airflow's documented intent: task-sdk task_runner.py, run (its comment on the fail-closed
exit): "SKIPPED / UP_FOR_RESCHEDULE / DEFERRED are intentionally not fail-closed: supervisor's final_state would
misclassify them too [...] Those need a separate fix in supervisor's final_state."; apache/airflow#66573 (potiuk,
merged): "A genuine task FAILURE was silently being upgraded to SUCCESS on transient IPC failures, breaking
downstream pipeline correctness without any signal.".

The run (finalstate's minimal counterexample): try_number=1 max_tries=0 should_retry=false; task raises
AirflowSkipException; policy none; comms terminal_send_fails. As finalstate's model of task-sdk 1.3.2 has it, the
task runner sends TaskState(skipped) [send failed], decides skipped, runs on_skipped_callback and exits 0; the
supervisor records success.

Exported by `finalstate export` from finalstate's findings registry. It needs only apache-airflow-task-sdk and
pytest; its place in Airflow is task-sdk/tests/task_sdk/execution_time/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import json
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from unittest import mock

from airflow.sdk import DAG, BaseOperator
from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import BundleInfo, StartupDetails, XComResult
from airflow.sdk.execution_time.supervisor import ActivitySubprocess

TI_ID = uuid.UUID("01970000-0000-7000-8000-000000000001")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
TERMINAL_FRAMES = {"TaskState", "SucceedTask", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"}


def _task_sdk_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(re.match(r"\d*", part).group() or 0) for part in version("apache-airflow-task-sdk").split(".")[:3])


def state_name(state) -> str | None:
    """A state as the supervisor holds or reports it (a ``TaskInstanceState``, or ``SERVER_TERMINATED`` in either
    spelling), as one lower-case string."""
    return None if state is None else str(getattr(state, "value", state)).lower()


def _model(model, **values):
    """``model`` of ``values``, less the fields the installed release's model does not have."""
    return model(**{k: v for k, v in values.items() if k in model.model_fields})


def run_context(max_tries: int, should_retry: bool) -> TIRunContext:
    """The ``TIRunContext`` the Execution API hands out as the attempt starts (``task_instances.start``)."""
    dag_run = _model(DagRun, dag_id="exported", run_id="run", logical_date=NOW, data_interval_start=NOW,
                     data_interval_end=NOW, run_after=NOW, start_date=NOW, end_date=None, run_type="manual",
                     state="running", consumed_asset_events=[], partition_key=None)
    return _model(TIRunContext, dag_run=dag_run, max_tries=max_tries, should_retry=should_retry, xcom_keys_to_clear=[])


def task_instance(try_number: int, ti_id: uuid.UUID = TI_ID) -> TaskInstance:
    """The task instance the attempt is of."""
    return _model(TaskInstance, id=ti_id, task_id="task", dag_id="exported", run_id="run", try_number=try_number,
                  map_index=-1, dag_version_id=uuid.UUID(int=2))

#: The module of the exceptions a task ends by: the SDK's own from task-sdk 1.2.0, apache-airflow-core's before.
exceptions = importlib.import_module("airflow.sdk.exceptions" if _task_sdk_version() >= (1, 2, 0) else "airflow.exceptions")


@dataclasses.dataclass
class Sent:
    """One request the task runner handed the supervisor channel, and whether it got through."""

    type: str
    state: "str | None"
    delivered: bool
    msg: object = dataclasses.field(default=None, repr=False, compare=False)  # the request itself

    def __repr__(self) -> str:
        return f"{self.type}({self.state or ''})" + ("" if self.delivered else " (send failed)")


class SupervisorChannel:
    """``SUPERVISOR_COMMS`` as ``main`` makes it (``CommsDecoder[...](log=...)``): it hands out ``startup``, records every
    request (and tells ``report``), answers as the supervisor does (GetXCom: no value), and raises ``BrokenPipeError``
    for the sends ``failing`` says: "terminal" (the terminal frame's), "every" (all), None (none)."""

    def __init__(self, startup: StartupDetails, failing: "str | None", report=lambda event: None):
        self.startup, self.failing, self.report = startup, failing, report
        self.sent: list[Sent] = []
        self.socket = mock.MagicMock(name="socket")

    def __getitem__(self, _types):
        return self

    def __call__(self, **_kwargs):
        return self

    def _get_response(self):
        return self.startup

    def send(self, msg):
        fails = self.failing == "every" or (self.failing == "terminal" and msg.type in TERMINAL_FRAMES)
        self.sent.append(Sent(msg.type, state_name(getattr(msg, "state", None)) if msg.type == "TaskState" else None,
                              not fails, msg))
        self.report(("sent", self.sent[-1]))
        if fails:
            raise BrokenPipeError("the supervisor channel is broken")
        return XComResult(key=msg.key, value=None) if msg.type == "GetXCom" else None


#: The task's state-change callbacks: each one the task runner runs is recorded by its name.
CALLBACKS = ("on_success_callback", "on_failure_callback", "on_retry_callback", "on_skipped_callback")


class ScriptedOperator(BaseOperator):
    """A task whose ``execute`` first gets SIGTERM if ``sigterm`` (as the supervisor's kill sends it while the task
    runs), forks a child that gets SIGTERM if ``child_exited`` is given (the child's exit status goes there), labels
    its map index if it has a ``map_index_template``, then raises ``error`` (returns when None). ``on_kill`` calls
    ``killed``; each of its state-change callbacks calls ``called_back`` with its name when run. (Functions, not
    attributes, carry what the task did out: the runner works on a copy of the operator.)"""

    def __init__(self, *, error: "BaseException | None" = None, sigterm: bool = False, killed=lambda: None,
                 child_exited=None, called_back=lambda name: None, **kwargs):
        super().__init__(**kwargs, **{name: [functools.partial(_called_back, called_back, name)] for name in CALLBACKS})
        self.error, self.sigterm, self.killed, self.child_exited = error, sigterm, killed, child_exited

    def execute(self, context):
        if self.sigterm:
            signal.raise_signal(signal.SIGTERM)  # a handler the runner installed runs before raise_signal returns
        if self.child_exited is not None:
            self.child_exited(fork_a_child_that_gets_sigterm())
        if self.map_index_template:
            context["label"] = "mapped"
        if self.error is not None:
            raise self.error

    def on_kill(self):
        self.killed()


def fork_a_child_that_gets_sigterm() -> int:
    """Fork a child, as a task that starts a subprocess does; the supervisor's SIGTERM reaches it (the kill signals the
    task runner's whole process group): it raises SIGTERM on itself, then leaves at once, exiting 0 if it carried on
    after the signal (70 if the handler raised). Its exit status, negative for a death by that signal."""
    pid = os.fork()
    if pid == 0:  # the child: it never returns into the test
        status = 0
        try:
            signal.raise_signal(signal.SIGTERM)
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


def _called_back(called_back, name: str, context) -> None:
    called_back(name)


def _startup(try_number: int, max_tries: int, should_retry: bool) -> StartupDetails:
    return _model(StartupDetails, ti=task_instance(try_number), dag_rel_path="exported.py",
                  bundle_info=BundleInfo(name="exported", version=None), start_date=NOW,
                  ti_context=run_context(max_tries, should_retry), sentry_integration="")


class _Bundle:
    """The bundle as ``main``'s ``BundleVersionLock`` reads it: unversioned."""

    name = "exported"
    version = None


def final_state_for(exit_code: int, should_retry: bool) -> str:
    """The real supervisor's ``final_state`` for a task process that exited ``exit_code`` with no terminal state
    delivered, under the ``should_retry`` the server gave at start."""
    sup = ActivitySubprocess(id=TI_ID, pid=4242, process=mock.MagicMock(), stdin=mock.MagicMock(),
                             process_log=mock.MagicMock(), client=mock.MagicMock(), selector=mock.MagicMock())
    sup._exit_code = exit_code
    if hasattr(sup, "_should_retry"):  # task-sdk 1.1.2 on; before, a non-zero exit is always FAILED
        sup._should_retry = should_retry
    return state_name(sup.final_state)


@dataclasses.dataclass
class Try:
    """What came of one try of the real task runner: the state ``run`` decided, the exit ``main`` chose (or the signal
    its process died of, negative), every request it sent, what the supervisor's ``final_state`` records for that
    exit when no terminal frame got through (None when one did: the supervisor then goes by the frame), the task's
    state-change callbacks that ran, how many times its ``on_kill`` ran, and the exit status of the child it forked
    (None: it forked none)."""

    state: "str | None"
    exit_code: int
    sent: list
    recorded: "str | None"
    callbacks: list = dataclasses.field(default_factory=list)
    on_kill_calls: int = 0
    forked_child_exit: "int | None" = None


#: A try run in a child process of its own (one that gets SIGTERM) must be over within this; else it is ended.
TRY_DEADLINE_SECONDS = 60.0


def run_try(error: "BaseException | None", *, try_number: int, max_tries: int, should_retry: bool,
            failing: "str | None" = None, retry_policy=None, map_index_template: "str | None" = None,
            sigterm: bool = False, forked_child: bool = False, dag_found: bool = True) -> Try:
    """One try through the real ``task_runner.main`` (startup, ``run``, ``finalize``, its ``sys.exit``): the task raises
    ``error`` (returns when None), getting SIGTERM first if ``sigterm``, after forking a child that gets SIGTERM if
    ``forked_child``. Only the supervisor channel and the DAG file's parsing are stood in for; with ``dag_found``
    False the real ``parse`` runs, on a DAG bundle whose file defines no such DAG (a DAG not found at startup).

    A try that gets SIGTERM runs in a child process of its own, as the task runner runs in its own process: on a
    release whose runner installs no SIGTERM handler, the signal kills that process, not the test."""
    def live(report) -> None:
        _live_try(report, error, try_number=try_number, max_tries=max_tries, should_retry=should_retry,
                  failing=failing, retry_policy=retry_policy, map_index_template=map_index_template, sigterm=sigterm,
                  forked_child=forked_child, dag_found=dag_found)

    if not sigterm:
        events: list = []
        live(events.append)
        return _try_of(events, None, should_retry)
    return _try_of(*_in_a_child_process(live), should_retry)


def _live_try(report, error, *, try_number, max_tries, should_retry, failing, retry_policy, map_index_template,
              sigterm, forked_child, dag_found) -> None:
    """The try itself, telling ``report`` what happens as it happens: ("sent", Sent), ("callback", NAME), ("on_kill",),
    ("forked_child", STATUS), ("decided", STATE), ("exit", CODE)."""
    extra = {"retry_policy": retry_policy} if retry_policy is not None else {}
    with DAG("exported", schedule=None):
        task = ScriptedOperator(task_id="task", error=error, retries=max_tries, map_index_template=map_index_template,
                                sigterm=sigterm, killed=lambda: report(("on_kill",)),
                                child_exited=(lambda status: report(("forked_child", status))) if forked_child else None,
                                called_back=lambda name: report(("callback", name)), **extra)
    channel = SupervisorChannel(_startup(try_number, max_tries, should_retry), failing, report)
    real_run = task_runner.run

    def parse(what, log):
        return task_runner.RuntimeTaskInstance.model_construct(
            **what.ti.model_dump(exclude_unset=True), task=task, bundle_instance=_Bundle(),
            _ti_context_from_server=what.ti_context, max_tries=what.ti_context.max_tries,
            start_date=what.start_date, state="running", sentry_integration="")

    def recording_run(ti, context, log):
        result = real_run(ti, context, log)
        report(("decided", state_name(result[0])))
        return result

    stand_ins = {"CommsDecoder": channel, "run": recording_run, **({"parse": parse} if dag_found else {})}
    sigterm_handler = signal.getsignal(signal.SIGTERM)  # the runner installs its own
    exit_code = 0
    try:
        with mock.patch.multiple(task_runner, **stand_ins), _bundle_without_the_dag(dag_found), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            task_runner.main()
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, sigterm_handler)
    report(("exit", exit_code))


@contextlib.contextmanager
def _bundle_without_the_dag(dag_found: bool):
    """With ``dag_found`` False, the DAG bundle ``exported`` (``StartupDetails.bundle_info``) is a local bundle whose
    file ``exported.py`` defines no DAG, configured as a deployment configures its bundles
    (``[dag_processor] dag_bundle_config_list``); else nothing."""
    if dag_found:
        yield
        return
    folder = tempfile.mkdtemp(prefix="exported-bundle-")
    with open(os.path.join(folder, "exported.py"), "w") as f:
        f.write("# the DAG this file defined is gone (renamed, or not synced to this worker yet)\n")
    bundles = [{"name": "exported", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": folder}}]
    path = list(sys.path)
    try:
        with mock.patch.dict(os.environ, {"AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles)}):
            _bundle_configuration_changed()
            yield
    finally:
        _bundle_configuration_changed()
        sys.path[:] = path  # parse puts the bundle's root on it
        shutil.rmtree(folder, ignore_errors=True)


def _bundle_configuration_changed() -> None:
    """apache-airflow-core 3.4 reads the DAG bundles' configuration once per process (a cached snapshot): have it
    read again, the configuration having changed (earlier cores read it whenever a bundles manager is made)."""
    from airflow.dag_processing.bundles import manager

    snapshot = getattr(manager, "_load_bundle_config_snapshot", None)
    if hasattr(snapshot, "cache_clear"):
        snapshot.cache_clear()


def _in_a_child_process(live) -> "tuple[list, int]":
    """Run ``live`` (a try, telling its reporter what happens) in a forked child process; what it reported before it
    ended, and how its process ended (its exit status, negative for a death by signal)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it never returns into the test
        status = 0
        try:
            os.close(read_end)
            out = os.fdopen(write_end, "w", buffering=1)
            live(lambda event: out.write(json.dumps(_as_data(event)) + "\n"))
        except BaseException:
            status = 70
        finally:
            os._exit(status)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + TRY_DEADLINE_SECONDS
    with os.fdopen(read_end, "rb", buffering=0) as lines:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([lines], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the try did not end within {TRY_DEADLINE_SECONDS:.0f} s; its process was killed")
            chunk = lines.read(1 << 16)
            if not chunk:
                break
            data += chunk
    _, wait_status = os.waitpid(pid, 0)
    events = [_from_data(json.loads(line)) for line in data.decode().splitlines()]
    return events, os.waitstatus_to_exitcode(wait_status)


def _as_data(event: tuple) -> list:
    return ["sent", event[1].type, event[1].state, event[1].delivered] if event[0] == "sent" else list(event)


def _from_data(event: list) -> tuple:
    return ("sent", Sent(*event[1:])) if event[0] == "sent" else tuple(event)


def _try_of(events: list, process_exit: "int | None", should_retry: bool) -> Try:
    """The ``Try`` the reported ``events`` make: its exit ``main``'s, or, where ``main`` never chose one (its process
    died first), ``process_exit``."""
    sent = [e[1] for e in events if e[0] == "sent"]
    decided = [e[1] for e in events if e[0] == "decided"]
    exit_code = next((e[1] for e in events if e[0] == "exit"), process_exit)
    child = [e[1] for e in events if e[0] == "forked_child"]
    through = any(s.delivered and s.type in TERMINAL_FRAMES for s in sent)
    return Try(decided[0] if decided else None, exit_code, sent,
               None if through else final_state_for(exit_code, should_retry),
               [e[1] for e in events if e[0] == "callback"], sum(1 for e in events if e[0] == "on_kill"),
               child[0] if child else None)


def minimal_run() -> Try:
    """R1's run: try_number=1 max_tries=0 should_retry=false; task raises AirflowSkipException; policy none; comms terminal_send_fails"""
    return run_try(exceptions.AirflowSkipException("R1"), try_number=1, max_tries=0, should_retry=False,
                   failing='terminal')


def test_r1_non_success_never_recorded_success():
    attempt = minimal_run()
    assert attempt.state in (None, "success") or attempt.recorded != "success", (
        f"The task runner decided {attempt.state}, but its terminal frame never got through ({attempt.sent}) and it "
        f"exited {attempt.exit_code}: the supervisor's final_state for that exit is success, so a task that did not "
        f"succeed is recorded SUCCESS.")
