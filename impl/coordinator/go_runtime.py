"""Building finalstate's own Go runtime (``runtimes/go``, not Airflow's Go SDK) from the source it ships with.

``ensure_built()`` builds it with ``go build -trimpath`` into ``build_dir("runtimes", "go-runtime")``
(``build/runtimes/go-runtime`` in a checkout, the user's cache directory when installed: ``impl.places``),
unless the binary there is up to date: its stamp (``go-runtime.stamp``) holds the digest of ``go version``
and the sources. ``finalstate build-runtimes``, ``scripts/build-runtimes`` and the first ``cmd:`` run of
the runtime (``cmd:go-runtime``, or the path of the build) all come here. Where it cannot be built it leaves
``go-runtime.unavailable`` beside the binary's place, saying why, which a ``cmd:`` target of that path
reports as the reason it is unavailable. A file lock makes builders that meet (pytest-xdist workers)
wait for each other instead of racing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import attrs

from impl.places import build_dir, shipped

NAME = "go-runtime"
#: A build that takes longer than this (the first one fetches the runtime's one module) is stopped, never waited on.
BUILD_TIMEOUT_SECONDS = 600


class GoRuntimeUnavailable(RuntimeError):
    """The Go runtime is not built and cannot be: no Go toolchain (``NoGoToolchain``), or its build failed (the message
    names its log)."""


class NoGoToolchain(GoRuntimeUnavailable):
    """No ``go`` on ``PATH`` and no Go runtime built before."""


@attrs.frozen
class Built:
    """The Go runtime's binary, whether this call built it (``"built"``) or found it ``"up to date"``, and the Go
    release it was checked against (``go1.26.8``; empty when there is no Go to ask)."""

    path: Path
    how: str
    go_version: str = ""


def binary() -> Path:
    """Where the Go runtime's binary is (or will be) built."""
    return build_dir("runtimes", NAME)


def _marker() -> Path:
    return binary().with_name(f"{NAME}.unavailable")


def _stamp() -> Path:
    return binary().with_name(f"{NAME}.stamp")


def _digest(go: str, source: Path) -> tuple[str, str]:
    """``go version`` and the digest of it with every ``.go``, ``go.mod`` and ``go.sum`` file of ``source``."""
    version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    version = version.removeprefix("go version ").split(" ")[0]  # go1.26.8 linux/amd64 -> go1.26.8
    digest = hashlib.sha256(version.encode() + b"\0")
    sources = (p for p in source.rglob("*") if p.is_file() and (p.suffix == ".go" or p.name in ("go.mod", "go.sum")))
    for path in sorted(sources):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return version, digest.hexdigest()


def ensure_built() -> Built:
    """The Go runtime's binary, built first if it is missing or older than its source or the Go toolchain.

    ``GoRuntimeUnavailable`` (and the ``.unavailable`` marker) when there is no ``go`` on ``PATH`` and no binary
    built before (one built before is used as it is: without Go nothing can say it is stale), or when the build
    fails (the marker and the message name its log).
    """
    out = binary()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(f"{NAME}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        go = shutil.which("go")
        if go is None:
            if out.exists():
                return Built(out, "up to date")
            return _unavailable("go toolchain not found on PATH", NoGoToolchain)
        source = shipped("runtimes", "go")
        version, digest = _digest(go, source)
        stamped = _stamp().read_text().strip() if _stamp().exists() else None
        if out.exists() and stamped == digest:
            return Built(out, "up to date", version)
        log, partial = out.with_name(f"{NAME}.log"), out.with_name(f"{NAME}.{os.getpid()}.tmp")
        try:
            with open(log, "w") as output:
                done = subprocess.run([go, "build", "-trimpath", "-o", str(partial), "."], cwd=source,
                                      stdout=output, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_SECONDS)
            failed = done.returncode != 0
        except subprocess.TimeoutExpired:
            failed = True
        if failed:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            out.unlink(missing_ok=True)
            _stamp().unlink(missing_ok=True)
            return _unavailable(f"go build of {source} failed; see {log}")
        os.replace(partial, out)
        _stamp().write_text(digest + "\n")
        _marker().unlink(missing_ok=True)
        return Built(out, "built", version)


def _unavailable(reason: str, error: type[GoRuntimeUnavailable] = GoRuntimeUnavailable):
    _marker().write_text(reason + "\n")
    raise error(reason)
