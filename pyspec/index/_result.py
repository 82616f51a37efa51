"""Result container shared by every index."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SearchResult(NamedTuple):
    """k-NN result rows ordered by (distance, id).

    ids : ndarray of shape (n_queries, k), int64; -1 pads rows with fewer than k hits.
    distances : ndarray of shape (n_queries, k); Hamming: int32 bit counts
        (padding = n_bits + 1); PQ: float32 squared L2 (padding = +inf).
    """

    ids: np.ndarray
    distances: np.ndarray


class RangeResult(NamedTuple):
    """Range-search result in CSR form.

    The hits of query ``i`` are ``ids[offsets[i]:offsets[i+1]]`` with matching
    ``distances``, ordered by (distance, id). offsets : int64 (n_queries + 1,).
    """

    offsets: np.ndarray
    ids: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:  # number of queries
        return len(self.offsets) - 1

    def hits(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of query ``i``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.ids[lo:hi], self.distances[lo:hi]
