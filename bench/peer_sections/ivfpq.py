"""IVFPQ: recall against queries per second, pyspec vs faiss IndexIVFPQ and hnswlib (issue 21).

Data: simulated spectra (pyspec.simulate.Simulator, 500 log-spaced pixels
over 3900-8900 A, prepared as bench/simulated_codes.py prepares them: masked
pixels filled with the row mean, rows L2-normalised), ``--ivfpq-n`` database
spectra of one seed and 1,000 queries of another (not in the database),
cached as .npy in ``--ivfpq-cache``. k = 10.

Methods, at each ``--ivfpq-nprobe``:

* pyspec ``IVFPQIndex`` (residual codes, ``--ivfpq-m`` x 8 bits,
  ``--ivfpq-lists`` lists, default 4 sqrt(n)), plus its tuned default nprobe;
* faiss ``IndexIVFPQ`` with the SAME coarse centroids (an ``IndexFlatL2``
  holding pyspec's) and the SAME PQ codebooks (copied into ``index.pq``),
  its precomputed tables on; faiss encodes the residuals itself, so the rows
  compare the list scans over (nearly) the same codes -- the share of
  identical result ids at ``nprobe = n_lists`` is printed as a check;
* pyspec ``IVFPQIndex`` with exact re-ranking of the ``--ivfpq-rerank`` best
  codes against the float spectra (row = id; a memory map here);
* hnswlib on the float spectra (``--ivfpq-hnsw-n`` of them, 0 = skip; M = 16,
  ef_construction = 100), ef sweep; its truth is the exact ranking of that
  subset.

Recall: ``recall_L2`` = share of the exact top 10 by squared L2 on the float
spectra; ``recall_ADC`` = share of pyspec's exhaustive ADC top 10 (``nprobe =
n_lists``), the most an IVFPQ over these codes can find. Timings at each
``--ivfpq-threads``: single queries (``--ivfpq-single`` of them, each timed
once, median) and batches of ``--ivfpq-batch`` queries (all 1,000 queries in
such batches, best of 3); QPS = queries per second. ``x_faiss`` = pyspec QPS
/ faiss QPS at the same nprobe (the same lists and codebooks, so equal recall).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_time  # noqa: E402

from peer_sections.mih import _recall, _time_each  # noqa: E402

NAME = "ivfpq"
_FIGURE = Path(__file__).resolve().parents[1] / "figures" / "ivfpq_recall_qps.png"
N_PIXELS = 500
N_QUERIES = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("ivfpq")
    g.add_argument("--ivfpq-n", type=int, default=1_000_000, help="database spectra")
    g.add_argument("--ivfpq-m", type=int, default=25, help="PQ segments (8 bits each)")
    g.add_argument("--ivfpq-lists", type=int, default=0, help="lists (0: 4 sqrt(n))")
    g.add_argument("--ivfpq-nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    g.add_argument("--ivfpq-single", type=int, default=100, help="single queries timed")
    g.add_argument("--ivfpq-batch", type=int, default=100, help="queries per batch call")
    g.add_argument("--ivfpq-threads", type=int, nargs="+", default=[1, 2])
    g.add_argument("--ivfpq-rerank", type=int, default=100,
                   help="candidates re-ranked by exact L2 in the re-rank rows (0: none)")
    g.add_argument("--ivfpq-hnsw-n", type=int, default=0, help="hnswlib spectra (0: skip)")
    g.add_argument("--ivfpq-hnsw-ef", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    g.add_argument("--ivfpq-cache", default="/tmp/pyspec-ivfpq", help="spectra cache dir")
    g.add_argument("--ivfpq-plot", default=str(_FIGURE), help="PNG to write ('' for none)")


def simulated_spectra(n: int, seed: int, cache: Path) -> np.ndarray:
    """Prepared simulated spectra, float32 (n, 500), cached (memory-mapped) in ``cache``."""
    from simulated_codes import CHUNK, _prepared

    from pyspec.simulate import Simulator

    path = cache / f"spectra-{n}-{seed}-{N_PIXELS}px.npy"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        sim = Simulator(grid=np.geomspace(3900.0, 8900.0, N_PIXELS), seed=seed)
        tmp = path.with_suffix(".partial.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, N_PIXELS))
        for s in range(0, n, CHUNK):
            out[s:s + CHUNK] = _prepared(sim.generate(s, min(n, s + CHUNK)))
        out.flush()
        del out
        tmp.rename(path)
    return np.load(path, mmap_mode="r")


def exact_l2(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """Ids of the exact k nearest rows of X by squared L2, (nq, k), blockwise BLAS."""
    best_d = np.full((len(Q), k), np.inf)
    best_i = np.zeros((len(Q), k), dtype=np.int64)
    q64 = Q.astype(np.float64)
    for s in range(0, len(X), 65536):
        x = np.asarray(X[s:s + 65536], dtype=np.float64)
        d = (x * x).sum(1)[None, :] - 2.0 * q64 @ x.T
        part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        keep = np.argsort(cand_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(cand_d, keep, 1)
        best_i = np.take_along_axis(cand_i, keep, 1)
    return best_i


def _faiss_ivfpq(faiss, ivf, X: np.ndarray):
    """faiss IndexIVFPQ over pyspec's coarse centroids and PQ codebooks."""
    centroids, codebook = ivf.centroids, ivf.pq.codebook_
    D, M = X.shape[1], len(ivf.pq.segment_bounds_) - 1
    quantizer = faiss.IndexFlatL2(D)
    quantizer.add(np.ascontiguousarray(centroids))
    index = faiss.IndexIVFPQ(quantizer, D, len(centroids), M, 8)
    dsub = D // M  # faiss needs equal segments: D % M == 0
    per_segment = codebook.reshape(codebook.shape[0], M, dsub).transpose(1, 0, 2)
    faiss.copy_array_to_vector(np.ascontiguousarray(per_segment).ravel(), index.pq.centroids)
    index.is_trained = True
    index.use_precomputed_table = 1
    index.precompute_table()
    for s in range(0, len(X), 100_000):
        index.add(np.ascontiguousarray(X[s:s + 100_000]))
    index.own_fields = False
    return index, quantizer  # the quantizer must outlive the index


def _sweep(label: str, search, params, Q, truth_l2, truth_adc, n_single, batch,
           threads: int) -> list[dict]:
    rows = []
    for value in params:
        ids = search(Q, value)
        single = _time_each(lambda q, v=value: search(q, v), Q[:n_single])[0]

        def batches(v=value):
            for s in range(0, len(Q), batch):
                search(Q[s:s + batch], v)

        batch_s = best_time(batches, warmup=True)
        rows.append({"method": label, "threads": threads, "param": str(value),
                     "recall_L2": _recall(ids, truth_l2),
                     "recall_ADC": None if truth_adc is None else _recall(ids, truth_adc),
                     "single_ms": single * 1e3, "single_qps": 1.0 / single,
                     "batch_qps": len(Q) / batch_s})
        print(f"  {label} t={threads} {value}: recall_L2 {rows[-1]['recall_L2']:.3f}",
              flush=True)
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    import faiss

    import pyspec
    from pyspec.index._ivf_train import default_n_lists

    quick = getattr(args, "quick", False)
    n = 20_000 if quick else args.ivfpq_n
    k = 10
    cache = Path(args.ivfpq_cache)
    X = simulated_spectra(n, 11, cache)
    Q = np.ascontiguousarray(simulated_spectra(N_QUERIES, 12, cache)[:100 if quick else None])
    n_lists = args.ivfpq_lists or default_n_lists(n)
    n_single = min(args.ivfpq_single, 10 if quick else len(Q))
    t0 = time.perf_counter()
    truth_l2 = exact_l2(X, Q, k)
    print(f"  exact L2 truth in {time.perf_counter() - t0:.1f} s", flush=True)

    t0 = time.perf_counter()
    ivf = pyspec.IVFPQIndex({"n_segments": args.ivfpq_m, "n_centroids": 256,
                             "random_state": 0}, n_lists=n_lists)
    ivf.train(X, num_threads=2)
    t_train = time.perf_counter() - t0
    ivf.add(X, num_threads=2)
    t_add = time.perf_counter() - t0 - t_train
    t0 = time.perf_counter()
    auto = ivf.effective_nprobe(2)
    t_tune = time.perf_counter() - t0
    truth_adc = ivf.search(Q, k, nprobe=n_lists).ids
    sizes = ivf.list_sizes
    rows: list[dict] = [{
        "method": f"pyspec IVFPQ build: {n} spectra, {n_lists} lists, {args.ivfpq_m}x8 bit",
        "param": f"train {t_train:.1f} s, add {t_add:.1f} s, tune {t_tune:.1f} s (2 threads)",
        "recall_L2": f"list sizes p50 {np.median(sizes):.0f}, max {sizes.max()}",
        "single_ms": f"default nprobe {auto}",
        "single_qps": f"{ivf.memory_usage() / 2**20:.0f} MiB",
        "recall_ADC": f"exhaustive ADC recall_L2 {_recall(truth_adc, truth_l2):.3f}"}]
    probes = sorted({p for p in args.ivfpq_nprobe if p <= n_lists} | {auto})

    t0 = time.perf_counter()
    faiss.omp_set_num_threads(2)
    index, _quantizer = _faiss_ivfpq(faiss, ivf, X)
    t_faiss = time.perf_counter() - t0
    index.nprobe = n_lists
    same = _recall(index.search(Q, k)[1], truth_adc)
    rows.append({"method": "faiss IndexIVFPQ build (pyspec centroids + codebooks)",
                 "param": f"add {t_faiss:.1f} s (2 threads)",
                 "recall_L2": f"ids equal to pyspec's at nprobe = n_lists: {same:.4f}"})
    print(f"  faiss built in {t_faiss:.1f} s; same ids at full probe {same:.4f}", flush=True)

    hnsw = _hnsw_build(X[:args.ivfpq_hnsw_n], Q, k) if args.ivfpq_hnsw_n else None
    for threads in args.ivfpq_threads:
        faiss.omp_set_num_threads(threads)

        def pyspec_search(q, nprobe, t=threads):
            return ivf.search(q, k, num_threads=t, nprobe=nprobe).ids

        def faiss_search(q, nprobe):
            index.nprobe = nprobe
            return index.search(q, k)[1]

        ours = _sweep("pyspec IVFPQIndex", pyspec_search, probes, Q, truth_l2, truth_adc,
                      n_single, args.ivfpq_batch, threads)
        theirs = _sweep("faiss IndexIVFPQ", faiss_search, probes, Q, truth_l2, truth_adc,
                        n_single, args.ivfpq_batch, threads)
        for a, b in zip(ours, theirs, strict=True):
            a["x_faiss_single"] = a["single_qps"] / b["single_qps"]
            a["x_faiss_batch"] = a["batch_qps"] / b["batch_qps"]
            if a["param"] == str(auto):
                a["param"] += " (default)"
        rows += ours + theirs

        def rerank_search(q, nprobe, t=threads):
            return ivf.search(q, k, num_threads=t, nprobe=nprobe, rerank=args.ivfpq_rerank,
                              vectors=X).ids

        if args.ivfpq_rerank:
            rows += _sweep(f"pyspec IVFPQIndex + exact re-rank of {args.ivfpq_rerank}",
                           rerank_search, probes, Q, truth_l2, truth_adc, n_single,
                           args.ivfpq_batch, threads)
        if hnsw is not None:
            graph, truth_sub = hnsw

            def hnsw_search(q, ef, t=threads, graph=graph):
                graph.set_ef(max(ef, k))
                return graph.knn_query(q, k=k, num_threads=t)[0].astype(np.int64)

            label = f"hnswlib ({args.ivfpq_hnsw_n} spectra, M=16)"
            rows += _sweep(label, hnsw_search, args.ivfpq_hnsw_ef, Q, truth_sub, None,
                           n_single, args.ivfpq_batch, threads)
    if args.ivfpq_plot and not quick:
        plot(rows, Path(args.ivfpq_plot), n)
    return rows


def _hnsw_build(X: np.ndarray, Q: np.ndarray, k: int):
    import hnswlib

    graph = hnswlib.Index(space="l2", dim=X.shape[1])
    graph.init_index(max_elements=len(X), M=16, ef_construction=100, random_seed=0)
    t0 = time.perf_counter()
    for s in range(0, len(X), 100_000):
        graph.add_items(np.ascontiguousarray(X[s:s + 100_000]),
                        np.arange(s, min(len(X), s + 100_000)), num_threads=2)
    print(f"  hnswlib: {len(X)} spectra in {time.perf_counter() - t0:.1f} s", flush=True)
    return graph, exact_l2(X, Q, k)


def plot(rows: list[dict], path: Path, n: int) -> None:
    """QPS against recall: top row recall_L2 (every method), bottom row recall_ADC
    (the IVFPQ rows: pyspec vs faiss over the same lists and codebooks); single
    queries left, batches right; solid 1 thread, dashed 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.6))
    curves: dict[tuple, list[dict]] = {}
    for r in rows:
        if "threads" in r:
            curves.setdefault((r["method"], int(r["threads"])), []).append(r)
    names = list(dict.fromkeys(m for m, _ in curves))
    for (method, threads), pts in curves.items():
        style = {"color": f"C{names.index(method)}", "marker": "o",
                 "linestyle": "-" if threads == 1 else "--",
                 "label": f"{method}, {threads} thread{'s' if threads > 1 else ''}"}
        for row, key in ((0, "recall_L2"), (1, "recall_ADC")):
            if not all(isinstance(p[key], float) for p in pts) or (row and "re-rank" in method):
                continue
            for ax, column in zip(axes[row], ("single_qps", "batch_qps"), strict=True):
                ax.plot([p[key] for p in pts], [p[column] for p in pts], **style)
    for row, what in ((0, "the exact L2 top 10"), (1, "the exhaustive ADC top 10")):
        for ax, title in zip(axes[row], ("single queries", "batches of 100"), strict=True):
            ax.set_yscale("log")
            ax.set_xlabel(f"recall@10 of {what}")
            ax.set_ylabel("queries per second")
            ax.set_title(f"{title}, {n / 1e6:g}M simulated spectra")
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_log(log: Path, path: Path = _FIGURE) -> None:
    """The figure from the ``## ivfpq`` table a ``peers.py ivfpq`` run printed."""
    lines = log.read_text().splitlines()
    table = [line for line in lines[lines.index("## ivfpq") + 1:] if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = []
    for line in table[2:]:
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for key in ("recall_L2", "recall_ADC", "single_qps", "batch_qps"):
            try:
                row[key] = float(row[key])
            except ValueError:
                pass
        if not row["threads"]:
            del row["threads"]
        rows.append(row)
    build = next(r["method"] for r in rows if "build" in r["method"])
    plot(rows, path, int(build.split(": ")[1].split()[0]))
