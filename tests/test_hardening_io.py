"""Issue 16 hardening of reading and ingest: bounded reads, special files, walk errors,
deduplication, worker lifetime, the numba cache and astropy's first read."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zlib

import pytest

import pyspec.io._view as view
from pyspec.data import sample_files
from pyspec.errors import FitsFormatError
from pyspec.ingest import ingest
from pyspec.io import read_batch
from pyspec.store import SpectrumStore


def _run_python(code, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def test_gzip_bomb_stops_at_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(view, "MAX_INPUT_BYTES", 4 << 20)
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (64 << 20), compresslevel=9))  # 64 KB -> 64 MB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(FitsFormatError, match="larger than 4 MB"):
        read_batch(bomb)
    raw = zlib.compress(b"\0" * (8 << 20))
    with pytest.raises(FitsFormatError, match="larger than"):  # also through a stream
        read_batch(gzip.compress(zlib.decompress(raw)))


def test_oversized_plain_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(view, "MAX_INPUT_BYTES", 1 << 20)
    big = tmp_path / "big.fits"
    with open(big, "wb") as fh:
        fh.truncate(2 << 20)
    with pytest.raises(FitsFormatError, match="larger than 1 MB"):
        read_batch(big)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_device_are_rejected_not_read(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    os.mkfifo(src / "pipe.fits")  # reading it would block forever
    os.symlink("/dev/zero", src / "zero.fits")  # reading it would never end
    shutil.copy(sample_files()[0], src / "good.fits.gz")
    summary = ingest([src], tmp_path / "store", grid="lamost")
    assert (summary.accepted, summary.rejected) == (1, 2)
    reasons = dict(zip(*[SpectrumStore.open(tmp_path / "store").rejects[c].tolist()
                         for c in ("file", "reason")], strict=True))
    assert "not a regular file" in reasons[str(src / "pipe.fits")]
    assert "not a regular file" in reasons[str(src / "zero.fits")]


def test_unreadable_directory_is_a_reject(tmp_path, monkeypatch):
    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    shutil.copy(sample_files()[0], src / "locked" / "a.fits.gz")
    shutil.copy(sample_files()[1], src / "b.fits.gz")
    real_scandir = os.scandir

    def scandir(path="."):  # what an unreadable directory does for a non-root user
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    summary = ingest([src], tmp_path / "store", grid="lamost")
    assert (summary.accepted, summary.rejected) == (1, 1)
    rejects = SpectrumStore.open(tmp_path / "store").rejects
    assert rejects["file"].tolist() == [str(src / "locked")]
    assert "cannot be read" in rejects["reason"][0]
    again = ingest([src], tmp_path / "store", grid="lamost")  # not recorded twice
    assert again.rejected == 0
    assert len(SpectrumStore.open(tmp_path / "store").rejects) == 1


def test_resume_with_absolute_paths_and_copies_store_each_spectrum_once(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for f in sample_files()[:3]:
        shutil.copy(f, src / f.name)
    shutil.copy(sample_files()[0], src / "copy-of-first.fits.gz")  # byte-identical
    os.symlink(src / sample_files()[1].name, src / "link.fits.gz")  # same file, other path
    monkeypatch.chdir(tmp_path)
    first = ingest(["in"], "store", grid="lamost")
    assert first.accepted == 3
    assert first.duplicates == 1
    assert "identical copies" in str(first)
    second = ingest([str(src)], "store", grid="lamost")  # absolute this time
    assert second.files == 0
    assert second.skipped == 5
    s = SpectrumStore.open("store")
    assert len(s) == 3
    reasons = dict(zip(s.rejects["file"].tolist(), s.rejects["reason"].tolist(), strict=True))
    original = f"in/{sample_files()[0].name}"
    assert reasons["in/copy-of-first.fits.gz"].startswith(f"duplicate of {original}")


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="checks /proc")
def test_workers_die_with_their_parent(tmp_path):
    code = """
        import os, sys, time
        from pyspec.ingest import _worker_pool
        pool = _worker_pool(2)
        futures = [pool.submit(time.sleep, 60) for _ in range(2)]
        time.sleep(1.0)
        print(" ".join(str(p) for p in pool._processes), flush=True)
        time.sleep(60)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                            stdout=subprocess.PIPE, text=True)
    with proc:
        workers = [int(p) for p in proc.stdout.readline().split()]
        proc.kill()  # SIGKILL: no cleanup code runs in the parent
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in workers if _running(p)]
        time.sleep(0.1)
    assert not alive, f"workers {alive} outlived their parent"


def test_numba_cache_falls_back_to_a_private_directory(tmp_path, monkeypatch):
    import pyspec._numba_cache as nc

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(nc.tempfile, "gettempdir", lambda: str(tmp_path))
    writable = {"yes": False}
    real = nc._writable

    def fake(folder):  # site-packages and the user's cache are read-only
        return writable["yes"] and real(folder) if tmp_path not in folder.parents or \
            "cache" in folder.parts else real(folder)

    monkeypatch.setattr(nc, "_writable", fake)
    assert nc._choose() is True
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / f"pyspec-numba-cache-{os.getuid()}")
    # nothing writable at all: no disk cache, but the kernels still import and run
    bad = tmp_path / "file-not-dir"
    bad.write_text("")
    result = _run_python("""
        import numpy as np
        from pyspec import _numba_cache
        from pyspec.lines import _kernels
        assert _numba_cache.CACHE is False
        print(_kernels.median_continuum.__name__)
    """, env={**os.environ, "NUMBA_CACHE_DIR": str(bad / "sub")})
    assert result.returncode == 0, result.stderr


def test_first_astropy_read_in_a_process_rejects_truncation():
    code = f"""
        from pyspec.errors import FitsFormatError
        from pyspec.io import read_batch
        from pyspec.io._view import read_bytes
        data, _ = read_bytes({str(sample_files()[0])!r})
        cut = bytes(data[:len(data) - 100])
        for attempt in range(2):
            try:
                read_batch(cut, fast=False)
                print("loaded")
            except FitsFormatError as exc:
                print("rejected", "truncat" in str(exc))
    """
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["rejected True", "rejected True"]
