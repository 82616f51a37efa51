"""numba kernels of the read path: mask bits and wavelength checks in one pass.

:func:`pyspec.io.bad_pixel_mask` is the NumPy reference these must equal
(tests/test_io_kernels.py); the kernels only save the dozen temporary arrays
that the NumPy form allocates per file, which matters when millions of small
files are read.
"""

from __future__ import annotations

import numba
import numpy as np

from pyspec._numba_cache import CACHE


@numba.njit(cache=CACHE, nogil=True)
def _mask_rows(flux, ivar, and_mask, use_and_mask, mask, n_finite):
    n, m = flux.shape
    for r in range(n):
        count = 0
        for j in range(m):
            f = flux[r, j]
            v = ivar[r, j]
            ok_f = np.isfinite(f)
            bad = not ok_f or not np.isfinite(v) or not v > 0
            if use_and_mask and and_mask[r, j] != 0:
                bad = True
            mask[r, j] = bad
            if ok_f:
                count += 1
        n_finite[r] = count
        # runs of exactly-zero flux touching either end
        j = 0
        while j < m and flux[r, j] == 0:
            mask[r, j] = True
            j += 1
        j = m - 1
        while j >= 0 and flux[r, j] == 0:
            mask[r, j] = True
            j -= 1


@numba.njit(cache=CACHE, nogil=True)
def _check_wavelength(wl):
    """0: finite and strictly increasing; 1: non-finite value; 2: not increasing."""
    n, m = wl.shape
    for r in range(n):
        for j in range(m):
            if not np.isfinite(wl[r, j]):
                return 1
            if j > 0 and not wl[r, j] > wl[r, j - 1]:
                return 2
    return 0


_NO_MASK = np.zeros((1, 1), dtype=np.float64)


def mask_and_count(flux: np.ndarray, ivar: np.ndarray, and_mask: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mask (bool, same shape) and finite-flux count per row for 2-D float32 flux/ivar."""
    mask = np.empty(flux.shape, dtype=np.bool_)
    n_finite = np.empty(flux.shape[0], dtype=np.int64)
    if and_mask is None:
        _mask_rows(flux, ivar, _NO_MASK, False, mask, n_finite)
    else:
        am = np.ascontiguousarray(np.broadcast_to(and_mask, flux.shape), dtype=np.float64)
        _mask_rows(flux, ivar, am, True, mask, n_finite)
    return mask, n_finite


def check_wavelength(wavelength: np.ndarray) -> int:
    """0 ok, 1 non-finite, 2 not strictly increasing (1-D or 2-D float64)."""
    wl = wavelength if wavelength.ndim == 2 else wavelength.reshape(1, -1)
    return int(_check_wavelength(wl))
