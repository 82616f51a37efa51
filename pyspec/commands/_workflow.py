"""Helpers shared by the workflow commands (build, query, queries, search, demo)."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Any

import numpy as np


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no summary lines")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for an interactive terminal and without --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def existing_path(value: str, what: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def open_store(value: str) -> Any:
    from pyspec.store import SpectrumStore

    return SpectrumStore.open(existing_path(value, "spectrum store"))


def open_engine(value: str) -> Any:
    from pyspec.engine import Engine

    return Engine.open(existing_path(value, "engine directory"))


def select_rows(meta: Any, classes: list[str] | None, subclasses: list[str] | None) -> np.ndarray:
    """Rows whose class equals one of ``classes`` and subclass matches one of the globs."""
    keep = np.ones(len(meta), bool)
    if classes:
        if "class" not in meta.colnames:
            raise ValueError("--class given but the store has no 'class' column")
        values = np.char.upper(np.asarray(meta["class"], str))
        keep &= np.isin(values, [c.upper() for c in classes])
    if subclasses:
        if "subclass" not in meta.colnames:
            raise ValueError("--subclass given but the store has no 'subclass' column")
        values = np.asarray(meta["subclass"], str)
        keep &= np.array([any(fnmatch.fnmatchcase(v, p) for p in subclasses) for v in values],
                         bool)
    return np.flatnonzero(keep)


def write_table(table: Any, out: str | Path, fmt: str | None = None) -> Path:
    from pyspec.catalogue import write_catalogue

    return write_catalogue(table, out, format=fmt)


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["ecsv", "fits", "votable", "csv"], default=None,
                        help="catalogue format (default: from the --out suffix; .ecsv is lossless)")
