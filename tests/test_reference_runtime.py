"""The reference coordinator-mode runtime: its wire shapes, and the seed's acceptance under the real supervisor.

The seed's bug itself, kept as a fixture (``tests/fixtures/seed_runtime.py``), is caught in
``tests/test_coordinator_commands.py``, beside the Go runtime's ``--pre-fix``.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

pytest.importorskip("airflow.sdk", reason="the reference runtime is checked under the real supervisor")

from airflow.sdk.api.datamodels._generated import DagRun, TaskInstance, TIRunContext  # noqa: E402
from airflow.sdk.execution_time.comms import BundleInfo, RetryTask, StartupDetails  # noqa: E402

from impl.coordinator import reference_runtime  # noqa: E402
from impl.coordinator.target import reference_command, runner  # noqa: E402
from impl.wire import codec  # noqa: E402
from impl.targets.kinds import KINDS  # noqa: E402
from impl.search.scenarios import USER_ACTIONS  # noqa: E402
from model.coordinator import CoordinatorRun, coordinator_attempt  # noqa: E402
from model.scenario import FAILED, HEARTBEAT_OK, UP_FOR_RETRY, Heartbeat, RunContext  # noqa: E402

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _startup(should_retry: bool, max_tries: int, task_id: str = "success") -> dict:
    """A StartupDetails body as Airflow's own model dumps it onto the wire."""
    dag_run = DagRun(dag_id="d", run_id="r", logical_date=NOW, data_interval_start=NOW, data_interval_end=NOW,
                     run_after=NOW, start_date=NOW, end_date=None, run_type="manual", state="running",
                     consumed_asset_events=[], partition_key=None)
    details = StartupDetails(
        ti=TaskInstance(id=uuid.uuid4(), task_id=task_id, dag_id="d", run_id="r", try_number=2,
                        dag_version_id=uuid.uuid4()),
        dag_rel_path="d.py", bundle_info=BundleInfo(name="b", version=None), start_date=NOW,
        ti_context=TIRunContext(dag_run=dag_run, max_tries=max_tries, should_retry=should_retry),
        sentry_integration="",
    )
    return details.model_dump(mode="json")


@pytest.mark.parametrize("should_retry,max_tries", [(True, 3), (False, 1), (False, 0)])
def test_run_context_is_parsed_from_ti_context(should_retry, max_tries):
    """Step 1: should_retry and max_tries come from StartupDetails.ti_context."""
    context = reference_runtime.RunContext.decode(_startup(should_retry, max_tries))
    assert (context.try_number, context.max_tries, context.should_retry) == (2, max_tries, should_retry)


def test_retry_task_has_the_python_wire_shape():
    """Step 2: the RetryTask body is valid under Airflow's schema.json and decodes as comms.RetryTask."""
    body = reference_runtime.retry_task(NOW, 30.0, "flaky")
    codec.validate_body(body)
    frame = codec.decode_request(codec.encode_request(codec.RequestFrame(1, body)))
    decoded = RetryTask.model_validate(frame.body)
    assert (decoded.state, decoded.retry_delay_seconds, decoded.retry_reason) == ("up_for_retry", 30.0, "flaky")
    assert set(body) == set(RetryTask.model_fields)


@pytest.mark.parametrize("outcome", ["success", "error", "panic", "bad_ti_id", "unknown_task"])
def test_every_terminal_body_is_schema_valid(outcome):
    for should_retry in (True, False):
        codec.validate_body(reference_runtime.execute(_startup(should_retry, 1, task_id=outcome)))


@pytest.mark.parametrize("outcome", ["error", "panic"])
def test_seed_acceptance_under_the_real_supervisor(outcome):
    """Step 3 end to end: a failing task with retries left is UP_FOR_RETRY, not FAILED; without, FAILED."""
    run = runner(reference_command())
    with_retries = run(CoordinatorRun(RunContext.from_server(1, 1), outcome))
    assert (with_retries.final_state, with_retries.row) == (UP_FOR_RETRY, UP_FOR_RETRY)
    last_try = run(CoordinatorRun(RunContext.from_server(2, 1), outcome))
    assert (last_try.final_state, last_try.row) == (FAILED, FAILED)


def test_users_actions_while_the_task_runs_end_the_try_as_the_model_says():
    """A user marks, clears or deletes the task instance while the reference runtime's task runs (the harness acts on
    the server; the supervisor learns of it at its terminal call, or at a heartbeat): the try ends as the model says,
    under the real supervisor."""
    run = runner(reference_command())
    for action in USER_ACTIONS:
        for outcome in ("success", "error"):
            for world in ((action,), (action, Heartbeat(HEARTBEAT_OK))):
                tried = CoordinatorRun(RunContext.from_server(1, 1), outcome, world)
                expected, observed = coordinator_attempt(tried), run(tried)
                assert KINDS["coordinator"].agree(expected, observed), "\n".join(
                    [tried.to_text(), "observed:", *observed.to_lines(), "model:", *expected.to_lines()])
