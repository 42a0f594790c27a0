"""``airflow-inproc`` on ``--server airflow``: the real supervisor, Airflow's real client, the real Execution API.

One target (one ``AirflowServer``, one SQLite copy under ``build/server/``) serves the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow.api_fastapi.execution_api.app", reason="--server airflow needs apache-airflow-core")

from impl.server.airflow_attempt import Unsupported  # noqa: E402
from impl.supervisor_inproc import target as inproc  # noqa: E402
from model.scenario import ApiCall, Scenario  # noqa: E402
from model.supervisor import run as model_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real():
    loaded = inproc.target("airflow-inproc", "airflow")
    yield loaded
    loaded.close()


def attempt(real, text):
    """The observation and the record of one attempt on the real server."""
    observed = real.run(Scenario.from_text(text))
    return observed, real.run.last


def exchanges(record):
    return [(e.name, e.attempt, e.status) for e in record.exchanges]


def test_the_default_server_is_the_model_and_unchanged(monkeypatch):
    monkeypatch.delenv("FINALSTATE_SERVER", raising=False)
    assert inproc.target("airflow-inproc").run is inproc.run


def test_a_clean_success_ends_with_the_row_success(real):
    observed, record = attempt(real, "try_number=1 max_tries=0; send SucceedTask; exit 0")
    assert observed.calls == (ApiCall("start", 200), ApiCall("succeed", 200))
    assert (observed.final_state, observed.row, observed.replies, observed.raised) == (
        "success", "success", ("ok",), None)
    assert exchanges(record) == [("start", 1, 200), ("succeed", 1, 204)]  # 2xx is recorded as the model's 200
    assert (record.row_before.state, record.row_after.state) == ("queued", "success")
    assert all(str(record.ti_id) in e.path for e in record.exchanges)  # the row's own id, not a constant
    assert observed == model_run(Scenario.from_text("try_number=1 max_tries=0; send SucceedTask; exit 0"))


def test_f2_a_crash_while_should_retry_leaves_the_real_row_running(real):
    observed, record = attempt(real, "try_number=1 max_tries=1; exit 1")
    assert observed.final_state == "up_for_retry"
    assert observed.calls == (ApiCall("start", 200),)  # neither retry() nor finish()
    assert observed.row == "running"
    assert (record.row_after.state, record.row_after.try_number, record.row_after.max_tries) == ("running", 1, 1)


def test_a_transient_fault_on_succeed_is_invisible_under_default_retries(real):
    observed, record = attempt(real, "fault succeed transient; send SucceedTask; exit 0")
    assert observed.calls == (ApiCall("start", 200), ApiCall("succeed", 500), ApiCall("succeed", 200))  # each try
    assert (observed.row, observed.replies) == ("success", ("ok",))
    assert exchanges(record) == [("start", 1, 200), ("succeed", 1, 500), ("succeed", 2, 204)]
    assert record.exchanges[1].server_status is None  # the app never saw the first request


def test_a_permanent_fault_is_500_on_every_attempt(real):
    observed, record = attempt(real, "fault finish permanent; exit 1")
    assert observed.calls == (ApiCall("start", 200), *[ApiCall("finish", 500, "failed")] * 5)
    assert observed.row == "running"
    assert [e.attempt for e in record.exchanges if e.name == "finish"] == [1, 2, 3, 4, 5]


def test_one_try_makes_a_transient_fault_the_calls_answer(real):
    observed, record = attempt(real, "execution_api_retries=1; fault finish transient; exit 1")
    assert observed.calls == (ApiCall("start", 200), ApiCall("finish", 500, "failed"))
    assert (observed.row, observed.raised) == ("running", "ServerResponseError(500)")


@pytest.mark.parametrize("answer,row", [(404, "deleted"), (409, "failed"), (410, "restarting")])
def test_a_gone_heartbeat_is_the_worlds_doing(real, answer, row):
    observed, record = attempt(real, f"try_number=1 max_tries=1; heartbeat {answer}; exit 0")
    assert observed.calls == (ApiCall("start", 200), ApiCall("heartbeat", answer))
    assert (observed.final_state, observed.row, observed.row_gone) == ("SERVER_TERMINATED", row, answer)


def test_an_unsupported_run_context_is_a_clear_error(real):
    with pytest.raises(Unsupported, match="should_retry=false .* not supported by the real server backend"):
        real.run(Scenario.from_text("try_number=1 max_tries=1 should_retry=false; exit 1"))
    assert isinstance(Unsupported("x"), NotImplementedError)


def test_replay_on_the_real_server_prints_the_exchange_and_the_rows():
    """The command as a user types it, in its own process (one ``AirflowServer`` per process)."""
    env = dict(os.environ)
    env.pop("FINALSTATE_SERVER", None)
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "replay", "--server", "airflow", "--target",
                           "airflow-inproc", "try_number=1 max_tries=1 should_retry=true; exit 1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 1, done.stderr  # F2's violations
    out = done.stdout
    assert "row before: queued try_number=1 max_tries=1" in out
    assert "row after: running try_number=1 max_tries=1" in out
    assert "#1.1 PATCH /task-instances/" in out and "/run [start] -> 200" in out
    assert "no_task_instance_left_running" in out


def test_replay_names_what_the_real_server_cannot_play(real, monkeypatch, capsys):
    from impl.frontdoor import cli
    from impl.targets.registry import Target

    monkeypatch.setenv("FINALSTATE_SERVER", "model")  # cli.main sets it; monkeypatch puts it back
    monkeypatch.setattr(cli, "_load", lambda name, kind: Target(name, real.run))  # this module's server
    with pytest.raises(SystemExit, match="should_retry=false .* not supported by the real server backend"):
        cli.main(["replay", "--server", "airflow", "--target", "airflow-inproc",
                  "try_number=1 max_tries=1 should_retry=false; exit 1"])
    assert os.environ["FINALSTATE_SERVER"] == "airflow"
    assert cli.main(["replay", "--server", "airflow", "--target", "airflow-inproc", "send SucceedTask; exit 0"]) == 0
    out = capsys.readouterr().out
    assert "row before: queued" in out and "row after: success" in out and "[succeed] -> 204" in out


#: Runs of the widened world's words (issue 30): SIGTERM handled, users and the scheduler acting on the row, a process
#: that never exits; each with the heartbeat or the call that meets what was done.
WIDENED_WORLD = (
    "try_number=1 max_tries=1 should_retry=true; send DeferTask; exit hang",
    "try_number=1 max_tries=1 should_retry=true; fault succeed permanent; send SucceedTask; exit hang",
    "try_number=1 max_tries=1 should_retry=true; exit hang",
    "try_number=1 max_tries=1 should_retry=true; user marks success; send RetryTask; exit 0",
    "try_number=1 max_tries=1 should_retry=true; user marks failed; heartbeat 200; exit 0",
    "try_number=1 max_tries=1 should_retry=true; user marks skipped; send SucceedTask; exit 0",
    "try_number=1 max_tries=1 should_retry=true; user clears; heartbeat 200; exit 0",
    "try_number=1 max_tries=1 should_retry=true; user clears; send TaskState failed; exit 1",
    "try_number=1 max_tries=1 should_retry=true; user deletes; heartbeat 200; exit 0",
    "try_number=1 max_tries=1 should_retry=true; user deletes; send SucceedTask; exit 0",
    "try_number=1 max_tries=1 should_retry=true; scheduler times out; heartbeat 200; exit 0",
    "try_number=1 max_tries=1 should_retry=true; handle sigterm; user marks failed; heartbeat 200; send SucceedTask; "
    "exit 0",
    "try_number=1 max_tries=1 should_retry=true; handle sigterm; heartbeat 409; exit hang",
    "try_number=1 max_tries=1 should_retry=true; ignore sigterm; heartbeat 409; exit hang",
)


@pytest.mark.parametrize("text", WIDENED_WORLD)
def test_the_widened_worlds_words_play_on_the_real_row_as_the_model_says(real, text):
    """What a confirmation replays of a counterexample on the real server: a user's mark, clear or delete and the
    scheduler's heartbeat timeout change the real row, SIGTERM handled or ignored, and a process that never exits meets
    time running on; the real supervisor against the real app observes what the model says."""
    scenario = Scenario.from_text(text)
    assert real.run(scenario) == real.reference(scenario)


def test_findings_re_shown_on_the_real_server_say_what_the_scheduler_makes_of_them(real):
    """F1 (exit 0, no terminal frame) holds with default retries, and the heartbeat timeout later fails the TI
    the supervisor reported SUCCESS; F3 (one failed closing finish()) does not hold once the client retries."""
    from impl.catalogue.findings import FINDINGS
    from impl.findings.search import on_the_real_server

    table = on_the_real_server(real, [f for f in FINDINGS if f.id in ("F1", "F3")])
    f1 = next(line for line in table if line.startswith("| F1 |"))
    f3 = next(line for line in table if line.startswith("| F3 |"))
    assert "| reproduces: success, row running;" in f1 and f1.endswith("| failed try_number=1 max_tries=0 |")
    assert "| does not hold: failed, row failed;" in f3


def test_a_hung_attempt_is_shown_hung_and_the_heartbeat_timeout_never_strikes_one_that_heartbeats(real):
    """F16 (a process left after its DeferTask) and F17 (one left after a SucceedTask whose call failed) hang on the
    real server too; F17's supervisor still heartbeats once time has run on, so the scheduler's heartbeat timeout never
    strikes its RUNNING row, and the table does not pretend it does."""
    from impl.catalogue.findings import FINDINGS
    from impl.findings.search import on_the_real_server

    table = on_the_real_server(real, [f for f in FINDINGS if f.id in ("F16", "F17")])
    f16 = next(line for line in table if line.startswith("| F16 |"))
    f17 = next(line for line in table if line.startswith("| F17 |"))
    assert "| reproduces: none, row deferred, hung (wait() still waits); calls start->200, defer->200 |" in f16
    assert f16.endswith("| deferred try_number=1 max_tries=1 |")
    assert "| reproduces: none, row running, hung (wait() still waits); calls start->200, succeed->500, heartbeat->200 |" \
        in f17
    assert f17.endswith("| running try_number=1 max_tries=1 (never struck: the supervisor heartbeats on) |")


def test_a_finding_that_does_not_stand_here_is_shown_on_its_release_or_says_why(real, monkeypatch):
    """F19 (fixed in 1.1.4) is not re-run on the installed release, where its run shows nothing: its row comes from a
    release it stands on, run in that release's environment; where that environment cannot be had, the row says why
    (it is never left out)."""
    from impl.findings import search
    from impl.catalogue.findings import FINDINGS
    from impl.releases import environments

    f19 = next(f for f in FINDINGS if f.id == "F19")
    assert not f19.stands_on(real.release) and f19.shown_on == "1.1.3"
    asked = []

    def no_environment(spec):
        asked.append(spec)
        raise environments.EnvironmentFailed(f"environment for {spec} did not install (here: on purpose)")

    monkeypatch.setattr(environments, "python_for", no_environment)
    (row,) = [line for line in search.on_the_real_server(real, [f19]) if line.startswith("| F19")]
    assert asked == ["1.1.3"]
    assert row.startswith("| F19 (on 1.1.3) |") and "not run: no environment for 1.1.3" in row
    # The row's own process, here this environment's python standing in for 1.1.3's: the run on its real server there.
    monkeypatch.setattr(environments, "python_for", lambda spec: Path(sys.executable))
    row = search.row_on_its_release(f19, "airflow-inproc")
    assert row.startswith(f"| F19 (on {real.release}) | holds: up_for_retry, row running | does not hold: up_for_retry, "
                          "row running; calls start->200 |"), row


# -- the server switch at the front door ----------------------------------------------------------------------------


def test_naming_a_target_loads_nothing_and_starts_no_server():
    """``check_name`` runs in pytest's controller (also under xdist, where no target runs): with
    ``--server airflow`` it must not import the target's room, let alone start a server."""
    code = ("import sys; from impl.targets.registry import check_name, UnknownTarget\n"
            "for name in ('airflow-inproc', 'airflow-process', 'model'): check_name(name)\n"
            "try:\n    check_name('airflow-inprocess')\nexcept UnknownTarget as e:\n    print('unknown:', e)\n"
            "print('loaded:', sorted(m for m in sys.modules if m.startswith(('impl.supervisor', 'airflow.api_fastapi'))))")
    env = {**os.environ, "FINALSTATE_SERVER": "airflow"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    assert "unknown: unknown target 'airflow-inprocess'; the known targets are:" in done.stdout
    assert "loaded: []" in done.stdout


def test_a_run_the_server_cannot_play_is_rejected_in_a_search_and_an_error_elsewhere():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    from impl.search.scenarios import playable_only

    def unplayable(run):
        raise Unsupported("--server airflow: this run context; not supported by the real server backend")

    run = playable_only(unplayable)
    with pytest.raises(Unsupported, match="not supported"):  # outside a search: the error, as it was
        run("a run")

    @settings(max_examples=5, database=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(st.integers())
    def search(example):
        run(example)

    with pytest.raises(Unsatisfiable):  # every example rejected: nothing was checked, and Hypothesis says so
        search()


def test_finalstate_check_passes_the_server_on_and_its_header_names_it():
    env = dict(os.environ)
    env.pop("FINALSTATE_SERVER", None)
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "check", "--server", "airflow",
                           "--target", "airflow-process", "--", "-q", "-k", "test_finding_still_reproduces and F1]",
                           "properties/test_supervisor.py"],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "finalstate: target airflow-process; server airflow (the real Execution API" in done.stdout
    assert "1 xfailed" in done.stdout  # F1 (exit 0, no terminal call) leaves the real row RUNNING too
