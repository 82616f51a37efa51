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
)
from pyspec.errors import IndexFormatError, NotFittedError
from pyspec.index._result import SearchResult
from pyspec.models.pq import ProductQuantizer

__all__ = ["PQIndex"]

_KIND = b"QX"
_QUERY_BATCH = 1024  # queries per kernel call: bounds table memory, keeps Ctrl-C responsive
_METRICS = ("l2", "chi2")


class PQIndex:
    """k-NN index over product-quantised spectra.

    Parameters
    ----------
    pq : ProductQuantizer
        A fitted quantiser; it encodes added spectra and builds query tables.

    Notes
    -----
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

    def __init__(self, pq: ProductQuantizer) -> None:
        if not isinstance(pq, ProductQuantizer):
            raise TypeError(f"pq must be a ProductQuantizer, got {type(pq).__name__}")
        if not hasattr(pq, "codebook_"):
            raise NotFittedError("PQIndex needs a fitted ProductQuantizer; call pq.fit(X) first")
        self.pq = pq
        self._M = len(pq.segment_bounds_) - 1
        self._codes = np.empty((0, self._M), dtype=pq.code_dtype)
        self._ids = np.empty(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._scan: np.ndarray | None = None  # scan-layout copy of _codes (see _scan_codes)
        self._flux: np.ndarray | None = None
        self._ivar: np.ndarray | None = None
        self._lock = threading.RLock()  # guards _pending, _codes, _ids, _scan, _flux, _ivar

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
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                 np.ndarray | None, np.ndarray | None]:
        """(codes, ids, scan layout, flux, ivar) of every row added so far, consistent."""
        with self._lock:
            self._consolidate()
            return self._codes, self._ids, self._scan_codes(), self._flux, self._ivar

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
                self._flux = self._ivar = None  # attached spectra no longer match the rows

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

        Adding spectra detaches the vectors; they are not saved with the index.
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

    # ---- search ------------------------------------------------------------

    def search(self, queries: Any, k: int, num_threads: int | None = None,
               rerank: int | None = None, metric: str = "l2",
               query_ivar: Any = None) -> SearchResult:
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

        Returns
        -------
        SearchResult
            ids int64 (n_queries, k), distances float32 (n_queries, k) ordered
            by (distance, id); missing neighbours are (-1, +inf). Without
            ``rerank`` distances are ADC squared L2.
        """
        nt = check_num_threads(num_threads)
        k = check_k(k)
        Q = as_float_matrix(queries, "queries", n_features=self.pq.n_features_in_)
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        codes, stored_ids, scan, flux, ivar = self._snapshot()
        check_result_size(Q.shape[0], k, len(stored_ids))
        if rerank is not None:
            rerank = check_k(rerank)
            if rerank < k:
                raise ValueError(f"rerank ({rerank}) must be >= k ({k})")
            if flux is None:
                raise ValueError("rerank needs the original spectra: call "
                                 "index.attach_vectors(flux, ivar) first")
            if metric == "chi2" and ivar is None:
                raise ValueError("metric='chi2' needs inverse variances: "
                                 "call index.attach_vectors(flux, ivar)")
        elif metric != "l2" or query_ivar is not None:
            raise ValueError("metric and query_ivar only apply with rerank=...")
        qivar = None
        if query_ivar is not None:
            qivar = as_float_matrix(query_ivar, "query_ivar", n_features=self.pq.n_features_in_)
            if qivar.shape != Q.shape:
                raise ValueError(f"query_ivar: expected shape {Q.shape}, got {qivar.shape}")
        nq = Q.shape[0]
        out_ids = np.full((nq, k), -1, dtype=np.int64)
        out_dist = np.full((nq, k), np.inf, dtype=np.float32)
        if nq == 0 or k == 0 or len(stored_ids) == 0:
            return SearchResult(out_ids, out_dist)
        args = self.pq._kernel_args()
        # single-query scans over the scan layout may prune with bound tables
        extra = {} if scan is None else {"scan_codes": scan, "bound_copy": self.pq._bound_copy()}
        if rerank is None:
            for q0 in range(0, nq, _QUERY_BATCH):
                i, d = _core.pq_search(Q[q0:q0 + _QUERY_BATCH], *args, codes, stored_ids,
                                       k, num_threads=nt, **extra)
                out_ids[q0:q0 + len(i)], out_dist[q0:q0 + len(i)] = i, d
            return SearchResult(out_ids, out_dist)
        positions = np.arange(len(stored_ids), dtype=np.int64)
        for q0 in range(0, nq, _QUERY_BATCH):
            qb = Q[q0:q0 + _QUERY_BATCH]
            pos, _ = _core.pq_search(qb, *args, codes, positions, rerank, num_threads=nt,
                                     **extra)
            for r in range(len(qb)):
                qi = q0 + r
                cand = pos[r][pos[r] >= 0]
                dist = self._exact(qb[r], cand, metric, None if qivar is None else qivar[qi],
                                   flux, ivar)
                cid = stored_ids[cand]
                order = np.lexsort((cid, dist))[:k]
                out_ids[qi, :order.size] = cid[order]
                out_dist[qi, :order.size] = dist[order]
        return SearchResult(out_ids, out_dist)

    def _exact(self, q: np.ndarray, rows: np.ndarray, metric: str,
               qivar: np.ndarray | None, flux: np.ndarray, ivar: np.ndarray | None
               ) -> np.ndarray:
        """Exact distances (float32 from float64 sums) of q to stored rows."""
        srt = np.sort(rows)  # sorted reads are kinder to a memory map
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
        return d.astype(np.float32)[np.searchsorted(srt, rows)]

    # ---- persistence ---------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write codes, ids and the quantiser to ``path`` (container kind b"QX").

        Attached spectra are not saved; attach them again after :meth:`load`.
        """
        codes, ids = self._snapshot()[:2]
        meta = self.pq._meta()
        meta["code_dtype"] = str(codes.dtype)
        write_container(path, _KIND, {"codes": codes, "ids": ids,
                                      "codebook": self.pq.codebook_,
                                      "bounds": self.pq.segment_bounds_}, meta)

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
        index = cls(pq)
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
        return index
