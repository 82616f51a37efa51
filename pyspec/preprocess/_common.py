"""Settings shared by the preprocessing modules: accepted names, constants, the numba decorator."""

from __future__ import annotations

import math

from pyspec._numba_cache import CACHE

try:  # numba is a declared dependency; the NumPy fallback keeps imports safe
    import numba

    _njit = numba.njit(cache=CACHE, nogil=True)
except ImportError:  # pragma: no cover
    def _njit(f):  # type: ignore[no-redef]
        return f

NORMALISATIONS = ("l2", "minmax", "minmax-sym", "sumsq", "none")
CONTINUA = (None, "median", "median-clipped", "poly")
METHODS = ("rebin", "interp")

_LN10 = math.log(10.0)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
