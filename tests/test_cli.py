"""The command line: replay a counterexample, and refuse bad input with a clear message."""

from __future__ import annotations

import pytest

from impl.frontdoor.cli import main


def test_replay_prints_the_trace_and_the_violations(capsys):
    code = main(["replay", "--target", "model", "try_number=1 max_tries=1; exit 1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "try_number=1 max_tries=1 should_retry=true" in out
    assert "no_task_instance_left_running: the server row is still running" in out


def test_replay_of_a_clean_scenario_exits_0(capsys):
    assert main(["replay", "--target", "model", "max_tries=1; send RetryTask; exit 0"]) == 0
    assert "violations: none" in capsys.readouterr().out


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(SystemExit, match="unknown target 'nope'; the known targets are:\n  model"):
        main(["replay", "--target", "nope", "exit 0"])


def test_bad_scenario_says_what_is_wrong():
    with pytest.raises(SystemExit, match="bad scenario: unknown event 'explode'"):
        main(["replay", "--target", "model", "explode; exit 0"])


def test_unknown_target_is_a_usage_error_for_the_checker(pytester):
    pytester.makeconftest("pytest_plugins = ['properties.conftest']")
    result = pytester.runpytest("--target", "nope")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown target 'nope'; the known targets are:*"])


def test_a_failed_property_is_said_at_once_with_its_counterexample():
    """The timing plugin's line for a failure: the headline and the replay command, read out of pytest's report
    (behind an exception's name), and nothing for a failure that is not the checker's."""
    from impl.search.timing import _counterexample

    class Report:
        longreprtext = ("    def test(...)\nE   impl.search.report.Disagreement: DISAGREEMENT: model and t differ in "
                        "exit_code\nE   replay: finalstate replay --target t 'task error'\nE   scenario:")

    assert _counterexample(Report()) == ["DISAGREEMENT: model and t differ in exit_code",
                                         "replay: finalstate replay --target t 'task error'"]
    Report.longreprtext = "E   AssertionError: assert 1 == 2"
    assert _counterexample(Report()) == []
