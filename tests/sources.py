"""Minimal SpectrumStore stand-in for streaming-fit tests: only len() and iter_chunks()."""

from __future__ import annotations

import numpy as np


class ChunkSource:
    def __init__(self, flux: np.ndarray) -> None:
        self._flux = flux

    def __len__(self) -> int:
        return len(self._flux)

    def iter_chunks(self, chunk_size: int):
        for s in range(0, len(self._flux), chunk_size):
            f = self._flux[s:s + chunk_size]
            yield s, f, np.ones_like(f)
