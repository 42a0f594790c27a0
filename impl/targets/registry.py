"""The targets: one table of named things that map a run to an observation, and the model each is checked against.

A target is loaded by name only when asked for, so that choosing ``model`` needs no Airflow.
Adding a target is one module in the room of the system it binds, with a ``target(name)``
function, and one row in ``REGISTRY``. A target that cannot run here raises
``TargetUnavailable`` saying what is missing; an unknown name raises ``UnknownTarget``
listing the known ones.
"""

from __future__ import annotations

import functools
import importlib
from typing import Callable, Iterable

import attrs

from impl.places import TargetUnavailable
from impl.targets.kinds import KINDS
from model import coordinator as model_coordinator
from model import runtime as model_runtime
from model import supervisor as model_supervisor
from model.release import SPECIFIED, Release

class UnknownTarget(LookupError):
    pass


#: How many distinct runs ``lived_once`` remembers in a process (the least recently asked for is forgotten first).
LIVED_ONCE_MOST = 20_000


def lived_once(run: Callable, most: int = LIVED_ONCE_MOST) -> Callable:
    """``run``, each distinct run lived for real once in this process and its observation handed to every later caller.

    A run under a real target is a function of what it is handed (a scenario, a Python runtime's run, a coordinator
    run), and the searches draw the same runs again and again: a machine's steps repeat an attempt, and the searches
    share their simple examples (under the ci profile the supervisor properties ask ``airflow-process`` for 14,016
    attempts, 3,274 of them distinct; one lifecycle property on ``airflow-task-runner`` 8,865 tries, 1,234 distinct).
    A real process costs tens of milliseconds, so living each once is most of a search's time saved, and every
    property that draws a run still judges it. What it does not see: a target that observes the same run differently
    from one time to the next shows one of its answers only (``finalstate replay`` lives a run afresh). A run whose
    living raised is not remembered. A coordinator target's tries are remembered across its properties already, and
    lived ahead (``impl.coordinator.lived``). A ``run`` that remembers its runs already (a ``lived_once`` of a run, as
    ``airflow-process``'s is) is handed back as it is, not remembered twice."""
    if hasattr(run, "cache_info"):
        return run
    return functools.lru_cache(maxsize=most)(run)


class WrongKindOfTarget(TargetUnavailable):
    """The target exists but checks another side; the properties of the kind asked for do not apply to it."""


#: ``Target.attempts_per_step`` of the targets that live an attempt in process (``Target.in_process``).
IN_PROCESS_ATTEMPTS_PER_STEP = 10


@attrs.frozen
class Target:
    """``run`` is the implementation under check; ``reference`` the model it must agree with; ``kind`` one of ``impl.targets.kinds.KINDS``."""

    name: str
    run: Callable
    #: The task-sdk release whose by-design behaviour the model follows for this target (``model.release``).
    release: Release = SPECIFIED
    #: A supervisor target's reference: ``model.supervisor.run`` for ``release``.
    reference: Callable = attrs.field(
        default=attrs.Factory(lambda self: functools.partial(model_supervisor.run, release=self.release),
                              takes_self=True))
    close: Callable[[], None] = lambda: None
    kind: str = "supervisor"
    #: A supervisor target's ``final_state`` decision alone, ``(exit_code, terminal_state, should_retry) -> state``,
    #: where the target can call it without living an attempt (checked on its whole domain); None elsewhere.
    final_state: Callable[[int, str | None, bool], str] | None = None
    #: Lives an attempt in process in well under a millisecond (``model``; ``airflow-inproc`` on the model server):
    #: its searches draw several attempts per machine step, and its properties check the exhaustive scope.
    in_process: bool = False
    #: Makes a ``run`` for checking a whole small scope, its runs in the scope's order (``impl.search.exhaustive``),
    #: that may live what consecutive runs have in common once (``airflow-inproc``: ``SharedPrefixes``); None: ``run``.
    scope_run: Callable[[], Callable] | None = None
    #: The SDK profile a coordinator target is declared to be (``model.sdks.PROFILES``; ``--profile``): its reference
    #: is that profile's runtime. None: undeclared, its reference the contract.
    profile: str | None = None
    #: An undeclared coordinator target's other accepted behaviours: ``(run, observed) -> names`` of the profiles (the
    #: contract among them) whose runtime explains the observation (``model.sdks.explaining``); conformance accepts an
    #: observation its reference does not explain where one of them does. None: only the reference is accepted.
    explains: Callable[[object, object], tuple[str, ...]] | None = None
    #: ``live_ahead(runs)``: start living these runs now, several at once, and return; ``run`` then answers each from
    #: its try (``impl.coordinator.lived``). None: each run is lived when ``run`` is called.
    live_ahead: Callable[[Iterable], None] | None = None

    @property
    def attempts_per_step(self) -> int:
        """How many attempts a supervisor search draws per step of its machine, at most (``scenarios.machine_for``):
        more where an attempt costs little, so that Hypothesis's cost per example is spread over more of them."""
        return IN_PROCESS_ATTEMPTS_PER_STEP if self.in_process else 1


@attrs.frozen
class Entry:
    """One row of the table: the module whose ``target(name)`` makes the target, its kinds, what it needs."""

    module: str
    kinds: tuple[str, ...]
    needs: str
    summary: str


_AIRFLOW = "apache-airflow-task-sdk (the [airflow] extra)"

REGISTRY: dict[str, Entry] = {
    "model": Entry("impl.targets.registry", tuple(KINDS), "nothing",
                   "the executable model itself, of every kind (checks the model's own invariants)"),
    "airflow-inproc": Entry("impl.supervisor_inproc.target", ("supervisor",), _AIRFLOW,
                            "the real ActivitySubprocess of the installed task-sdk, driven in process"),
    "airflow-process": Entry("impl.supervisor_process.target", ("supervisor",), f"{_AIRFLOW}; Linux; a C compiler "
                             "for the fast path", "the real coordinator supervisor over a real runtime process, "
                             "real sockets and HTTP"),
    "airflow-task-runner": Entry("impl.task_runner.target", ("runtime",), _AIRFLOW,
                                 "the real task runner (task_runner.main) of the installed task-sdk, in process"),
    "reference-runtime": Entry("impl.coordinator.target", ("coordinator",), f"{_AIRFLOW}; Linux",
                               "the reference coordinator-mode runtime (Python) under the real "
                               "_PopenActivitySubprocess"),
    "cmd:PROGRAM ARGS...": Entry("impl.coordinator.target", ("coordinator",), f"{_AIRFLOW}; Linux; the program",
                                 "any coordinator-mode runtime program (contract: runtimes/README.md) under the "
                                 "real _PopenActivitySubprocess, e.g. 'cmd:build/runtimes/go-runtime'"),
}
#: Targets named by a prefix and what follows it.
PREFIXES = {"cmd:": "cmd:PROGRAM ARGS..."}
DEFAULT_TARGET = "airflow-inproc"
#: What answers a supervisor target's Execution API calls: ``model.server`` (fast; the default) or the real
#: Execution API of the installed apache-airflow-core. Chosen through this environment variable, which
#: ``--server`` sets and the supervisor targets (``airflow-inproc``, ``airflow-process``) read when loaded.
SERVERS = ("model", "airflow")
SERVER_ENV = "FINALSTATE_SERVER"
#: The SDK profile the coordinator targets are declared to be (``model.sdks.PROFILES``), chosen through this
#: environment variable, which ``finalstate check|replay --profile`` and pytest's ``--sdk-profile`` set and the
#: coordinator targets read when loaded; unset, a coordinator target is undeclared.
SDK_PROFILE_ENV = "FINALSTATE_SDK_PROFILE"


class UnknownProfile(UnknownTarget):
    """A coordinator target declared to be an SDK profile ``model.sdks.PROFILES`` does not have; the message names the
    ones it has."""


def chosen_server(server: str | None = None) -> str:
    """``server``, or when None ``$FINALSTATE_SERVER``, else ``model``; ``TargetUnavailable`` naming an unknown one."""
    import os

    server = server or os.environ.get(SERVER_ENV) or "model"
    if server not in SERVERS:
        raise TargetUnavailable(f"unknown server {server!r} (from {SERVER_ENV} or --server); "
                                f"the servers are: {', '.join(SERVERS)}")
    return server


def chosen_profile(profile: str | None = None) -> str | None:
    """``profile``, or when None ``$FINALSTATE_SDK_PROFILE``, else None (undeclared); ``UnknownProfile`` naming the
    profiles there are for an unknown one."""
    import os

    from model.sdks import profile as named

    profile = profile or os.environ.get(SDK_PROFILE_ENV) or None
    if profile is not None:
        try:
            named(profile)
        except ValueError as e:
            raise UnknownProfile(str(e)) from None
    return profile


def coordinator_references(release: Release = SPECIFIED, profile: str | None = None) -> dict:
    """A coordinator target's ``Target`` fields for the SDK profile it is declared to be (``chosen_profile``), under
    ``release``'s supervisor: ``reference`` is the declared profile's runtime (``model.coordinator.coordinator_attempt``);
    undeclared, the contract's, and ``explains`` accepts what any profile explains (``model.sdks.explaining``, compared
    as conformance compares: ``Kind.agree``)."""
    from model import sdks

    profile = chosen_profile(profile)
    if profile is not None:
        runtime = sdks.profile(profile).runtime
        return dict(reference=functools.partial(model_coordinator.coordinator_attempt, runtime=runtime,
                                                release=release), profile=profile)
    return dict(reference=functools.partial(model_coordinator.coordinator_attempt, release=release),
                explains=functools.partial(_explaining, release=release))


def _explaining(run, observed, release: Release) -> tuple[str, ...]:
    from model import sdks

    return sdks.explaining(run, observed, KINDS["coordinator"].agree, release)


def require_real_server(name: str) -> None:
    """``TargetUnavailable`` unless apache-airflow-core's Execution API app can be imported here (``--server airflow``)."""
    try:
        import airflow.api_fastapi.execution_api.app  # noqa: F401
    except ImportError as e:
        raise TargetUnavailable(f"{name} with --server airflow needs apache-airflow-core's Execution API "
                                f"({e}): pip install 'finalstate[airflow]'") from None


def model_target(kind: str = "supervisor", profile: str | None = None) -> Target:
    """The ``model`` target of ``kind``: the model checked against itself, so only its invariants can fail; the model
    of the installed task-sdk release (``--release R`` runs it where R is installed), the specified one where none is.
    Of the coordinator kind, the runtime of the SDK profile it is declared to be (``chosen_profile``; the contract if
    none)."""
    from impl.releases.adapters import model_release

    release = model_release()
    if kind == "coordinator":
        declared = coordinator_references(release, profile)
        return Target("model", declared["reference"], release=release, reference=declared["reference"], kind=kind,
                      in_process=True, profile=declared.get("profile"))
    run = functools.partial({"supervisor": model_supervisor.run, "runtime": model_runtime.python_runtime}[kind],
                            release=release)
    return Target("model", run, release=release, reference=run, kind=kind, in_process=True)


def known_targets() -> str:
    """The table, as ``finalstate targets`` prints it: name, kind, what runs, what it needs."""
    lines = []
    for name, e in REGISTRY.items():
        kinds = "any kind" if e.kinds == tuple(KINDS) else "/".join(e.kinds)
        lines += [f"  {name:20} {kinds:12} {e.summary}", f"  {'':20} {'':12} needs: {e.needs}"]
    return "\n".join(lines)


def _entry(name: str) -> Entry | None:
    """The table's row for ``name``: its own, or its prefix's (``cmd:...``)."""
    prefixed = next((full for prefix, full in PREFIXES.items() if name.startswith(prefix)), None)
    return REGISTRY[prefixed] if prefixed else None if name in PREFIXES.values() else REGISTRY.get(name)


def kinds_of(name: str) -> tuple[str, ...]:
    """The kinds of run the target ``name`` checks (its row's, or its prefix's); none for a name not in the table."""
    entry = _entry(name)
    return entry.kinds if entry is not None else ()


def check_name(name: str) -> None:
    """Raise ``UnknownTarget`` unless ``name`` names a target (for a ``cmd:`` target: one whose program can run).

    Cheap, for a controller that runs no target (pytest's, with xdist): a name in the table is
    looked up, not loaded, so nothing is imported and no server started. A prefixed name
    (``cmd:...``) is loaded, which parses its command and starts nothing.
    """
    entry = _entry(name)
    if entry is None:
        raise UnknownTarget(f"unknown target {name!r}; the known targets are:\n{known_targets()}")
    if name in REGISTRY:
        return
    try:
        load_target(name, entry.kinds[0]).close()
    except TargetUnavailable:
        pass  # reported as a skip by each property that would use it


def _installed_sdk() -> str | None:
    """The installed apache-airflow-task-sdk's version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-task-sdk")
    except PackageNotFoundError:
        return None


def require_installed(name: str) -> None:
    """``TargetUnavailable`` naming the extra to install when the target ``name`` runs Airflow and no
    apache-airflow-task-sdk is installed here; nothing for a name not in the table (``load_target`` says so)."""
    entry = _entry(name)
    if entry is not None and _AIRFLOW in entry.needs and _installed_sdk() is None:
        raise TargetUnavailable(f"target {name!r} needs apache-airflow-task-sdk, which is not installed here: "
                                "pip install 'finalstate[airflow]'")


def load_target(name: str, kind: str = "supervisor", profile: str | None = None) -> Target:
    """The target called ``name`` for the properties of ``kind``.

    A coordinator target is declared to be the SDK profile ``profile`` (None: as ``$FINALSTATE_SDK_PROFILE`` says,
    undeclared if unset: ``coordinator_references``). Raises ``UnknownTarget`` for a name not in the table (or an
    unknown profile), ``WrongKindOfTarget`` for a target of
    another kind (so those properties are skipped with the reason), ``TargetUnavailable`` when
    what it needs is not installed.
    """
    entry = _entry(name)
    if entry is None:
        raise UnknownTarget(f"unknown target {name!r}; the known targets are:\n{known_targets()}")
    if kind not in entry.kinds:
        raise WrongKindOfTarget(f"{name} is a {'/'.join(entry.kinds)} target; the {kind} properties do not apply to it")
    require_installed(name)
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as e:
        sdk = _installed_sdk()
        if sdk and e.name and e.name.startswith("airflow."):  # an older or newer release lacks the module
            raise TargetUnavailable(f"target {name!r} cannot run on apache-airflow-task-sdk {sdk}: "
                                    f"that release has no {e.name}") from None
        if e.name and e.name.split(".")[0] in ("airflow", "httpx", "msgspec", "structlog", "pydantic"):
            raise TargetUnavailable(f"target {name!r} needs {entry.needs} ({e.name} is not installed): "
                                    "pip install 'finalstate[airflow]'") from None
        raise
    if kind == "coordinator":
        return model_target(kind, profile) if name == "model" else module.target(name, profile=profile)
    return model_target(kind) if name == "model" else module.target(name)
