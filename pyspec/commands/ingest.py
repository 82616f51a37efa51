"""``pyspec ingest``: FITS files/directories -> a preprocessed spectrum store."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyspec.commands import add_alias, add_num_threads, add_out, add_quiet
from pyspec.distributed.tasks import add_cluster_arguments

HELP = "read FITS spectra, preprocess them and write (or resume) a spectrum store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pyspec.preprocess import (
        CONTINUA,
        DEFAULT_PREPROCESSING,
        METHODS,
        NORMALISATIONS,
        PREPROCESSING_PRESETS,
        WavelengthGrid,
    )

    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="FITS files (.fits/.fits.gz), directories (searched recursively) "
                             "or .txt/.lst files listing paths")
    add_out(parser, "store directory (created; an existing one is appended to / resumed, "
                    "skipping inputs already stored or rejected)", required=True,
            metavar="STORE")
    parser.add_argument("--preprocessing", default=DEFAULT_PREPROCESSING,
                        choices=sorted(PREPROCESSING_PRESETS),
                        help="named preprocessing recipe (default: similarity: robust continuum "
                             "division, 4000-8800 A, sky lines masked; minmax = seed 000, "
                             "sumsq = seed 004, halpha = seeds 002/003, l2 = the former "
                             "default); --grid/--normalise/--continuum make a custom one")
    parser.add_argument("--grid", default=None, choices=sorted(WavelengthGrid.PRESETS),
                        help="custom recipe: wavelength grid preset (default: lamost)")
    parser.add_argument("--normalise", default=None, choices=NORMALISATIONS,
                        help="custom recipe: flux normalisation (default: l2)")
    parser.add_argument("--continuum", default=None, choices=[c for c in CONTINUA if c],
                        help="custom recipe: divide by a continuum first (default: none)")
    parser.add_argument("--method", default="rebin", choices=METHODS,
                        help="resampling: flux-conserving rebin or linear interp")
    parser.add_argument("--min-coverage", type=float, default=0.8, metavar="F",
                        help="reject spectra covering less of the grid (default 0.8)")
    add_num_threads(parser, help="worker processes reading and preparing files (default 1)")
    add_alias(parser, "--workers", "--num-threads", "num_threads", type=int)
    parser.add_argument("--chunk-size", type=int, default=16384, metavar="ROWS",
                        help="rows per committed metadata part, i.e. how much an "
                             "interrupted run redoes (default 16384)")
    parser.add_argument("--no-fast", action="store_true",
                        help="read every file through astropy (slower, same result)")
    add_quiet(parser)
    parser.add_argument("--shards", type=int, default=None, metavar="N",
                        help="write a sharded store: N shard stores, each ingested as one task "
                             "(default with --scheduler/--dask: two per worker)")
    add_cluster_arguments(parser)


def check_target(out: str) -> None:
    """Refuse, before any work, to ingest into an engine directory or a plain file."""
    path = Path(out)
    if (path / "engine.json").exists() or (path / "sharded-engine.json").exists():
        raise ValueError(f"--out {path} is an engine directory (`pyspec build`); ingest "
                         "into a store directory")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} exists and is not a store directory")
    if path.is_dir() and any(path.iterdir()) and not _looks_like_store(path):
        raise FileExistsError(f"--out {path} is a folder that holds no spectrum store; "
                              "ingest into a new folder or an existing store")


def _looks_like_store(path: Path) -> bool:
    """A store (or an interrupted one, or a sharded one) that ingest may append to."""
    marks = ("manifest.json", "grid.json", "sharded-store.json")
    return any((path / m).exists() for m in marks) or any(path.glob("shard-*"))


def check_sources(sources: list[str]) -> None:
    """Every SOURCE must exist: a mistyped path is refused before a store is created."""
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"SOURCE not found: {missing[0]}{more}")


def run(args: argparse.Namespace) -> int:
    import sys

    from pyspec.ingest import ingest, make_preprocessor
    from pyspec.preprocess import Preprocessor

    workers = 1 if args.num_threads is None else args.num_threads
    check_sources(args.sources)
    check_target(args.out)
    settings = make_preprocessor(args.preprocessing, args.grid, args.normalise,
                                 args.continuum).to_dict()
    settings.update(method=args.method, min_coverage=args.min_coverage)
    pre = Preprocessor.from_dict(settings)
    from pyspec.distributed.tasks import cluster_client, uses_cluster

    if args.shards is not None and args.shards < 1:
        raise ValueError(f"--shards must be >= 1, got {args.shards}")
    if args.shards is not None or uses_cluster(args):
        if workers != 1:
            raise ValueError("--num-threads sets the processes of a single-store ingest; with "
                             "--shards/--scheduler/--dask each shard is one task (use "
                             "--dask-workers N for a local cluster)")
        from pyspec.distributed.ingest import ingest_sharded

        with cluster_client(args) as client:
            summary = ingest_sharded(args.sources, args.out, n_shards=args.shards,
                                     client=client, preprocessor=pre,
                                     chunk_size=args.chunk_size, fast=not args.no_fast)
    else:
        summary = ingest(args.sources, args.out, preprocessor=pre, workers=workers,
                         chunk_size=args.chunk_size, fast=not args.no_fast,
                         progress=False if args.quiet else None)
    print(summary)
    if summary.rejected:
        from pyspec.distributed.store import open_any_store

        rejects = open_any_store(args.out).rejects
        shown = rejects[-min(5, summary.rejected):]
        print(f"rejected (last {len(shown)} of {len(rejects)}; all in the store's rejects "
              "table):", file=sys.stderr)
        for row in shown:
            print(f"  {row['file']}: {row['reason']}", file=sys.stderr)
    return 0
