"""The masked running-median continuum: the one implementation in pyspec.

A median over a window fixed in Angstrom (``wavelength +- window / 2``), of
the good pixels only. Preprocessing (``continuum="median"``), the line
search, the line fluxes and the cross-correlation redshifts all call it; the
robust (clipped, block-based) continuum of the default preprocessing is a
different estimator and lives in :mod:`pyspec.preprocess`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec._numba_cache import CACHE

try:  # numba is a declared dependency; the plain-Python fallback keeps imports safe
    from numba import njit

    _njit = njit(cache=CACHE)
except ImportError:  # pragma: no cover
    def _njit(f):  # type: ignore[no-redef]
        return f


@_njit
def running_median_kernel(wave, flux, good, half_width):
    """Running median of ``flux`` over good pixels within +-half_width Angstrom.

    The window's good values are kept in a sorted buffer: pixels entering the
    window are inserted and pixels leaving it are removed (binary search plus
    a shift), so each pixel costs O(window) moves and nothing is allocated per
    pixel.  ``flux`` must be finite where ``good``.  Pixels whose window holds
    no good pixel get NaN.
    """
    n = wave.size
    out = np.empty(n)
    buf = np.empty(n)
    m = 0
    lo = 0
    hi = 0
    for i in range(n):
        while hi < n and wave[hi] <= wave[i] + half_width:
            if good[hi]:
                v = flux[hi]
                k = np.searchsorted(buf[:m], v)
                for j in range(m, k, -1):
                    buf[j] = buf[j - 1]
                buf[k] = v
                m += 1
            hi += 1
        while wave[lo] < wave[i] - half_width:
            if good[lo]:
                k = np.searchsorted(buf[:m], flux[lo])
                for j in range(k, m - 1):
                    buf[j] = buf[j + 1]
                m -= 1
            lo += 1
        if m == 0:
            out[i] = np.nan
        elif m % 2 == 1:
            out[i] = buf[m // 2]
        else:
            out[i] = 0.5 * (buf[m // 2 - 1] + buf[m // 2])
    return out


def running_median(flux: Any, wavelength: Any, window: float = 150.0,
                   good: Any | None = None) -> np.ndarray:
    """Running median over ``window`` Angstrom of the good pixels (last axis = pixels).

    Parameters
    ----------
    flux : array of shape (n_pixels,) or (n_spectra, n_pixels)
    wavelength : array of shape (n_pixels,), Angstrom, strictly increasing
    window : float
        Full width of the window in Angstrom.
    good : bool array broadcastable to ``flux``, optional
        Pixels to use (default: the finite ones); a pixel whose window holds
        no good pixel gets NaN.

    Returns
    -------
    ndarray of the shape of ``flux``, float64

    Examples
    --------
    >>> w = np.linspace(4000, 7000, 3001)
    >>> f = 1 + np.exp(-0.5 * ((w - 5000) / 2) ** 2)
    >>> bool(np.allclose(running_median(f, w, 150.0), 1.0))
    True
    """
    f = np.asarray(flux, dtype=np.float64)
    wl = np.ascontiguousarray(wavelength, dtype=np.float64)
    rows = np.ascontiguousarray(f.reshape(-1, f.shape[-1]))
    ok = np.isfinite(rows)
    if good is not None:
        ok &= np.broadcast_to(np.asarray(good, dtype=bool), f.shape).reshape(rows.shape)
    out = np.empty_like(rows)
    half = 0.5 * float(window)
    for i in range(rows.shape[0]):
        out[i] = running_median_kernel(wl, rows[i], ok[i], half)
    return out.reshape(f.shape)
