"""The demo's label-spreading and active-learning steps (``pyspec demo``, last two lines).

Both run on the demo store (real LAMOST spectra plus simulated ones) with
the store's own ``class`` column as the truth, so they need no extra data.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.commands._workflow import say


def _classes(store: Any) -> np.ndarray:
    """STAR / GALAXY / QSO per row (simulated rows are 'SIM-<class>')."""
    c = np.asarray(store.meta["class"]).astype(str)
    return np.char.replace(c, "SIM-", "")


def demo_label_spreading(args: argparse.Namespace, store: Any, out: Path) -> None:
    """Spread 10 % of the class labels over the store's kNN graph; write candidates."""
    from pyspec.catalogue import write_catalogue
    from pyspec.knn_graph import knn_graph
    from pyspec.semi_supervised import GraphConvergenceWarning, LabelSpreading, candidate_table

    truth = _classes(store)
    rng = np.random.default_rng(args.seed)
    y = np.full(len(store), "-1", dtype=object)
    known = rng.random(len(store)) < 0.1
    y[known] = truth[known]
    graph = knn_graph(store, k=7, num_threads=args.num_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphConvergenceWarning)
        model = LabelSpreading(7, num_threads=args.num_threads).fit(graph, y)
    acc = float(np.mean(model.transduction_[~known] == truth[~known]))
    target = "GALAXY" if "GALAXY" in set(model.classes_) else str(model.classes_[0])
    table = candidate_table(model, store.meta["id"], target=target, threshold=0.5,
                            meta=store.meta)
    path = write_catalogue(table, out / "spread_candidates.ecsv")
    say(args, f"[spread] label spreading from {int(known.sum())} labels over a "
              f"{graph.nnz // 2}-edge kNN graph: {100 * acc:.0f}% of the other "
              f"{int((~known).sum())} spectra get their true class; {len(table)} {target} "
              f"candidates -> {path}")


def demo_active_learning(args: argparse.Namespace, store: Any, out: Path) -> None:
    """Three active-learning iterations for galaxies, the store's classes as oracle."""
    from pyspec.active import ActiveLearner

    truth = np.where(_classes(store) == "GALAXY", "galaxy", "other")
    ids = [str(i) for i in store.meta["id"]]
    rng = np.random.default_rng(args.seed)
    start = np.concatenate([rng.choice(np.flatnonzero(truth == v), 3, replace=False)
                            for v in ("galaxy", "other")])
    oracle_map = dict(zip(ids, truth, strict=True))
    al = ActiveLearner(batch_size=20, target="galaxy", precision_sample=10,
                       random_state=args.seed)
    al.fit(np.asarray(store.flux), {ids[i]: truth[i] for i in start}, ids=ids)
    for _ in range(3):
        al.step(lambda q: [oracle_map[i] for i in q])
    al.save(out / "active")
    prec = ", ".join(f"{h['precision']:.2f}" for h in al.history_)
    say(args, f"[active] 3 iterations (entropy, batches of 20, 10 checks): precision of "
              f"the galaxy candidates {prec}; state -> {out / 'active'}")
