"""Doctest collection for the default ``pytest`` run (``--doctest-modules``, pyproject.toml).

The docstring examples of ``pyspec/`` run as tests. A module that cannot be
imported because an optional dependency (the ``dask``/``test`` extras) is not
installed is skipped with the reason printed by ``-ra``; any other import
error fails as usual. Test modules under ``tests/`` hold no examples and are
not imported a second time as doctest modules (the fuzz target under
``tests/fuzz`` builds its artefacts on import).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

ROOT = Path(__file__).resolve().parent
# Third-party packages pyspec imports only for optional features or tests.
OPTIONAL_PACKAGES = frozenset({"dask", "distributed", "faiss", "nanopq", "asv", "atheris"})


class OptionalDepsDoctestModule(DoctestModule):
    """A doctest module skipped, not failed, when an optional package is missing."""

    def collect(self):
        try:
            yield from super().collect()
        except (pytest.Collector.CollectError, ImportError) as err:
            missing = _missing_optional(err)
            if missing is None:
                raise
            pytest.skip(f"docstring examples of {self.path.relative_to(ROOT)} not run: "
                        f"optional package {missing!r} is not installed")


def _missing_optional(err: BaseException) -> str | None:
    """The optional package whose absence caused ``err`` (or its cause), else None."""
    while err is not None:
        if isinstance(err, ModuleNotFoundError) and err.name:
            top = err.name.split(".")[0]
            return top if top in OPTIONAL_PACKAGES else None
        err = err.__cause__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    outcome = yield
    collectors = []
    for c in outcome.get_result():
        if type(c) is DoctestModule:
            if ROOT / "tests" in file_path.parents:
                continue
            c = OptionalDepsDoctestModule.from_parent(parent, path=file_path)
        collectors.append(c)
    outcome.force_result(collectors)


@pytest.fixture(autouse=True)
def _doctest_temp_files_in_tmp_path(request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An example's ``tempfile.mkdtemp()`` lands in its tmp_path, which pytest cleans up."""
    if isinstance(request.node, DoctestItem):
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))


# tests/test_doctest_collection.py runs pytest on small trees with this file.
pytest_plugins = ["pytester"]
