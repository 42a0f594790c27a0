"""Every SDK as it really is (issue 31): the profiles of ``model.sdks`` on this project's Go runtime.

Each runtime trait is a flag of ``runtimes/go`` (``impl.coordinator.go_flags``), so each profile is a command line of
it, checked under the real supervisor against that profile's model over the complete coordinator scope; an undeclared
``cmd:`` target is accepted where the contract or some profile explains a run, and the profiles that did are named;
a runtime that no profile explains is still reported. The Go runtime's own tests (real signals, a fake supervisor)
run here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.statistics import collector, describe_statistics

from impl.coordinator.go_flags import flags, profile_flags
from impl.frontdoor.cli import parse_profile
from impl.targets.kinds import KINDS
from impl.catalogue.sdk_profiles import PROFILES_BEGIN, PROFILES_END, profiles_markdown
from model.coordinator import (CONTRACT, FAILS_CLOSED, SIGTERM_BEHAVIOURS, CoordinatorRun, CoordinatorRuntime,
                               coordinator_attempt)
from model.sdks import PROFILES, explaining

ROOT = Path(__file__).resolve().parent.parent
GO_RUNTIME = ROOT / "build" / "runtimes" / "go-runtime"
#: The issue's acceptance runs: the Java SDK's runtime reads one answer to every frame (exit 1 after a SucceedTask not
#: taken), and meets the overtime's SIGTERM with the JVM's shutdown (exit 143).
JAVA_RUNS = ("try_number=1 max_tries=1 should_retry=true; fault succeed permanent; task success",
             "try_number=1 max_tries=1 should_retry=true execution_api_retries=1; task success; overtime")
#: The SDK profiles, the contract left out (the Go runtime with no flag is checked as a CI target of its own).
SDK_PROFILES = [name for name in PROFILES if name != "contract"]


def go_runtime_or_skip() -> Path:
    if not GO_RUNTIME.exists():
        marker = GO_RUNTIME.with_name("go-runtime.unavailable")
        pytest.skip(marker.read_text().strip() if marker.exists() else "run scripts/build-runtimes first")
    return GO_RUNTIME


def go_target(profile: str | None, flags_of: str | None = None):
    """The Go runtime with the flags of ``flags_of`` (default: ``profile``), declared to be ``profile`` (None:
    undeclared)."""
    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")
    from impl.targets.registry import load_target

    command = f"cmd:{go_runtime_or_skip()} {profile_flags(flags_of or profile)}".strip()
    return load_target(command, "coordinator", profile=profile)


@pytest.fixture(autouse=True)
def _undeclared_unless_said(monkeypatch):
    """A target here is declared only where a test says so (``scripts/test`` declares its coordinator targets the
    contract through ``FINALSTATE_SDK_PROFILE``)."""
    monkeypatch.delenv("FINALSTATE_SDK_PROFILE", raising=False)


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    try:
        from impl.supervisor_process import helper
    except ImportError:
        return
    helper.close()


# -- the traits and their flags ------------------------------------------------------------------------------------


def test_every_trait_that_differs_from_the_contract_is_one_flag():
    assert flags(CONTRACT) == ()
    changed = {"retries": False, "fails_closed": FAILS_CLOSED[0], "sigterm_waiting": SIGTERM_BEHAVIOURS[2],
               "sigterm_running": SIGTERM_BEHAVIOURS[3], "panic_escapes": True, "frame_id": "reuses-startup-id",
               "retry_reason": True, "lookup_first": True}
    assert set(changed) == {f.name for f in attrs.fields(CoordinatorRuntime)} - {"escape_exit"}
    for trait, value in changed.items():
        assert len(flags(attrs.evolve(CONTRACT, **{trait: value}))) == 1, trait
    with pytest.raises(ValueError, match="exits 1"):
        flags(attrs.evolve(CONTRACT, panic_escapes=True, escape_exit=2))


@pytest.mark.parametrize("name", PROFILES)
def test_the_go_runtime_takes_every_profiles_flags(name):
    """The flags parse (only --comm/--logs are missing: its usage error, exit 2, says so)."""
    runtime = go_runtime_or_skip()
    done = subprocess.run([str(runtime), *profile_flags(name).split()], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--comm and --logs are both required" in done.stderr, done.stderr


def test_the_go_runtimes_own_tests_pass():
    """runtimes/go's Go tests: the wire, each flag's parsing, and each trait as a process meets it (real signals
    under a fake supervisor: SIGTERM while waiting and while the cancellable task runs, the fail-closed scope, an
    escaping panic)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go toolchain not found on PATH")
    done = subprocess.run([go, "test", "-count=1", "./..."], cwd=ROOT / "runtimes" / "go", capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_runtimes_page_has_the_profiles_table_as_the_model_has_it():
    page = (ROOT / "docs" / "runtimes.md").read_text()
    assert PROFILES_BEGIN in page and PROFILES_END in page
    shown = page[page.index(PROFILES_BEGIN):page.index(PROFILES_END) + len(PROFILES_END)]
    assert shown == profiles_markdown(), "regenerate it: finalstate profiles --markdown"


@pytest.mark.parametrize("value,parsed", [
    ("ci", ("ci", None)), ("java-sdk-1.0.0", ("ci", "java-sdk-1.0.0")), ("nightly,ts-sdk-1.0.0", ("nightly", "ts-sdk-1.0.0")),
    ("go-sdk-1.0.0, dev", ("dev", "go-sdk-1.0.0")),
])
def test_one_profile_option_names_the_search_and_the_sdk(value, parsed):
    assert parse_profile(value) == parsed


@pytest.mark.parametrize("value,says", [
    ("fast", "unknown profile 'fast'"), ("ci,dev", "two search profiles"),
    ("go-sdk-1.0.0,ts-sdk-1.0.0", "two SDK profiles"),
])
def test_a_bad_profile_option_is_refused_in_one_line(value, says):
    with pytest.raises(ValueError, match=says) as refused:
        parse_profile(value)
    assert "\n" not in str(refused.value)


# -- the model: what explains what ----------------------------------------------------------------------------------


def test_the_java_acceptance_runs_are_explained_by_the_java_profiles_only():
    same = KINDS["coordinator"].agree
    for text in JAVA_RUNS:
        run = CoordinatorRun.from_text(text)
        java = coordinator_attempt(run, PROFILES["java-sdk-1.0.0"].runtime)
        assert "contract" not in explaining(run, java, same)
        assert "java-sdk-1.0.0" in explaining(run, java, same)
        assert "contract" in explaining(run, coordinator_attempt(run), same)


def test_a_cancellable_task_meets_a_users_action_at_the_heartbeat_time_brings():
    """Nothing tells the supervisor of a user's mark at once: the heartbeat that falls due while the task runs on
    answers 409, and the kill's SIGTERM meets the running task: the Go SDK cancels it and reports it inside the kill
    (its RetryTask refused, exit 0), the contract's runtime dies of it, the JVM exits 143."""
    run = CoordinatorRun.from_text("try_number=1 max_tries=1 should_retry=true; user marks failed; task cancellable")
    go = coordinator_attempt(run, PROFILES["go-sdk-1.0.0"].runtime)
    assert go.exit_code == 0 and [c.name for c in go.calls][-1] == "retry" and go.replies == ("error",)
    assert coordinator_attempt(run).exit_code == -15
    assert coordinator_attempt(run, PROFILES["java-sdk-1.0.0"].runtime).exit_code == 143
    untouched = coordinator_attempt(attrs.evolve(run, while_running=()))
    assert untouched.hung and untouched.exit_code is None


# -- the real supervisor: conformance as the supervisor accepts -----------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
@pytest.mark.parametrize("text", JAVA_RUNS)
def test_the_go_runtime_as_the_java_sdk_passes_conformance(text, declared):
    """Declared ``java-sdk-1.0.0``: compared with that profile's model. Undeclared: accepted, and the profiles that
    explain it named, the Java SDK's among them and not the contract."""
    from impl.search.report import check_conformance

    target = go_target("java-sdk-1.0.0" if declared else None, "java-sdk-1.0.0")
    named = []
    observed = check_conformance(target, CoordinatorRun.from_text(text), on_explained=named.append)
    assert observed.exit_code in (1, 143)
    if not declared:
        assert "java-sdk-1.0.0" in named[0] and "contract" not in named[0]


@pytest.mark.parametrize("profile,outcome,row", [
    ("java-sdk-1.0.0", "success", "success"), ("ts-sdk-1.0.0", "cancellable", "success"),
    ("contract", "cancellable", "failed"),
])
def test_a_runtime_that_carries_on_inside_the_kill_meets_the_rest_of_the_world_there(profile, outcome, row):
    """A refused heartbeat kills the runtime; a user's mark comes next. A runtime that handles the SIGTERM (the JVM's
    shutdown, exit 143; the TypeScript SDK cancelling its task and reporting it) is still there inside the kill, and
    the mark reaches the row before the supervisor reads it again (``model.supervisor.monitor_step``); one that dies of
    the signal meets nothing more."""
    from impl.search.report import check_conformance

    run = CoordinatorRun.from_text("try_number=1 max_tries=0 should_retry=false; heartbeat 409; user marks success; "
                                   f"task {outcome}")
    observed = check_conformance(go_target(profile), run)
    assert observed.row.split()[0] == row


def test_a_runtime_no_profile_explains_is_still_reported():
    """The Go runtime without its retry branch but failing closed (``--no-retry`` alone: no SDK has it) waits for its
    TaskState(failed)'s answer, and the overtime kills it: no profile's model has that (the Go SDK before its fix
    exits 0 at once, the Java SDK's JVM 143)."""
    from impl.targets.registry import load_target
    from impl.search.report import Disagreement, check_conformance

    pytest.importorskip("airflow.sdk", reason="cmd: targets run under the real supervisor of apache-airflow-task-sdk")
    target = load_target(f"cmd:{go_runtime_or_skip()} --no-retry", "coordinator")
    run = CoordinatorRun.from_text("try_number=1 max_tries=1 should_retry=true; task error; overtime")
    with pytest.raises(Disagreement, match="no profile explains it either") as caught:
        check_conformance(target, run)
    assert "replay: finalstate replay --target" in str(caught.value)


#: The registered findings (``impl.catalogue.findings``) that explain each profile's violations over the complete
#: coordinator scope: which SDK loses which failure under which fault.
SCOPE_FINDINGS = {"go-sdk-1.0.0": {"C1"}, "go-sdk-before-68554": {"C2"}, "java-sdk-1.0.0": set(),
                  "java-sdk-before-68555": {"C2"}, "ts-sdk-1.0.0": {"C1"}}
#: Set to ``complete`` to check each profile over the complete coordinator scope (depth 1). Measured 2026-12-07 on this
#: 2-core machine under load 11-18 (other sessions' work beside it): 2,646 runs a profile, about 80 s of CPU each
#: (user + sys of the test and its processes: java-sdk-1.0.0 and ts-sdk-1.0.0 together 165 s), 167-640 s of wall
#: time each; go-sdk-1.0.0 traps SIGTERM while it waits, so each of its scope's kills there waits out Airflow's 5 s
#: escalation before the SIGKILL (1,944 s wall under that load). Five times the Go runtime's own scope is more than
#: the test command's budget holds, so by default each profile is checked over the scope without the world's events.
COMPLETE_ENV = "FINALSTATE_PROFILE_SCOPES"


def _check_profile_scope(profile: str, depth: int, record_property):
    from impl.search.exhaustive import check_in_scope

    target = go_target(profile)
    began = time.monotonic()
    found = check_in_scope(target, depth=depth, max_failures=3)
    record_property("profile scope", f"{profile}, depth {depth}: {found.scenarios} runs in "
                                     f"{time.monotonic() - began:.1f}s, explained {found.explained}")
    assert not found.failures, "\n\n".join(found.failures)
    return found


@pytest.mark.parametrize("profile", SDK_PROFILES)
def test_each_profile_passes_the_coordinator_scope_without_the_worlds_events(profile, record_property):
    """The Go runtime with the profile's flags, declared to be it, over ``exhaustive.coordinator_scope`` at depth 0:
    every outcome (a cancellable task too) with every run context, number of client tries, trapped SIGTERM and
    overtime, against that profile's model; a violation only where a registered finding of that profile explains
    it."""
    found = _check_profile_scope(profile, 0, record_property)
    assert set(found.explained) <= SCOPE_FINDINGS[profile] and found.scenarios >= 90


@pytest.mark.parametrize("profile", SDK_PROFILES)
def test_each_profile_passes_the_complete_coordinator_scope_under_its_own_model(profile, record_property):
    """The same over the complete coordinator scope (every event of the world while the task runs): no
    disagreement, and every violation a registered finding of that profile: which SDK loses which failure under
    which fault (C1: the Go and TypeScript SDKs never fail closed; C2: no retry branch before the fixes)."""
    if os.environ.get(COMPLETE_ENV) != "complete":
        pytest.skip(f"the complete scope of a profile costs about 80 s of CPU (go-sdk-1.0.0's trapped SIGTERMs wait out "
                    f"Airflow's 5 s escalation: about ten minutes); {COMPLETE_ENV}=complete runs it")
    found = _check_profile_scope(profile, 1, record_property)
    assert set(found.explained) == SCOPE_FINDINGS[profile] and found.scenarios > 2000


def _search(target, examples: int) -> str:
    """The coordinator conformance property's body (``properties/test_coordinator.py``) under a search of its own:
    Hypothesis's statistics of it, as ``--hypothesis-show-statistics`` prints them."""
    from impl.search.report import check_conformance
    from impl.search.scenarios import coordinator_runs, world_met

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(coordinator_runs)
    def conforms(run):
        observed = check_conformance(target, run, on_explained=lambda names: event("explained by", ", ".join(names)))
        for what in world_met(run, observed, target.profile):
            event(f"the world met: {what}")

    seen = []
    with collector.with_value(seen.append):
        conforms()
    return describe_statistics(seen[0])


def test_the_search_draws_the_cancellable_task_and_its_sigterm_behaviours_show_in_the_statistics():
    """The search draws ``cancellable`` for a ``cmd:`` target, and what the runtime did with a SIGTERM while it ran
    is labelled in the statistics: the TypeScript SDK's grace-then-exit-1 (declared), and a cooperative cancel on an
    undeclared runtime, explained by the profiles that cancel."""
    ts = _search(go_target("ts-sdk-1.0.0"), 150)
    assert "a SIGTERM met the running task: it cancelled the task and reported it" in ts
    assert "[declared ts-sdk-1.0.0: grace-then-exit-1]" in ts
    assert "a task that runs until cancelled: nothing cancelled it (hung)" in ts
    from impl.targets.registry import load_target

    cancels = load_target(f"cmd:{go_runtime_or_skip()} --sigterm-running=cancels --fail-closed=never", "coordinator")
    undeclared = _search(cancels, 150)
    assert "a SIGTERM met the running task: it cancelled the task and reported it" in undeclared
    assert "go-sdk-1.0.0" in undeclared and "ts-sdk-1.0.0" in undeclared
