"""Same-process speed A/B of two builds of pyspec._core (issue 20).

The installed pyspec's _core and a baseline _core (a copy of another build's
.so, e.g. main's) are loaded side by side; the same seeded inputs go to
both, calls alternate round by round, and each case reports the minimum
thread CPU time (1 thread), which a shared, loaded machine disturbs far less
than the wall time of separate processes. Both builds must take the same
arguments (the PQ layouts come from this build's pq_layout).

    python bench/core_ab.py BASELINE_CORE_SO [--rounds 7] [--only pq hamming ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import numpy as np

from pyspec import _core
from pyspec.models.pq import segment_bounds

Case = tuple[str, str, Callable[[object], object]]


def hamming_cases(rng: np.random.Generator) -> list[Case]:
    codes = rng.integers(0, 2**63, size=(1_000_000, 4), dtype=np.uint64)
    ids = np.arange(len(codes), dtype=np.int64)
    q = codes[rng.integers(0, len(codes), 100)]
    cases: list[Case] = []
    for lv in ("avx2", "avx512"):
        for nq in (1, 100):
            cases.append((f"hamming {lv} 1M x 256 bit, k=10, {nq} queries", lv,
                          lambda m, nq=nq: m.hamming_knn(q[:nq], codes, ids, 10, 257,
                                                         num_threads=1)))
    return cases


def pq_cases(rng: np.random.Generator) -> list[Case]:
    D, M = 2500, 25
    X = rng.normal(size=(1000, D)).astype(np.float32)
    Q = rng.normal(size=(100, D)).astype(np.float32)
    b = segment_bounds(D, M)
    cases: list[Case] = []
    for K in (256, 3200):
        codebook = rng.normal(size=(K, D)).astype(np.float32)
        ct, cn = _core.pq_layout(codebook, b)
        # the 8-bit bound copy where PQIndex uses it (single queries, large K)
        bc = _core.pq_bound_copy(codebook, b) if K > 256 else None
        db = rng.integers(0, K, size=(200_000, M)).astype(np.uint8 if K <= 256 else np.uint16)
        ids = np.arange(len(db), dtype=np.int64)
        scan = _core.pq_scan_layout(db)
        lay = (ct, cn, b, K)
        enc = "pq_encode" if K <= 256 else "pq_encode16"
        for lv in ("avx2", "avx512"):
            tag = f"pq {lv} M={M} K={K}"
            cases += [
                (f"{tag} encode 1000 spectra", lv,
                 lambda m, enc=enc, lay=lay: getattr(m, enc)(X, *lay, num_threads=1)),
                (f"{tag} tables 100 queries", lv,
                 lambda m, lay=lay: m.pq_tables(Q, *lay, num_threads=1)),
                (f"{tag} search 1 query, 200k", lv,
                 lambda m, lay=lay, db=db, ids=ids, scan=scan, bc=bc: m.pq_search(
                     Q[:1], *lay, db, ids, 10, num_threads=1, scan_codes=scan, bound_copy=bc)),
                (f"{tag} search 100 queries, 200k", lv,
                 lambda m, lay=lay, db=db, ids=ids: m.pq_search(Q, *lay, db, ids, 10,
                                                                num_threads=1)),
            ]
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="path of the baseline _core*.so (copied out of its build)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=[], help="substrings of case names to run")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("baseline_build._core", args.baseline)
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    rng = np.random.default_rng(0)
    builds = (("baseline", base), ("this", _core))
    print("| case | baseline ms | this build ms | this / baseline |")
    print("|---|---|---|---|")
    for name, level, fn in hamming_cases(rng) + pq_cases(rng):
        if args.only and not any(o in name for o in args.only):
            continue
        best = {key: float("inf") for key, _ in builds}
        for _, mod in builds:
            mod.set_simd_level(level)
            fn(mod)  # warm-up
        for _ in range(args.rounds):
            for key, mod in builds:
                mod.set_simd_level(level)
                t0 = time.thread_time()
                fn(mod)
                best[key] = min(best[key], time.thread_time() - t0)
        ratio = best["this"] / best["baseline"]
        print(f"| {name} | {best['baseline'] * 1e3:.2f} | {best['this'] * 1e3:.2f} | {ratio:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
