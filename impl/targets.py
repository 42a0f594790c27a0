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
    """``run`` is the implementation under check; ``reference`` the model it must agree with."""

    name: str
    run: Callable[[Scenario], Observation]
    reference: Callable[[Scenario], Observation] = model_supervisor.run
    close: Callable[[], None] = lambda: None


#: name -> (module that provides ``target(name)``, one line for ``--help``).
REGISTRY: dict[str, tuple[str, str]] = {
    "model": ("impl.targets", "the executable model itself (checks the invariants of the model)"),
    "airflow-inproc": ("impl.inproc", "the real ActivitySubprocess of the pinned task-sdk, driven in process"),
}
DEFAULT_TARGET = "airflow-inproc"


def target(name: str) -> Target:
    """The ``model`` target: the reference checked against itself, so only its invariants can fail."""
    return Target(name, model_supervisor.run)


def known_targets() -> str:
    return "\n".join(f"  {name:16} {summary}" for name, (_, summary) in REGISTRY.items())


def load_target(name: str) -> Target:
    """The target called ``name``; ``UnknownTarget`` or ``TargetUnavailable`` if it cannot be had."""
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
    return module.target(name)
