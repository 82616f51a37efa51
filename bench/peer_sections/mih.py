"""Exact Hamming k-NN at 10^7 codes: multi-index hashing vs the scan and faiss (issue 21).

Data: 256-bit PIL codes of simulated spectra (bench/simulated_codes.py,
cached under /tmp/pyspec-mih; generating 10M takes ~20 min on one core),
queries = codes of 1,000 fresh simulated spectra. k = 10.

Rows:

* the distance distribution of the exact neighbours (d1, d10 percentiles,
  share of queries with an exact duplicate), which decides MIH's speed;
* MIH's work per query (codes verified + bucket probes, in scan-equivalent
  units), and the plan of ``HammingIndex(method="auto")`` (the engines'
  index: exact inverted lists or the scan, by its cost model);
* single queries (``--mih-single`` of them, each timed, 1 thread, median)
  and a batch of ``--mih-batch`` queries at each ``--mih-threads``: pyspec
  MIH alone (``method="mih"``), pyspec ``method="auto"`` (its own index
  over the same codes; the cost model's choice), pyspec scan
  (same index, ``method="scan"``), faiss ``IndexBinaryFlat`` (exact)
  and faiss ``IndexBinaryMultiHash`` (``--mih-faiss-nhash`` tables of
  256/nhash bits, ``nflip`` = 1; approximate: its recall@10 against the
  exact ranking is reported). ``vs_*`` = peer time / MIH time,
  ``auto_vs_*`` = peer time / auto time.

Every pyspec result is checked identical (ids and distances) to the scan.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAME = "mih"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("mih")
    g.add_argument("--mih-n", type=int, default=10_000_000, help="database codes")
    g.add_argument("--mih-single", type=int, default=50, help="single queries timed")
    g.add_argument("--mih-batch", type=int, default=200, help="queries in the batch case")
    g.add_argument("--mih-threads", type=int, nargs="+", default=[1, 2])
    g.add_argument("--mih-faiss-nhash", type=int, default=8,
                   help="faiss IndexBinaryMultiHash tables (0 skips it)")
    g.add_argument("--mih-no-flat", action="store_true", help="skip faiss IndexBinaryFlat")


def _time_each(fn, queries: np.ndarray) -> tuple[float, float]:
    """(median, p90) seconds of fn(one query) over the queries (after one warm-up)."""
    fn(queries[:1])
    times = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        fn(queries[i:i + 1])
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(np.percentile(times, 90))


def _time_once(fn, queries: np.ndarray) -> tuple[float, None]:
    """(seconds of fn(queries), None), after a warm-up on a batch of 32 (which also fixes
    the auto plan for batches: HammingIndex prices batches from 32 queries on)."""
    fn(queries[:32])
    t0 = time.perf_counter()
    fn(queries)
    return time.perf_counter() - t0, None


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    pairs = zip(found, exact, strict=True)
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in pairs]))


def run(args: argparse.Namespace) -> list[dict]:
    import faiss
    from simulated_codes import simulated_codes

    import pyspec
    from pyspec.index._mih import MihTables

    quick = getattr(args, "quick", False)
    n = 100_000 if quick else args.mih_n
    k = 10
    codes_map, queries = simulated_codes(n, log=not quick)
    n_single = min(args.mih_single, 10 if quick else len(queries))
    rows: list[dict] = []

    t0 = time.perf_counter()
    index = pyspec.HammingIndex(256, method="mih")
    index.add(np.ascontiguousarray(codes_map))
    build_s = time.perf_counter() - t0
    tables = index._mih_tables
    table_mb = (tables.offsets.nbytes + tables.rows.nbytes) / 2**20
    del codes_map

    index.method = "scan"
    exact = index.search(queries, k)
    index.method = "mih"
    d1, d10 = exact.distances[:, 0], exact.distances[:, k - 1]
    pct = (10, 50, 90, 99)
    rows.append({"case": f"{n} codes: neighbour distances (bits), percentiles {pct}",
                 "d1": "/".join(str(int(v)) for v in np.percentile(d1, pct)),
                 "d10": "/".join(str(int(v)) for v in np.percentile(d10, pct)),
                 "exact_duplicate": f"{100 * np.mean(d1 == 0):.0f}%"})
    # MIH's work without a budget, on the single-query sample (the far
    # queries of a bigger sample would dominate the run time), with the
    # learned bit order and with contiguous substrings (the order before
    # session 7), whose tables are built for this row only.
    *_, work = tables.knn(queries[:n_single], index.codes, index.ids, k, index.pad_distance,
                          0, 1)
    plain = MihTables(
        tables.widths, *pyspec._core.mih_build(index.codes, tables.widths))
    *_, plain_work = plain.knn(queries[:n_single], index.codes, index.ids, k,
                               index.pad_distance, 0, 1)
    del plain
    t0 = time.perf_counter()
    auto = pyspec.HammingIndex(256, method="auto")
    auto.add(index.codes)
    auto_build_s = time.perf_counter() - t0
    plan = auto.plan(k=k)
    batch_plan = auto.plan(k=k, n_queries=max(32, args.mih_batch))
    rows.append({"case": f"MIH tables: widths {sorted(set(tables.widths.tolist()))} x "
                         f"{len(tables.widths)}, {table_mb:.0f} MiB, build {build_s:.1f} s",
                 "work_median": float(np.median(work)), "work_p90": float(np.percentile(work, 90)),
                 "work/n": float(np.median(work)) / n,
                 "contiguous_work/n": float(np.median(plain_work)) / n,
                 "contiguous_work_p90/n": float(np.percentile(plain_work, 90)) / n,
                 "auto_build_s": auto_build_s,
                 "auto": plan.reason,
                 "auto_batch": batch_plan.reason})

    flat = None
    if not args.mih_no_flat:
        flat = faiss.IndexBinaryFlat(256)
        flat.add(index.codes.view(np.uint8))
    multi = None
    if args.mih_faiss_nhash:
        b = 256 // args.mih_faiss_nhash
        multi = faiss.IndexBinaryMultiHash(256, args.mih_faiss_nhash, b)
        multi.nflip = 1
        multi.add(index.codes.view(np.uint8))

    def ours(method: str, threads: int):
        def go(q: np.ndarray):
            index.method = method
            return index.search(q, k, num_threads=threads)
        return go

    def theirs(peer, threads: int):
        def go(q: np.ndarray):
            faiss.omp_set_num_threads(threads)
            return peer.search(q.view(np.uint8), k)
        return go

    got = ours("mih", 1)(queries)
    if not (np.array_equal(got.ids, exact.ids) and np.array_equal(got.distances, exact.distances)):
        raise RuntimeError("MIH and the scan disagree")
    got = auto.search(queries, k, num_threads=1)
    if not (np.array_equal(got.ids, exact.ids) and np.array_equal(got.distances, exact.distances)):
        raise RuntimeError("method='auto' and the scan disagree")
    if flat is not None:
        d_flat, _ = theirs(flat, 1)(queries)
        if not np.array_equal(d_flat, exact.distances):
            raise RuntimeError("faiss IndexBinaryFlat and pyspec disagree on distances")
    multi_recall = None
    if multi is not None:
        _, i_multi = theirs(multi, 1)(queries)
        multi_recall = _recall(i_multi, exact.ids)

    single = queries[:n_single]
    batch = queries[:min(len(queries), 50 if quick else args.mih_batch)]
    cases = [("single query", 1, lambda fn: _time_each(fn, single))]
    cases += [(f"batch {len(batch)}", t, lambda fn: _time_once(fn, batch))
              for t in args.mih_threads]
    for label, threads, timer in cases:
        row = {"case": f"{n} codes, {label}", "threads": threads}
        timed = {"mih": timer(ours("mih", threads)),
                 "auto": timer(lambda q, t=threads: auto.search(q, k, num_threads=t)),
                 "scan": timer(ours("scan", threads))}
        if flat is not None:
            timed["faiss_flat"] = timer(theirs(flat, threads))
        if multi is not None:
            timed["faiss_multihash"] = timer(theirs(multi, threads))
        for name, (median, p90) in timed.items():
            row[f"{name}_ms"] = median * 1e3
            if p90 is not None:
                row[f"{name}_p90_ms"] = p90 * 1e3
        for name, short in (("scan", "scan"), ("faiss_flat", "flat"),
                            ("faiss_multihash", "multihash")):
            if name in timed:
                row[f"vs_{short}"] = timed[name][0] / timed["mih"][0]
                row[f"auto_vs_{short}"] = timed[name][0] / timed["auto"][0]
        if multi is not None:
            row["multihash_recall@10"] = multi_recall
        row["target"] = ">= 10x"
        rows.append(row)
    index.method = "mih"
    return rows
