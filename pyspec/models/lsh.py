"""Random-hyperplane LSH baseline (Charikar 2002) with the hasher API.

Bit j of a spectrum is the sign of its projection, after centring on the
training mean, onto a random Gaussian direction r_j. It needs no training
beyond the mean, which makes it the reference every learned hash must beat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec import linalg
from pyspec.models.base import BaseHasher, iter_source


class LSHHasher(BaseHasher):
    """Sign random projections of centred spectra.

    Parameters
    ----------
    n_bits : int, default 256
        Code length (usually 32, 64, 128 or 256; any length from 1 to 512).
    random_state : None, int, numpy Generator or RandomState
        Seeds the hyperplanes.
    output : {"bits", "packed", "embedding"}, default "bits"
        What :meth:`transform` returns: 0/1 uint8 bits (n, n_bits), the
        packed uint64 codes of :meth:`encode`, or the float32 embedding.
    chunk_rows : int, default 8192
        Rows per block when iterating over a store or a large array.

    Attributes
    ----------
    mean_ : ndarray of shape (n_pixels,), float32
        Training mean (the hyperplanes pass through it).
    projection_ : ndarray of shape (n_pixels, n_bits), float32
        Hyperplane normals, one per column.
    thresholds_ : ndarray of shape (n_bits,), float32
        All zero (bit = sign of the centred projection).

    Examples
    --------
    >>> import numpy as np
    >>> from pyspec import LSHHasher
    >>> X = np.random.default_rng(0).random((100, 50), dtype=np.float32)
    >>> LSHHasher(n_bits=32, random_state=0).fit(X).encode(X).shape
    (100, 1)
    """

    _KIND = b"LS"

    def __init__(self, n_bits: int = 256, random_state: object = None, output: str = "bits",
                 chunk_rows: int = 8192) -> None:
        self.n_bits = n_bits
        self.random_state = random_state
        self.output = output
        self.chunk_rows = chunk_rows

    def _fit(self, X: object, n: int, d: int, rng: np.random.Generator, nt: int | None) -> None:
        total = np.zeros(d)
        for _, chunk in iter_source(X, self.chunk_rows, d):
            total += chunk.sum(axis=0, dtype=np.float64)
        self.mean_ = (total / n).astype(np.float32)
        self.projection_ = rng.standard_normal((d, int(self.n_bits))).astype(np.float32)
        self._offset = (-(self.mean_.astype(np.float64) @ self.projection_)).astype(np.float32)
        self.thresholds_ = np.zeros(int(self.n_bits), dtype=np.float32)

    def _embed(self, X: np.ndarray, nt: int | None) -> np.ndarray:
        return linalg.dense_forward(X, self.projection_, self._offset, "identity", nt)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"mean": self.mean_, "projection": self.projection_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.mean_ = np.ascontiguousarray(arrays["mean"], dtype=np.float32)
        self.projection_ = np.ascontiguousarray(arrays["projection"], dtype=np.float32)
        self._offset = (-(self.mean_.astype(np.float64) @ self.projection_)).astype(np.float32)
