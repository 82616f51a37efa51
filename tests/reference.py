"""Slow, obviously-correct NumPy references for every compiled kernel.

Each kernel family appends its reference here; tests compare the fast path
against these exactly (integers) or within a stated tolerance (floats).
"""

from __future__ import annotations

import numpy as np


# --- hamming -----------------------------------------------------------------


def hamming_distances_ref(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """int32 (n_queries, n_codes): popcount of XOR summed over words."""
    x = queries[:, None, :] ^ codes[None, :, :]
    return np.bitwise_count(x).sum(axis=-1, dtype=np.int32)


def hamming_knn_ref(queries: np.ndarray, codes: np.ndarray, ids: np.ndarray, k: int,
                    pad_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 (nq, k), distances int32 (nq, k)) sorted by (distance, id), padded."""
    d = hamming_distances_ref(queries, codes)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_d = np.full((len(queries), k), pad_distance, dtype=np.int32)
    for i in range(len(queries)):
        order = np.lexsort((ids, d[i]))[:k]
        out_ids[i, : len(order)] = ids[order]
        out_d[i, : len(order)] = d[i, order]
    return out_ids, out_d


def hamming_range_ref(queries: np.ndarray, codes: np.ndarray, ids: np.ndarray,
                      radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (offsets, ids, distances) of codes within ``radius``, per query by (distance, id)."""
    d = hamming_distances_ref(queries, codes)
    offsets, out_ids, out_d = [0], [], []
    for i in range(len(queries)):
        hit = np.flatnonzero(d[i] <= radius)
        order = hit[np.lexsort((ids[hit], d[i, hit]))]
        out_ids.append(ids[order])
        out_d.append(d[i, order])
        offsets.append(offsets[-1] + len(order))
    return (np.asarray(offsets, dtype=np.int64),
            np.concatenate(out_ids or [np.empty(0, np.int64)]).astype(np.int64),
            np.concatenate(out_d or [np.empty(0, np.int32)]).astype(np.int32))

# ---------------------------------------------------------------- linalg
def gram_reference(H: np.ndarray, X: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """H^T H and H^T X in float64 (reference of linalg.GramAccumulator)."""
    H64 = np.asarray(H, dtype=np.float64)
    return H64.T @ H64, None if X is None else H64.T @ np.asarray(X, dtype=np.float64)


def dense_forward_reference(X: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                            activation: str) -> np.ndarray:
    """g(X W + b) in float64."""
    z = np.asarray(X, np.float64) @ np.asarray(W, np.float64)
    if b is not None:
        z = z + np.asarray(b, np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.maximum(z, 0.0)
    return z


def ridge_reference(G: np.ndarray, C: np.ndarray, lam: float) -> np.ndarray:
    """(G + lam I)^+ C through numpy.linalg.pinv (minimum-norm for singular G)."""
    A = np.asarray(G, np.float64) + lam * np.eye(G.shape[0])
    return np.linalg.pinv(A, rcond=1e-12, hermitian=True) @ np.asarray(C, np.float64)
