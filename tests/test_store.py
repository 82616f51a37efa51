"""SpectrumStore: round trip, append, resume after an interruption, damaged stores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import pyspec
from pyspec._integrity import dumps_checked
from pyspec.errors import IndexFormatError
from pyspec.preprocess import Preprocessor, WavelengthGrid
from pyspec.store import SpectrumStore

GRID = WavelengthGrid.preset("halpha-140")


def rows(n, start=0, **extra):
    return [{"id": f"s{start + i}", "file": f"f{start + i}.fits", "ra": 10.0 + i, "dec": -1.0,
             "class": "STAR", "subclass": None, "z": 0.001 * i, "snr_r": math.nan,
             "vacuum": True if i % 2 else None, "layout": "lamost-C", **extra}
            for i in range(n)]


def test_round_trip(tmp_path, rng):
    flux = rng.normal(size=(7, 140)).astype(np.float32)
    ivar = rng.uniform(size=(7, 140)).astype(np.float32)
    pre = Preprocessor(GRID).to_dict()
    with SpectrumStore.create(tmp_path / "s", GRID, pre) as w:
        w.append(flux[:3], ivar[:3], rows(3, n_interpolated=4))
        w.reject("bad.fits", "truncated file")
        w.append(flux[3:], ivar[3:], rows(4, 3, n_interpolated=0))
    s = SpectrumStore.open(tmp_path / "s")
    assert pyspec.SpectrumStore is SpectrumStore
    assert len(s) == 7
    assert s.grid == GRID
    assert s.preprocessing == pre
    assert isinstance(s.flux, np.memmap)
    assert not s.flux.flags.writeable
    np.testing.assert_array_equal(s.flux, flux)
    np.testing.assert_array_equal(s.ivar, ivar)
    assert s.meta["id"].tolist() == [f"s{i}" for i in range(7)]
    np.testing.assert_array_equal(s.meta["ra"], [10, 11, 12, 10, 11, 12, 13])
    assert s.meta["n_interpolated"].tolist() == [4, 4, 4, 0, 0, 0, 0]
    assert s.meta["vacuum"].tolist() == [-1, 1, -1, -1, 1, -1, 1]
    assert np.isnan(s.meta["snr_r"]).all()
    assert s.meta["subclass"].tolist() == [""] * 7
    assert s.rejects["file"].tolist() == ["bad.fits"]
    assert s.rejects["reason"].tolist() == ["truncated file"]
    assert s.preprocessor.to_dict() == pre
    chunks = list(s.iter_chunks(3))
    assert [c[0] for c in chunks] == [0, 3, 6]
    np.testing.assert_array_equal(np.vstack([c[1] for c in chunks]), flux)


def test_store_without_anything(tmp_path):
    with SpectrumStore.create(tmp_path / "n", GRID):
        pass
    s = SpectrumStore.open(tmp_path / "n")
    assert len(s) == 0
    assert {"id", "file", "ra", "dec", "class", "z", "snr_r", "vacuum"} <= set(s.meta.colnames)
    assert s.rejects.colnames == ["file", "reason"]


def test_empty_store(tmp_path):
    with SpectrumStore.create(tmp_path / "e", "lamost") as w:
        w.reject("x.fits", "random bytes")
    s = SpectrumStore.open(tmp_path / "e")
    assert len(s) == 0
    assert s.flux.shape == (0, 3921)
    assert len(s.meta) == 0
    assert len(s.rejects) == 1
    assert list(s.iter_chunks(10)) == []


def test_interrupted_store_never_opens_and_resumes(tmp_path, rng):
    flux = rng.normal(size=(5, 140)).astype(np.float32)
    path = tmp_path / "s"
    w = SpectrumStore.create(path, GRID)
    w.append(flux[:2], flux[:2], rows(2))
    w.flush()  # committed: matrix rows fsynced, metadata part renamed into place
    w.append(flux[2:3], flux[2:3], rows(1, 2))  # buffered only
    w.reject("r.fits", "bad")
    # killed here: the manifest was never written
    with pytest.raises(IndexFormatError, match="interrupted"):
        SpectrumStore.open(path)
    # simulate a kill during the next chunk: half-written rows after the last
    # committed part and a metadata part that never got renamed into place
    with open(path / "flux.f32", "ab") as fh:
        fh.write(b"\0" * 140 * 4 + b"\1\2")
    (path / "parts" / "part-000002.npz.tmp").write_bytes(b"PK\3\4 partial")
    w2 = SpectrumStore.create(path, GRID, append=True)
    assert len(w2) == 2  # the buffered row and reject died with w; their inputs get redone
    assert w2.done_files() == {"f0.fits", "f1.fits"}
    w2.append(flux[2:], flux[2:], rows(3, 2))
    w2.close()
    assert not list((path / "parts").glob("*.tmp"))
    s = SpectrumStore.open(path)
    np.testing.assert_array_equal(s.flux, flux)
    assert s.meta["id"].tolist() == ["s0", "s1", "s2", "s3", "s4"]


def test_exception_in_writer_block_leaves_previous_state(tmp_path, rng):
    flux = rng.normal(size=(4, 140)).astype(np.float32)
    with SpectrumStore.create(tmp_path / "s", GRID) as w:
        w.append(flux[:2], flux[:2], rows(2))
    def killed_while_appending() -> None:
        with SpectrumStore.create(tmp_path / "s", GRID, append=True, rows_per_part=1) as w:
            w.append(flux[2:], flux[2:], rows(2, 2))  # committed at once (1 row per part)
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        killed_while_appending()
    s = SpectrumStore.open(tmp_path / "s")  # the last complete state: 2 rows
    assert len(s) == 2
    assert len(s.meta) == 2
    with SpectrumStore.create(tmp_path / "s", GRID, append=True) as w:  # resume keeps them
        assert len(w) == 4
    with pytest.raises(ValueError, match="rows_per_part"):
        SpectrumStore.create(tmp_path / "s", GRID, append=True, rows_per_part=0)
    assert len(SpectrumStore.open(tmp_path / "s")) == 4


def test_errors(tmp_path, rng):
    with SpectrumStore.create(tmp_path / "s", GRID, {"a": 1}):
        pass
    with pytest.raises(FileExistsError, match="append=True"):
        SpectrumStore.create(tmp_path / "s", GRID)
    with pytest.raises(ValueError, match="grid"):
        SpectrumStore.create(tmp_path / "s", "lamost", {"a": 1}, append=True)
    with pytest.raises(ValueError, match="preprocessing"):
        SpectrumStore.create(tmp_path / "s", GRID, {"a": 2}, append=True)
    w = SpectrumStore.create(tmp_path / "s", GRID, {"a": 1}, append=True)
    with pytest.raises(ValueError, match=r"shape \(n, 140\)"):
        w.append(np.zeros((2, 10)), np.zeros((2, 10)), rows(2))
    with pytest.raises(ValueError, match="metadata rows"):
        w.append(np.zeros((2, 140)), np.zeros((2, 140)), rows(3))
    bad = np.zeros((2, 140))
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values in rows \[1\]"):
        w.append(bad, np.zeros((2, 140)), rows(2))
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.reject("x", "y")
    with pytest.raises(FileNotFoundError):
        SpectrumStore.open(tmp_path / "nope")
    # damaged: matrix shorter than the manifest says
    with SpectrumStore.create(tmp_path / "d", GRID) as w:
        w.append(np.ones((3, 140)), np.ones((3, 140)), rows(3))
    with open(tmp_path / "d" / "flux.f32", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(IndexFormatError, match="expected at least"):
        SpectrumStore.open(tmp_path / "d")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["version"] = 99
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):  # edited by hand
        SpectrumStore.open(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").write_bytes(dumps_checked(manifest))
    with pytest.raises(IndexFormatError, match="version"):  # a future, valid store
        SpectrumStore.open(tmp_path / "s")


def test_append_table_rows(tmp_path, rng):
    from astropy.table import Table

    t = Table({"id": ["a", "b"], "z": [0.1, 0.2], "extra": [1.5, 2.5]})
    with SpectrumStore.create(tmp_path / "s", GRID) as w:
        w.append(np.zeros((2, 140)), np.ones((2, 140)), t)
    s = SpectrumStore.open(tmp_path / "s")
    assert s.meta["extra"].tolist() == [1.5, 2.5]
    assert s.meta["id"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="chunk_size"):
        list(s.iter_chunks(0))


def test_extra_columns_that_differ_between_parts(tmp_path):
    with SpectrumStore.create(tmp_path / "s", GRID) as w:
        w.append(np.zeros((2, 140)), np.ones((2, 140)),
                 [{"id": "a", "object": None, "ivar_known": None, "score": 1.5},
                  {"id": "b", "object": None, "ivar_known": None, "score": None}])
        w.append(np.zeros((2, 140)), np.ones((2, 140)),
                 [{"id": "c", "object": "alpha Lyr", "ivar_known": False, "score": "n/a"},
                  {"id": "d", "object": None, "ivar_known": True, "score": 2.0}])
    m = SpectrumStore.open(tmp_path / "s").meta
    assert m["object"].tolist() == ["", "", "alpha Lyr", ""]
    assert m["ivar_known"].tolist() == [-1, -1, 0, 1]  # -1 = missing
    assert m["score"].tolist() == ["1.5", "nan", "n/a", "2.0"]  # mixed types become text
