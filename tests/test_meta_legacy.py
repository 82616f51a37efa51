"""Stores and engines written before the one metadata format open, verify and answer as before.

The fixture ``tests/data/legacy_meta`` was written by pyspec main ca91938
(``tests/data/make_legacy_meta.py``): a store with ``.npz`` parts (one of
rejects only, columns that come and go, non-ASCII text) and an engine with
``meta/colNNN.npy`` columns, plus what the old code read back from them. (To
regenerate it, run that script with the interpreter of a pyspec checkout at
ca91938; the tests read the committed files only, so they do not depend on what
else is installed on the machine.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.store import SpectrumStore

DATA = Path(__file__).parent / "data"


@pytest.fixture
def legacy(tmp_path):
    dst = tmp_path / "legacy"
    shutil.copytree(DATA / "legacy_meta", dst)
    return dst


def _expected(legacy: Path) -> dict:
    return json.loads((legacy / "expected.json").read_text())


def _check_table(table, record: list) -> None:
    """``table`` holds what the old code read: [name, dtype, unit, values] per column."""
    assert table.colnames == [name for name, *_ in record]
    for name, dtype, unit, want in record:
        col = table[name]
        assert col.dtype.str == dtype, name
        assert (None if col.unit is None else str(col.unit)) == unit, name
        values = [v if not isinstance(v, float) or np.isfinite(v) else repr(v)
                  for v in col.tolist()]
        assert values == want, name


def test_old_store_opens_verifies_and_reads_as_before(legacy) -> None:
    store = SpectrumStore.open(legacy / "store")
    assert store.manifest["version"] == 2
    counts = store.verify()
    assert counts["rows"] == 10
    assert counts["parts"] == 4
    expected = _expected(legacy)
    _check_table(store.meta, expected["store_meta"])
    _check_table(store.rejects, expected["rejects"])
    rows = np.array([9, 0, 4])
    picked = store.meta_rows(rows)
    for name in store.meta.colnames:
        np.testing.assert_array_equal(picked[name], store.meta[name][rows])


def test_old_engine_opens_verifies_and_answers_as_before(legacy) -> None:
    engine = Engine.open(legacy / "engine")
    assert engine.info["version"] == 2
    engine.verify()
    expected = _expected(legacy)
    _check_table(engine.meta, expected["engine_meta"])
    _check_table(engine.meta_rows(np.array([7, 0, 3])), expected["engine_meta_rows"])
    store = SpectrumStore.open(legacy / "store")
    res = engine.search_prepared(np.asarray(store.flux)[expected["query_rows"]], 4, num_threads=1)
    assert res.ids.tolist() == expected["search_ids"]
    np.testing.assert_array_equal(res.distances, expected["search_distances"])


def test_appending_to_an_old_store_adds_new_parts_after_the_old(legacy) -> None:
    store = SpectrumStore.open(legacy / "store")
    before = store.meta
    with SpectrumStore.create(legacy / "store", store.grid, store.preprocessing,
                              append=True) as writer:
        assert "dir/f3.fits" in writer.done_files()
        assert "bad1.fits" in writer.done_files()
        assert writer.content_hashes()["h2"] == "dir/f2.fits"
        writer.append(np.ones((2, 140)), np.ones((2, 140)),
                      [{"id": "new0", "file": "new0.fits", "note": "ü"}, {"id": "new1"}])
        writer.reject("new-bad.fits", "empty")
    grown = SpectrumStore.open(legacy / "store")
    assert grown.manifest["version"] == 3
    assert (legacy / "store" / "parts" / "part-000004" / "columns.json").is_file()
    assert (legacy / "store" / "parts" / "part-000000.npz").is_file()
    grown.verify()
    meta = grown.meta
    assert len(meta) == 12
    assert meta["id"].tolist()[-2:] == ["new0", "new1"]
    for name in before.colnames:
        np.testing.assert_array_equal(meta[name][:10], before[name], err_msg=name)
    assert meta["note"].tolist()[-2:] == ["ü", ""]
    assert grown.rejects["file"].tolist()[-1] == "new-bad.fits"


def test_an_engine_built_over_an_old_store_is_written_in_the_new_format(legacy, tmp_path) -> None:
    store = SpectrumStore.open(legacy / "store")
    old = Engine.open(legacy / "engine")
    engine = Engine.build(store, old.model, out=tmp_path / "engine")
    assert engine.info["version"] == 3
    assert (tmp_path / "engine" / "meta" / "columns.json").is_file()
    assert not list((tmp_path / "engine" / "meta").glob("col*.npy"))
    engine.verify()
    assert engine.meta.colnames == old.meta.colnames
    for name in old.meta.colnames:  # the same values (text widths now count characters)
        np.testing.assert_array_equal(engine.meta[name], old.meta[name], err_msg=name)
        np.testing.assert_array_equal(engine.meta[name], store.meta[name], err_msg=name)
    probe = np.asarray(store.flux)[[1, 6]]
    a, b = engine.search_prepared(probe, 4), old.search_prepared(probe, 4)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_damaged_old_files_raise_typed_errors(legacy) -> None:
    part = legacy / "store" / "parts" / "part-000003.npz"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x08
    part.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="part-000003.npz"):
        _ = SpectrumStore.open(legacy / "store").meta
    column = legacy / "engine" / "meta" / "col000.npy"
    data = bytearray(column.read_bytes())
    data[-1] ^= 0x10
    column.write_bytes(bytes(data))
    engine = Engine.open(legacy / "engine")
    with pytest.raises(IndexFormatError, match="col000.npy: metadata column checksum mismatch"):
        engine.meta_rows(np.arange(3))
    column.write_bytes(bytes(data[:-5]))
    with pytest.raises(IndexFormatError, match="col000.npy"):
        Engine.open(legacy / "engine")
