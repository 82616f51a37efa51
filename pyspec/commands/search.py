"""``pyspec search``: catalogue search (many queries -> merged candidates) or template matching."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from astropy.table import Table

    from pyspec.distributed.store import ShardedStore
    from pyspec.engine import Engine
    from pyspec.store import SpectrumStore

from pyspec.commands import add_format, add_num_threads, add_out, add_overwrite, add_quiet
from pyspec.commands._workflow import (
    check_out,
    open_engine,
    open_store,
    say,
    select_rows,
    show_progress,
    write_table,
)
from pyspec.distributed.tasks import add_cluster_arguments

HELP = "catalogue search: run many queries and merge the hits into a candidate catalogue"

_TABLE_SUFFIXES = (".ecsv", ".fits", ".fit", ".vot", ".votable", ".xml", ".csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", "-e", required=True,
                        help="engine directory over the archive (or the templates, with --targets)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--queries", nargs="+", metavar="SOURCE",
                     help="query table from `pyspec queries`, a spectrum store, or FITS files")
    src.add_argument("--targets", metavar="STORE",
                     help="template matching: give every spectrum of STORE its nearest template's "
                          "class and redshift (the engine holds the templates)")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--fraction", type=float, default=None,
                      help="keep each query's nearest fraction of the archive (default 0.1, "
                           "as in the M-star study)")
    keep.add_argument("--radius", type=int, default=None,
                      help="keep everything within this Hamming distance (binary engines)")
    keep.add_argument("-k", type=int, default=None, help="keep each query's k nearest")
    parser.add_argument("--class", dest="classes", action="append", metavar="CLASS",
                        help="with a store as --queries: use only this class (repeatable)")
    parser.add_argument("--subclass", dest="subclasses", action="append", metavar="GLOB",
                        help="with a store as --queries: use only matching subclasses")
    add_out(parser, "catalogue to write (default candidates.ecsv)", default="candidates.ecsv",
            metavar="TABLE")
    add_format(parser)
    add_overwrite(parser, "catalogue")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="queries (or targets) per chunk (default: automatic)")
    parser.add_argument("--measure", action="store_true",
                        help="add line/index measurements to each candidate (pyspec.measure)")
    add_num_threads(parser)
    add_quiet(parser)
    add_cluster_arguments(parser)


def _open_store(path: str) -> SpectrumStore | ShardedStore:
    from pyspec.distributed.store import is_sharded_store, open_any_store

    return open_any_store(path) if is_sharded_store(path) else open_store(path)


def _store_rows(store: Any, rows: np.ndarray) -> np.ndarray:
    order = np.argsort(rows, kind="stable")
    flux = np.empty((rows.size, store.flux.shape[1]), np.float32)
    flux[order] = store.flux[rows[order]]
    return flux


def load_queries(engine: Engine, sources: list[str], classes: list[str] | None = None,
                 subclasses: list[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, Table, list[str]]:
    """Prepared query flux, query labels, query metadata and the inputs used.

    A single table (suffix .ecsv/.fits/.vot/.csv) written by `pyspec queries`
    names its store (meta "store") and rows; a single directory is a store
    (optionally filtered by class/subclass); anything else is FITS files.
    """
    from astropy.table import Table

    first = Path(sources[0])
    if len(sources) == 1 and first.is_dir():
        store = _open_store(sources[0])
        engine.check_store(store, f"query store {first}")
        rows = select_rows(store.meta, classes, subclasses)
        meta = store.meta[rows]
        return _store_rows(store, rows), _labels(meta, rows), meta, [str(first)]
    if len(sources) == 1 and first.name.lower().endswith(_TABLE_SUFFIXES):
        from pyspec.catalogue import read_catalogue

        table = read_catalogue(first)
        if "row" not in table.colnames or "store" not in table.meta:
            raise ValueError(f"{first} is not a query table from `pyspec queries` "
                             "(needs a 'row' column and the store in its metadata)")
        store_path = Path(str(table.meta["store"]))
        store = _open_store(str(store_path))
        engine.check_store(store, f"query store {store_path}")
        rows = np.asarray(table["row"], np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(store)):
            raise ValueError(f"{first}: rows outside the store {store_path} ({len(store)} spectra)")
        return _store_rows(store, rows), _labels(table, rows), table, [str(first), str(store_path)]
    files: list[str] = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(f"query source not found: {p}")
        files.extend(sorted(str(f) for f in p.glob("*.fits*")) if p.is_dir() else [str(p)])
    flux, metas, rejects = engine.prepare(files)
    for name, reason in rejects:
        print(f"skipped query {name}: {reason}")
    if flux.shape[0] == 0:
        raise ValueError("none of the query spectra could be read and prepared")
    meta = Table({"id": [str(m.get("id", "")) for m in metas],
                  "class": [str(m.get("class") or "") for m in metas],
                  "subclass": [str(m.get("subclass") or "") for m in metas]})
    return flux, np.asarray(meta["id"]), meta, files


def _labels(meta: Table, rows: np.ndarray) -> np.ndarray:
    if "id" in meta.colnames:
        return np.asarray(meta["id"]).astype(str)
    return rows.astype(str)


def _measure(table: Table, store: Any, rows: np.ndarray, **kwargs: Any) -> Table:
    """Measure the (prepared, stored) spectra of ``rows`` and append the columns."""
    from pyspec.measure import add_measurements

    rows = np.asarray(rows, np.int64)
    flux = _store_rows(store, rows)
    ivar = np.empty_like(flux)
    order = np.argsort(rows, kind="stable")
    ivar[order] = store.ivar[rows[order]]
    return add_measurements(table, (np.asarray(store.grid.wavelength), flux, ivar), **kwargs)


def run(args: argparse.Namespace) -> int:
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    check_out(args)
    from pyspec.distributed.tasks import cluster_client, uses_cluster

    engine = open_engine(args.engine)
    if uses_cluster(args) and not hasattr(engine, "use_client"):
        raise ValueError(f"--scheduler/--dask search the shards of a sharded engine; {args.engine} "
                         "is a single engine (build one with `pyspec build --shards N`)")
    with cluster_client(args) as client:
        if client is not None:
            engine.use_client(client)
        return _run(args, engine)


def _run(args: argparse.Namespace, engine: Engine) -> int:
    from pyspec.catalogue import provenance
    from pyspec.workflows import catalogue_search, match_templates

    engine_info = {"path": str(engine.path.resolve()), "kind": engine.kind,
                   "n_spectra": len(engine), "model": engine.info["model_class"],
                   "model_params": engine.info.get("model_params", {})}
    if args.targets:
        store = open_store(args.targets)
        engine.check_store(store, f"target store {args.targets}")
        table = match_templates(engine, store.flux, store.meta, chunk_size=args.chunk_size or 4096,
                                num_threads=args.num_threads, progress=show_progress(args))
        table.meta.update(provenance(command="pyspec search --targets", engine=engine_info,
                                     inputs=[args.targets],
                                     recipe=engine.info.get("preprocessing")))
        if args.measure:
            table = _measure(table, store, np.arange(len(store)),
                             template_z=np.asarray(table["template_z"], np.float64))
        out = write_table(table, args.out, args.format)
        say(args, f"{len(table)} targets matched to {len(engine)} templates: {out}")
        return 0

    flux, labels, qmeta, inputs = load_queries(engine, args.queries, args.classes, args.subclasses)
    fraction = args.fraction
    if fraction is None and args.radius is None and args.k is None:
        fraction = 0.1
    table = catalogue_search(engine, flux, labels, fraction=fraction, k=args.k,
                             radius=args.radius, chunk_size=args.chunk_size,
                             num_threads=args.num_threads, progress=show_progress(args),
                             query_meta=qmeta)
    table.meta.update(provenance(command="pyspec search", engine=engine_info, inputs=inputs,
                                 recipe=engine.info.get("preprocessing")))
    if args.measure:
        table = _measure(table, engine.store, table["row"])
    out = write_table(table, args.out, args.format)
    say(args, f"{flux.shape[0]} queries -> {len(table)} candidates "
              f"(of {len(engine):,d} spectra): {out}")
    return 0
