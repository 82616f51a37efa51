"""``pyspec query``: query-by-example: the nearest spectra to one (or more) FITS spectra."""

from __future__ import annotations

import argparse

from pyspec.commands import add_format, add_num_threads, add_out, add_overwrite, add_quiet
from pyspec.commands._workflow import (
    check_new_file,
    check_out,
    existing_path,
    open_engine,
    say,
    write_table,
)

HELP = "find the spectra most similar to a spectrum (query-by-example)"

_SHOW = ("rank", "id", "class", "subclass", "z", "snr_r", "distance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spectrum", nargs="+", help="query spectrum FITS file(s)")
    parser.add_argument("--engine", "-e", required=True, help="engine directory (`pyspec build`)")
    parser.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    parser.add_argument("--rerank", type=int, default=None, metavar="R",
                        help="two-stage search: the codes select R candidates, exact L2 in the "
                             "engine's re-rank space (build --rerank-space: principal "
                             "components by default, or the stored spectra) orders them "
                             "(default max(10 k, 100); 0 = codes only)")
    add_out(parser, "write the neighbour table (e.g. table.ecsv, .fits, .vot, .csv)",
            metavar="TABLE")
    add_format(parser)
    add_overwrite(parser, "table or plot")
    parser.add_argument("--plot", default=None, metavar="PNG",
                        help="draw the query (red) and its neighbours (first query only)")
    add_num_threads(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ValueError(f"-k must be >= 1, got {args.k}")
    if args.rerank is not None and args.rerank < 0:
        raise ValueError(f"--rerank must be >= 0, got {args.rerank}")
    for path in args.spectrum:
        existing_path(path, "spectrum file")
    check_out(args)
    check_new_file(args.plot, "--plot", args.overwrite)
    engine = open_engine(args.engine)
    if len(args.spectrum) == 1:
        table = engine.query(args.spectrum[0], k=args.k, rerank=args.rerank,
                             num_threads=args.num_threads)
    else:
        table = engine.query_batch(args.spectrum, k=args.k, rerank=args.rerank,
                                   num_threads=args.num_threads)
        for name, reason in table.meta["rejects"]:
            say(args, f"skipped {name}: {reason}")
    table.meta.update(command="pyspec query", inputs=[str(p) for p in args.spectrum],
                      recipe=engine.info.get("preprocessing"))
    if not args.quiet:
        cols = [c for c in (("query_id",) if len(args.spectrum) > 1 else ()) + _SHOW
                if c in table.colnames]
        table[cols].pprint(max_lines=-1, max_width=-1)
    if args.out:
        say(args, f"table: {write_table(table, args.out, args.format)}")
    if args.plot:
        # the engine keeps each result's prepared query flux (no second read)
        first = table if len(args.spectrum) == 1 else table[table["query_index"] == 0]
        say(args, f"plot: {engine.plot_query(first, args.plot)}")
    return 0
