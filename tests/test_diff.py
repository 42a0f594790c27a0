"""``finalstate diff``: two real implementations, the same generated runs, every distinct difference shrunk.

A side can be made a deliberately different implementation with ``FINALSTATE_MUTANT`` (the loader
``finalstate mutate`` uses): its worker imports a changed copy of the installed supervisor.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

import impl.search.profiles  # noqa: F401  registers the profiles
from impl.power.mutate import ENV as MUTANT_ENV
from impl.compare.diff import Side, WorkerFailed, changed_decisions, diff, report, signature
from impl.releases.environments import NotACheckout, UnknownRelease
from impl.supervisor_process.census import children_running

pytest.importorskip("airflow.sdk.execution_time.supervisor", reason="the diff runs the real supervisor")

SHORT = settings(settings.get_profile("ci"), max_examples=30)
SUPERVISOR = "airflow.sdk.execution_time.supervisor"
#: ``final_state``'s retry rule, and the mutant that inverts it.
RULE = "if self._exit_code != 0 and self._should_retry:"
INVERTED = "if self._exit_code != 0 and not self._should_retry:"


@pytest.fixture(scope="module")
def inverted_retry_rule(tmp_path_factory) -> Side:
    """The installed release with ``final_state``'s retry rule inverted, loaded in place of the real module."""
    import importlib.util

    source = Path(importlib.util.find_spec(SUPERVISOR).origin).read_text()
    if source.count(RULE) != 1:
        pytest.skip(f"the installed supervisor's final_state has no single {RULE!r} to invert")
    copy = tmp_path_factory.mktemp("mutant") / "supervisor.py"
    copy.write_text(source.replace(RULE, INVERTED))
    return Side("installed", ((MUTANT_ENV, f"{SUPERVISOR}={copy}"),))


def test_a_release_against_itself_differs_nowhere():
    result = diff(Side("installed"), Side("installed"), "airflow-inproc", SHORT)
    assert result.runs >= 30 and result.differences == ()
    assert "No behaviour change" in report(result)


def test_a_changed_final_state_is_found_shrunk_and_reported_side_by_side(inverted_retry_rule):
    result = diff(Side("installed"), inverted_retry_rule, "airflow-inproc", SHORT, max_differences=3)
    assert result.differences, "the inverted retry rule went unnoticed"
    first = result.differences[0]
    assert first.changed[0] == "final state"
    # Shrunk: no events left, just the run context and a failing exit.
    assert first.run.split("; ")[1].startswith("exit "), first.run
    states = {first.a["observation"]["final_state"], first.b["observation"]["final_state"]}
    assert states == {"failed", "up_for_retry"}
    text = report(result)
    assert "### final state changed" in text and "| **final_state** |" in text
    assert f"`{first.run}`" in text
    # Each difference reported changes something no earlier one did.
    seen: set = set()
    for d in result.differences:
        assert not d.signatures() <= seen, d.run
        seen |= d.signatures()


def test_a_runtime_target_is_diffed_with_runtime_runs():
    result = diff(Side("installed"), Side("installed"), "airflow-task-runner", settings(SHORT, max_examples=10))
    assert result.kind == "runtime" and result.runs >= 10 and result.differences == ()


def test_a_worker_that_cannot_start_is_named():
    broken = Side("installed", ((MUTANT_ENV, f"{SUPERVISOR}=/nonexistent/supervisor.py"),))
    with pytest.raises(WorkerFailed, match=r"side installed \(FINALSTATE_MUTANT=supervisor.py\)"):
        diff(Side("installed"), broken, "airflow-inproc", SHORT)


def test_replies_to_the_runtime_are_a_decision_of_their_own():
    """1.0.2 → 1.0.3's one change: a terminal frame handled well is answered where it was left unanswered. It is
    reported as what the supervisor answered the runtime, not as calls it made; a longer run parting at the
    same reply is the same change."""
    calls = [["succeed", "ok"]]
    before = {"observation": {"final_state": "success", "calls": calls, "replies": ["unanswered"]}}
    after = {"observation": {"final_state": "success", "calls": calls, "replies": ["ok"]}}
    longer = {"observation": {"final_state": "success", "calls": calls, "replies": ["ok", "ok"]}}
    assert changed_decisions(before, after) == ("replies to the runtime",)
    assert (signature("replies to the runtime", before, after)
            == signature("replies to the runtime", before, longer)
            == ("replies to the runtime", "replies", '"unanswered"', '"ok"'))


def test_a_changed_retry_delay_is_a_change_in_the_calls_by_its_values():
    """A RetryTask sent alike on both sides with another delay: the delay is no sequence, so its two values make
    the change (it once made the signature raise)."""
    before = {"observation": {"sent": ["RetryTask"], "retry_delay_seconds": 10.0, "retry_reason": None}}
    after = {"observation": {"sent": ["RetryTask"], "retry_delay_seconds": 0.0, "retry_reason": None}}
    assert changed_decisions(before, after) == ("calls made",)
    assert signature("calls made", before, after) == (
        "calls made", '["RetryTask"]', "10.0", "null", '["RetryTask"]', "0.0", "null")


def test_bad_sides_are_refused_by_name(tmp_path):
    with pytest.raises(UnknownRelease, match="'9.9.9'"):
        diff(Side("9.9.9"), Side("installed"), "airflow-inproc", SHORT)
    with pytest.raises(NotACheckout, match=str(tmp_path)):
        diff(Side("installed"), Side(f"src:{tmp_path}"), "airflow-inproc", SHORT)
    with pytest.raises(WorkerFailed, match="unknown target 'no-such-target'"):
        diff(Side("installed"), Side("installed"), "no-such-target", SHORT)


def _observe_workers() -> set[int]:
    return children_running(b"impl.compare.observe")


def test_workers_are_killed_on_ctrl_c():
    seen: list[set[int]] = []

    def interrupt(line):
        seen.append(_observe_workers())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diff(Side("installed"), Side("installed"), "airflow-inproc", SHORT, progress=interrupt)
    assert len(seen[0]) == 2, "both workers were running when the interrupt came"
    assert not _observe_workers(), "a worker outlived the interrupt"


def test_the_command_prints_and_writes_the_report(tmp_path):
    out = tmp_path / "diff.md"
    done = subprocess.run([sys.executable, "-m", "impl.frontdoor.cli", "diff", "installed", "installed",
                           "--max-differences", "1", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No behaviour change" in done.stdout and out.read_text() in done.stdout
