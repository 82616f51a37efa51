"""Small top-k building blocks shared by the kNN-graph builders.

:mod:`pyspec.knn_graph` (exact and candidate graphs) and :mod:`pyspec.knn_ivf`
(the inverted-file graph) both keep per-row sorted top-k buffers; the
helpers live here so neither module imports the other's internals.
"""

from __future__ import annotations

import numpy as np

from pyspec._numba_cache import CACHE


def _row_norms(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], 65536):
        b = np.asarray(x[s:s + 65536], dtype=np.float32)
        out[s:s + b.shape[0]] = np.einsum("ij,ij->i", b, b)
    return out


def _insert_sorted(bd, bi, v, ident):  # pragma: no cover - compiled
    """Insert ``(v, ident)`` into the ascending top-k ``bd``/``bi``, dropping the last.

    The caller has checked ``v < bd[-1]``; an equal value already present
    stays ahead, so ties keep the id that arrived first (the lower one).
    """
    p = bd.shape[0] - 1
    while p > 0 and bd[p - 1] > v:
        bd[p] = bd[p - 1]
        bi[p] = bi[p - 1]
        p -= 1
    bd[p] = v
    bi[p] = ident


def _reset_topk(bd, bi):  # pragma: no cover - compiled
    """Empty a top-k buffer (inf, -1); returns its worst value (inf)."""
    for j in range(bd.shape[0]):
        bd[j] = np.inf
        bi[j] = -1
    return np.inf


try:  # numba is a declared dependency
    import numba

    _insert_sorted = numba.njit(cache=CACHE, nogil=True)(_insert_sorted)
    _reset_topk = numba.njit(cache=CACHE, nogil=True)(_reset_topk)
except ImportError:  # pragma: no cover
    pass
