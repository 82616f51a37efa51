"""Store parts and engine metadata in the one column-set format: layout, atomic appends, damage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyspec._integrity as integrity
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import ColumnSet
from pyspec.models.lsh import LSHHasher
from pyspec.preprocess import Preprocessor, WavelengthGrid
from pyspec.store import SpectrumStore

GRID = WavelengthGrid.preset("halpha-140")


def _rows(a: int, b: int) -> list[dict]:
    return [{"id": f"s{i}", "file": f"f{i}.fits", "z": 0.1 * i, "ra": float(i),
             "class": "STAR" if i % 2 else "QSO", **({"n_obs": i} if i > 5 else {})}
            for i in range(a, b)]


def _write(path, n: int = 12, rows_per_part: int = 4) -> np.ndarray:
    flux = np.random.default_rng(0).normal(size=(n, 140)).astype(np.float32)
    with SpectrumStore.create(path, GRID, Preprocessor(GRID).to_dict(),
                              rows_per_part=rows_per_part) as w:
        for a in range(0, n, 3):
            w.append(flux[a:a + 3], np.ones((min(3, n - a), 140)), _rows(a, min(a + 3, n)))
        w.reject("bad.fits", "no data")
    return flux


def test_store_parts_and_engine_meta_are_column_sets(tmp_path) -> None:
    flux = _write(tmp_path / "store")
    parts = sorted((tmp_path / "store" / "parts").iterdir())
    assert [p.name for p in parts] == ["part-000000", "part-000001", "part-000002"]
    first = ColumnSet(parts[0])
    assert first.attrs["row_start"] == 0
    assert first.n_rows == 6
    assert first.stored("id").dtype == np.dtype("S2")  # text as UTF-8 bytes
    assert first.specs["ra"].unit == "deg"
    last = ColumnSet(parts[-1])  # written by close(): the rejects only
    assert last.n_rows == 0
    assert last.attrs["rejects"] == [["bad.fits", "no data"]]
    store = SpectrumStore.open(tmp_path / "store")
    counts = store.verify()
    assert counts["parts"] == 3
    assert counts["rows"] == 12
    assert counts["columns"] > 3 * 16
    meta = store.meta
    assert meta["ra"].unit == "deg"
    assert meta["n_obs"].tolist()[5:8] == [0, 6, 7]
    assert store.meta_columns.colnames == meta.colnames
    picked = store.meta_rows([11, 2, 7], ["id", "z"])
    assert picked.colnames == ["id", "z"]
    assert picked["id"].tolist() == ["s11", "s2", "s7"]
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0).fit(flux),
                          out=tmp_path / "engine")
    assert sorted(p.name for p in (tmp_path / "engine" / "meta").glob("*.json")) == [
        "columns.json"]
    assert engine.info["checksums"]["meta/columns.json"] == integrity.file_record(
        tmp_path / "engine" / "meta" / "columns.json")
    for name in meta.colnames:
        assert engine.meta[name].dtype == meta[name].dtype, name
        np.testing.assert_array_equal(engine.meta[name], meta[name], err_msg=name)
    assert engine.meta["ra"].unit == "deg"
    assert engine.verify()["columns"] == len(meta.colnames)


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from pyspec.preprocess import Preprocessor, WavelengthGrid
    from pyspec.store import SpectrumStore

    real = os.rename
    def rename_then_die(tmp, out):
        if str(out).endswith(sys.argv[2]):  # killed with the part complete in its temp dir
            os.kill(os.getpid(), signal.SIGKILL)
        real(tmp, out)
    os.rename = rename_then_die
    grid = WavelengthGrid.preset("halpha-140")
    with SpectrumStore.create(sys.argv[1], grid, Preprocessor(grid).to_dict(), append=True,
                              rows_per_part=2) as w:
        for i in range(6):
            w.append(np.full((1, 140), i + 100.0), np.ones((1, 140)), [{"id": f"new{i}"}])
""")


def test_a_killed_append_leaves_the_store_openable_and_resumable(tmp_path) -> None:
    _write(tmp_path / "store")
    before = SpectrumStore.open(tmp_path / "store")
    manifest = (tmp_path / "store" / "manifest.json").read_bytes()
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path / "store"),
                           "part-000004"], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    parts = tmp_path / "store" / "parts"
    assert (parts / "part-000003").is_dir()
    assert not (parts / "part-000004").exists()
    assert list(parts.glob(".part-000004.tmp-*"))  # the interrupted part, never in place
    assert (tmp_path / "store" / "manifest.json").read_bytes() == manifest
    store = SpectrumStore.open(tmp_path / "store")  # the last complete state
    assert len(store) == 12
    store.verify()
    assert not SpectrumStore.open(tmp_path / "store").meta_rows([11])["id"][0].startswith("new")
    np.testing.assert_array_equal(store.meta["id"], before.meta["id"])
    with SpectrumStore.create(tmp_path / "store", GRID, Preprocessor(GRID).to_dict(),
                              append=True) as w:  # resume
        assert len(w) == 14  # the committed part-000003 (2 rows) is kept
        assert not list(parts.glob(".part-*"))  # the stale temporary directory is gone
        w.append(np.zeros((1, 140)), np.ones((1, 140)), [{"id": "after"}])
    grown = SpectrumStore.open(tmp_path / "store")
    grown.verify()
    assert grown.meta["id"].tolist()[12:] == ["new0", "new1", "after"]
    assert grown.flux[12, 0] == 100.0
    assert grown.flux[14, 0] == 0.0


def test_damaged_parts_raise_typed_errors(tmp_path) -> None:
    _write(tmp_path / "store")
    part = tmp_path / "store" / "parts" / "part-000001"
    column = part / "c000.npy"
    data = bytearray(column.read_bytes())
    data[-1] ^= 0x20
    column.write_bytes(bytes(data))
    store = SpectrumStore.open(tmp_path / "store")
    store.meta_rows([0], ["z"])  # another column of the part reads fine
    with pytest.raises(IndexFormatError, match="c000.npy: metadata column checksum mismatch"):
        _ = store.meta
    with pytest.raises(IndexFormatError, match="c000.npy"):
        SpectrumStore.open(tmp_path / "store").verify()
    column.write_bytes(bytes(data[:40]))
    with pytest.raises(IndexFormatError, match="c000.npy"):
        _ = SpectrumStore.open(tmp_path / "store").meta
    (part / "columns.json").write_text("{}")
    with pytest.raises(IndexFormatError, match="part-000001/columns.json"):
        _ = SpectrumStore.open(tmp_path / "store").meta
    os.remove(part / "columns.json")
    with pytest.raises(IndexFormatError, match="part-000001"):
        _ = SpectrumStore.open(tmp_path / "store").rejects
