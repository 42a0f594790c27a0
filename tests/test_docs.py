"""The documentation site builds strictly (``scripts/docs``: any warning fails it), so a page cannot drift from the
code it renders: a broken link or reference, or a model docstring that does not render, fails this test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", str(source),
                           str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_the_docs_build_strictly(tmp_path):
    done = build(ROOT / "docs", tmp_path / "html")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "html" / "specification.html").read_text().count("[source]") > 50, \
        "the specification renders the model's rules, each linked to its source"


def test_a_broken_reference_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("_build"))
    (docs / "index.md").write_text((docs / "index.md").read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = build(docs, tmp_path / "html")
    assert done.returncode != 0 and "no-such-page" in done.stderr, done.stderr


def test_every_field_of_the_model_has_a_word():
    """The reference renders each attrs field of ``model/`` with its ``#:`` comment: none is left without one."""
    import importlib
    import inspect
    import pkgutil

    import attrs
    from sphinx.pycode import ModuleAnalyzer

    import model

    bare = []
    for info in pkgutil.iter_modules(model.__path__):
        module = importlib.import_module(f"model.{info.name}")
        documented = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        for cls in vars(module).values():
            if inspect.isclass(cls) and attrs.has(cls) and cls.__module__ == module.__name__:
                bare += [f"{module.__name__}.{cls.__qualname__}.{f.name}" for f in attrs.fields(cls)
                         if (cls.__qualname__, f.name) not in documented]
    assert not bare, f"attrs fields with no #: comment: {bare}"
