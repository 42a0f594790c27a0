"""``finalstate``: run the checker, replay a counterexample, write the findings report.

    finalstate check [--target NAME] [--profile dev|ci|nightly] [-- PYTEST-ARGS]
    finalstate replay --target NAME 'try_number=1 max_tries=1; send RetryTask; exit 0'
    finalstate findings [--target NAME] [--out findings-report.md]
    finalstate targets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from impl.targets import DEFAULT_TARGET, TargetUnavailable, UnknownTarget, known_targets, load_target


def _load(name: str):
    try:
        return load_target(name)
    except (UnknownTarget, TargetUnavailable) as e:
        raise SystemExit(f"finalstate: {e}") from None


def cmd_check(args) -> int:
    import pytest

    import properties

    here = str(Path(properties.__file__).parent)
    return pytest.main([here, f"--target={args.target}", f"--hypothesis-profile={args.profile}", *args.pytest_args])


def cmd_replay(args) -> int:
    from impl.report import disagreement_report, observation_block, trace
    from model.invariants import violations
    from model.scenario import Scenario

    try:
        scenario = Scenario.from_text(args.scenario)
    except ValueError as e:
        raise SystemExit(f"finalstate: bad scenario: {e}") from None
    target = _load(args.target)
    try:
        observed, expected = target.run(scenario), target.reference(scenario)
    finally:
        target.close()
    print("scenario:", trace(scenario), sep="\n")
    failed = False
    if observed != expected:
        print(disagreement_report(target.name, scenario, expected, observed))
        failed = True
    else:
        print(observation_block(f"{target.name} (agrees with the model)", observed))
    found = violations(scenario, observed)
    print("violations:" if found else "violations: none")
    for v in found:
        print(f"  - {v}")
    return 1 if failed or found else 0


def cmd_findings(args) -> int:
    from hypothesis import settings

    import properties.conftest  # noqa: F401  registers the profiles
    from impl.findings import discover, replay, report
    from properties.findings import FINDINGS

    target = _load(args.target)
    try:
        discovered = discover(target, per_invariant=args.per_invariant, profile=settings.get_profile(args.profile))
        text = report(target, discovered, _sdk_version())
        stale = [f.id for f in FINDINGS if target.name in f.targets and replay(target, f) is None]
    finally:
        target.close()
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


def cmd_targets(args) -> int:
    print(known_targets())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="finalstate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the checker (pytest properties/) against a target")
    check.add_argument("--target", default=DEFAULT_TARGET)
    check.add_argument("--profile", default="ci", choices=["dev", "ci", "nightly"])
    check.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    check.set_defaults(func=cmd_check)

    rep = sub.add_parser("replay", help="run one scenario on a target and the model, and check it")
    rep.add_argument("--target", default=DEFAULT_TARGET)
    rep.add_argument("scenario", help="the scenario's text, as a counterexample prints it")
    rep.set_defaults(func=cmd_replay)

    fnd = sub.add_parser("findings", help="search for findings and write the Markdown report")
    fnd.add_argument("--target", default=DEFAULT_TARGET)
    fnd.add_argument("--out", default="findings-report.md")
    fnd.add_argument("--profile", default="ci", choices=["dev", "ci", "nightly"])
    fnd.add_argument("--per-invariant", type=int, default=3, help="distinct counterexamples to look for per invariant")
    fnd.set_defaults(func=cmd_findings)

    tgt = sub.add_parser("targets", help="list the known targets")
    tgt.set_defaults(func=cmd_targets)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
