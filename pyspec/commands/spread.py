"""``pyspec spread``: label propagation / spreading over a store's kNN graph -> candidates."""

from __future__ import annotations

import argparse

import numpy as np

from pyspec.commands import add_format, add_num_threads, add_out, add_overwrite, add_quiet
from pyspec.commands._workflow import check_out, fit_progress, open_store, say, write_table

HELP = "spread known labels over a store's kNN graph and write a candidate catalogue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, help="spectrum store directory")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv",
                        help="labels table: an id (or file) column and a label column")
    add_out(parser, "candidate catalogue to write (.ecsv, .fits, .vot, .csv)", required=True,
            metavar="TABLE")
    add_format(parser)
    add_overwrite(parser, "catalogue")
    parser.add_argument("--model", choices=("spreading", "propagation"), default="spreading",
                        help="label spreading (Zhou et al. 2004, default) or propagation "
                             "(Zhu & Ghahramani 2002)")
    parser.add_argument("-k", type=int, default=7, help="neighbours per spectrum (default 7)")
    parser.add_argument("--graph", choices=("auto", "exact", "ivf", "hamming", "pq"),
                        default="auto", help="how neighbours are found (default: exact up to "
                                             "20k spectra, the inverted file 'ivf' above)")
    parser.add_argument("--alpha", type=float, default=0.2,
                        help="spreading weight of the neighbours, in (0, 1) (default 0.2)")
    parser.add_argument("--solver", choices=("iterate", "cg"), default="iterate",
                        help="propagation: scikit-learn's iteration (default) or conjugate "
                             "gradients to the same fixed point (faster on large graphs)")
    parser.add_argument("--components", type=int, default=None, metavar="N",
                        help="find neighbours among N principal components (denoises)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="iteration limit (default 30 spreading, 1000 propagation)")
    parser.add_argument("--target", default=None,
                        help="class to list candidates of (default: the rarest labelled class)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="least probability of the target class for a candidate "
                             "(default 0.5)")
    parser.add_argument("--all", action="store_true",
                        help="write every spectrum with its label and confidence, not only "
                             "the candidates")
    add_num_threads(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    import warnings

    from pyspec.catalogue import provenance
    from pyspec.labels import labels_for_rows, read_labels
    from pyspec.semi_supervised import (
        GraphConvergenceWarning,
        LabelPropagation,
        LabelSpreading,
        candidate_table,
    )

    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    check_out(args)
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.model == "spreading" and not 0.0 < args.alpha < 1.0:
        raise ValueError(f"--alpha must be in (0, 1), got {args.alpha}")
    store = open_store(args.store)
    meta = store.meta
    files = meta["file"] if "file" in meta.colnames else None
    y = labels_for_rows(read_labels(args.labels), meta["id"], files)
    labelled = y != ""
    if labelled.sum() == 0:
        raise ValueError(f"--labels {args.labels}: no id matches a spectrum of --store "
                         f"{args.store} (ids are matched to the store's id and file columns)")
    classes, counts = np.unique(y[labelled].astype(str), return_counts=True)
    target = args.target if args.target is not None else str(classes[np.argmin(counts)])
    if target not in classes:
        raise ValueError(f"--target {target!r} is not among the labels {classes.tolist()}")
    k = min(args.k, len(store) - 1)
    kw = {"num_threads": args.num_threads}
    if args.max_iter is not None:
        kw["max_iter"] = args.max_iter
    model = LabelSpreading(k, alpha=args.alpha, **kw) if args.model == "spreading" \
        else LabelPropagation(k, solver=args.solver, **kw)
    from pyspec.knn_graph import knn_graph

    with fit_progress(args, f"spread: {k}-NN graph of {len(store)} spectra, {args.model}"):
        graph = knn_graph(store, k=k, method=args.graph, n_components=args.components,
                          num_threads=args.num_threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GraphConvergenceWarning)
            model.fit(graph, np.where(labelled, y, "-1"))
    for w in caught:
        say(args, f"warning: {w.message}")
    table = candidate_table(model, meta["id"], target=target, threshold=args.threshold,
                            meta=meta, only_candidates=not args.all)
    table.meta.update(provenance(command="pyspec spread", inputs=[str(args.store),
                                                                  str(args.labels)],
                                 recipe=store.preprocessing))
    path = write_table(table, args.out, args.format)
    say(args, f"{args.model}: {len(store)} spectra, {int(labelled.sum())} labelled "
              f"({', '.join(f'{c} {n}' for c, n in zip(classes, counts, strict=True))}), "
              f"{model.graph_.nnz // 2} edges, {model.n_iter_} iterations")
    n_cand = int(np.sum(table["candidate"]))
    say(args, f"{n_cand} {target} candidates (p >= {args.threshold}) -> {path}")
    return 0
