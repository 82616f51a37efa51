"""The compiled "rebin" resampling gives exactly the NumPy steps it replaced.

:func:`pyspec.preprocess._resample.resample` runs the elementwise steps around
the rebinning kernel in two compiled passes (:func:`_rebin_fused`); the NumPy
form is kept as :func:`_resample_numpy`. Both run on real spectra (the shipped
sample, the shared corpus where present) and hand-made edge cases onto two
grids and must agree bit for bit, errors included.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from pyspec.data import SAMPLE_DIR
from pyspec.errors import SpectrumCoverageError
from pyspec.io import read_spectra
from pyspec.preprocess import WavelengthGrid
from pyspec.preprocess._resample import _rebin_fused, _resample_numpy, resample

GRIDS = [WavelengthGrid.preset("lamost"), WavelengthGrid.preset("pq-2A")]


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_same(wl, f, iv, mask, grid) -> None:
    args = (np.asarray(wl, np.float64), np.asarray(f, np.float64), np.asarray(iv, np.float64))
    got = _rebin_fused(*args, mask, grid)
    with np.errstate(over="ignore"):  # 1 / subnormal ivar: NumPy warns, both give inf
        want = _resample_numpy(*args, mask, grid, "rebin")
    for name in ("flux", "ivar", "covered", "interpolated"):
        assert _same_bits(getattr(got, name), getattr(want, name)), name
    assert got.good_range == want.good_range


def _spectra(paths):
    return [(s.wavelength, s.flux, s.ivar, s.mask) for s in read_spectra(paths).spectra]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.name)
def test_fused_rebin_equals_numpy_on_the_sample(grid) -> None:
    spectra = _spectra(sorted(str(p) for p in SAMPLE_DIR.glob("spec-*.fits*")))
    assert len(spectra) > 20
    for wl, f, iv, mask in spectra:
        _assert_same(wl, f, iv, mask, grid)
        _assert_same(wl, f, iv, None, grid)


@pytest.mark.shared_data
def test_fused_rebin_equals_numpy_on_the_corpus() -> None:
    paths = sorted(str(p) for p in SHARED_DATA.rglob("*.fits*"))[::4]
    spectra = _spectra(paths)
    assert len(spectra) > 100
    for wl, f, iv, mask in spectra:
        _assert_same(wl, f, iv, mask, GRIDS[0])


def test_fused_rebin_equals_numpy_on_edge_cases() -> None:
    grid = GRIDS[0]
    rng = np.random.default_rng(3)
    wl = np.linspace(3000.0, 9500.0, 5000)
    f = rng.normal(1.0, 0.3, wl.size)
    iv = rng.uniform(0.0, 4.0, wl.size)
    cases = []
    a, b, c = f.copy(), iv.copy(), rng.random(wl.size) < 0.1
    a[::37] = np.nan
    b[5::41] = np.inf
    b[7::43] = -1.0
    b[:400] = 0.0  # a masked blue end: interpolated, not covered
    cases.append((wl, a, b, c))
    cases.append((wl, f, iv, np.zeros(wl.size, np.uint8)))  # a non-bool mask
    short = (wl > 6000.0) & (wl < 6100.0)  # covers a small part of the grid
    cases.append((wl[short], f[short], iv[short], None))
    cases.append((wl + 20000.0, f, iv, None))  # no grid pixel covered at all
    one = np.zeros(wl.size, bool)
    one[2500] = True
    cases.append((wl, f, np.where(one, 1.0, 0.0), None))  # a single good pixel
    cases.append((wl, f, np.full(wl.size, 1e-320), None))  # subnormal ivar: infinite variance
    for case in cases:
        _assert_same(*case, grid)


def test_fused_rebin_raises_like_numpy() -> None:
    grid = GRIDS[0]
    wl = np.linspace(4000.0, 8000.0, 100)
    f = np.ones(100)
    iv = np.ones(100)
    for bad_wl in (wl[::-1], np.where(np.arange(100) == 50, np.nan, wl),
                   np.where(np.arange(100) == 50, wl[49], wl)):
        for fn in (_rebin_fused, lambda *a: _resample_numpy(*a, "rebin")):
            with pytest.raises(ValueError, match="strictly increasing"):
                fn(bad_wl, f, iv, None, grid)
    for fn in (_rebin_fused, lambda *a: _resample_numpy(*a, "rebin")):
        with pytest.raises(SpectrumCoverageError, match="no good pixels"):
            fn(wl, f, np.zeros(100), None, grid)
        with pytest.raises(SpectrumCoverageError, match="no good pixels"):
            fn(wl, f, iv, np.ones(100, bool), grid)


def test_resample_takes_the_fused_path_for_rebin(monkeypatch) -> None:
    import pyspec.preprocess._resample as rs

    calls = []
    monkeypatch.setattr(rs, "_resample_numpy", lambda *a: calls.append(a[-1]))
    wl = np.linspace(4000.0, 8000.0, 100)
    resample(wl, np.ones(100), np.ones(100), None, GRIDS[0])
    assert calls == []  # rebin: compiled
    resample(wl, np.ones(100), np.ones(100), None, GRIDS[0], method="interp")
    resample(wl, np.ones(100), np.ones(100), np.array(False), GRIDS[0])  # a broadcast mask
    assert calls == ["interp", "rebin"]
