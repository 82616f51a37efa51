"""Label propagation / spreading: pyspec against scikit-learn's ``sklearn.semi_supervised``.

Data: simulated stars (pyspec.simulate, real LAMOST templates, "lamost" S/N
mix, 10 % Be-like H-alpha emission) on the "halpha-140" grid (140 points over
6519-6732 A), divided by a sigma-clipped linear continuum and scaled to
[-1, 1] (the seed-002 preparation). Labels: "emission" (single or double
peaked H-alpha) or "absorption"; 5 % of the spectra labelled at random.

Cases, each timed once in this process (best of ``--semi-repeat``):

* ``fit from spectra``: scikit-learn ``kernel="knn"`` (its NearestNeighbors
  graph, brute force for 140 dimensions) against ``pyspec.knn_graph``
  (exact; scikit-learn's own directed graph with self edges, the symmetric
  union on the 140 pixels, or on 32 principal components of a 20k sample)
  plus pyspec's fused sparse iterations; ``*_prec`` is the
  precision of the "emission" transduction on the unlabelled spectra;
* ``iterations on one graph``: both given the same symmetric kNN graph
  (scikit-learn through a callable kernel), so only the iteration differs;
  ``agree`` is the fraction of identical transductions.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from timing import best_time

NAME = "semi"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("semi")
    g.add_argument("--semi-n", type=int, default=50_000, help="spectra (default 50k)")
    g.add_argument("--semi-k", type=int, default=7, help="graph neighbours (default 7)")
    g.add_argument("--semi-labelled", type=float, default=0.05, help="labelled fraction")
    g.add_argument("--semi-repeat", type=int, default=1, help="timing repeats (default 1)")
    g.add_argument("--semi-threads", type=int, default=None, help="pyspec threads")
    g.add_argument("--semi-iterations-only", action="store_true",
                   help="only the 'iterations on one graph' rows (the graph is built once)")


def prepared_stars(n: int, seed: int = 0, line_amplitude=(0.5, 3.0)):
    """(spectra float32 (n, 140), labels) of simulated stars, seed-002 preparation."""
    from pyspec.preprocess import WavelengthGrid, continuum_poly, normalise
    from pyspec.simulate import simulate_spectra

    b = simulate_spectra(n, grid="halpha-140", seed=seed, p_be=0.1,
                         class_weights={"STAR": 1.0}, line_amplitude=line_amplitude)
    wl = WavelengthGrid.preset("halpha-140").wavelength
    f = b.flux.astype(np.float64)
    cont = continuum_poly(f, wl, b.ivar, degree=1)
    x = normalise(f / np.where(cont > 0, cont, 1.0), "minmax-sym")[0].astype(np.float32)
    prof = np.asarray(b.labels["halpha_profile"]).astype(str)
    return x, np.where(prof == "none", "absorption", "emission")


def _fit(model, source, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, both libraries
        return model.fit(source, y)


def run(args: argparse.Namespace) -> list[dict]:
    from sklearn import semi_supervised as sk

    import pyspec

    n = 3000 if args.quick else args.semi_n
    k = args.semi_k
    x, truth = prepared_stars(n)
    rng = np.random.default_rng(1)
    y = np.full(n, -1)
    lab = rng.choice(n, max(10, int(args.semi_labelled * n)), replace=False)
    y[lab] = truth[lab] == "emission"
    free = y == -1
    rows = []
    pyspec.knn_graph(x[:2000], k=k, n_components=32)  # warm-up: numba compile, BLAS threads
    graphs = {}
    for variant, ours, theirs, kw in (
            ("spreading", pyspec.LabelSpreading, sk.LabelSpreading, {"alpha": 0.2,
                                                                     "max_iter": 30}),
            ("propagation", pyspec.LabelPropagation, sk.LabelPropagation, {"max_iter": 1000})):
        out: dict[str, object] = {}

        def peer(out=out, theirs=theirs, kw=kw):
            out["peer"] = _fit(theirs(kernel="knn", n_neighbors=k, **kw), x, y)

        t_peer = best_time(peer, args.semi_repeat) if not args.semi_iterations_only else 0.0
        configs = (("scikit-learn's directed", None, False), ("exact", None, True),
                   ("exact, 32 PCs", 32, True))
        for label, comps, sym in () if args.semi_iterations_only else configs:
            def ours_fit(out=out, ours=ours, kw=kw, comps=comps, sym=sym):
                # scikit-learn's graph: k - 1 neighbours plus the sample itself, directed
                g = pyspec.knn_graph(x, k=k if sym else k - 1, method="exact",
                                     n_components=comps, symmetric=sym, include_self=not sym)
                graphs[comps, sym] = g
                out["ours"] = _fit(ours(k, num_threads=args.semi_threads, **kw), g, y)

            t_ours = best_time(ours_fit, args.semi_repeat)
            a, b = out["ours"].transduction_, out["peer"].transduction_
            rows.append({"case": f"{variant}, n={n}: fit from spectra ({label} graph)",
                         "pyspec": t_ours, "peer": t_peer, "ratio": t_peer / t_ours,
                         "agree": float(np.mean(a == b)),
                         "pyspec_prec": _precision(a[free], truth[free]),
                         "peer_prec": _precision(b[free], truth[free])})
        if (None, True) not in graphs:
            graphs[None, True] = pyspec.knn_graph(x, k=k, method="exact")
        g = graphs[None, True]

        def ours_iter(out=out, ours=ours, kw=kw, g=g):
            out["ours"] = _fit(ours(k, num_threads=args.semi_threads, **kw), g, y)

        def peer_iter(out=out, theirs=theirs, kw=kw, g=g):
            out["peer"] = _fit(theirs(kernel=lambda a, b: g, **kw), np.zeros((n, 1)), y)

        t_ours = best_time(ours_iter, args.semi_repeat)
        t_peer = best_time(peer_iter, args.semi_repeat)
        a, b = out["ours"].transduction_, out["peer"].transduction_
        rows.append({"case": f"{variant}, n={n}: iterations on one graph "
                             f"({out['ours'].n_iter_} steps)", "pyspec": t_ours,
                     "peer": t_peer, "ratio": t_peer / t_ours, "agree": float(np.mean(a == b))})
        if variant == "propagation":  # the same fixed point by conjugate gradients
            def ours_cg(out=out, g=g):
                out["ours"] = _fit(pyspec.LabelPropagation(k, solver="cg"), g, y)

            t_ours = best_time(ours_cg, args.semi_repeat)
            a = out["ours"].transduction_
            rows.append({"case": f"propagation, n={n}: solver='cg' on one graph "
                                 f"({out['ours'].n_iter_} CG steps)", "pyspec": t_ours,
                         "peer": t_peer, "ratio": t_peer / t_ours,
                         "agree": float(np.mean(a == b))})
    return rows


def _precision(pred: np.ndarray, truth: np.ndarray) -> float:
    sel = pred == 1
    return float(np.mean(truth[sel] == "emission")) if sel.any() else float("nan")
