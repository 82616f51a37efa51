"""Shared fixtures: seeded rng, SIMD levels, thread counts, the real-data corpus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from extras import require_test_extra

import pyspec

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PYSPEC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
HAVE_SHARED = (SHARED_DATA / "spectra_index.csv").is_file()


pytest_plugins = ["pytester"]  # tests/test_doctest_collection.py


def pytest_configure(config: pytest.Config) -> None:
    # Registered as a plugin, not a conftest, so its collection hooks also see pyspec/.
    import doctest_collection

    if not config.pluginmanager.is_registered(doctest_collection):
        config.pluginmanager.register(doctest_collection, "pyspec-doctest-collection")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [_config_line()]
    if HAVE_SHARED:
        lines.append(f"shared corpus: {SHARED_DATA} (tests over all real spectra will run)")
    else:
        lines.append(f"shared corpus: NOT FOUND at {SHARED_DATA}; tests marked shared_data are "
                     "SKIPPED (set PYSPEC_SHARED_DATA to run them)")
    return lines


def _config_line() -> str:
    from pyspec._config import config

    c = config()
    return (f"pyspec {c['version']}: SIMD selected {c['simd_selected']} "
            f"(compiled {c['simd_compiled']}, detected {c['simd_detected']}), "
            f"OpenMP {'on' if c['openmp'] else 'off'}, {c['threads']} threads")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SHARED:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI run but the shared corpus is missing at {SHARED_DATA}")
    skip = pytest.mark.skip(reason=f"../shared/data not found at {SHARED_DATA}")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)


@pytest.fixture(params=pyspec.available_simd_levels())
def simd_level(request: pytest.FixtureRequest):
    """Run the test body at each SIMD level this build and CPU support."""
    with pyspec.simd_level(request.param):
        yield request.param


@pytest.fixture(params=[1, 2, 4])
def num_threads(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not HAVE_SHARED:
        pytest.skip(f"../shared/data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def saved_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every matplotlib Figure saved during the test, in order (files are still written).

    Lets a test check what a plotting function drew (lines, their data,
    labels) rather than only that an image file appeared.
    """
    from matplotlib.figure import Figure

    saved: list = []
    savefig = Figure.savefig

    def record(self: Figure, *args, **kwargs):
        saved.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


@pytest.fixture(scope="module")
def client():
    """A Dask client of 2 single-threaded in-process workers (inproc://: no sockets, no
    dashboard), shared by one test module."""
    distributed = require_test_extra("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c
