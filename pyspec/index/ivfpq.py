"""Approximate L2 k-NN over PQ codes in inverted lists: :class:`IVFPQIndex`.

A :class:`~pyspec.PQIndex` scans every code; an inverted file reads a few
lists. A coarse quantiser (k-means on the float vectors, ``n_lists``
centroids) cuts the space into cells; each vector is stored in the list of
its nearest centroid as the PQ code of its *residual* ``x - c_list`` (by
default) or of ``x`` itself. Residuals are what make IVFPQ accurate: the
codebooks then describe the small spread inside a cell rather than the
whole data, so the same code size quantises far more finely.

A query ranks the centroids by squared L2, scans its ``nprobe`` nearest
lists with the compiled ADC kernels (``_core.ivfpq_search``, GIL released)
and keeps the top k ordered by (distance, id). With residual codes the
distance to code ``r`` of list ``c`` is computed from one table per query,

    ||q - c - r||^2 = ||q - r||^2 + 2 <c, r> + (||q - c||^2 - ||q||^2),

the ADC sum of the query's own table, a term per code (``2 <c, r>``, stored
at add time, 4 bytes per code) and a term per probed list (from the coarse
distances the probe ranking computed anyway). Per-list tables (the table of
``q - c`` for every probed list) would cost n_centroids x n_features
multiply-adds per list -- more than scanning a list of a few hundred codes.

The coarse quantiser works on the vectors the PQ encodes (the prepared
spectra, or e.g. a PCA embedding of them when that is what is added): the
residual must live in the PQ's space, and k-means on the spectra themselves
needs no second model at query time.

The result is the exact top k of the probed lists, so with ``nprobe =
n_lists`` it is the exhaustive ADC ranking; without residuals that is
:class:`~pyspec.PQIndex`'s result, ids and distances alike. The default
``nprobe`` is the smallest reaching recall 0.95 of that exhaustive ranking
(:meth:`IVFPQIndex.tune`).

Files: pyspec's checked container format, kind ``b"IQ"``.

Threads: any number of threads may search while one thread adds or
removes. Writers hold a lock and publish the new arrays in one attribute
store; a search works on the arrays published when it started.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from pyspec import _core
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
from pyspec.errors import IndexFormatError, NotFittedError
from pyspec.index import _ivf_train
from pyspec.index._result import SearchResult
from pyspec.index.ivf import (
    DEFAULT_RECALL,
    IVFHammingIndex,
    _check_count,
    _check_recall,
    _rerank,
    auto_nprobe,
)
from pyspec.models.pq import ProductQuantizer

__all__ = ["IVFPQIndex"]

_KIND = b"IQ"
#: float vectors kept from training as held-out queries of the default tuning
TUNE_QUERIES = 256
#: training vectors per list for the coarse k-means, and their cap
TRAIN_PER_LIST = 40
TRAIN_MAX = 500_000
#: Lloyd iterations of the coarse k-means (random init, faiss's choice: k-means++
#: seeding of thousands of centroids costs more than the iterations)
COARSE_ITER = 10
_QUERY_BATCH = 1024  # queries per kernel call: bounds the ADC tables' memory
_ADD_BLOCK = 1 << 16  # vectors assigned and encoded at a time (bounds temporaries)


def _make_pq(pq_or_params: object) -> ProductQuantizer:
    if isinstance(pq_or_params, ProductQuantizer):
        return pq_or_params
    if isinstance(pq_or_params, dict):
        return ProductQuantizer(**pq_or_params)
    raise TypeError("pq_or_params must be a ProductQuantizer or a dict of its parameters, got "
                    f"{type(pq_or_params).__name__}")


def _public(threads: int) -> int | None:
    """The public ``num_threads`` of the kernels' thread count (0 = OpenMP default)."""
    return threads or None


def _coarse_model(centroids: np.ndarray) -> ProductQuantizer:
    """A one-segment quantiser holding ``centroids``: its compiled encode is the
    nearest-centroid assignment and its distance table the query-centroid distances."""
    coarse = ProductQuantizer(n_segments=1, n_centroids=centroids.shape[0])
    coarse._set_codebook(centroids, np.array([0, centroids.shape[1]], dtype=np.int64))
    return coarse


class IVFPQIndex:
    """Approximate squared-L2 k-NN: PQ codes in inverted lists under a k-means quantiser.

    Parameters
    ----------
    pq_or_params : ProductQuantizer or dict
        The product quantiser of the stored codes, or its parameters. An
        unfitted one is fitted by :meth:`train` (on the residuals when
        ``by_residual``); a fitted one is used as given.
    n_lists : int or None
        Coarse cells. None: about ``4 sqrt(n)`` for the ``n`` vectors the
        index is trained on (at most 65,536).
    nprobe : int or None
        Lists scanned per query. None: the smallest count reaching recall
        0.95 of the exhaustive ADC k=10 ranking on 256 held-out training
        vectors, chosen at the first search and again whenever the index
        has doubled (:meth:`tune`).
    by_residual : bool, default True
        Encode ``x - c_list`` (accurate) rather than ``x``.
    n_train : int or None
        Vectors sampled to train the coarse quantiser (and a residual PQ);
        None: 40 per list, at most 500,000.
    random_state : int, default 0

    Notes
    -----
    ``add`` re-packs the lists (linear in the index size): add in large
    batches. Results read by name: faiss's ``D, I = index.search(q, k)`` is
    ``r.distances, r.ids``.

    Examples
    --------
    >>> import numpy as np, pyspec
    >>> X = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    >>> index = pyspec.IVFPQIndex({"n_segments": 4, "n_centroids": 16}, n_lists=8, nprobe=8)
    >>> index.add(X)
    >>> res = index.search(X[:2], k=3)
    >>> res.ids.shape, res.distances.dtype
    ((2, 3), dtype('float32'))
    """

    def __init__(self, pq_or_params: object, n_lists: int | None = None,
                 nprobe: int | None = None, by_residual: bool = True,
                 n_train: int | None = None, random_state: int = 0) -> None:
        self.pq = _make_pq(pq_or_params)
        self.n_lists = _check_count("n_lists", n_lists)
        self.nprobe = _check_count("nprobe", nprobe)
        if not isinstance(by_residual, (bool, np.bool_)):
            raise TypeError(f"by_residual must be a bool, got {type(by_residual).__name__}")
        self.by_residual = bool(by_residual)
        self.n_train = _check_count("n_train", n_train)
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
            raise TypeError(f"random_state must be an int, got {type(random_state).__name__}")
        self.random_state = int(random_state)
        self._coarse: ProductQuantizer | None = None
        self._tune_x: np.ndarray | None = None
        self._tuned: tuple[int, int] | None = None  # (nprobe, index size when tuned)
        self._set(np.empty((0, 0), np.uint8), np.empty(0, np.int64), None, np.zeros(1, np.int64))

    # -- state ---------------------------------------------------------------
    def _set(self, codes: np.ndarray, ids: np.ndarray, terms: np.ndarray | None,
             offsets: np.ndarray) -> None:
        """Publish a new state in one attribute store (readers take ``_view`` once)."""
        self._view = (codes, ids, terms, offsets)

    def _set_coarse(self, coarse: ProductQuantizer) -> None:
        """Install the coarse quantiser and the list numbers 0..n_lists-1 as one-segment
        codes (with their ids) for the probe selection in :meth:`_coarse_rank`."""
        numbers = np.arange(coarse.codebook_.shape[0], dtype=np.int64)
        self._list_numbers = (np.ascontiguousarray(numbers[:, None], dtype=coarse.code_dtype),
                              numbers)
        self._coarse = coarse

    _write_lock = IVFHammingIndex._write_lock

    def __len__(self) -> int:
        return len(self._view[1])

    def __repr__(self) -> str:
        lists = self.centroids.shape[0] if self.is_trained else self.n_lists
        return (f"IVFPQIndex(n_lists={lists}, nprobe={self.nprobe}, "
                f"by_residual={self.by_residual}) with {len(self)} codes")

    @property
    def is_trained(self) -> bool:
        return self._coarse is not None

    @property
    def centroids(self) -> np.ndarray:
        """Coarse centroids, float32 (n_lists, n_features)."""
        if self._coarse is None:
            raise NotFittedError("IVFPQIndex is not trained; call train(X) or add(X)")
        return self._coarse.codebook_

    @property
    def codes(self) -> np.ndarray:
        """Stored PQ codes grouped by list (not in insertion order), read-only."""
        return IVFHammingIndex._readonly(self._view[0])

    @property
    def ids(self) -> np.ndarray:
        """Ids of :attr:`codes`, row for row, read-only."""
        return IVFHammingIndex._readonly(self._view[1])

    @property
    def list_sizes(self) -> np.ndarray:
        return np.diff(self._view[3])

    @property
    def offsets(self) -> np.ndarray:
        """List ``l`` is ``codes[offsets[l]:offsets[l + 1]]``."""
        return IVFHammingIndex._readonly(self._view[3])

    # -- training and adding -------------------------------------------------
    def train(self, X: Any, num_threads: int | None = None) -> IVFPQIndex:
        """Fit the coarse quantiser (and an unfitted PQ) on float vectors ``X``.

        A sample of 40 vectors per list is used (``n_train``); 256 other
        vectors are kept as the default tuning queries. Only an empty index
        can be (re)trained. Returns ``self``.
        """
        X = as_float_matrix(X, "X", allow_1d=False)
        threads = check_num_threads(num_threads)
        with self._write_lock:
            self._train_locked(X, threads)
        return self

    def _train_locked(self, X: np.ndarray, threads: int) -> None:
        if len(self):
            raise ValueError("train: the index already holds codes; train a new index")
        n = X.shape[0]
        fitted = hasattr(self.pq, "codebook_")
        if n == 0:
            raise ValueError("train: need at least one vector")
        if fitted and X.shape[1] != self.pq.n_features_in_:
            raise ValueError(f"X: expected {self.pq.n_features_in_} features (the quantiser's), "
                             f"got {X.shape[1]}")
        n_lists = min(self.n_lists or _ivf_train.default_n_lists(n), n, 65536)
        m = self.n_train or min(TRAIN_MAX, TRAIN_PER_LIST * n_lists)
        rng = np.random.default_rng(self.random_state)
        perm = rng.permutation(n)
        pick = np.sort(perm[:min(n, max(m, n_lists))])
        rest = perm[pick.size:]
        tune_rows = np.sort(rest[:TUNE_QUERIES] if rest.size else perm[:TUNE_QUERIES])
        sample = np.ascontiguousarray(X[pick])
        coarse = ProductQuantizer(n_segments=1, n_centroids=n_lists, init="random",
                                  n_iter=COARSE_ITER, max_points_per_centroid=None,
                                  random_state=self.random_state)
        coarse.fit(sample, num_threads=_public(threads))
        if not fitted:
            if self.by_residual:
                lists = coarse.encode(sample, num_threads=_public(threads))[:, 0]
                sample -= coarse.codebook_[lists]
            self.pq.fit(sample, num_threads=_public(threads))
        self._set_coarse(coarse)
        self._tune_x = np.ascontiguousarray(X[tune_rows])
        self._tuned = None
        self._set(np.empty((0, len(self.pq.segment_bounds_) - 1), self.pq.code_dtype),
                  np.empty(0, np.int64), np.empty(0, np.float32) if self.by_residual else None,
                  np.zeros(n_lists + 1, np.int64))

    def _encode(self, X: np.ndarray, threads: int) -> tuple:
        """(lists, codes, code terms or None) of float vectors X."""
        coarse = self._coarse
        lists = coarse.encode(X, num_threads=_public(threads))[:, 0].astype(np.int64)
        if not self.by_residual:
            return lists, self.pq.encode(X, num_threads=_public(threads)), None
        codes = np.empty((X.shape[0], len(self.pq.segment_bounds_) - 1), self.pq.code_dtype)
        terms = np.empty(X.shape[0], np.float32)
        for s in range(0, X.shape[0], _ADD_BLOCK):
            c = coarse.codebook_[lists[s:s + _ADD_BLOCK]]
            codes[s:s + len(c)] = self.pq.encode(X[s:s + _ADD_BLOCK] - c,
                                                 num_threads=_public(threads))
            r = self.pq.decode(codes[s:s + len(c)])
            terms[s:s + len(c)] = 2.0 * np.einsum("ij,ij->i", c, r, dtype=np.float64)
        return lists, codes, terms

    def add(self, X: Any, ids: Any = None, num_threads: int | None = None) -> None:
        """Encode float vectors and store them in the lists of their nearest centroids.

        Trains the index on ``X`` first if :meth:`train` was not called.
        ``ids``: non-negative ints, default ``len(self) .. len(self) + n - 1``.
        """
        n_features = self.pq.n_features_in_ if hasattr(self.pq, "codebook_") else None
        X = as_float_matrix(X, "X", n_features=n_features, allow_1d=False)
        threads = check_num_threads(num_threads)
        with self._write_lock:
            new_ids = as_ids(ids, X.shape[0], start=len(self))
            if X.shape[0] == 0:
                return
            if not self.is_trained:
                self._train_locked(X, threads)
            elif X.shape[1] != self.pq.n_features_in_:
                raise ValueError(f"X: expected {self.pq.n_features_in_} features, "
                                 f"got {X.shape[1]}")
            lists, codes, terms = self._encode(X, threads)
            old_codes, old_ids, old_terms, offsets = self._view
            n_lists = offsets.size - 1
            labels = np.concatenate([np.repeat(np.arange(n_lists), np.diff(offsets)), lists])
            order = np.argsort(labels, kind="stable")  # each list: old rows, then new in order
            merged = np.zeros(n_lists + 1, np.int64)
            np.cumsum(np.bincount(labels, minlength=n_lists), out=merged[1:])
            self._set(np.concatenate([old_codes, codes])[order],
                      np.concatenate([old_ids, new_ids])[order],
                      None if terms is None else np.concatenate([old_terms, terms])[order],
                      merged)

    def remove_ids(self, ids: object) -> int:
        """Remove every stored code whose id is in ``ids``; return how many were removed."""
        drop = ids_to_remove(ids)
        with self._write_lock:
            codes, stored, terms, offsets = self._view
            keep = ~np.isin(stored, drop)
            removed = int(keep.size - keep.sum())
            if removed:
                lists = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
                new_offsets = np.zeros(offsets.shape, np.int64)
                np.cumsum(np.bincount(lists[keep], minlength=offsets.size - 1),
                          out=new_offsets[1:])
                self._set(codes[keep], stored[keep], None if terms is None else terms[keep],
                          new_offsets)
        return removed

    # -- search --------------------------------------------------------------
    def _coarse_rank(self, Q: np.ndarray, n_probe: int,
                     threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(probes int64, squared distances float32), both (nq, n_probe): the
        ``n_probe`` nearest centroids of each query by (distance, list number)."""
        tables = self._coarse.distance_tables(Q, num_threads=_public(threads))
        # the compiled ADC top-k over one-segment "codes" 0..n_lists-1 selects the
        # nearest centroids by (distance, number): numpy's argpartition of a few
        # thousand floats cost more than the whole list scan
        codes, numbers = self._list_numbers
        return _core.pq_search_tables(tables, codes, numbers, n_probe, threads)

    def search(self, queries: Any, k: int, num_threads: int | None = None,
               nprobe: int | None = None, rerank: int | None = None,
               vectors: np.ndarray | None = None,
               query_vectors: Any = None) -> SearchResult:
        """The ``k`` nearest codes of each query among its ``nprobe`` nearest lists.

        Parameters
        ----------
        queries : array-like (n_queries, n_features) or (n_features,), float
        k : int >= 0
            Rows with fewer than ``k`` codes in their probed lists are padded
            with id -1 and distance +inf.
        num_threads : int or None
        nprobe : int or None
            Lists to scan for this call; None: the index's (or tuned) one.
        rerank : int or None
            When given (>= k): the ``rerank`` nearest codes are re-scored by
            exact squared L2 against ``vectors`` (row = id, e.g. the spectra
            or a memory map of them) and the best ``k`` returned.
        vectors : ndarray (n_rows, d), float, or a memory map
        query_vectors : array-like (n_queries, d), optional
            The queries in the space of ``vectors``; default ``queries``.

        Returns
        -------
        SearchResult
            ``ids`` int64 and ``distances`` float32 (n_queries, k), ordered
            by (distance, id): ADC squared L2 (or exact with ``rerank``).
        """
        if not self.is_trained:
            raise NotFittedError("IVFPQIndex is not trained; call train(X) or add(X)")
        Q = as_float_matrix(queries, "queries", n_features=self.pq.n_features_in_)
        k = check_k(k)
        threads = check_num_threads(num_threads)
        probe_count = _check_count("nprobe", nprobe)
        check_result_size(Q.shape[0], k, len(self))
        if rerank is not None or vectors is not None:
            qv = IVFHammingIndex._check_rerank(Q, k, rerank, vectors,
                                               Q if query_vectors is None else query_vectors)
            short = self.search(Q, rerank, num_threads, nprobe)
            return _rerank(short.ids, qv, vectors, k)
        if probe_count is None:
            probe_count = self.effective_nprobe(num_threads)
        codes, ids, terms, offsets = self._view
        out_ids = np.full((Q.shape[0], k), -1, dtype=np.int64)
        out_dist = np.full((Q.shape[0], k), np.inf, dtype=np.float32)
        if len(ids) == 0 or k == 0:
            return SearchResult(ids=out_ids, distances=out_dist)
        n_probe = min(probe_count, offsets.size - 1)
        for s in range(0, Q.shape[0], _QUERY_BATCH):
            q = Q[s:s + _QUERY_BATCH]
            probes, d2 = self._coarse_rank(q, n_probe, threads)
            bias = None
            if terms is not None:
                bias = np.ascontiguousarray(d2 - np.einsum("ij,ij->i", q, q)[:, None],
                                            dtype=np.float32)
            tables = self.pq.distance_tables(q, num_threads=_public(threads))
            out_ids[s:s + len(q)], out_dist[s:s + len(q)] = _core.ivfpq_search(
                tables, codes, ids, terms, offsets, probes, bias, k, threads)
        return SearchResult(ids=out_ids, distances=out_dist)

    # -- tuning ----------------------------------------------------------------
    def effective_nprobe(self, num_threads: int | None = None) -> int:
        """The ``nprobe`` a search without one uses: the index's, or the tuned
        default (tuned now if never tuned or if the index has doubled since), tuned on
        the held-out training vectors (1 without them)."""
        tunable = self._tune_x is not None and len(self._tune_x) > 0
        return auto_nprobe(self, num_threads, (lambda threads: self._tune_curve(
            DEFAULT_RECALL, 10, None, threads)[0]) if tunable else None)

    def tune(self, recall: float = DEFAULT_RECALL, k: int = 10, queries: Any = None,
             num_threads: int | None = None) -> int:
        """Set ``nprobe`` to the smallest count reaching ``recall`` of the exhaustive ADC ranking.

        Parameters
        ----------
        recall : float in (0, 1]
            Target mean recall@k of the ``nprobe = n_lists`` result.
        k : int
        queries : array-like of float vectors, optional
            Held-out queries. Default: the 256 training vectors kept by
            :meth:`train`; they are usually stored as well, so each is
            searched for k + 1 neighbours and its nearest (normally itself)
            left out.
        num_threads : int or None

        Returns
        -------
        int
            The chosen ``nprobe`` (also stored in ``self.nprobe``); the recall
            of every probe count is in :attr:`recall_curve_` (entry ``p - 1``
            for ``nprobe = p``).

        Notes
        -----
        Cost: one exhaustive search for the queries and one ranking of all
        lists. A code's distance does not depend on which lists are probed,
        so a neighbour of the exhaustive ranking is found with ``p`` probes
        exactly when its list is among the ``p`` nearest
        (:func:`pyspec.index._ivf_train.recall_by_nprobe`).
        """
        recall = _check_recall(recall)
        k = check_k(k)
        threads = check_num_threads(num_threads)
        if queries is not None:
            queries = as_float_matrix(queries, "queries", n_features=self.pq.n_features_in_)
        if not len(self):
            raise ValueError("tune: the index is empty; add vectors first")
        with self._write_lock:
            chosen, curve = self._tune_curve(recall, k, queries, threads)
            self.nprobe = chosen
            self.recall_curve_ = curve
        return chosen

    def _tune_curve(self, recall: float, k: int, queries: np.ndarray | None,
                    threads: int) -> tuple[int, np.ndarray]:
        codes, ids, terms, offsets = self._view
        n_lists = offsets.size - 1
        if queries is None:
            queries = self._tune_x
            found = self.search(queries, min(k + 1, len(ids)), _public(threads),
                                nprobe=n_lists).ids
            found = found[:, 1:] if found.shape[1] > k or found.shape[1] == len(ids) else found
        else:
            found = self.search(queries, min(k, len(ids)), _public(threads), nprobe=n_lists).ids
        valid = found >= 0
        by_id = np.argsort(ids, kind="stable")
        rows = by_id[np.searchsorted(ids, np.maximum(found, 0), sorter=by_id)]
        lists = np.searchsorted(offsets, rows, side="right") - 1
        order = self._coarse_rank(queries, n_lists, threads)[0]
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n_lists, dtype=np.int64)[None, :], axis=1)
        curve = _ivf_train.recall_by_nprobe(rank, lists, valid)
        reached = np.flatnonzero(curve >= recall - 1e-12)
        return (int(reached[0]) + 1 if reached.size else n_lists), curve

    # -- memory ----------------------------------------------------------------
    def memory_usage(self) -> int:
        """Bytes of the arrays the index holds: codes, ids, code terms, offsets,
        coarse centroids, PQ codebook and the kept tuning vectors."""
        total = sum(a.nbytes for a in self._view if a is not None)
        for a in (self._coarse and self._coarse.codebook_, self._tune_x,
                  getattr(self.pq, "codebook_", None)):
            total += 0 if a is None else a.nbytes
        return int(total)

    # -- persistence -------------------------------------------------------------
    _ARRAYS = ("centroids", "pq_codebook", "codes", "ids", "offsets", "tune_x")

    def _meta(self) -> dict[str, Any]:
        return {"n_lists": self.n_lists, "nprobe": self.nprobe, "by_residual": self.by_residual,
                "n_train": self.n_train, "random_state": self.random_state,
                "n_codes": len(self), "pq": self.pq._meta(),
                "tuned": None if self._tuned is None else list(self._tuned)}

    def _arrays(self) -> dict[str, np.ndarray]:
        if not self.is_trained:
            raise NotFittedError("IVFPQIndex is not trained; nothing to save")
        codes, ids, terms, offsets = self._view
        arrays = {"centroids": self.centroids, "pq_codebook": self.pq.codebook_,
                  "pq_bounds": self.pq.segment_bounds_, "codes": codes, "ids": ids,
                  "offsets": offsets, "tune_x": self._tune_x}
        if terms is not None:
            arrays["code_terms"] = terms
        return arrays

    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically to ``path`` (pyspec container, kind ``IQ``)."""
        write_container(path, _KIND, self._arrays(), self._meta())

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> IVFPQIndex:
        """Read an index written by :meth:`save` (``mmap=True`` maps the arrays).

        Raises
        ------
        pyspec.IndexFormatError
            Truncated, corrupted or foreign file, or inconsistent contents.
        """
        arrays, meta = read_container(path, _KIND, mmap=mmap)
        return cls._from_parts(arrays, meta, str(path))

    @classmethod
    def _from_parts(cls, arrays: dict[str, np.ndarray], meta: Any, source: str) -> IVFPQIndex:
        def bad(msg: str) -> IndexFormatError:
            return IndexFormatError(f"{source}: IVFPQ index {msg}")

        if not isinstance(meta, dict) or not isinstance(meta.get("pq"), dict):
            raise bad("metadata is not a mapping with a 'pq' entry")
        if any(arrays.get(name) is None for name in cls._ARRAYS + ("pq_bounds",)):
            raise bad("lacks one of its arrays " + ", ".join(cls._ARRAYS))
        pq = ProductQuantizer._from_parts({"codebook": arrays["pq_codebook"],
                                           "bounds": arrays["pq_bounds"]}, meta["pq"], source)
        try:
            index = cls(pq, n_lists=meta.get("n_lists"), nprobe=meta.get("nprobe"),
                        by_residual=meta.get("by_residual"), n_train=meta.get("n_train"),
                        random_state=meta.get("random_state", 0))
        except (TypeError, ValueError) as exc:
            raise bad(f"has invalid parameters ({exc})") from None
        centroids, codes, ids, offsets, tune_x = (arrays[n] for n in cls._ARRAYS[:1]
                                                  + cls._ARRAYS[2:])
        terms = arrays.get("code_terms")
        D, M = pq.n_features_in_, len(pq.segment_bounds_) - 1
        n = codes.shape[0] if codes.ndim == 2 else -1
        checks = [
            (centroids.dtype == np.float32 and centroids.ndim == 2
             and centroids.shape[1] == D and 1 <= centroids.shape[0] <= 65536,
             f"centroids must be float32 (n_lists, {D}), found {describe(centroids)}"),
            (codes.dtype == pq.code_dtype and codes.ndim == 2 and codes.shape[1] == M,
             f"codes must be {pq.code_dtype} (n, {M}), found {describe(codes)}"),
            (ids.dtype == np.int64 and ids.shape == (n,), f"ids must be int64 ({n},)"),
            (offsets.dtype == np.int64 and offsets.shape == (centroids.shape[0] + 1,),
             "offsets must be int64 (n_lists + 1,)"),
            (tune_x.dtype == np.float32 and tune_x.ndim == 2 and tune_x.shape[1] == D,
             f"tune_x must be float32 (n, {D})"),
            ((terms is not None) == index.by_residual
             and (terms is None or (terms.dtype == np.float32 and terms.shape == (n,))),
             "code_terms must be float32 (n,) exactly when by_residual"),
        ]
        for ok, msg in checks:
            if not ok:
                raise bad(msg)
        if offsets[0] != 0 or offsets[-1] != n or (np.diff(offsets) < 0).any():
            raise bad("list offsets are not a non-decreasing run from 0 to the code count")
        if meta.get("n_codes") != n:
            raise bad("code count in metadata does not match the arrays")
        if n and (int(ids.min()) < 0 or int(codes.max()) >= pq.codebook_.shape[0]):
            raise bad("has negative ids or code values >= n_centroids (corrupted file)")
        finite = [a for a in (centroids, tune_x, terms) if a is not None]
        if not all(np.isfinite(a).all() for a in finite):
            raise bad("has non-finite centroids, tuning vectors or code terms")
        tuned = meta.get("tuned")
        if tuned is not None:
            if (not isinstance(tuned, list) or len(tuned) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in tuned)
                    or not 1 <= tuned[0] <= centroids.shape[0] or not 0 <= tuned[1] <= n):
                raise bad(f"has an invalid tuned nprobe {tuned!r}")
            index._tuned = (tuned[0], tuned[1])
        index._set_coarse(_coarse_model(np.array(centroids)))
        index._tune_x = np.array(tune_x)
        index._set(codes, ids, terms, offsets)
        return index

    def __getstate__(self) -> dict[str, Any]:
        return {"meta": self._meta(), "arrays": {k: np.array(v) for k, v in self._arrays().items()}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = type(self)._from_parts(state["arrays"], state["meta"], "pickle")
        self.__dict__.update(other.__dict__)
        self.__dict__.pop("_lock", None)  # a copy gets its own lock, created lazily
