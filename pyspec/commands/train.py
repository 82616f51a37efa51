"""``pyspec train``: fit a hasher (PIL, LSH or ITQ) and save it.

The input is a preprocessed flux array (.npy, memory-mapped, so arrays larger
than memory stream through the fit) or a SpectrumStore directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pyspec.commands import (
    add_hidden,
    add_n_bits,
    add_num_threads,
    add_out,
    add_overwrite,
    add_quiet,
    add_seed,
)
from pyspec.commands._workflow import check_new_file, fit_progress

HELP = "fit a binary hasher (pil, lsh, itq) on spectra and save it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="flux array (.npy) or SpectrumStore directory")
    add_out(parser, "model file to write", required=True, metavar="MODEL")
    parser.add_argument("--model", choices=["pil", "lsh", "itq"], default="pil")
    add_n_bits(parser, help="code length: 32, 64, 128 or 256 (default 256)")
    add_hidden(parser)
    parser.add_argument("--encoder", choices=["beta", "random"], default=None)
    parser.add_argument("--init", choices=["orthogonal", "pinv"], default=None)
    parser.add_argument("--ridge", type=float, default=None)
    add_seed(parser)
    add_overwrite(parser, "model file")
    add_quiet(parser)
    add_num_threads(parser)


def open_input(path: str) -> object:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {p}")
    if p.is_dir():
        from pyspec.store import SpectrumStore

        return SpectrumStore.open(p)
    if p.suffix != ".npy":
        raise ValueError(f"{p}: expected a .npy flux array or a SpectrumStore directory")
    return np.load(p, mmap_mode="r", allow_pickle=False)


def run(args: argparse.Namespace) -> int:
    from pyspec.evaluate import make_hasher

    params: dict[str, object] = {}
    check_new_file(args.out, "--out", args.overwrite)
    if args.model == "pil":
        if args.hidden:
            params["hidden"] = args.hidden
        for key in ("encoder", "init", "ridge"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
    elif args.hidden or args.encoder or args.init or args.ridge is not None:
        raise ValueError("--hidden/--encoder/--init/--ridge apply to --model pil only")
    X = open_input(args.input)
    model = make_hasher(args.model, args.n_bits, args.seed, **params)
    t0 = time.perf_counter()
    with fit_progress(args, f"fit {type(model).__name__}"):
        model.fit(X, num_threads=args.num_threads)
    elapsed = time.perf_counter() - t0
    model.save(args.out)
    if not args.quiet:
        info = {"model": type(model).__name__, "n_bits": model.n_bits,
                "n_features": model.n_features_in_, "fit_seconds": round(elapsed, 3),
                "out": args.out}
        if hasattr(model, "solve_info_"):
            info["solves"] = model.solve_info_
        print(json.dumps(info, indent=1), file=sys.stderr)
    return 0
