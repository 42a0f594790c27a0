"""One environment per system under check: errors that name what was wrong, the cached builds, ``--airflow-src``."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from impl.frontdoor import cli
from impl.releases.environments import RELEASES, EnvironmentFailed, NotACheckout, UnknownRelease, python_for
from model.release import SPECIFIED, Release

ROOT = Path(__file__).resolve().parents[1]

#: What the registry's refusal looks like in uv's last lines: a reason to skip, not to fail.
OFFLINE = ("failed to fetch", "dns error", "connect", "network", "offline", "timed out")


def _versions(python) -> tuple[str, str]:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                          "print(m.version('apache-airflow-task-sdk'), m.version('apache-airflow-core'))"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    return out[0], out[1]


def _built(spec: str):
    try:
        return python_for(spec)
    except EnvironmentFailed as e:
        if any(word in str(e).lower() for word in OFFLINE):
            pytest.skip(f"the package registry cannot be reached to build {spec}: {str(e).splitlines()[-1]}")
        raise


def test_an_unknown_release_is_named_with_the_known_ones():
    with pytest.raises(UnknownRelease) as e:
        python_for("9.9.9")
    assert "'9.9.9'" in str(e.value) and "1.0.0" in str(e.value) and "1.3.2" in str(e.value)


def test_a_checkout_without_task_sdk_is_named(tmp_path):
    (tmp_path / "airflow-core").mkdir()
    (tmp_path / "airflow-core" / "pyproject.toml").write_text("")
    with pytest.raises(NotACheckout) as e:
        python_for(f"src:{tmp_path}")
    assert str(tmp_path) in str(e.value) and "task-sdk" in str(e.value)


def test_installed_is_this_checkouts_own_environment_unbuilt():
    python = python_for("installed")
    assert python.exists()
    assert not (ROOT / "build" / "envs" / "installed").exists()


def test_the_releases_run_from_1_0_0_to_1_3_2_and_a_pre_release():
    finals = [v for v, r in RELEASES.items() if not r.prerelease]
    assert finals[0] == "1.0.0" and finals[-1] == "1.3.2"
    assert all(r.prerelease for v, r in RELEASES.items() if v not in finals)
    assert all(r.core.startswith("apache-airflow-core") for r in RELEASES.values())


def test_the_cli_names_an_unknown_release_and_stops(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["targets", "--release", "0.0.1"])
    assert "'0.0.1'" in str(e.value.code)


def test_the_release_switches_are_taken_out_before_the_rerun_but_not_from_pytests_arguments():
    argv = ["check", "--release", "1.2.0", "--target=model", "--airflow-src=/x", "--", "--release", "k"]
    assert cli._without_release_switches(argv) == ["check", "--target=model", "--", "--release", "k"]


def test_the_model_specifies_1_3_2_and_takes_a_release_where_releases_differ_by_design():
    assert SPECIFIED == Release.parse("1.3.2")
    assert Release.parse("1.4.0b2").max_failed_heartbeats == 30 and SPECIFIED.max_failed_heartbeats == 3
    assert "AwaitInputTask" not in Release.parse("1.2.2").terminal_frames
    with pytest.raises(ValueError, match="'latest'"):
        Release.parse("latest")


def test_a_release_environment_is_built_once_and_holds_that_release_and_its_core():
    python = _built("1.3.1")
    assert _versions(python) == ("1.3.1", "3.3.1")
    assert python_for("1.3.1") == python  # stamped: returned without running uv


def _sdist_checkout():
    """An unpacked sdist of task-sdk 1.3.2 and core 3.3.2 laid out as a checkout, under build/ (cached)."""
    checkout = ROOT / "build" / "airflow-src-1.3.2"
    if (checkout / "task-sdk" / "pyproject.toml").exists() and (checkout / "airflow-core" / "pyproject.toml").exists():
        return checkout
    sdists = ROOT / "build" / "sdists"
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d",
                           str(sdists), "apache-airflow-task-sdk==1.3.2", "apache-airflow-core==3.3.2"],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.skip(f"the sdists of task-sdk 1.3.2 and core 3.3.2 cannot be downloaded: {done.stderr.strip()[-300:]}")
    for prefix, part in (("apache_airflow_task_sdk-", "task-sdk"), ("apache_airflow_core-", "airflow-core")):
        sdist = next(sdists.glob(f"{prefix}*.tar.gz"))
        with tarfile.open(sdist) as tar:
            top = tar.getnames()[0].split("/")[0]
            tar.extractall(checkout / ".unpack", filter="data")
        (checkout / ".unpack" / top).rename(checkout / part)
    return checkout


def test_airflow_src_installs_a_checkout_editable_and_the_checker_runs_on_it():
    checkout = _sdist_checkout()
    python = _built(f"src:{checkout}")
    assert _versions(python) == ("1.3.2", "3.3.2")
    shown = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "targets", "--airflow-src", str(checkout)],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert "system under check: apache-airflow-task-sdk 1.3.2" in shown.stdout
    checked = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "check", "--airflow-src", str(checkout),
                              "--target", "airflow-inproc", "--", "-q", "-k", "test_conformance"],
                             capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert checked.returncode == 0, checked.stdout[-2000:]


def test_a_printed_replay_command_chooses_the_same_release_again(monkeypatch):
    from impl.search.report import replay_command
    from model.scenario import Scenario

    run = Scenario.from_text("try_number=1 max_tries=0 should_retry=false; exit 0")
    monkeypatch.setenv("FINALSTATE_RELEASE", "1.2.2")
    assert replay_command("airflow-inproc", run).startswith("finalstate replay --release 1.2.2 --target airflow-inproc")
    monkeypatch.setenv("FINALSTATE_RELEASE", "src:/src/air flow")
    assert replay_command("airflow-inproc", run).startswith("finalstate replay --airflow-src '/src/air flow' --target")
    monkeypatch.delenv("FINALSTATE_RELEASE")
    assert replay_command("airflow-inproc", run).startswith("finalstate replay --target")


def test_a_release_that_does_not_install_is_named_with_the_installers_last_lines(tmp_path):
    from impl.releases.environments import _build

    with pytest.raises(EnvironmentFailed) as e:
        _build(tmp_path / "env", "0.0.0", ("apache-airflow-task-sdk==0.0.0",), ())
    assert "environment for 0.0.0 did not install" in str(e.value)
    assert len(str(e.value).splitlines()) > 1  # uv's own words follow
    assert not (tmp_path / "env" / "finalstate-stamp.json").exists()


# -- what differs between releases by design, and the bindings that follow it -----------------------------------

OLD, SIGNALS_ONLY, EVERY_EXIT = Release.parse("1.1.1"), Release.parse("1.1.3"), Release.parse("1.1.4")


def test_a_non_zero_exit_is_retried_as_the_release_decides():
    """``final_state``: no retry for a non-zero exit before 1.1.2, signal kills only in 1.1.2-1.1.3, every exit since."""
    from model.scenario import FAILED, UP_FOR_RETRY
    from model.supervisor import final_state

    decided = {(str(r), code): final_state(code, None, True, r) for r in (OLD, SIGNALS_ONLY, EVERY_EXIT, SPECIFIED)
               for code in (1, -9)}
    assert decided == {("1.1.1", 1): FAILED, ("1.1.1", -9): FAILED,
                       ("1.1.3", 1): FAILED, ("1.1.3", -9): UP_FOR_RETRY,
                       ("1.1.4", 1): UP_FOR_RETRY, ("1.1.4", -9): UP_FOR_RETRY,
                       ("1.3.2", 1): UP_FOR_RETRY, ("1.3.2", -9): UP_FOR_RETRY}
    assert final_state(1, None, False, EVERY_EXIT) == FAILED  # should_retry still decides first


def test_awaiting_input_is_a_held_state_only_where_the_release_knows_it():
    from model.scenario import AWAITING_INPUT, SUCCESS

    assert not Release.parse("1.2.2").holds(AWAITING_INPUT) and Release.parse("1.3.0").holds(AWAITING_INPUT)
    assert Release.parse("1.2.2").holds(SUCCESS) and Release.parse("1.2.2").holds(None)


def test_a_repeated_state_update_is_200_since_core_3_3_and_409_before():
    """``ti_update_state``'s idempotency check came with core 3.3.0: the same SUCCESS twice."""
    from model.scenario import RunContext
    from model.server import CONFLICT, OK, Server

    def twice(release):
        server, _ = Server.queued(RunContext(1, 0), release=release).start()
        server, first = server.call("succeed")
        return first, server.call("succeed")[1]

    assert twice(Release.parse("1.2.2"))[1] == CONFLICT
    assert twice(Release.parse("1.3.0"))[1] == OK and twice(SPECIFIED)[1] == OK


def test_a_frame_the_release_cannot_decode_does_not_hide_the_frames_after_it():
    """1.2.2 drops ``AwaitInputTask`` undecoded (no reply): the RetryTask after it was still received, so its
    UP_FOR_RETRY is no violation (it was one when replies were paired with frames by position)."""
    from model.invariants import violations
    from model.scenario import Scenario
    from model.supervisor import run

    for text in ("send AwaitInputTask; send RetryTask; exit 0",
                 "send AwaitInputTask; send RetryTask; overtime; exit 0"):  # lived, and killed by the overtime
        scenario = Scenario.from_text(f"try_number=1 max_tries=1 should_retry=true; {text}")
        observed = run(scenario, Release.parse("1.2.2"))
        assert observed.final_state == "up_for_retry" and observed.replies == ("ok",), text
        assert violations(scenario, observed) == (), text
    # Where the release decodes it, the AwaitInputTask is read and answered too.
    scenario = Scenario.from_text("try_number=1 max_tries=1 should_retry=true; send AwaitInputTask; send RetryTask; exit 0")
    assert len(run(scenario).replies) == 2


def test_the_server_conformance_alphabet_is_the_releases():
    """``await_input`` only where ``AwaitInputTask`` is known (1.3.0); a stop report only where the server takes one
    (``takes_stop_reports``: 1.4.0)."""
    from impl.server.conformance import ALPHABET, Call, alphabet_of
    from model.scenario import SERVER_TERMINATED

    stop_reports = {Call("finish", SERVER_TERMINATED, 1), Call("finish", SERVER_TERMINATED, 2)}
    assert Call("await_input") in alphabet_of(SPECIFIED)
    assert set(ALPHABET) - set(alphabet_of(SPECIFIED)) == stop_reports
    assert set(ALPHABET) - set(alphabet_of(Release.parse("1.2.2"))) == {Call("await_input")} | stop_reports
    assert set(alphabet_of(Release.parse("1.4.0b2"))) == set(ALPHABET)


def test_the_3_2_cores_execution_api_app_builds_in_its_environment():
    """Core 3.2.x leaves FastAPI unbounded and the newest rejects its ``TIStateUpdate``: its environment caps it."""
    python = _built("1.2.2")
    done = subprocess.run([str(python), "-c", "import airflow.api_fastapi.execution_api.routes.task_instances"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_client_keeps_the_releases_retry_rule_with_zero_waits():
    """Where the release keeps its retry (``request``; ``_request_with_retry`` since 1.4.0, which a
    ``retry=False`` heartbeat bypasses), the exchange client retries a 5xx ``attempts`` times, and one below 1 is refused."""
    from impl.releases.adapters import since_1_4_0_client_retry

    with pytest.raises(ValueError, match="at least one attempt, not 0"):
        since_1_4_0_client_retry(0)
    script = (
        "from impl.server.airflow_api import make_client, _http\n"
        "c = make_client(_http.MockTransport(lambda r: _http.Response(503, json={})), attempts=3)\n"
        "for call in (lambda: c.task_instances.heartbeat('0198f3f2-0000-7000-8000-000000000000', 1),\n"
        "             lambda: c.request('PATCH', 'task-instances/x/state', content=b'{}')):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception:\n"
        "        pass\n"
        "print([(x.call, x.attempt) for x in c.exchanges])\n")
    seen = {}
    for spec in ("installed", "1.4.0b2"):
        done = subprocess.run([str(_built(spec)), "-c", script], capture_output=True, text=True, timeout=300,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-2000:]
        seen[spec] = done.stdout.strip().splitlines()[-1]
    assert seen["installed"] == str([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)])
    assert seen["1.4.0b2"] == str([(1, 1), (2, 1), (2, 2), (2, 3)])


def test_since_1_4_0_a_held_retry_survives_a_failed_exit():
    from model.scenario import FAILED, SERVER_TERMINATED, UP_FOR_RETRY
    from model.supervisor import final_state

    assert final_state(1, UP_FOR_RETRY, False, Release.parse("1.4.0b2")) == UP_FOR_RETRY
    assert final_state(1, UP_FOR_RETRY, False, SPECIFIED) == FAILED
    assert final_state(-9, SERVER_TERMINATED, True, SPECIFIED) == SERVER_TERMINATED


def test_server_terminated_is_read_and_held_in_the_releases_spelling():
    """1.4.0 spells SERVER_TERMINATED ``server_terminated``: the bindings translate, both ways, on each release."""
    script = ("from airflow.sdk.execution_time import supervisor as s\n"
              "from impl.releases.adapters import model_state, supervisor_state\n"
              "print(s.SERVER_TERMINATED == supervisor_state('SERVER_TERMINATED'), "
              "model_state(s.SERVER_TERMINATED), model_state(supervisor_state('success')), model_state(None))\n")
    for spec in ("installed", "1.4.0b2"):
        done = subprocess.run([str(_built(spec)), "-c", script], capture_output=True, text=True, timeout=300,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-4:] == ["True", "SERVER_TERMINATED", "success", "None"], (spec, done.stdout)


def test_a_heartbeat_on_a_cleared_try_is_410_since_core_3_2_2_and_404_before():
    from model.scenario import RunContext
    from model.server import GONE, NOT_FOUND, Server

    def after_clear(release):
        server, _ = Server.queued(RunContext(1, 1), release=release).start()
        return server.clear().heartbeat_from()[1]

    assert after_clear(Release.parse("1.1.8")) == NOT_FOUND
    assert after_clear(Release.parse("1.2.2")) == GONE and after_clear(SPECIFIED) == GONE
