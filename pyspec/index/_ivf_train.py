"""Coarse quantiser and probe tuning for :class:`pyspec.index.ivf.IVFHammingIndex`.

The coarse quantiser partitions binary codes by binary k-majority
(k-means in Hamming space): each code goes to its nearest centroid by
Hamming distance, and each centroid bit becomes the majority bit of its
cell's members. Like faiss's ``IndexBinaryIVF`` it is trained on a sample;
unlike it, assignment and update both stay in Hamming space (faiss runs
float k-means on the 0/1 vectors and rounds the centroids), so training
costs one batched Hamming scan of the sample against the centroids per
iteration, run by the compiled kernels.

Tuning: a probe count ``nprobe`` reaches a neighbour exactly when the
neighbour's list is among the query's ``nprobe`` nearest lists, so the
recall of every ``nprobe`` follows from one exact search and one ranking
of all lists per held-out query (no IVF search per candidate ``nprobe``).
"""

from __future__ import annotations

import numpy as np

from pyspec import _core
from pyspec._bits import pack_bits, unpack_bits

# Lloyd iterations of k-majority; the partition changes little after ~8 on
# codes of simulated spectra (bench/RESULTS.md, issue 21 IVF).
N_ITER = 10
# training codes per list (faiss warns below 39) and the cap of the sample
TRAIN_PER_LIST = 40
TRAIN_MAX = 1_000_000
# codes assigned per kernel call (keeps Ctrl-C responsive, bounds temporaries)
ASSIGN_BLOCK = 1 << 20


def default_n_lists(n: int) -> int:
    """About ``4 sqrt(n)`` lists (at most ``n``; 1 for an empty set)."""
    return int(max(1, min(n, round(4.0 * np.sqrt(max(n, 1))))))


def nearest_lists(codes: np.ndarray, centroids: np.ndarray, n_probe: int,
                  threads: int) -> np.ndarray:
    """The ``n_probe`` nearest centroids of each code, int64 (n, n_probe), ordered by
    (Hamming distance, list number)."""
    n_lists = centroids.shape[0]
    numbers = np.arange(n_lists, dtype=np.int64)
    pad = 64 * centroids.shape[1] + 1
    out = np.empty((codes.shape[0], n_probe), dtype=np.int64)
    for s in range(0, codes.shape[0], ASSIGN_BLOCK):
        block = np.ascontiguousarray(codes[s:s + ASSIGN_BLOCK])
        out[s:s + block.shape[0]] = _core.hamming_knn(block, centroids, numbers, n_probe, pad,
                                                      threads)[0]
    return out


def kmajority(sample: np.ndarray, n_lists: int, n_bits: int, rng: np.random.Generator,
              threads: int, n_iter: int = N_ITER) -> np.ndarray:
    """Binary k-majority centroids, uint64 (n_lists', n_words) with ``n_lists' <= n_lists``.

    Starts from distinct random sample codes (codes of real-like spectra
    repeat: two equal seeds would leave one cell empty); fewer distinct codes
    than lists give fewer lists. A bit whose votes tie keeps its previous
    value; an emptied cell is re-seeded at the sample code farthest from its
    centroid. Stops early when no code changes cell.
    """
    distinct = np.unique(sample, axis=0)
    n_lists = int(min(n_lists, distinct.shape[0]))
    centroids = np.ascontiguousarray(distinct[rng.choice(distinct.shape[0], n_lists,
                                                         replace=False)])
    del distinct
    numbers = np.arange(n_lists, dtype=np.int64)
    labels = None
    for _ in range(n_iter):
        found, dist = _core.hamming_knn(sample, centroids, numbers, 1, n_bits + 1, threads)
        new_labels = found[:, 0]
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=n_lists)
        filled = np.flatnonzero(counts)
        votes = bit_votes(sample, labels, n_lists)[filled, :n_bits]
        old = unpack_bits(centroids[filled], n_bits)
        twice = 2 * votes
        size = counts[filled][:, None]
        new_bits = np.where(twice == size, old, twice > size)
        centroids = centroids.copy()
        centroids[filled] = pack_bits(new_bits)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(dist[:, 0], kind="stable")[::-1]
            seeds = np.unique(sample[far[: 4 * empty.size]], axis=0)[: empty.size]
            centroids[empty[: seeds.shape[0]]] = seeds
    return np.ascontiguousarray(centroids)


# bit j of byte value v, for v in 0..255 (little-endian bit order, as pack_bits)
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1,
                           bitorder="little").astype(np.float32)


def bit_votes(codes: np.ndarray, labels: np.ndarray, n_lists: int) -> np.ndarray:
    """Per list, how many of its codes have each bit set: int64 (n_lists, 64 * n_words).

    One histogram of (list, byte value) per byte position, times the 256 x 8
    table of the bits of a byte: a pass over the packed codes per byte,
    instead of unpacking them (8x the memory) and summing bit columns.
    """
    as_bytes = codes.view(np.uint8).reshape(codes.shape[0], -1)
    votes = np.empty((n_lists, 8 * as_bytes.shape[1]), dtype=np.int64)
    base = labels.astype(np.int64) * 256
    exact = np.float32 if codes.shape[0] < 2**24 else np.float64  # counts exact in floats
    for b in range(as_bytes.shape[1]):
        hist = np.bincount(base + as_bytes[:, b], minlength=256 * n_lists)
        votes[:, 8 * b:8 * b + 8] = hist.reshape(n_lists, 256).astype(exact) @ _BYTE_BITS
    return votes


def recall_by_nprobe(list_rank: np.ndarray, neighbour_lists: np.ndarray,
                     valid: np.ndarray) -> np.ndarray:
    """Mean recall of the exact neighbours for every probe count 1..n_lists.

    list_rank : int (n_queries, n_lists), rank of each list in a query's
        probe order (0 = probed first).
    neighbour_lists : int (n_queries, k), list of each exact neighbour.
    valid : bool (n_queries, k), which neighbours exist.

    A neighbour is found with ``nprobe`` probes exactly when its list's rank
    is below ``nprobe``: the IVF result is the exact top-k of the probed
    lists, and an exact neighbour there has fewer than k codes ahead of it.
    Returns float (n_lists,), entry ``p - 1`` for ``nprobe = p``.
    """
    n_lists = list_rank.shape[1]
    ranks = np.take_along_axis(list_rank, neighbour_lists, axis=1)
    per_query = valid.sum(axis=1)
    keep = per_query > 0
    if not keep.any():
        return np.ones(n_lists)
    weights = 1.0 / per_query[keep]
    found = np.zeros(n_lists + 1)
    np.add.at(found, ranks[keep][valid[keep]] + 1,
              np.repeat(weights, valid[keep].sum(axis=1)))
    return np.cumsum(found)[1:] / keep.sum()
