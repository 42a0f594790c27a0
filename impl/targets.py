"""Targets: named things that map a scenario to an observation, and the model each is checked against.

A target is loaded by name only when asked for, so that choosing ``model`` needs no
Airflow and choosing ``go-sdk`` needs no JVM. A target that cannot run here raises
``TargetUnavailable`` saying exactly what is missing; an unknown name raises
``UnknownTarget`` listing the known ones.
"""

from __future__ import annotations

import importlib
from typing import Callable

import attrs

from model import supervisor as model_supervisor
from model.scenario import Observation, Scenario


class UnknownTarget(LookupError):
    pass


class TargetUnavailable(RuntimeError):
    """The target exists but cannot run on this machine; the message says what is missing and how to get it."""


@attrs.frozen
class Target:
    """``run`` is the implementation under check; ``reference`` the model it must agree with.

    ``kind`` says what ``run`` takes and gives: ``supervisor`` (``Scenario`` → ``Observation``),
    ``runtime`` (``model.runtime.RuntimeRun`` → ``RuntimeObservation``), or ``coordinator``
    (``model.runtime.CoordinatorRun`` → ``Observation``: a runtime under a supervisor, end to end).
    """

    name: str
    run: Callable[[Scenario], Observation]
    reference: Callable[[Scenario], Observation] = model_supervisor.run
    close: Callable[[], None] = lambda: None
    kind: str = "supervisor"


#: name -> (module that provides ``target(name)``, one line for ``--help``).
REGISTRY: dict[str, tuple[str, str]] = {
    "model": ("impl.targets", "the executable model itself (checks the invariants of the model)"),
    "airflow-inproc": ("impl.inproc", "the real ActivitySubprocess of the pinned task-sdk, driven in process"),
    "airflow-process": ("impl.process", "the real coordinator supervisor over a real runtime process, real sockets and HTTP"),
    "airflow-task-runner": ("impl.task_runner", "the real task runner (task_runner.main) of the pinned task-sdk, in process"),
    "reference-runtime": ("impl.coordinator",
                          "the reference coordinator-mode runtime under the real _PopenActivitySubprocess"),
}
DEFAULT_TARGET = "airflow-inproc"


def target(name: str) -> Target:
    """The ``model`` target: the reference checked against itself, so only its invariants can fail."""
    return Target(name, model_supervisor.run)


def known_targets() -> str:
    return "\n".join(f"  {name:16} {summary}" for name, (_, summary) in REGISTRY.items())


class WrongKindOfTarget(TargetUnavailable):
    """The target exists but checks another side (a runtime, not the supervisor); these properties do not apply."""


def load_target(name: str, kind: str = "supervisor") -> Target:
    """The target called ``name``; ``UnknownTarget`` or ``TargetUnavailable`` if it cannot be had.

    A target of another ``kind`` than asked for raises ``WrongKindOfTarget`` (a ``TargetUnavailable``),
    so the properties of one side are skipped, with the reason, on a target of the other.
    """
    if name not in REGISTRY:
        raise UnknownTarget(f"unknown target {name!r}; the known targets are:\n{known_targets()}")
    module_name, _ = REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("airflow", "httpx", "msgspec", "structlog", "pydantic"):
            raise TargetUnavailable(
                f"target {name!r} needs apache-airflow-task-sdk ({e.name} is not installed): "
                "pip install 'finalstate[airflow]'"
            ) from None
        raise
    loaded = module.target(name)
    if loaded.kind != kind:
        raise WrongKindOfTarget(f"{name} is a {loaded.kind} target; the {kind} properties do not apply to it")
    return loaded
