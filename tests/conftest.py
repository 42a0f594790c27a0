import pytest

import impl.search.profiles  # noqa: F401  the Hypothesis profiles (dev, ci, nightly)
from impl.targets.registry import SDK_PROFILE_ENV

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _as_a_user_runs_them(monkeypatch):
    """Each test runs as a user would, with no SDK profile declared: ``scripts/test`` declares one for the properties
    (``--sdk-profile``, which sets it in the environment of the whole worker), and the commands a test runs, or the
    targets it loads, would otherwise read it too. The properties' declaration is back after each test."""
    monkeypatch.delenv(SDK_PROFILE_ENV, raising=False)
