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


#: ``impl``'s rooms from the bottom up; a room may import its own level and those below, never one above.
#: The binding rooms share a level: each binds one system, and the coordinator's supervision is the process room's.
ROOMS = (
    ("impl.places", "impl.wire"),
    ("impl.releases",),
    ("impl.targets",),
    ("impl.server", "impl.supervisor_inproc", "impl.supervisor_process", "impl.task_runner", "impl.coordinator"),
    ("impl.catalogue",),
    ("impl.search",),
    ("impl.export",),
    ("impl.power",),
    ("impl.findings",),
    ("impl.compare",),
    ("impl.frontdoor",),
)
LEVEL = {room: level for level, rooms in enumerate(ROOMS) for room in rooms}


def room_of(module: str) -> str | None:
    """The room a dotted module name lies in (``impl.search.lifecycle`` -> ``impl.search``), None outside ``impl``."""
    parts = module.split(".")
    return next((".".join(parts[:n]) for n in (2, 1) if ".".join(parts[:n]) in LEVEL), None)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_every_room_of_impl_is_placed():
    rooms = {module_name(p) for p in (ROOT / "impl").glob("*/__init__.py")} | {"impl.places"}
    assert rooms - {"impl._data"} == set(LEVEL), "a room of impl/ is missing from ROOMS, or ROOMS names one that is gone"


@pytest.mark.parametrize("path", sources("impl"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_room_imports_a_room_above_it(path):
    mine = room_of(module_name(path))
    above = {m for m in imported_modules(path) if (room := room_of(m)) and mine and LEVEL[room] > LEVEL[mine]}
    assert not above, f"{path.relative_to(ROOT)} ({mine}) imports {sorted(above)}: an arrow pointing up"


def test_the_front_door_holds_the_command_line_only():
    assert sorted(p.name for p in (ROOT / "impl" / "frontdoor").glob("*.py")) == ["__init__.py", "cli.py"]


def test_the_room_check_can_fail():
    assert room_of("impl.search.lifecycle") == "impl.search" and room_of("impl.places") == "impl.places"
    assert LEVEL[room_of("impl.frontdoor.cli")] > LEVEL[room_of("impl.targets.registry")]
    assert room_of("model.scenario") is None
