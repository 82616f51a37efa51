"""Batched pseudo-inverse / ridge solves: pyspec.linalg versus NumPy and SciPy.

Cases (issue 5), defaults N = 100,000 hidden outputs of L = 512 units and
D = 256 targets (float32 data as in a PIL layer, float64 solves):

* ``gram``: ``GramAccumulator.add(H)`` (H^T H, float64 result, float32
  products) versus NumPy's float32 ``H.T @ H`` of the same size (a plain
  BLAS GEMM). ``ratio = numpy / pyspec`` (> 1: pyspec faster); the target is
  ratio >= 1 / 1.3. GFLOP/s are quoted for the full 2 N L^2 GEMM count.
* ``solve``: the whole least-squares fit beta = argmin ||H beta - X||^2 (+
  lambda = 1e-8 * mean diag for stability) three ways: pyspec (Gram + cross
  accumulation in chunks of 16,384 rows, then ``ridge_solve``);
  ``numpy.linalg.pinv(H) @ X`` (SVD, float64); and
  ``scipy.linalg.cho_factor/cho_solve`` on NumPy-formed normal equations.
  ``resid`` is ||H beta - X||_F / ||X||_F for each (same data, float64
  evaluation): pyspec's must be as small as the peers'; ``resid_excess`` is
  (pyspec - peer) / peer (pinv is the optimum, so it is >= 0 up to rounding).
* ``batch``: B = 8 systems (L = 512, D = 256) solved in one call versus a
  Python loop of ``scipy.linalg.cho_solve``.
* ``eigh``: the Jacobi fallback on an L x L matrix versus
  ``numpy.linalg.eigh`` (LAPACK), for context: the fallback only runs for
  indefinite or ill-conditioned systems.

Times are the median of ``--linalg-repeats`` runs after a warm-up (pinv: one
run, it is the slow peer).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

NAME = "linalg"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("linalg")
    g.add_argument("--linalg-n", type=int, default=100_000, help="rows of H (spectra)")
    g.add_argument("--linalg-l", type=int, default=512, help="hidden units L")
    g.add_argument("--linalg-d", type=int, default=256, help="targets D")
    g.add_argument("--linalg-repeats", type=int, default=3, help="timed runs (median)")
    g.add_argument("--linalg-threads", type=int, default=None,
                   help="num_threads for pyspec (default: all cores)")


def _median_time(fn, repeats: int, warm: bool = True) -> tuple[float, object]:
    out = fn() if warm else None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _resid(H: np.ndarray, X: np.ndarray, beta: np.ndarray) -> float:
    r = H.astype(np.float64) @ beta - X
    return float(np.linalg.norm(r) / np.linalg.norm(X))


def run(args: argparse.Namespace) -> list[dict]:
    import scipy.linalg

    from pyspec import linalg

    n, L, D = args.linalg_n, args.linalg_l, args.linalg_d
    if getattr(args, "quick", False):
        n, L, D = min(n, 8000), min(L, 128), min(D, 64)
    reps = args.linalg_repeats
    nt = args.linalg_threads
    rng = np.random.default_rng(0)
    # Hidden outputs of a sigmoid layer on correlated inputs: values in
    # (0, 1), strongly non-centred, like a real PIL layer.
    Z = rng.standard_normal((n, 64)).astype(np.float32) @ rng.standard_normal((64, L)).astype(
        np.float32) / 8 + rng.standard_normal((n, L)).astype(np.float32)
    H = (1.0 / (1.0 + np.exp(-Z))).astype(np.float32)
    X = (H[:, : min(L, 64)] @ rng.standard_normal((min(L, 64), D)).astype(np.float32)
         + 0.1 * rng.standard_normal((n, D)).astype(np.float32))
    rows = []

    t_np, _ = _median_time(lambda: H.T @ H, reps)
    t_ps, _ = _median_time(lambda: linalg.GramAccumulator(L, num_threads=nt).add(H), reps)
    flops = 2.0 * n * L * L
    rows.append({"case": f"gram H^T H ({n}x{L})", "pyspec": t_ps, "peer": t_np,
                 "ratio": t_np / t_ps, "peer_name": "numpy f32 matmul",
                 "pyspec_gflops": flops / t_ps / 1e9, "peer_gflops": flops / t_np / 1e9})

    chunk = 16384

    def pyspec_fit() -> np.ndarray:
        acc = linalg.GramAccumulator(L, D, num_threads=nt)
        for s in range(0, n, chunk):
            acc.add(H[s:s + chunk], X[s:s + chunk])
        lam = 1e-8 * np.trace(acc.gram) / L
        return linalg.ridge_solve(acc.gram, acc.cross, lam, num_threads=nt).beta

    def scipy_fit() -> np.ndarray:
        H64 = H.astype(np.float64)
        G = H64.T @ H64
        C = H64.T @ X.astype(np.float64)
        G[np.diag_indices(L)] += 1e-8 * np.trace(G) / L
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(G, lower=True), C)

    t_ps, b_ps = _median_time(pyspec_fit, reps)
    t_sc, b_sc = _median_time(scipy_fit, reps)
    t0 = time.perf_counter()
    b_pinv = np.linalg.pinv(H.astype(np.float64)) @ X.astype(np.float64)
    t_pinv = time.perf_counter() - t0
    r_ps, r_sc, r_pinv = _resid(H, X, b_ps), _resid(H, X, b_sc), _resid(H, X, b_pinv)
    rows.append({"case": f"solve N={n} L={L} D={D}", "pyspec": t_ps, "peer": t_pinv,
                 "ratio": t_pinv / t_ps, "peer_name": "numpy.linalg.pinv",
                 "pyspec_resid": r_ps, "peer_resid": r_pinv,
                 "resid_excess": (r_ps - r_pinv) / r_pinv})
    rows.append({"case": f"solve N={n} L={L} D={D}", "pyspec": t_ps, "peer": t_sc,
                 "ratio": t_sc / t_ps, "peer_name": "scipy cho_solve (f64 normal eq.)",
                 "pyspec_resid": r_ps, "peer_resid": r_sc,
                 "resid_excess": (r_ps - r_sc) / r_sc})

    B = 8
    Gs, Cs = [], []
    for _ in range(B):
        A = rng.standard_normal((2 * L, L))
        Gs.append(A.T @ A)
        Cs.append(A.T @ rng.standard_normal((2 * L, D)))
    lams = np.full(B, 1e-6)
    t_ps, _ = _median_time(lambda: linalg.ridge_solve(Gs, Cs, lams, num_threads=nt), reps)

    def scipy_batch() -> list[np.ndarray]:
        return [scipy.linalg.cho_solve(scipy.linalg.cho_factor(G + 1e-6 * np.eye(L), lower=True), C)
                for G, C in zip(Gs, Cs)]

    t_sc, _ = _median_time(scipy_batch, reps)
    rows.append({"case": f"batch B={B} L={L} D={D}", "pyspec": t_ps, "peer": t_sc,
                 "ratio": t_sc / t_ps, "peer_name": "scipy cho_solve loop"})

    A = Gs[0]
    t_ps, _ = _median_time(lambda: linalg.eigh(A, num_threads=nt), 1)
    t_np, _ = _median_time(lambda: np.linalg.eigh(A), reps)
    rows.append({"case": f"eigh (fallback) L={L}", "pyspec": t_ps, "peer": t_np,
                 "ratio": t_np / t_ps, "peer_name": "numpy.linalg.eigh"})
    return rows
