"""Metadata columns on disk: one codec, one checksum, one reader for stores and engines.

Spectrum stores and engines both keep per-spectrum metadata (id, file,
class, z, S/N, ...) as plain 1-D column arrays, never pickles:

- a store commits its rows in parts, ``parts/part-NNNNNN.npz``, each holding
  the columns of its rows under ``m_<name>`` keys (text as numpy unicode);
- an engine keeps one ``meta/colNNN.npy`` file per column (text as UTF-8
  bytes), memory-mapped, so a query decodes only the rows it returns.

Both containers are written and read through this module: the column
conversions (:func:`columns_from_rows` from per-spectrum dicts,
:func:`storable` from table columns, :func:`concat_columns` joining chunks),
the shape and dtype checks of a column read back (:func:`check_column`), the
data checksum (:func:`column_crc`), the part keys (:func:`part_keys`,
:func:`part_columns`) and the engine's column folder
(:func:`write_column_folder`, :class:`ColumnFolder`). The two on-disk layouts
are unchanged from earlier versions, so existing stores and engines open.
"""

from __future__ import annotations

import math
import numbers
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec.errors import IndexFormatError
from pyspec.io._base import META_FLOAT_KEYS, META_KEYS

__all__ = ["ColumnFolder", "check_column", "column_crc", "column_records", "columns_from_rows",
           "concat_columns", "part_columns", "part_keys", "rows_from_columns", "storable",
           "write_column_folder"]

#: text columns every store has (missing values are "")
STR_KEYS = ("id", "file", "class", "subclass", "data_release", "layout")
#: prefix of a column's key inside a store part
PART_PREFIX = "m_"
_INT_TYPES = (int, np.integer)
_REAL_TYPES = (numbers.Real, np.floating, np.integer)


# ----------------------------------------------------------------------------- values -> columns

def _to_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return ""
    return str(v)


def _to_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _flag_code(v: Any) -> int:
    """-1 missing, 0 false, 1 true (the int8 flag columns such as ``vacuum``)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return -1
    return 1 if bool(v) else 0


def columns_from_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Column arrays (str 'U', float64, int) from per-spectrum dicts.

    The :data:`pyspec.io.META_KEYS` columns always exist; other keys become
    int8 flags (bools, -1 = missing), int64, float64 or text columns.
    """
    cols: dict[str, np.ndarray] = {}
    for key in STR_KEYS:
        cols[key] = np.array([_to_str(r.get(key)) for r in rows], dtype=str)
    for key in META_FLOAT_KEYS:
        cols[key] = np.array([_to_float(r.get(key)) for r in rows], dtype=np.float64)
    cols["vacuum"] = np.array([_flag_code(r.get("vacuum")) for r in rows], dtype=np.int8)
    extra: list[str] = []
    for r in rows:
        for k in r:
            if k not in META_KEYS and k not in extra and k != "warnings":
                extra.append(k)
    for key in extra:
        values = [r.get(key) for r in rows]
        present = [v for v in values if v is not None]
        if not present:
            continue  # filled with the column's missing value when parts are joined
        if all(isinstance(v, bool | np.bool_) for v in present):
            cols[key] = np.array([-1 if v is None else int(bool(v)) for v in values],
                                 dtype=np.int8)
        elif all(isinstance(v, _INT_TYPES) and not isinstance(v, bool | np.bool_)
                 for v in present) and len(present) == len(values):
            cols[key] = np.array(values, dtype=np.int64)
        elif all(isinstance(v, _REAL_TYPES) and not isinstance(v, bool | np.bool_)
                 for v in present):
            cols[key] = np.array([_to_float(v) for v in values], dtype=np.float64)
        else:
            cols[key] = np.array([_to_str(v) for v in values], dtype=str)
    return cols


def rows_from_columns(table: Any) -> list[dict[str, Any]]:
    """Per-spectrum dicts from stored columns: the inverse of :func:`columns_from_rows`.

    Flag columns (int8, -1 = missing) become True/False/None again, so rows
    copied from one store into another keep their values and dtypes.
    """
    names = list(table.colnames)
    values = []
    for name in names:
        col = np.asarray(table[name])
        if col.dtype == np.int8:
            values.append([None if v < 0 else bool(v) for v in col.tolist()])
        else:
            values.append(col.tolist())
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)] \
        if names else [{} for _ in range(len(table))]


def concat_columns(pieces: Sequence[tuple[Mapping[str, np.ndarray], int]]
                   ) -> dict[str, np.ndarray]:
    """Join per-chunk column dicts (each with its row count) into one dict of columns.

    A column missing from a chunk is filled with its missing value ("" for
    text, NaN for floats, -1 for the int8 flag columns, 0 for other ints,
    False for bools); a column that is text in one chunk and numeric in
    another becomes text.
    """
    names: list[str] = []
    for cols, _ in pieces:
        for k in cols:
            if k not in names:
                names.append(k)
    out: dict[str, np.ndarray] = {}
    for k in names:
        like = next(cols[k] for cols, _ in pieces if k in cols)
        chunks = []
        for cols, n in pieces:
            if n == 0:
                continue
            if k in cols:
                chunks.append(cols[k])
            else:
                fill = {"U": "", "f": np.nan, "i": -1 if like.dtype == np.int8 else 0,
                        "b": False}.get(like.dtype.kind, 0)
                chunks.append(np.full(n, fill, dtype=like.dtype))
        kinds = {c.dtype.kind for c in chunks}
        if len(kinds) > 1 and "U" in kinds:
            chunks = [c.astype(str) for c in chunks]
        out[k] = np.concatenate(chunks) if chunks else like[:0]
    return out


def storable(col: Any) -> tuple[np.ndarray, str] | None:
    """``(array, kind)`` of a table column as an engine stores it, or None if it cannot be.

    Masked values are filled; text (unicode or objects) becomes UTF-8 bytes,
    kind "str"; numbers keep their dtype, kind "num". Mixin and
    multidimensional columns are not stored (None).
    """
    values = col.filled() if hasattr(col, "filled") and getattr(col, "mask", None) is not None \
        else col
    arr = np.asarray(values)
    if arr.dtype.kind in "OUS":
        if arr.dtype.kind == "O":
            arr = np.array(["" if v is None else str(v) for v in arr])
        if arr.dtype.kind == "U":
            arr = np.char.encode(arr, "utf-8")
        kind = "str"
    elif arr.dtype.kind in "biuf":
        kind = "num"
    else:
        return None
    if arr.ndim != 1:
        return None
    if arr.dtype.kind == "S" and arr.dtype.itemsize == 0:
        arr = arr.astype("S1")
    return arr, kind


# ----------------------------------------------------------------------------- checks and sums

def column_crc(arr: np.ndarray) -> str:
    """CRC32 text of a column's data bytes (what engine checksum records hold)."""
    data = np.ascontiguousarray(arr).reshape(-1).view(np.uint8) if arr.size else b""
    return _integrity.crc_text(zlib.crc32(data))


def check_column(arr: Any, n: int, kinds: str, where: str, name: str,
                 dtype: str | None = None) -> np.ndarray:
    """``arr`` if it is a 1-D column of ``n`` rows with a dtype kind in ``kinds``.

    ``dtype``: the exact dtype string recorded for it, if any. Raises
    IndexFormatError naming ``where`` and the column otherwise.
    """
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.shape[0] != n:
        raise IndexFormatError(f"{where}: column {name!r} has shape "
                               f"{getattr(arr, 'shape', None)}, expected ({n},)")
    if arr.dtype.kind not in kinds or (dtype is not None and arr.dtype.str != dtype):
        raise IndexFormatError(f"{where}: column {name!r} has dtype {arr.dtype.str}, which "
                               f"does not match the column it should hold")
    return arr


# ----------------------------------------------------------------------------- store parts

def part_keys(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns keyed as a store part holds them (``m_<name>``)."""
    return {f"{PART_PREFIX}{k}": v for k, v in cols.items()}


def part_columns(part: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The metadata columns of a loaded store part, each checked against its ``n_rows``."""
    n = int(part["n_rows"])
    return {key[len(PART_PREFIX):]: check_column(v, n, "biufU", where, key[len(PART_PREFIX):])
            for key, v in part.items() if key.startswith(PART_PREFIX)}


# ----------------------------------------------------------------------------- engine column folder

def save_array(path: Path, arr: np.ndarray) -> None:
    """Write one engine array (.npy, no pickles): every array of an engine goes through here."""
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def write_column_folder(meta: Any, folder: Path) -> list[dict[str, Any]]:
    """Write each storable column of table ``meta`` as ``folder/colNNN.npy``; the schema.

    Schema entries: ``name``, ``file``, ``unit``, ``description``, ``kind``
    ("str" or "num"). Columns that cannot be stored (see :func:`storable`)
    are left out.
    """
    folder.mkdir()
    schema = []
    for i, name in enumerate(meta.colnames):
        col = meta[name]
        stored = storable(col)
        if stored is None:
            continue
        arr, kind = stored
        entry: dict[str, Any] = {"name": name, "file": f"col{i:03d}.npy",
                                 "unit": None if col.unit is None else str(col.unit),
                                 "description": col.info.description or None, "kind": kind}
        save_array(folder / entry["file"], arr)
        schema.append(entry)
    return schema


def column_records(folder: Path, schema: list[dict[str, Any]], prefix: str = "meta/"
                   ) -> dict[str, dict[str, Any]]:
    """Checksum records (file size/CRC, dtype, data CRC) of a freshly written column folder."""
    sums = {}
    for entry in schema:
        path = folder / entry["file"]
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        sums[f"{prefix}{entry['file']}"] = {**_integrity.file_record(path),
                                            "dtype": arr.dtype.str, "data_crc32": column_crc(arr)}
        del arr
    return sums


class ColumnFolder:
    """Memory-mapped metadata columns of an engine; decodes only the rows asked for.

    Every column is mapped when the engine opens (headers checked: dtype,
    shape), so a directory swapped by a later build does not mix into an open
    engine; a column's data CRC is checked the first time it is used.
    """

    def __init__(self, folder: Path, schema: list[dict[str, Any]], n: int,
                 checksums: dict[str, Any] | None = None) -> None:
        self._folder = folder
        self._schema = schema
        self._mapped: dict[str, np.ndarray] = {}
        self._arrays: dict[str, np.ndarray] = {}  # mapped and checked
        self.colnames = [c["name"] for c in schema]
        self._n = n
        self._records = {c["name"]: (checksums or {}).get(f"meta/{c['file']}") for c in schema}
        for entry in schema:
            self._mapped[entry["name"]] = self._map(entry)

    def _map(self, entry: dict[str, Any]) -> np.ndarray:
        path = self._folder / entry["file"]
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise IndexFormatError(f"{path}: metadata column file is missing") from None
        except Exception as exc:  # noqa: BLE001  numpy's header parser fails in many ways
            raise IndexFormatError(f"{path}: unreadable metadata column ({type(exc).__name__}: "
                                   f"{exc})") from None
        record = self._records[entry["name"]]
        return check_column(arr, self._n, "S" if entry["kind"] == "str" else "biuf", str(path),
                            entry["name"], record.get("dtype") if isinstance(record, dict)
                            else None)

    def __len__(self) -> int:
        return self._n

    def array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            arr = self._mapped[name]
            record = self._records[name]
            if record is not None and column_crc(arr) != record.get("data_crc32"):
                entry = next(c for c in self._schema if c["name"] == name)
                raise IndexFormatError(f"{self._folder / entry['file']}: metadata column "
                                       "checksum mismatch (file corrupted)")
            self._arrays[name] = arr
        return self._arrays[name]

    def columns(self, rows: np.ndarray, columns: Sequence[str] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        """(values, units, descriptions) of the given rows, one entry per column."""
        values: dict[str, np.ndarray] = {}
        units: dict[str, Any] = {}
        descriptions: dict[str, Any] = {}
        for entry in self._schema:
            name = entry["name"]
            if columns is not None and name not in columns:
                continue
            arr = self.array(name)
            v = arr[rows]
            if entry["kind"] == "str":
                # decoded at the stored width, so a column's dtype does not depend on
                # which rows were asked for (result tables reuse templates by dtype)
                values[name] = np.char.decode(v, "utf-8").astype(f"U{arr.dtype.itemsize}")
            else:
                values[name] = np.array(v)
            if entry["unit"] is not None:
                units[name] = entry["unit"]
            if entry["description"]:
                descriptions[name] = entry["description"]
        return values, units, descriptions

    def rows(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> Any:
        from astropy.table import Table

        values, units, descriptions = self.columns(rows, columns)
        return Table(values, units=units, descriptions=descriptions, copy=False)
