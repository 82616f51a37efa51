"""Approximate k-NN over real-valued embeddings with an HNSW graph (hnswlib).

The Hamming scan is exact and memory-bound; a graph index trades a little
recall for sub-linear query time on very large archives. It stores
real-valued vectors such as ``PILHasher.embed`` output. hnswlib holds the
graph; pyspec keeps its own int64 ids (hnswlib labels are internal row
numbers) and saves everything in its checked container format.

hnswlib parses a saved graph natively and trusts it; a graph read back from a
file is therefore checked structurally first (:func:`_check_hnsw_blob`:
header fields against the index parameters, every link count and neighbour
id, every level), so a crafted file with a valid checksum is refused with
:class:`~pyspec.errors.IndexFormatError` instead of crashing the process.
"""

from __future__ import annotations

import numbers
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from pyspec._fileformat import read_container, write_container
from pyspec._validation import as_float_matrix, as_ids, check_k, check_num_threads
from pyspec.errors import IndexFormatError
from pyspec.index import _filter
from pyspec.index._result import SearchResult

_SPACES = ("l2", "ip", "cosine")
# hnswlib's saveIndex header: offsetLevel0, max_elements, cur_element_count,
# size_data_per_element, label_offset, offsetData (size_t), maxlevel (int),
# enterpoint (uint32), maxM, maxM0, M (size_t), mult (double), ef_construction
_HNSW_HEAD = struct.Struct("<QQQQQQiIQQQdQ")
# parameter ranges: hnswlib needs M >= 2 (its level multiplier is 1 / ln M)
_LIMITS = {"dim": (1, 1 << 16), "M": (2, 1 << 10), "ef_construction": (1, 1 << 16),
           "ef": (1, 1 << 24)}


def _check_param(name: str, value: Any) -> int:
    lo, hi = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int in [{lo}, {hi}], got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _check_hnsw_blob(blob: np.ndarray, dim: int, M: int, n: int) -> np.ndarray:
    """Raise ValueError unless ``blob`` is a well-formed hnswlib graph of ``n`` float vectors.

    Checks every size, link count, neighbour id and level that hnswlib's
    loader and search would otherwise follow without bounds checks. Returns
    hnswlib's deleted marks (bool, indexed by label).
    """
    raw = blob.tobytes()
    if len(raw) < _HNSW_HEAD.size:
        raise ValueError("graph data shorter than its header")
    (off0, max_el, cur, per_elem, label_off, off_data, max_level, entry, max_m, max_m0, m,
     mult, _efc) = _HNSW_HEAD.unpack_from(raw)
    links0 = 2 * M * 4 + 4
    expected = (0, n, links0 + dim * 4 + 8, links0 + dim * 4, links0, M, 2 * M, M)
    if (off0, cur, per_elem, label_off, off_data, max_m, max_m0, m) != expected:
        raise ValueError("graph header does not match the index parameters")
    if max_el < cur or not (np.isfinite(mult) and mult > 0) or max_level < 0 or max_level > 64:
        raise ValueError("graph header holds implausible values")
    end0 = _HNSW_HEAD.size + n * per_elem
    if len(raw) < end0 + 4 * n:
        raise ValueError("graph data is truncated")
    level0 = np.frombuffer(raw, np.uint8, n * per_elem, _HNSW_HEAD.size).reshape(n, per_elem)
    # hnswlib's level-0 header: link count (low 16 bits), deleted mark (byte 2), byte 3 unused
    head0 = level0[:, :4].copy().view("<u4").ravel()
    count, mark = head0 & 0xFFFF, head0 >> 16
    links = level0[:, 4:links0].copy().view("<u4")
    labels = level0[:, label_off:label_off + 8].copy().view("<u8").ravel()
    if (count > 2 * M).any() or (mark > 1).any():
        raise ValueError("graph has an invalid level-0 link count or deleted mark")
    used = np.arange(2 * M) < count[:, None]
    if (links[used] >= n).any():
        raise ValueError("graph links point outside the graph")
    if not np.array_equal(np.sort(labels), np.arange(n, dtype=np.uint64)):
        raise ValueError("graph labels are not 0..n-1")
    per_level = M * 4 + 4
    levels = np.zeros(n, dtype=np.int64)
    upper: list[tuple[int, np.ndarray]] = []
    pos = end0
    for i in range(n):
        if pos + 4 > len(raw):
            raise ValueError("graph data is truncated")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if size % per_level or size // per_level > max_level or pos + size > len(raw):
            raise ValueError(f"graph element {i} has an invalid level list")
        if size:
            block = np.frombuffer(raw, "<u4", size // 4, pos).reshape(-1, M + 1)
            levels[i] = block.shape[0]
            upper.append((i, block))
            pos += size
    if pos != len(raw):
        raise ValueError("graph data has trailing bytes")
    if n and (entry >= n or levels[entry] != max_level or levels.max() != max_level):
        raise ValueError("graph entry point or top level is inconsistent")
    for i, block in upper:
        counts = block[:, 0]
        if (counts > M).any():
            raise ValueError(f"graph element {i} has an invalid link count")
        for lvl in range(block.shape[0]):
            nbrs = block[lvl, 1:1 + counts[lvl]]
            if (nbrs >= n).any() or (levels[nbrs.astype(np.int64)] < lvl + 1).any():
                raise ValueError(f"graph element {i} links to a node absent from level "
                                 f"{lvl + 1}")
    deleted = np.zeros(n, dtype=bool)
    deleted[labels.astype(np.int64)] = mark == 1
    return deleted


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
        self.dim = _check_param("dim", dim)
        self.space = space
        self.M = _check_param("M", M)
        self.ef_construction = _check_param("ef_construction", ef_construction)
        self.ef = _check_param("ef", ef)
        if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
            raise TypeError(f"random_state must be an int, got {type(random_state).__name__}")
        self.random_state = int(random_state) & 0xFFFFFFFF
        self._graph = self._new_graph(1024)
        self._ids = np.empty(0, dtype=np.int64)
        self._live = np.empty(0, dtype=bool)  # False: removed (hnswlib marks it deleted)

    def _new_graph(self, capacity: int) -> hnswlib.Index:
        graph = hnswlib.Index(space=self.space, dim=self.dim)
        graph.init_index(max_elements=capacity, M=self.M, ef_construction=self.ef_construction,
                         random_seed=self.random_state)
        return graph

    def __len__(self) -> int:
        return int(self._live.sum())

    @property
    def ids(self) -> np.ndarray:
        """Ids of the vectors the index holds (removed ones left out)."""
        return self._ids[self._live]

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None,
            num_threads: int | None = None) -> None:
        """Add vectors (n, dim) float32 with optional int64 ids (default: continue 0..)."""
        x = as_float_matrix(vectors, "vectors", n_features=self.dim)
        new_ids = as_ids(ids, x.shape[0], start=int(self._ids.size))
        n_old = int(self._ids.size)  # hnswlib labels = positions, removed ones included
        needed = n_old + x.shape[0]
        if needed > self._graph.get_max_elements():
            self._graph.resize_index(max(needed, 2 * self._graph.get_max_elements()))
        threads = check_num_threads(num_threads) or -1
        labels = np.arange(n_old, needed, dtype=np.uint64)
        if x.shape[0]:
            self._graph.add_items(x, labels, num_threads=threads)
        self._ids = np.concatenate([self._ids, new_ids])
        self._live = np.concatenate([self._live, np.ones(new_ids.size, dtype=bool)])

    def remove_ids(self, ids: object) -> int:
        """Remove the vectors with these ids (hnswlib marks them deleted: searches skip
        them, the graph keeps routing through them). Returns the number removed."""
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.dtype.kind not in "iu" and arr.size):
            raise TypeError("remove_ids: expected a 1-D array of integer ids")
        pos = np.flatnonzero(np.isin(self._ids, arr.astype(np.int64)) & self._live)
        for p in pos:
            self._graph.mark_deleted(int(p))
        self._live[pos] = False
        return int(pos.size)

    def memory_usage(self) -> int:
        """Bytes held: hnswlib's graph (vectors, links, labels, as its saved size
        measures them) plus pyspec's ids and removal mask."""
        return int(self._graph.index_file_size() + self._ids.nbytes + self._live.nbytes)

    @staticmethod
    def estimate_memory(n: int, dim: int, M: int = 16) -> int:
        """Approximate bytes :meth:`memory_usage` reports for ``n`` vectors of ``dim``
        floats: per vector the float32 vector, ``2 M`` level-0 links (4 bytes each)
        with their count, an 8-byte label, pyspec's id and mask, and upper levels
        (a fraction ``1 / M`` of vectors, ``M`` links each)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        dim, M = _check_param("dim", dim), _check_param("M", M)
        per = 4 * dim + 4 * (2 * M + 1) + 8 + 8 + 1 + (4 * (M + 1) + 8) / M
        return int(round(n * per)) + 100

    def search(self, queries: np.ndarray, k: int, num_threads: int | None = None,
               ef: int | None = None, filter: object = None) -> SearchResult:  # noqa: A002
        """Approximate k nearest neighbours, rows ordered by (distance, id).

        Returns float32 distances (+inf and id -1 pad rows when k > len).
        ``filter`` (allowed ids, or a boolean mask indexed by id, as for
        :meth:`pyspec.HammingIndex.search`) restricts the answer to those
        vectors; like the unfiltered search it is approximate (hnswlib's
        filtered beam search, run on one thread since it calls back into
        Python).
        """
        q = as_float_matrix(queries, "queries", n_features=self.dim)
        k = check_k(k)
        threads = check_num_threads(num_threads) or -1
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        dist = np.full((q.shape[0], k), np.inf, dtype=np.float32)
        allowed = None
        n_allowed = len(self)
        if filter is not None:
            pos = _filter.allowed_positions(self._ids, filter)
            allowed = np.zeros(self._ids.size, dtype=bool)
            allowed[pos] = True
            allowed &= self._live
            n_allowed = int(allowed.sum())
        k_eff = min(k, n_allowed)
        if k_eff == 0 or q.shape[0] == 0:
            return SearchResult(ids=ids, distances=dist)
        ef = self.ef if ef is None else _check_param("ef", ef)
        self._graph.set_ef(max(ef, k_eff))
        if allowed is None:
            labels, d = self._graph.knn_query(q, k=k_eff, num_threads=threads)
        else:
            labels, d = self._graph.knn_query(q, k=k_eff, num_threads=1,
                                              filter=lambda label: bool(allowed[label]))
        found = self._ids[labels.astype(np.int64)]
        order = np.lexsort((found, d), axis=1)  # by distance, then id
        ids[:, :k_eff] = np.take_along_axis(found, order, axis=1)
        dist[:, :k_eff] = np.take_along_axis(d, order, axis=1)
        return SearchResult(ids=ids, distances=dist)

    def _params(self) -> dict[str, object]:
        return {"dim": self.dim, "space": self.space, "M": self.M,
                "ef_construction": self.ef_construction, "ef": self.ef,
                "random_state": self.random_state}

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph and ids to one checked container file (kind GX)."""
        with tempfile.TemporaryDirectory() as tmp:
            blob_path = Path(tmp) / "graph.bin"
            self._graph.save_index(str(blob_path))  # keeps the deleted marks of removals
            blob = np.fromfile(blob_path, dtype=np.uint8)
        write_container(path, b"GX", {"graph": blob, "ids": self._ids,
                                      "live": self._live.astype(np.uint8)}, self._params())

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphIndex:
        arrays, meta = read_container(path, b"GX")
        try:
            index = cls(**meta)
        except (TypeError, ValueError) as exc:
            raise IndexFormatError(f"{path}: invalid graph parameters ({exc})") from None
        ids, blob = arrays.get("ids"), arrays.get("graph")
        if (ids is None or blob is None or ids.dtype != np.int64 or ids.ndim != 1
                or blob.dtype != np.uint8 or blob.ndim != 1):
            raise IndexFormatError(f"{path}: graph index lacks int64 'ids' or uint8 'graph'")
        if ids.size and int(ids.min()) < 0:
            raise IndexFormatError(f"{path}: negative ids (corrupted file)")
        try:
            deleted = _check_hnsw_blob(blob, index.dim, index.M, len(ids))
        except ValueError as exc:
            raise IndexFormatError(f"{path}: graph data is invalid ({exc})") from None
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
        live = arrays.get("live")
        if live is None:  # written before remove_ids existed: nothing can be marked deleted
            live = np.ones(len(ids), dtype=np.uint8)
        if (live.dtype != np.uint8 or live.shape != ids.shape
                or not np.array_equal(live == 0, deleted)):
            raise IndexFormatError(f"{path}: graph index 'live' mask does not match the "
                                   "graph's deleted marks")
        index._graph = graph
        index._ids = np.array(ids, dtype=np.int64)
        index._live = live.astype(bool)
        return index
