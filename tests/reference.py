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
