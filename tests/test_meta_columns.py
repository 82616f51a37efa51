"""The one metadata format: value conversions, column sets on disk and the one reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

import pyspec._integrity as integrity
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import (
    ColumnSet,
    ColumnSetWriter,
    ColumnStack,
    InMemoryColumns,
    check_column,
    columns_from_rows,
    concat_columns,
    rows_from_columns,
    storable,
    write_stack,
    write_table,
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


def test_check_column_refuses_wrong_shapes_and_kinds() -> None:
    with pytest.raises(IndexFormatError, match="expected"):
        check_column(np.zeros((2, 1)), 2, "f", "x", "z")
    with pytest.raises(IndexFormatError, match="dtype"):
        check_column(np.zeros(2, complex), 2, "f", "x", "z")


# ----------------------------------------------------------------------------- one set

def _table() -> Table:
    meta = Table({"id": ["a", "bé", ""], "z": [0.1, 0.2, 0.3],
                  "m": MaskedColumn([1, 2, 3], mask=[False, True, False]),
                  "ok": [True, False, True], "raw": np.array([b"x", b"yy", b""]),
                  "vec": np.zeros((3, 2))})
    meta["z"].unit = "km/s"
    meta["id"].info.description = "an identifier"
    return meta


def test_set_round_trip_keeps_values_units_and_widths(tmp_path) -> None:
    meta = _table()
    record = write_table(meta, tmp_path / "set", attrs={"origin": "test"})
    assert record == integrity.file_record(tmp_path / "set" / "columns.json")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == [
        "c000.npy", "c001.npy", "c002.npy", "c003.npy", "c004.npy", "columns.json"]
    source = ColumnSet(tmp_path / "set", record)
    assert source.attrs == {"origin": "test"}
    assert source.n_rows == 3
    assert source.stored("id").dtype.kind == "S"  # text on disk as UTF-8 bytes
    stack = ColumnStack([source])
    assert stack.colnames == ["id", "z", "m", "ok", "raw"]  # a 2-D column is not stored
    back = stack.rows([2, 0, 1])
    assert back["id"].tolist() == ["", "a", "bé"]
    assert back["id"].dtype == meta["id"].dtype  # decoded at the width it was written with
    assert back["id"].description == "an identifier"
    assert back["z"].unit == "km/s"
    assert back["m"].tolist() == [3, 1, meta["m"].fill_value]
    assert back["ok"].dtype == bool
    assert back["raw"].tolist() == ["", "x", "yy"]
    assert stack.rows([1])["id"].dtype == back["id"].dtype  # whichever rows are read
    full = stack.table()
    for name in ("id", "z", "ok"):
        np.testing.assert_array_equal(full[name], meta[name])
    assert storable(meta["vec"]) is None


def _pieces(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Chunks as a store writer buffers them: columns come and go, one turns to text."""
    pieces = []
    for k in range(5):
        n = int(rng.integers(0, 6))
        rows = []
        for i in range(n):
            row = {"id": f"p{k}r{i}" + "é" * int(rng.integers(0, 3)), "z": float(rng.random())}
            if k % 2:
                row["n_int"] = int(rng.integers(0, 9))
                row["flag"] = bool(rng.integers(0, 2))
            if k >= 3:
                row["note"] = "abc" if k == 3 else 2.5 * i
            rows.append(row)
        pieces.append(columns_from_rows(rows) if rows else columns_from_rows([]))
    return pieces


@pytest.mark.parametrize("seed", range(4))
def test_stack_reads_parts_as_the_old_joiner_did(tmp_path, seed) -> None:
    """Parts written as column sets and read through the stack give the table the
    in-memory joiner (the pre-column-set reader) gave: values, dtypes, column order."""
    rng = np.random.default_rng(seed)
    pieces = _pieces(rng)
    sources = []
    for k, cols in enumerate(pieces):
        n = len(cols["id"])
        with ColumnSetWriter(tmp_path / f"part-{k}", n) as writer:
            for name, values in cols.items():
                writer.add(name, values)
            record = writer.commit()
        sources.append(ColumnSet(tmp_path / f"part-{k}", record))
    schema = InMemoryColumns(columns_from_rows([]), 0)
    stack = ColumnStack(sources, schema)
    expected = concat_columns([(columns_from_rows([]), 0),
                               *((c, len(c["id"])) for c in pieces)])
    table = stack.table()
    assert table.colnames == list(expected)
    for name, arr in expected.items():
        assert table[name].dtype == arr.dtype, name
        np.testing.assert_array_equal(table[name], arr, err_msg=name)
    rows = rng.permutation(len(stack))[:7]
    picked = stack.rows(rows)
    for name, arr in expected.items():
        np.testing.assert_array_equal(picked[name], arr[rows], err_msg=name)
        assert picked[name].dtype == arr.dtype, name
    # merged into one set, column by column: the same table again
    merged = ColumnStack([ColumnSet(tmp_path / "merged", write_stack(stack, tmp_path / "merged"))])
    again = merged.table()
    for name, arr in expected.items():
        np.testing.assert_array_equal(again[name], arr, err_msg=name)
        assert again[name].dtype == arr.dtype, name
    starts = [start for start, _, _ in stack.iter_sources(["id"])]
    assert starts == sorted(starts)
    assert len(starts) == sum(len(c["id"]) > 0 for c in pieces)


def test_rows_out_of_range_raise(tmp_path) -> None:
    stack = ColumnStack([ColumnSet(tmp_path / "s", write_table(_table(), tmp_path / "s"))])
    with pytest.raises(IndexError):
        stack.rows([3])
    assert len(stack.rows(np.zeros(0, np.int64))) == 0


# ----------------------------------------------------------------------------- damage

def _resign(path, edit) -> None:
    info = integrity.loads_checked(path)
    edit(info)
    path.write_bytes(integrity.dumps_checked(info))


@pytest.fixture
def set_dir(tmp_path):
    write_table(_table(), tmp_path / "set")
    return tmp_path / "set"


def test_flipped_column_data_is_caught_on_first_read(set_dir) -> None:
    path = set_dir / "c001.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    source = ColumnSet(set_dir)  # headers intact: opens
    ColumnStack([source]).rows([0], ["id"])  # other columns read fine
    with pytest.raises(IndexFormatError, match="c001.npy: metadata column checksum mismatch"):
        ColumnStack([source]).rows([0], ["z"])
    with pytest.raises(IndexFormatError, match="c001.npy"):
        ColumnSet(set_dir).verify()


def test_truncated_or_missing_columns_raise_typed_errors(set_dir) -> None:
    path = set_dir / "c000.npy"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(IndexFormatError, match="c000.npy"):
        ColumnSet(set_dir, eager=True)
    path.unlink()
    with pytest.raises(IndexFormatError, match="c000.npy: metadata column file is missing"):
        ColumnSet(set_dir).stored("id")
    (set_dir / "columns.json").unlink()
    with pytest.raises(IndexFormatError, match="no columns.json"):
        ColumnSet(set_dir)


def test_manifest_is_checked_before_any_file_is_read(set_dir, tmp_path) -> None:
    record = integrity.file_record(set_dir / "columns.json")
    _resign(set_dir / "columns.json", lambda m: m["columns"][0].update(file="../secret.npy"))
    with pytest.raises(IndexFormatError, match="not a plain cNNN.npy name"):
        ColumnSet(set_dir)
    with pytest.raises(IndexFormatError, match="recorded|checksum mismatch"):
        ColumnSet(set_dir, record)  # the parent's record catches any edit first
    for edit, message in [(lambda m: m.update(n_rows=-1), "n_rows"),
                          (lambda m: m["columns"][1].update(dtype="<c16"), "do not fit"),
                          (lambda m: m["columns"][0].update(width=10**9), "do not fit"),
                          (lambda m: m["columns"][0].update(width=0), "do not fit"),
                          (lambda m: m["columns"][1].update(unit="parsec per bogon"),
                           "not a unit"),
                          (lambda m: m["columns"][1].update(name="id"), "repeated"),
                          (lambda m: m.update(version=2), "not a version-1 column set")]:
        write_table(_table(), set_dir)
        _resign(set_dir / "columns.json", edit)
        with pytest.raises(IndexFormatError, match=message):
            ColumnSet(set_dir)
    write_table(_table(), set_dir)
    text = (set_dir / "columns.json").read_text()
    (set_dir / "columns.json").write_text(text.replace('"z"', '"y"'))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        ColumnSet(set_dir)
    json.loads(text)  # it was a valid document before the edit


def test_a_failed_write_leaves_nothing(tmp_path) -> None:
    write_table(_table(), tmp_path / "set")
    before = sorted(p.name for p in (tmp_path / "set").iterdir())

    def write_then_fail() -> None:
        with ColumnSetWriter(tmp_path / "set", 3) as writer:
            writer.add("id", np.array(["a", "b", "c"]))
            writer.add("z", np.zeros(4))  # wrong length: the writer stops here

    with pytest.raises(ValueError, match="expected"):
        write_then_fail()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary directory
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == before
    ColumnSet(tmp_path / "set").verify()  # the old set is intact
