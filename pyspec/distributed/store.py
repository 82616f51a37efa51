"""A sharded spectrum store: shard stores listed by one manifest, read as one store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec.distributed.rows import ConcatRows
from pyspec.errors import IndexFormatError

SHARDED_STORE_FILE = "sharded-store.json"
SHARDED_STORE_FORMAT = "pyspec-sharded-store"
VERSION = 1


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON with its own checksum to ``path``, atomically (an unpredictable temporary
    name, then a rename: never half-written, never through a planted link)."""
    _integrity.atomic_write(path, _integrity.dumps_checked(obj))


def read_json_checked(path: Path, what: str) -> dict[str, Any]:
    """A JSON object written by :func:`write_json_atomic`; IndexFormatError when damaged."""
    return _integrity.loads_checked(path, what=what)


def read_manifest(path: Path, fmt: str) -> dict[str, Any]:
    """The parsed manifest at ``path``, checked for format and version."""
    try:
        info = read_json_checked(path, "manifest")
    except OSError as exc:
        raise IndexFormatError(f"{path}: unreadable manifest ({exc})") from None
    if info.get("format") != fmt:
        raise IndexFormatError(f"{path}: not a {fmt} manifest")
    if info.get("version") != VERSION:
        raise IndexFormatError(f"{path}: version {info.get('version')} is not supported "
                               f"(this pyspec reads {VERSION})")
    if not isinstance(info.get("shards"), list) or not info["shards"]:
        raise IndexFormatError(f"{path}: lists no shards")
    return info


class ShardedStore:
    """Shard stores read as one: rows are the shards' rows in manifest order.

    Offers what the build and the models read from a :class:`SpectrumStore`:
    ``len``, ``grid``, ``preprocessing``, ``flux``/``ivar`` (row views, see
    :class:`~pyspec.distributed.rows.ConcatRows`), ``meta``, ``rejects``
    (merged across shards) and ``iter_chunks``, so a model fitted on it
    streams through every shard.
    """

    def __init__(self, path: Path, info: dict[str, Any], shards: list[Any]) -> None:
        self.path = path
        self.info = info
        self.shards = shards
        self.shard_paths = [s.path for s in shards]
        self.grid = shards[0].grid
        self.preprocessing = shards[0].preprocessing
        self.flux = ConcatRows([s.flux for s in shards])
        self.ivar = ConcatRows([s.ivar for s in shards])
        self.offsets = self.flux.offsets
        self._meta: Any = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> ShardedStore:
        from pyspec.store import SpectrumStore

        path = Path(path)
        info = read_manifest(path / SHARDED_STORE_FILE, SHARDED_STORE_FORMAT)
        shards = [SpectrumStore.open(path / s["path"]) for s in info["shards"]]
        for s, entry in zip(shards, info["shards"], strict=True):
            if len(s) != int(entry["n_spectra"]):
                raise IndexFormatError(f"{s.path}: {len(s)} spectra, the manifest says "
                                       f"{entry['n_spectra']}")
            if s.grid.to_dict() != shards[0].grid.to_dict():
                raise IndexFormatError(f"{s.path}: a different wavelength grid from "
                                       f"{shards[0].path}")
        return cls(path, info, shards)

    def __len__(self) -> int:
        return len(self.flux)

    def __repr__(self) -> str:
        return f"ShardedStore({str(self.path)!r}, {len(self)} spectra in {len(self.shards)} shards)"

    @property
    def meta(self) -> Any:
        """Metadata of every row (the shards' tables stacked)."""
        if self._meta is None:
            from astropy.table import vstack

            self._meta = vstack([s.meta for s in self.shards], metadata_conflicts="silent")
        return self._meta

    @property
    def meta_columns(self) -> Any:
        """The metadata reader over every shard's parts, in order (as
        :attr:`pyspec.SpectrumStore.meta_columns`: columns or rows without the whole table)."""
        from pyspec.meta_columns import ColumnStack

        return ColumnStack([src for shard in self.shards for src in shard.meta_columns.sources])

    @property
    def rejects(self) -> Any:
        """Rejected inputs of every shard (file, reason)."""
        from astropy.table import vstack

        return vstack([s.rejects for s in self.shards], metadata_conflicts="silent")

    @property
    def preprocessor(self) -> Any:
        return self.shards[0].preprocessor

    def iter_chunks(self, chunk_size: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(global start, flux, ivar)`` blocks, shard after shard (never across two)."""
        for s, off in zip(self.shards, self.offsets[:-1], strict=True):
            for start, flux, ivar in s.iter_chunks(chunk_size):
                yield int(off) + start, flux, ivar


def write_sharded_manifest(out: Path, shard_dirs: list[Path]) -> dict[str, Any]:
    """Write ``out/sharded-store.json`` over complete shard stores (in ``out``), atomically.

    Returns the manifest; the store is opened once to check it.
    """
    from pyspec.store import SpectrumStore

    shards = [SpectrumStore.open(d) for d in shard_dirs]
    entries = [{"path": Path(d).name, "n_spectra": len(s), "n_rejected": len(s.rejects)}
               for d, s in zip(shard_dirs, shards, strict=True)]
    info = {"format": SHARDED_STORE_FORMAT, "version": VERSION, "shards": entries,
            "n_spectra": sum(e["n_spectra"] for e in entries),
            "n_rejected": sum(e["n_rejected"] for e in entries),
            "grid": shards[0].grid.to_dict(), "preprocessing": shards[0].preprocessing}
    write_json_atomic(Path(out) / SHARDED_STORE_FILE, info)
    ShardedStore.open(out)
    return info


def is_sharded_store(path: str | os.PathLike) -> bool:
    return (Path(path) / SHARDED_STORE_FILE).is_file()


def open_any_store(path: str | os.PathLike) -> Any:
    """A :class:`ShardedStore` for a sharded store directory, else a SpectrumStore."""
    from pyspec.store import SpectrumStore

    return ShardedStore.open(path) if is_sharded_store(path) else SpectrumStore.open(path)


# ----------------------------------------------------------------------------- partial reads
# A large store's full metadata table costs ~1 kB per spectrum (and several times that while
# its parts are joined); these read only the columns or rows asked for, part by part.

def select_store_rows(store: Any, select: Callable[[Any], np.ndarray]) -> np.ndarray:
    """Store rows chosen by ``select``, reading the metadata part by part.

    ``select`` gets an astropy Table of one part's ``class`` and ``subclass``
    columns (those present) and returns the chosen rows of that table. Works
    on a SpectrumStore and on a ShardedStore (global rows).
    """
    from astropy.table import Table

    out = []
    for start, n, cols in store.meta_columns.iter_sources(["class", "subclass"]):
        table = Table(cols) if cols else Table({"_row": np.arange(n)})
        out.append(start + np.asarray(select(table), np.int64))
    return np.concatenate(out) if out else np.empty(0, np.int64)


def store_meta_rows(store: Any, rows: np.ndarray) -> Any:
    """Metadata Table of the given store rows (in that order), reading only those rows."""
    return store.meta_columns.rows(np.asarray(rows, np.int64))


def row_ranges(store: Any, n_parts: int, align: int = 1) -> list[tuple[str, int, int, int]]:
    """(store path, first row, end row, global row of the first) of each part of ``store``:
    the shard stores of a sharded store, else ``n_parts`` about equal row ranges of one
    store, each starting at a multiple of ``align`` rows (empty ones left out)."""
    if isinstance(store, ShardedStore):
        return [(str(s.path), 0, len(s), int(off))
                for s, off in zip(store.shards, store.offsets[:-1], strict=True)]
    n = len(store)
    bounds = np.minimum(np.round(np.linspace(0, n, int(n_parts) + 1) / align) * align, n)
    bounds[-1] = n
    bounds = bounds.astype(int)
    return [(str(store.path), int(a), int(b), int(a))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
