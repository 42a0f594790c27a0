"""How a checked run reads to a person: the trace, each side's observation, the replay command.

Two kinds of failure are kept apart: a ``Disagreement`` (the model and the target observed
different things for the same run) and an ``InvariantViolation`` (a promise of the design
broke on one side's observation). The same functions serve every kind of run
(``impl.targets.kinds``): the target's ``kind`` says how its runs are judged.
"""

from __future__ import annotations

import shlex

import attrs

from impl.targets.kinds import KINDS


@attrs.frozen
class Checked:
    """What a failure was checked on: the target, the run, and for a violation the invariants and known findings."""

    target: object
    run: object
    invariants: tuple = ()
    known: tuple = ()


class CheckFailed(AssertionError):
    """A failed check; ``checked`` says on what, so that it can be checked again elsewhere (``impl.findings.confirm``)."""

    def __init__(self, report: str, checked: Checked | None = None):
        super().__init__(report)
        self.checked = checked


class Disagreement(CheckFailed):
    """The model and a real implementation observed different things for one run."""


class InvariantViolation(CheckFailed):
    """An invariant of the design does not hold of a target's observation."""


def replay_command(target: str, run, profile: str | None = None) -> str:
    """The command that replays ``run`` on ``target`` (declared to be the SDK profile ``profile``, if any), on the same
    release or checkout as this process."""
    from impl.releases.environments import release_switch

    declared = f" --profile {profile}" if profile else ""
    return (f"finalstate replay{release_switch()}{declared} --target {shlex.quote(target)} "
            f"{shlex.quote(run.to_text())}")


def trace(run) -> str:
    """The run as indented lines: a scenario's context, one line per event, its exit; other runs on one line."""
    head, *rest = run.to_lines() if hasattr(run, "to_lines") else [run.to_text()]
    return "\n".join([f"  {head}", *(f"    {line}" for line in rest)])


def observation_block(title: str, observation) -> str:
    return "\n".join([f"  {title}:", *(f"    {line}" for line in observation.to_lines())])


def compared_with(profile: str | None, undeclared: bool) -> str:
    """What a coordinator target's observation was compared with, for a disagreement's first line: the SDK profile it
    was declared to be, or, undeclared, every profile (``model.sdks.PROFILES``); empty for other targets."""
    if profile:
        return f" (declared {profile})"
    if undeclared:
        from model.sdks import PROFILES

        return f"; no profile explains it either ({', '.join(PROFILES)})"
    return ""


def disagreement_report(target: str, run, model, real, kind: str = "supervisor", profile: str | None = None,
                        undeclared: bool = False) -> str:
    return "\n".join([
        f"DISAGREEMENT: model and {target} differ in {', '.join(KINDS[kind].differing(model, real))}"
        + compared_with(profile, undeclared),
        f"replay: {replay_command(target, run, profile)}",
        "scenario:",
        trace(run),
        observation_block("model" + (f" ({profile})" if profile else ""), model),
        observation_block(target, real),
    ])


def violation_report(target: str, run, observation, found, notes: list[str] = (), profile: str | None = None) -> str:
    return "\n".join([
        f"VIOLATION on {target}: " + "; ".join(sorted({v.invariant for v in found}))
        + (f" (declared {profile})" if profile else ""),
        f"replay: {replay_command(target, run, profile)}",
        *(f"  - {v}" for v in found),
        "scenario:",
        trace(run),
        *(f"  {line}" for line in notes),
        observation_block(target, observation),
    ])


def check_conformance(target, run, expected=None, on_explained=lambda names: None):
    """Raise ``Disagreement`` unless the target observes what its reference model does (``expected``, when the
    caller has it already), or, for an undeclared coordinator target (``Target.explains``), what some SDK profile's
    runtime does; return the observation. ``on_explained`` is handed the names of the profiles that explain it
    (the contract among them), for such a target, whether its reference agreed or not."""
    expected = target.reference(run) if expected is None else expected
    observed = target.run(run)
    kind = KINDS[target.kind]
    explains = getattr(target, "explains", None)
    if explains is not None:
        names = explains(run, observed)
        if names:
            on_explained(names)
            return observed
    elif kind.agree(expected, observed):
        return observed
    profile = getattr(target, "profile", None)
    raise Disagreement(disagreement_report(target.name, run, expected, observed, target.kind, profile,
                                           explains is not None), Checked(target, run))


def explained(known: tuple, violation, run, observed):
    """The first of the ``known`` findings whose cause this violation is, or None: a new bug."""
    return next((f for f in known if f.explains_violation(violation.invariant, run, observed)), None)


def check_observation(target, run, observed, invariants: tuple, known: tuple = (), on_explained=lambda f: None):
    """Raise ``InvariantViolation`` if any of ``invariants`` fails on ``observed`` for a cause none of the
    ``known`` findings explains; hand each explaining finding to ``on_explained``. Return ``observed``."""
    kind = KINDS[target.kind]
    found = []
    for violation in kind.violations(run, observed, invariants):
        finding = explained(known, violation, run, observed)
        if finding is None:
            found.append(violation)
        else:
            on_explained(finding)
    if found:
        raise InvariantViolation(violation_report(target.name, run, observed, found, kind.notes(run, observed),
                                                  getattr(target, "profile", None)),
                                 Checked(target, run, invariants, known))
    return observed


def check_invariants(target, run, invariants: tuple, known: tuple = (), on_explained=lambda f: None):
    """Raise ``InvariantViolation`` if any of ``invariants`` fails on the target's observation (see ``check_observation``)."""
    return check_observation(target, run, target.run(run), invariants, known, on_explained)


def check_run(target, run, invariants: tuple):
    """Conformance, then ``invariants``, with one run of the target and one of the model."""
    return check_observation(target, run, check_conformance(target, run), invariants)
