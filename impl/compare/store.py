"""The matrix's result store: a cell's result kept under the key of what it checked.

A cell's result depends only on what it checked: the system under check (a released task-sdk never changes,
so its installed distribution files; a checkout, its source tree), the target, the profile, and the checker
itself (its own source, and the pinned dependencies it runs on, which are among the environment's
distributions). ``cell_key`` hashes exactly those; ``Store`` is a directory of results by key, which a CI
cache or artifact can carry between runs. A stored result whose key matches is the result: the cell is not run
again. Anything that changes what would be checked changes the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from impl.places import build_dir, code_root

#: The checker's own source: what the properties, bindings, model and runtimes are made of.
CHECKER_PARTS = ("model", "impl", "properties", "runtimes", "pyproject.toml")
#: Of an apache/airflow checkout, the parts the checker runs (``environments._plan`` installs them editable).
CHECKOUT_PARTS = ("task-sdk", "airflow-core")
#: Never part of what was checked: caches and build output.
_SKIPPED_DIRS = {"__pycache__", ".git", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
DEFAULT_STORE = build_dir("matrix-store")


def _files(top: Path) -> list[Path]:
    """The files under ``top`` (or ``top`` itself), sorted, caches and build output left out."""
    if top.is_file():
        return [top]
    found = []
    for directory, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        found += [Path(directory) / f for f in sorted(files) if not f.endswith(_SKIPPED_SUFFIXES)]
    return found


def tree_digest(root: Path, parts: tuple[str, ...]) -> str:
    """The sha256 of the files of ``parts`` under ``root``: their paths relative to ``root`` and their contents."""
    digest = hashlib.sha256()
    for part in parts:
        for path in _files(root / part):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def checker_digest(checkout: Path | None = None) -> str:
    """The checker's own source (``CHECKER_PARTS``) in ``checkout`` (default: this one, ``impl.places.code_root``)."""
    return tree_digest(checkout or code_root(), CHECKER_PARTS)


def distributions_digest(python: Path) -> str:
    """The distributions installed in ``python``'s environment: each one's name, version and ``RECORD`` (the list of
    its files with their hashes), finalstate's own left out (its source is ``checker_digest``'s) and an editable
    one's source tree hashed by whoever installed it editable (``system_digest``)."""
    listing = subprocess.run([str(python), "-c", _LIST_DISTRIBUTIONS], capture_output=True, text=True, timeout=120)
    if listing.returncode != 0:
        raise RuntimeError(f"cannot list the distributions of {python}: {listing.stderr.strip()[-300:]}")
    return hashlib.sha256(listing.stdout.encode()).hexdigest()


#: Run by the environment's own python: one line per distribution, sorted: name, version, RECORD's sha256.
_LIST_DISTRIBUTIONS = """
import hashlib, importlib.metadata as m
rows = set()
for d in m.distributions():
    name = (d.metadata["Name"] or "").lower()
    if name == "finalstate":
        continue
    record = d.read_text("RECORD") or ""
    rows.add(f"{name} {d.version} {hashlib.sha256(record.encode()).hexdigest()}")
print("\\n".join(sorted(rows)))
"""


def system_digest(spec: str, python: Path) -> str:
    """What ``spec`` puts under check: its environment's distributions, and for a checkout (``src:PATH``) the source
    of the parts installed editable from it (their RECORD does not change with their source)."""
    digest = distributions_digest(python)
    if spec.startswith("src:"):
        digest += tree_digest(Path(spec[4:]).expanduser().resolve(), CHECKOUT_PARTS)
    return hashlib.sha256(digest.encode()).hexdigest()


def cell_key(spec: str, target: str, profile: str, python: Path, checkout: Path | None = None,
             pytest_args: tuple[str, ...] = ()) -> str:
    """The key of one cell: a hash of the system under check, the target, the profile, the pytest arguments the cell
    runs with, and the checker's own source."""
    what = {"system": system_digest(spec, python), "target": target, "profile": profile,
            "pytest_args": list(pytest_args), "checker": checker_digest(checkout)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


class Store:
    """A directory of cell results by key (``KEY.json``), written whole or not at all."""

    def __init__(self, directory: Path = DEFAULT_STORE):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The record stored under ``key``, or None."""
        try:
            return json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, record: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path(key).with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(record, indent=1))
        os.replace(partial, self.path(key))
