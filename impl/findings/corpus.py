"""The upstream corpus: terminal-state reports from apache/airflow's tracker, replayed, and the recall on them.

``corpus/reports/NNNNN.toml`` holds one report each (``corpus/README.md`` documents the schema): the issue or pull
request, the task-sdk releases it was reported on, its status upstream, the runs that reproduce it in the run
languages with the *symptom* that shows the reported bug in an observation, and the verdict the intent catalogue
expects: ``caught`` (an invariant should flag it), ``not-a-bug`` (with the source that says so) or
``not-expressible`` (with the word of the run languages it would need).

``run_corpus`` (``finalstate corpus``) plays every run on every target of its kind that is available here
(``DEFAULT_TARGETS``, and the coordinator targets a run names) on the installed release, and on the model of every
release besides (``model_across_releases``). Each (run, target) comes to one ``Outcome``: whether the observation shows
the symptom (*reproduces*), and whether an invariant of the run's kind flags it (*caught*; a registered finding may
explain the violation). A reproducing run that is not caught is a *miss* unless the catalogue says it is not a bug; a
miss, a run that does not parse (unless its verdict says it is not expressible yet), a symptom naming no field of the
observation, and a violation on a run the catalogue calls not a bug each fail the corpus (``ReportResult.failures``),
so that CI sees a regression of the checker's recall. A miss whose expected invariant the catalogue does not have yet
is said apart (``Failure.awaiting_catalogue``): the intent catalogue owes it an invariant.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable

import attrs

from impl.targets.kinds import KINDS
from model.lifecycle import kind_of
from impl.places import shipped
from model import coordinator as model_coordinator
from model import runtime as model_runtime
from model import supervisor as model_supervisor
from model.intent import CONFIDENCE_WORDS
from model.invariants import Violation
from model.lifecycle import LIFECYCLE_INVARIANTS, life_violations
from model.release import Release

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the pinned environments run 3.11
    import tomli as tomllib

#: Where the reports are, one TOML file each, named by the upstream number.
CORPUS = shipped("corpus", "reports")

REPORT_KINDS = ("issue", "pull")
RUN_KINDS = ("supervisor", "runtime", "coordinator", "lifecycle")
VERDICTS = ("caught", "not-a-bug", "not-expressible")
#: How sure the catalogue is of the intent a verdict rests on (issue 30, deliverable 5): ``model.intent``'s three, by
#: their short words.
CONFIDENCES = tuple(CONFIDENCE_WORDS)
#: The targets every run of a kind is played on (those that cannot run here are said so); a coordinator run is
#: played on the model and on the coordinator targets it names.
DEFAULT_TARGETS = {
    "supervisor": ("model", "airflow-inproc"),
    "runtime": ("model", "airflow-task-runner"),
    "coordinator": ("model",),
    "lifecycle": ("model", "airflow-inproc", "airflow-task-runner"),
}

#: The first release whose supervisor launches a coordinator-mode runtime (``_PopenActivitySubprocess``, see
#: ``impl.supervisor_process.supervise.require_command_supervisor``): a coordinator run has no meaning before it.
COORDINATOR_MODE_SINCE = (1, 3, 0)

_REPORT_KEYS = {"number", "kind", "title", "url", "reported_on", "status", "summary", "runs", "verdict"}
_RUN_KEYS = {"kind", "run", "targets", "symptom", "since", "before"}
_VERDICT_KEYS = {"expected", "invariant", "finding", "confidence", "source", "why"}


class BadReport(ValueError):
    """A report file that is not of the schema: the message names the file and what is wrong, on one line."""


@attrs.frozen
class CorpusRun:
    """One run that reproduces a report: its kind, its text, the targets it names (empty: its kind's defaults), and
    the symptom: field of the observation → the value that shows the reported bug."""

    kind: str
    text: str
    targets: tuple[str, ...] = ()
    symptom: tuple[tuple[str, object], ...] = ()
    #: The releases the run is faithful on, ``since <= release < before`` (None: no bound): where what a run fixes
    #: (an exit code, a frame) is what the runtime of those releases does, and others do otherwise.
    since: str | None = None
    before: str | None = None

    def applies_on(self, release: Release) -> bool:
        return ((self.since is None or release.version >= Release.parse(self.since).version)
                and (self.before is None or release.version < Release.parse(self.before).version))

    @property
    def bounds(self) -> str:
        return " and ".join(([f"from {self.since}"] if self.since else []) + ([f"before {self.before}"]
                                                                              if self.before else []))


@attrs.frozen
class Verdict:
    """What the catalogue expects of a report: ``caught`` by ``invariant`` (``finding``: the registered finding that
    explains it), ``not-a-bug`` or ``not-expressible`` (``why``); how sure (``confidence``) and on what (``source``)."""

    expected: str
    invariant: str | None = None
    finding: str | None = None
    confidence: str | None = None
    source: str = ""
    why: str = ""


@attrs.frozen
class Report:
    number: int
    kind: str
    title: str
    url: str
    reported_on: tuple[str, ...]
    status: str
    summary: str
    runs: tuple[CorpusRun, ...]
    verdict: Verdict

    @property
    def ref(self) -> str:
        return f"apache/airflow#{self.number}"


# -- loading ---------------------------------------------------------------------------------------------------


def _require(table: dict, key: str, kind, where: str):
    if key not in table:
        raise BadReport(f"{where}: missing {key!r}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadReport(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, not {value!r}")
    return value


def _no_other_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BadReport(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are: "
                        f"{', '.join(sorted(allowed))}")


def _known_releases() -> tuple[str, ...]:
    from impl.releases.environments import RELEASES

    return tuple(RELEASES)


def _finding_ids() -> set[str]:
    from impl.catalogue.findings import ALL_FINDINGS

    return {f.id for f in ALL_FINDINGS}


def parse_report(table: dict, where: str) -> Report:
    """A report from its TOML table; ``BadReport`` naming ``where`` and the first thing wrong."""
    _no_other_keys(table, _REPORT_KEYS, where)
    number = _require(table, "number", int, where)
    kind = _require(table, "kind", str, where)
    if kind not in REPORT_KINDS:
        raise BadReport(f"{where}: kind must be one of {', '.join(REPORT_KINDS)}, not {kind!r}")
    url = _require(table, "url", str, where)
    expected_url = f"https://github.com/apache/airflow/{'issues' if kind == 'issue' else 'pull'}/{number}"
    if url != expected_url:
        raise BadReport(f"{where}: url must be {expected_url} (its number and kind), not {url!r}")
    reported_on = tuple(_require(table, "reported_on", list, where))
    releases = _known_releases()
    unknown = [r for r in reported_on if r not in releases]
    if not reported_on or unknown:
        raise BadReport(f"{where}: reported_on lists the task-sdk releases the report names, each one of "
                        f"{', '.join(releases)}; got {list(reported_on)!r}")
    runs = tuple(_parse_run(run, f"{where} run {i + 1}") for i, run in enumerate(_require(table, "runs", list, where)))
    if not runs:
        raise BadReport(f"{where}: a report has at least one [[runs]]")
    return Report(number, kind, _require(table, "title", str, where), url, reported_on,
                  _require(table, "status", str, where), _require(table, "summary", str, where), runs,
                  _parse_verdict(_require(table, "verdict", dict, where), f"{where} [verdict]"))


def _parse_run(table, where: str) -> CorpusRun:
    if not isinstance(table, dict):
        raise BadReport(f"{where}: a run is a table ([[runs]]), not {table!r}")
    _no_other_keys(table, _RUN_KEYS, where)
    kind = _require(table, "kind", str, where)
    if kind not in RUN_KINDS:
        raise BadReport(f"{where}: kind must be one of {', '.join(RUN_KINDS)}, not {kind!r}")
    targets = table.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
        raise BadReport(f"{where}: targets is a list of target names, not {targets!r}")
    symptom = _require(table, "symptom", dict, where)
    if not symptom:
        raise BadReport(f"{where}: the symptom names at least one field of the observation")
    for key, value in symptom.items():
        if not isinstance(value, (str, int, bool, list)):
            raise BadReport(f"{where}: symptom {key!r} must be a string, an integer, a boolean or a list, not "
                            f"{value!r}")
    bounds = {}
    for key in ("since", "before"):
        if key in table:
            value = _require(table, key, str, where)
            try:
                Release.parse(value)
            except ValueError:
                raise BadReport(f"{where}: {key} must be a task-sdk release number, not {value!r}") from None
            bounds[key] = value
    return CorpusRun(kind, _require(table, "run", str, where), tuple(targets), tuple(symptom.items()), **bounds)


def _parse_verdict(table: dict, where: str) -> Verdict:
    _no_other_keys(table, _VERDICT_KEYS, where)
    expected = _require(table, "expected", str, where)
    if expected not in VERDICTS:
        raise BadReport(f"{where}: expected must be one of {', '.join(VERDICTS)}, not {expected!r}")
    fields = {k: table[k] for k in ("invariant", "finding", "confidence", "source", "why") if k in table}
    for key, value in fields.items():
        if not isinstance(value, str) or not value:
            raise BadReport(f"{where}: {key!r} must be a non-empty string, not {value!r}")
    if expected == "caught" and "invariant" not in fields:
        raise BadReport(f"{where}: a caught report names the invariant that should flag it")
    if expected != "not-expressible" and not fields.get("source"):
        raise BadReport(f"{where}: a {expected} verdict names the source of intent it rests on (source)")
    if expected != "caught" and not fields.get("why"):
        raise BadReport(f"{where}: a {expected} verdict says why (why)")
    confidence = fields.get("confidence")
    if expected != "not-expressible" and confidence is None:
        raise BadReport(f"{where}: a {expected} verdict says how sure it is (confidence: {', '.join(CONFIDENCES)})")
    if confidence is not None and confidence not in CONFIDENCES:
        raise BadReport(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}, not {confidence!r}")
    finding = fields.get("finding")
    if finding is not None and finding not in _finding_ids():
        raise BadReport(f"{where}: finding {finding!r} is not registered (impl/catalogue/findings.py)")
    return Verdict(expected, **fields)


def load_report(path: Path) -> Report:
    """One report file; ``BadReport`` on anything wrong, naming the file."""
    where = str(path)
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BadReport(f"{where}: not TOML: {e}") from None
    report = parse_report(table, where)
    if path.stem.lstrip("0") != str(report.number):
        raise BadReport(f"{where}: the file is named by its number: {report.number:05d}.toml")
    return report


def load_corpus(directory: Path = CORPUS) -> tuple[Report, ...]:
    """Every report under ``directory`` (``*.toml``), in number order; ``BadReport`` for the first bad one."""
    paths = sorted(Path(directory).glob("*.toml"))
    if not paths:
        raise BadReport(f"{directory}: no reports (*.toml) there")
    return tuple(sorted((load_report(p) for p in paths), key=lambda r: r.number))


# -- what a run came to on one target ----------------------------------------------------------------------------

PLAYED, UNAVAILABLE, NOT_ON_RELEASE = "played", "unavailable", "not on this release"


@attrs.frozen
class Outcome:
    """One run on one target: ``status`` (played, or why not), the observation's fields, whether they show the
    symptom, the violations of the kind's invariants, and the registered findings that explain them."""

    target: str
    status: str
    note: str = ""
    fields: dict = attrs.field(factory=dict, eq=False)
    reproduces: bool = False
    violations: tuple[Violation, ...] = ()
    explained_by: tuple[str, ...] = ()
    #: Symptom keys the observation has no field for.
    unknown_fields: tuple[str, ...] = ()

    @property
    def caught(self) -> bool:
        return bool(self.violations)


def observed_fields(kind: str, run, observed, release: Release) -> dict:
    """What a symptom can name: the observation's fields (lists of texts for sequences), and for a runtime's try
    what the supervisor (the model of ``release``) records of it (``final_state``, ``row``); for a life, the row at
    its end (``row``, ``try_number``), the number of ``tries`` and each try's ``final_states`` and ``rows``."""
    if kind == "lifecycle":
        return {"row": observed.row.state, "try_number": observed.row.try_number, "tries": len(observed.tries),
                "final_states": [t.observation.final_state for t in observed.tries],
                "rows": [t.observation.row for t in observed.tries]}
    fields = {name: ([str(v) for v in value] if isinstance(value, (tuple, list)) else value)
              for name, value in attrs.asdict(observed, recurse=False).items()}
    if kind == "runtime":
        recorded = model_supervisor.run(model_runtime.to_scenario(run.context, observed), release)
        fields.setdefault("final_state", recorded.final_state)
        fields.setdefault("row", recorded.row)
    return fields


def shows(symptom: tuple[tuple[str, object], ...], fields: dict) -> tuple[bool, tuple[str, ...]]:
    """Whether ``fields`` show every part of ``symptom``, and the symptom keys no field answers. A scalar field
    matches a value of the same text; a list field matches a list equal to it, or a single value among its items."""
    unknown = tuple(k for k, _ in symptom if k not in fields)
    if unknown:
        return False, unknown

    def matches(observed, wanted) -> bool:
        if isinstance(observed, list):
            return [str(w) for w in wanted] == observed if isinstance(wanted, list) else str(wanted) in observed
        return not isinstance(wanted, list) and str(observed) == str(wanted)

    return all(matches(fields[k], v) for k, v in symptom), ()


def parse_run(run: CorpusRun):
    """The run's text in its kind's language (a life: its text, checked by ``model.lifecycle.parse_life``);
    ``ValueError`` with the parser's message, or when the text is a run of another kind."""
    from model.lifecycle import parse_life

    if run.kind == "lifecycle":
        parse_life(run.text)
        parsed = run.text
    else:
        parsed = KINDS[run.kind].parse(run.text)
    found = kind_of(run.text)
    if found != run.kind:
        raise ValueError(f"the text is a {found} run, not a {run.kind} run")
    return parsed


# -- the sides a run is played on ------------------------------------------------------------------------------


@attrs.frozen
class Side:
    """A target as the corpus plays it: ``play(parsed) -> observation``, with the release its model follows and
    the names the findings registry knows it by (a life's pairings)."""

    name: str
    release: Release
    play: Callable
    #: For a life: the pairing's name (the findings registry's name for it); else the target's name.
    finding_target: str = ""
    #: For a life: the kind of try its runtime side plays (``runtime`` or ``coordinator``); None for other runs.
    plays: str | None = None


def model_side(kind: str, release: Release) -> list[Side]:
    """The model of ``release`` for runs of ``kind`` (a life: the model's task runner and coordinator runtime, each
    paired with the model's supervisor of that release)."""
    if kind == "supervisor":
        return [Side("model", release, functools.partial(model_supervisor.run, release=release), "model")]
    if kind == "runtime":
        def runtime(run):
            reason = model_runtime.impossible_on(run, release)
            if reason is not None:
                raise NotImplementedError(reason)
            return model_runtime.python_runtime(run, release)
        return [Side("model", release, runtime, "model")]
    if kind == "coordinator":
        def coordinator(run):
            if release.version < COORDINATOR_MODE_SINCE:
                raise NotImplementedError(f"task-sdk {release} launches no coordinator-mode runtime (since 1.3.0)")
            return model_coordinator.coordinator_attempt(run, release=release)
        return [Side("model", release, coordinator, "model")]
    from impl.search.lifecycle import coordinator_model_with, coordinator_pairing, python_pairing, release_runtime

    supervise = functools.partial(model_supervisor.run, release=release)
    pairings = [python_pairing("model-runtime+model", functools.partial(release_runtime, release=release), supervise,
                               release=release),
                coordinator_pairing("model-coordinator+model", coordinator_model_with(supervise, release),
                                    release=release)]
    return [_life_side("model", p, release) for p in pairings]


def _life_side(target: str, pairing, release: Release) -> Side:
    from impl.search.lifecycle import replay_life

    return Side(f"{target} ({pairing.name})" if pairing.name != target else target, release,
                functools.partial(replay_life, pairing), pairing.name, pairing.plays)


def real_sides(name: str, kind: str) -> list[Side] | str:
    """The target ``name`` for runs of ``kind`` (a life: each of its pairings), or why it cannot play them here."""
    from impl.targets.registry import TargetUnavailable, UnknownTarget, load_target
    from impl.releases.adapters import model_release

    if kind == "lifecycle":
        from impl.search.lifecycle import pairings_for

        try:
            pairings = pairings_for(name)
        except UnknownTarget as e:
            return str(e).splitlines()[0]
        unavailable = [p.unavailable for p in pairings if p.unavailable]
        if unavailable:
            return unavailable[0]
        return [_life_side(name, p, model_release()) for p in pairings]
    try:
        loaded = load_target(name, kind)
    except (TargetUnavailable, UnknownTarget) as e:
        return str(e).splitlines()[0]
    return [Side(name, loaded.release, loaded.run, name)]


def play(run: CorpusRun, parsed, side: Side) -> Outcome:
    """``run`` (parsed) on one side: its observation, the symptom, the violations and the findings explaining them."""
    from impl.catalogue.findings import findings_on

    try:
        observed = side.play(parsed)
    except NotImplementedError as e:
        return Outcome(side.name, NOT_ON_RELEASE, str(e).split(";")[0])
    fields = observed_fields(run.kind, parsed, observed, side.release)
    reproduces, unknown = shows(run.symptom, fields)
    if run.kind == "lifecycle":
        found = life_violations(observed, LIFECYCLE_INVARIANTS)
        judged_run, judged = observed, None
    else:
        found = KINDS[run.kind].violations(parsed, observed, KINDS[run.kind].invariants)
        judged_run, judged = parsed, observed
    explaining = []
    for v in found:
        for f in findings_on(run.kind, side.finding_target, v.invariant, release=side.release):
            if f.explains_violation(v.invariant, judged_run, judged) and f.id not in explaining:
                explaining.append(f.id)
    return Outcome(side.name, PLAYED, fields=fields, reproduces=reproduces, violations=tuple(found),
                   explained_by=tuple(explaining), unknown_fields=unknown)


# -- a report, replayed ----------------------------------------------------------------------------------------


@attrs.frozen
class RunResult:
    run: CorpusRun
    outcomes: tuple[Outcome, ...]
    #: The parser's message when the run does not parse in its kind's language.
    unparsed: str | None = None


#: What of a report fails the corpus (``ReportResult.failures``).
UNPARSED, UNKNOWN_FIELD, MISSED, FLAGGED = "does not parse", "unknown field", "missed", "flagged"


@attrs.frozen
class Failure:
    """One way a report fails the corpus on one side: ``what`` is one of ``UNPARSED``, ``UNKNOWN_FIELD``,
    ``MISSED`` (reproduces, no invariant flags it, and the catalogue does not call it benign) and ``FLAGGED`` (an
    invariant flags a run the catalogue calls not a bug)."""

    ref: str
    target: str
    what: str
    message: str
    #: A miss whose expected invariant is not in the catalogue yet (the intent catalogue must add it), rather than
    #: an invariant that exists and no longer flags the run (a regression of the checker).
    awaiting_catalogue: bool = False

    def __str__(self) -> str:
        where = f" on {self.target}" if self.target else ""
        return f"{self.ref}{where}: {self.message}"


def catalogue_invariants() -> frozenset[str]:
    """The names of every invariant of every kind of run (the catalogue as the checker has it)."""
    return frozenset(check.__name__ for kind in KINDS.values() for check in kind.invariants) | frozenset(
        check.__name__ for check in LIFECYCLE_INVARIANTS)


@attrs.frozen
class ReportResult:
    report: Report
    runs: tuple[RunResult, ...]

    @property
    def played(self) -> tuple[Outcome, ...]:
        return tuple(o for r in self.runs for o in r.outcomes if o.status == PLAYED)

    @property
    def reproduces(self) -> bool:
        return any(o.reproduces for o in self.played)

    @property
    def caught(self) -> bool:
        """Reproduces, and every side it reproduces on flags it."""
        reproducing = [o for o in self.played if o.reproduces]
        return bool(reproducing) and all(o.caught for o in reproducing)

    @property
    def parses_now(self) -> bool:
        """A report the catalogue calls not expressible whose runs all parse now: its verdict is due a switch."""
        return self.report.verdict.expected == "not-expressible" and all(r.unparsed is None for r in self.runs)

    def failures(self) -> list[Failure]:
        """What of this report fails the corpus (see the module). A report the catalogue calls not expressible fails
        nothing: its runs that parse are played and shown, and it is listed for the switch of its verdict."""
        report, verdict = self.report, self.report.verdict
        if verdict.expected == "not-expressible":
            return []
        found = []
        for result in self.runs:
            if result.unparsed is not None:
                found.append(Failure(report.ref, "", UNPARSED, f"a {result.run.kind} run does not parse: "
                                                               f"{result.unparsed}"))
            for o in result.outcomes:
                if o.unknown_fields:
                    found.append(Failure(report.ref, o.target, UNKNOWN_FIELD,
                                         f"the symptom names {', '.join(o.unknown_fields)}, which the "
                                         f"{result.run.kind} observation has no field for (its fields: "
                                         f"{', '.join(o.fields)})"))
                elif o.reproduces and not o.caught and verdict.expected != "not-a-bug":
                    pending = verdict.invariant is not None and verdict.invariant not in catalogue_invariants()
                    found.append(Failure(report.ref, o.target, MISSED,
                                         f"reproduces, and no invariant flags it (the catalogue expects "
                                         f"{verdict.invariant}{', which it does not have yet' if pending else ''})",
                                         pending))
                elif o.reproduces and o.caught and verdict.expected == "not-a-bug":
                    found.append(Failure(report.ref, o.target, FLAGGED,
                                         f"{', '.join(sorted({v.invariant for v in o.violations}))} flags a run the "
                                         f"catalogue says is not a bug"))
        return found


def replay_report(report: Report, sides_for: Callable[[CorpusRun], list[Side | tuple[str, str]]]) -> ReportResult:
    """Every run of ``report`` on the sides ``sides_for`` gives it (a ``(name, why)`` pair: a side that cannot play)."""
    runs = []
    for run in report.runs:
        try:
            parsed = parse_run(run)
        except ValueError as e:
            runs.append(RunResult(run, (), str(e)))
            continue
        plays = _life_plays(run)
        outcomes = []
        for side in sides_for(run):
            if isinstance(side, tuple):
                outcomes.append(Outcome(side[0], UNAVAILABLE, side[1]))
            elif side.plays is not None and plays is not None and side.plays != plays:
                continue  # a life is lived by the pairings whose runtime plays its kind of try (any: all host lost)
            elif not run.applies_on(side.release):
                outcomes.append(Outcome(side.name, NOT_ON_RELEASE, f"the run is written for task-sdk {run.bounds}"))
            else:
                outcomes.append(play(run, parsed, side))
        runs.append(RunResult(run, tuple(outcomes)))
    return ReportResult(report, tuple(runs))


def _life_plays(run: CorpusRun) -> str | None:
    """The kind of try a life's run is made of (``model.lifecycle.parse_life``); None for other runs, and for a
    life whose every try is ``host lost`` (any pairing plays it)."""
    from model.lifecycle import parse_life

    return parse_life(run.text)[1] if run.kind == "lifecycle" else None


def targets_of(run: CorpusRun, chosen: tuple[str, ...] | None) -> tuple[str, ...]:
    """The targets a run is played on: the ones chosen (``--target``), else the run's own, else its kind's."""
    if chosen:
        return chosen
    if run.targets:
        return run.targets if run.kind != "coordinator" else ("model", *run.targets)
    return DEFAULT_TARGETS[run.kind]


class Sides:
    """The sides of each target for each kind, loaded once (a real target's load imports Airflow)."""

    def __init__(self, release: Release, chosen: tuple[str, ...] | None = None):
        self.release = release
        self.chosen = chosen
        self._loaded: dict = {}

    def __call__(self, run: CorpusRun) -> list:
        sides = []
        for name in targets_of(run, self.chosen):
            key = (name, run.kind)
            if key not in self._loaded:
                self._loaded[key] = (model_side(run.kind, self.release) if name == "model"
                                     else real_sides(name, run.kind))
            loaded = self._loaded[key]
            sides += [(name, loaded)] if isinstance(loaded, str) else loaded
        return sides


def model_across_releases(reports: tuple[Report, ...],
                          releases: tuple[str, ...]) -> dict[str, tuple[ReportResult, ...]]:
    """Every report on the model of each release (no Airflow needed): release → results."""
    results = {}
    for version in releases:
        sides = Sides(Release.parse(version), ("model",))
        results[version] = tuple(replay_report(r, sides) for r in reports)
    return results


def not_reproduced_where_reported(reports: tuple[Report, ...],
                                  across: dict[str, tuple[ReportResult, ...]]) -> list[Report]:
    """The reports (with a verdict to check, and a run the model plays: not a coordinator's alone) that reproduce on
    the model of none of the releases they were reported on."""
    def reproduces_on(report: Report, version: str) -> bool:
        return next(r for r in across[version] if r.report == report).reproduces

    return [report for report in reports
            if report.verdict.expected != "not-expressible" and any(run.kind != "coordinator" for run in report.runs)
            and not any(reproduces_on(report, version) for version in report.reported_on)]


# -- the command -----------------------------------------------------------------------------------------------


def recall_line(results: tuple[ReportResult, ...]) -> str:
    """``caught/reproducible`` over the reports the catalogue expects caught, and the not-a-bug ones that reproduce."""
    bugs = [r for r in results if r.report.verdict.expected == "caught" and r.reproduces]
    caught = [r for r in bugs if r.caught]
    benign = [r for r in results if r.report.verdict.expected == "not-a-bug" and r.reproduces]
    ratio = f" ({100 * len(caught) / len(bugs):.0f}%)" if bugs else ""
    return f"recall {len(caught)}/{len(bugs)}{ratio}; {len(benign)} reproducing, not a bug by the catalogue"


def _outcome_line(o: Outcome, verdict: Verdict) -> str:
    if o.status != PLAYED:
        return f"{o.target}: {o.status}: {o.note}"
    shown = ", ".join(f"{k}={o.fields[k]}" for k in o.fields if k in ("final_state", "row", "state", "exit_code"))
    if not o.reproduces:
        flagged = f"; flags {', '.join(sorted({v.invariant for v in o.violations}))}" if o.violations else ""
        return f"{o.target}: does not reproduce ({shown}){flagged}"
    if o.caught:
        known = f"explained by {', '.join(o.explained_by)}" if o.explained_by else "no registered finding explains it"
        names = sorted({v.invariant for v in o.violations})
        expected = "" if verdict.invariant in names or verdict.invariant is None else \
            f" (the catalogue names {verdict.invariant})"
        return f"{o.target}: reproduces ({shown}); caught: {', '.join(names)}{expected}; {known}"
    if verdict.expected == "not-a-bug":
        return f"{o.target}: reproduces ({shown}); not caught: not a bug by the catalogue"
    pending = "" if verdict.invariant in catalogue_invariants() else ", which the catalogue does not have yet"
    return f"{o.target}: reproduces ({shown}); MISSED: no invariant flags it (expected: {verdict.invariant}{pending})"


def report_lines(result: ReportResult) -> list[str]:
    """The report, then each run and what each target made of it, then the verdict where it is not caught."""
    report, verdict = result.report, result.report.verdict
    lines = [f"{report.ref} ({report.kind}, reported on {', '.join(report.reported_on)}): {report.title}",
             f"  upstream: {report.status}"]
    for i, run in enumerate(result.runs, 1):
        bounds = f", {run.run.bounds}" if run.run.bounds else ""
        lines.append(f"  run {i} ({run.run.kind}{bounds}): {run.run.text}")
        if run.unparsed is not None:
            state = "not expressible yet" if verdict.expected == "not-expressible" else "DOES NOT PARSE"
            lines.append(f"    {state}: {run.unparsed}")
            continue
        if verdict.expected == "not-expressible":
            lines.append("    parses now: its verdict can say caught or not-a-bug")
        lines += [f"    {_outcome_line(o, verdict)}" for o in run.outcomes]
    if verdict.expected != "caught":
        sure = f" [{verdict.confidence}]" if verdict.confidence else ""
        lines.append(f"  verdict: {verdict.expected}{sure}: {verdict.why}")
        if verdict.source:
            lines.append(f"    source: {verdict.source}")
    return lines


def _grouped(failures: list[tuple[str, Failure]], releases: tuple[str, ...]) -> list[str]:
    """Failures that differ only in where they were seen (the installed release, the model of a release), one line
    each with the places; the model's releases as ranges of ``releases`` (in their order)."""
    places: dict[Failure, list[str]] = {}
    for where, failure in failures:
        places.setdefault(failure, []).append(where)
    return [f"{failure} [{', '.join(_places(where, releases))}]" for failure, where in places.items()]


def _places(where: list[str], releases: tuple[str, ...]) -> list[str]:
    """``["task-sdk 1.3.2", "model of 1.0.0", "model of 1.0.1"]`` → ``["task-sdk 1.3.2", "model of 1.0.0-1.0.1"]``."""
    models = [w.removeprefix("model of ") for w in where if w.startswith("model of ")]
    spans: list[list[str]] = []
    for version in sorted(models, key=releases.index):
        if spans and releases.index(version) == releases.index(spans[-1][-1]) + 1:
            spans[-1].append(version)
        else:
            spans.append([version])
    return ([w for w in where if not w.startswith("model of ")]
            + [f"model of {s[0]}" + (f"-{s[-1]}" if len(s) > 1 else "") for s in spans])


def run_corpus(directory: Path, chosen: tuple[str, ...] | None, out=print) -> tuple[int, list[Failure]]:
    """``finalstate corpus``: every report on the installed release's targets and on the model of every release,
    the recall; returns the exit status (1 when anything fails the corpus, ``ReportResult.failures``) and the
    failures."""
    from impl.releases.adapters import INSTALLED, model_release
    from impl.releases.environments import RELEASES

    reports = load_corpus(directory)
    release = model_release()
    here = tuple(replay_report(r, Sides(release, chosen)) for r in reports)
    installed = f"task-sdk {INSTALLED}" if INSTALLED.release[0] else f"the model's own release {release}"
    out(f"{len(reports)} upstream reports, replayed on {installed}"
        + (f" (targets: {', '.join(chosen)})" if chosen else ""))
    out("")
    for result in here:
        out("\n".join(report_lines(result)))
        out("")
    failures = [(installed, f) for r in here for f in r.failures()]
    out(f"on {installed}: {recall_line(here)}")
    by_target: dict[str, list[Outcome]] = {}
    for result in here:
        for o in result.played:
            if result.report.verdict.expected == "caught":
                by_target.setdefault(o.target, []).append(o)
    for target, outcomes in by_target.items():
        reproducing = [o for o in outcomes if o.reproduces]
        out(f"  {target}: {sum(o.caught for o in reproducing)} caught of {len(reproducing)} reproducing "
            f"({len(outcomes)} run(s) of reports expected caught played)")
    unexpressed = [r for r in here if any(run.unparsed is not None for run in r.runs)
                   and r.report.verdict.expected == "not-expressible"]
    if unexpressed:
        out(f"  not expressible yet: {', '.join(r.report.ref for r in unexpressed)}")
    due = [r for r in here if r.parses_now]
    if due:
        out(f"  called not expressible, and their runs parse now (switch the verdict to caught or not-a-bug): "
            f"{', '.join(r.report.ref for r in due)}")
    new = sorted({(r.report.ref, o.target, v.invariant) for r in here for o in r.played if o.reproduces
                  and o.caught and not o.explained_by for v in o.violations})
    if new:
        out("  caught, and no registered finding explains it (candidates for new findings):")
        out("\n".join(f"    {ref} on {target}: {invariant}" for ref, target, invariant in new))
    if chosen is None or "model" in chosen:
        out("")
        out("the model of each release:")
        across = model_across_releases(reports, tuple(RELEASES))
        for version, results in across.items():
            seen = [f for r in results for f in r.failures() if f.what != UNPARSED]  # said once, above
            missed = sorted({f.ref for f in seen if f.what == MISSED})
            out(f"  {version:8} {recall_line(results)}" + (f"; missed: {', '.join(missed)}" if missed else ""))
            failures += [(f"model of {version}", f) for f in seen]
        unreproduced = not_reproduced_where_reported(reports, across)
        if unreproduced:
            out("  not reproduced by the model of any release it was reported on (a run to revisit, or a report the "
                "release does not bear out):")
            out("\n".join(f"    {report.ref} (reported on {', '.join(report.reported_on)})"
                          for report in unreproduced))
    out("")
    if not failures:
        out("no failure: every reproducing report is caught or, by the catalogue, not a bug")
        return 0, []
    found = [f for _, f in failures]
    pending = [(w, f) for w, f in failures if f.awaiting_catalogue]
    others = [(w, f) for w, f in failures if not f.awaiting_catalogue]
    for title, group in (("failure(s)", others),
                         ("miss(es) awaiting an invariant the intent catalogue does not have yet", pending)):
        lines = _grouped(group, tuple(RELEASES))
        if lines:
            out(f"{len(lines)} {title}:")
            out("\n".join(f"  {line}" for line in lines))
    return 1, found


def add_parser(sub, add_release_options) -> None:
    """``finalstate corpus``, with the CLI's ``--release``/``--airflow-src`` (``add_release_options``)."""
    corpus = sub.add_parser("corpus", help="replay the upstream corpus (corpus/reports) and print the recall")
    corpus.add_argument("--target", help="only these targets (comma-separated); default: model, airflow-inproc, "
                                         "airflow-task-runner and the coordinator targets a run names")
    corpus.add_argument("--corpus", metavar="DIR", default=str(CORPUS), help="the reports' directory (default: "
                                                                            "corpus/reports of this checkout)")
    add_release_options(corpus)
    corpus.set_defaults(func=cmd_corpus)


def cmd_corpus(args) -> int:
    chosen = tuple(t.strip() for t in args.target.split(",") if t.strip()) if args.target else None
    try:
        return run_corpus(Path(args.corpus), chosen)[0]
    except BadReport as e:
        raise SystemExit(f"finalstate: bad corpus report: {e}") from None

