"""Sphinx configuration of the sb3-worldmodels docs (built in the tests with warnings as errors)."""

from __future__ import annotations

import importlib.util
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "sb3-worldmodels"
author = "sb3-worldmodels developers"
copyright = "2026, sb3-worldmodels developers"  # noqa: A001
release = "0.1.0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_inherit_docstrings = False
exclude_patterns = ["_build", "notebooks/.ipynb_checkpoints"]
html_theme = "sphinx_rtd_theme" if importlib.util.find_spec("sphinx_rtd_theme") else "alabaster"
suppress_warnings = ["ref.python"]  # ambiguous cross-references of re-exported names
