"""Where finalstate's own files lie and where what it builds goes: the one place that says so.

Run from a *checkout* (the directory holding the import packages also holds ``pyproject.toml`` and
``.git``: an editable install, a worktree, ``PYTHONPATH=.``), build output goes to the checkout's
``build/`` and what finalstate ships besides its Python (the runtimes' sources, the corpus) is read where it
is. Installed from a wheel, build output goes to the platform's per-user cache directory
(``platformdirs.user_cache_dir("finalstate")``: ``~/.cache/finalstate`` on Linux, honouring
``XDG_CACHE_HOME``) and what it ships is the package data the wheel put under ``impl/_data``
(``pyproject.toml`` says what goes there). Nothing is ever written inside the installed package. May import: the standard library, and platformdirs (only when installed).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

#: The directory the import packages (``model``, ``impl``, ``properties``) sit in: a checkout, or site-packages.
PACKAGES_PARENT = Path(__file__).resolve().parents[1]


@functools.cache
def checkout() -> Path | None:
    """The finalstate checkout this code runs from, or None when it runs installed."""
    if (PACKAGES_PARENT / "pyproject.toml").is_file() and (PACKAGES_PARENT / ".git").exists():
        return PACKAGES_PARENT
    return None


@functools.cache
def _build_root() -> Path:
    root = checkout()
    if root is not None:
        return root / "build"
    import platformdirs

    return Path(platformdirs.user_cache_dir("finalstate", appauthor=False))


def build_dir(*parts: str) -> Path:
    """Where build output named by ``parts`` goes (``build_dir("runtimes", "go-runtime")``): under the checkout's
    ``build/``, or under the per-user cache directory when installed. Creates nothing."""
    return _build_root().joinpath(*parts)


def shipped(*parts: str) -> Path:
    """A file or directory finalstate ships besides its Python, named by its path in a checkout
    (``shipped("runtimes", "go")``: the Go runtime's module; ``shipped("corpus", "reports")``): the checkout's, or
    the copy the wheel installed as package data (``impl/_data/``)."""
    root = checkout()
    return (root if root is not None else Path(__file__).resolve().parent / "_data").joinpath(*parts)


#: finalstate's import packages: what another Python needs on its path to run the checker.
PACKAGES = ("model", "impl", "properties")


def code_root() -> Path:
    """A directory holding finalstate's import packages and nothing else, for another Python to put on its path (an
    environment of another release, a worker of ``finalstate diff``): the checkout; or, installed, where the packages
    sit among every other distribution, a copy of them in the build output (``build_dir("code", DIGEST)``), made once
    per content of their files."""
    root = checkout()
    return root if root is not None else _installed_copy()


@functools.cache
def _installed_copy() -> Path:
    files = sorted(p for part in PACKAGES for p in (PACKAGES_PARENT / part).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PACKAGES_PARENT)).encode() + b"\0" + path.read_bytes() + b"\0")
    copy = build_dir("code", digest.hexdigest()[:16])
    if not copy.is_dir():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{copy.name}.", dir=copy.parent))
        for part in PACKAGES:
            shutil.copytree(PACKAGES_PARENT / part, partial / part, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            os.rename(partial, copy)  # whole or not at all; a copy made meanwhile by another process is as good
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return copy


class TargetUnavailable(RuntimeError):
    """The target exists but cannot run on this machine; the message says what is missing and how to get it."""
