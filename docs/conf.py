"""Sphinx configuration: the API reference, built from the docstrings (numpydoc style).

Build: ``sphinx-build -W -b html docs docs/_build`` (``pip install ".[docs]"``);
``.ci/run`` builds it with warnings as errors.
"""

from __future__ import annotations

import re

import pyspec

project = "pyspec"
author = "pyspec developers"
release = version = pyspec.__version__

extensions = ["sphinx.ext.autodoc", "numpydoc"]
# Documented objects are reached through their public names (pyspec.X), which stay
# stable while modules move; signatures keep their annotations as written.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
# numpydoc renders the Parameters/Returns sections; class member tables would need
# autosummary stubs, so members are listed by autodoc instead.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
nitpicky = False


def _skip_foreign_members(app, what, name, obj, skip, options):  # noqa: ANN001, ANN201
    """Leave out members that scikit-learn adds to estimators (set_*_request, ...).

    They are documented by scikit-learn, and their docstrings refer to its glossary.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn") or (name.startswith("set_") and name.endswith("_request")):
        return True
    return skip


_SHAPE = re.compile(r"\(([^()]*)\)")


def _escape_shape_names(app, what, name, obj, options, lines):  # noqa: ANN001, ANN201
    """``shape (n, n_features_in_)``: a trailing ``_`` inside a shape is not a link target.

    The models' docstrings write shapes with fitted attributes (``n_features_in_``);
    reStructuredText would read ``word_`` as a reference to a target that does not exist.
    """
    def escape(match: re.Match) -> str:
        return "(" + re.sub(r"(\w)_(?=\W|$)", r"\1\\_", match.group(1)) + ")"

    lines[:] = [_SHAPE.sub(escape, line) if "shape" in line else line for line in lines]


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-skip-member", _skip_foreign_members)
    # before numpydoc (priority 500) turns the sections into reST
    app.connect("autodoc-process-docstring", _escape_shape_names, priority=400)
