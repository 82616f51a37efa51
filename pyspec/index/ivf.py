"""Approximate Hamming k-NN through an inverted file: :class:`IVFHammingIndex`.

A linear scan reads every code; an inverted file (IVF) reads a few lists.
A coarse quantiser (binary k-majority on a sample of the codes, see
:mod:`pyspec.index._ivf_train`) cuts Hamming space into ``n_lists`` cells;
each code is stored in the list of its nearest centroid, the lists one
after the other (CSR: ``codes[offsets[l]:offsets[l + 1]]`` is list ``l``).
A query ranks the centroids by Hamming distance and scans the ``nprobe``
nearest lists with the compiled Hamming block kernels (``_core.ivf_hamming_knn``,
GIL released), keeping the top k ordered by (distance, id).

The result is the exact top k of the probed lists, so it differs from the
scan's only by neighbours stored in lists that were not probed; with
``nprobe = n_lists`` it is the scan's result, distances and ids alike.
By default ``nprobe`` is chosen per index as the smallest that reaches a
recall of 0.95 of the exact ranking (:meth:`IVFHammingIndex.tune`).

Exact search (``search(q, k, exact=True)``): the rows of each list are
kept sorted by their distance to the list's centroid, with ring offsets
(:mod:`pyspec.index._ivf_rings`); by the triangle inequality a code x of
list c is within tau of q only if ``|d(q, c) - d(c, x)| <= tau``, so the
compiled kernel (``_core.ivf_hamming_knn_exact``) visits the lists nearest
first and reads of each only that band of rows under the current k-th
distance. The result is the scan's, ids and distances, ties included.

Files: pyspec's checked container format, kind ``b"IV"``.

Threads: any number of threads may search while one thread adds or
removes. Writers hold a lock and publish the new arrays in one attribute
store; a search works on the arrays published when it started.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from pyspec import _core
from pyspec._bits import n_words as _n_words
from pyspec._fileformat import read_container, write_container
from pyspec._validation import (
    as_float_matrix,
    as_ids,
    check_k,
    check_num_threads,
    check_result_size,
    describe,
    ids_to_remove,
)
from pyspec.errors import IndexFormatError
from pyspec.index import _ivf_rings, _ivf_train
from pyspec.index._codes import check_codes as _check_codes
from pyspec.index._codes import check_n_bits as _check_n_bits
from pyspec.index._codes import lazy_write_lock
from pyspec.index._codes import pad_mask as _pad_mask
from pyspec.index._result import SearchResult

__all__ = ["IVFHammingIndex"]

_KIND = b"IV"
#: layout version written by :meth:`IVFHammingIndex.save`: 2 = rows sorted by distance
#: to their centroid inside each list, with ring offsets (1, unversioned: lists only)
FORMAT_VERSION = 2
#: recall of the exact k=10 ranking the default ``nprobe`` is tuned to reach
DEFAULT_RECALL = 0.95
#: stored codes used as held-out queries by the default tuning
TUNE_QUERIES = 256
# queries re-ranked together (bounds the gathered candidate vectors)
_RERANK_BLOCK = 64


def _check_count(name: str, value: object, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_recall(recall: object) -> float:
    if isinstance(recall, bool) or not isinstance(recall, numbers.Real) \
            or not 0.0 < float(recall) <= 1.0:
        raise ValueError(f"recall must be a number in (0, 1], got {recall!r}")
    return float(recall)


def _rerank(candidates: np.ndarray, qv: np.ndarray, vectors: np.ndarray,
            k: int) -> SearchResult:
    """Best ``k`` of each row of ``candidates`` by exact squared L2 (float32), ordered
    by (distance, id); missing candidates (-1) and absent rows are padding."""
    if candidates.size and int(candidates.max()) >= vectors.shape[0]:
        raise ValueError(f"vectors has {vectors.shape[0]} rows but the index holds id "
                         f"{int(candidates.max())}; pass the vector of each id at row id")
    nq = candidates.shape[0]
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_dist = np.full((nq, k), np.inf, dtype=np.float32)
    for s in range(0, nq, _RERANK_BLOCK):
        cand = candidates[s:s + _RERANK_BLOCK]
        rows = np.maximum(cand, 0).ravel()
        srt = np.argsort(rows, kind="stable")  # sorted reads are kinder to a memory map
        x = np.empty((rows.size, vectors.shape[1]), dtype=np.float64)
        x[srt] = vectors[rows[srt]]
        diff = x.reshape(cand.shape + (-1,)) - qv[s:s + _RERANK_BLOCK, None, :]
        dist = np.einsum("qrd,qrd->qr", diff, diff).astype(np.float32)
        dist[cand < 0] = np.inf
        order = np.lexsort((cand, dist), axis=1)[:, :k]
        kept = min(k, cand.shape[1])
        out_ids[s:s + len(cand), :kept] = np.take_along_axis(cand, order, axis=1)
        out_dist[s:s + len(cand), :kept] = np.take_along_axis(dist, order, axis=1)
    out_ids[~np.isfinite(out_dist)] = -1
    return SearchResult(ids=out_ids, distances=out_dist)


def auto_nprobe(index: Any, num_threads: int | None,
                default: Callable[[int], int] | None) -> int:
    """``effective_nprobe`` of an IVF index: its ``nprobe``, else the tuned default,
    tuned again (``default(threads)``, under the write lock) when never tuned or once the
    index has doubled since; 1 when it is empty or ``default`` is None (nothing to tune on).
    """
    if index.nprobe is not None:
        return index.nprobe
    tuned, n = index._tuned, len(index)
    if tuned is not None and n < 2 * max(tuned[1], 1):
        return tuned[0]
    if n == 0 or default is None:
        return 1
    with index._write_lock:
        if index._tuned is None or len(index) >= 2 * max(index._tuned[1], 1):
            index._tuned = (default(check_num_threads(num_threads)), len(index))
        return index._tuned[0]


class IVFHammingIndex:
    """Approximate k-NN over binary codes: inverted lists under a Hamming coarse quantiser.

    Parameters
    ----------
    n_bits : int, default 256
        Code length in bits (codes are uint64 (n, ceil(n_bits / 64)), as for
        :class:`~pyspec.HammingIndex`).
    n_lists : int or None
        Inverted lists (coarse cells). None: about ``4 sqrt(n)`` for the
        ``n`` codes the quantiser is trained on (``train``, or the first
        ``add``). Pass it when the index will grow far beyond those codes.
    nprobe : int or None
        Lists scanned per query. None: the smallest count reaching recall
        0.95 of the exact k=10 ranking on 256 stored codes used as
        held-out queries (each leaves itself out), chosen at the first
        search and again whenever the index has doubled since (see
        :meth:`tune`). ``nprobe >= n_lists`` scans every list: exact.
    n_train : int or None
        Codes sampled to train the quantiser; None: 40 per list, at most
        1,000,000.
    random_state : int, default 0
        Seed of the training sample, the initial centroids and the tuning
        queries.

    Attributes
    ----------
    centroids : ndarray (n_lists, n_words), uint64; empty before training.
    list_sizes : ndarray (n_lists,), int64, codes per list.

    Notes
    -----
    ``add`` re-packs the lists (cost linear in the index size): add in
    large batches. Results read by name: faiss's ``D, I = index.search(q, k)``
    is ``r.distances, r.ids``.

    Examples
    --------
    >>> import numpy as np, pyspec
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 2**63, size=(2000, 4), dtype=np.uint64)
    >>> index = pyspec.IVFHammingIndex(256, n_lists=16, nprobe=16)
    >>> index.add(codes)
    >>> res = index.search(codes[:2], k=3)
    >>> res.ids[:, 0].tolist(), res.distances[:, 0].tolist()
    ([0, 1], [0, 0])
    """

    def __init__(self, n_bits: int = 256, n_lists: int | None = None, nprobe: int | None = None,
                 n_train: int | None = None, random_state: int = 0) -> None:
        self.n_bits = _check_n_bits(n_bits)
        self.n_words = _n_words(self.n_bits)
        self.n_lists = _check_count("n_lists", n_lists)
        self.nprobe = _check_count("nprobe", nprobe)
        self.n_train = _check_count("n_train", n_train)
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
            raise TypeError(f"random_state must be an int, got {type(random_state).__name__}")
        self.random_state = int(random_state)
        self._tuned: tuple[int, int] | None = None  # (nprobe, index size when tuned)
        self._set(np.empty((0, self.n_words), np.uint64), np.empty((0, self.n_words), np.uint64),
                  np.empty(0, np.int64), np.zeros(1, np.int64))

    # -- state ---------------------------------------------------------------
    def _set(self, centroids: np.ndarray, codes: np.ndarray, ids: np.ndarray,
             rings: np.ndarray) -> None:
        """Publish a new state in one attribute store (readers take ``_view`` once).

        ``rings``: the ring offsets (:mod:`pyspec.index._ivf_rings`); the list
        offsets are every ``n_bits + 1``-th of them.
        """
        radii = _ivf_rings.list_radii(rings, centroids.shape[0], self.n_bits)
        self._view = (centroids, codes, ids, rings[::self.n_bits + 1].copy(), rings,
                      (radii, *_ivf_rings.compact_rings(rings, radii, self.n_bits)))

    # the same lazily created lock as HammingIndex (unpickled/loaded indexes get one too)
    _write_lock = lazy_write_lock

    def __len__(self) -> int:
        return len(self._view[2])

    def __repr__(self) -> str:
        lists = self._view[0].shape[0] if self.is_trained else self.n_lists
        return (f"IVFHammingIndex(n_bits={self.n_bits}, n_lists={lists}, "
                f"nprobe={self.nprobe}) with {len(self)} codes")

    @property
    def is_trained(self) -> bool:
        return self._view[0].shape[0] > 0

    @property
    def centroids(self) -> np.ndarray:
        return self._readonly(self._view[0])

    @property
    def codes(self) -> np.ndarray:
        """Stored codes grouped by list (not in insertion order), read-only."""
        return self._readonly(self._view[1])

    @property
    def ids(self) -> np.ndarray:
        """Ids of :attr:`codes`, row for row, read-only."""
        return self._readonly(self._view[2])

    @property
    def list_sizes(self) -> np.ndarray:
        return np.diff(self._view[3])

    @property
    def rings(self) -> np.ndarray:
        """Ring offsets, int64 (n_lists * (n_bits + 1) + 1,): entry ``l * (n_bits + 1) + r``
        is the first row of list ``l`` (in :attr:`codes`) at distance ``>= r`` from
        its centroid; read-only."""
        return self._readonly(self._view[4])

    @property
    def pad_distance(self) -> int:
        """Distance reported for missing neighbours (``n_bits + 1``)."""
        return self.n_bits + 1

    @staticmethod
    def _readonly(a: np.ndarray) -> np.ndarray:
        view = a[:]
        view.flags.writeable = False
        return view

    # -- training and adding -------------------------------------------------
    def train(self, codes: np.ndarray, num_threads: int | None = None) -> IVFHammingIndex:
        """Fit the coarse quantiser on ``codes`` (a sample is drawn when there are many).

        Only an empty index can be (re)trained. Returns ``self``.
        """
        codes = _check_codes(codes, self.n_bits, "codes")
        threads = check_num_threads(num_threads)
        with self._write_lock:
            self._train_locked(codes, threads)
        return self

    def _train_locked(self, codes: np.ndarray, threads: int) -> None:
        if len(self):
            raise ValueError("train: the index already holds codes; train a new index")
        if codes.shape[0] == 0:
            raise ValueError("train: need at least one code")
        n = codes.shape[0]
        n_lists = self.n_lists or _ivf_train.default_n_lists(n)
        n_lists = min(n_lists, n)
        m = self.n_train or min(_ivf_train.TRAIN_MAX, _ivf_train.TRAIN_PER_LIST * n_lists)
        rng = np.random.default_rng(self.random_state)
        pick = np.sort(rng.choice(n, size=min(n, max(m, n_lists)), replace=False))
        sample = np.ascontiguousarray(codes[pick])
        centroids = _ivf_train.kmajority(sample, n_lists, self.n_bits, rng, threads)
        self._tuned = None
        self._set(centroids, self._view[1], self._view[2],
                  np.zeros(centroids.shape[0] * (self.n_bits + 1) + 1, np.int64))

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None,
            num_threads: int | None = None) -> None:
        """Store codes in the lists of their nearest centroids.

        Trains the quantiser on these codes first if :meth:`train` was not
        called. ``ids`` as for :meth:`pyspec.HammingIndex.add` (default
        ``len(self) .. len(self) + n - 1``). Costs one assignment scan
        against the centroids plus a re-pack of all lists (a stable sort of
        every row by list and distance to its centroid).
        """
        codes = _check_codes(codes, self.n_bits, "codes")
        threads = check_num_threads(num_threads)
        with self._write_lock:
            new_ids = as_ids(ids, codes.shape[0], start=len(self))
            if codes.shape[0] == 0:
                return
            if not self.is_trained:
                self._train_locked(codes, threads)
            centroids, old_codes, old_ids, _, rings, _ = self._view
            lists = _ivf_train.nearest_lists(codes, centroids, 1, threads)[:, 0]
            keys = lists * (self.n_bits + 1) + _ivf_rings.row_distances(codes, centroids, lists)
            parts = [(old_codes, old_ids, _ivf_rings.rows_keys(rings)), (codes, new_ids, keys)]
            self._set(centroids, *_ivf_rings.ring_layout(parts, centroids.shape[0],
                                                         self.n_bits))

    def remove_ids(self, ids: object) -> int:
        """Remove every stored code whose id is in ``ids``; return how many were removed.

        The others keep their ids and lists; the quantiser is unchanged.
        """
        drop = ids_to_remove(ids)
        with self._write_lock:
            centroids, codes, stored, _, rings, _ = self._view
            keep = ~np.isin(stored, drop)
            removed = int(keep.size - keep.sum())
            if removed:
                keys = _ivf_rings.rows_keys(rings)[keep]
                self._set(centroids, np.ascontiguousarray(codes[keep]),
                          np.ascontiguousarray(stored[keep]),
                          _ivf_rings.rings_from_keys(keys, centroids.shape[0], self.n_bits))
        return removed

    # -- search --------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, num_threads: int | None = None,
               nprobe: int | None = None, rerank: int | None = None,
               vectors: np.ndarray | None = None,
               query_vectors: np.ndarray | None = None, exact: bool = False) -> SearchResult:
        """The ``k`` nearest codes of each query among its ``nprobe`` nearest lists,
        or among all codes with ``exact=True``.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, n_words) or (n_words,), uint64
        k : int >= 0
            Rows with fewer than ``k`` codes in their probed lists are padded
            with id -1 and distance ``n_bits + 1``.
        num_threads : int or None
            Threads (None = OpenMP default).
        nprobe : int or None
            Lists to scan for this call; None: the index's ``nprobe`` (or
            the tuned default, see the class notes).
        rerank : int or None
            When given (>= k): the ``rerank`` nearest codes are re-scored by
            exact squared L2 between ``query_vectors`` and ``vectors`` (e.g.
            the spectra or PIL embeddings the codes were made from) and the
            best ``k`` of them returned.
        vectors : ndarray (n_rows, d), float, or a memory map; row = id
            The float vector of each stored id (``vectors[id]``); only the
            candidates' rows are read. Needed with ``rerank``.
        query_vectors : array-like (n_queries, d), float
            The queries' float vectors. Needed with ``rerank``.
        exact : bool, default False
            Return exactly what a linear scan (:class:`~pyspec.HammingIndex`)
            returns, ids and distances, ties included, while reading only
            the codes the triangle inequality cannot rule out: lists are
            visited nearest centroid first, and in list ``l`` only the rows
            whose distance to the centroid is within the current k-th
            distance of the query's distance to it (see
            :mod:`pyspec.index._ivf_rings`). ``nprobe`` must then be None.
            How much it skips depends on the codes: clustered codes of
            spectra leave a few percent of the rows to read, uniform random
            codes nearly all. Each list in reach costs a few random reads,
            so fewer, larger lists suit it: at 10M codes of simulated
            spectra ``n_lists = sqrt(n)`` answered ~2-2.5x faster than the
            default ``4 sqrt(n)`` (bench/RESULTS.md, issue 21 exact IVF).

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``distances`` (n_queries, k), each row ordered
            by (distance, id): int32 Hamming distances, or float32 squared
            L2 with ``rerank`` (padding: id -1, distance ``n_bits + 1`` or
            +inf).
        """
        q = _check_codes(queries, self.n_bits, "queries", allow_1d=True)
        k = check_k(k)
        threads = check_num_threads(num_threads)
        probe_count = _check_count("nprobe", nprobe)
        if not isinstance(exact, (bool, np.bool_)):
            raise TypeError(f"exact must be a bool, got {type(exact).__name__}")
        if exact and probe_count is not None:
            raise ValueError("exact=True searches every list that may hold a neighbour; "
                             "do not pass nprobe with it")
        check_result_size(q.shape[0], k, len(self))
        if rerank is not None or vectors is not None or query_vectors is not None:
            qv = self._check_rerank(q, k, rerank, vectors, query_vectors)
            short = self.search(q, rerank, num_threads, nprobe, exact=exact)
            return _rerank(short.ids, qv, vectors, k)
        centroids, codes, ids, offsets, _, compact = self._view
        if len(ids) == 0 or k == 0 or q.shape[0] == 0:
            return SearchResult(ids=np.full((q.shape[0], k), -1, dtype=np.int64),
                                distances=np.full((q.shape[0], k), self.pad_distance,
                                                  dtype=np.int32))
        if exact:
            out_ids, dist = _core.ivf_hamming_knn_exact(q, centroids, codes, ids, offsets,
                                                        *compact, self.n_bits, k,
                                                        self.pad_distance, threads)
            return SearchResult(ids=out_ids, distances=dist)
        if probe_count is None:
            probe_count = self.effective_nprobe(num_threads)
        probes = _ivf_train.nearest_lists(q, centroids, min(probe_count, centroids.shape[0]),
                                          threads)
        out_ids, dist = _core.ivf_hamming_knn(q, codes, ids, offsets, probes, k,
                                              self.pad_distance, threads)
        return SearchResult(ids=out_ids, distances=dist)

    @staticmethod
    def _check_rerank(q: np.ndarray, k: int, rerank: object, vectors: object,
                      query_vectors: object) -> np.ndarray:
        if rerank is None or vectors is None or query_vectors is None:
            raise ValueError("re-ranking needs rerank=, vectors= (row = id) and "
                             "query_vectors= together")
        if check_k(rerank) < k:
            raise ValueError(f"rerank ({rerank}) must be >= k ({k})")
        if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 \
                or vectors.dtype.kind != "f":
            raise TypeError(f"vectors: expected a 2-D float array or memory map (row = id), "
                            f"got {describe(vectors)}")
        qv = as_float_matrix(query_vectors, "query_vectors", n_features=vectors.shape[1])
        if qv.shape[0] != q.shape[0]:
            raise ValueError(f"query_vectors: expected {q.shape[0]} rows (one per query), "
                             f"got {qv.shape[0]}")
        return qv

    def effective_nprobe(self, num_threads: int | None = None) -> int:
        """The ``nprobe`` a search without one uses: the index's, or the tuned
        default (tuned now if never tuned or if the index has doubled since)."""
        return auto_nprobe(self, num_threads, lambda threads: self._tune_curve(
            DEFAULT_RECALL, 10, None, TUNE_QUERIES, threads)[0])

    def tune(self, recall: float = DEFAULT_RECALL, k: int = 10, queries: np.ndarray | None = None,
             n_queries: int = TUNE_QUERIES, num_threads: int | None = None) -> int:
        """Set ``nprobe`` to the smallest count reaching ``recall`` of the exact ranking.

        Parameters
        ----------
        recall : float in (0, 1]
            Target mean recall@k (share of the exact k nearest found).
        k : int
            Neighbours per query the recall is measured on.
        queries : ndarray of codes, optional
            Held-out queries. Default: ``n_queries`` stored codes, each
            searched with itself left out of its exact neighbours.
        n_queries : int
            Stored codes to use when ``queries`` is not given.
        num_threads : int or None

        Returns
        -------
        int
            The chosen ``nprobe`` (also stored in ``self.nprobe``). The
            recall of every probe count is in :attr:`recall_curve_`
            (entry ``p - 1`` for ``nprobe = p``).

        Notes
        -----
        Cost: one exact scan of the index for the held-out queries and one
        ranking of all lists; no IVF search per candidate count (a
        neighbour is found exactly when its list is among the probed).
        """
        recall = _check_recall(recall)
        k = check_k(k)
        n_queries = _check_count("n_queries", n_queries, allow_none=False)
        threads = check_num_threads(num_threads)
        if queries is not None:
            queries = _check_codes(queries, self.n_bits, "queries", allow_1d=True)
        if not len(self):
            raise ValueError("tune: the index is empty; add codes first")
        with self._write_lock:
            chosen, curve = self._tune_curve(recall, k, queries, n_queries, threads)
            self.nprobe = chosen
            self.recall_curve_ = curve
        return chosen

    def _tune_curve(self, recall: float, k: int, queries: np.ndarray | None, n_queries: int,
                    threads: int) -> tuple[int, np.ndarray]:
        centroids, codes, ids, offsets, *_ = self._view
        n, n_lists = codes.shape[0], centroids.shape[0]
        # exact neighbours ranked as searches rank them, by (distance, id)
        if queries is None:
            rng = np.random.default_rng(self.random_state + 1)
            pick = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
            queries = np.ascontiguousarray(codes[pick])
            found = _core.hamming_knn(queries, codes, ids, min(k + 1, n), self.pad_distance,
                                      threads)[0]
            own = found == ids[pick][:, None]
            own[~own.any(axis=1), -1] = True  # self not among the k+1 (many duplicates)
            found = found[~own].reshape(len(pick), -1)
        else:
            found = _core.hamming_knn(queries, codes, ids, min(k, n), self.pad_distance,
                                      threads)[0]
        valid = found >= 0
        by_id = np.argsort(ids, kind="stable")
        rows = by_id[np.searchsorted(ids, np.maximum(found, 0), sorter=by_id)]
        lists = np.searchsorted(offsets, rows, side="right") - 1
        order = _ivf_train.nearest_lists(queries, centroids, n_lists, threads)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n_lists, dtype=np.int64)[None, :], axis=1)
        curve = _ivf_train.recall_by_nprobe(rank, lists, valid)
        reached = np.flatnonzero(curve >= recall - 1e-12)
        chosen = int(reached[0]) + 1 if reached.size else n_lists
        return chosen, curve

    # -- memory ----------------------------------------------------------------
    def memory_usage(self) -> int:
        """Bytes of the arrays the index holds: codes, ids, list and ring offsets,
        list radii, centroids (a memory map's size for a loaded ``mmap=True`` index)."""
        *arrays, compact = self._view
        return int(sum(a.nbytes for a in (*arrays, *compact)))

    @staticmethod
    def estimate_memory(n: int, n_bits: int = 256, n_lists: int | None = None) -> int:
        """Bytes :meth:`memory_usage` reports for ``n`` codes, at most: ``n * (8 *
        n_words + 8)`` for codes and ids, ``8 * (n_lists + 1)`` list offsets, ``8 *
        (n_lists * (n_bits + 1) + 1)`` ring offsets, ``8 * n_words * n_lists``
        centroids, and the search's compact copy of the rings: ``16 * n_lists + 8``
        bytes of radii and bases plus 4 bytes per occupied ring and list (counted
        here as all ``n_bits + 2``; ~60 on codes of spectra). ``n_lists`` default
        ``4 sqrt(n)``."""
        n_bits = _check_n_bits(n_bits)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        lists = _check_count("n_lists", n_lists) or _ivf_train.default_n_lists(int(n))
        lists = min(lists, max(int(n), 1))
        nw = _n_words(n_bits)
        return (int(n) * (8 * nw + 8) + 8 * (lists + 1) + 8 * (lists * (n_bits + 1) + 1)
                + 8 * nw * lists + 16 * lists + 8 + 4 * lists * (n_bits + 2))

    # -- persistence -------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"n_bits": self.n_bits, "n_lists": self.n_lists, "nprobe": self.nprobe,
                "n_train": self.n_train, "random_state": self.random_state,
                "n_codes": len(self), "tuned": None if self._tuned is None else list(self._tuned),
                "layout_version": FORMAT_VERSION}

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(("centroids", "codes", "ids", "offsets", "rings"), self._view[:5],
                        strict=True))

    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically to ``path`` (pyspec container, kind ``IV``,
        layout version 2: lists sorted by distance to their centroid, ring offsets)."""
        write_container(path, _KIND, self._arrays(), self._meta())

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> IVFHammingIndex:
        """Read an index written by :meth:`save` (``mmap=True`` maps codes and ids).

        Files of layout version 1 (before exact search: no ring offsets) are
        re-sorted into the ring layout in memory as they load (``mmap`` is
        then moot: the codes are copied); saving writes version 2. Loading
        checks every row's distance to its centroid against the ring offsets
        (one pass over the codes).

        Raises
        ------
        pyspec.IndexFormatError
            Truncated, corrupted or foreign file, or inconsistent contents.
        """
        arrays, meta = read_container(path, _KIND, mmap=mmap)
        return cls._from_parts(arrays, meta, str(path))

    @classmethod
    def _from_parts(cls, arrays: dict[str, np.ndarray], meta: Any,
                    source: str) -> IVFHammingIndex:
        def bad(msg: str) -> IndexFormatError:
            return IndexFormatError(f"{source}: IVF index {msg}")

        if not isinstance(meta, dict):
            raise bad("metadata is not a mapping")
        try:
            index = cls(meta.get("n_bits"), n_lists=meta.get("n_lists"),
                        nprobe=meta.get("nprobe"), n_train=meta.get("n_train"),
                        random_state=meta.get("random_state", 0))
        except (TypeError, ValueError) as exc:
            raise bad(f"has invalid parameters ({exc})") from None
        version = meta.get("layout_version", 1)
        if version not in (1, FORMAT_VERSION):
            raise bad(f"has layout version {version!r}; this pyspec reads 1 and "
                      f"{FORMAT_VERSION} (a newer pyspec wrote it?)")
        parts = [arrays.get(name) for name in ("centroids", "codes", "ids", "offsets")]
        if any(a is None for a in parts):
            raise bad("lacks one of the arrays centroids, codes, ids, offsets")
        centroids, codes, ids, offsets = parts
        nw = index.n_words
        for name, a in (("centroids", centroids), ("codes", codes)):
            if a.dtype != np.uint64 or a.ndim != 2 or a.shape[1] != nw:
                raise bad(f"{name} must be uint64 (n, {nw}), found {describe(a)}")
        n, n_lists = codes.shape[0], centroids.shape[0]
        if ids.dtype != np.int64 or ids.shape != (n,):
            raise bad(f"ids must be int64 ({n},), found {describe(ids)}")
        if offsets.dtype != np.int64 or offsets.shape != (n_lists + 1,):
            raise bad(f"offsets must be int64 ({n_lists + 1},), found {describe(offsets)}")
        if offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) < 0).any():
            raise bad("list offsets are not a non-decreasing run from 0 to the code count")
        if meta.get("n_codes") != n:
            raise bad("code count in metadata does not match the arrays")
        if n_lists == 0 and n:
            raise bad("holds codes but no centroids")
        if n and int(ids.min()) < 0:
            raise bad("has negative ids (corrupted file)")
        mask = np.uint64(_pad_mask(index.n_bits))
        for name, a in (("centroids", centroids), ("codes", codes)):
            if mask and a.shape[0] and (a[:, -1] & mask).any():
                raise bad(f"{name} have bits set above bit {index.n_bits - 1}")
        tuned = meta.get("tuned")
        if tuned is not None:
            if (not isinstance(tuned, list) or len(tuned) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in tuned)
                    or not 1 <= tuned[0] <= max(n_lists, 1) or not 0 <= tuned[1] <= n):
                raise bad(f"has an invalid tuned nprobe {tuned!r}")
            index._tuned = (tuned[0], tuned[1])
        if version == 1:  # lists in insertion order: sort them into rings
            lists = np.repeat(np.arange(n_lists, dtype=np.int64), np.diff(offsets))
            keys = lists * (index.n_bits + 1) + _ivf_rings.row_distances(codes, centroids, lists)
            index._set(centroids, *_ivf_rings.ring_layout([(codes, ids, keys)], n_lists,
                                                          index.n_bits))
            return index
        rings = arrays.get("rings")
        problem = _ivf_rings.ring_problem(rings, offsets, codes, centroids, index.n_bits)
        if problem is not None:
            raise bad(f"ring offsets {problem}")
        index._set(centroids, codes, ids, rings)
        return index

    def __getstate__(self) -> dict[str, Any]:
        return {"meta": self._meta(),
                "arrays": {name: np.array(a) for name, a in self._arrays().items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = type(self)._from_parts(state["arrays"], state["meta"], "pickle")
        self.__dict__.update(other.__dict__)
