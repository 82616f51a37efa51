"""Exact Hamming search over binary codes: :class:`HammingIndex`.

Codes are uint64 arrays of shape ``(n, n_words)`` with ``n_words =
ceil(n_bits / 64)`` (bit ``j`` in word ``j // 64`` at position ``j % 64``, see
:mod:`pyspec._bits`); 32-bit codes use one word whose upper half is zero.
The scans run in the compiled kernels (``pyspec._core``) with the GIL
released; this module validates input, stores codes and ids, and saves and
loads indexes in pyspec's container format (kind ``b"HX"``).

Threads: any number of threads may search while one thread adds. ``add``
holds a lock (so concurrent adds are serialised, never lost) and publishes
the new rows in one step after writing them; a search works on the rows
published when it started (a consistent snapshot of codes and ids) and
never sees a half-written row.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from pyspec import _core
from pyspec._bits import n_words as _n_words
from pyspec._bits import pack_bits
from pyspec._fileformat import read_container, write_container
from pyspec._validation import (
    as_ids,
    check_k,
    check_num_threads,
    check_result_size,
    describe,
    ids_to_remove,
)
from pyspec.errors import IndexFormatError
from pyspec.index import _filter, _ivf_method, _mih, _plan
from pyspec.index._codes import _MAX_BITS, lazy_write_lock
from pyspec.index._codes import check_codes as _check_codes
from pyspec.index._codes import check_n_bits as _check_n_bits
from pyspec.index._codes import pad_mask as _pad_mask
from pyspec.index._result import RangeResult, SearchResult

if TYPE_CHECKING:
    from pyspec.index.ivf import IVFHammingIndex

__all__ = ["HammingIndex", "as_codes", "hamming_distances"]

_KIND = b"HX"


def as_codes(x: object, n_bits: int = 256) -> np.ndarray:
    """Convert bit arrays or byte-packed codes to the uint64 layout the index takes.

    Parameters
    ----------
    x : array-like
        One of: bool (or 0/1 integer) bits of shape (n, n_bits); uint8 bytes
        of shape (n, ceil(n_bits / 64) * 8) as written by
        ``np.packbits(bits, axis=1, bitorder="little")`` (zero padded); or
        uint64 words of shape (n, ceil(n_bits / 64)) in any memory layout.
    n_bits : int
        Code length in bits.

    Returns
    -------
    codes : ndarray of shape (n, ceil(n_bits / 64)), uint64, C-contiguous.

    Examples
    --------
    >>> import numpy as np
    >>> bits = np.zeros((2, 64), dtype=bool); bits[1, [0, 3]] = True
    >>> as_codes(bits, n_bits=64).ravel().tolist()
    [0, 9]
    """
    n_bits = _check_n_bits(n_bits)
    nw = _n_words(n_bits)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array of codes or bits, got {describe(arr)}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
        return _check_codes(np.ascontiguousarray(arr, dtype=np.uint64), n_bits, "codes")
    if arr.dtype == np.uint8 and arr.shape[1] == nw * 8:
        words = np.ascontiguousarray(arr).view("<u8").astype(np.uint64, copy=False)
        return _check_codes(np.ascontiguousarray(words), n_bits, "codes")
    if arr.dtype == np.bool_ or arr.dtype.kind in "iu":
        if arr.shape[1] != n_bits:
            raise ValueError(f"expected bits of shape (n, {n_bits}) or packed bytes of shape "
                             f"(n, {nw * 8}), got {describe(arr)}")
        if arr.dtype != np.bool_ and not np.isin(arr, (0, 1)).all():
            raise ValueError("integer bit arrays must hold only 0 and 1")
        return pack_bits(arr)
    raise TypeError(f"cannot interpret {describe(arr)} as {n_bits}-bit codes "
                    "(expected bool bits, uint8 bytes or uint64 words)")


def _check_radius(radius: object) -> int:
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral):
        raise TypeError(f"radius must be an int >= 0 (bits), got {type(radius).__name__}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return int(min(radius, 2**31 - 1))


def hamming_distances(queries: np.ndarray, codes: np.ndarray, n_bits: int = 256,
                      num_threads: int | None = None) -> np.ndarray:
    """Full Hamming distance matrix between ``queries`` and ``codes``.

    Parameters
    ----------
    queries : ndarray of shape (n_queries, n_words), uint64
    codes : ndarray of shape (n_codes, n_words), uint64
    n_bits : int
        Code length in bits (``n_words = ceil(n_bits / 64)``).
    num_threads : int or None
        Threads (None = OpenMP default).

    Returns
    -------
    ndarray of shape (n_queries, n_codes), int32 bit counts.
    """
    n_bits = _check_n_bits(n_bits)
    q = _check_codes(queries, n_bits, "queries", allow_1d=True)
    c = _check_codes(codes, n_bits, "codes")
    return _core.hamming_distances(q, c, check_num_threads(num_threads))


class HammingIndex:
    """Exact k-NN and range search over binary codes by Hamming distance.

    Parameters
    ----------
    n_bits : int, default 256
        Code length in bits, 1..512; codes are stored as uint64 of shape
        (n, ceil(n_bits / 64)) with unused high bits zero.
    method : {"scan", "auto", "ivf", "mih"}, default "scan"
        How k-NN searches find the neighbours; results are identical
        whatever the method. "scan" reads every code. "ivf" also keeps the
        codes in ``sqrt(n)`` inverted lists sorted by distance to their
        centroid (built by :meth:`add`, saved and memory-mapped with the
        index; a second copy of the codes and ids) and reads only the band
        of each list that the triangle inequality leaves open (see
        :class:`~pyspec.IVFHammingIndex`, ``exact=True``): on codes of
        simulated spectra a single query took 1/4 of the scan's time at 1M
        codes and 1/20 at 10M, a batch 1/3 and 1/15. "auto" builds the lists from
        65,536 codes on and picks, per search, the cheaper of the two by a
        cost model (see :meth:`plan`): on codes without structure (uniformly
        random bits) it keeps the scan. "mih" uses multi-index hashing
        tables and reads only codes that share a nearly equal substring with
        the query; on codes of real-like spectra they did not pay (two to
        three times the codes' memory, slower than the scan at 1M-10M,
        bench/RESULTS.md, issue 21). Range searches scan (or use the MIH
        tables with "mih").

    Attributes
    ----------
    codes : ndarray of shape (n, n_words), uint64 (read-only view)
    ids : ndarray of shape (n,), int64 (read-only view)

    Notes
    -----
    Searches return a :class:`~pyspec.SearchResult` (range searches a
    ``RangeResult``) read by name: faiss's ``D, I = index.search(q, k)`` is
    ``r = index.search(q, k); r.distances, r.ids`` here, and unpacking a
    result raises ``TypeError`` rather than swapping the two.

    Examples
    --------
    >>> import numpy as np, pyspec
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 2**63, size=(100, 4), dtype=np.uint64)
    >>> index = pyspec.HammingIndex(256)
    >>> index.add(codes)
    >>> res = index.search(codes[:2], k=3)
    >>> res.ids[:, 0].tolist(), res.distances[:, 0].tolist()
    ([0, 1], [0, 0])
    """

    def __init__(self, n_bits: int = 256, method: str = "scan") -> None:
        self.n_bits = _check_n_bits(n_bits)
        self.n_words = _n_words(self.n_bits)
        self._codes = np.empty((0, self.n_words), dtype=np.uint64)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self.method = _plan.check_method(method)
        self._mih_tables: _mih.MihTables | None = None
        self._lists: IVFHammingIndex | None = None  # method "ivf" / "auto"
        self._lists_trained = 0  # codes the lists' centroids were trained on
        self._plans: dict[tuple[str, bool, str, int], _plan.SearchPlan] = {}
        self._publish()

    # -- thread safety -----------------------------------------------------
    def _publish(self) -> None:
        """Make rows ``[0, _n)`` visible to searches (one atomic attribute store)."""
        self._view = (self._codes[: self._n], self._ids[: self._n], self._mih_tables,
                      self._lists)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Codes and ids of the published rows, consistent with each other."""
        return self._view[0], self._view[1]

    def _synced_view(self) -> tuple[np.ndarray, np.ndarray, _mih.MihTables]:
        """Published codes, ids and MIH tables covering exactly those codes.

        Tables are brought up to date (the tail left by the last adds indexed)
        under the write lock, so a reader never pairs tables with other rows.
        """
        codes, ids, tables, _ = self._view
        if tables is None or tables.n_codes != len(ids):
            with self._write_lock:
                self._mih_sync()
                self._publish()
                codes, ids, tables, _ = self._view
        return codes, ids, tables

    def _synced_lists(self) -> tuple[np.ndarray, np.ndarray, IVFHammingIndex | None]:
        """Published codes, ids and inverted lists holding exactly those codes (the
        tail left by the last adds assigned to its lists first, under the write lock).
        None for lists an index has not built (loaded without them)."""
        codes, ids, _, lists = self._view
        if lists is not None and len(lists) != len(ids):
            with self._write_lock:
                self._lists_sync()
                self._publish()
                codes, ids, _, lists = self._view
        return codes, ids, lists

    _write_lock = lazy_write_lock

    # -- storage -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._view[1])

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, method={self.method!r}) with {self._n} codes"

    @property
    def codes(self) -> np.ndarray:
        view = self._snapshot()[0][:]
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        view = self._snapshot()[1][:]
        view.flags.writeable = False
        return view

    @property
    def pad_distance(self) -> int:
        """Distance reported for missing neighbours (``n_bits + 1``)."""
        return self.n_bits + 1

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Append codes (and their ids) to the index.

        Parameters
        ----------
        codes : ndarray of shape (n, n_words), uint64, C-contiguous
        ids : array-like of shape (n,), integer, optional
            Ids reported by searches; default ``len(self) .. len(self) + n - 1``.
            Ties in distance are broken by the smaller id.

        Raises
        ------
        TypeError
            Wrong dtype (e.g. bool bits or bytes: convert with :func:`as_codes`).
        ValueError
            Wrong shape, non-contiguous array, bits set above ``n_bits``, ids
            of the wrong length.
        """
        codes = _check_codes(codes, self.n_bits, "codes")
        with self._write_lock:
            self._add_locked(codes, ids)

    def _add_locked(self, codes: np.ndarray, ids: np.ndarray | None) -> None:
        n = codes.shape[0]
        ids = as_ids(ids, n, start=self._n)
        need = self._n + n
        if need > self._codes.shape[0] or not self._codes.flags.writeable:
            capacity = max(need, 2 * self._codes.shape[0] if self._codes.flags.writeable
                           else need, 1024)
            grown = np.empty((capacity, self.n_words), dtype=np.uint64)
            grown[: self._n] = self._codes[: self._n]
            grown_ids = np.empty(capacity, dtype=np.int64)
            grown_ids[: self._n] = self._ids[: self._n]
            self._codes, self._ids = grown, grown_ids
        self._codes[self._n: need] = codes
        self._ids[self._n: need] = ids
        self._n = need
        self._after_add()
        self._publish()  # only now can searches see the new rows

    # -- search ------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, num_threads: int | None = None,
               filter: object = None) -> SearchResult:  # noqa: A002 (faiss's word)
        """The ``k`` nearest codes of each query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, n_words) or (n_words,), uint64
        k : int >= 0
            Neighbours per query. Rows with fewer than ``k`` codes in the
            index are padded with id -1 and distance ``n_bits + 1``.
        num_threads : int or None
            Threads (None = OpenMP default, honours ``OMP_NUM_THREADS``).
        filter : array-like of int ids, or 1-D bool mask indexed by id, optional
            Only these ids may be returned. The result is exactly the top
            ``k`` among the allowed codes (few allowed: only they are
            scanned; few excluded: an enlarged search is post-filtered).

        Returns
        -------
        SearchResult
            ``ids`` int64 (n_queries, k), ``distances`` int32 (n_queries, k),
            each row ordered by (distance, id). Read them by name: faiss's
            ``D, I = index.search(q, k)`` is ``r.distances, r.ids`` here.
        """
        q = _check_codes(queries, self.n_bits, "queries", allow_1d=True)
        k = check_k(k)
        threads = check_num_threads(num_threads)
        if filter is not None:
            return self._filtered_search(q, k, threads, filter)
        n_rows = len(self)
        check_result_size(q.shape[0], k, n_rows)
        k_run = min(k, n_rows)
        ids, dist = self._knn(q, k_run, threads)
        if k_run < k:
            full_ids = np.full((q.shape[0], k), -1, dtype=np.int64)
            full_dist = np.full((q.shape[0], k), self.pad_distance, dtype=np.int32)
            full_ids[:, :k_run] = ids
            full_dist[:, :k_run] = dist
            ids, dist = full_ids, full_dist
        return SearchResult(ids=ids, distances=dist)

    def _filtered_search(self, q: np.ndarray, k: int, threads: int,
                         filter: object) -> SearchResult:  # noqa: A002
        codes, ids = self._snapshot()
        pos = _filter.allowed_positions(ids, filter)
        check_result_size(q.shape[0], k, pos.size)
        if _filter.use_post_filter(k, len(ids), pos.size):
            wide = self.search(q, min(k + len(ids) - pos.size, len(ids)), threads or None)
            out_ids, dist = _filter.post_filter(wide.ids, wide.distances, ids[pos], k, -1,
                                                self.pad_distance)
            return SearchResult(ids=out_ids, distances=dist)
        sub = HammingIndex(self.n_bits)  # the allowed rows alone, scanned
        sub.add(np.ascontiguousarray(codes[pos]), ids[pos])
        return sub.search(q, k, threads or None)

    def range_search(self, queries: np.ndarray, radius: int, num_threads: int | None = None,
                     filter: object = None) -> RangeResult:  # noqa: A002 (faiss's word)
        """All codes within Hamming distance ``radius`` (inclusive) of each query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, n_words) or (n_words,), uint64
        radius : int >= 0
            Largest distance kept, in bits.
        num_threads : int or None
            Threads (None = OpenMP default).
        filter : array-like of int ids, or 1-D bool mask indexed by id, optional
            Only hits with these ids are kept (see :meth:`search`).

        Returns
        -------
        RangeResult
            CSR form: ``lims`` int64 (n_queries + 1,), ``ids`` int64 and
            ``distances`` int32; hits of query i ordered by (distance, id).
        """
        q = _check_codes(queries, self.n_bits, "queries", allow_1d=True)
        radius = _check_radius(radius)
        threads = check_num_threads(num_threads)
        if filter is not None:
            allowed = self._snapshot()[1]
            allowed = allowed[_filter.allowed_positions(allowed, filter)]
        offsets, ids, dist = self._range(q, radius, threads)
        if filter is not None:
            offsets, ids, dist = _filter.filter_ranges(offsets, ids, dist, allowed)
        return RangeResult(lims=offsets, ids=ids, distances=dist)

    # -- removal and memory ------------------------------------------------
    def remove_ids(self, ids: object) -> int:
        """Remove every stored code whose id is in ``ids``; return how many were removed.

        The other codes keep their ids (searches report the same ids as
        before). Searches running meanwhile finish on the rows they started
        with. MIH tables, if any, are rebuilt; inverted lists lose the removed rows.
        """
        drop = ids_to_remove(ids)
        with self._write_lock:
            keep = ~np.isin(self._ids[: self._n], drop)
            removed = int(self._n - keep.sum())
            if removed:
                self._codes = np.ascontiguousarray(self._codes[: self._n][keep])
                self._ids = np.ascontiguousarray(self._ids[: self._n][keep])
                self._n = self._codes.shape[0]
                self._mih_tables = None
                if self._lists is not None:  # keeps the others' lists and rings
                    self._lists.remove_ids(drop)
                self._after_add()  # rebuilds the tables when the method wants them
                self._publish()
        return removed

    def memory_usage(self) -> int:
        """Bytes of the arrays the index holds: codes and ids (with the spare
        capacity kept for cheap adds, or a memory map's size), MIH tables and
        inverted lists."""
        codes, ids, tables, lists = self._codes, self._ids, self._mih_tables, self._lists
        extra = 0 if tables is None else sum(a.nbytes for a in tables.arrays().values())
        extra += 0 if lists is None else lists.memory_usage()
        return int(codes.nbytes + ids.nbytes + extra)

    @staticmethod
    def estimate_memory(n: int, n_bits: int = 256, method: str = "scan") -> int:
        """Bytes :meth:`memory_usage` reports for ``n`` codes added in one call.

        ``n * (8 * ceil(n_bits / 64) + 8)`` (codes and int64 ids; at least
        1024 rows are allocated), plus the MIH tables for ``method="mih"``:
        ``4 * (m * n + sum(2**w + 1)) + 4 * m`` for ``m`` substrings of ``w``
        bits, or the inverted lists for ``"ivf"`` (and ``"auto"`` from 65,536
        codes): :meth:`pyspec.IVFHammingIndex.estimate_memory` with
        ``sqrt(n)`` lists (a second copy of the codes and ids).
        """
        n_bits = _check_n_bits(n_bits)
        method = _plan.check_method(method)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        rows = max(int(n), 1024)
        total = rows * (8 * _n_words(n_bits) + 8)
        if n and (method == "ivf" or (method == "auto" and n >= _ivf_method.IVF_MIN_CODES)):
            from pyspec.index.ivf import IVFHammingIndex

            total += IVFHammingIndex.estimate_memory(int(n), n_bits,
                                                     _ivf_method.n_lists_for(int(n)))
        if n and method == "mih":
            widths = _mih.choose_widths(n_bits, int(n))
            total += 4 * (widths.size * int(n) + int((2 ** widths.astype(np.int64) + 1).sum()))
            total += widths.nbytes + 4 * n_bits  # + the bit order
        return int(total)

    # -- method choice, inverted lists and multi-index hashing -------------
    def plan(self, k: int | None = None, radius: int | None = None,
             n_queries: int = 1) -> _plan.SearchPlan:
        """The method a search of ``n_queries`` queries uses, and why.

        Give ``k`` for a k-NN search or ``radius`` for a range search.

        With ``method="auto"`` the choice comes from a cost model, in "codes
        a scan reads in the same time": the scan reads ``len(self)`` codes
        per query; the exact inverted-list search reads the bands its
        queries' k-th distance leaves open, which depends on how the codes
        cluster, so it is measured on 16 stored codes used as queries
        (cached until the next :meth:`add`, see
        :func:`pyspec.index._ivf_method.estimate_work`). The lists are
        chosen below three quarters of the scan's work. From 32 queries on,
        the scan shares its passes over the codes between queries and is
        priced at a third of that, and the lists stream their bands in memory
        order for the whole batch, priced at 0.3 of a lone query's. Range
        searches scan, except with ``method="mih"``.

        Returns
        -------
        SearchPlan
            ``method`` ("scan", "ivf" or "mih"), ``scan_work``, ``mih_work``
            and ``ivf_work`` (estimated, or None) and a one-line ``reason``.
        """
        if (k is None) == (radius is None):
            raise ValueError("pass exactly one of k (k-NN search) or radius (range search)")
        batch = n_queries >= _plan.BATCH_MIN_QUERIES
        codes, ids, _, lists = self._view
        key = ((self.method, batch, "knn", min(check_k(k), len(ids))) if k is not None
               else (self.method, batch, "range", _check_radius(radius)))
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        if self.method in ("ivf", "auto"):
            if k is not None:
                # assign the tail left by the last adds (an index loaded without
                # lists stays without: building them is add's job, not a query's)
                codes, ids, lists = self._synced_lists()
            found = _ivf_method.plan(self.method, codes, lists, key[3] if k is not None else None,
                                     batch)
        else:
            found = _plan.fixed(self.method, len(ids))
        self._plans[key] = found
        return found

    def _after_add(self) -> None:
        """Keep the method's structure current at add time, rebuilding it when the
        codes doubled since it was built.

        A rebuild costs a pass over all codes (per table for MIH; a training
        and a sort for the lists), so rebuilding only when the unindexed
        tail reaches the indexed part keeps the total cost of many small
        adds within twice one final build; a search or save indexes
        whatever tail is left (:meth:`_mih_sync`, :meth:`_lists_sync`).
        """
        self._plans.clear()
        if self.method == "mih":
            built = 0 if self._mih_tables is None else self._mih_tables.n_codes
            if self._n >= 2 * built:
                self._mih_sync()
        elif self.method == "ivf" or (self.method == "auto"
                                      and self._n >= _ivf_method.IVF_MIN_CODES):
            if self._n and (self._lists is None or self._n >= 2 * self._lists_trained):
                self._lists = _ivf_method.build(self._codes[: self._n], self._ids[: self._n],
                                                self.n_bits)
                self._lists_trained = self._n

    def _mih_sync(self) -> None:
        if self._mih_tables is None or self._mih_tables.n_codes != self._n:
            self._mih_tables = _mih.build_tables(self._codes[: self._n], self.n_bits)

    def _lists_sync(self) -> None:
        if self._lists is not None:
            _ivf_method.extend(self._lists, self._codes[: self._n], self._ids[: self._n])

    def _knn(self, q: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        codes, ids = self._snapshot()
        chosen = (self.plan(k=k, n_queries=q.shape[0])
                  if k and len(ids) and self.method != "scan" else None)
        if chosen is None or chosen.method == "scan":
            return _core.hamming_knn(q, codes, ids, k, self.pad_distance, threads)
        if chosen.method == "ivf":
            _, _, lists = self._synced_lists()
            return _ivf_method.knn(lists, q, k, threads)
        codes, ids, tables = self._synced_view()
        out_ids, dist, _ = tables.knn(q, codes, ids, k, self.pad_distance, 0, threads)
        return out_ids, dist

    def _range(self, q: np.ndarray, radius: int,
               threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes, ids = self._snapshot()
        chosen = (self.plan(radius=radius, n_queries=q.shape[0])
                  if len(ids) and self.method != "scan" else None)
        if chosen is None or chosen.method == "scan":
            return _core.hamming_range(q, codes, ids, radius, threads)
        codes, ids, tables = self._synced_view()
        offsets, out_ids, dist, _ = tables.range_search(q, codes, ids, radius, 0, threads)
        return offsets, out_ids, dist

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically to ``path`` (pyspec container, kind ``HX``), with
        its MIH tables or inverted lists (brought up to date first)."""
        codes, ids, lists = self._synced_lists()
        arrays = {"codes": codes, "ids": ids}
        meta: dict[str, Any] = {"n_bits": self.n_bits, "n_codes": len(ids),
                                "method": self.method}
        arrays.update(self._mih_arrays())
        if lists is not None:
            arrays.update(_ivf_method.arrays(lists))
            meta["lists"] = _ivf_method.meta(lists)
        write_container(path, _KIND, arrays, meta)

    def _mih_arrays(self) -> dict[str, np.ndarray]:
        """The MIH tables to save (brought up to date first), or none."""
        if self._mih_tables is None:
            return {}
        self._mih_sync()
        return self._mih_tables.arrays()

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> HammingIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        mmap : bool, default False
            Memory-map the codes read-only instead of reading them (the first
            :meth:`add` then copies them into memory). Checksums are verified
            in both modes.

        Raises
        ------
        pyspec.IndexFormatError
            Truncated, corrupted or foreign file.
        """
        arrays, meta = read_container(path, _KIND, mmap=mmap)
        return cls._from_parts(arrays, meta, str(path))

    @classmethod
    def _from_parts(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                    source: str) -> HammingIndex:
        def bad(msg: str) -> IndexFormatError:
            return IndexFormatError(f"{source}: {msg}")

        n_bits = meta.get("n_bits") if isinstance(meta, dict) else None
        if (isinstance(n_bits, bool) or not isinstance(n_bits, int)
                or not 1 <= n_bits <= _MAX_BITS):
            raise bad(f"invalid n_bits {n_bits!r} in metadata")
        codes, ids = arrays.get("codes"), arrays.get("ids")
        nw = _n_words(n_bits)
        if codes is None or ids is None:
            raise bad("missing 'codes' or 'ids' array")
        if codes.dtype != np.uint64 or codes.ndim != 2 or codes.shape[1] != nw:
            raise bad(f"codes must be uint64 (n, {nw}), found {describe(codes)}")
        if ids.dtype != np.int64 or ids.shape != (codes.shape[0],):
            raise bad(f"ids must be int64 ({codes.shape[0]},), found {describe(ids)}")
        if meta.get("n_codes") != codes.shape[0]:
            raise bad("code count in metadata does not match the arrays")
        if ids.size and int(ids.min()) < 0:
            raise bad("negative ids (corrupted file)")
        mask = _pad_mask(n_bits)
        if mask and codes.shape[0] and (codes[:, -1] & np.uint64(mask)).any():
            raise bad(f"codes have bits set above bit {n_bits - 1}")
        method = meta.get("method", "scan")
        if method not in _plan.METHODS:
            raise bad(f"invalid search method {method!r} in metadata")
        tables = _mih.tables_from_arrays(arrays, n_bits, codes.shape[0])
        if isinstance(tables, str):
            raise bad(tables)
        lists = _ivf_method.from_arrays(arrays, meta.get("lists"), n_bits, codes.shape[0],
                                        source)
        if isinstance(lists, str):
            raise bad(lists)
        index = cls(n_bits, method=method)
        index._codes = codes
        index._ids = ids
        index._n = codes.shape[0]
        # only the method's own structure is kept (files of "auto" before the
        # inverted lists hold MIH tables, which "auto" no longer uses)
        index._mih_tables = tables if method == "mih" else None
        if method in ("ivf", "auto") and lists is not None:
            index._lists, index._lists_trained = lists, codes.shape[0]
        index._publish()
        return index

    def __getstate__(self) -> dict[str, Any]:
        return {"n_bits": self.n_bits, "codes": np.array(self.codes), "ids": np.array(self.ids),
                "method": self.method}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["n_bits"], method=state.get("method", "scan"))
        self.add(np.ascontiguousarray(state["codes"], dtype=np.uint64), state["ids"])
