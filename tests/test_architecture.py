"""The arrows point one way: ``properties`` → ``impl`` → ``model``; ``model`` is stdlib and attrs only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("model"), ids=lambda p: str(p.relative_to(ROOT)))
def test_model_imports_only_the_standard_library_and_attrs(path):
    allowed = set(sys.stdlib_module_names) | {"attrs", "model"}
    foreign = {m for m in imported_modules(path) if m.split(".")[0] not in allowed}
    assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", sources("impl"), ids=lambda p: str(p.relative_to(ROOT)))
def test_impl_never_imports_the_checker_or_the_tests(path):
    upward = {m for m in imported_modules(path) if m.split(".")[0] in ("properties", "tests", "benchmarks")}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}: an arrow pointing upward"


def test_the_import_check_can_fail(tmp_path):
    """The checks above see imports wherever they are, function bodies included."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from properties.conftest import target\n    import httpx\n")
    assert imported_modules(bad) == {"properties.conftest", "httpx"}
