"""How well ``HammingIndex(method="auto")``'s cost model predicts the exact inverted lists.

For each size ``n`` and ``k``: the model's estimated work of the exact
inverted-list search per query as a share of the scan's
(``_ivf_method.estimate_work / n``), next to the measured median time
ratio of ``method="ivf"`` to ``method="scan"`` over 100 single queries
(1 thread), and both times. Queries are the codes stored after the first
``n`` (not in the index), or random stored rows when there are none.

    python bench/hamming_plan_calibration.py CODES.npy N [N ...] [--k 10 100]

CODES.npy: uint64 (rows, 4) codes, e.g. the query benchmark's cached fill
(``$PYSPEC_QUERY_CACHE/fill-*.npy``, bench/peer_sections/query.py) or
bench/simulated_codes.py's. The numbers behind ``_plan.PLAN_MARGIN``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(index, queries: np.ndarray, k: int) -> float:
    index.search(queries[:1], k, num_threads=1)
    times = []
    for row in queries:
        t0 = time.perf_counter()
        index.search(row, k, num_threads=1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    from pyspec import HammingIndex
    from pyspec.index import _ivf_method

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes")
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    stored = np.load(args.codes, mmap_mode="r")
    for n in args.sizes:
        codes = np.ascontiguousarray(stored[:n])
        rest = np.ascontiguousarray(stored[n:n + 100])
        queries = (rest if len(rest) == 100 and rest.any(axis=1).all()
                   else codes[np.random.default_rng(1).integers(0, n, 100)])
        lists, scan = HammingIndex(256, method="ivf"), HammingIndex(256)
        lists.add(codes)
        scan.add(codes)
        for k in args.k:
            est = _ivf_method.estimate_work(lists._lists, codes, k) / n
            t_ivf, t_scan = _median_ms(lists, queries, k), _median_ms(scan, queries, k)
            print(f"n={n} k={k}: estimate {est:.3f} of a scan, measured {t_ivf / t_scan:.3f} "
                  f"(ivf {t_ivf:.3f} ms, scan {t_scan:.3f} ms)", flush=True)


if __name__ == "__main__":
    main()
