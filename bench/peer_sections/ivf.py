"""Approximate Hamming k-NN through an inverted file at 10^7 codes (issue 21, IVF).

Data: 256-bit PIL codes of simulated spectra (bench/simulated_codes.py, the
cache named by PYSPEC_MIH_CACHE), queries = codes of 1,000 fresh simulated
spectra. k = 10. Truth: the exact ranking of the codes by Hamming distance
(pyspec's scan, ties by id); recall@10 = share of the exact 10 found.

Methods, over the same codes and queries, at each ``--ivf-nprobe``:

* pyspec ``IVFHammingIndex`` (``--ivf-lists`` lists, default 4 sqrt(n);
  binary k-majority quantiser trained on 40 codes per list), plus the
  ``nprobe`` its default tuning chooses (recall 0.95 on 256 stored codes);
* pyspec ``IVFHammingIndex.search(exact=True)`` (the scan's result, through
  the ring-sorted lists; recall 1);
* faiss ``IndexBinaryIVF`` with the same lists: its quantiser is an
  ``IndexBinaryFlat`` holding pyspec's centroids and its lists are filled
  with pyspec's assignment (``add_core`` with precomputed lists: the same
  partition without a second 10^7-code assignment scan, so the rows compare
  the list scans); with ``--ivf-faiss-train`` also one trained by faiss
  itself (float k-means on the bits, rounded), which is slow;
* hnswlib (``--ivf-hnsw-n`` codes, 0 = skip) on the codes unpacked to 0/1
  float vectors: squared L2 between 0/1 vectors is the Hamming distance, so
  it searches the same metric; its truth is the exact ranking of that subset;
* the flat scan (pyspec ``HammingIndex``), recall 1.

Recall: ``recall@10`` counts the returned codes at or under the exact 10th
distance (ties do not matter: codes of spectra tie often, and faiss and
hnswlib do not order equal distances by id); ``id_recall@10`` is the share
of the exact ids (ties broken by id, as pyspec does).

Timings: single queries (``--ivf-single`` of them, each timed once, not
best of several: a repeated query would find its lists in the cache;
median) and one batch of all queries (best of 3), at
``--ivf-threads`` threads; QPS = queries per second, ``x_flat`` = QPS /
flat-scan QPS of the same case and run.
``--ivf-plot`` writes recall against QPS for every method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_time  # noqa: E402

from peer_sections.ivf_exact import cached_codes  # noqa: E402
from peer_sections.mih import _recall, _time_each  # noqa: E402

NAME = "ivf"
_FIGURE = Path(__file__).resolve().parents[1] / "figures" / "ivf_recall_qps.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("ivf")
    g.add_argument("--ivf-n", type=int, default=10_000_000, help="database codes")
    g.add_argument("--ivf-lists", type=int, default=0, help="lists (0: 4 sqrt(n))")
    g.add_argument("--ivf-nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128])
    g.add_argument("--ivf-single", type=int, default=100, help="single queries timed")
    g.add_argument("--ivf-threads", type=int, default=1)
    g.add_argument("--ivf-faiss-train", action="store_true",
                   help="also a faiss IndexBinaryIVF with faiss's own quantiser")
    g.add_argument("--ivf-hnsw-n", type=int, default=0, help="hnswlib codes (0: skip)")
    g.add_argument("--ivf-hnsw-ef", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    g.add_argument("--ivf-plot", default=str(_FIGURE), help="PNG to write ('' for none)")
    g.add_argument("--ivf-index", default="",
                   help="IVF index file: loaded when it exists (built from the same codes), "
                        "else built and saved there ('' = build, do not save)")
    g.add_argument("--ivf-no-faiss", action="store_true", help="skip faiss IndexBinaryIVF")


def _tied_recall(ids: np.ndarray, dist: np.ndarray, exact_dist: np.ndarray) -> float:
    """Share of the k returned codes at or under the exact k-th distance: recall that
    does not depend on how a method orders codes at equal distance (codes of
    spectra tie often; faiss and hnswlib do not break ties by id)."""
    k = exact_dist.shape[1]
    hits = ((dist <= exact_dist[:, -1:]) & (ids >= 0)).sum(axis=1)
    return float(np.mean(np.minimum(hits, k) / k))


def _row(method: str, param: str, found: tuple, truth, single_s: float,
         batch_s: float, n_queries: int, flat: dict | None) -> dict:
    row = {"method": method, "param": param,
           "recall@10": _tied_recall(found[0], found[1], truth.distances),
           "id_recall@10": _recall(found[0], truth.ids),
           "single_ms": single_s * 1e3, "single_qps": 1.0 / single_s,
           "batch_qps": n_queries / batch_s}
    if flat is not None:
        row["x_flat_single"] = row["single_qps"] / flat["single_qps"]
        row["x_flat_batch"] = row["batch_qps"] / flat["batch_qps"]
    return row


def _faiss_ivf(faiss, codes: np.ndarray, n_lists: int, ivf=None):
    """faiss IndexBinaryIVF trained by faiss, or (``ivf`` given) holding pyspec's
    centroids and lists (codes added with their precomputed list numbers)."""
    quantizer = faiss.IndexBinaryFlat(256)
    index = faiss.IndexBinaryIVF(quantizer, 256, n_lists)
    if ivf is None:
        sample = codes[np.random.default_rng(0).choice(len(codes), min(len(codes), 40 * n_lists),
                                                       replace=False)]
        index.train(sample.view(np.uint8))
        index.add(codes.view(np.uint8))
    else:
        quantizer.add(np.ascontiguousarray(ivf.centroids).view(np.uint8))
        index.is_trained = True
        lists = np.repeat(np.arange(n_lists, dtype=np.int64), ivf.list_sizes)
        ids = np.ascontiguousarray(ivf.ids)
        x = np.ascontiguousarray(ivf.codes).view(np.uint8)
        index.add_core(len(ids), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
    index.own_fields = False
    return index, quantizer  # the quantizer must outlive the index


def _sweep(label: str, search, params, queries, truth, n_single, flat) -> list[dict]:
    rows = []
    for value in params:
        found = search(queries, value)
        single = _time_each(lambda q, v=value: search(q, v), queries[:n_single])[0]  # median
        batch = best_time(lambda v=value: search(queries, v), warmup=True)
        rows.append(_row(label, str(value), found, truth, single, batch, len(queries), flat))
        print(f"  {label} {value}: recall {rows[-1]['recall@10']:.3f}", flush=True)
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    import faiss

    import pyspec

    quick = getattr(args, "quick", False)
    n = 50_000 if quick else args.ivf_n
    k, threads = 10, args.ivf_threads
    faiss.omp_set_num_threads(threads)
    codes_map, queries = cached_codes(n, quick)  # memory map, never a 10^7 generation
    codes = np.ascontiguousarray(codes_map)
    del codes_map
    n_single = min(args.ivf_single, 10 if quick else len(queries))
    n_lists = args.ivf_lists or pyspec.index._ivf_train.default_n_lists(n)
    rows: list[dict] = []

    flat_index = pyspec.HammingIndex(256)
    flat_index.add(codes)
    exact = flat_index.search(queries, k)

    def flat_search(q, _):
        res = flat_index.search(q, k, num_threads=threads)
        return res.ids, res.distances

    flat = _sweep("flat scan", flat_search, ["-"], queries, exact, n_single, None)[0]
    rows.append(flat)
    flat_index = None  # frees the copy of the codes before the next index

    t0 = time.perf_counter()
    if args.ivf_index and Path(args.ivf_index).exists():
        ivf = pyspec.IVFHammingIndex.load(args.ivf_index)
        if len(ivf) != n:
            raise SystemExit(f"{args.ivf_index} holds {len(ivf)} codes, not {n}")
        n_lists = ivf.centroids.shape[0]
        t_train, t_add = 0.0, time.perf_counter() - t0  # "add" = loading the file
    else:
        ivf = pyspec.IVFHammingIndex(256, n_lists=n_lists)
        ivf.train(codes, num_threads=threads)
        t_train = time.perf_counter() - t0
        ivf.add(codes, num_threads=threads)
        t_add = time.perf_counter() - t0 - t_train
        if args.ivf_index:
            ivf.save(args.ivf_index)
    t0 = time.perf_counter()
    auto = ivf.effective_nprobe(threads)
    t_tune = time.perf_counter() - t0
    sizes = ivf.list_sizes
    rows.append({"method": f"pyspec IVF build: {n} codes, {n_lists} lists",
                 "param": f"train {t_train:.1f} s, add {t_add:.1f} s, tune {t_tune:.1f} s",
                 "recall@10": f"list sizes p50 {np.median(sizes):.0f}, max {sizes.max()}",
                 "single_ms": f"default nprobe {auto}",
                 "single_qps": f"{ivf.memory_usage() / 2**20:.0f} MiB"})

    def ivf_search(q, nprobe):
        res = ivf.search(q, k, num_threads=threads, nprobe=nprobe)
        return res.ids, res.distances

    probes = sorted({p for p in args.ivf_nprobe if p <= n_lists} | {auto})
    ivf_rows = _sweep("pyspec IVFHammingIndex", ivf_search, probes, queries, exact,
                      n_single, flat)
    for row in ivf_rows:
        if row["param"] == str(auto):
            row["param"] += " (default)"
    rows += ivf_rows

    def ivf_exact(q, _):
        res = ivf.search(q, k, num_threads=threads, exact=True)
        return res.ids, res.distances

    rows += _sweep("pyspec IVFHammingIndex exact=True", ivf_exact, ["exact"], queries, exact,
                   n_single, flat)
    if rows[-1]["id_recall@10"] != 1.0:
        raise RuntimeError("exact IVF search differs from the scan")

    peers = [] if args.ivf_no_faiss else [("faiss IndexBinaryIVF (pyspec lists)", ivf)]
    if args.ivf_faiss_train:
        peers.append(("faiss IndexBinaryIVF (faiss-trained)", None))
    for label, source in peers:
        t0 = time.perf_counter()
        faiss.omp_set_num_threads(2)  # building is not what the rows compare
        index, _quantizer = _faiss_ivf(faiss, codes, n_lists, source)
        faiss.omp_set_num_threads(threads)
        print(f"  {label}: built in {time.perf_counter() - t0:.1f} s", flush=True)

        def faiss_search(q, nprobe, index=index):
            index.nprobe = nprobe
            dist, ids = index.search(q.view(np.uint8), k)
            return ids, dist

        rows += _sweep(label, faiss_search, [p for p in probes if p <= n_lists], queries,
                       exact, n_single, flat)
        del index
    ivf = None

    if args.ivf_hnsw_n:
        rows += _hnsw_rows(args, codes[:args.ivf_hnsw_n], queries, k, threads, n_single,
                           flat if args.ivf_hnsw_n >= n else None)
    if args.ivf_plot and not quick:
        from ivf_plot import plot

        plot([(f"{n / 1e6:g}M codes", rows)], threads, Path(args.ivf_plot))
    return rows


def _hnsw_rows(args, codes, queries, k, threads, n_single, flat) -> list[dict]:
    """hnswlib over the codes as 0/1 floats (squared L2 = Hamming)."""
    import hnswlib

    import pyspec
    from pyspec._bits import unpack_bits

    subset = pyspec.HammingIndex(256)
    subset.add(codes)
    truth = subset.search(queries, k)
    del subset
    graph = hnswlib.Index(space="l2", dim=256)
    graph.init_index(max_elements=len(codes), M=16, ef_construction=100, random_seed=0)
    t0 = time.perf_counter()
    for s in range(0, len(codes), 100_000):
        block = unpack_bits(codes[s:s + 100_000], 256).astype(np.float32)
        graph.add_items(block, np.arange(s, s + len(block)), num_threads=2)
    print(f"  hnswlib: built in {time.perf_counter() - t0:.1f} s", flush=True)

    def hnsw_search(q, ef):  # the timed call unpacks its queries too (~10 us per query)
        graph.set_ef(max(ef, k))
        labels, dist = graph.knn_query(unpack_bits(q, 256).astype(np.float32), k=k,
                                       num_threads=threads)
        return labels.astype(np.int64), dist

    label = f"hnswlib on 0/1 floats ({len(codes)} codes, M=16)"
    return _sweep(label, hnsw_search, args.ivf_hnsw_ef, queries, truth, n_single, flat)
