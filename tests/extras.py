"""Packages of the ``[test]`` extra (faiss, nanopq, dask, distributed) in tests.

``.ci/run`` installs the extra, so there a missing package is a broken install
and fails loudly; elsewhere (a plain ``pip install .``) the tests that need it
are skipped, saying which package and why.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require_test_extra(name: str) -> ModuleType:
    """``import name``: an ImportError under CI, a skip with the reason elsewhere."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name!r} (pip install '.[test]') is not "
                               "installed")
