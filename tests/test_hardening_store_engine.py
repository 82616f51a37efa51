"""Issue 16 hardening of stores and engines: checksums, containment, bounded parts, atomic
replacement, permissions, concurrent readers, and the CLI's one-line errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest
from fuzz.harness import build_artefacts

import pyspec._integrity as integrity
from pyspec.cli import main
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.store import SpectrumStore


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_artefacts(tmp_path_factory.mktemp("artefacts"))


@pytest.fixture
def art(pristine, tmp_path):
    """A private copy of the artefacts (tests damage them)."""
    out = {}
    for name, path in pristine.items():
        dst = tmp_path / path.name
        (shutil.copytree if path.is_dir() else shutil.copy)(path, dst)
        out[name] = dst
    return out


def _flip(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def _resign(path, edit):
    info = integrity.loads_checked(path, legacy_versions=(1,))
    edit(info)
    path.write_bytes(integrity.dumps_checked(info))


# ----------------------------------------------------------------------------- stores

def test_flux_bit_flip_is_caught_by_verify_and_the_first_pass(art):
    _flip(art["store"] / "flux.f32", 4 * 140 * 30 + 3)  # row 30, in the second part
    store = SpectrumStore.open(art["store"])  # opening maps, it does not read the matrix
    with pytest.raises(IndexFormatError, match=r"flux.f32: rows 24\.\.47 fail their checksum"):
        store.verify()
    with pytest.raises(IndexFormatError, match="fail their checksum"):
        for _ in SpectrumStore.open(art["store"]).iter_chunks(7):
            pass


def test_old_part_with_a_compressed_member_is_refused(tmp_path):
    """The legacy reader's .npz parts (stores written before column sets)."""
    from pathlib import Path

    store = tmp_path / "store"
    shutil.copytree(Path(__file__).parent / "data" / "legacy_meta" / "store", store)
    part = store / "parts" / "part-000000.npz"
    arrays = integrity.read_npz(part)
    arrays["m_id"] = np.array(["x" * 1000] * 4)  # inflates 1000x in a savez_compressed file
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    part.write_bytes(buf.getvalue())
    with pytest.raises(IndexFormatError, match="compressed or oversized"):
        integrity.read_npz(part)
    store = SpectrumStore.open(store)
    with pytest.raises(IndexFormatError):  # the manifest's record catches it first
        _ = store.meta


def test_part_column_grown_past_its_record_is_refused(art):
    column = art["store"] / "parts" / "part-000000" / "c000.npy"
    column.write_bytes(column.read_bytes() + b"\0" * 4096)
    with pytest.raises(IndexFormatError, match="c000.npy"):
        SpectrumStore.open(art["store"]).verify()


def test_version_1_store_without_checksums_still_opens(tmp_path):
    from pathlib import Path

    path = tmp_path / "store"  # a store written before column sets, then before checksums
    shutil.copytree(Path(__file__).parent / "data" / "legacy_meta" / "store", path)
    manifest = json.loads((path / "manifest.json").read_text())
    for key in ("checksum", "checksums"):
        manifest.pop(key)
    manifest["version"] = 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    store = SpectrumStore.open(path)
    assert len(store.meta) == 10
    with pytest.raises(IndexFormatError, match="version-1 store has no checksums"):
        store.verify()


def test_huge_grid_is_refused_before_allocating(art):
    grid = {"kind": "linspace", "start": 6519.0, "stop": 6732.0, "n": 10**8, "name": None}
    tracemalloc.start()
    with pytest.raises(IndexFormatError, match="the grid would have 100000000 pixels"):
        integrity.grid_from_dict(grid, "grid.json")
    _resign(art["engine-hamming"] / "engine.json", lambda info: info.update(grid=grid))
    with pytest.raises(IndexFormatError, match="pixels"):
        Engine.open(art["engine-hamming"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20  # the grid alone would be 800 MB (measured peak: ~1 MB)


# ----------------------------------------------------------------------------- engines

def test_column_file_outside_meta_is_never_read(art, tmp_path):
    secret = tmp_path / "secret.npy"
    np.save(secret, np.array([b"secret"] * 48))
    meta = art["engine-hamming"] / "meta"
    saved = (meta / "columns.json").read_bytes(), \
        (art["engine-hamming"] / "engine.json").read_bytes()
    for name in ("../../secret.npy", str(secret), "../c000.npy"):
        # a re-signed column set, re-recorded in a re-signed engine.json: only the
        # reader's own check of the name stands between it and the file
        integrity.atomic_write(meta / "columns.json", saved[0])
        _resign(meta / "columns.json",
                lambda info, name=name: info["columns"][0].update(file=name))
        record = integrity.file_record(meta / "columns.json")
        _resign(art["engine-hamming"] / "engine.json",
                lambda info, record=record: info["checksums"].update(
                    {"meta/columns.json": record}))
        with pytest.raises(IndexFormatError, match="not a plain cNNN.npy name"):
            Engine.open(art["engine-hamming"])
        (art["engine-hamming"] / "engine.json").write_bytes(saved[1])


def test_old_engine_column_file_outside_meta_is_never_read(tmp_path):
    from pathlib import Path

    engine = tmp_path / "legacy"
    shutil.copytree(Path(__file__).parent / "data" / "legacy_meta", engine)
    engine = engine / "engine"
    secret = tmp_path / "secret.npy"
    np.save(secret, np.array([b"secret"] * 10))
    for name in ("../../secret.npy", str(secret), "../col000.npy"):
        def edit(info, name=name):
            info["meta_columns"][0]["file"] = name
            info["checksums"] = {("meta/" + name if k == "meta/col000.npy" else k): v
                                 for k, v in info["checksums"].items()}
        shutil.copy(engine / "engine.json", tmp_path / "saved.json")
        _resign(engine / "engine.json", edit)
        with pytest.raises(IndexFormatError, match="not a plain colNNN.npy name"):
            Engine.open(engine)
        shutil.copy(tmp_path / "saved.json", engine / "engine.json")


def test_metadata_column_bit_flip_is_caught(art):
    _flip(art["engine-hamming"] / "meta" / "c000.npy")
    engine = Engine.open(art["engine-hamming"])  # header intact: opens
    with pytest.raises(IndexFormatError, match="c000.npy: metadata column checksum mismatch"):
        engine.meta_rows(np.arange(3))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        engine.verify()


def test_rerank_array_records_are_checked_by_verify(art):
    engine = Engine.open(art["engine-hamming"])
    assert engine.rerank_space == "pca"
    _resign(art["engine-hamming"] / "engine.json",
            lambda info: info["checksums"]["rerank/pca_projection.npy"].update(data_crc32="0"))
    engine = Engine.open(art["engine-hamming"])  # the data is read lazily
    with pytest.raises(IndexFormatError, match="pca_projection.npy: re-rank array checksum"):
        engine.verify()


def test_store_fingerprint_types_are_checked_on_open(art):
    _resign(art["engine-hamming"] / "engine.json",
            lambda info: info["store_fingerprint"].update(manifest_sha256=100000000))
    with pytest.raises(IndexFormatError, match="invalid store fingerprint"):
        Engine.open(art["engine-hamming"])


def test_edited_engine_json_is_caught(art):
    path = art["engine-pq"] / "engine.json"
    path.write_text(path.read_text().replace('"n_spectra": 48', '"n_spectra": 47'))
    with pytest.raises(IndexFormatError, match="engine description checksum mismatch"):
        Engine.open(art["engine-pq"])


def test_rerank_below_k_is_an_error(art):
    engine = Engine.open(art["engine-hamming"])
    flux = np.asarray(SpectrumStore.open(art["store"]).flux[:1])
    with pytest.raises(ValueError, match=r"rerank \(3\) must be >= k \(5\)"):
        engine.query(flux[0], k=5, rerank=3)


def _rewrite(src, out, **kwargs):
    engine = Engine.open(src)
    return Engine.write(out, engine.model, engine.index, engine.meta, engine.grid,
                        preprocessing=engine.info["preprocessing"], **kwargs)


def test_engine_files_follow_the_umask(art, tmp_path):
    old = os.umask(0o022)
    try:
        _rewrite(art["engine-hamming"], tmp_path / "shared-engine")
    finally:
        os.umask(old)
    for p in [tmp_path / "shared-engine", *(tmp_path / "shared-engine").rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))


def test_overwrite_keeps_the_old_engine_until_the_new_one_is_complete(art, tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "engine"
    _rewrite(art["engine-hamming"], out)
    before = integrity.file_record(out / "engine.json")
    real = integrity.replace_dir
    seen = []

    def check_then_replace(tmp, dst):
        seen.append(integrity.file_record(dst / "engine.json") == before)
        Engine.open(dst)  # the old engine is whole when the new one is swapped in
        assert (tmp / "engine.json").exists()
        real(tmp, dst)

    monkeypatch.setattr(integrity, "replace_dir", check_then_replace)
    _rewrite(art["engine-hamming"], out, overwrite=True)
    assert seen == [True]
    monkeypatch.undo()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Engine.open(out).index.__class__, "save", fail)
    with pytest.raises(OSError, match="No space"):
        _rewrite(art["engine-hamming"], out, overwrite=True)
    assert Engine.open(out).verify()["columns"] > 0  # the old engine is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_temp_dirs_of_killed_builds_are_cleaned(art, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".engine.tmp-{dead}-abc123"
    (stale / "meta").mkdir(parents=True)
    live = tmp_path / f".engine.tmp-{os.getppid()}-xyz"  # a live process: left alone
    live.mkdir()
    _rewrite(art["engine-hamming"], tmp_path / "engine")
    assert not stale.exists()
    assert live.exists()


def test_engine_one_writer_seven_readers(art, tmp_path):
    """A writer rebuilds the engine directory in place while 7 readers open and query it and
    query one shared Engine object: every result equals the serial one."""
    out = tmp_path / "engine"
    _rewrite(art["engine-hamming"], out)
    probe = np.asarray(SpectrumStore.open(art["store"]).flux[:4])

    def answer(engine):
        res = engine.search_prepared(probe, 5, num_threads=1)
        meta = engine.meta_rows(res.ids[res.ids >= 0])
        return res.ids.tobytes() + res.distances.tobytes() + str(meta["id"].tolist()).encode()

    expected = answer(Engine.open(out))
    shared = Engine.open(out)
    done = threading.Event()
    errors, results = [], []

    def writer():
        try:
            for _ in range(4):
                _rewrite(art["engine-hamming"], out, overwrite=True)
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(i):
        try:
            while True:
                finished = done.is_set()
                results.append(answer(Engine.open(out) if i % 2 else shared))
                if finished:
                    return
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(7)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) >= 7
    assert all(r == expected for r in results)


# ----------------------------------------------------------------------------- CLI

def test_cli_verify(art, capsys):
    paths = [str(art[k]) for k in ("store", "engine-pq", "model-pil", "index-graph")]
    assert main(["verify", *paths]) == 0
    out = capsys.readouterr().out
    assert out.count(": OK (") == 4
    _flip(art["store"] / "ivar.f32", 100)
    assert main(["verify", *paths]) == 1
    out = capsys.readouterr().out
    assert f"{art['store']}: FAILED: " in out
    assert "1 of 4 failed verification" in out


def test_cli_errors_are_one_typed_line(art, capsys, monkeypatch):
    (art["store"] / "parts" / "part-000001" / "columns.json").write_bytes(b"{not json")
    assert main(["build", str(art["store"]), "--out", str(art["store"].parent / "e"),
                 "--model", "lsh", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyspec build: error: IndexFormatError: ")
    assert err.count("\n") == 1

    import pyspec.commands.info as info

    def boom(args):
        raise RuntimeError("internal\nfailure")

    monkeypatch.setattr(info, "run", boom)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err == ("pyspec info: error: RuntimeError: internal failure (unexpected; run "
                   "`pyspec -v ...` for the traceback)\n")
    with pytest.raises(RuntimeError):
        main(["-v", "info"])


def test_store_writes_do_not_follow_planted_symlinks(tmp_path):
    from pyspec.preprocess import WavelengthGrid

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "store"
    (out / "parts").mkdir(parents=True)
    for name in ("parts/part-000000.npz.tmp", "manifest.json.tmp", "grid.json.tmp"):
        os.symlink(victim, out / name)  # the names the writer used to write through
    with SpectrumStore.create(out, WavelengthGrid.preset("halpha-140"), append=True) as w:
        w.append(np.ones((2, 140)), np.ones((2, 140)), [{"id": "a"}, {"id": "b"}])
    assert victim.read_text() == "precious"
    assert len(SpectrumStore.open(out)) == 2


@pytest.mark.parametrize(("key", "value"), [("rest_frame", 2**63), ("to_vacuum", None),
                                            ("min_coverage", 1e300),
                                            ("max_masked_fraction", True)])
def test_preprocessing_settings_keep_their_types(art, key, value):
    _resign(art["engine-hamming"] / "engine.json",
            lambda info: info["preprocessing"].update({key: value}))
    engine = Engine.open(art["engine-hamming"])  # search needs no preprocessing
    with pytest.raises(IndexFormatError, match="invalid preprocessing settings"):
        _ = engine.preprocessor
