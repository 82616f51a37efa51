"""Slow, obviously-correct NumPy references for every compiled kernel.

Each kernel family appends its reference here; tests compare the fast path
against these exactly (integers) or within a stated tolerance (floats).
"""

from __future__ import annotations

import numpy as np


# ---- product quantisation (issue 4) -------------------------------------------------


def pq_segment_bounds_ref(n_features: int, n_segments: int) -> np.ndarray:
    """Segment boundaries: np.array_split's rule (first D % M segments one pixel longer)."""
    parts = np.array_split(np.arange(n_features), n_segments)
    return np.array([0] + [int(p[-1]) + 1 for p in parts], dtype=np.int64)


def pq_tables_ref(queries: np.ndarray, codebook: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """ADC tables by broadcasting squared differences per segment, float64 (nq, M, K)."""
    q = queries.astype(np.float64)
    c = codebook.astype(np.float64)
    out = np.empty((q.shape[0], len(bounds) - 1, c.shape[0]))
    for m in range(len(bounds) - 1):
        s, e = bounds[m], bounds[m + 1]
        out[:, m, :] = ((q[:, None, s:e] - c[None, :, s:e]) ** 2).sum(axis=2)
    return out


def pq_adc_ref(tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """ADC distances by lookup and sum: float32, summed in segment order m = 0..M-1
    (the order the kernels promise), shape (nq, n)."""
    t = np.asarray(tables, dtype=np.float32)
    acc = np.zeros((t.shape[0], codes.shape[0]), dtype=np.float32)
    for m in range(codes.shape[1]):
        acc += t[:, m, codes[:, m].astype(np.int64)]
    return acc


def pq_encode_ref(X: np.ndarray, codebook: np.ndarray, bounds: np.ndarray):
    """Exact nearest centroid per segment (float64 argmin, ties to the lower index).

    Returns (codes int64 (n, M), dist float64 (n, M, K)).
    """
    dist = pq_tables_ref(X, codebook, bounds)
    return dist.argmin(axis=2), dist


def knn_ref(dist: np.ndarray, ids: np.ndarray, k: int):
    """Top-k of each row of ``dist`` (nq, n) ordered by (distance, id), padded (-1, inf)."""
    nq = dist.shape[0]
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_d = np.full((nq, k), np.inf, dtype=dist.dtype)
    for q in range(nq):
        order = np.lexsort((ids, dist[q]))[:k]
        out_ids[q, :order.size] = ids[order]
        out_d[q, :order.size] = dist[q, order]
    return out_ids, out_d
