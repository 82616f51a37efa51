"""Recall@10 against queries per second, ann-benchmarks style.

Data: simulated survey spectra (pyspec.simulate, real LAMOST templates,
"lamost" S/N mix) on the pq-2A grid (3900-8900 A, 2 A), masked pixels set to
zero and each spectrum scaled to unit L2 norm. Truth: the exact 10 nearest
database spectra of each held-out query in plain L2 on those spectra.

Methods, all at 1 thread over the same queries (a batch, queries per second =
n_queries / wall time, best of 3):

* pyspec HammingIndex: exact Hamming scan over 256-bit PIL codes;
* faiss IndexBinaryFlat over the same codes;
* pyspec GraphIndex (hnswlib HNSW) over the real-valued PIL embeddings, at
  several ``ef``; faiss IndexHNSWFlat over the same embeddings at the same
  ``efSearch`` (M = 16, efConstruction = 200 for both);
* faiss IndexFlatL2 over the embeddings (the ceiling of any embedding index)
  and over the spectra themselves (exact, recall 1 by definition).

The PNG plots recall@10 against queries per second for every method.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from timing import best_time

NAME = "graph"
_FIGURE = Path(__file__).resolve().parents[1] / "figures" / "graph_recall_qps.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("graph")
    g.add_argument("--graph-n", type=int, default=50_000, help="database spectra (default 50k)")
    g.add_argument("--graph-queries", type=int, default=500, help="held-out queries")
    g.add_argument("--graph-plot", default=str(_FIGURE), help="PNG to write ('' for none)")


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth)]))


def _exact_l2(db: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sq = (db.astype(np.float64) ** 2).sum(axis=1)
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for s in range(0, q.shape[0], 100):
        d = sq[np.newaxis, :] - 2.0 * (q[s:s + 100].astype(np.float64) @ db.T.astype(np.float64))
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        out[s:s + 100] = np.take_along_axis(part, order, axis=1)
    return out


def _prepared(n: int, seed: int) -> np.ndarray:
    from pyspec.simulate import simulate_spectra

    batch = simulate_spectra(n, grid="pq-2A", seed=seed)
    x = np.where(batch.ivar > 0, batch.flux, 0.0).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def run(args: argparse.Namespace) -> list[dict]:
    import faiss

    from pyspec import GraphIndex, HammingIndex, PILHasher

    n = 3000 if args.quick else args.graph_n
    nq = 100 if args.quick else args.graph_queries
    k = 10
    faiss.omp_set_num_threads(1)
    x = _prepared(n + nq, seed=11)
    db, q = x[:n], x[n:]
    truth = _exact_l2(db, q, k)

    hasher = PILHasher(n_bits=256, hidden=(512, 384), random_state=0).fit(db)
    codes_db, codes_q = hasher.encode(db), hasher.encode(q)
    emb_db, emb_q = hasher.embed(db), hasher.embed(q)
    rows: list[dict] = []

    def add(method: str, param: str, found: np.ndarray, seconds: float, build: float = 0.0):
        rows.append({"method": method, "param": param, "recall@10": round(_recall(found, truth), 3),
                     "qps": round(nq / seconds), "build_s": round(build, 2)})

    index = HammingIndex(n_bits=256)
    index.add(codes_db)
    t = best_time(warmup=True, fn=lambda: index.search(codes_q, k, num_threads=1))
    add("pyspec HammingIndex (exact scan)", "256 bits", index.search(codes_q, k).ids, t)

    fbin = faiss.IndexBinaryFlat(256)
    fbin.add(codes_db.view(np.uint8))
    t = best_time(warmup=True, fn=lambda: fbin.search(codes_q.view(np.uint8), k))
    add("faiss IndexBinaryFlat", "256 bits", fbin.search(codes_q.view(np.uint8), k)[1], t)

    t0 = time.perf_counter()
    graph = GraphIndex(emb_db.shape[1], M=16, ef_construction=200)
    graph.add(emb_db, num_threads=1)
    graph_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    fh = faiss.IndexHNSWFlat(emb_db.shape[1], 16)
    fh.hnsw.efConstruction = 200
    fh.add(emb_db)
    faiss_build = time.perf_counter() - t0
    for ef in (10, 20, 40, 80, 160, 320):
        t = best_time(warmup=True, fn=lambda: graph.search(emb_q, k, num_threads=1, ef=ef))
        add("pyspec GraphIndex (hnswlib)", f"ef={ef}", graph.search(emb_q, k, ef=ef).ids, t,
            graph_build)
        fh.hnsw.efSearch = ef
        t = best_time(warmup=True, fn=lambda: fh.search(emb_q, k))
        add("faiss IndexHNSWFlat", f"ef={ef}", fh.search(emb_q, k)[1], t, faiss_build)

    flat_emb = faiss.IndexFlatL2(emb_db.shape[1])
    flat_emb.add(emb_db)
    t = best_time(warmup=True, fn=lambda: flat_emb.search(emb_q, k))
    add("faiss IndexFlatL2 on embeddings", "exact", flat_emb.search(emb_q, k)[1], t)
    flat = faiss.IndexFlatL2(db.shape[1])
    flat.add(db)
    t = best_time(warmup=True, fn=lambda: flat.search(q, k))
    add("faiss IndexFlatL2 on spectra", "exact", flat.search(q, k)[1], t)

    if args.graph_plot and not args.quick:
        _plot(rows, Path(args.graph_plot), n, db.shape[1])
    return rows


def _plot(rows: list[dict], path: Path, n: int, n_pixels: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = [r for r in rows if r["method"] == method]
        style = "o-" if len(pts) > 1 else "s"
        ax.plot([r["recall@10"] for r in pts], [r["qps"] for r in pts], style, label=method)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 (truth: exact L2 on the spectra)")
    ax.set_ylabel("queries per second (1 thread)")
    ax.set_title(f"{n:,} simulated spectra, {n_pixels} pixels, 256-bit PIL codes/embeddings")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"recall/qps plot -> {path}")
