"""``pyspec active init|next|teach|status``: active learning with a person (or a file) as oracle.

``init`` starts a state directory from a store and seed labels; ``next``
writes the next batch (the uncertain spectra to label, plus a random
sample of candidates that measures precision) as ``batch-NNN.csv`` and a
PNG sheet; the expert fills the ``label`` column and ``teach`` reads it
back (or ``next --oracle LABELS.csv`` answers at once, a simulated expert);
``status`` prints the precision history and whether the stopping rule fired.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pyspec.commands import add_num_threads, add_quiet, add_seed, add_verbose
from pyspec.commands._workflow import fit_progress, math_threads, open_store, say

HELP = "active learning: init a state, write the next batch, teach labels, show status"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("init", help="start a state from a store and seed labels")
    p.add_argument("--store", required=True, help="spectrum store (the pool)")
    p.add_argument("--labels", required=True, metavar="LABELS.csv", help="seed labels table")
    p.add_argument("--target", required=True, help="class whose candidates are wanted")
    p.add_argument("--strategy", default="entropy",
                   choices=("entropy", "margin", "least-confident", "random"))
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--balance", default="smote", choices=("smote", "none"))
    p.add_argument("--check", type=int, default=30, metavar="N",
                   help="candidates checked per iteration to estimate precision (default 30)")
    add_seed(p)
    for name, helptext in (("next", "write the next batch to label"),
                           ("teach", "read a labelled batch back"),
                           ("status", "print the history")):
        q = sub.add_parser(name, help=helptext)
        if name == "teach":
            q.add_argument("--labels", default=None, metavar="BATCH.csv",
                           help="the filled-in batch table (default: the last one written)")
        if name == "next":
            q.add_argument("--oracle", default=None, metavar="LABELS.csv",
                           help="answer from this labels table and teach at once")
    for q in sub.choices.values():
        q.add_argument("--state", required=True, metavar="DIR", help="state directory")
        add_quiet(q)
        add_num_threads(q, help="threads of the BLAS and numba math (default: all cores)")
        add_verbose(q)  # `pyspec active next -v` as well as `pyspec -v active next`


def _status_line(al) -> str:
    h = al.history_
    last = f"precision {h[-1]['precision']:.2f} on {h[-1]['n_checked']}" if h else "no batch yet"
    stop = (f"; STOP: precision > {al.precision_goal} in {al.patience} iterations in a row"
            if al.stopped else "")
    return (f"iteration {len(h)}: {int(al.labelled.sum())} labelled of {len(al.ids_)}, "
            f"{al.candidates().size} {al.target} candidates, {last}{stop}")


def run(args: argparse.Namespace) -> int:
    with math_threads(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from pyspec.active import ActiveLearner, LabelsFileOracle
    from pyspec.labels import labels_for_rows, read_labels

    state = Path(args.state)
    if args.action == "init":
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if (state / "state.json").exists():
            raise FileExistsError(f"--state {state} already holds a state; use 'next'")
        store = open_store(args.store)
        meta = store.meta
        y = labels_for_rows(read_labels(args.labels), meta["id"],
                            meta["file"] if "file" in meta.colnames else None)
        al = ActiveLearner(strategy=args.strategy, batch_size=args.batch_size,
                           balance=args.balance, target=args.target,
                           precision_sample=args.check, random_state=args.seed)
        with fit_progress(args, f"active: fit on {len(store)} spectra"):
            al.fit(store, list(y))
        al.save(state)
        say(args, _status_line(al))
        return 0
    al = ActiveLearner.load(state)
    if args.action == "status":
        for h in al.history_:
            say(args, f"  {h['iteration']:3d}  labelled {h['n_labelled']:6d}  candidates "
                      f"{h['n_candidates']:6d}  precision {h['precision']:.2f} "
                      f"({h['n_checked']} checked)")
        say(args, _status_line(al))
        return 0
    if args.action == "next":
        if al.pending_:
            raise ValueError(f"batch {al.pending_['file']} is waiting for labels: run "
                             f"'pyspec active teach --state {state}' first")
        check, batch = al.next_batch()
        ids = np.concatenate([check, batch])
        if ids.size == 0:
            say(args, "the whole pool is labelled")
            return 0
        if args.oracle:
            answers = LabelsFileOracle(args.oracle)(ids.tolist())
            al.record_precision(check.tolist(), answers[:len(check)])
            al.teach(ids.tolist(), answers)
            al.save(state)
            say(args, _status_line(al))
            return 0
        rows = al._rows(ids.tolist())
        col = int(np.flatnonzero(al.classes_ == al.target)[0]) if al.target in al.classes_ \
            else None
        p = al.proba_[rows, col] if col is not None else np.zeros(rows.size)
        from pyspec.active.sheet import write_batch
        from pyspec.store import SpectrumStore

        wl = SpectrumStore.open(al._pool_path).grid.wavelength if al._pool_path \
            else np.arange(al.X_.shape[1], dtype=float)
        stem = state / f"batch-{len(al.history_):03d}"
        purpose = ["precision"] * len(check) + ["query"] * len(batch)
        csv_path, png = write_batch(stem, ids.tolist(), purpose, al.predicted_[rows].tolist(),
                                    p, wl, np.asarray(al.X_[rows]))
        al.pending_ = {"file": str(csv_path), "check": check.tolist(), "batch": batch.tolist()}
        al.save(state)
        say(args, f"{len(ids)} spectra to label ({len(check)} precision checks, {len(batch)} "
                  f"queried): fill the 'label' column of {csv_path} (sheet {png}), then run "
                  f"'pyspec active teach --state {state}'")
        return 0
    # teach
    path = args.labels or al.pending_.get("file")
    if not path:
        raise ValueError("no batch is waiting for labels and no --labels was given")
    got = read_labels(path)
    check = al.pending_.get("check", [])
    ids = list(got)
    missing = [i for i in check + al.pending_.get("batch", []) if i not in got]
    if missing:
        raise ValueError(f"--labels {path}: {len(missing)} rows have no label yet "
                         f"(e.g. {missing[:3]}); fill the 'label' column")
    if check:
        al.record_precision(check, [got[i] for i in check])
    al.teach(ids, [got[i] for i in ids])
    al.save(state)
    say(args, _status_line(al))
    return 0
