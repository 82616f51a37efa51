"""PQIndex.range_search: time and traced peak memory (issue 20 leftover: bounded blocks).

Run with this checkout's interpreter and with main's to compare::

    python bench/pq_range_memory.py; /work/main/.venv/bin/python bench/pq_range_memory.py
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from pyspec.index.pq import PQIndex
from pyspec.models.pq import ProductQuantizer


def main(n: int = 300_000, n_queries: int = 32) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 64)).astype(np.float32)
    index = PQIndex(ProductQuantizer(n_segments=16, n_centroids=64, random_state=0).fit(X[:5000]))
    index.add(X)
    Q = X[:n_queries] + 0.01
    radius = float(np.quantile(index.search(Q[:1], 300).distances, 0.99))
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        res = index.range_search(Q, radius)
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    index.range_search(Q, radius)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"range_search {n:,} codes x {n_queries} queries: {best:.3f} s, peak traced "
          f"{peak / 2**20:.1f} MiB, hits {int(res.lims[-1])}")


if __name__ == "__main__":
    main()
