"""``pyspec demo``: the whole pipeline on the real LAMOST sample shipped with pyspec.

Steps (each prints one line; outputs land in ``--out``, default ./pyspec-demo):

1. ingest the 59 shipped spectra (pyspec/data/sample) into a spectrum store
   on the LAMOST grid (3690-9100 A, log-linear), L2-normalised;
2. augment the store with simulated spectra drawn from those same spectra as
   templates (pyspec.simulate: shifts, continuum tilts, emission lines, survey
   noise). The demo's 256-bit PIL hasher has hidden layers of 512, 384 and
   256 units, and its pseudo-inverse solves need more spectra than hidden
   units (59 are far too few); the simulated
   spectra are labelled ``class = SIM-<template class>`` and ids ``sim-N``
   (:func:`pyspec.data.sample_store.build_sample_store`);
3. train a 256-bit PIL hasher and build a search engine over the store;
4. query-by-example with one real spectrum: neighbour table (ECSV) and the
   top-10 figure (PNG);
5. a small catalogue search: representative queries among the real stars
   (PCA + BIRCH + KMeans), each keeping its nearest 10% of the archive,
   merged into a candidate catalogue (ECSV).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from pyspec.commands import add_n_bits, add_num_threads, add_out, add_overwrite, add_quiet, add_seed
from pyspec.commands._workflow import fit_progress, say, show_progress
from pyspec.data.sample_store import SAMPLE_GRID, build_sample_store

HELP = "run the whole pipeline on the shipped LAMOST sample (ingest, train, build, query, search)"

# Hidden layers of the demo's PIL hasher (then the 256-bit code layer): narrower than the
# library default (1024, 512) so that a few hundred spectra suffice and training stays quick.
_HIDDEN = (512, 384)
_QUERY_FILE = "spec-57278-EG224429N215706B01_sp01-001.fits.gz"  # LAMOST DR10 K7 star, S/N 172


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_out(parser, "output directory (default ./pyspec-demo)", default="pyspec-demo",
            metavar="DIR")
    add_overwrite(parser, "demo outputs in --out")
    parser.add_argument("--n-simulated", type=int, default=700,
                        help="simulated spectra added to the 59 real ones (default 700)")
    add_n_bits(parser)
    parser.add_argument("-k", type=int, default=10, help="neighbours in the query (default 10)")
    add_seed(parser)
    add_num_threads(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from pyspec.catalogue import provenance, write_catalogue
    from pyspec.data import sample_files
    from pyspec.engine import Engine
    from pyspec.models.pil import PILHasher
    from pyspec.queries import representative_queries
    from pyspec.workflows import catalogue_search

    if args.n_simulated < 0:
        raise ValueError(f"--n-simulated must be >= 0, got {args.n_simulated}")
    t_start = time.perf_counter()
    out = Path(args.out)
    store_dir, engine_dir = out / "store", out / "engine"
    previous = [p for p in (store_dir, engine_dir) if p.exists()]
    if previous and not args.overwrite:
        raise FileExistsError(f"--out {out} holds an earlier demo ({previous[0].name}/); "
                              "pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    for old in previous:
        shutil.rmtree(old)

    # 1-2. ingest the real sample, add simulated spectra
    files = sample_files()
    store, n_real, n_rejected, how = build_sample_store(store_dir, args.n_simulated, args.seed)
    n_extra = len(store) - n_real
    say(args, f"[1/5] store {store_dir}: {n_real} real LAMOST spectra ({n_rejected} rejected) "
              f"+ {n_extra} simulated on the {SAMPLE_GRID} grid ({len(store.grid)} pixels)")
    if n_extra:
        say(args, f"      simulated with {how}: a 256-bit PIL hasher needs more training "
                  "spectra than hidden units")

    # 3. train and build
    t0 = time.perf_counter()
    hasher = PILHasher(n_bits=args.n_bits, hidden=_HIDDEN, random_state=args.seed)
    with fit_progress(args, "fit PILHasher"):
        hasher.fit(np.asarray(store.flux))
    fit_s = time.perf_counter() - t0
    engine = Engine.build(store, hasher, out=engine_dir, num_threads=args.num_threads,
                          progress=show_progress(args))
    say(args, f"[2/5] trained a {args.n_bits}-bit PIL hasher (hidden layers "
              f"{'-'.join(map(str, _HIDDEN))}-{args.n_bits}) on {len(store)} spectra in "
              f"{fit_s:.2f} s")
    say(args, f"[3/5] engine {engine_dir}: {len(engine)} codes")

    # 4. query-by-example with one real spectrum
    query_path = next((f for f in files if f.name == _QUERY_FILE), files[0])
    table = engine.query(query_path, k=args.k, num_threads=args.num_threads)
    table.meta.update(command="pyspec demo (query)", inputs=[str(query_path)],
                      recipe=store.preprocessing)
    q_table = write_catalogue(table, out / "query.ecsv")
    q_png = engine.plot_query(table, out / "query.png")
    first = table[0]
    say(args, f"[4/5] query {query_path.name}: nearest {first['id']} ({first['class']} "
              f"{first['subclass']}) at distance {first['distance']}; "
              f"{len(table)} neighbours -> {q_table}, figure -> {q_png}")

    # 5. representative queries among the real stars -> catalogue search
    meta = store.meta
    is_real_star = np.flatnonzero((np.asarray(meta["class"], str) == "STAR")
                                  & (np.arange(len(store)) < n_real))
    sel = representative_queries(np.asarray(store.flux[is_real_star]), n_groups=4,
                                 n_subclusters=2, n_components=10, random_state=args.seed)
    queries = sel.to_table(meta[is_real_star])
    queries["row"] = is_real_star[sel.rows]
    queries.meta["store"] = str(store_dir.resolve())
    queries.meta.update(provenance(command="pyspec demo (queries)", inputs=[str(store_dir)],
                                   recipe=store.preprocessing))
    qs_path = write_catalogue(queries, out / "queries.ecsv")
    qflux = np.asarray(store.flux[np.asarray(queries["row"])])
    cands = catalogue_search(engine, qflux, np.asarray(queries["id"], str), fraction=0.1,
                             num_threads=args.num_threads, progress=show_progress(args),
                             query_meta=queries)
    cands.meta.update(provenance(command="pyspec demo (search)", inputs=[str(qs_path)],
                                 recipe=store.preprocessing,
                                 engine={"path": str(engine_dir.resolve())}))
    c_path = write_catalogue(cands, out / "candidates.ecsv")
    say(args, f"[5/5] {len(queries)} representative star queries (PCA+BIRCH+KMeans) -> "
              f"{len(cands)} candidates (top 10% each, merged) -> {c_path}")
    # issue 18 steps: label spreading and active learning on the same store
    from pyspec.commands._demo_semi import demo_active_learning, demo_label_spreading

    demo_label_spreading(args, store, out)
    demo_active_learning(args, store, out)
    say(args, f"done in {time.perf_counter() - t_start:.1f} s; outputs in {out.resolve()}")
    return 0
