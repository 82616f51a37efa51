"""Row access across shards: many (n_i, m) matrices read as one (sum n_i, m) matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ConcatRows:
    """Read-only rows of several 2-D arrays (memory maps) as if stacked.

    Supports ``len``, ``shape``, ``ndim``, ``dtype``, slices and integer-array
    indexing; every read returns a new float32 array and touches only the
    shards that hold the rows asked for.
    """

    ndim = 2

    def __init__(self, arrays: Sequence[np.ndarray], row_offsets: Sequence[int] | None = None,
                 lengths: Sequence[int] | None = None) -> None:
        self._arrays = list(arrays)
        self._starts = list(row_offsets) if row_offsets is not None else [0] * len(self._arrays)
        self._lengths = [int(n) for n in lengths] if lengths is not None else \
            [a.shape[0] - s for a, s in zip(self._arrays, self._starts, strict=True)]
        self.offsets = np.concatenate([[0], np.cumsum(self._lengths)]).astype(np.int64)
        m = {int(a.shape[1]) for a in self._arrays}
        if len(m) > 1:
            raise ValueError(f"shards have different pixel counts: {sorted(m)}")
        self.shape = (int(self.offsets[-1]), m.pop() if m else 0)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # noqa: ANN001
        return self[0:len(self)].astype(dtype or np.float32, copy=False)

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, local row) of global rows."""
        rows = np.asarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        return shard, rows - self.offsets[shard]

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            out = np.empty((max(0, stop - start), self.shape[1]), np.float32)
            for s, (a, a0) in enumerate(zip(self._arrays, self._starts, strict=True)):
                lo, hi = max(start, self.offsets[s]), min(stop, self.offsets[s + 1])
                if lo < hi:
                    local = lo - self.offsets[s] + a0
                    out[lo - start:hi - start] = a[local:local + (hi - lo)]
            return out
        rows = np.asarray(key)
        if rows.dtype.kind not in "iu":
            raise TypeError(f"index rows with a slice or an integer array, got {rows.dtype}")
        scalar = rows.ndim == 0
        rows = np.atleast_1d(rows).astype(np.int64)
        shard, local = self.locate(rows)
        out = np.empty((rows.size, self.shape[1]), np.float32)
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            out[sel] = self._arrays[s][local[sel] + self._starts[s]]
        return out[0] if scalar else out
