"""Queries of an engine: two-stage search, exact re-ranking and neighbour tables.

:class:`QueryMixin` holds the query side of :class:`pyspec.Engine`: the
candidates the codes select are re-ordered by exact squared L2 in the
engine's re-rank space (principal-component projections or the stored
spectra, see :mod:`pyspec.rerank_space`), and the neighbours come back as one
astropy Table with their metadata. The mixin reads only the engine's public
search methods (``search_prepared``, ``prepare``), its metadata columns and
its store.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec._engine_files import load_array
from pyspec._validation import check_k
from pyspec.backends import ids_distances
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import column_crc

# Output columns of a query, in this order, when the store has them.
RESULT_COLUMNS = ("id", "file", "ra", "dec", "class", "subclass", "z", "snr_r")

# Keys of remembered query spectra (table.meta["query_key"]): a random prefix per process
# (a table written by one process never matches a query of another) and a counter (cheaper
# than a uuid4 per query, which reads the OS's random source).
_QUERY_KEYS_PREFIX = uuid.uuid4().hex[:16] + "-"
_QUERY_KEYS = itertools.count()


class QueryMixin:
    """Query methods of :class:`pyspec.Engine` (see :mod:`pyspec._engine_query`)."""

    @property
    def rerank_space(self) -> str:
        """Where candidates are re-ranked: "pca" or "flux" (engines before issue 14: "flux")."""
        return str((self.info.get("rerank") or {}).get("space", "flux"))

    def _rerank_array(self, name: str, shape: tuple[int, ...], mmap: bool = True) -> np.ndarray:
        """One array of the re-rank space, its data CRC checked (version-2 engines)."""
        path = self.path / "rerank" / name
        arr = load_array(path, shape, mmap)
        record = (self.info.get("checksums") or {}).get(f"rerank/{name}")
        if self.info.get("checksums") is not None and (
                record is None or column_crc(arr) != record.get("data_crc32")):
            raise IndexFormatError(f"{path}: re-rank array checksum mismatch or missing record "
                                   "(file corrupted)")
        return arr

    def _principal(self) -> tuple[Any, np.ndarray]:
        """(PrincipalBasis, memory-mapped projections of every row) of a "pca" engine."""
        if self._pca is None:
            from pyspec.rerank_space import PrincipalBasis

            try:
                c = int(self.info["rerank"]["n_components"])
            except (TypeError, ValueError, KeyError):
                raise IndexFormatError(f"{self.path / 'engine.json'}: invalid re-rank "
                                       "description") from None
            basis = PrincipalBasis(self._rerank_array("pca_mean.npy", (self.n_pixels,), False),
                                   self._rerank_array("pca_axes.npy", (c, self.n_pixels), False),
                                   self.info["rerank"].get("explained_variance_ratio", 0.0))
            self._pca = basis, self._rerank_array("pca_projection.npy", (len(self), c))
        return self._pca

    def rerank(self, flux: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-order candidate rows by exact squared L2 in the engine's re-rank space.

        flux : (n, n_pixels) float32 prepared queries; ids : (n, m) int64
        candidate rows (-1 = none). Returns (ids, distances float32) of
        shape (n, k), ordered by (distance, row). The space is
        :attr:`rerank_space`: the projections on the store's principal
        components ("pca") or the stored spectra ("flux").
        """
        flux = self._in_search_space(np.asarray(flux, np.float32))
        store = self.store  # checked even when unused: a changed store means a stale engine
        if self.rerank_space == "pca":
            basis, rows_of = self._principal()
            flux = basis.project(flux)
        else:
            rows_of = store.flux
        n = flux.shape[0]
        out_ids = np.full((n, k), -1, np.int64)
        out_d = np.full((n, k), np.inf, np.float32)
        for i in range(n):
            cand = ids[i][ids[i] >= 0]
            if cand.size == 0:
                continue
            order_rows = np.sort(cand)  # sorted reads from the memmap
            cand_x = np.asarray(rows_of[order_rows], np.float32)
            if self.rerank_space != "pca":
                cand_x = self._in_search_space(cand_x)
            diff = cand_x - flux[i]
            d = np.einsum("ij,ij->i", diff, diff)
            o = np.lexsort((order_rows, d))[:k]
            out_ids[i, :o.size] = order_rows[o]
            out_d[i, :o.size] = d[o]
        return out_ids, out_d

    # -- queries --------------------------------------------------------------------------------
    def query(self, spectrum: Any, k: int = 10, rerank: int | None = None,
              num_threads: int | None = None, columns: str | Sequence[str] = "main",
              prepared: bool = False, where: Any = None) -> Any:
        """Query-by-example for one spectrum.

        Parameters
        ----------
        spectrum : path, Spectrum or ndarray of shape (n_pixels,)
            FITS file (read with :func:`pyspec.read_spectrum`), a spectrum, or
            flux on the engine's grid.
        k : int
            Neighbours to return.
        rerank : int, optional
            Two-stage search: the codes select the best ``rerank`` (>= k)
            candidates and exact squared L2 in :attr:`rerank_space`
            (principal components by default, or the stored spectra)
            orders them; distances are then float squared L2. Default (None):
            ``max(10 k, 100)`` candidates when the store is reachable (a
            warning and code distances otherwise); 0: codes only.
        num_threads : int, optional
            Threads for encoding and search. Default: all cores (or
            ``OMP_NUM_THREADS``): a one-spectrum forward pass splits W's
            columns and the scan splits the codes across threads. On a
            machine whose cores are busy with other work, ``num_threads=1``
            avoids waiting for the scheduler (measured 8-24 ms instead of
            ~1 ms for 1M codes on a loaded 2-core machine).
        columns : "main", "all" or list of str
            Store metadata columns to include: "main" (default) is id, file,
            ra, dec, class, subclass, z and snr_r; "all" every stored column
            (each column adds ~50 us of astropy Table construction).
        prepared : bool
            ``spectrum`` is an array already prepared like the store's rows
            (see :meth:`prepare`).
        where : callable, bool mask or row numbers, optional
            Only rows it allows are returned (:meth:`allowed_rows`), e.g.
            ``where=lambda m: m["snr_r"] > 20``: the k nearest among them.

        Returns
        -------
        astropy.table.Table
            ``k`` rows (fewer if the engine is smaller), ordered by distance:
            rank, row, the store metadata (id, file, ra, dec, class, subclass,
            z, snr_r, ...) and distance.

        Raises
        ------
        FileNotFoundError, FitsFormatError
            If the file is missing or not a spectrum.
        SpectrumCoverageError or ValueError
            If the spectrum cannot be prepared on the engine's grid.
        """
        if isinstance(spectrum, np.ndarray) and spectrum.ndim != 1:
            raise ValueError(f"query() takes one spectrum; got an array of shape {spectrum.shape}, "
                             "use query_batch()")
        flux, metas, rejects = self.prepare(spectrum, prepared)
        if rejects:
            from pyspec.errors import SpectrumCoverageError

            name, reason = rejects[0]
            raise SpectrumCoverageError(f"{name}: cannot be prepared on the engine's grid: "
                                        f"{reason}")
        table = self._neighbour_table(flux, k, rerank, num_threads, columns, where)
        table.meta["query"] = {k2: _plain(v) for k2, v in metas[0].items()
                               if k2 in ("id", "file", "ra", "dec", "class", "subclass", "z")}
        table.meta["query_flux_available"] = True
        self._remember_queries(table, flux)
        return table

    def query_batch(self, spectra: Any, k: int = 10, rerank: int | None = None,
                    num_threads: int | None = None,
                    columns: str | Sequence[str] = "main", prepared: bool = False,
                    where: Any = None) -> Any:
        """Query-by-example for many spectra at once (one table, ``query_index`` column).

        Inputs that cannot be read or prepared are skipped and listed in
        ``table.meta["rejects"]`` as [name, reason] pairs.
        """
        flux, metas, rejects = self.prepare(spectra, prepared)
        table = self._neighbour_table(flux, k, rerank, num_threads, columns, where)
        qid = np.array([str(m.get("id", i)) if m.get("id") is not None else str(i)
                        for i, m in enumerate(metas)] or [""])
        if len(table):
            table["query_id"] = qid[table["query_index"]]
        else:
            table["query_id"] = np.array([], dtype=str)
        table.meta["rejects"] = [[str(n), str(r)] for n, r in rejects]
        table.meta["n_queries"] = int(flux.shape[0])
        self._remember_queries(table, flux)
        return table

    def _neighbour_table(self, flux: np.ndarray, k: int, rerank: int | None,
                         num_threads: int | None, columns: str | Sequence[str] = "main",
                         where: Any = None) -> Any:
        k = check_k(k)
        unit = self.distance_unit
        explicit = rerank is not None
        rerank = self._candidates(k, rerank)
        where_kw = {} if where is None else {"where": where}  # sharded engines take no where
        if rerank:
            if explicit and rerank < k:
                raise ValueError(f"rerank ({rerank}) must be >= k ({k}): it is the number of "
                                 "candidates re-ranked to choose the best k (0 = codes only)")
            m = max(int(rerank), k)
            candidates, _ = ids_distances(self.search_prepared(flux, m, num_threads=num_threads,
                                                                  **where_kw))
            ids, dist = self.rerank(flux, candidates, k)
            unit = None
        else:
            ids, dist = ids_distances(self.search_prepared(flux, k, num_threads=num_threads,
                                                            **where_kw))
        valid = ids >= 0
        qidx = np.nonzero(valid)[0]
        rank = (np.cumsum(valid, axis=1) - 1)[valid] + 1
        rows = ids[valid]
        if columns == "main":
            wanted: Sequence[str] | None = RESULT_COLUMNS
        elif columns == "all":
            wanted = None
        elif isinstance(columns, str):
            raise ValueError(f"columns must be 'main', 'all' or a list of names, got {columns!r}")
        else:
            unknown = set(columns) - set(self._meta_cols.colnames)
            if unknown:
                raise ValueError(f"unknown metadata column(s) {sorted(unknown)}; "
                                 f"the engine has {self._meta_cols.colnames}")
            wanted = list(columns)
        values, units, descriptions = self._meta_cols.columns(rows, wanted)
        # one Table construction, main columns first (astropy column edits are slow and a
        # single query's latency budget is a few milliseconds)
        cols = {"query_index": qidx.astype(np.int64), "rank": rank.astype(np.int32)}
        cols.update((c, values[c]) for c in RESULT_COLUMNS if c in values)
        cols["distance"] = dist[valid]
        cols["row"] = rows
        cols.update((c, v) for c, v in values.items() if c not in cols)
        if unit is not None:
            units = {**units, "distance": unit}
        from pyspec.catalogue import provenance, restamp

        if self._provenance_block is None:  # fixed for the engine's lifetime
            self._provenance_block = provenance(
                command="query",
                engine={"path": str(self.path.resolve()), "kind": self.kind,
                        "n_spectra": len(self),
                        "grid": self.grid.name if hasattr(self.grid, "name") else None},
                model={"class": self.info["model_class"], **self.info.get("model_params", {})})
        meta = restamp(self._provenance_block, k=k, rerank=rerank)
        return self._result_table(cols, units, descriptions, meta)

    def _candidates(self, k: int, rerank: int | None) -> int:
        """Candidates to re-rank exactly (0 = codes only); see :meth:`query`."""
        from pyspec.search_checks import default_candidates

        if rerank is not None:
            if isinstance(rerank, bool) or int(rerank) < 0:
                raise ValueError(f"rerank must be an int >= 0, got {rerank!r}")
            return int(rerank)
        try:
            self.store  # noqa: B018  (opens and checks the store once)
        except FileNotFoundError as exc:
            import warnings

            warnings.warn(f"{exc}; answering from the codes alone", UserWarning, stacklevel=4)
            return 0
        return default_candidates(k, len(self))

    def _remember_queries(self, table: Any, flux: np.ndarray) -> None:
        """Keep the prepared query flux so :meth:`plot_query` draws the table's own query."""
        store = self.__dict__.setdefault("_query_flux", {})
        if len(store) >= 64:  # bounded: the oldest results lose their flux
            # default None: queries on other threads may evict the same entry at once
            store.pop(next(iter(store), None), None)
        key = f"{_QUERY_KEYS_PREFIX}{next(_QUERY_KEYS)}"
        store[key] = flux
        table.meta["query_key"] = key

    def _query_flux_of(self, table: Any) -> np.ndarray:
        """The prepared flux of the query whose neighbours ``table`` lists."""
        flux = self.__dict__.get("_query_flux", {}).get(table.meta.get("query_key"))
        if flux is None:
            raise ValueError("this table's query spectrum is not known to the engine (a table "
                             "read from disk, or an old result): pass query_flux= (the prepared "
                             "query spectrum, e.g. engine.prepare(path)[0][0])")
        qi = np.unique(np.asarray(table["query_index"])) if "query_index" in table.colnames \
            else np.array([0])
        if qi.size != 1:
            raise ValueError(f"the table holds the neighbours of {qi.size} queries; plot one: "
                             "table[table['query_index'] == i]")
        return flux[int(qi[0])]

    def _result_table(self, cols: dict[str, np.ndarray], units: dict[str, Any],
                      descriptions: dict[str, Any], meta: dict[str, Any]) -> Any:
        """astropy Table of ``cols`` (equal-length 1-D arrays).

        astropy builds a Table at ~25 us per column, a tenth of a single
        query's latency. Each result layout (names, dtypes, units) is therefore
        built once as a one-row template; a result is the template's row
        repeated by fancy indexing (new columns at ~10 us each, units and
        descriptions carried over) with the values written into them.
        """
        from astropy.table import Table

        key = (tuple((name, v.dtype.str, v.shape[1:]) for name, v in cols.items()),
               tuple(sorted(units.items())), tuple(sorted(descriptions.items())))
        template = self._table_templates.get(key)
        if template is None:
            if len(self._table_templates) >= 32:  # many column selections: start over
                self._table_templates.clear()
            template = Table({name: np.zeros((1,) + v.shape[1:], v.dtype)
                              for name, v in cols.items()},
                             units=units, descriptions=descriptions, copy=False)
            self._table_templates[key] = template
        n = len(next(iter(cols.values()))) if cols else 0
        table = template[np.zeros(n, dtype=np.intp)]
        for name, v in cols.items():
            table[name].data[...] = v
        table.meta.update(meta)
        return table

    def spectra(self, rows: Iterable[int]) -> np.ndarray:
        """Prepared flux of the given store rows, float32 (n, n_pixels)."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, np.int64)
        return np.asarray(self.store.flux[rows], np.float32)

    def plot_query(self, table: Any, path: str | os.PathLike, query_flux: np.ndarray | None = None,
                   query_label: str | None = None) -> Path:
        """PNG of a :meth:`query` result: the query in red over its neighbours."""
        from pyspec.plotting import plot_neighbours

        if query_flux is None:
            query_flux = self._query_flux_of(table)
        rows = np.asarray(table["row"], np.int64)
        labels = []
        counts = self.backend.integer_distances and table["distance"].unit is not None
        for r in table:
            d = r["distance"]
            dtxt = f"{int(d)}" if counts else f"{float(d):.3g}"
            cls = r["class"] if "class" in table.colnames else ""
            sub = r["subclass"] if "subclass" in table.colnames else ""
            labels.append(f"{r['rank']}. {r['id'] if 'id' in table.colnames else r['row']}  "
                          f"{cls} {sub}  d={dtxt}")
        if query_label is None:
            q = table.meta.get("query", {})
            query_label = f"query {q.get('id', '')}  {q.get('class', '') or ''} " \
                          f"{q.get('subclass', '') or ''}"
        return plot_neighbours(path, self.grid.wavelength, query_flux, self.spectra(rows),
                               labels, query_label=query_label,
                               title=f"{len(rows)} nearest neighbours ({self.info['model_class']}, "
                                     f"{len(self):,d} spectra)")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)

