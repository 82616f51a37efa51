"""How well ``HammingIndex(method="auto")``'s cost model predicts the exact inverted lists.

For each size ``n`` and ``k``: the model's estimated work of the exact
inverted-list search per query as a share of the scan's
(``_ivf_method.estimate_work / n``), next to the measured median time
ratio of ``method="ivf"`` to ``method="scan"`` over 100 single queries
(1 thread), and both times. With ``--batch B``: the same for a batch of B
queries (the estimate for batches against a third of a scan, which is what
a batched scan costs per query; best of 3 timings, ``--threads``), where the
lists take their list-major path. Both methods' results are checked equal.
Queries are the codes stored after the first ``n`` (not in the index), or
random stored rows when there are too few.

    python bench/hamming_plan_calibration.py CODES.npy N [N ...] [--k 10 100]
        [--batch 200 1000] [--threads 1 2]

CODES.npy: uint64 (rows, 4) codes, e.g. the query benchmark's cached fill
(``$PYSPEC_QUERY_CACHE/fill-*.npy``, bench/peer_sections/query.py) or
bench/simulated_codes.py's. The numbers behind ``_plan.PLAN_MARGIN`` and
``_ivf_method._BATCH_BAND_ROW_PRICE``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(index, queries: np.ndarray, k: int) -> float:
    index.search(queries[:1], k, num_threads=1)
    times = []
    for row in queries[:100]:
        t0 = time.perf_counter()
        index.search(row, k, num_threads=1)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _batch_ms(index, queries: np.ndarray, k: int, threads: int) -> float:
    index.search(queries, k, num_threads=threads)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        index.search(queries, k, num_threads=threads)
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main() -> None:
    from pyspec import HammingIndex
    from pyspec.index import _ivf_method

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes")
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--batch", type=int, nargs="*", default=[])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    stored = np.load(args.codes, mmap_mode="r")
    n_queries = max([100, *args.batch])
    for n in args.sizes:
        codes = np.ascontiguousarray(stored[:n])
        rest = np.ascontiguousarray(stored[n:n + n_queries])
        queries = (rest if len(rest) == n_queries and rest.any(axis=1).all()
                   else codes[np.random.default_rng(1).integers(0, n, n_queries)])
        lists, scan = HammingIndex(256, method="ivf"), HammingIndex(256)
        lists.add(codes)
        scan.add(codes)
        for k in args.k:
            est = _ivf_method.estimate_work(lists._lists, codes, k) / n
            t_ivf, t_scan = _median_ms(lists, queries, k), _median_ms(scan, queries, k)
            print(f"n={n} k={k}: estimate {est:.3f} of a scan, measured {t_ivf / t_scan:.3f} "
                  f"(ivf {t_ivf:.3f} ms, scan {t_scan:.3f} ms)", flush=True)
            est_b = _ivf_method.estimate_work(lists._lists, codes, k, batch=True) / (n / 3)
            for b in args.batch:
                batch = np.ascontiguousarray(queries[:b])
                got, ref = lists.search(batch, k), scan.search(batch, k)
                if not (np.array_equal(got.ids, ref.ids)
                        and np.array_equal(got.distances, ref.distances)):
                    raise RuntimeError("the inverted lists and the scan disagree")
                for th in args.threads:
                    t_ivf, t_scan = (_batch_ms(lists, batch, k, th),
                                     _batch_ms(scan, batch, k, th))
                    print(f"n={n} k={k} batch {b} threads {th}: estimate {est_b:.3f} of a "
                          f"batched scan, measured {t_ivf / t_scan:.3f} (ivf {t_ivf:.1f} ms, "
                          f"scan {t_scan:.1f} ms, {t_scan / t_ivf:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
