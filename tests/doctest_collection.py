"""pytest plugin: the docstring examples of pyspec/ run with ``--doctest-modules`` (pyproject.toml).

Registered by tests/conftest.py (a plugin, not a conftest at the repository
root: such a conftest would put the root on sys.path, and ``import pyspec``
would then find the source tree instead of the installed package, which in CI
is a regular install holding the compiled ``_core``).

* Each module of pyspec/ is imported by its dotted name, so the examples run
  against the installed package whether it is an editable or a regular
  install (importing the source file by path would clash with it).
* A module whose optional package (extras) is missing is skipped with the
  reason printed by ``-ra`` (under CI, a missing package of the ``[test]``
  extra fails instead); any other import error fails.
* Test modules under tests/ hold no examples and are not imported a second
  time (the fuzz target under tests/fuzz builds artefacts on import).
* An example's ``tempfile.mkdtemp()`` lands in its tmp_path, which pytest
  cleans up.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pyspec"
TESTS = REPO / "tests"
# Third-party packages pyspec imports only for optional features or tests.
OPTIONAL_PACKAGES = frozenset({"dask", "distributed", "faiss", "nanopq", "asv", "atheris"})
# Those the [test] extra installs (pyproject.toml), which .ci/run always has.
TEST_EXTRA_PACKAGES = frozenset({"dask", "distributed", "faiss", "nanopq"})


def module_name(path: Path) -> str:
    """Dotted name of a source file of the package: pyspec/models/pq.py -> pyspec.models.pq."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


class InstalledDoctestModule(DoctestModule):
    """Doctests of the installed module named like this source file."""

    def _getobj(self):
        name = module_name(self.path)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            missing = (err.name or "").split(".")[0]
            # under CI the [test] extra is installed: its packages missing is a broken
            # install, not a reason to skip (the rule of tests/extras.py)
            if missing in OPTIONAL_PACKAGES and not (os.environ.get("CI")
                                                     and missing in TEST_EXTRA_PACKAGES):
                pytest.skip(f"docstring examples of {name} not run: optional package "
                            f"{missing!r} is not installed")
            raise


def _in(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector):
    # A plain directory, not a Package: a Package imports its __init__.py by path.
    if _in(path, PACKAGE):
        return pytest.Dir.from_parent(parent, path=path)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    outcome = yield
    collectors = []
    for c in outcome.get_result():
        if type(c) is DoctestModule:
            if _in(file_path, TESTS):
                continue
            if _in(file_path, PACKAGE):
                c = InstalledDoctestModule.from_parent(parent, path=file_path)
        collectors.append(c)
    outcome.force_result(collectors)


@pytest.fixture(autouse=True)
def _doctest_temp_files_in_tmp_path(request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(request.node, DoctestItem):
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
