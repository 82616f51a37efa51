"""``pyspec queries``: choose representative query spectra (PCA + BIRCH + KMeans)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyspec.commands import (
    add_format,
    add_num_threads,
    add_out,
    add_overwrite,
    add_quiet,
    add_seed,
)
from pyspec.commands._workflow import (
    check_out,
    fit_progress,
    open_store,
    say,
    select_rows,
    write_table,
)
from pyspec.distributed.tasks import add_cluster_arguments

HELP = "pick representative query spectra from a labelled store (PCA, BIRCH, KMeans)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="spectrum store holding the labelled spectra")
    add_out(parser, "query table to write (default queries.ecsv)", default="queries.ecsv",
            metavar="TABLE")
    add_format(parser)
    add_overwrite(parser, "query table")
    parser.add_argument("--class", dest="classes", action="append", metavar="CLASS",
                        help="use only spectra of this class (repeatable), e.g. STAR")
    parser.add_argument("--subclass", dest="subclasses", action="append", metavar="GLOB",
                        help="use only subclasses matching this glob (repeatable), e.g. 'dM*'")
    parser.add_argument("--preset", choices=["dwarf", "giant"], default=None,
                        help="M-star study settings: dwarf = 50 BIRCH groups x 20 KMeans, "
                             "giant = 80 KMeans clusters")
    parser.add_argument("--method", choices=["birch-kmeans", "kmeans"], default="birch-kmeans",
                        help="clustering (default birch-kmeans)")
    parser.add_argument("--groups", type=int, default=50, help="BIRCH groups (default 50)")
    parser.add_argument("--subclusters", type=int, default=20,
                        help="KMeans sub-clusters per BIRCH group (default 20)")
    parser.add_argument("--clusters", type=int, default=80,
                        help="KMeans clusters for --method kmeans (default 80)")
    parser.add_argument("--components", type=int, default=50, help="PCA components (default 50)")
    add_seed(parser)
    parser.add_argument("--fit-sample", type=int, default=50_000, metavar="N",
                        help="fit PCA/BIRCH/KMeans on at most N spectra, then assign every "
                             "spectrum block by block (bounds memory; default 50000)")
    add_num_threads(parser)
    add_quiet(parser)
    add_cluster_arguments(parser)


def sel_method(params: dict) -> str:
    return "BIRCH + KMeans" if params["method"] == "birch-kmeans" else "KMeans"


def run(args: argparse.Namespace) -> int:
    from pyspec.distributed.store import select_store_rows, store_meta_rows
    from pyspec.distributed.tasks import cluster_client, run_per_shard
    from pyspec.queries import (
        PRESETS,
        StoreRowReader,
        assign_block,
        representative_queries_streamed,
    )

    if args.fit_sample < 2:
        raise ValueError(f"--fit-sample must be >= 2, got {args.fit_sample}")
    check_out(args)
    from pyspec.distributed.store import is_sharded_store, open_any_store

    store = open_any_store(args.store) if is_sharded_store(args.store) else open_store(args.store)
    # streamed: neither the store's metadata table nor the selection's flux is ever whole
    rows = select_store_rows(store, lambda t: select_rows(t, args.classes, args.subclasses))
    if rows.size < 2:
        raise ValueError(f"only {rows.size} spectra in {args.store} match the --class/--subclass "
                         "selection; need at least 2")
    params = dict(method=args.method, n_groups=args.groups, n_subclusters=args.subclusters,
                  n_clusters=args.clusters)
    if args.preset:
        params.update(PRESETS[args.preset])
    from threadpoolctl import threadpool_limits

    from pyspec._validation import check_num_threads

    reader = StoreRowReader(store, rows)
    limit = check_num_threads(args.num_threads) or None  # BLAS/OpenMP pools of PCA and KMeans
    with cluster_client(args) as client, threadpool_limits(limits=limit):
        assign = None
        if client is not None:  # the assignment pass: one task per block, models sent once
            def assign(clustering, blocks):  # noqa: ANN001, ANN202
                return run_per_shard(client, assign_block, [(b,) for b in blocks],
                                     clustering=clustering, read_rows=reader)
        with fit_progress(args, f"queries: fit PCA + {sel_method(params)} on at most "
                                f"{min(args.fit_sample, rows.size)} spectra, assign "
                                f"{rows.size}"):
            sel = representative_queries_streamed(
                reader, rows.size, fit_sample=args.fit_sample, n_components=args.components,
                random_state=args.seed, assign=assign, **params)
    table = store_meta_rows(store, rows[sel.rows])
    for name, col in sel.to_table().columns.items():
        table[name] = col
    table.meta.update(sel.to_table().meta)
    table["row"] = rows[sel.rows]  # rows of the store, not of the selection
    from pyspec.catalogue import provenance

    table.meta.update(provenance(command="pyspec queries", inputs=[args.store],
                                 recipe=getattr(store, "preprocessing", None),
                                 selection={"class": args.classes, "subclass": args.subclasses,
                                            "n_selected_from": int(rows.size)}))
    table.meta["store"] = str(Path(args.store).resolve())
    out = write_table(table, args.out, args.format)
    say(args, f"{len(table)} representative queries from {rows.size} spectra "
              f"({sel.params['method']}): {out}")
    return 0
