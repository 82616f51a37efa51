"""The published search workflows: catalogue search (merge of many queries) and template matching.

Both stream: queries (catalogue search) or targets (template matching) are
processed in chunks whose size bounds the memory of the hit lists, with a
tqdm progress bar between chunks, and every chunk uses all cores through the
engine's compiled search.

Catalogue search (M-star study): each query keeps its nearest ``fraction``
of the archive (10% in the study) or, for binary codes, every spectrum within
a Hamming ``radius``; the union of all kept spectra is the candidate
catalogue, with for each candidate the number of queries that retrieved it,
its best (smallest) distance and the query that achieved it. The merge is
exact and independent of the chunking (:class:`CandidateMerger`).

Template matching / redshift transfer (emission-line galaxy study): each
target gets its nearest template and inherits the template's class,
subclass and redshift, with the template id and distance.

The engine argument is anything with the small protocol that
:class:`pyspec.Engine` implements: ``search_prepared(flux, k, num_threads)``,
``range_search_prepared(flux, radius, num_threads)``, ``meta_rows(rows,
columns=None)`` (astropy Table of the metadata of those rows), ``backend`` (a
:class:`pyspec.backends.Backend`: whether distances are integers and range
search exists), ``metric`` (recorded in the output), ``__len__`` and
``distance_unit``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from pyspec._validation import as_float_matrix
from pyspec.backends import ids_distances

__all__ = ["CandidateMerger", "catalogue_search", "match_templates", "iter_prepared"]

# Hit-list entries (query x neighbour) held at once: 8M entries ~ 100 MB.
_MAX_HITS_PER_CHUNK = 8_000_000


class CandidateMerger:
    """Exact streaming union of per-query hit lists.

    Feed it ``(query_index, row, distance)`` triples in any order and chunking
    with :meth:`add`; :meth:`result` returns, per distinct row, how many
    distinct queries retrieved it, the smallest distance, and the query that
    reached it (ties broken by the smaller query index). Memory is bounded by
    the number of distinct candidates, not by the number of hits.
    """

    def __init__(self) -> None:
        self._rows = np.empty(0, np.int64)
        self._count = np.empty(0, np.int64)
        self._best = np.empty(0, np.float64)
        self._query = np.empty(0, np.int64)

    def add(self, query_index: np.ndarray, rows: np.ndarray, distances: np.ndarray) -> None:
        """Add hits: three 1-D arrays of equal length; rows < 0 (padding) are ignored.

        A (query, row) pair must be added at most once (each query's hit list
        has distinct rows, as every index guarantees).
        """
        q = np.asarray(query_index, np.int64).ravel()
        r = np.asarray(rows, np.int64).ravel()
        d = np.asarray(distances, np.float64).ravel()
        if not (q.shape == r.shape == d.shape):
            raise ValueError(f"query_index, rows and distances differ in length: "
                             f"{q.shape}, {r.shape}, {d.shape}")
        keep = r >= 0
        q, r, d = q[keep], r[keep], d[keep]
        rows = np.concatenate([self._rows, r])
        count = np.concatenate([self._count, np.ones(r.size, np.int64)])
        best = np.concatenate([self._best, d])
        query = np.concatenate([self._query, q])
        # sort by (row, distance, query): the first of each row group is its best hit
        order = np.lexsort((query, best, rows))
        rows, count, best, query = rows[order], count[order], best[order], query[order]
        first = np.ones(rows.size, bool)
        first[1:] = rows[1:] != rows[:-1]
        starts = np.flatnonzero(first)
        self._rows = rows[starts]
        self._count = np.add.reduceat(count, starts) if rows.size else count[:0]
        self._best = best[starts]
        self._query = query[starts]

    def __len__(self) -> int:
        return int(self._rows.size)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, n_queries, best_distance, best_query_index), sorted by row."""
        return self._rows.copy(), self._count.copy(), self._best.copy(), self._query.copy()


class DenseCandidateMerger:
    """Exact union for integer distances over a known archive size (Hamming engines).

    Same results as :class:`CandidateMerger`, kept in two dense arrays of
    ``n_rows`` entries (16 bytes per archive spectrum, whatever the number of
    hits): a hit counter, and the smallest ``distance * n_queries + query``
    per row, which orders hits by distance and then by query index.
    """

    def __init__(self, n_rows: int, n_queries: int) -> None:
        self._n_queries = max(int(n_queries), 1)
        self._count = np.zeros(int(n_rows), np.int64)
        self._key = np.full(int(n_rows), np.iinfo(np.int64).max, np.int64)

    def add(self, query_index: np.ndarray, rows: np.ndarray, distances: np.ndarray) -> None:
        """Add hits (as :meth:`CandidateMerger.add`; distances must be integers >= 0)."""
        q = np.asarray(query_index, np.int64).ravel()
        r = np.asarray(rows, np.int64).ravel()
        d = np.asarray(distances).ravel()
        if not (q.shape == r.shape == d.shape):
            raise ValueError(f"query_index, rows and distances differ in length: "
                             f"{q.shape}, {r.shape}, {d.shape}")
        keep = r >= 0
        q, r, d = q[keep], r[keep], d[keep].astype(np.int64)
        self._count += np.bincount(r, minlength=self._count.size)
        np.minimum.at(self._key, r, d * self._n_queries + q)

    def __len__(self) -> int:
        return int(np.count_nonzero(self._count))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, n_queries, best_distance, best_query_index), sorted by row."""
        rows = np.flatnonzero(self._count)
        key = self._key[rows]
        return (rows.astype(np.int64), self._count[rows], (key // self._n_queries).astype(
            np.float64), key % self._n_queries)


def iter_prepared(flux: np.ndarray, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, chunk)`` over the rows of a (possibly memory-mapped) matrix."""
    for start in range(0, flux.shape[0], chunk_size):
        yield start, as_float_matrix(flux[start:start + chunk_size], "flux")


def _progress(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="spec", disable=not progress, leave=False)


def _check_engine_pixels(engine: Any, flux: np.ndarray, what: str) -> None:
    n_pix = getattr(engine, "n_pixels", None)
    if n_pix is not None and flux.shape[1] != n_pix:
        raise ValueError(f"{what} have {flux.shape[1]} pixels but the engine's grid has {n_pix}; "
                         "prepare them on the engine's grid (same store settings)")


def catalogue_search(engine: Any, query_flux: np.ndarray, query_ids: Any = None, *,
                     fraction: float | None = None, k: int | None = None,
                     radius: int | None = None, chunk_size: int | None = None,
                     num_threads: int | None = None, progress: bool = False,
                     query_meta: Any = None) -> Any:
    """Run every query against ``engine`` and merge the hits into a candidate catalogue.

    Parameters
    ----------
    engine : pyspec.Engine
        Engine over the archive to search.
    query_flux : ndarray of shape (n_queries, n_pixels), float32
        Query spectra prepared on the engine's grid (e.g. rows of a store).
    query_ids : sequence of length n_queries, optional
        Labels of the queries (default: their row numbers).
    fraction : float in (0, 1], optional
        Keep each query's nearest ``ceil(fraction * len(engine))`` spectra
        (0.1 in the M-star study). Exactly one of ``fraction``, ``k`` and
        ``radius`` must be given.
    k : int, optional
        Keep each query's ``k`` nearest spectra.
    radius : int, optional
        Keep every spectrum within this Hamming distance (binary engines only).
    chunk_size : int, optional
        Queries per chunk (default: as many as keep about 8M hits in memory).
    num_threads : int, optional
        Threads for the compiled search (default: all cores).
    progress : bool
        Show a tqdm progress bar.
    query_meta : astropy.table.Table, optional
        Metadata of the queries (``class``, ``subclass`` columns are copied
        to ``best_query_class``/``best_query_subclass``).

    Returns
    -------
    astropy.table.Table
        One row per candidate, sorted by (best_distance, row): the archive
        metadata, then ``row``, ``n_queries``, ``best_distance``, ``best_query``.
    """

    given = [x is not None for x in (fraction, k, radius)]
    if sum(given) != 1:
        raise ValueError("give exactly one of fraction=, k= or radius=")
    n_db = len(engine)
    if fraction is not None:
        if not (0.0 < float(fraction) <= 1.0):
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        k = max(1, math.ceil(float(fraction) * n_db))
    if k is not None and (isinstance(k, bool) or int(k) < 1):
        raise ValueError(f"k must be >= 1, got {k}")
    if radius is not None:
        if not engine.backend.supports_range:
            raise ValueError("radius= needs a binary (Hamming) engine; use fraction= or k=")
        if int(radius) < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
    n_q = query_flux.shape[0]
    if query_ids is None:
        query_ids = np.arange(n_q)
    query_ids = np.asarray(query_ids)
    if query_ids.shape != (n_q,):
        raise ValueError(f"query_ids: expected {n_q} labels, got shape {query_ids.shape}")
    if chunk_size is None:
        per_query = min(k, n_db) if k is not None else max(1, n_db // 100)
        chunk_size = max(1, min(1024, _MAX_HITS_PER_CHUNK // max(per_query, 1)))

    # integer (Hamming) distances: dense per-row arrays; float distances: sort-based union
    dense = engine.backend.integer_distances
    merger: Any = DenseCandidateMerger(n_db, n_q) if dense else CandidateMerger()
    with _progress(n_q, "catalogue search", progress) as bar:
        for start, chunk in iter_prepared(query_flux, chunk_size):
            _check_engine_pixels(engine, chunk, "queries")
            qidx = np.arange(start, start + chunk.shape[0])
            if radius is not None:
                res = engine.range_search_prepared(chunk, int(radius), num_threads=num_threads)
                merger.add(np.repeat(qidx, np.diff(res.offsets)), *ids_distances(res))
            else:
                ids, dist = ids_distances(engine.search_prepared(chunk, int(k),
                                                                 num_threads=num_threads))
                merger.add(np.repeat(qidx, ids.shape[1]), ids, dist)
            bar.update(chunk.shape[0])

    rows, count, best, qbest = merger.result()
    order = np.lexsort((rows, best))
    rows, count, best, qbest = rows[order], count[order], best[order], qbest[order]
    table = engine.meta_rows(rows)
    table["row"] = rows
    table["n_queries"] = count
    dist = best.astype(np.int32 if engine.backend.integer_distances else np.float32)
    table["best_distance"] = dist
    table["best_distance"].unit = engine.distance_unit
    table["best_query"] = query_ids[qbest] if rows.size else query_ids[:0]
    if query_meta is not None:
        for src, dst in (("class", "best_query_class"), ("subclass", "best_query_subclass")):
            if src in query_meta.colnames:
                table[dst] = np.asarray(query_meta[src])[qbest] if rows.size else \
                    np.asarray(query_meta[src])[:0]
    table.meta["search"] = {"n_queries": int(n_q), "n_archive": int(n_db),
                            "fraction": fraction, "k": None if k is None else int(k),
                            "radius": radius, "metric": engine.metric}
    return table


def match_templates(engine: Any, target_flux: np.ndarray, target_meta: Any = None, *,
                    chunk_size: int = 4096, num_threads: int | None = None,
                    progress: bool = False, rerank: int | None = None) -> Any:
    """Nearest template for every target, with the template's class and redshift carried over.

    Two-stage like :meth:`pyspec.Engine.query`: the codes select ``rerank``
    candidate templates (default ``max(10, 100)``; 0 = the nearest code
    only) and exact squared L2 on the stored templates picks the nearest.

    Parameters
    ----------
    engine : pyspec.Engine
        Engine built over the templates (e.g. released galaxy spectra).
    target_flux : ndarray of shape (n_targets, n_pixels), float32
        Target spectra prepared on the engine's grid (a store's ``flux``
        memmap streams in chunks).
    target_meta : astropy.table.Table, optional
        Metadata of the targets (one row each), copied to the output.
    chunk_size : int
        Targets per chunk.

    Returns
    -------
    astropy.table.Table
        The target metadata (or ``target_row``) plus ``template_id``,
        ``template_row``, ``template_distance``, ``template_class``,
        ``template_subclass`` and ``template_z`` (redshift transfer, "RT").
        Targets with no template (empty engine) get row -1 and NaN redshift.
    """
    from astropy.table import Table

    n_t = target_flux.shape[0]
    if target_meta is not None and len(target_meta) != n_t:
        raise ValueError(f"target_meta has {len(target_meta)} rows for {n_t} targets")
    candidates = engine._candidates(1, rerank) if hasattr(engine, "_candidates") else 0
    exact = candidates > 0 or not engine.backend.integer_distances
    rows = np.full(n_t, -1, np.int64)
    dist = np.full(n_t, np.inf if exact else -1, np.float64)
    with _progress(n_t, "template matching", progress) as bar:
        for start, chunk in iter_prepared(target_flux, int(chunk_size)):
            _check_engine_pixels(engine, chunk, "targets")
            stop = start + chunk.shape[0]
            if candidates:
                cand, _ = ids_distances(engine.search_prepared(chunk, candidates,
                                                                num_threads=num_threads))
                ids, d = engine.rerank(np.asarray(chunk, np.float32), cand, 1)
            else:
                ids, d = ids_distances(engine.search_prepared(chunk, 1, num_threads=num_threads))
            rows[start:stop], dist[start:stop] = ids[:, 0], d[:, 0]
            bar.update(chunk.shape[0])

    table = Table(target_meta, copy=True) if target_meta is not None else Table()
    table["target_row"] = np.arange(n_t, dtype=np.int64)
    found = rows >= 0
    safe = np.where(found, rows, 0)
    wanted = ("id", "class", "subclass", "z")
    meta = engine.meta_rows(safe, wanted) if len(engine) else None

    def carry(name: str, fill: Any) -> np.ndarray:
        if meta is None or name not in meta.colnames:
            return np.full(n_t, fill)
        values = np.asarray(meta[name])
        if values.dtype.kind == "f":
            values = np.where(found, values, np.nan)
        elif values.dtype.kind in "US":
            values = np.where(found, values, "")
        return values

    table["template_id"] = carry("id", "")
    table["template_row"] = rows
    if not exact:
        table["template_distance"] = np.where(found, dist, -1).astype(np.int32)
    else:
        table["template_distance"] = dist.astype(np.float32)
    table["template_distance"].unit = None if candidates else engine.distance_unit
    table["template_class"] = carry("class", "")
    table["template_subclass"] = carry("subclass", "")
    table["template_z"] = carry("z", np.nan).astype(np.float64)
    table.meta["template_matching"] = {"n_targets": int(n_t), "n_templates": len(engine),
                                       "metric": "squared L2 (re-ranked)" if candidates
                                       else engine.metric, "candidates": int(candidates)}
    return table
