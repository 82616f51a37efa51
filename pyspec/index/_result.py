"""Result containers shared by every index.

Results are read by name (``r.ids``, ``r.distances``, ``r.lims``), never by
position: faiss returns ``D, I = index.search(q, k)`` (distances first) and
an old pyspec returned ``(ids, distances)``, so unpacking a result is the one
way the two orders get silently swapped. Unpacking, iterating or indexing a
result therefore raises a ``TypeError`` that names the fields to use.
"""

from __future__ import annotations

import numpy as np

_FAISS_MAPPING = ("faiss's `D, I = index.search(q, k)` is `r.distances, r.ids` here")


def _no_positions(kind: str, fields: str) -> TypeError:
    return TypeError(f"a {kind} is read by name, not unpacked or indexed: use {fields} "
                     f"({_FAISS_MAPPING}; `lims, D, I = index.range_search(q, r)` is "
                     "`r.lims, r.distances, r.ids`)")


class SearchResult:
    """k-NN result: ``ids`` and ``distances`` of shape (n_queries, k), rows
    ordered by (distance, id).

    ids : ndarray of shape (n_queries, k), int64; -1 pads rows with fewer than k hits.
    distances : ndarray of shape (n_queries, k); Hamming: int32 bit counts
        (padding = n_bits + 1); PQ and graph: float32 squared L2 (padding = +inf).

    Read the fields by name. faiss's ``D, I = index.search(q, k)`` is
    ``r = index.search(q, k); r.distances, r.ids`` here; ``ids, d = r`` (or
    ``r[0]``) raises ``TypeError`` instead of silently swapping them.

    Examples
    --------
    >>> import numpy as np
    >>> r = SearchResult(ids=np.array([[4, 2]]), distances=np.array([[0, 3]]))
    >>> r.ids.tolist(), r.distances.tolist()
    ([[4, 2]], [[0, 3]])
    """

    __slots__ = ("ids", "distances")

    def __init__(self, *, ids: np.ndarray, distances: np.ndarray) -> None:
        self.ids = ids
        self.distances = distances

    def __iter__(self):  # noqa: ANN204 (raises: unpacking is refused)
        raise _no_positions("SearchResult", "r.ids and r.distances")

    def __getitem__(self, item: object) -> None:
        raise _no_positions("SearchResult", "r.ids and r.distances")

    def __repr__(self) -> str:
        return f"SearchResult(ids={self.ids!r}, distances={self.distances!r})"

    def __getstate__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ids, self.distances

    def __setstate__(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.ids, self.distances = state


class RangeResult:
    """Range-search result in CSR form (faiss's ``lims, D, I``).

    The hits of query ``i`` are ``ids[lims[i]:lims[i+1]]`` with matching
    ``distances``, ordered by (distance, id). ``lims``: int64 (n_queries + 1,)
    (also readable as ``offsets``). faiss's ``lims, D, I = index.range_search(q,
    r)`` is ``r.lims, r.distances, r.ids`` here; unpacking raises ``TypeError``.
    ``len(r)`` is the number of queries and :meth:`hits` gives one query's hits.
    """

    __slots__ = ("lims", "ids", "distances")

    def __init__(self, *, lims: np.ndarray, ids: np.ndarray, distances: np.ndarray) -> None:
        self.lims = lims
        self.ids = ids
        self.distances = distances

    @property
    def offsets(self) -> np.ndarray:
        """Same array as :attr:`lims`."""
        return self.lims

    def __len__(self) -> int:  # number of queries
        return len(self.lims) - 1

    def __iter__(self):  # noqa: ANN204 (raises: unpacking is refused)
        raise _no_positions("RangeResult", "r.lims, r.ids and r.distances (or r.hits(i))")

    def __getitem__(self, item: object) -> None:
        raise _no_positions("RangeResult", "r.lims, r.ids and r.distances (or r.hits(i))")

    def __repr__(self) -> str:
        return (f"RangeResult(lims={self.lims!r}, ids={self.ids!r}, "
                f"distances={self.distances!r})")

    def __getstate__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.lims, self.ids, self.distances

    def __setstate__(self, state: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.lims, self.ids, self.distances = state

    def hits(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, distances) of query ``i``."""
        lo, hi = self.lims[i], self.lims[i + 1]
        return self.ids[lo:hi], self.distances[lo:hi]
