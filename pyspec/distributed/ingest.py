"""Sharded ingest: file partitions -> one spectrum store per shard -> one manifest.

The input files are listed once and cut into ``n_shards`` contiguous
partitions, written as ``shard-NNNN.lst`` before any work starts. Each
shard is an ordinary :func:`pyspec.ingest.ingest` of its list into
``shard-NNNN/``, as one task: its rows are committed in crash-safe parts, so
a task whose worker dies (or a run that is interrupted) is resumed by
running the shard again, which skips every input already stored or
rejected. ``sharded-store.json`` is written last, atomically, when every
shard is complete; it lists the shards and the totals, which always satisfy
``accepted + rejected == seen`` summed over all shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.distributed.store import (
    SHARDED_STORE_FILE,
    read_json_checked,
    write_json_atomic,
    write_sharded_manifest,
)
from pyspec.distributed.tasks import connect, n_workers, run_per_shard
from pyspec.ingest import (
    DEFAULT_PREPROCESSING,
    IngestSummary,
    ingest,
    iter_sources,
    make_preprocessor,
)
from pyspec.preprocess import Preprocessor

PARTITIONS_FILE = "partitions.json"


@dataclasses.dataclass
class ShardedIngestSummary:
    """What a sharded ingest run did: per-shard summaries and their sums.

    ``seen``, ``accepted`` and ``rejected`` count this run; ``n_spectra_total``
    and ``n_rejected_total`` the complete sharded store.
    """

    store: str
    shards: list[IngestSummary]
    n_spectra_total: int = 0
    n_rejected_total: int = 0

    def _sum(self, name: str) -> int:
        return int(sum(getattr(s, name) for s in self.shards))

    files = property(lambda self: self._sum("files"))
    skipped = property(lambda self: self._sum("skipped"))
    seen = property(lambda self: self._sum("seen"))
    accepted = property(lambda self: self._sum("accepted"))
    rejected = property(lambda self: self._sum("rejected"))

    def __str__(self) -> str:
        return (f"{self.files} files read in {len(self.shards)} shards ({self.skipped} skipped, "
                f"already stored): {self.seen} seen = {self.accepted} accepted + "
                f"{self.rejected} rejected; sharded store {self.store} now holds "
                f"{self.n_spectra_total} spectra ({self.n_rejected_total} rejects)")


def _partition(out: Path, sources: Iterable[str | os.PathLike], n_shards: int) -> list[Path]:
    """Write (or, on a resumed run, check) the shard file lists; return their paths."""
    seen: set[str] = set()
    files = []
    for p in iter_sources(sources):
        p = os.path.realpath(p)
        if p not in seen:  # a file listed twice (or through a link) is read once
            seen.add(p)
            files.append(p)
    digest = hashlib.sha256("\n".join(files).encode("utf-8")).hexdigest()
    marker = out / PARTITIONS_FILE
    if marker.is_file():
        old = read_json_checked(marker, "partition record")
        if old.get("sources_sha256") != digest:
            raise ValueError(f"{out} holds a sharded ingest of other input files; resume it with "
                             "the same sources, or choose a new --out")
        return [out / f"shard-{i:04d}.lst" for i in range(int(old["n_shards"]))]
    if not files:
        raise ValueError("no input files found in the sources")
    groups = _duplicate_groups(files)
    n_shards = max(1, min(int(n_shards), len(groups)))
    ends = np.cumsum([len(g) for g in groups])
    bounds = np.linspace(0, len(files), n_shards + 1)[1:]
    cut = np.concatenate([[0], np.searchsorted(ends, bounds - 0.5) + 1])
    cut[-1] = len(groups)
    chunks = [[f for g in groups[a:b] for f in g] for a, b in zip(cut[:-1], cut[1:], strict=True)]
    chunks = [c for c in chunks if c]  # a large group of copies can swallow a boundary
    n_shards = len(chunks)
    lists = []
    out.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(chunks):
        lst = out / f"shard-{i:04d}.lst"
        tmp = lst.with_name(f".{lst.name}.tmp")
        tmp.write_text("".join(f"{f}\n" for f in chunk), encoding="utf-8")
        os.replace(tmp, lst)
        lists.append(lst)
    # written after the lists: its presence means the partition is complete and fixed
    write_json_atomic(marker, {"n_shards": n_shards, "n_files": len(files),
                               "sources_sha256": digest})
    return lists


def _duplicate_groups(files: list[str]) -> list[list[str]]:
    """``files`` in groups that keep byte-identical files together, in first-seen order.

    Each shard's ingest drops a file whose content it already stored (see
    pyspec.ingest), so identical files must land in the same shard for the
    sharded store to equal one ingest. Only files that share their size with
    another are read (hashed) here; the rest are groups of one.
    """
    import stat
    from collections import defaultdict

    sizes: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(files):
        try:
            st = os.stat(f)
        except OSError:
            continue  # its shard records the reason
        if stat.S_ISREG(st.st_mode):
            sizes[st.st_size].append(i)
    leader = list(range(len(files)))
    for members in sizes.values():
        if len(members) < 2:
            continue
        first_of: dict[str, int] = {}
        for i in members:
            try:
                with open(files[i], "rb") as fh:
                    digest = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16))
            except (OSError, AttributeError):  # file_digest is Python >= 3.11
                try:
                    digest = hashlib.blake2b(Path(files[i]).read_bytes(), digest_size=16)
                except OSError:
                    continue
            leader[i] = first_of.setdefault(digest.hexdigest(), i)
    groups: dict[int, list[str]] = {}
    for i, f in enumerate(files):
        groups.setdefault(leader[i], []).append(f)
    return list(groups.values())


def _ingest_shard(file_list: str, shard_dir: str, *, settings: dict[str, Any],
                  chunk_size: int, files_per_task: int, fast: bool) -> IngestSummary:
    """One task: ingest (or resume) one shard's file list into its store."""
    return ingest([file_list], shard_dir, preprocessor=Preprocessor.from_dict(settings),
                  workers=1, chunk_size=chunk_size, files_per_task=files_per_task,
                  progress=False, fast=fast)


def ingest_sharded(sources: Iterable[str | os.PathLike], out: str | os.PathLike, *,
                   n_shards: int | None = None, client: Any = None,
                   preset: str = DEFAULT_PREPROCESSING, grid: Any = None,
                   normalise: str | None = None, continuum: str | None = None,
                   preprocessor: Preprocessor | None = None, chunk_size: int = 16384,
                   files_per_task: int = 16, fast: bool = True) -> ShardedIngestSummary:
    """Ingest FITS spectra into a sharded store at ``out`` (created or resumed).

    Parameters
    ----------
    sources : files, directories or file lists, as for :func:`pyspec.ingest.ingest`
    out : directory of the sharded store
    n_shards : int, optional
        Partitions of the input files (default: twice the client's workers,
        or 2). Fixed by the first run; a resumed run keeps them.
    client : distributed.Client, scheduler address or None
        Where the shards are ingested (None: one after another, here).
    preset, grid, normalise, continuum, preprocessor, chunk_size, files_per_task, fast :
        As for :func:`pyspec.ingest.ingest` (``chunk_size`` is each shard's
        resume granularity).

    Returns
    -------
    ShardedIngestSummary
    """
    client = connect(client)
    if n_shards is None:
        n_shards = 2 * n_workers(client)
    if isinstance(n_shards, bool) or int(n_shards) < 1:
        raise ValueError(f"n_shards must be an int >= 1, got {n_shards}")
    if chunk_size < 1 or files_per_task < 1:
        raise ValueError("chunk_size and files_per_task must be >= 1")
    pre = preprocessor or make_preprocessor(preset, grid, normalise, continuum)
    out = Path(out)
    lists = _partition(out, sources, int(n_shards))
    shard_dirs = [lst.with_suffix("") for lst in lists]
    # the shards are about to change: until they are complete the store must not open as one
    (out / SHARDED_STORE_FILE).unlink(missing_ok=True)
    tasks = [(str(lst), str(d)) for lst, d in zip(lists, shard_dirs, strict=True)]
    summaries = run_per_shard(client, _ingest_shard, tasks,
                              settings=pre.to_dict(), chunk_size=int(chunk_size),
                              files_per_task=int(files_per_task), fast=bool(fast))
    info = write_sharded_manifest(out, shard_dirs)
    return ShardedIngestSummary(store=str(out), shards=list(summaries),
                                n_spectra_total=info["n_spectra"],
                                n_rejected_total=info["n_rejected"])
