"""Bounded-memory reads of a spectrum store: chosen rows of the flux, one metadata column.

A pass over a large store through its memory map leaves every touched page in
the process's resident set, so memory would grow with the store; the readers
here go through a file handle instead, block by block. They work on a
:class:`~pyspec.store.SpectrumStore` and on a sharded store
(:class:`~pyspec.distributed.ShardedStore`, global rows).

* :class:`StoreRowReader`: ``reader(i)`` -> the flux of the chosen rows ``rows[i]``;
* :class:`RowSource`: chosen rows seen as a store (``iter_chunks``), which a
  hasher fits and encodes chunk by chunk;
* :func:`store_meta_column`: one metadata column, part by part, never the whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class StoreRowReader:
    """The flux of chosen rows of a store, read through file handles.

    ``reader(i)`` is the flux of store rows ``rows[i]`` (``i`` ascending; for
    a sharded store, global rows), one read per run of consecutive rows.
    Picklable (for cluster tasks).
    """

    def __init__(self, store: Any, rows: np.ndarray) -> None:
        from pathlib import Path

        stores = getattr(store, "shards", None) or [store]
        self.paths = [str(Path(s.path) / "flux.f32") for s in stores]
        self.offsets = np.cumsum([0] + [len(s) for s in stores]).astype(np.int64)
        self.n_pixels = int(store.flux.shape[1])
        self.rows = np.asarray(rows, np.int64)

    def __call__(self, index: np.ndarray) -> np.ndarray:
        rows = self.rows[np.asarray(index, np.int64)]
        m = self.n_pixels
        out = np.empty((rows.size, m), np.float32)
        if not rows.size:
            return out
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        # a run: consecutive rows of one file
        new_run = (np.diff(rows, prepend=rows[0] - 2) != 1) | \
            (np.diff(shard, prepend=shard[0] - 1) != 0)
        starts = np.flatnonzero(new_run)
        ends = np.append(starts[1:], rows.size)
        for s in np.unique(shard):
            with open(self.paths[s], "rb") as fh:
                for a, b in zip(starts, ends, strict=True):
                    if shard[a] == s:
                        fh.seek(int(rows[a] - self.offsets[s]) * m * 4)
                        out[a:b] = np.fromfile(fh, "<f4", count=(b - a) * m).reshape(b - a, m)
        return out


class RowSource:
    """Rows ``positions`` of a matrix read by ``read_rows``, seen as a store.

    ``iter_chunks(chunk_size)`` yields ``(start, flux, None)`` blocks in order,
    which is what :meth:`pyspec.PILHasher.fit` and ``encode`` stream through;
    only one block is in memory at a time.
    """

    def __init__(self, read_rows: Callable[[np.ndarray], np.ndarray],
                 positions: np.ndarray) -> None:
        self.read_rows = read_rows
        self.positions = np.asarray(positions, np.int64)

    def __len__(self) -> int:
        return int(self.positions.size)

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray, None]]:
        for start in range(0, len(self), int(chunk_size)):
            yield start, self.read_rows(self.positions[start:start + int(chunk_size)]), None


def store_meta_names(store: Any) -> list[str]:
    """Names of a store's metadata columns (from the parts' listings; no column is read)."""
    return list(store.meta_columns.colnames)


def store_meta_column(store: Any, name: str) -> np.ndarray:
    """One metadata column of a store, as ``store.meta[name]`` holds it, read part by part.

    Raises
    ------
    KeyError
        The store has no such column (the message lists those it has).
    """
    reader = store.meta_columns
    if name not in reader.colnames:
        raise KeyError(f"no metadata column {name!r} (columns: {list(reader.colnames)})")
    return reader.column(name)
