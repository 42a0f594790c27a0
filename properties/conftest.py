"""What every property file shares: the targets chosen, loading them, and the registered findings.

``--target NAME[,NAME...]`` (default ``airflow-inproc``) picks what the properties run
against; ``--hypothesis-profile dev|ci|nightly`` how hard they look
(``impl/search/profiles.py``); ``--server model|airflow`` what answers the supervisor
targets' Execution API calls (sets ``FINALSTATE_SERVER``; default: as the environment says, else
``model``); ``--server-db sqlite|local|URL`` the real server's database (sets
``FINALSTATE_SERVER_DB``; ``local``: a private PostgreSQL from a wheel, ``impl/server/postgres.py``);
``--sdk-profile NAME`` the SDK profile the coordinator targets are declared to be (``model.sdks``; sets
``FINALSTATE_SDK_PROFILE``, which the coordinator targets read when loaded: ``finalstate check --profile ci,NAME``).
A property asks for the fixture of the kind of run it lives: ``target`` (supervisor),
``runtime_target`` or ``coordinator_target``; a target of another kind skips it with the reason.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import event, given
from hypothesis.statistics import collector, describe_statistics

import impl.search.profiles  # noqa: F401  registers the profiles
from impl.search.ahead import drawn_by
from impl.catalogue.findings import Finding, findings_on, installed_release
from impl.targets.kinds import KINDS, outcome
from impl.targets.registry import (DEFAULT_TARGET, SDK_PROFILE_ENV, SERVER_ENV, SERVERS, TargetUnavailable,
                                     UnknownTarget, check_name, chosen_profile, kinds_of, load_target)
from impl.search.report import CheckFailed, InvariantViolation, check_invariants
from impl.search.scenarios import playable_only
from impl.server.postgres import SERVER_DB_ENV
from impl.supervisor_process.pool import most_at_once


def pytest_addoption(parser):
    parser.addoption("--target", default=DEFAULT_TARGET,
                     help="target(s) to check, comma-separated (see `finalstate targets`); "
                          f"default {DEFAULT_TARGET}")
    parser.addoption("--server", choices=SERVERS, default=None,
                     help="what answers a supervisor target's Execution API calls: model (model.server, the default) "
                          "or airflow (the real Execution API of apache-airflow-core on a real database, Airflow's client with its "
                          "default retries; airflow-inproc and airflow-process); "
                          f"sets {SERVER_ENV}")
    parser.addoption("--sdk-profile", default=None, metavar="NAME",
                     help="the SDK profile the coordinator targets are declared to be (model.sdks.PROFILES; "
                          "`finalstate profiles` lists them): compared with that SDK's runtime in the model, and the "
                          "findings it holds for are known; undeclared (the default), a coordinator target is accepted "
                          f"where the contract or any profile explains a run; sets {SDK_PROFILE_ENV}")
    parser.addoption("--server-db", default=None, metavar="sqlite|local|URL",
                     help="the real Execution API server's database: sqlite (an embedded copy, the default), local (a "
                          "private PostgreSQL started from the pgserver wheel) or a database URL (postgresql://...); "
                          f"sets {SERVER_DB_ENV}")


def pytest_configure(config):
    if config.getoption("--server"):
        import os

        os.environ[SERVER_ENV] = config.getoption("--server")
    if config.getoption("--server-db"):
        import os

        os.environ[SERVER_DB_ENV] = config.getoption("--server-db")
    if config.getoption("--sdk-profile"):
        import os

        try:
            chosen_profile(config.getoption("--sdk-profile"))
        except UnknownTarget as e:
            raise pytest.UsageError(f"--sdk-profile: {e}") from None
        os.environ[SDK_PROFILE_ENV] = config.getoption("--sdk-profile")
    try:
        most_at_once()
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    names = [n.strip() for n in config.getoption("--target").split(",") if n.strip()]
    for name in names:
        try:
            check_name(name)
        except UnknownTarget as e:
            raise pytest.UsageError(str(e)) from None
    config.finalstate_targets = names
    config.addinivalue_line("markers", "lives_ahead(what): the property draws a coordinator target's tries of `what` "
                                       "('scope': its complete scope; 'lives': its lifecycles), handed over ahead by "
                                       "the first property of the target (properties/conftest.py, plan_ahead)")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduling, with a real coordinator runtime's properties (its searches, its scope, its lives, the
    tests of its findings) in one work unit: they share its lived tries and its try pool (``impl.coordinator.lived``),
    which would otherwise be split between the workers, each living the same tries again. The unit is the largest, so
    it starts first; every other test is a unit of its own, as ``--dist load`` has it. Only in place of ``load`` (the
    default with ``-n``), and where tries are lived ahead (not with ``FINALSTATE_TRY_POOL=0``)."""
    names = [n for n in getattr(config, "finalstate_targets", ()) if kinds_of(n) == ("coordinator",)]
    if config.getoption("dist") != "load" or not names or most_at_once() == 0:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TriesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((f"tries of {name}" for name in sorted(names, key=len, reverse=True)
                         if f"[{name}-" in nodeid or f"[{name}]" in nodeid), nodeid)

    return TriesTogether(config, log)


def pytest_generate_tests(metafunc):
    if "target_name" in metafunc.fixturenames:
        metafunc.parametrize("target_name", metafunc.config.finalstate_targets, scope="session")


@pytest.fixture(autouse=True)
def hypothesis_statistics(request):
    """Hypothesis's own statistics for the search a property runs in its body (examples, events, outcomes).

    Hypothesis's pytest plugin collects them only for a test that is itself ``@given``; the
    properties run state machines and inner ``@given`` functions, so this hands the plugin the
    same statistics for them: ``--hypothesis-show-statistics`` prints them per property.
    """
    def note(stats):
        stats["nodeid"] = request.node.nodeid
        request.node.hypothesis_statistics = describe_statistics(stats)

    with collector.with_value(note):
        yield


def _loaded(target_name: str, kind: str):
    try:
        loaded = load_target(target_name, kind)
    except TargetUnavailable as e:
        pytest.skip(f"target {target_name}: {e}")
    yield loaded if loaded.run is loaded.reference else attrs.evolve(loaded, run=playable_only(loaded.run))
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
def coordinator_target(target_name, request):
    """The target under check, for the coordinator properties; what its selected properties will draw later is handed
    over to it now (``plan_ahead``)."""
    loading = _loaded(target_name, "coordinator")
    loaded = next(loading)
    try:
        plan_ahead(request.session, loaded)
        yield loaded
    finally:  # closed also where handing over failed
        next(loading, None)


def plan_ahead(session, target) -> None:
    """Hand ``target.live_ahead`` what the selected properties marked ``lives_ahead`` will draw of it: its lives
    (``lifecycle.live_lives_ahead``), then its complete scope. Each batch goes ahead of the one before, and the runs a
    property asks for go ahead of them all: so its pool has work from the first property to the last, the complete
    scope first (its tries are few and de-duplicated) after what the property under way asks for."""
    if target.live_ahead is None:
        return
    wanted = {marker.args[0] for item in session.items if _target_of(item) == target.name
              for marker in item.iter_markers("lives_ahead")}
    if "lives" in wanted:
        from impl.search.lifecycle import live_lives_ahead, pairings_for

        for pairing in pairings_for(target.name):
            live_lives_ahead(pairing)
    if "scope" in wanted:
        from impl.search.exhaustive import CONTEXTS, SCOPES, runtimes_of

        scope = SCOPES[target.kind]
        target.live_ahead(run for run, _, _ in scope.runs(scope.default_depth, CONTEXTS, target.release,
                                                          runtimes_of(target)))


def _target_of(item) -> str | None:
    """The ``--target`` a collected test checks: its ``target_name``, or its pairing's."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("target_name") or getattr(params.get("pairing"), "target", None)


def skip_the_model(target) -> None:
    """Conformance needs a real implementation: the model is its own reference."""
    if target.run is target.reference:
        pytest.skip("the model is its own reference: conformance is checked on the real targets")


def holds_for_all(strategy, check, live_ahead=None) -> None:
    """``check`` on every example of ``strategy``, as the loaded Hypothesis profile says (shrinking on failure).

    ``live_ahead`` (a target's, ``Target.live_ahead``): handed the examples the search will draw before it draws them
    (``impl.search.ahead``: the same search, run first with a check that records them), so that their tries are
    lived at once while it goes on."""
    if live_ahead is not None:
        live_ahead(drawn_by(lambda record: holds_for_all(strategy, record)))

    @given(strategy)
    def holds(example):
        check(example)

    holds()


def counted(observed):
    """Count what an example came to (``--hypothesis-show-statistics`` lists the distinct outcomes)."""
    event("outcome", outcome(observed))
    return observed


def count_known(finding: Finding) -> None:
    event(f"explained by known finding {finding.id}")


def searching(target, invariant, kind: str | None = None):
    """A check of ``invariant`` on ``target`` that searches on past the known findings.

    A violation that a registered finding's signature explains is counted (a Hypothesis event)
    and the search continues; one that no finding explains fails with its shrunk counterexample.
    """
    known = findings_on(kind or target.kind, target.name, invariant.__name__, profile=target.profile)
    return lambda run: counted(check_invariants(target, run, (invariant,), known, count_known))


def expect_the_finding(request, finding: Finding, raises: type[BaseException]) -> bool:
    """Mark the running test of ``finding``'s own run and say whether the bug stands on the installed release. While
    it stands: a strict expected failure (``raises``), so a fix makes it fail and the finding is retired or given its
    ``fixed_in``. Where it does not (from its ``fixed_in`` on, before its ``introduced_in``): an ordinary test that its
    cause no longer shows, recorded as ``finding absent`` (which ``finalstate matrix`` reads)."""
    if finding.stands_on(installed_release()):
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=finding.headline))
        return True
    request.node.user_properties.append(("finding absent", finding.id))
    return False


def assert_reproduces(request, target, finding: Finding) -> None:
    """A finding's own minimal run, as a strict expected failure (``expect_the_finding``): it must break its
    invariant on ``target`` while the bug stands; where it does not, the run may break the invariant only for a
    cause another finding standing here explains. Skipped where it is about others."""
    if not finding.about(target.name, target.profile):
        pytest.skip(f"{finding.id} is about {', '.join(finding.targets + finding.profiles)}")
    kind = KINDS[finding.kind]
    invariant = next(i for i in kind.invariants if i.__name__ == finding.invariant)
    run = kind.parse(finding.scenario)
    stands = expect_the_finding(request, finding, InvariantViolation)
    others = () if stands else findings_on(finding.kind, target.name, invariant.__name__, profile=target.profile)
    try:
        check_invariants(target, run, (invariant,), others)
    except NotImplementedError as e:  # this target's server backend cannot play the finding's run
        pytest.skip(f"{finding.id} on {target.name}: {e}")


def assert_scope_holds(target, record_property) -> None:
    """The complete small scope of the target's kind (``impl.search.exhaustive``), in this process: no disagreement
    and no violation a known finding does not explain; its figures recorded on the test."""
    from impl.search.exhaustive import check_in_scope
    from impl.targets.registry import chosen_server

    if chosen_server() != "model":
        pytest.skip("the exhaustive scope is checked on the model server (its run contexts include ones the real server "
                    "cannot hand out); with --server airflow the search checks what the real server can play")
    found = check_in_scope(target)
    record_property("exhaustive scope", f"depth {found.depth}: {found.scenarios} runs, {found.states} model "
                                        f"decisions, {found.seconds:.1f}s"
                    + "".join(f"; left out, {n} it cannot play: {why}" for why, n in found.unplayable.items()))
    if found.failures:
        raise CheckFailed(f"{len(found.failures)} of {found.scenarios} runs failed:\n\n" + "\n\n".join(found.failures))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed check is reported as the checker says it, and nothing else: its counterexample (the run, what was
    observed, what was expected, the replay line), not the traceback through the checker's own code nor Hypothesis's
    repr of the draws behind it. Then search on the model server, confirm on the real one: a failing supervisor
    property's shrunk run is re-run on the real Execution API, and the verdict is added (``impl.findings.confirm``)."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or call.excinfo is None or report.outcome != "failed":
        return
    from impl.search.report import CheckFailed

    failure = call.excinfo.value
    failures = failure.exceptions if isinstance(failure, BaseExceptionGroup) else (failure,)
    if all(isinstance(f, CheckFailed) for f in failures):
        report.longrepr = "\n\n".join(str(f) for f in failures)
    from impl.targets.registry import chosen_server

    if chosen_server() != "model":
        return
    from impl.findings.confirm import confirm

    verdicts = [confirm(f) for f in failures if isinstance(f, CheckFailed)]
    text = "\n".join(v.to_text() for v in verdicts if v is not None)
    if text:
        report.sections.append(("finalstate: the counterexample on the real Execution API server", text))


def pytest_runtest_logreport(report):
    """What Hypothesis adds to a report beside the run under check, settled on the controller:

    - under pytest-xdist, each test's Hypothesis statistics go into the JUnit report, as Hypothesis puts them there
      without it (its plugin finds no JUnit writer in a worker, pytest-dev/pytest#7767): the matrix counts a cell's
      examples from them;
    - no patch offering to add the failing examples to the checker's own properties (``git apply
      .hypothesis/patches/...``): the report's replay line is how a run under check is replayed."""
    report.__dict__.pop("_hypothesis_failing_examples", None)
    stats = report.__dict__.get("_hypothesis_stats")
    if report.when != "teardown" or stats is None or not hasattr(report, "node"):
        return
    import base64

    xml = _junit_writer(report.node.config)
    if xml is not None:
        xml.add_global_property("hypothesis-statistics-" + report.nodeid, base64.b64encode(stats.encode()).decode())


def _junit_writer(config):
    from _pytest.junitxml import xml_key

    return config.stash.get(xml_key, None)
