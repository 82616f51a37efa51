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

Inputs are deduplicated twice: by resolved path (a file reached through a
relative path, an absolute path or a symlink is read once, also across
resumed runs) and by content (a byte-identical copy under another name is
recorded as a reject "duplicate of ...", counted in
``IngestSummary.duplicates``). A directory that cannot be listed is a
reject, not a silent gap. Only regular files are opened (FIFOs and devices
are rejects) and each read is bounded (:mod:`pyspec.io._view`). Worker
processes exit within a second when the ingest process dies, however it
dies.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from pyspec.io._discover import FITS_SUFFIXES, LIST_SUFFIXES, iter_sources  # noqa: F401
from pyspec.preprocess import DEFAULT_PREPROCESSING, Preprocessor
from pyspec.store import SpectrumStore

log = logging.getLogger(__name__)

@dataclasses.dataclass
class IngestSummary:
    """What an ingest run did.

    ``seen == accepted + rejected`` (spectra; an unreadable file counts as
    one); ``skipped`` files were already in the store (or listed twice);
    ``duplicates`` of the rejected are byte-identical copies of a stored file.
    """

    store: str
    files: int = 0
    skipped: int = 0
    seen: int = 0
    accepted: int = 0
    rejected: int = 0
    n_spectra_total: int = 0
    duplicates: int = 0

    def __str__(self) -> str:
        dup = (f" (of which {self.duplicates} identical copies of stored files)"
               if self.duplicates else "")
        return (f"{self.files} files read ({self.skipped} skipped, already in the store): "
                f"{self.seen} seen = {self.accepted} accepted + {self.rejected} rejected{dup}; "
                f"store {self.store} now holds {self.n_spectra_total} spectra")


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
    from pyspec.io._view import read_file

    pre = Preprocessor.from_dict(preprocessing)
    rows_f, rows_i, metas = [], [], []
    rejects: list[tuple[str, str]] = []
    seen = 0
    for path in paths:
        try:
            content = read_file(path)  # bounded; refuses FIFOs and devices
            digest = hashlib.blake2b(content, digest_size=16).hexdigest()
            source = io.BytesIO(content)
            source.name = path  # messages name the file
            batch = read_batch(source, fast=fast)
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
                meta["content_hash"] = digest  # blake2b-128 of the file's bytes
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


def _resolved(path: str) -> str:
    """The key a file is deduplicated by: its absolute path with symlinks resolved."""
    return os.path.realpath(path)


def _tasks(paths: Iterator[str], done: set[str], size: int, summary: IngestSummary
           ) -> Iterator[list[str]]:
    task: list[str] = []
    for p in paths:
        key = _resolved(p)
        if key in done:  # already in the store, or listed twice in this run
            summary.skipped += 1
            continue
        done.add(key)
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
    writer = SpectrumStore.create(out, pre.grid, settings, append=True,
                                  rows_per_part=chunk_size)
    done = {_resolved(f) for f in writer.done_files()}
    stored_hashes = writer.content_hashes()

    def walk_error(path: str, reason: str) -> None:
        if _resolved(path) in done:
            return  # recorded by an earlier run
        done.add(_resolved(path))
        summary.files += 1
        summary.seen += 1
        summary.rejected += 1
        writer.reject(path, reason)

    paths: Iterable[str] = iter_sources(sources, on_error=walk_error)
    total = None
    if progress:  # the bar's total: listing the files is cheap next to reading them
        paths = list(paths)
        total = len(paths)
    bar = tqdm(desc="ingest", unit="file", total=total, disable=not progress,
               dynamic_ncols=True)

    def consume(task: list[str], result: Any) -> None:
        flux, ivar, metas, rejects, seen = result
        flux, ivar, metas, duplicates = _drop_duplicates(flux, ivar, metas, stored_hashes)
        summary.files += len(task)
        summary.seen += seen
        summary.accepted += len(metas)
        summary.rejected += len(rejects) + sum(n for _, _, n in duplicates)
        summary.duplicates += sum(n for _, _, n in duplicates)
        for f, r in rejects:
            writer.reject(f, r)
        for f, original, _ in duplicates:
            writer.reject(f, f"duplicate of {original} (identical content)")
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
            with _worker_pool(workers) as pool:
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


def _drop_duplicates(flux: np.ndarray, ivar: np.ndarray, metas: list[dict],
                     stored: dict[str, str]) -> tuple[np.ndarray, np.ndarray, list[dict],
                                                      list[tuple[str, str, int]]]:
    """Remove the rows of files whose content is already stored (under another name).

    ``stored`` maps content hash -> first file with that content and is
    updated with the files kept. Returns the kept rows and, per dropped
    file, (file, original, number of spectra).
    """
    keep = np.ones(len(metas), dtype=bool)
    dropped: dict[str, list] = {}
    first_of_task: dict[str, str] = {}
    for i, meta in enumerate(metas):
        digest, file = meta.get("content_hash"), meta["file"]
        if digest is None:
            continue
        original = stored.get(digest, first_of_task.get(digest))
        if original is not None and original != file:
            keep[i] = False
            dropped.setdefault(file, [original, 0])[1] += 1
        else:
            first_of_task.setdefault(digest, file)
    stored.update(first_of_task)
    if keep.all():
        return flux, ivar, metas, []
    kept = [m for m, k in zip(metas, keep, strict=True) if k]
    return (flux[keep], ivar[keep], kept,
            [(f, orig, n) for f, (orig, n) in dropped.items()])


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the ingest process that started us is gone.

    A worker blocked on its task queue would otherwise outlive a killed
    parent for as long as the queue stays open. Linux also gets
    ``PR_SET_PDEATHSIG``; the polling thread covers everything else.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=poll, name="pyspec-parent-watch", daemon=True).start()


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes (fork where available) that die with this process."""
    ctx = multiprocessing.get_context("fork" if "fork" in
                                      multiprocessing.get_all_start_methods() else None)
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_watch_parent,
                               initargs=(os.getpid(),))
