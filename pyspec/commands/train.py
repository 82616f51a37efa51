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

from pyspec.commands import add_num_threads

HELP = "fit a binary hasher (pil, lsh, itq) on spectra and save it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="flux array (.npy) or SpectrumStore directory")
    parser.add_argument("--out", required=True, help="model file to write")
    parser.add_argument("--model", choices=["pil", "lsh", "itq"], default="pil")
    parser.add_argument("--bits", type=int, default=256, help="code length (32, 64, 128, 256)")
    parser.add_argument("--hidden", default=None,
                        help="PIL hidden widths before the code layer, e.g. 1024,512")
    parser.add_argument("--encoder", choices=["beta", "random"], default=None)
    parser.add_argument("--init", choices=["orthogonal", "pinv"], default=None)
    parser.add_argument("--ridge", type=float, default=None)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
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
    if args.model == "pil":
        if args.hidden:
            try:
                params["hidden"] = tuple(int(h) for h in args.hidden.split(","))
            except ValueError:
                raise ValueError(f"--hidden: expected integers like 1024,512, got {args.hidden!r}") from None
        for key in ("encoder", "init", "ridge"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
    elif args.hidden or args.encoder or args.init or args.ridge is not None:
        raise ValueError("--hidden/--encoder/--init/--ridge apply to --model pil only")
    X = open_input(args.input)
    model = make_hasher(args.model, args.bits, args.random_state, **params)
    t0 = time.perf_counter()
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
