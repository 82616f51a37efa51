"""``pyspec info``: build configuration, or a summary of a store/engine directory."""

from __future__ import annotations

import argparse

HELP = "show build configuration (SIMD, OpenMP, threads)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="optional store or engine directory to describe")


def run(args: argparse.Namespace) -> int:
    from pyspec._config import show_config

    show_config()
    if args.path:
        from pathlib import Path

        path = Path(args.path)
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
        for child in sorted(path.iterdir()):
            print(f"  {child.name:<28} {child.stat().st_size:>14,d} bytes")
    return 0
