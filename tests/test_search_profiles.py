"""The profiles are what ``impl.search.profiles`` says they are wherever they run: on a developer's machine and on a CI
machine, where Hypothesis loads its own ``ci`` profile at import (it reads ``CI``, ``GITHUB_ACTIONS`` and the like)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READ_PROFILES = """
import json
from hypothesis import settings
import impl.search.profiles as profiles
read = {name: settings.get_profile(name) for name in profiles.PROFILES}
print(json.dumps({name: [p.derandomize, p.database is None, p.print_blob, p.max_examples] for name, p in read.items()}))
"""


def profiles_under(**variables: str) -> dict:
    """Each profile's (derandomize, no database, print_blob, max_examples), read in a fresh interpreter whose
    environment has no CI variable but ``variables``."""
    quiet = {key: value for key, value in os.environ.items() if key not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    done = subprocess.run([sys.executable, "-c", READ_PROFILES], capture_output=True, text=True, cwd=ROOT,
                          env={**quiet, "FINALSTATE_EXAMPLE_DB": "build/hypothesis-examples", **variables},
                          timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("ci", [{"CI": "true"}, {"GITHUB_ACTIONS": "true"}], ids=["CI", "GITHUB_ACTIONS"])
def test_a_ci_machine_gets_the_same_profiles(ci):
    here = profiles_under()
    assert here == {"dev": [False, False, False, 200], "ci": [True, True, False, 300],
                    "nightly": [False, False, False, 20_000]}
    assert profiles_under(**ci) == here
