"""A failure report shows the run under check, not the checker: no profile runs Hypothesis's explain phase, whose
"these lines were always and only run by failing test cases" names the checker's own code, and the properties'
plugin drops Hypothesis's offer of a patch adding the failing examples to the checker's properties."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from impl.frontdoor.profiles import PROFILES

FAILING = textwrap.dedent('''
    import impl.frontdoor.profiles  # noqa: F401  registers the profiles
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
                           "-p", "impl.frontdoor.profiles", "-p", "properties.conftest",
                           f"--hypothesis-profile={profile}", "-q"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1]),
                                             "FINALSTATE_EXAMPLE_DB": "none", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failing test case" in done.stdout or "Falsifying example" in done.stdout, done.stdout
    assert "Explanation" not in done.stdout and "always and only run by failing" not in done.stdout, done.stdout
    assert "git apply" not in done.stdout and not (tmp_path / ".hypothesis" / "patches").exists(), done.stdout
