"""``pyspec build``: encode a spectrum store with a model and write a search engine directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyspec.commands import (
    add_hidden,
    add_n_bits,
    add_num_threads,
    add_out,
    add_overwrite,
    add_quiet,
    add_seed,
)
from pyspec.commands._workflow import fit_progress, open_store, say, show_progress
from pyspec.distributed.tasks import add_cluster_arguments

HELP = "build a search engine (model + index + metadata) over a spectrum store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store",
                        help="spectrum store directory (from `pyspec ingest` or `simulate`)")
    add_out(parser, "engine directory to create", required=True, metavar="ENGINE")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", default="pil", choices=["pil", "lsh", "itq", "pq"],
                       help="model to fit on the store (default: pil, 256-bit PIL hasher)")
    model.add_argument("--model-file", metavar="PATH",
                       help="a fitted model saved by `pyspec train` / model.save()")
    add_n_bits(parser, help="code length for pil/lsh/itq (default 256)")
    add_hidden(parser, help="PIL hidden layer widths before the code layer (default: scaled "
                            "with the store, 1024,512 from 2048 spectra up; explicit widths "
                            "need at least as many training spectra)")
    parser.add_argument("--segments", type=int, default=25, help="PQ segments (default 25)")
    parser.add_argument("--centroids", type=int, default=None,
                        help="PQ centroids (default 256, or a quarter of the store's spectra "
                             "when that is fewer)")
    parser.add_argument("--fit-sample", type=int, default=None, metavar="N",
                        help="fit an unfitted model on N random spectra (default: all)")
    parser.add_argument("--fit", default="sample", choices=["sample", "streamed"],
                        help="sharded builds: fit the model here on --fit-sample spectra or all "
                             "of them (sample, default), or stream every spectrum through the "
                             "shards' workers, reducing only statistics here (streamed; pil, pq)")
    parser.add_argument("--chunk-size", type=int, default=8192,
                        help="spectra encoded per chunk (bounds memory; default 8192)")
    add_seed(parser)
    add_overwrite(parser, "engine directory")
    parser.add_argument("--rerank-space", default="pca", choices=["pca", "flux"],
                        help="where queries re-rank their candidates: L2 between projections "
                             "on the store's principal components (pca, default) or between "
                             "the stored spectra (flux)")
    parser.add_argument("--components", type=int, default=None, metavar="N",
                        help="principal components for --rerank-space pca (default 32, at most "
                             "a quarter of the spectra)")
    parser.add_argument("--allow-unknown-preprocessing", action="store_true",
                        help="build over a store that records no preprocessing (queries by "
                             "file are then refused)")
    parser.add_argument("--shards", type=int, default=None, metavar="N",
                        help="write a sharded engine of N shards (default with --scheduler/--dask: "
                             "one per worker; a sharded store: one per shard store)")
    add_num_threads(parser)
    add_quiet(parser)
    add_cluster_arguments(parser)


def load_model_file(path: str) -> object:
    """Load a saved model of any pyspec model class (see :func:`pyspec.backends.load_model`)."""
    from pyspec.backends import load_model

    return load_model(path)


#: Model keyword arguments and the `pyspec build` flags that set them.
_FLAGS = {"n_bits": "--n-bits", "hidden": "--hidden", "n_centroids": "--centroids",
          "n_segments": "--segments", "fit_sample": "--fit-sample",
          "chunk_size": "--chunk-size", "overwrite": "--overwrite",
          "rerank_space": "--rerank-space", "n_components": "--components", "fit": "--fit"}


def cli_message(message: str) -> str:
    """An error message with the models' keyword arguments named as this command's flags."""
    import re

    def flag(match: re.Match) -> str:
        return _FLAGS[match.group(1)] + (" " if match.group(2) else "")

    return re.sub(r"(?<![-\w])(" + "|".join(_FLAGS) + r")\b(=?)", flag, message)


def run(args: argparse.Namespace) -> int:
    from pyspec.backends import make_model
    from pyspec.engine import Engine

    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists; pass --overwrite to replace it")
    from pyspec.distributed.store import is_sharded_store, open_any_store
    from pyspec.distributed.tasks import cluster_client, uses_cluster

    if args.shards is not None and args.shards < 1:
        raise ValueError(f"--shards must be >= 1, got {args.shards}")
    sharded = args.shards is not None or uses_cluster(args) or is_sharded_store(args.store)
    if args.fit == "streamed" and not sharded:
        raise ValueError("--fit streamed fits across shards: add --shards N, --scheduler or --dask")
    store = open_store(args.store) if not is_sharded_store(args.store) else None
    if args.model_file:
        model = load_model_file(args.model_file)
    elif args.model == "pq":
        centroids = args.centroids if args.centroids is not None else \
            max(2, min(256, len(store if store is not None else open_any_store(args.store))
                           // 4))
        model = make_model("pq", n_segments=args.segments, n_centroids=centroids,
                           random_state=args.seed)
    elif args.model == "pil" and args.hidden:
        model = make_model("pil", n_bits=args.n_bits, hidden=args.hidden, random_state=args.seed)
    else:
        model = make_model(args.model, n_bits=args.n_bits, random_state=args.seed)
    try:
        if sharded:
            from pyspec.distributed.build import build_sharded

            with cluster_client(args) as client:
                engine = build_sharded(store or args.store, model, args.out, n_shards=args.shards,
                                       client=client, fit_sample=args.fit_sample,
                                       chunk_size=args.chunk_size, num_threads=args.num_threads,
                                       overwrite=args.overwrite, random_state=args.seed,
                                       fit=args.fit, rerank_space=args.rerank_space,
                                       n_components=args.components)
        else:
            with fit_progress(args, f"build: fit {type(model).__name__}, encode, re-rank space"):
                engine = Engine.build(
                    store, model, out=args.out, chunk_size=args.chunk_size,
                    fit_sample=args.fit_sample, num_threads=args.num_threads,
                    progress=show_progress(args), overwrite=args.overwrite,
                    random_state=args.seed,
                    allow_unknown_preprocessing=args.allow_unknown_preprocessing,
                    rerank_space=args.rerank_space, n_components=args.components)
    except ValueError as exc:
        raise type(exc)(cli_message(str(exc))) from None
    t = engine.info["timings_s"]
    say(args, f"engine {engine.path}: {len(engine):,d} spectra, {engine.info['model_class']} "
              f"({engine.kind}), fit {t['fit']:.2f} s, encode {t['encode']:.2f} s")
    return 0
