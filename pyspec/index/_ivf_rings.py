"""Ring layout of the inverted lists, for exact search (``IVFHammingIndex.search(exact=True)``).

Inside each list the rows are sorted by their Hamming distance to the
list's centroid, and ``rings[l * (n_bits + 1) + r]`` is the first row of
list ``l`` at distance ``>= r`` (``rings[(l + 1) * (n_bits + 1)]`` ends the
list). By the triangle inequality a code x of list l can be nearer than tau
to a query q only if ``|d(q, c_l) - d(c_l, x)| <= tau``, so the rows an
exact search must read in list l are one contiguous run,
``rings[l*R + d - tau] : rings[l*R + d + tau + 1]`` (``R = n_bits + 1``,
``d = d(q, c_l)``); the compiled kernel (``_core.ivf_hamming_knn_exact``)
reads only those runs.

The layout is a sort by the key ``list * R + distance`` (stable, so rows of
equal key keep their insertion order); the list offsets of the approximate
search are ``rings[::R]``. Everything here is vectorised NumPy.
"""

from __future__ import annotations

import numpy as np

# rows whose distance to their centroid is computed per block (bounds temporaries)
_BLOCK = 1 << 20


def row_distances(codes: np.ndarray, centroids: np.ndarray, lists: np.ndarray) -> np.ndarray:
    """Hamming distance of each code to the centroid of its list, int64 (n,)."""
    out = np.empty(codes.shape[0], dtype=np.int64)
    for s in range(0, codes.shape[0], _BLOCK):
        block = codes[s:s + _BLOCK] ^ centroids[lists[s:s + _BLOCK]]
        out[s:s + block.shape[0]] = np.bitwise_count(block).sum(axis=1, dtype=np.int64)
    return out


def list_radii(rings: np.ndarray, n_lists: int, n_bits: int) -> np.ndarray:
    """int32 (n_lists, 2): the smallest and largest ring holding a row of each list
    (an empty list: (n_bits + 1, -1)). Lets the kernel pass over a list out of
    reach without reading its ring offsets."""
    filled = np.diff(rings).reshape(n_lists, n_bits + 1) > 0
    radii = np.empty((n_lists, 2), dtype=np.int32)
    radii[:, 0] = np.argmax(filled, axis=1)
    radii[:, 1] = n_bits - np.argmax(filled[:, ::-1], axis=1)
    radii[~filled.any(axis=1)] = (n_bits + 1, -1)
    return radii


def compact_rings(rings: np.ndarray, radii: np.ndarray, n_bits: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(ring_base int64 (n_lists + 1,), ring_rel uint32): the ring offsets of each
    list over its occupied rings only, relative to the list start (the layout
    ``_core.ivf_hamming_knn_exact`` reads: a few MB instead of ``8 (n_bits + 1)``
    bytes per list, so its lookups stay in cache)."""
    n_lists = radii.shape[0]
    filled = radii[:, 0] <= radii[:, 1]
    span = np.where(filled, radii[:, 1].astype(np.int64) - radii[:, 0] + 2, 0)
    base = np.zeros(n_lists + 1, dtype=np.int64)
    np.cumsum(span, out=base[1:])
    lists = np.repeat(np.arange(n_lists, dtype=np.int64), span)
    ring = np.arange(base[-1], dtype=np.int64) - base[lists] + radii[lists, 0]
    stride = n_bits + 1
    rel = rings[lists * stride + ring] - rings[lists * stride]
    return base, rel.astype(np.uint32)


def rows_keys(rings: np.ndarray) -> np.ndarray:
    """The key ``list * R + distance`` of every row of a ring layout, int64 (n,)."""
    return np.repeat(np.arange(rings.size - 1, dtype=np.int64), np.diff(rings))


def rings_from_keys(keys: np.ndarray, n_lists: int, n_bits: int) -> np.ndarray:
    """Ring offsets of rows already sorted by ``keys``: int64 (n_lists * R + 1,)."""
    rings = np.zeros(n_lists * (n_bits + 1) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_lists * (n_bits + 1)), out=rings[1:])
    return rings


def ring_layout(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_lists: int,
                n_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort rows from several sources into the ring layout.

    parts : [(codes, ids, keys)], rows of each source in their order (earlier
        sources first among rows of equal key).
    Returns (codes, ids, rings), each source's rows gathered once into the
    sorted arrays (no concatenated copy of the codes).
    """
    keys = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.int64)
    order = np.argsort(keys, kind="stable")
    n_words = parts[0][0].shape[1]
    codes = np.empty((order.size, n_words), dtype=np.uint64)
    ids = np.empty(order.size, dtype=np.int64)
    start = 0
    for part_codes, part_ids, part_keys in parts:
        end = start + part_keys.size
        dest = np.flatnonzero((order >= start) & (order < end))
        src = order[dest] - start
        codes[dest] = part_codes[src]
        ids[dest] = part_ids[src]
        start = end
    return codes, ids, rings_from_keys(keys[order], n_lists, n_bits)


def ring_problem(rings: object, offsets: np.ndarray, codes: np.ndarray, centroids: np.ndarray,
                 n_bits: int) -> str | None:
    """Why ``rings`` is not the ring layout of ``codes`` (None when it is).

    Checks the shape, the run from 0 to the code count, monotonicity, the
    agreement with the list offsets, and every row's distance to its
    centroid (one pass over the codes).
    """
    stride = n_bits + 1
    n_lists = centroids.shape[0]
    if not isinstance(rings, np.ndarray) or rings.dtype != np.int64 \
            or rings.shape != (n_lists * stride + 1,):
        return f"must be int64 ({n_lists * stride + 1},)"
    if rings[0] != 0 or rings[-1] != codes.shape[0] or (np.diff(rings) < 0).any():
        return "are not a non-decreasing run from 0 to the code count"
    if not np.array_equal(rings[::stride], offsets):
        return "disagree with the list offsets"
    for s in range(0, codes.shape[0], _BLOCK):
        keys = rows_keys_between(rings, s, min(s + _BLOCK, codes.shape[0]))
        dist = row_distances(codes[s:s + keys.size], centroids, keys // stride)
        if not np.array_equal(dist, keys % stride):
            return "place rows at the wrong distance from their centroid"
    return None


def rows_keys_between(rings: np.ndarray, start: int, end: int) -> np.ndarray:
    """Keys of rows ``start:end`` of a (monotone) ring layout."""
    first = np.searchsorted(rings, start, side="right") - 1
    last = np.searchsorted(rings, end, side="left")
    seg = np.clip(rings[first:last + 1], start, end)
    return np.repeat(np.arange(first, first + seg.size - 1, dtype=np.int64), np.diff(seg))
