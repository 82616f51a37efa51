"""Fast-scan section of bench/peers.py: 4-bit PQ, pyspec PQIndex(fast_scan=True)
vs faiss IndexPQFastScan, on the SAME codes.

Data: simulated spectra (:class:`pyspec.simulate.Simulator`, real templates,
survey S/N, shifts, lines) on the pq-2A grid of the seed-004 recipe (3900-8900
A every 2 A; the first 2500 pixels, so 25 and 50 segments split it evenly,
which faiss requires), masked pixels filled with the row mean, each row
divided by its L2 norm (the direction of f / sum f^2, which is how the engine
compares seed-004 rows). No PCA: spectra are generated and encoded in chunks,
only the codes (n x M bytes) are kept, cached under $PYSPEC_FASTSCAN_CACHE
(default /tmp/pyspec-fastscan).

Codebooks: pyspec ProductQuantizer(n_segments=M, n_centroids=16) fitted on
20,000 spectra of another seed; its centroids are copied into a faiss
IndexPQ(d, M, 4), the pyspec codes are written into that index's code array
(faiss packs 4-bit codes two per byte, low nibble first) and
IndexPQFastScan is built from it, so both libraries scan the same codes with
the same centroids. Queries: fresh spectra of a third seed.

Rows: time of a k=10 search from float queries (tables included on both
sides) for a single query (mean over queries) and batches, at each thread
count, ratio faiss / pyspec (> 1: pyspec faster; wall time, and process CPU
time at 1 thread, the steadier figure on a loaded machine); recall@10 of both
against the exact ADC ranking (pyspec's float ADC scan, PQIndex without
fast_scan); candidates re-ranked per query. The quality rows compare, on the
first ``--fs-quality-n`` spectra, recall@10 against exact L2 of the 4-bit
codes (M = 25, 50) and of 8-bit PQ (25 x 256 centroids, the first-wave PQ).

    python bench/peers.py fastscan            # 1M spectra (~10 min to simulate once)
    python bench/peers.py fastscan --quick    # 20,000 spectra
    python bench/peers.py fastscan --fs-profile --fs-threads 1 --fs-quality-n 0  # + stages
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

NAME = "fastscan"
CACHE = Path(os.environ.get("PYSPEC_FASTSCAN_CACHE", "/tmp/pyspec-fastscan"))
N_PIXELS = 2500  # pq-2A grid (2 A steps from 3900 A), first 2500 pixels
CHUNK = 16384
K = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("fastscan section")
    g.add_argument("--fs-n", type=int, default=1_000_000, help="database spectra (default 1M)")
    g.add_argument("--fs-segments", default="25,50", help="4-bit code lengths (default 25,50)")
    g.add_argument("--fs-threads", default="1,2", help="thread counts (default 1,2)")
    g.add_argument("--fs-batches", default="100,1000", help="batch sizes (default 100,1000)")
    g.add_argument("--fs-single", type=int, default=100, help="single queries timed (default 100)")
    g.add_argument("--fs-quality-n", type=int, default=50_000,
                   help="spectra of the exact-L2 quality rows (default 50000; 0 = skip)")
    g.add_argument("--fs-profile", action="store_true",
                   help="also the stage rows: CPU time of the tables, of the fixed costs of a "
                        "search and of the kernel call per SIMD level")


# ---- data ---------------------------------------------------------------------------------


def _simulator(seed: int):
    from pyspec.simulate import Simulator

    return Simulator(grid=3900.0 + 2.0 * np.arange(N_PIXELS), seed=seed)


def spectra(seed: int, n: int):
    """Chunks of prepared spectra ``0 .. n - 1`` of a seed (masked pixels filled, unit L2)."""
    from simulated_codes import _prepared

    sim = _simulator(seed)
    for s in range(0, n, CHUNK):
        yield _prepared(sim.generate(s, min(n, s + CHUNK)))


def quantisers(segments: list[int], log: bool):
    """4-bit quantisers (cached), fitted on 20,000 spectra of seed 101."""
    from pyspec.models.pq import ProductQuantizer

    CACHE.mkdir(parents=True, exist_ok=True)
    out, X = {}, None
    for M in segments:
        path = CACHE / f"pq_{M}x16.pqm"
        if not path.exists():
            if X is None:
                X = np.concatenate(list(spectra(101, 20_000)))
            t0 = time.perf_counter()
            ProductQuantizer(n_segments=M, n_centroids=16, random_state=0).fit(X).save(path)
            if log:
                print(f"fitted {M} x 16 in {time.perf_counter() - t0:.0f} s", flush=True)
        out[M] = ProductQuantizer.load(path)
    return out


def database(n: int, pqs: dict, keep: int, log: bool):
    """Codes of ``n`` spectra of seed 1 for every quantiser (cached .npy), and the
    first ``keep`` spectra themselves (for the exact-L2 quality rows)."""
    paths = {M: CACHE / f"codes_{M}x16_{n}.npy" for M in pqs}
    kept_path = CACHE / f"spectra_{keep}.npy"
    if all(p.exists() for p in paths.values()) and (keep == 0 or kept_path.exists()):
        kept = np.load(kept_path) if keep else None
        return {M: np.load(p) for M, p in paths.items()}, kept
    codes = {M: np.empty((n, M), dtype=np.uint8) for M in pqs}
    kept = np.empty((keep, N_PIXELS), dtype=np.float32) if keep else None
    t0, s = time.perf_counter(), 0
    for chunk in spectra(1, n):
        for M, pq in pqs.items():
            codes[M][s:s + len(chunk)] = pq.encode(chunk)
        if keep and s < keep:
            kept[s:min(keep, s + len(chunk))] = chunk[:keep - s]
        s += len(chunk)
        if log and (s // CHUNK) % 8 == 0:
            print(f"  {s:,} / {n:,} spectra, {time.perf_counter() - t0:.0f} s", flush=True)
    for M, p in paths.items():
        np.save(p, codes[M])
    if keep:
        np.save(kept_path, kept)
    return codes, kept


# ---- peers ----------------------------------------------------------------------------------


def faiss_fastscan(pq, codes: np.ndarray):
    """faiss IndexPQFastScan with pq's centroids and exactly these codes."""
    import faiss

    M, D = codes.shape[1], pq.n_features_in_
    dsub = D // M
    ipq = faiss.IndexPQ(D, M, 4)
    cent = pq.codebook_.reshape(16, M, dsub).transpose(1, 0, 2)  # (M, 16, dsub)
    faiss.copy_array_to_vector(np.ascontiguousarray(cent, dtype=np.float32).ravel(),
                               ipq.pq.centroids)
    ipq.is_trained = True
    padded = np.zeros((len(codes), M + M % 2), dtype=np.uint8)
    padded[:, :M] = codes
    packed = padded[:, 0::2] | (padded[:, 1::2] << 4)  # code 2b low nibble, 2b+1 high
    faiss.copy_array_to_vector(np.ascontiguousarray(packed).ravel(), ipq.codes)
    ipq.ntotal = len(codes)
    return faiss.IndexPQFastScan(ipq)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth, strict=True))
    return hits / max(1, int((truth >= 0).sum()))


def _timed_pair(ours, theirs, repeat: int = 5) -> tuple[float, float, float, float]:
    """Best (wall, process CPU) seconds of each of two functions over ``repeat``
    alternating calls after one warm-up each (alternating, so a change of the
    machine's load hits both): (wall_ours, cpu_ours, wall_theirs, cpu_theirs)."""
    ours()
    theirs()
    best = [float("inf")] * 4
    for _ in range(repeat):
        for j, fn in enumerate((ours, theirs)):
            w, c = time.perf_counter(), time.process_time()
            fn()
            best[2 * j] = min(best[2 * j], time.perf_counter() - w)
            best[2 * j + 1] = min(best[2 * j + 1], time.process_time() - c)
    return tuple(best)


# ---- rows ------------------------------------------------------------------------------------


def speed_rows(M: int, pq, codes: np.ndarray, queries: np.ndarray, args, quick: bool) -> list:
    import faiss

    from pyspec import _core
    from pyspec.index.pq import PQIndex

    n = len(codes)
    fast, plain = PQIndex(pq, fast_scan=True), PQIndex(pq)
    fast.add(codes)
    plain.add(codes)
    peer = faiss_fastscan(pq, codes)
    exact = plain.search(queries, K)  # float ADC over the same codes
    got = fast.search(queries, K)
    if not (np.array_equal(got.ids, exact.ids) and np.array_equal(got.distances, exact.distances)):
        raise RuntimeError("fast scan and the float ADC scan disagree")
    faiss.omp_set_num_threads(1)
    _, i_faiss = peer.search(queries, K)
    tables = pq.distance_tables(queries)
    ncand = _core.pq_fastscan_search(tables, fast.codes, _core.pq_fastscan_pack(fast.codes),
                                     fast.ids, K)[2]
    rows = [{"case": f"{M} x 4 bit, {n:,} codes: recall@10 vs exact ADC",
             "pyspec": _recall(got.ids, exact.ids), "faiss": _recall(i_faiss, exact.ids),
             "candidates": f"median {np.median(ncand):.0f}, p90 {np.percentile(ncand, 90):.0f}"}]
    single = queries[:min(len(queries), 10 if quick else args.fs_single)]
    cases = [("1 query", single, True)]
    cases += [(f"batch {b}", queries[:b], False)
              for b in (int(x) for x in args.fs_batches.split(",")) if b <= len(queries)]
    for threads in (int(t) for t in args.fs_threads.split(",")):
        for label, Q, each in cases:
            def ours(Q=Q, each=each, threads=threads):
                for q in (Q[i:i + 1] for i in range(len(Q))) if each else (Q,):
                    fast.search(q, K, num_threads=threads)

            def theirs(Q=Q, each=each, threads=threads):
                faiss.omp_set_num_threads(threads)
                for q in (Q[i:i + 1] for i in range(len(Q))) if each else (Q,):
                    peer.search(q, K)

            per = len(Q) if each else 1
            w_ours, c_ours, w_theirs, c_theirs = _timed_pair(ours, theirs)
            row = {"case": f"{M} x 4 bit, {n:,} codes, {label}", "threads": threads,
                   "pyspec_ms": 1e3 * w_ours / per, "faiss_ms": 1e3 * w_theirs / per,
                   "ratio": w_theirs / w_ours}
            if threads == 1:
                row["cpu_ratio"] = c_theirs / c_ours
            rows.append(row)
    faiss.omp_set_num_threads(1)
    return rows


def _cpu_ms(fn, per: int, repeat: int = 3) -> float:
    """Best process CPU time of ``fn`` over ``repeat`` calls after a warm-up, ms / ``per``."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return 1e3 * best / per


def profile_rows(M: int, pq, codes: np.ndarray, queries: np.ndarray) -> list:
    """Where a fast-scan search spends its time (1 thread, CPU ms per query):
    the float tables, the fixed costs of a search (the same call over the first
    3,000 codes: the sampled bound, quantisation, candidates and re-rank, and
    a negligible scan), the kernel call over every code per SIMD level, and the
    whole PQIndex.search."""
    import pyspec
    from pyspec import _core
    from pyspec.index.pq import PQIndex

    ids = np.arange(len(codes), dtype=np.int64)
    packed = _core.pq_fastscan_pack(codes)
    small = np.ascontiguousarray(codes[:3000])
    small_packed = _core.pq_fastscan_pack(small)
    fast = PQIndex(pq, fast_scan=True)
    fast.add(codes)
    rows = []
    for label, Q in [("1 query", queries[:20]), ("batch 100", queries[:100])]:
        each = len(Q) == 20
        parts = [Q[i:i + 1] for i in range(len(Q))] if each else [Q]
        tables = [pq.distance_tables(q) for q in parts]

        def call(c, p, i, tables=tables):
            return lambda: [_core.pq_fastscan_search(t, c, p, i, K, num_threads=1) for t in tables]

        row = {"case": f"{M} x 4 bit, {len(codes):,} codes, {label}: CPU ms per query",
               "tables": _cpu_ms(lambda parts=parts: [pq.distance_tables(q) for q in parts],
                                 len(Q)),
               "fixed (3,000 codes)": _cpu_ms(call(small, small_packed, ids[:3000]), len(Q))}
        for level in pyspec.available_simd_levels():
            with pyspec.simd_level(level):
                row[f"search {level}"] = _cpu_ms(call(codes, packed, ids), len(Q))
        row["PQIndex.search"] = _cpu_ms(
            lambda parts=parts: [fast.search(q, K, num_threads=1) for q in parts], len(Q))
        rows.append(row)
    return rows


def quality_rows(pqs: dict, kept: np.ndarray, queries: np.ndarray, quick: bool) -> list:
    """recall@10 against exact L2 on the kept spectra: 4-bit codes (float ADC,
    which fast scan returns exactly) and 8-bit PQ (25 x 256)."""
    from pyspec.index.pq import PQIndex
    from pyspec.models.pq import ProductQuantizer

    Q = queries[:50 if quick else 200]
    d2 = (np.square(Q).sum(1)[:, None] - 2 * Q @ kept.T + np.square(kept).sum(1)[None, :])
    truth = np.argsort(d2, axis=1)[:, :K]
    train = np.concatenate(list(spectra(101, 4096 if quick else 8192)))
    pq8 = ProductQuantizer(n_segments=25, n_centroids=256, random_state=0, n_iter=8).fit(train)
    results = {}
    for name, pq in [(f"{M} x 4 bit (fast scan)", pq) for M, pq in pqs.items()] + [
            ("25 x 8 bit", pq8)]:
        index = PQIndex(pq, fast_scan=pq.n_centroids <= 16)
        index.add(kept)
        results[name] = index.search(Q, K).ids
    rows = []
    for name, ids in results.items():
        rows.append({"case": f"{len(kept):,} spectra, {len(Q)} queries: recall@10 vs exact L2",
                     "codes": name, "recall@10": _recall(ids, truth),
                     "overlap with 25 x 8 bit": _recall(ids, results["25 x 8 bit"])})
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    quick = getattr(args, "quick", False)
    n = 20_000 if quick else args.fs_n
    keep = min(n, 5_000 if quick else args.fs_quality_n)
    segments = [int(m) for m in args.fs_segments.split(",")]
    pqs = quantisers(segments, log=not quick)
    codes, kept = database(n, pqs, keep, log=not quick)
    queries = next(spectra(2, 200 if quick else 1000))
    rows: list[dict] = []
    for M in segments:
        rows += speed_rows(M, pqs[M], codes[M], queries, args, quick)
        if getattr(args, "fs_profile", False):
            rows += profile_rows(M, pqs[M], codes[M], queries)
    if keep:
        rows += quality_rows(pqs, kept, queries, quick)
    return rows
