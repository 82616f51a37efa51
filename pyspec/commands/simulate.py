"""``pyspec simulate``: realistic simulated spectra into a store or LAMOST FITS files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pyspec.commands import add_num_threads, add_overwrite, add_quiet, add_seed

HELP = "simulate realistic labelled spectra from real templates (store or FITS files)"

log = logging.getLogger(__name__)


def _snr(text: str):
    """A preset name, a number, or 'median,sigma'."""
    if "," in text:
        parts = text.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected MEDIAN,SIGMA, got {text!r}")
        try:
            return (float(parts[0]), float(parts[1]))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected MEDIAN,SIGMA numbers, got {text!r}") from None
    try:
        return float(text)
    except ValueError:
        return text


def _weights(text: str) -> dict:
    out = {}
    for item in text.split(","):
        name, _, w = item.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected CLASS=WEIGHT[,CLASS=WEIGHT...], got {text!r}") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, metavar="N", help="number of spectra")
    dest = parser.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--out", metavar="STORE", help="write a spectrum store directory")
    dest.add_argument("--fits", metavar="DIR", help="write LAMOST FITS files into DIR instead")
    add_seed(parser)
    parser.add_argument("--grid", default=None, metavar="PRESET",
                        help="wavelength grid preset (default: 'lamost' for a store, LAMOST's "
                             "native 3909-pixel log-linear grid for FITS)")
    parser.add_argument("--preprocessing", default="similarity", metavar="NAME",
                        help="with --out: prepare the flux like `pyspec ingest --preprocessing "
                             "NAME` (default similarity); recorded in the store")
    parser.add_argument("--snr", type=_snr, default="lamost", metavar="DIST",
                        help="S/N distribution: preset (lamost, unknown, high), a fixed number "
                             "or MEDIAN,SIGMA of a log-normal (default lamost)")
    parser.add_argument("--classes", type=_weights, default=None, metavar="W",
                        help="class weights, e.g. STAR=0.8,GALAXY=0.2")
    parser.add_argument("--p-be", type=float, default=0.05,
                        help="fraction of stars with H-alpha emission (default 0.05)")
    parser.add_argument("--p-galaxy-lines", type=float, default=0.5,
                        help="fraction of galaxies with injected emission lines (default 0.5)")
    parser.add_argument("--line-amplitude", type=float, nargs=2, default=(0.2, 3.0),
                        metavar=("LOW", "HIGH"), help="H-alpha peak height range (continuum units)")
    parser.add_argument("--templates", nargs="+", default=None, metavar="DIR",
                        help="template directories with sample_index.csv or spectra_index.csv "
                             "(default: shipped sample + shared corpus if present; the output "
                             "for a seed depends on the library)")
    parser.add_argument("--min-template-snr", type=float, default=10.0,
                        help="minimum header S/N of a template (default 10)")
    parser.add_argument("--chunk-size", type=int, default=4096,
                        help="spectra per chunk (bounds memory; default 4096)")
    parser.add_argument("--layouts", default="C,D",
                        help="LAMOST FITS layouts to cycle through (C, D; default C,D)")
    parser.add_argument("--gzip", action="store_true", help="write .fits.gz")
    add_quiet(parser)
    add_overwrite(parser, "store of --out")
    add_num_threads(parser)


def check_store_target(path: Path, overwrite: bool) -> None:
    """--out must be new, or (with --overwrite) a spectrum store that may be replaced."""
    if not path.exists():
        if not path.parent.is_dir():
            raise FileNotFoundError(f"--out: directory {path.parent} does not exist")
        return
    if not overwrite:
        raise FileExistsError(f"--out {path} exists; pass --overwrite to replace it")
    if not (path / "manifest.json").exists():
        raise FileExistsError(f"--out {path} exists and is not a spectrum store; "
                              "--overwrite replaces only a store")


def run(args: argparse.Namespace) -> int:
    import shutil
    import time

    from pyspec.simulate import load_library, write_fits, write_store

    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    if args.out:
        check_store_target(Path(args.out), args.overwrite)
    templates = load_library(args.templates, min_snr=args.min_template_snr)
    if args.classes:
        known = sorted(set(templates.classes))
        unknown = sorted(set(args.classes) - set(known))
        if unknown:
            raise ValueError(f"--classes: unknown class {', '.join(unknown)}; the template "
                             f"library has {', '.join(known)}")
    common = dict(seed=args.seed, templates=templates, snr=args.snr,
                  class_weights=args.classes, p_be=args.p_be,
                  p_galaxy_lines=args.p_galaxy_lines, line_amplitude=tuple(args.line_amplitude),
                  num_threads=args.num_threads, progress=not args.quiet)
    t0 = time.perf_counter()
    if args.out:
        from pyspec.preprocess import PREPROCESSING_PRESETS

        if args.preprocessing not in PREPROCESSING_PRESETS:
            raise ValueError(f"--preprocessing must be one of {sorted(PREPROCESSING_PRESETS)}, "
                             f"got {args.preprocessing!r}")
        if args.overwrite and Path(args.out).exists():
            shutil.rmtree(args.out)
        write_store(args.out, args.n, grid=args.grid or "lamost", chunk_size=args.chunk_size,
                    preprocessing=args.preprocessing, **common)
        where = args.out
    else:
        layouts = tuple(s.strip() for s in args.layouts.split(",") if s.strip())
        write_fits(args.fits, args.n, grid=args.grid, layouts=layouts, gzip=args.gzip,
                   chunk_size=min(args.chunk_size, 1024), **common)
        where = args.fits
    dt = time.perf_counter() - t0
    if not args.quiet:
        print(f"simulated {args.n} spectra from {len(templates)} templates into {where} "
              f"in {dt:.1f} s ({args.n / max(dt, 1e-9):,.0f} spectra/s)")
    return 0
