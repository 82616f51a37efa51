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


def mih_substrings_ref(codes: np.ndarray, widths: np.ndarray,
                       bit_order: np.ndarray | None = None) -> np.ndarray:
    """int64 (n, m): substring t of each code = bits [sum(widths[:t]), sum(widths[:t+1]))
    of the code with its bits taken in ``bit_order`` (None: 0, 1, 2, ...)."""
    bits = np.unpackbits(codes.view(np.uint8), axis=1, bitorder="little").astype(np.int64)
    if bit_order is not None:
        bits = bits[:, bit_order]
    starts = np.concatenate([[0], np.cumsum(widths)])
    keys = np.zeros((codes.shape[0], len(widths)), dtype=np.int64)
    for t, w in enumerate(widths):
        keys[:, t] = bits[:, starts[t]:starts[t] + w] @ (1 << np.arange(w, dtype=np.int64))
    return keys


def mih_tables_ref(codes: np.ndarray, widths: np.ndarray,
                   bit_order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(offsets uint32, rows uint32 (m, n)): per table a CSR of rows bucketed by substring."""
    keys = mih_substrings_ref(codes, widths, bit_order)
    offsets, rows = [], []
    for t, w in enumerate(widths):
        counts = np.bincount(keys[:, t], minlength=1 << int(w))
        offsets.append(np.concatenate([[0], np.cumsum(counts)]))
        rows.append(np.argsort(keys[:, t], kind="stable"))
    return (np.concatenate(offsets).astype(np.uint32),
            np.stack(rows).astype(np.uint32) if rows else np.empty((0, 0), np.uint32))

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


# --- preprocessing -------------------------------------------------------------


def _masked_median_ref(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Median over the last axis of the ``keep`` entries (NaN where none)."""
    out = np.full(x.shape[:-1], np.nan)
    for idx in np.ndindex(*x.shape[:-1]):
        if keep[idx].any():
            out[idx] = np.median(x[idx][keep[idx]])
    return out


def continuum_clipped_median_ref(f: np.ndarray, wl: np.ndarray, good: np.ndarray,
                                 window: float = 500.0, n_iter: int = 3, clip: float = 2.0,
                                 half: int = 8) -> np.ndarray:
    """NumPy statement of pyspec.preprocess.continuum_clipped_median (2-D flux, bool good)."""
    from scipy.ndimage import median_filter

    n_rows, n_pix = f.shape
    per_block = max(1, int(round(window / float(np.median(np.diff(wl))) / 16.0)))
    n_blocks = -(-n_pix // per_block)
    pad = n_blocks * per_block - n_pix
    centres = np.nanmean(np.concatenate([wl, np.full(pad, np.nan)]).reshape(n_blocks, per_block),
                         axis=1)
    right = np.clip(np.searchsorted(centres, wl), 1, n_blocks - 1)
    t = np.clip((wl - centres[right - 1]) / (centres[right] - centres[right - 1]), 0.0, 1.0)

    def estimate(keep: np.ndarray) -> np.ndarray:
        x = np.concatenate([f, np.zeros((n_rows, pad))], axis=1).reshape(n_rows, n_blocks, -1)
        k = np.concatenate([keep, np.zeros((n_rows, pad), bool)], axis=1).reshape(x.shape)
        m = _masked_median_ref(x, k)
        for i in range(n_rows):
            ok = np.isfinite(m[i])
            m[i] = np.interp(np.arange(n_blocks), np.flatnonzero(ok), m[i][ok]) if ok.any() else 0
        h = min(half, n_blocks - 1)
        lo = 2.0 * m[:, :1] - m[:, 1:h + 1][:, ::-1]
        hi = 2.0 * m[:, -1:] - m[:, -h - 1:-1][:, ::-1]
        smooth = median_filter(np.concatenate([lo, m, hi], axis=1), size=(1, 2 * half + 1),
                               mode="nearest")[:, h:h + n_blocks]
        return smooth[:, right - 1] * (1.0 - t) + smooth[:, right] * t

    keep = good.copy()
    cont = estimate(keep)
    for _ in range(n_iter):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = f / cont - 1.0
        usable = good & np.isfinite(ratio)
        for i in range(n_rows):
            if usable[i].sum() < 3:
                continue
            r = ratio[i][usable[i]]
            sd = max(1.4826 * np.median(np.abs(r - np.median(r))), 0.01)
            keep[i] = usable[i] & (ratio[i] > -clip * sd)
            if keep[i].sum() < 3:
                keep[i] = good[i]
        cont = estimate(keep)
    return cont
