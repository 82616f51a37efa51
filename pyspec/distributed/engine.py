"""A sharded engine: one engine directory per shard and a manifest, searched as one engine.

``DIR/sharded-engine.json`` lists ``DIR/shard-NNNN/`` engine directories
(written by :func:`~pyspec.distributed.build_sharded`), each with its global
row offset. :class:`ShardedEngine` is an :class:`~pyspec.Engine`: ``query``,
``query_batch``, ``search_prepared``, ``meta_rows`` and the workflows
(catalogue search, template matching) work unchanged, and
``Engine.open(DIR)`` returns one. Queries are encoded once (every shard holds
the same model), each shard is scanned for its own top-k, locally or as a
Dask task per shard, and the lists are merged exactly by (distance, global
row) (:mod:`pyspec.distributed.merge`). Re-ranking reads every shard's
projections on the one principal basis the build fitted over the whole
store (checked on open), as one row space: the re-ranked results are those
of a single engine too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.distributed.merge import merge_ranges, merge_topk
from pyspec.distributed.rows import ConcatRows
from pyspec.distributed.store import read_manifest
from pyspec.distributed.tasks import connect, run_per_shard
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError

SHARDED_ENGINE_FILE = "sharded-engine.json"
SHARDED_ENGINE_FORMAT = "pyspec-sharded-engine"

# Shard engines opened by this process (a Dask worker keeps its own): opening maps
# files, so a worker opens a shard once and serves every later search of it from memory.
_OPEN_SHARDS: dict[str, Engine] = {}
_OPEN_LOCK = threading.Lock()


def _shard_engine(path: str) -> Engine:
    # keyed by the description's mtime too: a shard rebuilt at the same path is reopened
    key = f"{path}@{os.stat(Path(path) / 'engine.json').st_mtime_ns}"
    with _OPEN_LOCK:
        eng = _OPEN_SHARDS.get(key)
        if eng is None:
            eng = _OPEN_SHARDS[key] = Engine.open(path)
        return eng


def _search_shard(path: str, offset: int, payload: np.ndarray, k: int,
                  num_threads: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    res = _shard_engine(path).index.search(payload, k, num_threads=num_threads)
    return res.ids, res.distances, offset


def _range_shard(path: str, offset: int, payload: np.ndarray, radius: int,
                 num_threads: int | None) -> tuple[Any, int]:
    return _shard_engine(path).index.range_search(payload, radius, num_threads=num_threads), offset


class _ShardedMeta:
    """Metadata columns of all shards, addressed by global row (the engine's ``_meta_cols``)."""

    def __init__(self, shards: list[Engine], offsets: np.ndarray) -> None:
        self._shards = shards
        self._offsets = offsets
        first = shards[0]._meta_cols.colnames
        common = set.intersection(*(set(s._meta_cols.colnames) for s in shards))
        self.colnames = [c for c in first if c in common]
        self._dtypes: dict[str, np.dtype] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _dtype(self, name: str) -> np.dtype:
        # one dtype per column whichever rows are asked for (widest string of any shard)
        if name not in self._dtypes:
            empty = np.empty(0, np.int64)
            self._dtypes[name] = np.result_type(
                *(s._meta_cols.columns(empty, [name])[0][name].dtype for s in self._shards))
        return self._dtypes[name]

    def columns(self, rows: np.ndarray, columns: Sequence[str] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        rows = np.asarray(rows, np.int64)
        wanted = [c for c in self.colnames if columns is None or c in columns]
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        values = {c: np.empty(rows.shape, self._dtype(c)) for c in wanted}
        units: dict[str, Any] = {}
        descriptions: dict[str, Any] = {}
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            v, u, d = self._shards[s]._meta_cols.columns(rows[sel] - self._offsets[s], wanted)
            for c in wanted:
                values[c][sel] = v[c]
            units.update(u)
            descriptions.update(d)
        if not rows.size:  # units of a result do not depend on its rows either
            _, units, descriptions = self._shards[0]._meta_cols.columns(rows, wanted)
        return values, units, descriptions

    def rows(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> Any:
        from astropy.table import Table

        values, units, descriptions = self.columns(rows, columns)
        return Table(values, units=units, descriptions=descriptions, copy=False)


class _ShardedStoreView:
    """The stores behind the shards, as one (re-ranking, neighbour spectra, measurements)."""

    def __init__(self, engine: ShardedEngine) -> None:
        entries = engine.info["shards"]
        stores = [s.store for s in engine.shards]
        starts = [int(e.get("store_row_offset", 0)) for e in entries]
        lengths = [len(s) for s in engine.shards]
        self.flux = ConcatRows([st.flux for st in stores], starts, lengths)
        self.ivar = ConcatRows([st.ivar for st in stores], starts, lengths)
        self.grid = engine.grid
        self.path = engine.path

    def __len__(self) -> int:
        return len(self.flux)


class ShardedEngine(Engine):
    """An engine split into shards (see the module docstring).

    Extra attributes: ``shards`` (the shard :class:`Engine` objects),
    ``offsets`` (global row of each shard's first spectrum, plus the total)
    and ``client`` (the Dask client searches run on, or None: in this
    process). Set ``client`` with :meth:`use_client`.
    """

    def __init__(self, path: Path, info: dict[str, Any], shards: list[Engine]) -> None:
        # the metadata columns live in the shards (_ShardedMeta below), not beside the manifest
        super().__init__(path, {**info, "meta_columns": []}, shards[0].model, None)
        self.info = info
        self.shards = shards
        self.shard_paths = [str(s.path) for s in shards]
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
        self._meta_cols = _ShardedMeta(shards, self.offsets)
        self.client: Any = None

    @classmethod
    def open(cls, path: str | os.PathLike, mmap: bool = True, client: Any = None
             ) -> ShardedEngine:
        """Open a sharded engine directory (shard indexes memory-mapped)."""
        path = Path(path)
        info = read_manifest(path / SHARDED_ENGINE_FILE, SHARDED_ENGINE_FORMAT)
        shards = [Engine.open(path / e["path"], mmap=mmap) for e in info["shards"]]
        for e, s in zip(info["shards"], shards, strict=True):
            if len(s) != int(e["n_spectra"]):
                raise IndexFormatError(f"{s.path}: {len(s)} spectra, the manifest says "
                                       f"{e['n_spectra']}")
            if s.info["model_class"] != info["model_class"] or s.kind != info["kind"]:
                raise IndexFormatError(f"{s.path}: a {s.info['model_class']} shard in a "
                                       f"{info['model_class']} engine")
        _check_same_basis(path, info, shards)
        if sum(len(s) for s in shards) != int(info["n_spectra"]):
            raise IndexFormatError(f"{path}: shards hold {sum(len(s) for s in shards)} spectra, "
                                   f"the manifest says {info['n_spectra']}")
        engine = cls(path, info, shards)
        engine.use_client(client)
        return engine

    def verify(self) -> dict[str, int]:
        """Check every shard against its recorded checksums (see :meth:`Engine.verify`)."""
        totals = {"files": 1, "columns": 0}  # the manifest was checked on open
        for shard in self.shards:
            for key, value in shard.verify().items():
                totals[key] += value
        return totals

    def use_client(self, client: Any) -> ShardedEngine:
        """Search on this Dask client / scheduler address (None: in this process)."""
        self.client = connect(client)
        return self

    def __repr__(self) -> str:
        return (f"ShardedEngine({str(self.path)!r}, kind={self.kind!r}, "
                f"model={self.info['model_class']}, n_spectra={len(self)}, "
                f"n_shards={len(self.shards)})")

    def _shard_args(self) -> list[tuple[str, int]]:
        return [(p, int(o)) for p, o in zip(self.shard_paths, self.offsets[:-1], strict=True)]

    def search_prepared(self, flux: np.ndarray, k: int, num_threads: int | None = None) -> Any:
        """k-NN of prepared spectra over all shards: SearchResult(global rows, distances)."""
        payload = self._index_input(flux, num_threads)  # encoded once for every shard
        if self.client is None:
            parts = [(*_shard_search_local(s, payload, k, num_threads), int(o))
                     for s, o in zip(self.shards, self.offsets[:-1], strict=True)]
        else:
            parts = run_per_shard(self.client, _search_shard, self._shard_args(),
                                  payload=payload, k=int(k), num_threads=num_threads)
        return merge_topk(parts, int(k))

    def range_search_prepared(self, flux: np.ndarray, radius: int,
                              num_threads: int | None = None) -> Any:
        """Every spectrum within Hamming ``radius``, over all shards (RangeResult, global rows)."""
        if not self.backend.supports_range:
            raise ValueError("range search by radius needs a binary (Hamming) engine")
        payload = self._index_input(flux, num_threads)  # encoded once for every shard
        if self.client is None:
            parts = [(s.index.range_search(payload, int(radius), num_threads=num_threads), int(o))
                     for s, o in zip(self.shards, self.offsets[:-1], strict=True)]
        else:
            parts = run_per_shard(self.client, _range_shard, self._shard_args(),
                                  payload=payload, radius=int(radius), num_threads=num_threads)
        return merge_ranges(parts)

    def _principal(self) -> tuple[Any, Any]:
        """(the shared PrincipalBasis, every shard's projections as one row space)."""
        if self._pca is None:
            parts = [s._principal() for s in self.shards]
            self._pca = parts[0][0], ConcatRows([p[1] for p in parts])
        return self._pca

    @property
    def store(self) -> Any:
        """The shards' stores as one row space (for re-ranking and neighbour spectra)."""
        if self._store is None:
            self._store = _ShardedStoreView(self)
        return self._store


def _check_same_basis(path: Path, info: dict[str, Any], shards: list[Engine]) -> None:
    """A "pca" sharded engine re-ranks in one space: every shard holds the same basis
    (same data checksums of its mean and axes)."""
    if (info.get("rerank") or {}).get("space") != "pca":
        return

    def basis_crcs(shard: Engine) -> tuple:
        sums = shard.info.get("checksums") or {}
        return tuple((sums.get(f"rerank/{name}") or {}).get("data_crc32")
                     for name in ("pca_mean.npy", "pca_axes.npy"))

    if any(s.rerank_space != "pca" for s in shards) or \
            len({basis_crcs(s) for s in shards}) != 1:
        raise IndexFormatError(f"{path}: the shards do not share one principal basis; "
                               "rebuild the sharded engine")


def _shard_search_local(shard: Engine, payload: np.ndarray, k: int,
                        num_threads: int | None) -> tuple[np.ndarray, np.ndarray]:
    res = shard.index.search(payload, k, num_threads=num_threads)
    return res.ids, res.distances
