"""Per-call cost of an unfiltered search on a tiny index (Python overhead dominates).

CPU time of the calling thread (``time.thread_time``), best of several runs,
so a busy machine inflates it little. Runs on any pyspec version, for A/B
against a baseline interpreter::

    python bench/search_overhead.py
"""

from __future__ import annotations

import time

import numpy as np

import pyspec


def _best_us(fn, calls: int = 5000, runs: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, time.thread_time() - t0)
    return best / calls * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, size=(256, 4), dtype=np.uint64)
    hx = pyspec.HammingIndex(256)
    hx.add(codes)
    X = rng.normal(size=(512, 64)).astype(np.float32)
    pq = pyspec.ProductQuantizer(n_segments=8, n_centroids=16, random_state=0).fit(X)
    px = pyspec.PQIndex(pq)
    px.add(X)
    q, xq = codes[:1], X[:1]
    print("| call (256 codes / 512 PQ rows, 1 query, k=10, 1 thread) | us per call |")
    print("|---|---|")
    print(f"| HammingIndex.search | {_best_us(lambda: hx.search(q, 10, num_threads=1)):.2f} |")
    print(f"| HammingIndex.range_search | "
          f"{_best_us(lambda: hx.range_search(q, 100, num_threads=1)):.2f} |")
    print(f"| PQIndex.search | {_best_us(lambda: px.search(xq, 10, num_threads=1)):.2f} |")


if __name__ == "__main__":
    main()
