"""The read-path kernels equal their NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.io import bad_pixel_mask
from pyspec.io._kernels import check_wavelength, mask_and_count


@pytest.mark.parametrize("and_mask_dtype", [None, np.float32, np.int32, ">u4"])
def test_mask_kernel_equals_numpy_reference(rng, and_mask_dtype):
    n, m = 5, 300
    flux = rng.normal(size=(n, m)).astype(np.float32)
    ivar = rng.uniform(-0.2, 1.0, size=(n, m)).astype(np.float32)
    flux[rng.random((n, m)) < 0.05] = np.nan
    flux[rng.random((n, m)) < 0.02] = np.inf
    ivar[rng.random((n, m)) < 0.05] = np.nan
    flux[0, :10] = 0.0
    flux[1, -7:] = 0.0
    flux[2, :] = 0.0
    flux[3, 50:60] = 0.0  # interior zeros stay good
    am = None
    if and_mask_dtype is not None:
        am = (rng.random((n, m)) < 0.05).astype(and_mask_dtype) * 16
        if np.dtype(and_mask_dtype).kind == "f":
            am[0, 5] = np.nan
    mask, n_finite = mask_and_count(flux, ivar, am)
    np.testing.assert_array_equal(mask, bad_pixel_mask(flux, ivar, am))
    np.testing.assert_array_equal(n_finite, np.isfinite(flux).sum(axis=1))


def test_check_wavelength():
    assert check_wavelength(np.array([1.0, 2.0, 3.0])) == 0
    assert check_wavelength(np.array([[1.0, 2.0], [3.0, 4.0]])) == 0
    assert check_wavelength(np.array([1.0, np.nan, 3.0])) == 1
    assert check_wavelength(np.array([1.0, 2.0, 2.0])) == 2
    assert check_wavelength(np.array([[1.0, 2.0], [3.0, 1.0]])) == 2
