"""Approximate k-nearest-neighbour tables from an inverted file (IVF) over spectra.

The exact graph compares every pair of spectra (O(n^2 d)); this one compares
each spectrum only with the spectra of a few nearby cells of a partition:

1. the spectra are projected on the leading principal components of a
   sample (the coarse space: the signal, little of the noise);
2. k-means in that space cuts the set into ``n_lists`` cells of ~``list_size``
   spectra (Lloyd's iterations on a sample, then every spectrum assigned to
   its nearest centroid);
3. each cell probes the ``n_probe`` cells its own members would visit most
   often (each member votes for its ``n_probe`` nearest centroids), so
   spectra near a cell boundary find their neighbours across it;
4. inside a cell and its probes the distances are exact (one float32 GEMM
   per cell, in the full space of the spectra, or in the component space
   when the caller asked for it) and the compiled top-k keeps the ``k``
   nearest.

Cost: about ``n * n_probe * list_size * d`` multiply-adds, linear in ``n``
for a fixed list size, instead of ``n^2 d / 2``; memory: the spectra sorted
by cell (one copy, memory-mapped when large) plus one cell's block. What
is lost is recall: a true neighbour outside the probed cells is missed
(measured against the exact table in ``tests/test_knn_graph.py`` and
bench/RESULTS.md).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import scipy.sparse as sp

from pyspec._numba_cache import CACHE
from pyspec._topk import _insert_sorted, _row_norms

__all__ = ["ivf_neighbours", "LIST_SIZE", "N_PROBE"]

# ~cell size and probed cells: edge recall 0.988 of the exact 7-NN graph on
# 50k noisy simulated 140-pixel spectra, and label spreading on it agrees
# with scikit-learn's on 99.5 % of them (8 probes: 0.975 and 98.9 %;
# bench/RESULTS.md, issue 18 second pass)
LIST_SIZE = 1024
N_PROBE = 12
_KMEANS_STEPS = 12
_ASSIGN_BLOCK = 16384
_TILE = 4096
# sorted copies of the spectra above this many bytes live in a temporary memmap
_MEMMAP_BYTES = 1 << 30


def _fold_tile(dots, norms, row0, col0, both, best_i, best_d):  # pragma: no cover - compiled
    """Fold one tile of ``norms[j] - 2 <x_i, x_j>`` into the running top-k of its rows
    (and of its columns when ``both``), skipping the diagonal.

    ``dots[r, c]`` pairs sorted rows ``row0 + r`` and ``col0 + c``. Serial:
    the tiles are small (one cell against one cell), and on a loaded machine
    waking a thread pool for each cost more than the tile (measured: 3.3x
    slower over the tiles of 50k spectra at load 6-11).
    """
    m, w = dots.shape
    k = best_i.shape[1]
    two = np.float32(2.0)
    for r in range(m):
        g = row0 + r
        bd = best_d[g]
        bi = best_i[g]
        worst = bd[k - 1]
        ng = norms[g]
        row = dots[r]
        for c in range(w):
            col = col0 + c
            if col == g:
                continue
            v = norms[col] - two * row[c]
            if v < worst:
                _insert_sorted(bd, bi, v, col)
                worst = bd[k - 1]
            if both:
                u = ng - two * row[c]
                if u < best_d[col, k - 1]:
                    _insert_sorted(best_d[col], best_i[col], u, g)


try:  # numba is a declared dependency
    import numba

    _fold_tile = numba.njit(cache=CACHE, nogil=True)(_fold_tile)
except ImportError:  # pragma: no cover
    pass


def _kmeans(points: np.ndarray, n_lists: int, rng: np.random.Generator) -> np.ndarray:
    """Centroids (n_lists, d) float32 by Lloyd's iterations from random distinct points.

    Random starts rather than k-means++: the partition only has to be
    balanced enough to bound the cells, and ++ seeding costs n_lists passes.
    An emptied cell is re-seeded at the point farthest from its centroid.
    """
    c = points[rng.choice(points.shape[0], n_lists, replace=False)].copy()
    for _ in range(_KMEANS_STEPS):
        lab, d = _nearest(points, c)
        lab = lab[:, 0]
        counts = np.bincount(lab, minlength=n_lists)
        # cell sums as a one-hot sparse product (np.add.at was 10x slower)
        onehot = sp.csr_matrix((np.ones(lab.size), (lab, np.arange(lab.size))),
                               shape=(n_lists, lab.size))
        sums = onehot @ points.astype(np.float64)
        empty = np.flatnonzero(counts == 0)
        c = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if empty.size:
            c[empty] = points[np.argsort(d)[::-1][:empty.size]]
    return c


def _nearest(points: np.ndarray, centroids: np.ndarray,
             t: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``t`` nearest centroids of each point ((n, t) ids, nearest first) and the
    squared distance to the nearest."""
    cn = np.einsum("ij,ij->i", centroids, centroids)
    ids = np.empty((points.shape[0], t), dtype=np.int64)
    best = np.empty(points.shape[0], dtype=np.float32)
    for s in range(0, points.shape[0], _ASSIGN_BLOCK):
        p = points[s:s + _ASSIGN_BLOCK]
        d = cn[None, :] - 2.0 * (p @ centroids.T)
        if t == 1:
            ids[s:s + p.shape[0], 0] = np.argmin(d, axis=1)
        else:
            part = np.argpartition(d, t - 1, axis=1)[:, :t]
            order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1)
            ids[s:s + p.shape[0]] = np.take_along_axis(part, order, axis=1)
        best[s:s + p.shape[0]] = d[np.arange(p.shape[0]), ids[s:s + p.shape[0], 0]] \
            + np.einsum("ij,ij->i", p, p)
    return ids, best


def _probes(votes: np.ndarray, lists: np.ndarray, n_lists: int, n_probe: int) -> list[np.ndarray]:
    """Per cell: its own id first, then the cells its members voted for most (n_probe in all)."""
    out = []
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(n_lists + 1))
    for c in range(n_lists):
        v = votes[order[bounds[c]:bounds[c + 1]]].ravel()
        counts = np.bincount(v, minlength=n_lists)
        counts[c] = -1  # itself, placed first below
        ranked = np.argsort(-counts, kind="stable")[:n_probe - 1]
        out.append(np.concatenate([[c], ranked[counts[ranked] > 0]]))
    return out


def _sorted_copy(x: Any, order: np.ndarray, memmap_dir: Any) -> np.ndarray:
    """``x[order]`` as float32, in memory or (when large) in an unlinked temporary memmap."""
    n, d = order.size, x.shape[1]
    if n * d * 4 > _MEMMAP_BYTES:
        folder = tempfile.mkdtemp(prefix="pyspec-ivf-", dir=memmap_dir)
        path = os.path.join(folder, "sorted.npy")
        out = np.lib.format.open_memmap(path, "w+", np.float32, (n, d))
        os.unlink(path)
        os.rmdir(folder)
    else:
        out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):  # blocks in sorted order of the source: page-friendly reads
        idx = order[s:s + 65536]
        srt = np.argsort(idx)
        block = np.empty((idx.size, d), dtype=np.float32)
        block[srt] = np.asarray(x[idx[srt]], dtype=np.float32)
        out[s:s + idx.size] = block
    return out


def ivf_neighbours(x: Any, coarse: np.ndarray, k: int, ids: np.ndarray, dist: np.ndarray, *,
                   list_size: int = LIST_SIZE, n_probe: int = N_PROBE, n_train: int = 20_000,
                   random_state: int = 0, memmap_dir: Any = None) -> None:
    """Fill ``ids``/``dist`` (n, k) with approximate k nearest other rows of ``x``.

    ``coarse``: the rows in the coarse (principal-component) space, where the
    partition and the probes are chosen; distances are exact squared L2 on
    ``x``. Rows are ordered by distance; -1 / inf where a row's probed
    cells hold fewer than k others.
    """
    from threadpoolctl import threadpool_limits

    n = x.shape[0]
    if isinstance(list_size, bool) or not isinstance(list_size, (int, np.integer)) \
            or list_size < 1:
        raise ValueError(f"list_size must be an integer >= 1, got {list_size!r}")
    if isinstance(n_probe, bool) or not isinstance(n_probe, (int, np.integer)) or n_probe < 1:
        raise ValueError(f"n_probe must be an integer >= 1, got {n_probe!r}")
    rng = np.random.default_rng(random_state)
    n_lists = int(max(1, min(n // max(1, list_size), n)))
    n_probe = int(min(n_probe, n_lists))
    # at least ~40 training points per cell, so no cell is fitted on a handful
    m = int(min(n, max(n_train, 40 * n_lists)))
    sample = np.sort(rng.choice(n, size=m, replace=False))
    with threadpool_limits(1, user_api="blas"):  # see _exact_all: BLAS threads spin
        centroids = _kmeans(coarse[sample], n_lists, rng)
        votes = _nearest(coarse, centroids, n_probe)[0]
        lists = votes[:, 0]
        probes = _probes(votes, lists, n_lists, n_probe)
        del votes
        order = np.argsort(lists, kind="stable")
        bounds = np.searchsorted(lists[order], np.arange(n_lists + 1))
        xs = _sorted_copy(x, order, memmap_dir)
        norms = _row_norms(xs)
        # running top-k in sorted order (ids are sorted positions until the end)
        best_i = np.full((n, k), -1, dtype=np.int64)
        best_d = np.full((n, k), np.inf, dtype=np.float32)
        probe_sets = [set(p.tolist()) for p in probes]
        for c in range(n_lists):
            s, e = int(bounds[c]), int(bounds[c + 1])
            for p in probes[c].tolist():
                a, b = int(bounds[p]), int(bounds[p + 1])
                mutual = p != c and c in probe_sets[p]
                if mutual and p < c:  # the tile was done from cell p, for both
                    continue
                # in tiles of at most _TILE x _TILE: k-means cells are not equal,
                # and one crowded cell must not need a gigabyte of dot products
                for r0 in range(s, e, _TILE):
                    q = np.asarray(xs[r0:min(e, r0 + _TILE)])
                    for c0 in range(a, b, _TILE):
                        dots = q @ np.asarray(xs[c0:min(b, c0 + _TILE)]).T
                        # the distance matrix is symmetric: a mutual tile serves cell p too
                        _fold_tile(dots, norms, r0, c0, mutual, best_i, best_d)
    best_d += norms[:, None]
    found = np.where(best_i >= 0, order[np.maximum(best_i, 0)], -1)
    ids[order] = found
    dist[order] = np.where(best_i >= 0, np.maximum(best_d, 0.0), np.inf)
