"""PQIndex: product-quantised codes, ADC k-NN search and exact re-ranking.

Distances are asymmetric (ADC): the query stays exact and each database
spectrum is replaced by its decoded reconstruction, so a distance is the
squared L2 distance from the query to the reconstruction. Optionally the best
``rerank`` candidates are re-scored exactly against the original spectra (a
float32 array or memory map attached with :meth:`PQIndex.attach_vectors`),
with plain squared L2 or an inverse-variance-weighted chi-square.

Threads: any number of threads may search while one thread adds. ``add``
only queues the new codes under a lock; a search consolidates the queue
under the same lock, takes the resulting arrays (replaced, never modified in
place) and scans them without the lock, so no row is lost or mismatched
with its id and a search sees every row added before it started.
"""

from __future__ import annotations

import os
import threading
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
from pyspec.index import _fastscan, _filter
from pyspec.index._result import RangeResult, SearchResult
from pyspec.models.pq import ProductQuantizer

__all__ = ["PQIndex"]

_KIND = b"QX"
_QUERY_BATCH = 1024  # queries per kernel call: bounds table memory, keeps Ctrl-C responsive
_RANGE_BLOCK = 1 << 16  # code rows a range search scans at a time (bounds its temporaries)
_METRICS = ("l2", "chi2")


def adc_distances(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """ADC distances of one query to every code row, float32 (n,).

    table : (n_segments, n_centroids) float32, one query's distance table.
    codes : (n, n_segments) integer codes. Summed segment after segment in
    float32, the order of the compiled scan (csrc/pq.cpp), so the values are
    those :meth:`PQIndex.search` reports.
    """
    out = np.zeros(codes.shape[0], dtype=np.float32)
    for m in range(codes.shape[1]):
        out += table[m, codes[:, m]]
    return out


class PQIndex:
    """k-NN index over product-quantised spectra.

    Parameters
    ----------
    pq : ProductQuantizer
        A fitted quantiser; it encodes added spectra and builds query tables.
    fast_scan : bool, default False
        4-bit fast scan (quantisers with ``n_centroids <= 16``): the codes are
        also kept packed two per byte and scanned with query tables held in
        SIMD registers; the same ids and distances as the plain scan, faster
        (:mod:`pyspec.index._fastscan`).

    Notes
    -----
    Results are read by name (:class:`~pyspec.SearchResult`): faiss's
    ``D, I = index.search(q, k)`` is ``r.distances, r.ids`` here.

    When a query's distance table is larger than the L1 cache (more than
    8,192 segment x centroid entries, e.g. 25 x 3200), the first search builds
    a second, segment-major copy of the codes that makes single-query scans
    about twice as fast; it costs n x n_segments x 1 or 2 more bytes. When
    the codebook itself is larger than 8 MB (e.g. 3200 centroids of 2500
    pixels, 32 MB), the quantiser also keeps an 8-bit copy of it
    (n_centroids x n_features bytes): single-query searches prune with
    lower and upper bounds of the distance table read from that copy and
    compute exact table entries only for the spectra that can still enter
    the top k. Distances and ids are exactly those of a full-table search.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(1).normal(size=(300, 32)).astype(np.float32)
    >>> pq = ProductQuantizer(n_segments=4, n_centroids=16, random_state=0).fit(X)
    >>> index = PQIndex(pq)
    >>> index.add(X)
    >>> res = index.search(X[:2], k=3)
    >>> res.ids.shape, res.distances.dtype
    ((2, 3), dtype('float32'))
    """

    def __init__(self, pq: ProductQuantizer, fast_scan: bool = False) -> None:
        if not isinstance(pq, ProductQuantizer):
            raise TypeError(f"pq must be a ProductQuantizer, got {type(pq).__name__}")
        if not hasattr(pq, "codebook_"):
            raise NotFittedError("PQIndex needs a fitted ProductQuantizer; call pq.fit(X) first")
        self.pq = pq
        self.fast_scan = _fastscan.check(pq, fast_scan)
        self._fastscan_cache: tuple | None = None  # (codes, packed layout), _fastscan.packed_codes
        self._M = len(pq.segment_bounds_) - 1
        self._codes = np.empty((0, self._M), dtype=pq.code_dtype)
        self._ids = np.empty(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._scan: np.ndarray | None = None  # scan-layout copy of _codes (see _scan_codes)
        self._flux: np.ndarray | None = None
        self._ivar: np.ndarray | None = None
        # row of the attached flux/ivar holding each stored row (remove_ids drops entries)
        self._vec_rows: np.ndarray | None = None
        self._lock = threading.RLock()  # guards _pending, _codes, _ids, _scan, vectors

    # ---- storage -----------------------------------------------------------

    def _consolidate(self) -> None:
        """Fold queued rows into ``_codes``/``_ids`` (caller holds ``_lock``)."""
        if self._pending:
            self._codes = np.concatenate([self._codes] + [c for c, _ in self._pending])
            self._ids = np.concatenate([self._ids] + [i for _, i in self._pending])
            self._pending = []
            self._scan = None

    def _scan_codes(self) -> np.ndarray | None:
        """Segment-major copy of the codes for single-query scans, or None.

        When a query's distance table overflows the L1 cache (e.g. 25 segments
        x 3200 centroids = 320 kB), the kernel scans a copy of the codes laid
        out segment by segment in blocks of rows, which keeps two table rows
        in L1 (about twice as fast; csrc/pq.hpp, "scan layout"). It costs one
        more copy of the codes in memory (n x n_segments x 1 or 2 bytes), is
        built on the first search and rebuilt after :meth:`add`.
        """
        if self._scan is None and _core.pq_scan_layout_pays(self._M, self.pq.codebook_.shape[0]):
            self._scan = _core.pq_scan_layout(self._codes)
        return self._scan

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids) + sum(len(i) for _, i in self._pending)

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            self._consolidate()
            state = dict(self.__dict__)
        del state["_lock"]  # locks do not pickle; a copy gets its own
        state["_fastscan_cache"] = None  # rebuilt from the codes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple | None]:
        """(codes, ids, scan layout, vectors) of every row added so far, consistent;
        vectors is (flux, ivar, vec_rows) or None when none are attached."""
        with self._lock:
            self._consolidate()
            vectors = None if self._flux is None else (self._flux, self._ivar, self._vec_rows)
            return self._codes, self._ids, self._scan_codes(), vectors

    @property
    def codes(self) -> np.ndarray:
        """Stored codes, (n, n_segments) uint8 or uint16, in insertion order."""
        return self._snapshot()[0]

    @property
    def ids(self) -> np.ndarray:
        """Stored ids, int64 (n,), in insertion order."""
        return self._snapshot()[1]

    def add(self, data: Any, ids: Any = None, num_threads: int | None = None) -> None:
        """Append spectra (encoded here) or ready-made codes.

        Parameters
        ----------
        data : array-like
            Float spectra of shape (n, n_features) -- encoded with the
            quantiser -- or integer codes of shape (n, n_segments).
        ids : array-like of shape (n,), int, optional
            Non-negative ids; default continues ``0, 1, 2, ...`` from the
            current size.
        num_threads : int or None
            Threads for encoding.
        """
        arr = data if isinstance(data, np.ndarray) else np.asarray(data)
        if arr.dtype.kind in "iu":
            codes = self.pq.check_codes(arr)
        elif arr.dtype.kind == "f":
            codes = self.pq.encode(arr, num_threads=num_threads)
        else:
            raise TypeError(f"add: expected float spectra (n, {self.pq.n_features_in_}) or integer "
                            f"codes (n, {self._M}), got {describe(arr)}")
        with self._lock:
            id_arr = as_ids(ids, codes.shape[0], start=len(self))
            self._pending.append((codes, id_arr))
            if self._flux is not None:
                # attached spectra no longer match the rows
                self._flux = self._ivar = self._vec_rows = None

    def attach_vectors(self, flux: np.ndarray, ivar: np.ndarray | None = None) -> None:
        """Attach the original spectra used by ``search(..., rerank=...)``.

        Parameters
        ----------
        flux : ndarray of shape (len(index), n_features), float32
            Row ``i`` is the spectrum stored at position ``i`` of the index (the
            order of :meth:`add`). A read-only memory map (e.g.
            ``SpectrumStore.flux``) is used in place, never copied.
        ivar : ndarray of shape (len(index), n_features), float32, optional
            Inverse variances for ``metric="chi2"``.

        Adding spectra detaches the vectors; :meth:`remove_ids` keeps them
        (the rows of removed spectra are skipped); :meth:`save` writes them
        with the index unless ``save(path, vectors=False)``.
        """
        shape = (len(self), self.pq.n_features_in_)
        for name, a in (("flux", flux), ("ivar", ivar)):
            if a is None:
                continue
            if not isinstance(a, np.ndarray) or a.dtype != np.float32:
                raise TypeError(f"{name}: expected a float32 ndarray or memmap {shape}, got "
                                f"{describe(a)}; convert with np.asarray(x, dtype=np.float32)")
            if a.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (one row per indexed spectrum, "
                                 f"in add order), got {a.shape}")
        with self._lock:
            if len(self) != shape[0]:
                raise ValueError("rows were added while attaching vectors; attach again")
            self._flux, self._ivar = flux, ivar
            self._vec_rows = np.arange(shape[0], dtype=np.int64)

    # ---- search ------------------------------------------------------------

    def search(self, queries: Any, k: int, num_threads: int | None = None,
               rerank: int | None = None, metric: str = "l2",
               query_ivar: Any = None, filter: Any = None) -> SearchResult:  # noqa: A002
        """k nearest stored spectra of each query.

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_features), float32
        k : int
        num_threads : int or None
        rerank : int or None
            When given (>= k), the best ``rerank`` ADC candidates are re-scored
            exactly against the attached spectra (:meth:`attach_vectors`) and
            the best k of them are returned. ADC ties at the candidate cut are
            settled by position in the index.
        metric : {"l2", "chi2"}
            Re-ranking distance: squared L2, or chi-square
            ``sum(w * (q - x)**2)`` with ``w = ivar_x`` (or, with
            ``query_ivar``, ``w = ivar_x * ivar_q / (ivar_x + ivar_q)``, 0 where
            either is 0). Only used with ``rerank``.
        query_ivar : array-like of shape (n_queries, n_features), optional
        filter : array-like of int ids, or 1-D bool mask indexed by id, optional
            Only these ids may be returned: exactly the top k (or the
            re-ranked top k of the best ``rerank``) among the allowed spectra,
            whose codes alone are scanned.

        Returns
        -------
        SearchResult
            ids int64 (n_queries, k), distances float32 (n_queries, k) ordered
            by (distance, id); missing neighbours are (-1, +inf). Without
            ``rerank`` distances are ADC squared L2. Read them by name:
            faiss's ``D, I = index.search(q, k)`` is ``r.distances, r.ids``.
        """
        nt = check_num_threads(num_threads)
        k = check_k(k)
        Q = as_float_matrix(queries, "queries", n_features=self.pq.n_features_in_)
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        codes, stored_ids, scan, vectors = self._snapshot()
        check_result_size(Q.shape[0], k, len(stored_ids))
        if rerank is not None:
            rerank = check_k(rerank)
            if rerank < k:
                raise ValueError(f"rerank ({rerank}) must be >= k ({k})")
            if vectors is None:
                raise ValueError("rerank needs the original spectra: call "
                                 "index.attach_vectors(flux, ivar) first")
            if metric == "chi2" and vectors[1] is None:
                raise ValueError("metric='chi2' needs inverse variances: "
                                 "call index.attach_vectors(flux, ivar)")
        elif metric != "l2" or query_ivar is not None:
            raise ValueError("metric and query_ivar only apply with rerank=...")
        qivar = None
        if query_ivar is not None:
            qivar = as_float_matrix(query_ivar, "query_ivar", n_features=self.pq.n_features_in_)
            if qivar.shape != Q.shape:
                raise ValueError(f"query_ivar: expected shape {Q.shape}, got {qivar.shape}")
        positions = None  # rows scanned, when not all of them
        if filter is not None:  # scan a gathered copy of the allowed codes
            positions = _filter.allowed_positions(stored_ids, filter)
            codes, scan = np.ascontiguousarray(codes[positions]), None
        nq = Q.shape[0]
        out_ids = np.full((nq, k), -1, dtype=np.int64)
        out_dist = np.full((nq, k), np.inf, dtype=np.float32)
        if nq == 0 or k == 0 or len(codes) == 0:
            return SearchResult(ids=out_ids, distances=out_dist)
        args = self.pq._kernel_args()
        # single-query scans over the scan layout may prune with bound tables
        extra = {} if scan is None else {"scan_codes": scan, "bound_copy": self.pq._bound_copy()}
        if rerank is None:
            row_ids = stored_ids if positions is None else stored_ids[positions]
            for q0 in range(0, nq, _QUERY_BATCH):
                i, d = self._adc_search(Q[q0:q0 + _QUERY_BATCH], args, codes, row_ids,
                                        k, nt, extra)
                out_ids[q0:q0 + len(i)], out_dist[q0:q0 + len(i)] = i, d
            return SearchResult(ids=out_ids, distances=out_dist)
        if positions is None:
            positions = np.arange(len(stored_ids), dtype=np.int64)
        for q0 in range(0, nq, _QUERY_BATCH):
            qb = Q[q0:q0 + _QUERY_BATCH]
            pos, _ = self._adc_search(qb, args, codes, positions, rerank, nt, extra)
            for r in range(len(qb)):
                qi = q0 + r
                cand = pos[r][pos[r] >= 0]
                dist = self._exact(qb[r], cand, metric, None if qivar is None else qivar[qi],
                                   vectors)
                cid = stored_ids[cand]
                order = np.lexsort((cid, dist))[:k]
                out_ids[qi, :order.size] = cid[order]
                out_dist[qi, :order.size] = dist[order]
        return SearchResult(ids=out_ids, distances=out_dist)

    def range_search(self, queries: Any, radius: float, num_threads: int | None = None,
                     filter: Any = None) -> RangeResult:  # noqa: A002
        """Every stored spectrum within ADC squared L2 distance ``radius`` (inclusive).

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_features), float32
        radius : float >= 0
            Largest ADC squared L2 distance kept (the distances of
            :meth:`search` without ``rerank``).
        num_threads : int or None
            Threads for the query tables.
        filter : array-like of int ids, or 1-D bool mask indexed by id, optional
            Only these ids may be returned.

        Returns
        -------
        RangeResult
            ``lims`` int64 (n_queries + 1,), ``ids`` int64, ``distances``
            float32; hits of query i ordered by (distance, id). The distances
            are summed segment by segment in float32, as in :meth:`search`.
        """
        nt = check_num_threads(num_threads)
        if isinstance(radius, bool) or not isinstance(radius, (int, float, np.number)) or \
                not np.isfinite(radius) or radius < 0:
            raise ValueError(f"radius must be a finite number >= 0 (squared L2), got {radius!r}")
        Q = as_float_matrix(queries, "queries", n_features=self.pq.n_features_in_)
        codes, stored_ids = self._snapshot()[:2]
        # bounded memory: distance tables of at most _QUERY_BATCH queries and the codes of
        # at most _RANGE_BLOCK rows at a time (each row's sum is the same whatever the block)
        positions = None if filter is None else _filter.allowed_positions(stored_ids, filter)
        n = codes.shape[0] if positions is None else positions.size
        r = np.float32(radius)
        lims = np.zeros(Q.shape[0] + 1, dtype=np.int64)
        hit_ids, hit_dist = [], []
        for q0 in range(0, Q.shape[0], _QUERY_BATCH):
            tables = self.pq.distance_tables(Q[q0:q0 + _QUERY_BATCH], num_threads=nt or None)
            found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in tables]
            for a in range(0, n, _RANGE_BLOCK):
                rows = slice(a, min(n, a + _RANGE_BLOCK)) if positions is None \
                    else positions[a:a + _RANGE_BLOCK]
                block = codes[rows].astype(np.intp)
                block_ids = stored_ids[rows]
                for qi, table in enumerate(tables):
                    d = adc_distances(table, block)
                    hit = np.flatnonzero(d <= r)
                    if hit.size:
                        found[qi].append((block_ids[hit], d[hit]))
            for qi, parts in enumerate(found, start=q0):
                ids_q = np.concatenate([i for i, _ in parts]) if parts else np.empty(0, np.int64)
                dist_q = np.concatenate([d for _, d in parts]) if parts \
                    else np.empty(0, np.float32)
                order = np.lexsort((ids_q, dist_q))
                hit_ids.append(ids_q[order])
                hit_dist.append(dist_q[order])
                lims[qi + 1] = lims[qi] + order.size
        ids = np.concatenate(hit_ids) if hit_ids else np.empty(0, np.int64)
        dist = np.concatenate(hit_dist) if hit_dist else np.empty(0, np.float32)
        return RangeResult(lims=lims, ids=ids.astype(np.int64), distances=dist.astype(np.float32))

    def _adc_search(self, Q: np.ndarray, args: tuple, codes: np.ndarray, ids: np.ndarray,
                    k: int, nt: int, extra: dict) -> tuple[np.ndarray, np.ndarray]:
        """ADC top k (ids, distances) of the rows ``codes`` (labelled ``ids``)."""
        if self.fast_scan:
            return _fastscan.search(self, Q, codes, ids, k, nt)
        return _core.pq_search(Q, *args, codes, ids, k, num_threads=nt, **extra)

    def _exact(self, q: np.ndarray, rows: np.ndarray, metric: str,
               qivar: np.ndarray | None, vectors: tuple) -> np.ndarray:
        """Exact distances (float32 from float64 sums) of q to stored rows."""
        flux, ivar, vec_rows = vectors
        src = vec_rows[rows]
        srt = np.sort(src)  # sorted reads are kinder to a memory map
        x = np.asarray(flux[srt], dtype=np.float64)
        diff2 = np.square(x - q.astype(np.float64))
        if metric == "l2":
            d = diff2.sum(axis=1)
        else:
            w = np.asarray(ivar[srt], dtype=np.float64)
            if qivar is not None:
                qw = qivar.astype(np.float64)
                den = w + qw
                with np.errstate(divide="ignore", invalid="ignore"):
                    w = np.where(den > 0, w * qw / np.where(den > 0, den, 1.0), 0.0)
            d = (w * diff2).sum(axis=1)
        return d.astype(np.float32)[np.searchsorted(srt, src)]

    # ---- removal and memory ----------------------------------------------------

    def remove_ids(self, ids: Any) -> int:
        """Remove every stored spectrum whose id is in ``ids``; return how many.

        The others keep their ids; attached re-rank vectors stay attached
        (the removed spectra's rows are skipped, nothing is copied).
        """
        drop = ids_to_remove(ids)
        with self._lock:
            self._consolidate()
            keep = ~np.isin(self._ids, drop)
            removed = int(keep.size - keep.sum())
            if removed:
                self._codes = np.ascontiguousarray(self._codes[keep])
                self._ids = np.ascontiguousarray(self._ids[keep])
                self._scan = None
                if self._vec_rows is not None:
                    self._vec_rows = self._vec_rows[keep]
        return removed

    def memory_usage(self) -> int:
        """Bytes of the arrays the index holds: codes, ids, the scan-layout
        copy, the quantiser's kernel tables and 8-bit copy, and in-memory
        re-rank vectors (a memory map attached with :meth:`attach_vectors`
        is not counted: its pages belong to the file)."""
        with self._lock:
            self._consolidate()
            arrays = [self._codes, self._ids, self._scan, self._vec_rows, self.pq.codebook_,
                      self.pq.segment_bounds_, self.pq._ctb, self.pq._cnorm,
                      (self._fastscan_cache or (None, None))[1]]
            bound = self.pq._bounds_copy
            if isinstance(bound, tuple):
                arrays += [a for a in bound[:4]]  # bound[4] is codebook_ itself
            for a in (self._flux, self._ivar):
                if a is not None and not isinstance(a, np.memmap):
                    arrays.append(a)
        return int(sum(a.nbytes for a in arrays if a is not None))

    @staticmethod
    def estimate_memory(n: int, n_segments: int, n_centroids: int, n_features: int,
                        vectors: bool = False, ivar: bool = False) -> int:
        """Bytes :meth:`memory_usage` reports for ``n`` spectra (before any search).

        Codes ``n * n_segments`` (1 byte each up to 256 centroids, else 2),
        int64 ids, the codebook (float32) twice (plain and the kernels'
        blocked copy, centroids padded to a multiple of 32), the centroid
        norms and segment bounds; with ``vectors``, float32 re-rank spectra
        held in memory (and their inverse variances with ``ivar``) and their
        row map. A first search may add the scan-layout copy of the codes and
        the 8-bit codebook copy (see the class notes), or with ``fast_scan``
        the packed copy (32 x ceil(n_segments / 2) bytes per 32 spectra).
        """
        for name, v in (("n", n), ("n_segments", n_segments), ("n_centroids", n_centroids),
                        ("n_features", n_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        n, M, K, D = int(n), int(n_segments), int(n_centroids), int(n_features)
        kp = -(-K // 32) * 32
        total = n * M * (1 if K <= 256 else 2) + 8 * n
        total += 4 * K * D + 4 * kp * D + 4 * M * kp + 8 * (M + 1)
        if vectors:
            total += 4 * n * D * (2 if ivar else 1) + 8 * n
        return total

    # ---- persistence ---------------------------------------------------------

    def save(self, path: str | os.PathLike, vectors: bool = True) -> None:
        """Write codes, ids and the quantiser to ``path`` (container kind b"QX").

        With ``vectors`` (default) the attached re-rank spectra (and inverse
        variances) are written too, one row per stored spectrum, and
        :meth:`load` attaches them again; ``vectors=False`` leaves them out
        (attach them again after loading).
        """
        codes, ids, _, attached = self._snapshot()
        meta = self.pq._meta()
        meta["code_dtype"] = str(codes.dtype)
        meta.update(_fastscan.file_meta(self.fast_scan))
        arrays = {"codes": codes, "ids": ids, "codebook": self.pq.codebook_,
                  "bounds": self.pq.segment_bounds_}
        if vectors and attached is not None:
            flux, ivar, rows = attached
            arrays["rerank_flux"] = np.asarray(flux[rows], dtype=np.float32)
            if ivar is not None:
                arrays["rerank_ivar"] = np.asarray(ivar[rows], dtype=np.float32)
        write_container(path, _KIND, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> PQIndex:
        """Read an index written by :meth:`save` (``mmap=True`` maps the codes).

        Raises
        ------
        IndexFormatError
            Truncated, corrupted or foreign file, or inconsistent contents.
        """
        arrays, meta = read_container(path, _KIND, mmap=mmap)
        pq = ProductQuantizer._from_parts(arrays, meta, str(path))
        index = cls(pq, fast_scan=_fastscan.from_meta(meta, str(path)))
        try:
            codes, ids = arrays["codes"], arrays["ids"]
        except KeyError as exc:
            raise IndexFormatError(f"{path}: PQ index lacks array {exc}") from None
        M = index._M
        if (codes.dtype != pq.code_dtype or codes.ndim != 2 or codes.shape[1] != M
                or ids.dtype != np.int64 or ids.shape != (codes.shape[0],)):
            raise IndexFormatError(f"{path}: PQ index codes/ids have inconsistent shapes or dtypes")
        if codes.size and int(codes.max()) >= pq.codebook_.shape[0]:
            raise IndexFormatError(f"{path}: PQ index codes exceed n_centroids (corrupted file)")
        if ids.size and int(ids.min()) < 0:
            raise IndexFormatError(f"{path}: PQ index has negative ids (corrupted file)")
        index._codes, index._ids = codes, ids
        flux, ivar = arrays.get("rerank_flux"), arrays.get("rerank_ivar")
        shape = (codes.shape[0], pq.n_features_in_)
        for name, a in (("rerank_flux", flux), ("rerank_ivar", ivar)):
            if a is not None and (a.dtype != np.float32 or a.shape != shape):
                raise IndexFormatError(f"{path}: PQ index {name} is {describe(a)}, expected "
                                       f"float32 {shape}")
        if ivar is not None and flux is None:
            raise IndexFormatError(f"{path}: PQ index has rerank_ivar without rerank_flux")
        if flux is not None:
            index._flux, index._ivar = flux, ivar
            index._vec_rows = np.arange(shape[0], dtype=np.int64)
        return index
