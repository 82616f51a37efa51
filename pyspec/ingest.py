"""The ingest job: FITS files -> preprocessed rows in a :class:`~pyspec.store.SpectrumStore`.

Sources are walked lazily (directories recursively for ``*.fits``,
``*.fit``, ``*.fts`` and their ``.gz`` forms; ``*.txt``/``*.lst``/``*.list``
files as lists of paths, one per line; anything else as a file to read).
Files are read and preprocessed in worker processes, in tasks of a few files,
with a bounded number of tasks in flight; the parent writes rows in chunks,
so memory does not grow with the number of spectra. Every input is accounted
for: ``accepted + rejected == seen``, where a multi-spectrum file counts each
spectrum and an unreadable file counts once. A re-run on the same store
skips inputs that are already stored or rejected.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.preprocess import DEFAULT_PREPROCESSING, Preprocessor
from pyspec.store import SpectrumStore

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclasses.dataclass
class IngestSummary:
    """What an ingest run did.

    ``seen == accepted + rejected`` (spectra; an unreadable file counts as
    one); ``skipped`` files were already in the store.
    """

    store: str
    files: int = 0
    skipped: int = 0
    seen: int = 0
    accepted: int = 0
    rejected: int = 0
    n_spectra_total: int = 0

    def __str__(self) -> str:
        return (f"{self.files} files read ({self.skipped} skipped, already in the store): "
                f"{self.seen} seen = {self.accepted} accepted + {self.rejected} rejected; "
                f"store {self.store} now holds {self.n_spectra_total} spectra")


def iter_sources(sources: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Expand directories and list files into file paths (sorted within each directory).

    Raises
    ------
    FileNotFoundError
        A source that does not exist.
    """
    for src in sources:
        path = Path(src)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(FITS_SUFFIXES):
                        yield os.path.join(root, name)
        elif path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
            base = path.parent
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        p = Path(line)
                        yield str(p if p.is_absolute() else base / p)
        elif path.exists():
            yield str(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")


def make_preprocessor(preset: str = DEFAULT_PREPROCESSING, grid: Any = None,
                      normalise: str | None = None, continuum: str | None = None
                      ) -> Preprocessor:
    """The named ``preset``, or a custom recipe when any of the other settings is given."""
    if grid is None and normalise is None and continuum is None:
        return Preprocessor.preset(preset)
    return Preprocessor("lamost" if grid is None else grid,
                        normalise="l2" if normalise is None else normalise, continuum=continuum)


def process_files(paths: list[str], preprocessing: dict[str, Any], fast: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, list[dict], list[tuple[str, str]], int]:
    """Read and preprocess some files (runs in a worker process).

    Returns ``(flux, ivar, meta_rows, rejects, n_seen)`` with float32
    ``(n_ok, n_pixels)`` matrices.
    """
    from pyspec.errors import FitsFormatError
    from pyspec.io import read_batch, reason_of

    pre = Preprocessor.from_dict(preprocessing)
    rows_f, rows_i, metas = [], [], []
    rejects: list[tuple[str, str]] = []
    seen = 0
    for path in paths:
        try:
            batch = read_batch(path, fast=fast)
        except (FitsFormatError, OSError, ValueError) as exc:
            rejects.append((path, reason_of(exc, path)))
            seen += 1
            continue
        try:
            prepared = pre.apply(batch)
        except Exception as exc:  # noqa: BLE001  one bad file must not stop the job
            log.warning("%s: preprocessing failed: %s: %s", path, type(exc).__name__, exc)
            rejects.append((path, f"preprocessing failed ({type(exc).__name__}: {exc})"))
            seen += 1
            continue
        seen += len(batch)
        multi = len(batch) > 1
        for i in range(len(batch)):
            if prepared.ok[i]:
                meta = {k: v for k, v in batch.meta[i].items() if k != "warnings"}
                meta["file"] = path
                meta["n_interpolated"] = int(prepared.n_interpolated[i])
                meta["coverage"] = float(prepared.coverage[i])
                metas.append(meta)
                rows_f.append(prepared.flux[i])
                rows_i.append(prepared.ivar[i])
            else:
                reason = prepared.reasons[i] or "rejected by preprocessing"
                if multi:
                    reason = f"spectrum {i} (id {batch.ids[i]}): {reason}"
                rejects.append((path, reason))
    m = len(pre.grid)
    flux = np.array(rows_f, dtype=np.float32).reshape(-1, m)
    ivar = np.array(rows_i, dtype=np.float32).reshape(-1, m)
    return flux, ivar, metas, rejects, seen


def _tasks(paths: Iterator[str], done: set[str], size: int, summary: IngestSummary
           ) -> Iterator[list[str]]:
    task: list[str] = []
    for p in paths:
        if p in done:  # already in the store, or listed twice in this run
            summary.skipped += 1
            continue
        done.add(p)
        task.append(p)
        if len(task) >= size:
            yield task
            task = []
    if task:
        yield task


def ingest(sources: Iterable[str | os.PathLike], out: str | os.PathLike, *,
           preset: str = DEFAULT_PREPROCESSING, grid: Any = None, normalise: str | None = None,
           continuum: str | None = None, preprocessor: Preprocessor | None = None,
           workers: int = 1, chunk_size: int = 16384,
           files_per_task: int = 16, progress: bool | None = None,
           fast: bool = True) -> IngestSummary:
    """Ingest FITS spectra into the store at ``out`` (created, appended or resumed).

    Parameters
    ----------
    sources : paths of files, directories or ``.txt``/``.lst`` file lists
    out : store directory
    preset : str
        Named recipe (:data:`pyspec.preprocess.PREPROCESSING_PRESETS`) used
        when neither ``preprocessor`` nor any of ``grid``, ``normalise``,
        ``continuum`` is given; default "similarity" (continuum-normalised,
        ends and sky lines flattened), chosen for nearest-neighbour search.
    grid, normalise, continuum :
        A custom :class:`Preprocessor` (grid default "lamost", normalise
        default "l2") when ``preprocessor`` is not given.
    workers : int
        Worker processes (1 = in this process).
    chunk_size : int
        Rows per committed metadata part: the resume granularity (an
        interrupted run redoes at most this many spectra). Matrix rows go to
        disk as each task finishes, so memory does not depend on it beyond a
        few hundred bytes of metadata per row.
    files_per_task : int
        Files per worker task.
    progress : bool, optional
        tqdm progress bar; default: when stderr is a terminal.
    fast : bool
        Use the NumPy FITS fast path.

    Returns
    -------
    IngestSummary
    """
    import sys

    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if chunk_size < 1 or files_per_task < 1:
        raise ValueError("chunk_size and files_per_task must be >= 1")
    pre = preprocessor or make_preprocessor(preset, grid, normalise, continuum)
    settings = pre.to_dict()
    summary = IngestSummary(store=str(out))
    if progress is None:
        progress = sys.stderr.isatty()
    paths = iter_sources(sources)
    writer = SpectrumStore.create(out, pre.grid, settings, append=True,
                                  rows_per_part=chunk_size)
    done = writer.done_files()
    bar = tqdm(desc="ingest", unit="file", disable=not progress, dynamic_ncols=True)

    def consume(task: list[str], result: Any) -> None:
        flux, ivar, metas, rejects, seen = result
        summary.files += len(task)
        summary.seen += seen
        summary.accepted += len(metas)
        summary.rejected += len(rejects)
        for f, r in rejects:
            writer.reject(f, r)
        if len(metas):
            writer.append(flux, ivar, metas)
        bar.update(len(task))
        bar.set_postfix(ok=summary.accepted, rejected=summary.rejected, refresh=False)

    tasks = _tasks(paths, done, files_per_task, summary)
    try:
        if workers == 1:
            for task in tasks:
                consume(task, process_files(task, settings, fast))
        else:
            # a worker that dies (e.g. killed by the OOM killer) raises
            # BrokenProcessPool here instead of hanging; the store stays resumable
            ctx = multiprocessing.get_context("fork" if "fork" in
                                              multiprocessing.get_all_start_methods() else None)
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                pending: collections.deque = collections.deque()
                try:
                    for task in tasks:
                        pending.append((task, pool.submit(process_files, task, settings,
                                                          fast)))
                        while len(pending) >= 2 * workers:  # bounded work in flight
                            t, fut = pending.popleft()
                            consume(t, fut.result())
                    while pending:
                        t, fut = pending.popleft()
                        consume(t, fut.result())
                except BaseException:
                    for _, fut in pending:
                        fut.cancel()
                    raise
        writer.close()
    except BaseException:
        writer._abort()
        raise
    finally:
        bar.close()
    summary.n_spectra_total = len(writer)
    log.info("%s", summary)
    return summary
