"""PQ section of bench/peers.py: pyspec ProductQuantizer/PQIndex vs faiss and nanopq.

Same structured synthetic spectra (smooth templates with shifts, continuum
slopes and noise; not uniform noise), same process, same thread counts.
Ratios are peer time / pyspec time (> 1: pyspec faster).

Cases (defaults follow issue 4):
  * ``256``: D=2500, 25 segments x 256 centroids, 200,000 database spectra
    generated and encoded in chunks (never 2 GB at once); training time
    (pyspec k-means++ + Lloyd vs faiss k-means, same sample and iterations),
    encoding throughput, k=10 search for one query and a batch of 100 at each
    thread count, recall@10 against exact search.
  * ``3200``: 25 segments x 3200 centroids (uint16 codes) vs faiss nbits=12,
    which always has 2**12 = 4096 centroids; pyspec is also timed at 4096
    centroids for a like-for-like row. The 200,000-row search database uses
    random codes for both (scan time does not depend on code values; encoding
    200k spectra at 4096 centroids would take minutes), encoding throughput
    is measured on real spectra.
  * ``finest``: the study's finest split, 1250 segments of 2 pixels x 256
    centroids, single-query search on 200,000 random codes.

    python bench/peers.py pq            # issue sizes (takes several minutes)
    python bench/peers.py pq --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

NAME = "pq"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pq section")
    g.add_argument("--pq-n", type=int, default=None, help="database spectra (default 200000)")
    g.add_argument("--pq-dim", type=int, default=None, help="pixels per spectrum (default 2500)")
    g.add_argument("--pq-train", type=int, default=None, help="training sample (default 10000)")
    g.add_argument("--pq-iter", type=int, default=None, help="k-means iterations (default 25)")
    g.add_argument("--pq-threads", default="1,2", help="thread counts for search (default 1,2)")
    g.add_argument("--pq-train-threads", type=int, default=1,
                   help="threads for training and encoding, both libraries (default 1)")
    g.add_argument("--pq-cases", default="256,3200,finest",
                   help="comma list of cases: 256, 3200, finest")


# ---- data -------------------------------------------------------------------------------


class SpectraStream:
    """Deterministic structured spectra, generated chunk by chunk."""

    def __init__(self, n_pixels: int, seed: int = 0, n_templates: int = 8,
                 max_shift: int = 60, noise: float = 0.03) -> None:
        rng = np.random.default_rng(seed)
        self.n_pixels, self.max_shift, self.noise = n_pixels, max_shift, noise
        width = n_pixels + 2 * max_shift
        x = np.linspace(0.0, 1.0, width)
        self.templates = np.empty((n_templates, width), dtype=np.float32)
        for t in range(n_templates):
            cont = 1.0 + rng.uniform(-0.8, 0.8) * x + rng.uniform(-0.5, 0.5) * x ** 2
            lines = np.zeros(width)
            for _ in range(rng.integers(15, 40)):
                c, s = rng.uniform(0, 1), rng.uniform(0.0005, 0.006)
                lines += rng.uniform(-0.8, 1.5) * np.exp(-0.5 * ((x - c) / s) ** 2)
            self.templates[t] = cont + lines
        self.windows = np.lib.stride_tricks.sliding_window_view(self.templates, n_pixels, axis=1)
        self.xs = np.linspace(-0.5, 0.5, n_pixels, dtype=np.float32)

    def chunk(self, seed: int, count: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        which = rng.integers(0, len(self.templates), count)
        shift = rng.integers(0, 2 * self.max_shift + 1, count)
        out = self.windows[which, shift].astype(np.float32)
        out *= 1.0 + rng.normal(0, 0.3, (count, 1)).astype(np.float32) * self.xs
        out += rng.standard_normal(out.shape, dtype=np.float32) * (self.noise * float(np.abs(out).mean()))
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _topk_update(best_d, best_i, Q, qn, X, start, k):
    d = qn[:, None] + np.einsum("ij,ij->i", X, X)[None, :] - 2.0 * (Q @ X.T)
    ids = np.arange(start, start + X.shape[0])[None, :].repeat(Q.shape[0], 0)
    d = np.concatenate([best_d, d], axis=1)
    i = np.concatenate([best_i, ids], axis=1)
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    return np.take_along_axis(d, part, 1), np.take_along_axis(i, part, 1)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def _best_of(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# ---- cases --------------------------------------------------------------------------------


def _search_rows(case, index, fi, nano, nano_codes, Q, k, threads, n_single, faiss, extra=None):
    rows = []
    for nt in threads:
        faiss.omp_set_num_threads(nt)
        index.search(Q[:1], k, num_threads=nt)  # warm-up (scan-variant choice, pages)
        fi.search(Q[:1], k)
        one_p = _best_of(lambda: [index.search(Q[i:i + 1], k, num_threads=nt)
                                  for i in range(n_single)]) / n_single
        one_f = _best_of(lambda: [fi.search(Q[i:i + 1], k) for i in range(n_single)]) / n_single
        row = {"case": case, "what": "search 1 query", "threads": nt,
               "pyspec_ms": one_p * 1e3, "faiss_ms": one_f * 1e3, "faiss/pyspec": one_f / one_p}
        if nano is not None and nt == 1:
            def nano_one(i):
                d = nano.dtable(Q[i]).adist(nano_codes)
                return np.argpartition(d, k)[:k]
            one_n = _best_of(lambda: [nano_one(i) for i in range(n_single)]) / n_single
            row.update({"nanopq_ms": one_n * 1e3, "nanopq/pyspec": one_n / one_p})
        rows.append({**row, **(extra or {})})
        if len(Q) > 1:
            b_p = _best_of(lambda: index.search(Q, k, num_threads=nt), 2)
            b_f = _best_of(lambda: fi.search(Q, k), 2)
            rows.append({"case": case, "what": f"search batch {len(Q)}", "threads": nt,
                         "pyspec_ms": b_p * 1e3, "faiss_ms": b_f * 1e3,
                         "faiss/pyspec": b_f / b_p, **(extra or {})})
    return rows


def _case_256(args, stream, train, Q, threads, nmax):
    import faiss
    import nanopq

    from pyspec import PQIndex, ProductQuantizer

    D, M, K, k = args.pq_dim, 25, 256, 10
    rows = []
    faiss.omp_set_num_threads(nmax)
    pq = ProductQuantizer(M, K, random_state=0, n_iter=args.pq_iter, tol=0.0,
                          max_points_per_centroid=None)
    t_p = _best_of(lambda: pq.fit(train, num_threads=nmax), 1)
    fi = faiss.IndexPQ(D, M, 8)
    fi.pq.cp.niter = args.pq_iter
    fi.pq.cp.max_points_per_centroid = 1 << 30
    t_f = _best_of(lambda: fi.train(train), 1)
    nano = nanopq.PQ(M=M, Ks=K, verbose=False)
    t_n = _best_of(lambda: nano.fit(train, iter=args.pq_iter, seed=0), 1)
    rows.append({"case": "M25 K256", "what": f"train {len(train)} x {args.pq_iter} it",
                 "threads": nmax, "pyspec_ms": t_p * 1e3, "faiss_ms": t_f * 1e3,
                 "faiss/pyspec": t_f / t_p, "nanopq_ms": t_n * 1e3, "nanopq/pyspec": t_n / t_p})

    n, chunk = args.pq_n, 10000
    codes_p = np.empty((n, M), np.uint8)
    codes_f = np.empty((n, fi.sa_code_size()), np.uint8)
    codes_n = np.empty((n, M), np.uint8)
    te_p = te_f = te_n = 0.0
    qn = np.einsum("ij,ij->i", Q, Q)
    best_d = np.full((len(Q), k), np.inf)
    best_i = np.full((len(Q), k), -1)
    for c0 in range(0, n, chunk):
        X = stream.chunk(1000 + c0 // chunk, min(chunk, n - c0))
        t = time.perf_counter()
        codes_p[c0:c0 + len(X)] = pq.encode(X, num_threads=nmax)
        te_p += time.perf_counter() - t
        t = time.perf_counter()
        codes_f[c0:c0 + len(X)] = fi.sa_encode(X)
        te_f += time.perf_counter() - t
        t = time.perf_counter()
        codes_n[c0:c0 + len(X)] = nano.encode(X)
        te_n += time.perf_counter() - t
        best_d, best_i = _topk_update(best_d, best_i, Q, qn, X, c0, k)
        del X
    truth = np.take_along_axis(best_i, np.argsort(best_d, axis=1), 1)
    rows.append({"case": "M25 K256", "what": f"encode {n} (spectra/s)", "threads": nmax,
                 "pyspec_ms": te_p * 1e3, "faiss_ms": te_f * 1e3, "faiss/pyspec": te_f / te_p,
                 "nanopq_ms": te_n * 1e3, "nanopq/pyspec": te_n / te_p,
                 "pyspec_per_s": n / te_p, "faiss_per_s": n / te_f})
    index = PQIndex(pq)
    index.add(codes_p)
    fi.add_sa_codes(codes_f)
    del codes_f
    rec = {"recall_pyspec": _recall(index.search(Q, k).ids, truth),
           "recall_faiss": _recall(fi.search(Q, k)[1], truth),
           "recall_nanopq": _recall(np.stack([np.argsort(nano.dtable(q).adist(codes_n))[:k]
                                              for q in Q]), truth)}
    rows += _search_rows("M25 K256", index, fi, nano, codes_n, Q, k, threads, 20, faiss, rec)
    return rows


def _case_3200(args, stream, train, Q, threads, nmax):
    import faiss

    from pyspec import PQIndex, ProductQuantizer

    D, M, k = args.pq_dim, 25, 10
    n = args.pq_n
    rng = np.random.default_rng(7)
    rows = []
    iters = max(1, min(args.pq_iter, 5))  # k-means at 4096 centroids is costly for both
    n_enc = min(5000, n)
    Xe = stream.chunk(99, n_enc)
    if len(train) < 4096:  # faiss needs at least 2**12 training points
        train = stream.chunk(3, 4200)
    faiss.omp_set_num_threads(nmax)
    fi = faiss.IndexPQ(D, M, 12)
    fi.pq.cp.niter = iters
    fi.pq.cp.max_points_per_centroid = 1 << 30
    t_f = _best_of(lambda: fi.train(train), 1)
    te_f = _best_of(lambda: fi.sa_encode(Xe), 1)
    fi.add_sa_codes(rng.integers(0, 256, size=(n, fi.sa_code_size()), dtype=np.uint8))
    for K in (3200, 4096):
        pq = ProductQuantizer(M, K, random_state=0, n_iter=iters, tol=0.0,
                              max_points_per_centroid=None)
        t_p = _best_of(lambda: pq.fit(train, num_threads=nmax), 1)  # noqa: B023
        te_p = _best_of(lambda: pq.encode(Xe, num_threads=nmax), 1)  # noqa: B023
        case = f"M25 K{K} vs faiss 12-bit"
        rows.append({"case": case, "what": f"train {len(train)} x {iters} it", "threads": nmax,
                     "pyspec_ms": t_p * 1e3, "faiss_ms": t_f * 1e3, "faiss/pyspec": t_f / t_p})
        rows.append({"case": case, "what": f"encode {n_enc} (spectra/s)", "threads": nmax,
                     "pyspec_ms": te_p * 1e3, "faiss_ms": te_f * 1e3, "faiss/pyspec": te_f / te_p,
                     "pyspec_per_s": n_enc / te_p, "faiss_per_s": n_enc / te_f})
        if K == 4096:  # Lloyd only, seeded like faiss (random rows), like for like
            pr = ProductQuantizer(M, K, random_state=0, n_iter=iters, tol=0.0, init="random",
                                  max_points_per_centroid=None)
            t_r = _best_of(lambda: pr.fit(train, num_threads=nmax), 1)  # noqa: B023
            rows.append({"case": case, "what": f"train {len(train)} x {iters} it, init=random",
                         "threads": nmax, "pyspec_ms": t_r * 1e3, "faiss_ms": t_f * 1e3,
                         "faiss/pyspec": t_f / t_r})
        index = PQIndex(pq)
        index.add(rng.integers(0, K, size=(n, M)).astype(np.uint16))
        rows += _search_rows(case, index, fi, None, None, Q, k, threads, 10, faiss)
        del index
        gc.collect()
    return rows


def _case_finest(args, stream, train, Q, threads, nmax):
    import faiss

    from pyspec import PQIndex, ProductQuantizer

    D, k = args.pq_dim, 10
    M = D // 2
    n = args.pq_n
    rng = np.random.default_rng(8)
    sample = train[: min(len(train), 5000)]
    faiss.omp_set_num_threads(nmax)
    pq = ProductQuantizer(M, 256, random_state=0, n_iter=5, tol=0.0).fit(sample, num_threads=nmax)
    fi = faiss.IndexPQ(D, M, 8)
    fi.pq.cp.niter = 5
    fi.train(sample)
    codes = rng.integers(0, 256, size=(n, M), dtype=np.uint8)
    index = PQIndex(pq)
    index.add(codes)
    fi.add_sa_codes(codes)  # 8-bit faiss codes are the same bytes
    return _search_rows(f"M{M} (2 px) K256", index, fi, None, None, Q[:1], k, threads[:1], 3,
                        faiss)


def run(args: argparse.Namespace) -> list[dict]:
    quick = getattr(args, "quick", False)
    args.pq_n = args.pq_n or (20000 if quick else 200_000)
    args.pq_dim = args.pq_dim or (500 if quick else 2500)
    args.pq_train = args.pq_train or (3000 if quick else 10000)
    args.pq_iter = args.pq_iter or (5 if quick else 25)
    threads = [int(t) for t in str(args.pq_threads).split(",")]
    nmax = args.pq_train_threads  # training and encoding threads
    stream = SpectraStream(args.pq_dim, seed=0)
    train = stream.chunk(1, args.pq_train)
    Q = stream.chunk(2, 100)
    rows: list[dict] = []
    cases = args.pq_cases.split(",")
    if "256" in cases:
        rows += _case_256(args, stream, train, Q, threads, nmax)
        gc.collect()
    if "3200" in cases:
        rows += _case_3200(args, stream, train, Q, threads, nmax)
        gc.collect()
    if "finest" in cases:
        rows += _case_finest(args, stream, train, Q, threads, nmax)
    from pyspec import _core

    for r in rows:
        r["scan"] = "gather" if _core.pq_scan_variant() == 1 else "interleaved"
    return rows
