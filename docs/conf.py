"""Sphinx configuration of the sb3-worldmodels docs.

Build (the tests do the same, with warnings as errors)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# document the checkout these docs belong to, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sb3_worldmodels  # noqa: E402

project = "sb3-worldmodels"
author = "sb3-worldmodels developers"
copyright = "2026, sb3-worldmodels developers"  # noqa: A001
version = release = sb3_worldmodels.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
# no sphinx.ext.intersphinx: the docs build offline (links to SB3 / PyTorch stay plain text)

# Our docstrings are reST (``:param x:``) and need no extension, except in these modules, which use Google-style
# ``Args:`` / ``Returns:`` sections (plain reST rejects them: "Unexpected indentation"). napoleon's Google parser
# is applied to them alone (see setup() below): loaded globally, it would also rewrite reST docstrings elsewhere,
# e.g. read a property's "Observation storage: ..." as a type annotation.
GOOGLE_STYLE_MODULES = ("sb3_worldmodels.envs.",)

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_inherit_docstrings = False  # SB3's inherited docstrings describe SB3's algorithms, not ours

root_doc = "index"
exclude_patterns = ["_build", "notebooks", "Thumbs.db", ".DS_Store"]
pygments_style = "sphinx"

html_theme = "sphinx_rtd_theme" if importlib.util.find_spec("sphinx_rtd_theme") else "alabaster"
html_title = f"sb3-worldmodels {release}"
html_show_sourcelink = False


def _google_style_docstrings(app, what, name, obj, options, lines):  # noqa: ANN001, ANN202
    """Parse the Google-style docstrings of ``GOOGLE_STYLE_MODULES`` with napoleon."""
    module = getattr(obj, "__module__", None) or ""
    if not (module + ".").startswith(GOOGLE_STYLE_MODULES) and not name.startswith(GOOGLE_STYLE_MODULES):
        return
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    config = Config(napoleon_use_param=True, napoleon_use_rtype=False)
    lines[:] = GoogleDocstring(lines, config, app, what, name, obj, options).lines()


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-process-docstring", _google_style_docstrings)
