"""What every property file shares: the targets chosen, loading them, and the registered findings.

``--target NAME[,NAME...]`` (default ``airflow-inproc``) picks what the properties run
against; ``--hypothesis-profile dev|ci|nightly`` how hard they look
(``impl/frontdoor/profiles.py``). A property asks for the fixture of the kind of run it
lives: ``target`` (supervisor), ``runtime_target`` or ``coordinator_target``; a target of
another kind skips it with the reason.
"""

from __future__ import annotations

import pytest
from hypothesis import given

import impl.frontdoor.profiles  # noqa: F401  registers the profiles
from impl.frontdoor.findings import Finding, finding_for
from impl.frontdoor.kinds import KINDS
from impl.frontdoor.registry import DEFAULT_TARGET, TargetUnavailable, UnknownTarget, check_name, load_target
from impl.frontdoor.report import InvariantViolation, check_invariants


def pytest_addoption(parser):
    parser.addoption("--target", default=DEFAULT_TARGET,
                     help="target(s) to check, comma-separated (see `finalstate targets`); "
                          f"default {DEFAULT_TARGET}")


def pytest_configure(config):
    names = [n.strip() for n in config.getoption("--target").split(",") if n.strip()]
    for name in names:
        try:
            check_name(name)
        except UnknownTarget as e:
            raise pytest.UsageError(str(e)) from None
    config.finalstate_targets = names


def pytest_generate_tests(metafunc):
    if "target_name" in metafunc.fixturenames:
        metafunc.parametrize("target_name", metafunc.config.finalstate_targets, scope="session")


def _loaded(target_name: str, kind: str):
    try:
        loaded = load_target(target_name, kind)
    except TargetUnavailable as e:
        pytest.skip(f"target {target_name}: {e}")
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def target(target_name):
    """The target under check, for the supervisor properties."""
    yield from _loaded(target_name, "supervisor")


@pytest.fixture(scope="session")
def runtime_target(target_name):
    """The target under check, for the runtime properties."""
    yield from _loaded(target_name, "runtime")


@pytest.fixture(scope="session")
def coordinator_target(target_name):
    """The target under check, for the coordinator properties."""
    yield from _loaded(target_name, "coordinator")


def skip_the_model(target) -> None:
    """Conformance needs a real implementation: the model is its own reference."""
    if target.run is target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real targets")


def holds_for_all(strategy, check) -> None:
    """``check`` on every example of ``strategy``, as the loaded Hypothesis profile says (shrinking on failure)."""

    @given(strategy)
    def holds(example):
        check(example)

    holds()


def expect_finding(request, kind: str, target_name: str, invariant: str) -> Finding | None:
    """Make the running property a strict expected failure if a registered finding says ``target_name`` breaks it."""
    finding = finding_for(kind, target_name, invariant)
    if finding:
        request.applymarker(pytest.mark.xfail(strict=True, raises=InvariantViolation, reason=finding.headline))
    return finding


def assert_reproduces(target, finding: Finding) -> None:
    """A finding's minimal run still breaks its invariant on ``target`` (skipped where the finding is about others)."""
    if target.name not in finding.targets:
        pytest.skip(f"{finding.id} is about {', '.join(finding.targets)}")
    kind = KINDS[finding.kind]
    invariant = next(i for i in kind.invariants if i.__name__ == finding.invariant)
    with pytest.raises(InvariantViolation, match=finding.invariant):
        check_invariants(target, kind.parse(finding.scenario), (invariant,))
