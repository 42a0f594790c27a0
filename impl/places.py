"""Where finalstate's own files lie and where what it builds goes: the one place that says so.

Run from a *checkout* (the directory holding the import packages also holds ``pyproject.toml`` and
``.git``: an editable install, a worktree, ``PYTHONPATH=.``), build output goes to the checkout's
``build/`` and the runtimes' sources are its ``runtimes/``. Installed from a wheel, build output
goes to the platform's per-user cache directory (``platformdirs.user_cache_dir("finalstate")``:
``~/.cache/finalstate`` on Linux, honouring ``XDG_CACHE_HOME``) and the runtimes' sources are the
package data the wheel put under ``impl/_runtimes``. Nothing is ever written inside the installed
package. May import: the standard library, and platformdirs (only when installed).
"""

from __future__ import annotations

import functools
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


def runtimes_source(*parts: str) -> Path:
    """The runtimes' sources (``runtimes_source("go")``: the Go runtime's module): the checkout's ``runtimes/``, or the
    copy the wheel installed as package data."""
    root = checkout()
    return (root / "runtimes" if root is not None else Path(__file__).resolve().parent / "_runtimes").joinpath(*parts)
