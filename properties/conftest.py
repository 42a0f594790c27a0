"""Choosing targets and Hypothesis profiles for the checker.

``--target NAME[,NAME...]`` (default ``airflow-inproc``) picks what the properties run
against; ``--hypothesis-profile dev|ci|nightly`` how hard they look.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from impl.targets import DEFAULT_TARGET, TargetUnavailable, UnknownTarget, load_target

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: While developing: quick, random, remembers failures in .hypothesis/ to replay them first.
settings.register_profile("dev", max_examples=200, stateful_step_count=30, **_COMMON)
#: Nightly CI and the test command: fixed seed, bounded, nothing remembered between runs.
settings.register_profile("ci", max_examples=300, stateful_step_count=30, derandomize=True, database=None,
                          print_blob=False, **_COMMON)
#: The long search.
settings.register_profile("nightly", max_examples=20_000, stateful_step_count=50, **_COMMON)
settings.load_profile("dev")


def pytest_addoption(parser):
    parser.addoption("--target", default=DEFAULT_TARGET,
                     help="target(s) to check, comma-separated (see `finalstate targets`); "
                          f"default {DEFAULT_TARGET}")


def pytest_configure(config):
    names = [n.strip() for n in config.getoption("--target").split(",") if n.strip()]
    for name in names:
        try:
            load_target(name)
        except UnknownTarget as e:
            raise pytest.UsageError(str(e)) from None
        except TargetUnavailable:
            pass  # reported as a skip by each test that would use it
    config.finalstate_targets = names


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target_name", metafunc.config.finalstate_targets, scope="session")


@pytest.fixture(scope="session")
def target(target_name):
    try:
        loaded = load_target(target_name)
    except TargetUnavailable as e:
        pytest.skip(f"target {target_name} unavailable: {e}")
    yield loaded
    loaded.close()
