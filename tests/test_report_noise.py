"""A failure report shows the run under check, not the checker: no profile runs Hypothesis's explain phase, whose
"these lines were always and only run by failing test cases" names the checker's own code, and the properties'
plugin drops Hypothesis's offer of a patch adding the failing examples to the checker's properties."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from impl.search.profiles import PROFILES

FAILING = textwrap.dedent('''
    import impl.search.profiles  # noqa: F401  registers the profiles
    from hypothesis import given, strategies as st

    @given(st.integers(), st.booleans())
    def test_fails_on_large_numbers(x, flag):
        if flag:
            pass
        if x > 5:
            y = x * 2
            assert y < 10
''')


@pytest.mark.parametrize("profile", PROFILES)
def test_a_failure_report_has_no_explanation_of_the_checkers_lines(profile, tmp_path):
    (tmp_path / "test_failing.py").write_text(FAILING)
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_failing.py"), "-p", "no:cacheprovider",
                           "-p", "impl.search.profiles", "-p", "properties.conftest",
                           f"--hypothesis-profile={profile}", "-q"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1]),
                                             "FINALSTATE_EXAMPLE_DB": "none", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failing test case" in done.stdout or "Falsifying example" in done.stdout, done.stdout
    assert "Explanation" not in done.stdout and "always and only run by failing" not in done.stdout, done.stdout
    assert "git apply" not in done.stdout and not (tmp_path / ".hypothesis" / "patches").exists(), done.stdout


def test_a_failed_property_reports_the_counterexample_and_nothing_of_the_checker():
    """The seed's bug (a runtime that answers a failure with retries left by TaskState(failed)), found by the
    coordinator property: its report is the run, what was observed and expected, and the replay line; no traceback
    through the checker's code, no repr of Hypothesis's draws."""
    root = Path(__file__).parents[1]
    target = f"cmd:{sys.executable} -I {root / 'tests' / 'fixtures' / 'seed_runtime.py'}"
    done = subprocess.run([sys.executable, "-m", "pytest", str(root / "properties" / "test_coordinator.py"),
                           f"--target={target}", "--hypothesis-profile=ci", "-p", "no:cacheprovider", "-q",
                           "-k", "test_coordinator_invariant and failure_with_retries_left_ends_up_for_retry"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    report = done.stdout[done.stdout.index("FAILURES"):]
    assert done.returncode == 1 and "VIOLATION on cmd:" in report, done.stdout[-3000:]
    assert "replay: finalstate replay --target" in report and "task error" in report, report
    for noise in ("Traceback", "properties/conftest.py:", "impl/search/report.py:", "Failing test case",
                  "Explanation", "git apply"):
        assert noise not in report, f"{noise!r} in the report:\n{report}"
