"""The shared metadata-column module: conversions, checks and both containers."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from pyspec.errors import IndexFormatError
from pyspec.meta_columns import (
    ColumnFolder,
    check_column,
    column_crc,
    column_records,
    columns_from_rows,
    concat_columns,
    part_columns,
    part_keys,
    rows_from_columns,
    storable,
    write_column_folder,
)


def test_rows_round_trip_through_columns() -> None:
    rows = [{"id": "a", "z": 0.5, "vacuum": True, "flag": False, "n": 3, "note": "x"},
            {"id": "b", "z": None, "vacuum": None, "flag": None, "n": 4, "note": 7},
            {"id": None, "vacuum": False, "flag": True, "n": 5}]
    cols = columns_from_rows(rows)
    assert cols["vacuum"].tolist() == [1, -1, 0]
    assert cols["flag"].dtype == np.int8
    assert cols["n"].dtype == np.int64
    assert cols["note"].tolist() == ["x", "7", ""]  # mixed values become text
    back = rows_from_columns(Table(cols))
    assert [r["vacuum"] for r in back] == [True, None, False]
    assert [r["flag"] for r in back] == [False, None, True]
    again = columns_from_rows(back)
    assert again.keys() == cols.keys()
    for name, arr in cols.items():
        assert again[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(again[name], arr)


def test_concat_fills_missing_columns() -> None:
    one = columns_from_rows([{"id": "a", "extra": 1.5, "ok": True}])
    two = columns_from_rows([{"id": "b"}, {"id": "c"}])
    joined = concat_columns([(one, 1), (two, 2)])
    assert joined["id"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(joined["extra"], [1.5, np.nan, np.nan])
    assert joined["ok"].tolist() == [1, -1, -1]


def test_engine_folder_writes_reads_and_checks(tmp_path) -> None:
    meta = Table({"id": ["a", "bé", ""], "z": [0.1, 0.2, 0.3],
                  "m": MaskedColumn([1, 2, 3], mask=[False, True, False]),
                  "vec": np.zeros((3, 2))})
    meta["z"].unit = "km/s"
    schema = write_column_folder(meta, tmp_path / "meta")
    assert [c["name"] for c in schema] == ["id", "z", "m"]  # a 2-D column is not stored
    sums = column_records(tmp_path / "meta", schema)
    folder = ColumnFolder(tmp_path / "meta", schema, 3, sums)
    table = folder.rows(np.array([2, 0]))
    assert table["id"].tolist() == ["", "a"]
    assert table["z"].unit == "km/s"
    assert folder.rows(np.array([1]))["id"][0] == "bé"
    assert storable(meta["vec"]) is None
    arr, kind = storable(meta["id"])
    assert kind == "str"
    assert arr.dtype.kind == "S"
    assert column_crc(arr) == sums["meta/col000.npy"]["data_crc32"]
    np.save(tmp_path / "meta" / "col001.npy", np.array([0.1, 0.2, 0.4]))  # damaged data
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        ColumnFolder(tmp_path / "meta", schema, 3, sums).array("z")
    with pytest.raises(IndexFormatError, match="has shape"):
        ColumnFolder(tmp_path / "meta", schema, 4, sums)


def test_store_part_columns_are_checked() -> None:
    cols = columns_from_rows([{"id": "a"}, {"id": "b"}])
    part = {**part_keys(cols), "n_rows": np.array(2)}
    assert part_columns(part, "part")["id"].tolist() == ["a", "b"]
    with pytest.raises(IndexFormatError, match="column 'z' has shape"):
        part_columns({**part, "m_z": np.zeros(3)}, "part")
    with pytest.raises(IndexFormatError, match="dtype"):
        part_columns({**part, "m_z": np.zeros(2, complex)}, "part")
    with pytest.raises(IndexFormatError, match="expected"):
        check_column(np.zeros((2, 1)), 2, "f", "x", "z")
