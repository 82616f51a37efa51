"""The ingest job and ``pyspec ingest``: accounting, bad inputs, resume, workers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from io_builders import write_bad_inputs, write_desi_coadd, write_lamost_image

import pyspec.ingest as ingest_mod
from pyspec.cli import main
from pyspec.data import sample_files
from pyspec.errors import IndexFormatError
from pyspec.ingest import ingest, iter_sources
from pyspec.store import SpectrumStore


@pytest.fixture
def inputs(tmp_path, rng):
    """12 real sample files (all four LAMOST layouts), the six bad inputs, one DESI file."""
    src = tmp_path / "in"
    (src / "real").mkdir(parents=True)
    files = sample_files()
    chosen = files[:4] + files[-8:]  # obsid-named, DR1/DR2, DR7/DR8/DR9/DR10 files
    for f in chosen:
        shutil.copy(f, src / "real" / f.name)
    good = tmp_path / "good.fits"
    write_lamost_image(good, "C", rng)
    bad = write_bad_inputs(src / "bad", good, rng)
    write_desi_coadd(src / "coadd-1.fits", rng, nspec=3)
    return src, bad


def test_accounting_with_bad_inputs(tmp_path, inputs):
    src, bad = inputs
    out = tmp_path / "store"
    summary = ingest([src], out, grid="lamost", chunk_size=5)
    assert summary.files == 12 + 6 + 1
    assert summary.seen == 12 + 6 + 3  # the DESI file holds 3 spectra
    assert summary.seen == summary.accepted + summary.rejected
    s = SpectrumStore.open(out)
    assert len(s) == summary.accepted == len(s.meta)
    assert len(s.rejects) == summary.rejected
    reasons = dict(zip(s.rejects["file"].tolist(), s.rejects["reason"].tolist(), strict=False))
    expected = {"truncated": "truncated", "random": "not a FITS file", "empty": "empty",
                "truncated_gz": "truncated gzip", "wrong_shape": "shape (2, 3900)",
                "all_nan": "no finite values"}
    for kind, text in expected.items():
        assert text in reasons[str(bad[kind])], (kind, reasons[str(bad[kind])])
    # every input file is accounted for, as stored rows or as rejects
    seen_files = set(s.meta["file"].tolist()) | set(s.rejects["file"].tolist())
    assert seen_files == set(iter_sources([src]))
    assert np.all(np.isfinite(s.flux))
    assert s.flux.shape[1] == 3921
    ok = s.meta["layout"] != "desi-coadd"
    np.testing.assert_allclose(np.linalg.norm(s.flux[np.flatnonzero(ok)], axis=1), 1.0,
                               rtol=1e-5)
    desi = s.meta[s.meta["layout"] == "desi-coadd"]
    assert sorted(desi["id"].tolist()) == [str(39627000000000001 + i) for i in range(3)]
    # re-running skips everything already stored or rejected
    again = ingest([src], out, grid="lamost")
    assert again.skipped == 19
    assert again.seen == 0
    assert again.n_spectra_total == len(s)


def test_interrupted_run_resumes_to_the_same_store(tmp_path, inputs, monkeypatch):
    src, _ = inputs
    full = ingest([src / "real"], tmp_path / "full", files_per_task=2)
    real_process = ingest_mod.process_files
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_process(*args, **kwargs)

    monkeypatch.setattr(ingest_mod, "process_files", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest([src / "real"], tmp_path / "part", files_per_task=2, chunk_size=3)
    with pytest.raises(IndexFormatError, match="interrupted"):
        SpectrumStore.open(tmp_path / "part")
    monkeypatch.setattr(ingest_mod, "process_files", real_process)
    resumed = ingest([src / "real"], tmp_path / "part", files_per_task=2, chunk_size=3)
    assert resumed.skipped > 0
    assert resumed.skipped + resumed.files == 12
    a, b = SpectrumStore.open(tmp_path / "full"), SpectrumStore.open(tmp_path / "part")
    assert a.meta["id"].tolist() == b.meta["id"].tolist()
    np.testing.assert_array_equal(a.flux, b.flux)
    assert len(a) == full.accepted


def test_workers_give_the_same_store(tmp_path, inputs):
    src, _ = inputs
    one = ingest([src], tmp_path / "one", workers=1, files_per_task=3)
    two = ingest([src], tmp_path / "two", workers=2, files_per_task=3)
    assert (one.accepted, one.rejected) == (two.accepted, two.rejected)
    a, b = SpectrumStore.open(tmp_path / "one"), SpectrumStore.open(tmp_path / "two")
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.ivar, b.ivar)
    assert a.meta["file"].tolist() == b.meta["file"].tolist()
    assert a.rejects["reason"].tolist() == b.rejects["reason"].tolist()


def test_sources_file_lists_and_missing(tmp_path, inputs):
    src, _ = inputs
    real = sorted((src / "real").iterdir())
    listing = tmp_path / "files.txt"
    listing.write_text("# two spectra\n" + "\n".join(str(p) for p in real[:2]) + "\n\n")
    assert list(iter_sources([listing])) == [str(p) for p in real[:2]]
    assert list(iter_sources([real[0]])) == [str(real[0])]
    twice = ingest([listing, listing], tmp_path / "twice")
    assert (twice.files, twice.skipped) == (2, 2)  # a file listed twice is read once
    with pytest.raises(FileNotFoundError, match="nope"):
        list(iter_sources([tmp_path / "nope"]))
    with pytest.raises(ValueError, match="workers"):
        ingest([listing], tmp_path / "s", workers=0)


def test_cli_ingest(tmp_path, inputs, capsys):
    src, _ = inputs
    out = tmp_path / "cli_store"
    rc = main(["ingest", str(src / "real"), str(src / "bad"), "--out", str(out), "--grid",
               "pq-2A", "--normalise", "minmax", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "18 seen = " in captured.out
    assert "rejected" in captured.err
    s = SpectrumStore.open(out)
    assert s.grid.name == "pq-2A"
    assert s.preprocessing["normalise"] == "minmax"
    assert len(s) + len(s.rejects) == 18
    assert s.flux[:].min() >= 0.0
    assert s.flux[:].max() <= 1.0
    # appending with different settings is a one-line user error
    rc = main(["ingest", str(src / "real"), "--out", str(out), "--grid", "lamost", "--quiet"])
    assert rc == 1
    assert "use the same --grid" in capsys.readouterr().err
    rc = main(["ingest", str(tmp_path / "missing"), "--out", str(out), "--quiet"])
    assert rc == 1


def _distinct_copies(files, n, folder):
    """n files cycling through ``files``: the same spectra, each file's bytes distinct (the
    gzip header's mtime), so neither path nor content deduplication merges them."""
    import gzip

    for i in range(n):
        f = files[i % len(files)]
        data = gzip.decompress(f.read_bytes())
        (folder / f"{i:04d}-{f.name}").write_bytes(gzip.compress(data, mtime=i + 1))


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_spectra(tmp_path):
    """Chunked writes: 4x the files must not need 4x the memory (tracemalloc peak)."""
    import tracemalloc

    files = sample_files()[:12]
    peaks = {}
    for n in (24, 96):
        src = tmp_path / f"in{n}"
        src.mkdir()
        _distinct_copies(files, n, src)
        ingest([src], tmp_path / f"warm{n}", chunk_size=8, files_per_task=4)  # imports, JIT
        tracemalloc.start()
        ingest([src], tmp_path / f"s{n}", chunk_size=8, files_per_task=4)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(SpectrumStore.open(tmp_path / f"s{n}")) > 0.8 * n
    # measured: 24 files 0.73 MB, 96 files 0.75 MB (the matrix itself grows 4x on disk)
    assert peaks[96] < 1.3 * peaks[24], peaks


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path):
    """A real ``kill -9`` of ``pyspec ingest``: no complete store, and a re-run finishes it."""
    import signal
    import subprocess
    import sys
    import time

    files = sample_files()
    src = tmp_path / "in"
    src.mkdir()
    _distinct_copies(files, 240, src)
    out = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "pyspec.cli", "ingest", str(src), "--out",
                             str(out), "--chunk-size", "8", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=tmp_path)  # import the installed package, not the checkout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "parts").glob("part-[0-9]*"))) >= 2:
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL) if killed else None
    proc.wait()
    assert killed or proc.returncode == 0  # a crash on start would prove nothing
    if killed:
        with pytest.raises(IndexFormatError, match="interrupted"):
            SpectrumStore.open(out)
    summary = ingest([src], out, chunk_size=8)
    s = SpectrumStore.open(out)
    stored = s.meta["file"].tolist()
    assert len(stored) == len(set(stored)) == len(s)  # nothing stored twice
    assert len(set(stored) | set(s.rejects["file"].tolist())) == 240
    assert summary.n_spectra_total == len(s)


def _die(*args, **kwargs):
    import os

    os._exit(3)  # a worker killed from outside (OOM killer, segfault)


def test_dead_worker_fails_loudly_and_leaves_a_resumable_store(tmp_path, inputs, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    src, _ = inputs
    monkeypatch.setattr(ingest_mod, "process_files", _die)
    with pytest.raises(BrokenProcessPool):
        ingest([src / "real"], tmp_path / "s", workers=2)
    with pytest.raises(IndexFormatError, match="interrupted"):
        SpectrumStore.open(tmp_path / "s")
    monkeypatch.undo()
    assert ingest([src / "real"], tmp_path / "s", workers=2).files == 12
