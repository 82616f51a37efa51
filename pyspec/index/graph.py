"""Approximate k-NN over real-valued embeddings with an HNSW graph (hnswlib).

The Hamming scan is exact and memory-bound; a graph index trades a little
recall for sub-linear query time on very large archives. It stores
real-valued vectors such as ``PILHasher.embed`` output. hnswlib holds the
graph; pyspec keeps its own int64 ids (hnswlib labels are internal row
numbers) and saves everything in its checked container format.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hnswlib
import numpy as np

from pyspec._fileformat import read_container, write_container
from pyspec._validation import as_float_matrix, as_ids, check_k, check_num_threads
from pyspec.errors import IndexFormatError
from pyspec.index._result import SearchResult

_SPACES = ("l2", "ip", "cosine")


class GraphIndex:
    """HNSW graph index over float32 vectors.

    Parameters
    ----------
    dim : int
        Vector length.
    space : {"l2", "ip", "cosine"}
        Distance; "l2" reports squared Euclidean distances.
    M, ef_construction : int
        Graph degree and build-time beam width (hnswlib's meaning).
    ef : int
        Query-time beam width; raised to ``k`` when smaller. Higher is
        slower and more accurate.
    random_state : int
        Seed for the level assignment (reproducible graphs for one thread).
    """

    def __init__(self, dim: int, space: str = "l2", M: int = 16, ef_construction: int = 200,
                 ef: int = 64, random_state: int = 0) -> None:
        if space not in _SPACES:
            raise ValueError(f"space must be one of {_SPACES}, got {space!r}")
        if int(dim) < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.space = space
        self.M = int(M)
        self.ef_construction = int(ef_construction)
        self.ef = int(ef)
        self.random_state = int(random_state)
        self._graph = self._new_graph(1024)
        self._ids = np.empty(0, dtype=np.int64)

    def _new_graph(self, capacity: int) -> hnswlib.Index:
        graph = hnswlib.Index(space=self.space, dim=self.dim)
        graph.init_index(max_elements=capacity, M=self.M, ef_construction=self.ef_construction,
                         random_seed=self.random_state)
        return graph

    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None,
            num_threads: int | None = None) -> None:
        """Add vectors (n, dim) float32 with optional int64 ids (default: continue 0..)."""
        x = as_float_matrix(vectors, "vectors", n_features=self.dim)
        new_ids = as_ids(ids, x.shape[0], start=len(self))
        n_old = len(self)
        needed = n_old + x.shape[0]
        if needed > self._graph.get_max_elements():
            self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
        threads = check_num_threads(num_threads) or -1
        labels = np.arange(n_old, needed, dtype=np.uint64)
        if x.shape[0]:
            self._graph.add_items(x, labels, num_threads=threads)
        self._ids = np.concatenate([self._ids, new_ids])

    def search(self, queries: np.ndarray, k: int, num_threads: int | None = None,
               ef: int | None = None) -> SearchResult:
        """Approximate k nearest neighbours, rows ordered by (distance, id).

        Returns float32 distances (+inf and id -1 pad rows when k > len).
        """
        q = as_float_matrix(queries, "queries", n_features=self.dim)
        k = check_k(k)
        threads = check_num_threads(num_threads) or -1
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        k_eff = min(k, len(self))
        if k_eff == 0 or q.shape[0] == 0:
            return SearchResult(ids, dist)
        self._graph.set_ef(max(int(ef if ef is not None else self.ef), k_eff))
        labels, d = self._graph.knn_query(q, k=k_eff, num_threads=threads)
        found = self._ids[labels.astype(np.int64)]
        order = np.lexsort((found, d), axis=1)  # by distance, then id
        ids[:, :k_eff] = np.take_along_axis(found, order, axis=1)
        dist[:, :k_eff] = np.take_along_axis(d, order, axis=1)
        return SearchResult(ids, dist)

    def _params(self) -> dict[str, object]:
        return {"dim": self.dim, "space": self.space, "M": self.M,
                "ef_construction": self.ef_construction, "ef": self.ef,
                "random_state": self.random_state}

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph and ids to one checked container file (kind GX)."""
        with tempfile.TemporaryDirectory() as tmp:
            blob_path = Path(tmp) / "graph.bin"
            self._graph.save_index(str(blob_path))
            blob = np.fromfile(blob_path, dtype=np.uint8)
        write_container(path, b"GX", {"graph": blob, "ids": self._ids}, self._params())

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphIndex:
        arrays, meta = read_container(path, b"GX")
        try:
            index = cls(**meta)
        except (TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path}: invalid graph parameters ({exc})") from None
        ids = arrays["ids"]
        with tempfile.TemporaryDirectory() as tmp:
            blob_path = Path(tmp) / "graph.bin"
            arrays["graph"].tofile(blob_path)
            graph = hnswlib.Index(space=index.space, dim=index.dim)
            try:
                graph.load_index(str(blob_path), max_elements=max(len(ids), 1))
            except RuntimeError as exc:
                raise IndexFormatError(f"{path}: graph data unreadable ({exc})") from None
        if graph.get_current_count() != len(ids):
            raise IndexFormatError(f"{path}: graph holds {graph.get_current_count()} vectors "
                                   f"but {len(ids)} ids")
        index._graph = graph
        index._ids = np.array(ids, dtype=np.int64)
        return index
