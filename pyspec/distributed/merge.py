"""Exact merge of per-shard search results into the results of one engine.

A shard returns its top-k by (distance, local id); with the shard's offset
added the ids are global and the order within a shard is unchanged. The
global top-k is then the first k of the union ordered by (distance, global
id), which is what one index over all spectra returns (its lists are ordered
the same way), so the merge is exact, not approximate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyspec.index._result import RangeResult, SearchResult


def _globalise(ids: np.ndarray, offset: int) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return np.where(ids >= 0, ids + np.int64(offset), np.int64(-1))


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray, int]], k: int) -> SearchResult:
    """Merge per-shard k-NN lists ``(ids, distances, offset)`` into one SearchResult.

    ``ids`` are shard-local (-1 pads) and become ``ids + offset``. Padding
    keeps the index's own fill value (Hamming ``n_bits + 1``, PQ ``inf``),
    which sorts after every real hit. Every shard returns k columns, so the
    union always has at least k.
    """
    if not parts:
        raise ValueError("nothing to merge: no shards")
    ids = np.concatenate([_globalise(i, off) for i, _, off in parts], axis=1)
    dist = np.concatenate([np.asarray(d) for _, d, _ in parts], axis=1)
    n_q = ids.shape[0]
    # padded entries (-1) sort last among equal distances; real ids are >= 0
    key_ids = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
    order = np.lexsort((key_ids, dist), axis=1)[:, :k]
    rows = np.arange(n_q)[:, None]
    out_ids, out_d = ids[rows, order], dist[rows, order]
    return SearchResult(ids=np.ascontiguousarray(out_ids), distances=np.ascontiguousarray(out_d))


def merge_ranges(parts: Sequence[tuple[RangeResult, int]]) -> RangeResult:
    """Merge per-shard range results ``(RangeResult, offset)`` (CSR) into one, by (distance, id)."""
    if not parts:
        raise ValueError("nothing to merge: no shards")
    n_q = len(parts[0][0])
    q_all, ids_all, d_all = [], [], []
    for res, off in parts:
        counts = np.diff(np.asarray(res.offsets, np.int64))
        q_all.append(np.repeat(np.arange(n_q, dtype=np.int64), counts))
        ids_all.append(_globalise(res.ids, off))
        d_all.append(np.asarray(res.distances))
    q, ids, d = np.concatenate(q_all), np.concatenate(ids_all), np.concatenate(d_all)
    order = np.lexsort((ids, d, q))
    offsets = np.zeros(n_q + 1, np.int64)
    np.cumsum(np.bincount(q, minlength=n_q), out=offsets[1:])
    return RangeResult(lims=offsets, ids=ids[order], distances=d[order])
