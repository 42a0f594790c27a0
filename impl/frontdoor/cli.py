"""``finalstate``: run the checker, replay a counterexample of any kind, write the findings report.

    finalstate check [--target NAME] [--server model|airflow] [--profile dev|ci|nightly[,SDK-PROFILE]] [--junit-xml PATH] [-- PYTEST-ARGS]
    finalstate replay [--server model|airflow] [--profile SDK-PROFILE] --target NAME 'try_number=1 max_tries=1; send RetryTask; exit 0'
    finalstate findings [--target NAME] [--out findings-report.md]
    finalstate targets
    finalstate profiles [--markdown]                 (the SDK profiles: each runtime trait and where it was read)
    finalstate check|replay|findings --server-db sqlite|local|URL ...   (the real server's database)
    finalstate check|replay|findings|targets --release 1.2.0 | --airflow-src PATH ...   (on another system under check)
    finalstate export [--out DIR] [--all] [--findings F1,F8] [--check [--releases 1.2.2,1.4.0b2]]
    finalstate corpus [--release R] [--target T]    (the upstream corpus replayed, and the recall on it)
    finalstate coverage --target airflow-inproc      (branch coverage of the real terminal-state code)
    finalstate mutate --target airflow-inproc        (mutation score of the checker on it)
    finalstate build-runtimes                        (build finalstate's Go runtime: cmd:go-runtime)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from impl.targets.registry import (DEFAULT_TARGET, SERVER_ENV, SERVERS, TargetUnavailable, UnknownTarget,
                                     known_targets, load_target, require_installed)


#: The Hypothesis profiles ``impl.search.profiles`` registers (not imported here: pytest must import Hypothesis first).
PROFILES = ("dev", "ci", "nightly")


def parse_profile(value: str, search_default: str | None = "ci") -> tuple[str | None, str | None]:
    """``--profile``'s value: a search profile (``PROFILES``: how hard the checker looks), an SDK profile
    (``model.sdks.PROFILES``: what a coordinator target is declared to be), or one of each, comma-separated
    (``ci,java-sdk-1.0.0``). Returns ``(search, sdk)``, the search profile ``search_default`` when none is named, the
    SDK profile None; ``ValueError`` naming the profiles there are for anything else."""
    from model.sdks import PROFILES as SDK_PROFILES

    search = sdk = None
    for name in (n.strip() for n in value.split(",") if n.strip()):
        if name in PROFILES and search is None:
            search = name
        elif name in SDK_PROFILES and sdk is None:
            sdk = name
        elif name in PROFILES or name in SDK_PROFILES:
            raise ValueError(f"--profile {value!r} names two {'search' if name in PROFILES else 'SDK'} profiles; "
                             "name at most one of each")
        else:
            raise ValueError(f"unknown profile {name!r} in --profile {value!r}: a search profile "
                             f"({', '.join(PROFILES)}), an SDK profile ({', '.join(SDK_PROFILES)}), or one of each, "
                             "comma-separated")
    return search or search_default, sdk


def _profile_help(what: str) -> str:
    from model.sdks import PROFILES as SDK_PROFILES

    return (f"{what}; and/or an SDK profile a coordinator target (cmd:, reference-runtime, model) is declared to be, "
            f"compared with that SDK's runtime instead of accepting any known one: {', '.join(SDK_PROFILES)} "
            "(finalstate profiles lists their traits); one of each comma-separated, e.g. ci,java-sdk-1.0.0")


def _declare(args) -> None:
    """Split ``args.profile`` into the search profile (``args.profile``) and the SDK profile (``args.sdk_profile``, also
    set in ``$FINALSTATE_SDK_PROFILE`` for the targets loaded here and in the workers); exit naming a bad one."""
    import os

    from impl.targets.registry import SDK_PROFILE_ENV

    try:
        args.profile, args.sdk_profile = parse_profile(args.profile or "", getattr(args, "search_default", "ci"))
    except ValueError as e:
        raise SystemExit(f"finalstate: {e}") from None
    if args.sdk_profile:
        os.environ[SDK_PROFILE_ENV] = args.sdk_profile


def _load(name: str, kind: str = "supervisor"):
    try:
        return load_target(name, kind)
    except (UnknownTarget, TargetUnavailable) as e:
        raise SystemExit(f"finalstate: {e}") from None


def cmd_check(args) -> int:
    _declare(args)
    for name in args.target.split(","):  # a target without its extra is an error here, not a run of skips
        try:
            require_installed(name.strip())
        except TargetUnavailable as e:
            raise SystemExit(f"finalstate: {e}") from None
    if args.shard is not None and args.exhaustive is None:
        raise SystemExit("finalstate: --shard parts the exhaustive scope between machines: it needs --exhaustive")
    if args.exhaustive is not None:
        if args.server == "airflow":
            raise SystemExit("finalstate: --exhaustive enumerates runs on the model server; run the Hypothesis search "
                             "(no --exhaustive) with --server airflow")
        return _check_exhaustively(args)
    import importlib.util

    import pytest

    # The properties' directory, found without importing them, so that their conftest (and its
    # --target option) is read as pytest starts.
    properties = importlib.util.find_spec("properties").submodule_search_locations[0]
    report = [f"--junit-xml={args.junit_xml}", "-o", "junit_logging=no"] if args.junit_xml else []
    server = [f"--server={args.server}"] if args.server else []
    server += [f"--sdk-profile={args.sdk_profile}"] if args.sdk_profile else []
    return pytest.main([properties, f"--target={args.target}", f"--hypothesis-profile={args.profile}", *server,
                        *_xdist(args.workers),
                        "-p", "impl.search.timing", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
                        # pyproject.toml's filter, for where it is not read (installed, or run from elsewhere)
                        "-W", "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning",
                        *report, *args.pytest_args])


def _xdist(workers: int) -> list[str]:
    """pytest's arguments for ``workers`` processes (pytest-xdist; each its own server and database on
    ``--server airflow``); none for one, or where pytest-xdist is not installed (said on stderr)."""
    import importlib.util

    if workers <= 1:
        return []
    if importlib.util.find_spec("xdist") is None:
        print("finalstate: pytest-xdist is not installed here: the properties run in one process", file=sys.stderr)
        return []
    return [f"--numprocesses={workers}"]


def _check_exhaustively(args) -> int:
    from impl.search.exhaustive import SCOPES, check_exhaustively

    kind = kind_of_target(args.target)  # a bad name fails here, once; and the workers fork with the target imported
    scope = SCOPES[kind]
    depth = args.exhaustive if args.exhaustive >= 0 else scope.default_depth
    shard = args.shard or (0, 1)
    part = f" (part {shard[0] + 1} of {shard[1]} of the scope)" if shard[1] > 1 else ""
    print(f"{scope.describe(depth)}, on {args.target}{part}...", flush=True)
    found = check_exhaustively(args.target, depth, workers=args.workers, kind=kind, shard=shard)
    print(f"{found.scenarios} {'scenarios' if kind == 'supervisor' else 'runs'} checked{part}, {found.states} distinct "
          f"{'model states' if kind == 'supervisor' else 'model decisions'}, in {found.seconds:.1f}s")
    print("violations explained by known findings: "
          + (", ".join(f"{k} {v}" for k, v in sorted(found.explained.items())) or "none"))
    if found.profiles:
        print("runs by the profiles that explain them (undeclared; --profile NAME declares one):")
        for names, n in sorted(found.profiles.items(), key=lambda item: -item[1]):
            print(f"  {n:6} {names}")
    for why, n in sorted(found.unplayable.items()):
        print(f"left out, {n} run(s) this target cannot play: {why}")
    for failure in found.failures:
        print(failure)
    print(f"{len(found.failures)} run(s) failed" if found.failures else "no disagreement, no unexplained violation")
    return 1 if found.failures else 0


def _shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) as ``(K - 1, N)``; argparse's error names what was wrong otherwise."""
    k, slash, n = text.partition("/")
    if not (slash and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"{text!r} is no part K/N of the scope, with 1 <= K <= N (such as 2/4)")
    return int(k) - 1, int(n)


def kind_of_target(name: str) -> str:
    """The kind of run ``name`` checks (the first it takes, for the model), loading it once; exits naming a bad one."""
    from impl.targets.registry import WrongKindOfTarget

    for kind in ("supervisor", "runtime", "coordinator"):
        try:
            _load_or_wrong_kind(name, kind).close()
            return kind
        except WrongKindOfTarget:
            continue
    raise SystemExit(f"finalstate: {name} checks no kind of run this checker has")


def _load_or_wrong_kind(name: str, kind: str):
    from impl.targets.registry import WrongKindOfTarget

    try:
        return load_target(name, kind)
    except WrongKindOfTarget:
        raise
    except (UnknownTarget, TargetUnavailable) as e:
        raise SystemExit(f"finalstate: {e}") from None


def cmd_replay(args) -> int:
    """Replay one run; with ``--server airflow`` also the HTTP exchanges and the row before and after."""
    import os

    from impl.targets.kinds import KINDS
    from model.lifecycle import kind_of

    if args.server:
        os.environ[SERVER_ENV] = args.server  # read by the target as it is loaded
    args.search_default = None
    _declare(args)
    kind = kind_of(args.scenario)
    if kind == "lifecycle":
        return _replay_life(args)
    try:
        run = KINDS[kind].parse(args.scenario)
    except ValueError as e:
        raise SystemExit(f"finalstate: bad scenario: {e}") from None
    target = _load(args.target, kind)
    try:
        observed, expected = target.run(run), target.reference(run)
    except NotImplementedError as e:  # a run this target's server backend cannot play (yet)
        raise SystemExit(f"finalstate: {e}") from None
    finally:
        target.close()
    record = getattr(target.run, "last", None)  # the real server's record of the attempt
    return _print_replay(target, KINDS[kind], run, expected, observed, record)


def _print_replay(target, kind, run, expected, observed, record=None) -> int:
    from impl.search.report import disagreement_report, observation_block, trace

    name = target.name
    print(f"{kind.name} run:", trace(run), sep="\n")
    for line in kind.notes(run, observed):
        print(f"  {line}")
    if record is not None:
        print("  real Execution API (--server airflow):", *(f"    {line}" for line in record.to_lines()), sep="\n")
    explaining = target.explains(run, observed) if target.explains is not None else None
    agree = bool(explaining) if explaining is not None else kind.agree(expected, observed)
    if not agree:
        if record is not None:
            print("(on --server airflow a disagreement is a difference between model.server and the real "
                  "Execution API server, not between the model and the supervisor)")
        print(disagreement_report(name, run, expected, observed, kind.name, target.profile, explaining is not None))
    elif explaining is not None:
        print(observation_block(f"{name} (explained by the model of: {', '.join(explaining)})", observed))
    elif target.profile:
        print(observation_block(f"{name} (agrees with the model of {target.profile})", observed))
    else:
        print(observation_block(f"{name} (agrees with the model)", observed))
    found = kind.violations(run, observed, kind.invariants)
    print("violations:" if found else "violations: none")
    for v in found:
        print(f"  - {v}")
    return 1 if found or not agree else 0


def _replay_life(args) -> int:
    from impl.search.lifecycle import LifeOver, pairings_for, replay_life
    from model.lifecycle import parse_life
    from model.lifecycle import life_violations

    try:
        _, plays, _ = parse_life(args.scenario)
        pairings = pairings_for(args.target)
    except ValueError as e:
        raise SystemExit(f"finalstate: bad scenario: {e}") from None
    except UnknownTarget as e:
        raise SystemExit(f"finalstate: {e}") from None
    failed = False
    for pairing in pairings:
        if pairing.unavailable:
            raise SystemExit(f"finalstate: {pairing.name}: {pairing.unavailable}")
        if plays is not None and pairing.plays != plays:
            print(f"{pairing.name}: its runtime plays {pairing.plays} tries, this life's are {plays} tries")
            continue
        try:
            life = replay_life(pairing, args.scenario)
        except IndexError as e:
            print(f"{pairing.name}: this life does not apply ({e})")
            continue
        except LifeOver as e:
            raise SystemExit(f"finalstate: bad scenario: {e}") from None
        found = life_violations(life)
        failed |= bool(found)
        print(f"lifecycle on {pairing.name}:", *(f"  {line}" for line in life.to_lines()), sep="\n")
        print("violations:" if found else "violations: none", *(f"  - {v}" for v in found), sep="\n")
    return 1 if failed else 0


def cmd_findings(args) -> int:
    import os

    from hypothesis import settings

    import impl.search.profiles  # noqa: F401  registers the profiles
    from impl.catalogue.findings import FINDINGS
    from impl.findings.search import discover, replay, report

    target = _load(args.target)
    try:
        discovered = discover(target, per_invariant=args.per_invariant, profile=settings.get_profile(args.profile))
        text = report(target, discovered, _sdk_version())
        stale = [f.id for f in FINDINGS if f.about(target.name) and f.stands_on(target.release)
                 and replay(target, f) is None]
    finally:
        target.close()
    if args.server == "airflow":  # the search ran on the fast model server; the findings are re-shown on the real one
        from impl.findings.search import on_the_real_server

        os.environ[SERVER_ENV] = "airflow"
        real = _load(args.target)
        try:
            text += "\n" + "\n".join(on_the_real_server(real))
        finally:
            real.close()
            os.environ[SERVER_ENV] = "model"
    Path(args.out).write_text(text)
    print(text)
    print(f"wrote {args.out}")
    if stale:
        print(f"finding(s) no longer reproduce: {', '.join(stale)}", file=sys.stderr)
    return 1 if stale else 0


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-task-sdk")
    except PackageNotFoundError:
        return "(not installed)"


def cmd_profiles(args) -> int:
    """Each SDK profile's traits, each with where in apache/airflow it was read, and the Go runtime's flags that
    reproduce it (``model.sdks``; ``--markdown``: the table of the docs' runtimes page)."""
    from impl.catalogue.sdk_profiles import profiles_markdown, profiles_text

    print(profiles_markdown() if args.markdown else profiles_text())
    return 0


def cmd_targets(args) -> int:
    print(f"system under check: apache-airflow-task-sdk {_sdk_version()}")
    print(known_targets())
    return 0


def cmd_export(args) -> int:
    """Write the findings' pytest modules (``impl.export.writer``); with ``--check``, run them on each release in
    an environment without finalstate and print the findings × releases table against the matrix."""
    from impl.export import writer as export
    from impl.releases.adapters import INSTALLED, model_release
    from impl.releases.environments import EnvironmentFailed, UnknownRelease

    installed = model_release()
    try:
        chosen = tuple(export.find(i.strip()) for i in args.findings.split(",")) if args.findings else None
        releases = tuple(r.strip() for r in args.releases.split(",")) if args.releases else (str(INSTALLED),)
        results = export.export_all(installed, chosen or export.ALL_FINDINGS)
        standing = tuple(r for r in results if args.all or chosen or r.finding.stands_on(installed))
        out = Path(args.out)
        export.write(standing, out)
        for r in results:
            if isinstance(r, export.NotExported):
                print(f"{r.finding.id}: not exported: {r.reason}")
            elif r not in standing:
                print(f"{r.finding.id}: not exported: it does not stand on task-sdk {INSTALLED} (--all exports it)")
            else:
                print(f"{r.finding.id}: {out / r.name}")
        if not args.check:
            return 0
        rows = export.check(out, releases)
    except (export.UnknownFinding, export.CheckFailed, UnknownRelease, EnvironmentFailed) as e:
        raise SystemExit(f"finalstate: {e}") from None
    print()
    print(export.table(rows))
    return 0 if all(r.agrees for r in rows) else 1


def cmd_build_runtimes(args) -> int:
    """Build finalstate's own Go runtime (``impl.coordinator.go_runtime``) unless it is up to date; exit 0 when it is
    built, or when there is no Go toolchain to build it with (its ``cmd:`` target then says so), 1 when its build
    failed."""
    from impl.coordinator import go_runtime

    try:
        built = go_runtime.ensure_built()
    except go_runtime.GoRuntimeUnavailable as e:
        print(f"build-runtimes: {go_runtime.NAME} unavailable: {e}")
        return 0 if isinstance(e, go_runtime.NoGoToolchain) else 1
    print(f"build-runtimes: {go_runtime.NAME} {built.how}: {built.path}" + (f" ({built.go_version})" if built.go_version
                                                                             else ""))
    print(f"  finalstate check --target 'cmd:{go_runtime.NAME}'   (or 'cmd:{built.path}')")
    return 0


#: The switches that choose the system under check; the command is re-run in that system's environment without them.
RELEASE_SWITCHES = ("--release", "--airflow-src")


def _add_release_options(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--release", metavar="VERSION", help="run on this apache-airflow-task-sdk release from PyPI (with "
                       "its apache-airflow-core), in an environment built once under build/envs")
    where.add_argument("--airflow-src", metavar="PATH", help="run on a source checkout of apache/airflow (its task-sdk "
                       "and airflow-core installed editable in an environment under build/envs)")


def _without_release_switches(argv: list[str]) -> list[str]:
    """``argv`` less ``--release V``/``--airflow-src P`` (either spelling), up to a ``--`` (pytest's arguments follow)."""
    kept, rest = [], list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            return kept + [arg] + rest
        if arg in RELEASE_SWITCHES:
            rest = rest[1:]
        elif not arg.startswith(tuple(f"{s}=" for s in RELEASE_SWITCHES)):
            kept.append(arg)
    return kept


def _rerun_on_release(args, argv: list[str]) -> None:
    """Re-run this command under the python of the chosen system's environment (never returns), or exit naming what failed."""
    import os

    from impl.releases.environments import (RELEASE_ENV, EnvironmentFailed, NotACheckout, UnknownRelease,
                                            python_for)

    spec = args.release or f"src:{args.airflow_src}"
    try:
        python = str(python_for(spec))
    except (UnknownRelease, NotACheckout, EnvironmentFailed) as e:
        raise SystemExit(f"finalstate: {e}") from None
    sys.stdout.flush()
    os.execve(python, [python, "-m", "impl.frontdoor.cli", *_without_release_switches(argv)],
              {**os.environ, RELEASE_ENV: spec})


def _add_release_commands(sub) -> None:
    """``finalstate diff`` and ``finalstate matrix`` (``impl.releases``): across releases and checkouts."""
    from impl.compare import diff
    from impl.compare import matrix

    diff.add_parser(sub)
    matrix.add_parser(sub)


def _add_server_db_option(parser) -> None:
    from impl.server.postgres import SERVER_DB_ENV

    parser.add_argument("--server-db", metavar="sqlite|local|URL",
                        help="the real Execution API server's database (--server airflow, the server conformance "
                             "property): sqlite (an embedded copy, the default), local (a private PostgreSQL started "
                             f"from the pgserver wheel) or a database URL (postgresql://...); sets {SERVER_DB_ENV}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="finalstate", description=__doc__.split("\n")[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the checker (pytest properties/) against a target")
    check.add_argument("--target", default=DEFAULT_TARGET)
    check.add_argument("--profile", default="ci", metavar="PROFILE[,SDK-PROFILE]",
                       help=_profile_help(f"how hard the checker looks: {', '.join(PROFILES)} (default ci)"))
    check.add_argument("--junit-xml", metavar="PATH", help="also write pytest's JUnit XML report there (each failure's "
                                                            "message holds the shrunk scenario and its replay command)")
    check.add_argument("--exhaustive", type=int, metavar="N", nargs="?", const=-1,
                       help="instead of the Hypothesis search, check every run of the target's kind up to size N: a "
                            "supervisor's scenarios of up to N events (default: the largest airflow-inproc checks "
                            "within a minute), the task runner's tries with up to N features at once (default 1), a "
                            "coordinator runtime's tries with up to N events of its world (default 1)")
    check.add_argument("--workers", type=int, default=2, help="processes: pytest-xdist workers for the search, or "
                       "the workers of --exhaustive (1: all in this process)")
    check.add_argument("--shard", type=_shard, metavar="K/N",
                       help="with --exhaustive: check only the K-th of N parts of the scope (every N-th run of each run "
                            "context), so that N machines check it between them; the parts' runs add up to the "
                            "scope's (default 1/1: all of it)")
    check.add_argument("--server", choices=SERVERS, help="what answers the supervisor targets' Execution API calls: "
                       "model (model.server, the default) or airflow (the real Execution API of apache-airflow-core, "
                       f"Airflow's client with its default retries); passed to pytest, which sets {SERVER_ENV}")
    check.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    _add_server_db_option(check)
    _add_release_options(check)
    check.set_defaults(func=cmd_check)

    rep = sub.add_parser("replay", help="run one scenario, runtime run, coordinator run or life on a target and "
                                        "the model, and check it")
    rep.add_argument("--target", default=DEFAULT_TARGET)
    rep.add_argument("--server", choices=SERVERS, help="what answers the supervisor's Execution API calls: "
                     "model.server (default) or the real Execution API of apache-airflow-core on SQLite "
                     f"(sets {SERVER_ENV}; airflow-inproc and airflow-process)")
    rep.add_argument("--profile", default=None, metavar="SDK-PROFILE",
                     help=_profile_help("a search profile is taken and changes nothing here"))
    rep.add_argument("scenario", help="the run's text, as a counterexample prints it")
    _add_server_db_option(rep)
    _add_release_options(rep)
    rep.set_defaults(func=cmd_replay)

    fnd = sub.add_parser("findings", help="search for findings and write the Markdown report")
    fnd.add_argument("--target", default=DEFAULT_TARGET)
    fnd.add_argument("--out", default="findings-report.md")
    fnd.add_argument("--profile", default="ci", choices=PROFILES)
    fnd.add_argument("--per-invariant", type=int, default=3, help="distinct counterexamples to look for per invariant")
    fnd.add_argument("--server", choices=SERVERS, default="model",
                     help="airflow: also re-run every registered finding on the real Execution API server with Airflow's "
                          "default client retries, and add the table to the report (the search itself runs on the model "
                          "server)")
    _add_server_db_option(fnd)
    _add_release_options(fnd)
    fnd.set_defaults(func=cmd_findings)

    prf = sub.add_parser("profiles", help="list the SDK profiles (--profile NAME): each runtime trait, the file and "
                                          "function of apache/airflow it was read from, the Go runtime's flags")
    prf.add_argument("--markdown", action="store_true", help="the table of the docs' runtimes page")
    prf.set_defaults(func=cmd_profiles)

    tgt = sub.add_parser("targets", help="list the known targets: kind, what runs, what each needs")
    _add_release_options(tgt)
    tgt.set_defaults(func=cmd_targets)

    exp = sub.add_parser("export", help="write each finding standing on the installed release as a pytest module "
                                        "that needs only Airflow and pytest (and --check them on releases)")
    exp.add_argument("--out", default="exported", help="the directory the modules go to (its test_*.py replaced)")
    exp.add_argument("--all", action="store_true", help="every exportable finding, standing on the installed release "
                                                        "or not (its test then passes there: a regression test)")
    exp.add_argument("--findings", metavar="F1,F8", help="only these findings (whether they stand or not)")
    exp.add_argument("--check", action="store_true", help="then run the modules with pytest in an environment per "
                     "release holding only that task-sdk (its airflow-core) and pytest, and compare with the matrix")
    exp.add_argument("--releases", metavar="1.2.2,1.3.2", help="the releases --check runs on (default: the installed)")
    _add_release_options(exp)
    exp.set_defaults(func=cmd_export)

    bld = sub.add_parser("build-runtimes", help="build finalstate's own Go runtime from its source (needs Go), the "
                                                "program of cmd:go-runtime; a cmd: run of it also builds it first")
    bld.set_defaults(func=cmd_build_runtimes)

    from impl.findings import corpus
    from impl.power import coverage
    from impl.power import mutate

    corpus.add_parser(sub, _add_release_options)
    coverage.add_parser(sub)
    mutate.add_parser(sub)
    _add_release_commands(sub)

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if getattr(args, "server_db", None):
        import os

        from impl.server.postgres import SERVER_DB_ENV

        os.environ[SERVER_DB_ENV] = args.server_db  # read by the real server as it starts (impl.server.airflow_api)
    if getattr(args, "release", None) or getattr(args, "airflow_src", None):
        _rerun_on_release(args, argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
