"""CLI sub-commands, one module each (see pyspec.cli)."""

from __future__ import annotations

import argparse


def add_num_threads(parser: argparse.ArgumentParser) -> None:
    """The common ``--num-threads`` option (default: all cores / OMP_NUM_THREADS)."""
    parser.add_argument("--num-threads", type=int, default=None, metavar="N",
                        help="threads for compiled kernels (default: all cores)")
