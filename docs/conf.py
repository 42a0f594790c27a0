"""Sphinx configuration of finalstate's documentation: Markdown pages (MyST) and the model's docstrings (autodoc),
each rule linked to its source (viewcode). ``scripts/docs`` builds it strictly: any warning fails the build."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

project = "finalstate"
author = "the finalstate developers"
# finalstate_spec: the top of the Specification page, generated from model/ at every build.
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode", "finalstate_spec"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext"]
myst_heading_anchors = 3
# The model is read as the specification it is: in source order, each rule with its docstring, no type noise.
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
html_theme = "alabaster"
html_title = "finalstate"
