"""``pyspec evaluate``: precision/recall of Hamming ranking for PIL, LSH and ITQ.

Inputs (one of):

* ``--flux X.npy --labels labels.{npy,csv,txt}``: preprocessed float32 flux
  (n_spectra, n_pixels) and one label per spectrum (for a CSV, the column
  named by ``--label-column``);
* ``--fits-index spectra_index.csv``: FITS files listed in the CSV (column
  ``--path-column``, relative to ``--data-dir``, default the CSV's folder),
  read with :func:`pyspec.read_spectrum`, put on a common grid with
  :class:`pyspec.preprocess.Preprocessor` and labelled from
  ``--label-column`` (``--label-mode first-letter`` keeps the spectral type
  letter, e.g. G2V -> G); unreadable files are reported and skipped;
* ``--store DIR``: a SpectrumStore written by ``pyspec ingest`` (or a sharded
  one), labelled from its metadata column ``--label-column``; streamed
  (:func:`pyspec.evaluate.evaluate_store`): memory does not grow with the store;
* ``--simulate N``: N structured synthetic spectra with class labels.

Writes the table (``-o/--out``: .ecsv, .fits, .vot or .csv) and, with
``--plot``, a precision-recall PNG.

The labels CSV of ``--fits-index`` has a header row; one column holds each
file's path (``--path-column``, default ``relative_path``) and one its label
(``--label-column``, default ``subclass``); other columns are ignored.  The
shipped sample's ``pyspec/data/sample/sample_index.csv`` is such a file
(``--path-column file``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

from pyspec.commands import (
    add_format,
    add_hidden,
    add_n_bits,
    add_num_threads,
    add_out,
    add_overwrite,
    add_quiet,
    add_seed,
)
from pyspec.commands._workflow import check_new_file, check_out, open_store, write_table

HELP = "precision/recall of binary hashes (PIL, LSH, ITQ) on labelled spectra"

log = logging.getLogger("pyspec.evaluate")


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--flux", metavar="NPY", help="preprocessed flux array (.npy)")
    src.add_argument("--fits-index", metavar="CSV", help="CSV listing FITS files and labels")
    src.add_argument("--store", metavar="DIR", help="SpectrumStore (labels from its metadata)")
    src.add_argument("--simulate", type=int, metavar="N", help="N simulated labelled spectra")
    parser.add_argument("--sim-pixels", type=int, default=1000, help="pixels of --simulate spectra")
    parser.add_argument("--sim-classes", type=int, default=5, help="classes of --simulate spectra")
    parser.add_argument("--sim-noise", type=float, default=0.02,
                        help="noise of --simulate spectra (per pixel, before L2 normalisation)")
    parser.add_argument("--labels", metavar="FILE", help="labels for --flux (.npy, .csv or .txt)")
    parser.add_argument("--data-dir", help="folder the --fits-index paths are relative to")
    parser.add_argument("--path-column", default="relative_path", help="CSV column with file paths")
    parser.add_argument("--label-column", default="subclass", help="CSV column with labels")
    parser.add_argument("--label-mode", choices=["full", "first-letter"], default="full",
                        help="use the label as is, or only its first letter (spectral type)")
    parser.add_argument("--min-class-size", type=int, default=2,
                        help="drop spectra whose label has fewer members (default 2)")
    parser.add_argument("--grid", default=None,
                        help="wavelength-grid preset for FITS input (default: the recipe's)")
    parser.add_argument("--preprocessing", default="similarity", metavar="NAME",
                        help="preprocessing recipe for FITS input (default similarity, as "
                             "`pyspec ingest`)")
    parser.add_argument("--holdout", type=float, default=0.2, metavar="F",
                        help="fraction of spectra held out as queries (at most --n-queries); "
                             "the models are fitted on the rest (default 0.2)")
    parser.add_argument("--hashers", default="pil,lsh,itq", help="comma-separated: pil,lsh,itq")
    add_n_bits(parser, default=[32, 64, 128, 256], type=_int_list,
               help="code lengths, comma separated (default 32,64,128,256)")
    parser.add_argument("--n-queries", type=int, default=1000, help="queries drawn at random")
    parser.add_argument("--fit-sample", type=int, default=None, metavar="N",
                        help="fit each model on N random database spectra (default: on all of "
                             "them; with --store they are streamed from the store)")
    add_seed(parser)
    parser.add_argument("--pil-encoder", choices=["beta", "random"], default=None)
    parser.add_argument("--pil-init", choices=["orthogonal", "pinv"], default=None)
    add_hidden(parser)
    add_out(parser, "output table (.ecsv, .fits, .vot, .csv)", required=True, metavar="TABLE")
    add_format(parser)
    parser.add_argument("--plot", help="precision-recall figure (.png)")
    add_overwrite(parser, "table or plot")
    add_quiet(parser)
    add_num_threads(parser)


def read_labels(path: str, column: str, n: int) -> np.ndarray:
    """One label per spectrum from .npy, .txt (one per line) or .csv (``column``)."""
    p = Path(path)
    if p.suffix == ".npy":
        labels = np.load(p, allow_pickle=False)
    elif p.suffix == ".csv":
        with open(p, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise ValueError(f"{p}: no column {column!r} (columns: {reader.fieldnames}); "
                                 "use --label-column")
            labels = np.array([row[column] for row in reader])
    else:
        labels = np.array(p.read_text().split("\n")[:-1] if p.read_text().endswith("\n")
                          else p.read_text().split("\n"))
    if labels.shape != (n,):
        raise ValueError(f"{p}: expected {n} labels (one per spectrum), got shape {labels.shape}")
    return labels


def load_fits_index(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read, preprocess and label the FITS files of a spectra index CSV.

    Returns the prepared flux, the labels and the preprocessing recipe.
    """
    from pyspec.io import read_spectrum
    from pyspec.preprocess import Preprocessor, WavelengthGrid

    index = Path(args.fits_index)
    base = Path(args.data_dir) if args.data_dir else index.parent
    with open(index, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{index}: no rows")
    for col in (args.path_column, args.label_column):
        if col not in rows[0]:
            raise ValueError(f"{index}: no column {col!r} (columns: {list(rows[0])})")
    prep = Preprocessor.preset(args.preprocessing)
    if args.grid is not None:
        prep = Preprocessor.from_dict({**prep.to_dict(),
                                       "grid": WavelengthGrid.preset(args.grid).to_dict()})
    spectra, labels, rejects = [], [], []
    for row in rows:
        label = (row[args.label_column] or "").strip()
        if args.label_mode == "first-letter":
            label = label[:1].upper()
        if not label:
            rejects.append((row[args.path_column], "no label"))
            continue
        try:
            spectra.append(read_spectrum(base / row[args.path_column]))
            labels.append(label)
        except (OSError, ValueError) as exc:
            rejects.append((row[args.path_column], str(exc)))
    batch = prep.apply(spectra)
    ok = np.asarray(batch.ok, dtype=bool)
    for sp, reason, good in zip(spectra, batch.reasons, ok, strict=True):
        if not good:
            rejects.append((str(sp.meta.get("file")), reason or "preprocessing failed"))
    for name, reason in rejects:
        log.warning("skipped %s: %s", name, reason)
    return np.asarray(batch.flux)[ok], np.asarray(labels)[ok], prep.to_dict()


def print_summary(table: object, at: int = 10) -> None:
    """Precision and recall at ``at`` retrieved, one line per model and code length."""
    import numpy as np

    print(f"held-out queries: {table.meta['n_queries']}, database: {table.meta['n_database']}")
    print(f"{'model':10s} {'bits':>5s} {'P@' + str(at):>7s} {'R@' + str(at):>7s}")
    for name in dict.fromkeys(str(h) for h in table["hasher"]):
        for nb in sorted(set(int(b) for b in table["n_bits"][table["hasher"] == name])):
            sel = np.flatnonzero((table["hasher"] == name) & (table["n_bits"] == nb))
            i = sel[min(int(np.searchsorted(table["cutoff"][sel], at)), sel.size - 1)]
            bits = "-" if nb == 0 else str(nb)
            print(f"{name:10s} {bits:>5s} {table['precision'][i]:7.3f} {table['recall'][i]:7.3f}")


def _load_in_memory(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str, dict | None]:
    """(flux, labels, source description, preprocessing recipe) of --flux, --fits-index or
    --simulate."""
    from pyspec.evaluate import synthetic_labelled_spectra

    if args.flux:
        if not args.labels:
            raise ValueError("--flux needs --labels")
        X = np.load(args.flux, allow_pickle=False)
        return X, read_labels(args.labels, args.label_column, len(X)), str(args.flux), None
    if args.fits_index:
        X, labels, recipe = load_fits_index(args)
        return X, labels, str(args.fits_index), recipe
    if args.simulate < 10:
        raise ValueError("--simulate needs at least 10 spectra")
    X, labels = synthetic_labelled_spectra(args.simulate, args.sim_pixels, args.sim_classes,
                                           args.sim_noise, random_state=args.seed)
    return X, labels, (f"simulated ({args.simulate} x {args.sim_pixels}, {args.sim_classes} "
                       f"classes, noise {args.sim_noise})"), None


def run(args: argparse.Namespace) -> int:
    from pyspec.catalogue import provenance
    from pyspec.evaluate import HASHERS, evaluate_hashers, evaluate_store, plot_precision_recall

    hashers = [h.strip() for h in args.hashers.split(",") if h.strip()]
    unknown = set(hashers) - set(HASHERS)
    if unknown or not hashers:
        raise ValueError(f"--hashers: unknown {sorted(unknown)}; choose from {list(HASHERS)}")
    if args.n_queries < 1:
        raise ValueError("--n-queries must be >= 1")
    if args.fit_sample is not None and args.fit_sample < 2:
        raise ValueError(f"--fit-sample must be >= 2, got {args.fit_sample}")
    check_out(args)
    check_new_file(args.plot, "--plot", args.overwrite)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    recipe = None  # the preprocessing of the spectra, where pyspec made it
    params = {}
    pil = {k: v for k, v in (("encoder", args.pil_encoder), ("init", args.pil_init),
                             ("hidden", args.hidden))
           if v is not None}
    if pil:
        params["pil"] = pil
    common = dict(n_queries=args.n_queries, random_state=args.seed, hasher_params=params,
                  num_threads=args.num_threads, progress=say, holdout=args.holdout,
                  fit_sample=args.fit_sample)
    if args.store:
        # streamed: the store's spectra are read block by block, its metadata one column
        from pyspec.distributed.store import is_sharded_store, open_any_store
        from pyspec.store_rows import store_meta_names

        store = (open_any_store(args.store) if is_sharded_store(args.store)
                 else open_store(args.store))
        recipe = store.preprocessing
        if args.label_column not in (names := store_meta_names(store)):
            raise ValueError(f"{args.store}: no metadata column {args.label_column!r} "
                             f"(columns: {names}); use --label-column")
        table = evaluate_store(store, args.label_column, hashers, args.n_bits,
                               label_mode=args.label_mode, min_class_size=args.min_class_size,
                               **common)
        source = str(args.store)
        n_spectra = table.meta["n_spectra"]
    else:
        X, labels, source, recipe = _load_in_memory(args)
        labels = np.asarray(labels).astype(str)
        values, counts = np.unique(labels, return_counts=True)
        keep = np.isin(labels, values[counts >= args.min_class_size])
        if not keep.all():
            say(f"dropping {int((~keep).sum())} spectra of labels with < "
                f"{args.min_class_size} members")
        X, labels = X[keep], labels[keep]
        say(f"{len(X)} spectra x {X.shape[1]} pixels, {len(np.unique(labels))} labels")
        table = evaluate_hashers(X, labels, hashers, args.n_bits, **common)
        n_spectra = len(X)
    table.meta["source"] = source
    table.meta.update(provenance(command="pyspec evaluate", inputs=[source], recipe=recipe))
    if not args.quiet:
        print_summary(table)
    write_table(table, args.out, args.format)
    say(f"wrote {args.out}")
    if args.plot:
        plot_precision_recall(table, args.plot, title=f"{source}: {n_spectra} spectra")
        say(f"wrote {args.plot}")
    return 0
