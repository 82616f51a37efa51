"""Id filters of ``search(..., filter=...)``: which stored rows a search may return.

A filter is either a set of allowed ids (any 1-D integer array-like) or a
boolean mask indexed by id (``mask[id]`` True = allowed; ids at or beyond
``len(mask)`` are excluded). Both are resolved against the ids an index holds
into the sorted positions of the allowed rows.

Filtered k-NN is exact: every index either scans only the allowed rows (a
gathered copy, when they are few) or asks its unfiltered search for
``k + n_excluded`` neighbours, which must contain the top k allowed ones
since at most ``n_excluded`` of them are dropped (:func:`post_filter`).
"""

from __future__ import annotations

import numpy as np

from pyspec._validation import describe

#: Largest ``k + n_excluded`` answered by post-filtering an enlarged search;
#: beyond it the allowed rows are gathered and scanned.
POST_FILTER_MAX_K = 1024


def allowed_positions(ids: np.ndarray, filter: object) -> np.ndarray:  # noqa: A002
    """Sorted int64 positions in ``ids`` of the rows that ``filter`` allows."""
    arr = np.asarray(filter)
    if arr.ndim != 1:
        raise ValueError(f"filter: expected a 1-D array of allowed ids or a boolean mask "
                         f"indexed by id, got {describe(arr)}")
    if arr.dtype == np.bool_:
        inside = (ids >= 0) & (ids < arr.size)
        keep = np.zeros(ids.shape, dtype=bool)
        keep[inside] = arr[ids[inside]]
        return np.flatnonzero(keep).astype(np.int64)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise TypeError(f"filter: expected integer ids or a boolean mask, got {describe(arr)}")
    return np.flatnonzero(np.isin(ids, arr.astype(np.int64))).astype(np.int64)


def use_post_filter(k: int, n_rows: int, n_allowed: int) -> bool:
    """True when an enlarged unfiltered search beats gathering the allowed rows:
    few rows excluded (so ``k + n_excluded`` stays small) and most rows allowed."""
    n_excluded = n_rows - n_allowed
    return k + n_excluded <= POST_FILTER_MAX_K and 2 * n_allowed >= n_rows


def post_filter(ids: np.ndarray, dist: np.ndarray, allowed_ids: np.ndarray, k: int,
                pad_id: int, pad_dist: object) -> tuple[np.ndarray, np.ndarray]:
    """First ``k`` allowed entries of each row of an enlarged (ids, dist) result.

    Rows are already ordered by (distance, id), so the allowed entries keep
    that order; rows with fewer than ``k`` are padded.
    """
    ok = np.isin(ids, allowed_ids) & (ids != pad_id)
    if ids.shape[1] < k:  # fewer rows stored than k: pad the columns first
        extra = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id)
        dist = np.pad(dist, ((0, 0), (0, extra)), constant_values=pad_dist)
        ok = np.pad(ok, ((0, 0), (0, extra)), constant_values=False)
    # a stable sort on "not allowed" moves the allowed entries to the front in order
    order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
    out_ids = np.take_along_axis(ids, order, axis=1)
    out_dist = np.take_along_axis(dist, order, axis=1)
    dropped = ~np.take_along_axis(ok, order, axis=1)
    out_ids[dropped] = pad_id
    out_dist[dropped] = pad_dist
    return out_ids, out_dist


def filter_ranges(lims: np.ndarray, ids: np.ndarray, dist: np.ndarray,
                  allowed_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep only allowed hits of a CSR range result (order within queries kept)."""
    ok = np.isin(ids, allowed_ids)
    kept_before = np.concatenate([[0], np.cumsum(ok)]).astype(np.int64)
    new_lims = kept_before[np.asarray(lims, dtype=np.int64)]
    return new_lims, ids[ok], dist[ok]
