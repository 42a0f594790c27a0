"""One virtual environment per system under check: a task-sdk release from PyPI, or a source checkout.

``python_for(spec)`` returns the interpreter of an environment that holds this checkout
(editable, with its test dependencies) and the system named by ``spec``:

* a release, ``"1.2.0"``: that ``apache-airflow-task-sdk`` with the ``apache-airflow-core`` it
  installs with (``RELEASES``);
* ``"installed"``: this checkout's own ``.venv``, as it is (no build);
* ``"src:/path/to/airflow"``: a checkout of apache/airflow, its ``task-sdk`` and
  ``airflow-core`` installed editable.

Environments are built with uv into ``build/envs/<name>``, once: a stamp file written after a
good build records what was installed, and a stamped environment is returned without running
uv (so no network after the first build). All builds share one uv cache (``build/uv-cache``)
and hard-link from it, so an extra environment costs little disk. A file lock per environment
makes concurrent builds of the same one wait for each other instead of racing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs

from impl.places import build_dir, checkout, code_root

ENVS = build_dir("envs")
UV_CACHE = build_dir("uv-cache")

#: Environment variable naming the system under check in a re-executed command (``finalstate check --release``).
RELEASE_ENV = "FINALSTATE_RELEASE"

#: Test dependencies every environment gets besides the checkout's own (attrs, hypothesis, msgpack, pytest).
TEST_DEPENDENCIES = ("pytest-xdist>=3.5", "rfc3339-validator>=0.1.4")

#: A build that takes longer than this is stopped and reported, never waited on for ever.
BUILD_TIMEOUT_SECONDS = 1200


class UnknownRelease(ValueError):
    """A spec that names no known release, no ``installed`` and no ``src:`` checkout."""


class EnvironmentFailed(RuntimeError):
    """An environment that did not install: names the spec and carries the installer's last lines."""


class NotACheckout(ValueError):
    """A ``src:`` path that is not an apache/airflow checkout (no ``task-sdk/`` or no ``airflow-core/``)."""


@attrs.frozen
class Release:
    """A task-sdk release on PyPI, the apache-airflow-core requirement it installs with, and any constraint
    it needs to import today (``constraints``: a dependency released later that it cannot use)."""

    version: str
    core: str
    constraints: tuple[str, ...] = ()
    prerelease: bool = False
    #: The core pins a candidate of this SDK (no final core pins it): install the final SDK over that pin.
    overrides_core_pin: bool = False

    @property
    def requirements(self) -> tuple[str, ...]:
        return (f"apache-airflow-task-sdk=={self.version}", self.core, *self.constraints)


#: Releases before 1.3.0 import ``structlog.dev.Styles``, which structlog 26 removed; they leave structlog unbounded.
BEFORE_STRUCTLOG_26 = ("structlog<26",)
#: 1.1.0 and 1.1.1 import it where it was ``Styles`` still (``percent_formatter``); structlog 25.5 renamed it
#: ``ColumnStyles``, so they need structlog below 25.5.
BEFORE_STRUCTLOG_25_5 = ("structlog<25.5",)
#: Core 3.2.x leaves FastAPI unbounded; FastAPI 0.137 and later (with the cadwyn it brings) reject the callable
#: discriminator of its ``TIStateUpdate`` ("needs a discriminator field"), so its Execution API app does not
#: build. Core 3.3.0 capped FastAPI below 0.137 for this; the 3.2.x releases get the same cap.
BEFORE_FASTAPI_0_137 = ("fastapi<0.137.0",)


def _series(core_minor: int, pairs: str, constraints: tuple[str, ...] = ()) -> tuple[Release, ...]:
    """Releases from ``"sdk=core ..."`` pairs: each SDK with the core released beside it (each core pins its
    SDK exactly); ``sdk=`` alone (no core of that patch level): the newest core of the minor series that fits."""
    releases = []
    for pair in pairs.split():
        sdk, core = pair.split("=")
        requirement = (f"apache-airflow-core=={core}" if core else
                       f"apache-airflow-core>=3.{core_minor}.0,<3.{core_minor + 1}.0")
        releases.append(Release(sdk, requirement, constraints))
    return tuple(releases)


#: The task-sdk releases on PyPI (``pip index versions apache-airflow-task-sdk --pre``, 2026-11-25):
#: every final release from 1.0.0 to 1.3.2 (there is no final 1.0.5) and the newest pre-release, each
#: with the apache-airflow-core released beside it (3.0.x, 3.1.x, ...). No final core 3.1.4 was
#: released and no core accepts task-sdk 1.1.4: it installs with core 3.1.4rc2 (which pins 1.1.4rc2).
RELEASES: dict[str, Release] = {
    r.version: r
    for r in (
        *_series(0, "1.0.0=3.0.0 1.0.1=3.0.1 1.0.2=3.0.2 1.0.3=3.0.3 1.0.4=3.0.4 1.0.6=3.0.6", BEFORE_STRUCTLOG_26),
        *_series(1, "1.1.0=3.1.0 1.1.1=3.1.1", BEFORE_STRUCTLOG_25_5),
        *_series(1, "1.1.2=3.1.2 1.1.3=3.1.3", BEFORE_STRUCTLOG_26),
        Release("1.1.4", "apache-airflow-core==3.1.4rc2", BEFORE_STRUCTLOG_26, overrides_core_pin=True),
        *_series(1, "1.1.5=3.1.5 1.1.6=3.1.6 1.1.7=3.1.7 1.1.8=3.1.8", BEFORE_STRUCTLOG_26),
        *_series(2, "1.2.0=3.2.0 1.2.1=3.2.1 1.2.2=3.2.2", BEFORE_STRUCTLOG_26 + BEFORE_FASTAPI_0_137),
        *_series(3, "1.3.0=3.3.0 1.3.1=3.3.1 1.3.2=3.3.2"),
        Release("1.4.0b2", "apache-airflow-core==3.4.0b2", prerelease=True),
    )
}


def release_standing_for(introduced_in: str | None, fixed_in: str | None) -> str:
    """A known release (``RELEASES``) a finding with these bounds stands on, to show it there: the first one from
    ``introduced_in`` (a pre-release counts as its release: 1.4.0b2 for 1.4.0), else the newest final release before
    ``fixed_in``."""
    from packaging.version import Version

    if introduced_in is not None:
        brought = [r for r in RELEASES if Version(Version(r).base_version) >= Version(introduced_in)]
        if brought:
            return min(brought, key=Version)
        raise UnknownRelease(f"no known task-sdk release is {introduced_in} or newer")
    older = [r for r, release in RELEASES.items() if not release.prerelease and Version(r) < Version(fixed_in)]
    if not older:
        raise UnknownRelease(f"no known task-sdk release is older than {fixed_in}")
    return max(older, key=Version)


def python_for(spec: str) -> Path:
    """The python of the environment for ``spec`` (a release, ``installed`` or ``src:PATH``), built once.

    Raises ``UnknownRelease`` (naming the spec and the known releases), ``NotACheckout`` (naming
    the path and what it lacks) or ``EnvironmentFailed`` (naming the spec and uv's last lines).
    """
    if spec == "installed":
        root = checkout()
        python = root / ".venv" / "bin" / "python" if root is not None else None
        return python if python is not None and python.exists() else Path(sys.executable)
    name, requirements, editables, overrides = _plan(spec)
    return _build(ENVS / name, spec, requirements, editables, overrides)


def _plan(spec: str) -> tuple[str, tuple[str, ...], tuple[Path, ...], tuple[str, ...]]:
    """The environment's directory name, its requirements, the paths installed editable and the
    overrides (requirements that win over any package's own pins), for ``spec``."""
    if spec.startswith("src:"):
        checkout = Path(spec[4:]).expanduser().resolve()
        for part in ("task-sdk", "airflow-core"):
            if not (checkout / part / "pyproject.toml").is_file():
                raise NotACheckout(f"--airflow-src {checkout}: no {part}/pyproject.toml there; expected a checkout "
                                   "of apache/airflow with task-sdk/ and airflow-core/")
        digest = hashlib.sha256(str(checkout).encode()).hexdigest()[:12]
        return f"src-{digest}", (), (checkout / "task-sdk", checkout / "airflow-core"), ()
    release = RELEASES.get(spec)
    if release is None:
        raise UnknownRelease(f"unknown task-sdk release {spec!r}; known: {', '.join(RELEASES)}, "
                             "installed, or src:PATH (a checkout of apache/airflow)")
    overrides = (f"apache-airflow-task-sdk=={release.version}",) if release.overrides_core_pin else ()
    return spec, release.requirements, (), overrides


def _build(env: Path, spec: str, requirements: tuple[str, ...], editables: tuple[Path, ...],
           overrides: tuple[str, ...] = ()) -> Path:
    python = env / "bin" / "python"
    stamp = env / "finalstate-stamp.json"
    root = code_root()
    wanted = {"spec": spec, "requirements": list(requirements), "editables": [str(p) for p in editables],
              "checkout": str(root), "test_dependencies": list(TEST_DEPENDENCIES),
              **({"overrides": list(overrides)} if overrides else {})}
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits here, then finds the stamp
        if _stamped(stamp) == wanted and python.exists():
            return python
        shutil.rmtree(env, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _uv(spec, "venv", "--quiet", "--python", base, str(env))
        args = ["pip", "install", "--python", str(python), "--link-mode", "hardlink",
                *(["--prerelease", "allow"] if _prerelease(spec) else []),
                *_the_checker(root), *TEST_DEPENDENCIES, *requirements]
        if overrides:
            (env / "overrides.txt").write_text("\n".join(overrides) + "\n")
            args += ["--overrides", str(env / "overrides.txt")]
        for path in editables:
            args += ["-e", str(path)]
        if editables:  # a checkout's workspace sources (dev groups, sibling providers) are not needed: the
            args.append("--no-sources")  # two parts are given here, everything else comes from the index
        _uv(spec, *args)
        if root != checkout():  # installed: the copy of the checker's packages goes on the environment's path
            purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, timeout=60, check=True).stdout.strip()
            (Path(purelib) / "finalstate.pth").write_text(f"{root}\n")
        stamp.write_text(json.dumps(wanted, indent=1))
    return python


def _the_checker(root: Path) -> list[str]:
    """uv's arguments that install the checker in ``root``: its checkout, editable; or, where finalstate runs
    installed, its own dependencies (``root`` is then the copy ``impl.places.code_root`` made, put on the environment's
    path by a ``.pth`` file)."""
    if root == checkout():
        return ["-e", str(root)]
    from importlib.metadata import requires

    return [r for r in requires("finalstate") or () if "extra ==" not in r]


def _prerelease(spec: str) -> bool:
    release = RELEASES.get(spec)
    return spec.startswith("src:") or (release is not None and release.prerelease)


def _stamped(stamp: Path) -> dict | None:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def _uv(spec: str, *args: str) -> None:
    """Run uv with the shared cache; ``EnvironmentFailed`` with its last lines when it fails or overruns."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise EnvironmentFailed(f"environment for {spec}: uv is not installed (pip install uv, or the dev extra)")
    environ = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE), "UV_NO_PROGRESS": "1"}
    environ.pop("VIRTUAL_ENV", None)
    try:
        done = subprocess.run([uv, *args], env=environ, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise EnvironmentFailed(f"environment for {spec} did not install: uv {args[0]} ran over "
                                f"{BUILD_TIMEOUT_SECONDS}s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise EnvironmentFailed(f"environment for {spec} did not install (uv {args[0]} exited {done.returncode}):\n{tail}")


def release_switch() -> str:
    """The CLI switch that chooses this process's system under check again (``$FINALSTATE_RELEASE``), with a
    leading space, for the replay commands a report prints; empty for the installed one."""
    import shlex

    spec = os.environ.get(RELEASE_ENV, "installed")
    if spec == "installed":
        return ""
    if spec.startswith("src:"):
        return f" --airflow-src {shlex.quote(spec[4:])}"
    return f" --release {shlex.quote(spec)}"
