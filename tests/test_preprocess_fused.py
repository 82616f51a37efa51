"""The fused post-continuum kernel gives exactly the NumPy steps it replaced.

``Preprocessor`` divides by the continuum, clips and flattens masked pixels in
one compiled pass (:func:`pyspec.preprocess._divide_clip_mask`); the NumPy
version is kept as :func:`pyspec.preprocess._divide_clip_mask_numpy`. Both
are run on the continua of real spectra (the shipped sample, and the shared
corpus where present) and on hand-made edge cases, and must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from pyspec.data import SAMPLE_DIR
from pyspec.io import read_spectra
from pyspec.preprocess import (
    Preprocessor,
    _divide_clip_mask,
    _divide_clip_mask_numpy,
)


def _resampled(prep: Preprocessor, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = [prep._resample_one(s) for s in read_spectra(paths).spectra]
    return np.array([r.flux for r in rows]), np.array([r.ivar for r in rows])


def _assert_same(prep: Preprocessor, f: np.ndarray, iv: np.ndarray) -> None:
    cont = prep._continuum_of(f, iv)
    got = _divide_clip_mask(f, iv, cont, prep._masked, prep.clip)
    want = _divide_clip_mask_numpy(f, iv, cont, prep._masked, prep.clip)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        assert g.shape == w.shape
        assert np.array_equal(g.view(np.uint64), w.view(np.uint64))  # bits, -0.0 and NaN too


RECIPES = [Preprocessor.preset("similarity"),
           Preprocessor("lamost", normalise="l2", continuum="median"),
           Preprocessor("pq-2A", normalise="none", continuum="poly", clip=(-1.0, 3.0),
                        wavelength_range=(4200.0, 8000.0))]


@pytest.mark.parametrize("prep", RECIPES, ids=lambda p: f"{p.continuum}")
def test_fused_equals_numpy_on_the_sample(prep) -> None:
    f, iv = _resampled(prep, sorted(str(p) for p in SAMPLE_DIR.glob("spec-*.fits*")))
    assert len(f) > 20
    _assert_same(prep, f, iv)


@pytest.mark.shared_data
def test_fused_equals_numpy_on_the_lamost_corpus() -> None:
    prep = Preprocessor.preset("similarity")
    paths = sorted(str(p) for p in (SHARED_DATA / "lamost").rglob("*.fits*"))[::3]
    f, iv = _resampled(prep, paths)
    _assert_same(prep, f, iv)


def test_fused_equals_numpy_on_edge_cases() -> None:
    prep = Preprocessor.preset("similarity")
    rng = np.random.default_rng(5)
    n = len(prep.grid)
    f = rng.normal(1.0, 0.3, (6, n))
    iv = rng.uniform(0.0, 5.0, (6, n))
    cont = rng.normal(1.0, 0.2, (6, n))
    cont[0, :300] = 0.0  # a continuum at zero: weak pixels
    cont[1, 10:20] = np.nan  # not finite: nanmedian level and weak pixels
    cont[2, 5] = np.inf
    cont[3] = -1.0  # negative everywhere: all weak
    f[4, :50] = -0.0  # signed zeros through the clip
    f[5, 7] = np.nan  # NaN flux stays NaN through the clip
    _assert_same_arrays(prep, f, iv, cont)
    _assert_same_arrays(Preprocessor("lamost", normalise="l2", continuum="median"), f, iv, cont)


def _assert_same_arrays(prep, f, iv, cont) -> None:
    got = _divide_clip_mask(f, iv, cont, prep._masked, prep.clip)
    want = _divide_clip_mask_numpy(f, iv, cont, prep._masked, prep.clip)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.view(np.uint64), w.view(np.uint64))
