"""Helpers shared by the workflow commands (build, query, queries, search, demo)."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from astropy.table import Table

    from pyspec.engine import Engine
    from pyspec.store import SpectrumStore


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for an interactive terminal and without --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


@contextlib.contextmanager
def fit_progress(args: argparse.Namespace, desc: str) -> Iterator[None]:
    """An elapsed-time line for a phase that reports no progress of its own (model fits).

    The fits run in compiled code or scikit-learn without callbacks, so the
    bar counts seconds (refreshed twice a second by a helper thread) to show
    the job is alive; shown on a terminal only, and never with --quiet.
    """
    if not show_progress(args):
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed}", leave=False) as bar:
        def tick() -> None:
            while not done.wait(0.5):
                bar.refresh()

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


@contextlib.contextmanager
def math_threads(args: argparse.Namespace) -> Iterator[None]:
    """``--num-threads`` for commands whose work is NumPy/BLAS and numba math rather
    than pyspec's own kernels: the BLAS/OpenMP pools (threadpoolctl) and numba's
    threads are limited to N for the command's duration."""
    n = getattr(args, "num_threads", None)
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"--num-threads must be >= 1, got {n}")
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        numba.set_num_threads(before)


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def existing_path(value: str, what: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def open_store(value: str) -> SpectrumStore:
    from pyspec.store import SpectrumStore

    return SpectrumStore.open(existing_path(value, "spectrum store"))


def open_engine(value: str) -> Engine:
    from pyspec.engine import Engine

    return Engine.open(existing_path(value, "engine directory"))


def select_rows(meta: Table, classes: list[str] | None, subclasses: list[str] | None
                ) -> np.ndarray:
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


def check_out(args: argparse.Namespace, flag: str = "--out") -> str | None:
    """Validate the catalogue ``args.out`` before any work: format, folder, --overwrite.

    Returns the resolved format (None when there is no output).
    """
    from pyspec.catalogue import check_catalogue_path

    if getattr(args, "out", None) is None:
        return None
    try:
        return check_catalogue_path(args.out, getattr(args, "format", None),
                                    overwrite=getattr(args, "overwrite", False))
    except FileExistsError as exc:
        raise FileExistsError(f"{flag}: {exc}; pass --overwrite to replace it") from None
    except (ValueError, FileNotFoundError) as exc:
        raise type(exc)(f"{flag}: {exc}") from None


def check_new_file(path: str | Path | None, flag: str, overwrite: bool) -> None:
    """Refuse, before any work, an existing ``path`` without --overwrite or a missing folder."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{flag}: {p} exists; pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"{flag}: output directory {p.parent} does not exist")


def write_table(table: Table, out: str | Path, fmt: str | None = None) -> Path:
    from pyspec.catalogue import write_catalogue

    return write_catalogue(table, out, format=fmt)
