"""asv: reading FITS spectra (fast path vs astropy path) and ingesting into a store."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pyspec.data import sample_files
from pyspec.io import read_batch


def _files(n: int) -> list[str]:
    files = [str(p) for p in sample_files()]
    return (files * (n // len(files) + 1))[:n]


class ReadSpectra:
    """Read the shipped real LAMOST sample (all four layouts), per file."""

    params = ([59, 236], [True, False])
    param_names = ["n_files", "fast"]
    timeout = 120

    def setup(self, n_files: int, fast: bool) -> None:
        self.paths = _files(n_files)
        for p in self.paths[:5]:  # imports, JIT cache load, page cache
            read_batch(p, fast=fast)

    def time_read_batch(self, n_files: int, fast: bool) -> None:
        for p in self.paths:
            read_batch(p, fast=fast)


class Ingest:
    """End-to-end ``pyspec.ingest.ingest`` of sample files into a fresh store."""

    params = ([59, 236], [1, 2])
    param_names = ["n_files", "workers"]
    timeout = 300

    def setup(self, n_files: int, workers: int) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="pyspec-bench-"))
        src = self.tmp / "in"
        src.mkdir()
        for i, p in enumerate(_files(n_files)):
            os.symlink(p, src / f"{i:06d}-{Path(p).name}")
        self.src = src
        self.count = 0

    def teardown(self, n_files: int, workers: int) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self, workers: int) -> None:
        from pyspec.ingest import ingest

        self.count += 1
        ingest([self.src], self.tmp / f"store{self.count}", workers=workers, progress=False)

    def time_ingest(self, n_files: int, workers: int) -> None:
        self._run(workers)

    def peakmem_ingest(self, n_files: int, workers: int) -> None:
        # must not grow with n_files (chunked writes): compare the two sizes
        self._run(workers)

    def peakmem_reference(self, n_files: int, workers: int) -> None:
        pass
