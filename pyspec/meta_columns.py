"""Metadata columns on disk: one format, one writer, one reader, for stores and engines.

Spectrum stores and engines keep per-spectrum metadata (id, file, class, z,
S/N, ...) as plain 1-D columns, never pickles. Both write them as **column
sets**: a directory holding one ``.npy`` file per column and a small checked
JSON manifest, ``columns.json``::

    SET/columns.json   {"format": "pyspec-column-set", "version": 1, "n_rows": N,
                        "columns": [{"name", "file": "c000.npy", "kind": "str"|"num",
                                     "dtype", "width", "unit", "description",
                                     "size", "crc32", "data_crc32"}, ...],
                        "attrs": {...the owner's facts...}, "checksum": ...}
    SET/c000.npy ...   one column each: numbers as they are, text as UTF-8 bytes

Why this layout: a ``.npy`` column can be memory-mapped, so a reader touches
only the columns and rows it asks for (a query decodes its ten neighbours, a
class filter reads two columns, a large store is never loaded whole); text
stored as UTF-8 bytes is up to four times smaller than numpy unicode on disk
and in the page cache (``width`` records the text width to decode to, so a
column's dtype does not depend on which rows were read). The manifest's
file and data checksums make every column self-checking; a parent (a store
manifest, ``engine.json``) records the manifest's own size/CRC, so one chain
of checksums covers everything. A set is written into a temporary directory
and renamed into place only when complete, so a reader never sees half of one.

- a store appends one set per committed chunk, ``parts/part-NNNNNN/``, whose
  ``attrs`` hold the part's first row, its matrix CRCs and its rejects;
- an engine keeps one set, ``meta/``, merged from the store's parts column
  by column (or written from a table).

:class:`ColumnStack` is the one reader: the rows of one or more sets (a
store's parts, an engine's ``meta/``) read as one table, by rows, by column
or set by set; :class:`ColumnSetWriter` is the writer. Files of earlier
versions (``.npz`` store parts, an engine's ``meta/colNNN.npy``) are read
through :mod:`pyspec._meta_legacy`, which presents them as column sets to the
same reader. The per-spectrum value conversions (:func:`columns_from_rows`,
:func:`rows_from_columns`, :func:`concat_columns`, :func:`storable`) live
here too.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import re
import shutil
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec.errors import IndexFormatError
from pyspec.io._base import META_FLOAT_KEYS, META_KEYS

__all__ = ["InMemoryColumns", "ColumnSet", "ColumnSetWriter", "ColumnSource", "ColumnSpec",
           "ColumnStack", "check_column", "column_crc", "columns_from_rows", "concat_columns",
           "rows_from_columns", "storable", "write_stack", "write_table"]

#: text columns every store has (missing values are "")
STR_KEYS = ("id", "file", "class", "subclass", "data_release", "layout")
#: columns of a store that carry a unit
STORE_UNITS = {"ra": "deg", "dec": "deg"}
#: the manifest of a column set
SET_FILE = "columns.json"
SET_FORMAT = "pyspec-column-set"
SET_VERSION = 1
_COLUMN_FILE = re.compile(r"c\d{3,6}\.npy")
#: widest text column a manifest may declare (bytes per value)
_MAX_TEXT_BYTES = 1 << 20
_MAX_ROWS = 1 << 40
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


def encode_text(arr: np.ndarray) -> np.ndarray:
    """numpy text as UTF-8 bytes (at least one byte wide)."""
    try:  # ASCII, the usual case: numpy's cast runs in C (np.char.encode loops in Python)
        out = arr.astype(f"S{max(1, arr.dtype.itemsize // 4)}")
    except UnicodeEncodeError:
        out = np.char.encode(arr, "utf-8")
    return out if out.dtype.itemsize else out.astype("S1")


def decode_text(arr: np.ndarray, width: int) -> np.ndarray:
    """UTF-8 bytes as numpy text ``U<width>``."""
    try:  # ASCII: numpy's cast, in C
        return arr.astype(f"U{width}")
    except UnicodeDecodeError:
        return np.char.decode(arr, "utf-8").astype(f"U{width}")


def storable(col: Any) -> tuple[np.ndarray, str, int | None] | None:
    """``(array, kind, width)`` of a column as a column set stores it, or None if it cannot be.

    Masked values are filled; text (unicode or objects) becomes UTF-8 bytes,
    kind "str", ``width`` its characters (bytes given as bytes keep their
    width); numbers keep their dtype, kind "num", width None. Mixin and
    multidimensional columns are not stored (None).
    """
    values = col.filled() if hasattr(col, "filled") and getattr(col, "mask", None) is not None \
        else col
    arr = np.asarray(values)
    if arr.ndim != 1:
        return None
    if arr.dtype.kind == "O":
        arr = np.array(["" if v is None else str(v) for v in arr], dtype=str)
    if arr.dtype.kind == "U":
        width = max(1, arr.dtype.itemsize // 4)
        arr = encode_text(arr)
    elif arr.dtype.kind == "S":
        width = max(1, arr.dtype.itemsize)
    elif arr.dtype.kind in "biuf":
        return arr, "num", None
    else:
        return None
    if arr.dtype.itemsize == 0:
        arr = arr.astype("S1")
    return arr, "str", width


# ----------------------------------------------------------------------------- checks and sums

def column_crc(arr: np.ndarray) -> str:
    """CRC32 text of a column's data bytes (what checksum records hold)."""
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


def save_array(path: Path, arr: np.ndarray) -> None:
    """Write one array as ``.npy`` (no pickles), flushed to disk before returning."""
    with open(path, "wb") as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def map_npy(path: Path, what: str) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only; IndexFormatError when missing or unreadable."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: {what} file is missing") from None
    except Exception as exc:  # noqa: BLE001  numpy's header parser fails in many ways
        raise IndexFormatError(f"{path}: unreadable {what} ({type(exc).__name__}: "
                               f"{exc})") from None


@functools.lru_cache(maxsize=256)
def is_unit(text: str) -> bool:
    """Whether astropy reads ``text`` as a unit (checked before a table is built with it)."""
    from astropy import units

    try:
        units.Unit(text, parse_strict="raise")
    except (ValueError, TypeError):
        return False
    return True


def _missing_value(dtype: np.dtype) -> Any:
    """What a column of ``dtype`` holds for a row that has no value."""
    return {"U": "", "S": b"", "f": np.nan, "i": -1 if dtype == np.int8 else 0,
            "b": False}.get(dtype.kind, 0)


def _text_width(dtype: np.dtype) -> int:
    """Characters numpy uses for numbers of ``dtype`` written as text."""
    return np.empty(0, dtype).astype(str).dtype.itemsize // 4

# ----------------------------------------------------------------------------- column sources

@dataclass(frozen=True)
class ColumnSpec:
    """What a reader needs to know of a stored column before reading it."""

    name: str
    kind: str  # "str" (UTF-8 bytes decoded to text; numpy text in old store parts) or "num"
    dtype: np.dtype  # as stored
    width: int | None  # text: characters to decode to; numbers: None
    unit: str | None = None
    description: str | None = None


class ColumnSource:
    """The columns of one block of rows: a column set, or older files read as one.

    Subclasses set ``path`` (for messages), ``n_rows``, ``specs`` (name ->
    :class:`ColumnSpec`, in column order) and ``attrs`` (the owner's facts),
    and implement :meth:`stored` and :meth:`verify`.
    """

    path: Path
    n_rows: int
    specs: dict[str, ColumnSpec]
    attrs: dict[str, Any]

    def stored(self, name: str) -> np.ndarray:
        """Column ``name`` as stored (memory-mapped where the format allows), data checked."""
        raise NotImplementedError

    def verify(self) -> int:
        """Check every byte of every column; the number of columns checked."""
        raise NotImplementedError


class InMemoryColumns(ColumnSource):
    """Columns held in memory (a store's schema, a writer's pending rows)."""

    def __init__(self, columns: Mapping[str, np.ndarray], n_rows: int,
                 units: Mapping[str, str] | None = None, path: str = "<memory>") -> None:
        self.path = Path(path)
        self.n_rows = int(n_rows)
        self.attrs = {}
        self.specs, self._arrays = {}, {}
        for name, values in columns.items():
            stored = storable(values)
            if stored is None:
                continue
            arr, kind, width = stored
            check_column(arr, self.n_rows, "biufS", path, name)
            self._arrays[name] = arr
            self.specs[name] = ColumnSpec(name, kind, arr.dtype, width, (units or {}).get(name))

    def stored(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def verify(self) -> int:
        return len(self.specs)


# ----------------------------------------------------------------------------- writing a set

class ColumnSetWriter:
    """Writes one column set at ``folder`` (replacing what is there) in one atomic step.

    Columns go into a fresh temporary directory beside ``folder``; :meth:`commit`
    writes the manifest and renames the directory into place. Use as a context
    manager: leaving it by an exception removes the temporary directory.
    """

    def __init__(self, folder: str | os.PathLike, n_rows: int) -> None:
        self.folder = Path(folder)
        self.n_rows = int(n_rows)
        self._tmp: Path | None = _integrity.make_temp_dir(self.folder.parent, self.folder.name)
        self._entries: list[dict[str, Any]] = []

    def __enter__(self) -> ColumnSetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()

    def _next_file(self, name: str) -> Path:
        if self._tmp is None:
            raise ValueError("column set writer is closed")
        if any(e["name"] == name for e in self._entries):
            raise ValueError(f"column {name!r} written twice")
        return self._tmp / f"c{len(self._entries):03d}.npy"

    def _record(self, path: Path, name: str, kind: str, arr: np.ndarray, width: int | None,
                unit: str | None, description: str | None) -> None:
        self._entries.append({"name": name, "file": path.name, "kind": kind,
                              "dtype": arr.dtype.str, "width": width, "unit": unit,
                              "description": description or None,
                              **_integrity.file_record(path), "data_crc32": column_crc(arr)})

    def add(self, name: str, values: Any, *, unit: str | None = None,
            description: str | None = None) -> bool:
        """Write one column (text, numbers, a masked or astropy column); False if it cannot
        be stored (multidimensional, objects of other kinds)."""
        stored = storable(values)
        if stored is None:
            return False
        arr, kind, width = stored
        check_column(arr, self.n_rows, "biufS", str(self.folder), name)
        if kind == "num" and arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        path = self._next_file(name)
        save_array(path, arr)
        self._record(path, name, kind, arr, width, unit, description)
        return True

    def add_blocks(self, spec: ColumnSpec, blocks: Iterable[np.ndarray]) -> None:
        """Write one column from consecutive blocks of its rows, all of dtype ``spec.dtype``
        (memory: one block)."""
        path = self._next_file(spec.name)
        if self.n_rows == 0:
            save_array(path, np.zeros(0, spec.dtype))
        else:
            out = np.lib.format.open_memmap(path, mode="w+", dtype=spec.dtype,
                                            shape=(self.n_rows,))
            pos = 0
            for block in blocks:
                if pos + len(block) > self.n_rows:
                    raise ValueError(f"column {spec.name!r}: more than {self.n_rows} rows")
                out[pos:pos + len(block)] = block
                pos += len(block)
            if pos != self.n_rows:
                raise ValueError(f"column {spec.name!r}: {pos} rows, expected {self.n_rows}")
            out.flush()
            del out
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        self._record(path, spec.name, spec.kind, arr, spec.width, spec.unit, spec.description)
        del arr

    def commit(self, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write the manifest and put the set in place; the manifest's ``{"size", "crc32"}``."""
        if self._tmp is None:
            raise ValueError("column set writer is closed")
        manifest = {"format": SET_FORMAT, "version": SET_VERSION, "n_rows": self.n_rows,
                    "columns": self._entries, "attrs": dict(attrs or {})}
        _integrity.atomic_write(self._tmp / SET_FILE, _integrity.dumps_checked(manifest))
        if self.folder.exists() or self.folder.is_symlink():
            _integrity.replace_dir(self._tmp, self.folder)
        else:  # the usual case: a new part, or meta/ inside a new engine directory
            os.rename(self._tmp, self.folder)
            _integrity.fsync_dir(self.folder.parent)
        self._tmp = None
        return _integrity.file_record(self.folder / SET_FILE)

    def abort(self) -> None:
        """Remove the temporary directory (nothing was put in place)."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def write_table(table: Any, folder: str | os.PathLike,
                attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the storable columns of an astropy Table (or a dict of columns) as one set.

    Units and descriptions of table columns are kept; columns that cannot be
    stored (see :func:`storable`) are left out. Returns the manifest's record.
    """
    names = list(table.colnames) if hasattr(table, "colnames") else list(table)
    n = len(table) if hasattr(table, "colnames") else len(table[names[0]]) if names else 0
    with ColumnSetWriter(folder, n) as writer:
        for name in names:
            col = table[name]
            unit = getattr(col, "unit", None)
            info = getattr(col, "info", None)
            writer.add(name, col, unit=None if unit is None else str(unit),
                       description=getattr(info, "description", None) if info else None)
        return writer.commit(attrs)


def write_stack(stack: ColumnStack, folder: str | os.PathLike) -> dict[str, Any]:
    """Merge every row of ``stack`` into one set at ``folder``, column by column, a source
    at a time (memory: one source's column). Returns the manifest's record."""
    with ColumnSetWriter(folder, len(stack)) as writer:
        for name in stack.colnames:
            spec = stack.spec(name)
            if spec.dtype.kind == "U":  # text of old store parts: encoded as one column
                writer.add(name, stack.column(name), unit=spec.unit,
                           description=spec.description)
            else:
                writer.add_blocks(spec, (stack.block(i, name) for i in stack.nonempty))
        return writer.commit()


# ----------------------------------------------------------------------------- reading a set

def _manifest_error(path: Path, msg: str) -> IndexFormatError:
    return IndexFormatError(f"{path}: invalid column set manifest ({msg})")


def _parse_entry(path: Path, entry: Any) -> tuple[ColumnSpec, dict[str, Any]]:
    """A manifest's column entry, every field checked, as (spec, checksum record)."""
    if not isinstance(entry, dict):
        raise _manifest_error(path, "column entries must be objects")
    name, file, kind = entry.get("name"), entry.get("file"), entry.get("kind")
    if not isinstance(name, str):
        raise _manifest_error(path, f"column name {name!r} is not a string")
    if not isinstance(file, str) or not _COLUMN_FILE.fullmatch(file):
        raise _manifest_error(path, f"column file {file!r} is not a plain cNNN.npy name")
    try:
        dtype = np.dtype(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
    except (TypeError, ValueError):
        dtype = None
    width = entry.get("width")
    if kind == "str":
        ok = (dtype is not None and dtype.kind == "S" and 0 < dtype.itemsize <= _MAX_TEXT_BYTES
              and isinstance(width, int) and not isinstance(width, bool)
              and 0 < width <= _MAX_TEXT_BYTES)
    elif kind == "num":
        ok = (dtype is not None and dtype.kind in "biuf" and dtype.byteorder != ">"
              and width is None)
    else:
        raise _manifest_error(path, f"column {name!r} has unknown kind {kind!r}")
    if not ok:
        raise _manifest_error(path, f"column {name!r}: dtype {entry.get('dtype')!r} / width "
                                    f"{width!r} do not fit a {kind} column")
    for key in ("unit", "description"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise _manifest_error(path, f"column {name!r}: {key} must be a string or null")
    if entry.get("unit") is not None and not is_unit(entry["unit"]):
        raise _manifest_error(path, f"column {name!r}: {entry['unit']!r} is not a unit")
    _integrity.check_record(entry, str(path.parent / file))
    if not isinstance(entry.get("data_crc32"), str):
        raise _manifest_error(path, f"column {name!r} has no data checksum")
    return (ColumnSpec(name, kind, dtype, width, entry.get("unit"), entry.get("description")),
            {"file": file, "size": entry["size"], "crc32": entry["crc32"],
             "data_crc32": entry["data_crc32"]})


class ColumnSet(ColumnSource):
    """One column set on disk (see the module docstring), memory-mapped column by column.

    Parameters
    ----------
    folder : the set's directory
    record : ``{"size", "crc32"}`` of its manifest as the parent recorded it (checked first)
    eager : map every column now (headers checked), so that an open engine keeps reading
        these files even if a later build swaps the directory; else each column is mapped
        when first read. A column's data CRC is checked the first time it is read.
    """

    def __init__(self, folder: str | os.PathLike, record: Any = None, *,
                 eager: bool = False) -> None:
        self.path = Path(folder)
        mpath = self.path / SET_FILE
        try:
            if record is not None:
                _integrity.check_file(mpath, record)
            manifest = _integrity.loads_checked(mpath, what="column set manifest")
        except FileNotFoundError:
            raise IndexFormatError(f"{self.path}: metadata column set has no {SET_FILE} "
                                   "(missing or damaged)") from None
        except OSError as exc:
            raise IndexFormatError(f"{mpath}: unreadable ({exc})") from None
        if manifest.get("format") != SET_FORMAT or manifest.get("version") != SET_VERSION:
            raise _manifest_error(mpath, f"not a version-{SET_VERSION} column set")
        n = manifest.get("n_rows")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_ROWS:
            raise _manifest_error(mpath, f"n_rows must be an int >= 0, got {n!r}")
        entries, attrs = manifest.get("columns"), manifest.get("attrs", {})
        if not isinstance(entries, list) or not isinstance(attrs, dict):
            raise _manifest_error(mpath, "'columns' must be a list and 'attrs' an object")
        self.n_rows, self.attrs = n, attrs
        self.specs, self._records = {}, {}
        files = set()
        for entry in entries:
            spec, rec = _parse_entry(mpath, entry)
            if spec.name in self.specs or rec["file"] in files:
                raise _manifest_error(mpath, f"column {spec.name!r} or its file is repeated")
            files.add(rec["file"])
            self.specs[spec.name], self._records[spec.name] = spec, rec
        self._mapped: dict[str, np.ndarray] = {}
        self._checked: set[str] = set()
        if eager:
            for name in self.specs:
                self._map(name)

    def _map(self, name: str) -> np.ndarray:
        if name not in self._mapped:
            path = self.path / self._records[name]["file"]
            arr = check_column(map_npy(path, "metadata column"), self.n_rows,
                               self.specs[name].dtype.kind, str(path), name,
                               self.specs[name].dtype.str)
            # a plain ndarray view of the map: row lookups skip np.memmap's Python hooks
            self._mapped[name] = np.asarray(arr)
        return self._mapped[name]

    def stored(self, name: str) -> np.ndarray:
        arr = self._map(name)
        if name not in self._checked:
            if column_crc(arr) != self._records[name]["data_crc32"]:
                raise IndexFormatError(f"{self.path / self._records[name]['file']}: metadata "
                                       "column checksum mismatch (file corrupted)")
            self._checked.add(name)
        return arr

    def verify(self) -> int:
        for name, rec in self._records.items():
            _integrity.check_file(self.path / rec["file"], rec)
            self._checked.discard(name)
            self.stored(name)
        return len(self.specs)


# ----------------------------------------------------------------------------- the reader

@dataclass(frozen=True)
class _Plan:
    """How a column of a stack is read: its common stored form and what absent rows hold."""

    spec: ColumnSpec  # dtype/width common to every source
    like: ColumnSpec  # the first source's spec (its dtype gives the missing value)


class ColumnStack:
    """The one metadata reader: the rows of several column sources read as one table.

    Rows are the sources' rows in order (a store's parts, an engine's one
    set). A column missing from a source holds its missing value there ("" for
    text, NaN for floats, -1 for the int8 flag columns, 0 for other ints); a
    column that is text in one source and numeric in another is text. Only the
    columns and rows asked for are read.

    Parameters
    ----------
    sources : ColumnSource
    schema : columns (0 rows) that exist even where no source has them, first
    """

    def __init__(self, sources: Sequence[ColumnSource],
                 schema: ColumnSource | None = None) -> None:
        self.sources = ([schema] if schema is not None else []) + list(sources)
        counts = [s.n_rows for s in self.sources]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        #: indices of the sources that hold rows
        self.nonempty = [i for i, c in enumerate(counts) if c]
        self.colnames: list[str] = []
        for s in self.sources:
            self.colnames += [n for n in s.specs if n not in self.colnames]
        self._plans: dict[str, _Plan] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _plan(self, name: str) -> _Plan:
        if name not in self._plans:
            present = [s.specs[name] for s in self.sources if name in s.specs]
            if not present:
                raise KeyError(name)
            like = present[0]
            filled = any(name not in self.sources[i].specs for i in self.nonempty)
            used = [self.sources[i].specs[name] for i in self.nonempty
                    if name in self.sources[i].specs] or [like]
            if any(s.kind == "str" for s in used):
                widths = [s.width if s.kind == "str" else _text_width(s.dtype) for s in used]
                sizes = [s.dtype.itemsize if s.kind == "str" else _text_width(s.dtype)
                         for s in used]
                if filled and like.kind == "num":  # a missing number reads as its text
                    widths.append(_text_width(like.dtype))
                    sizes.append(_text_width(like.dtype))
                # UTF-8 bytes, unless every source holds numpy text (old store parts): then
                # the text is read as it is, never encoded and decoded again
                unicode = all(s.dtype.kind == "U" for s in used if s.kind == "str")
                spec = ColumnSpec(name, "str", np.dtype(f"U{max(widths)}" if unicode
                                                        else f"S{max(sizes)}"), max(widths))
            else:
                spec = ColumnSpec(name, "num", np.result_type(*(s.dtype for s in used),
                                                              *([like.dtype] if filled else [])),
                                  None)
            unit = next((s.unit for s in present if s.unit is not None), None)
            desc = next((s.description for s in present if s.description), None)
            spec = ColumnSpec(name, spec.kind, spec.dtype, spec.width, unit, desc)
            self._plans[name] = _Plan(spec, like)
        return self._plans[name]

    def spec(self, name: str) -> ColumnSpec:
        """The column as this stack reads it (common dtype, width, unit, description)."""
        return self._plan(name).spec

    def _convert(self, arr: np.ndarray, source: ColumnSpec, plan: _Plan) -> np.ndarray:
        target = plan.spec
        if arr.dtype == target.dtype:
            return arr
        if target.kind == "str" and source.kind == "num":
            return arr.astype(str).astype(target.dtype)
        if target.dtype.kind == "S" and arr.dtype.kind == "U":
            return encode_text(arr).astype(target.dtype)
        if target.dtype.kind == "U" and arr.dtype.kind == "S":
            return decode_text(arr, target.width)
        return arr.astype(target.dtype)

    def _take(self, i: int, name: str, local: np.ndarray | slice) -> np.ndarray:
        """Rows ``local`` of source ``i``'s column in the stack's stored form."""
        plan = self._plan(name)
        source = self.sources[i]
        if name in source.specs:
            return self._convert(source.stored(name)[local], source.specs[name], plan)
        n = len(range(source.n_rows)[local]) if isinstance(local, slice) else len(local)
        fill = np.full(n, _missing_value(plan.like.dtype), plan.like.dtype)
        return self._convert(fill, plan.like, plan)

    def block(self, i: int, name: str) -> np.ndarray:
        """Every row of source ``i`` of column ``name``, in the stack's stored form."""
        return self._take(i, name, slice(None))

    def decode(self, name: str, stored: np.ndarray) -> np.ndarray:
        """Values of column ``name`` from its stored form (text decoded at the column's width)."""
        spec = self.spec(name)
        if spec.kind == "str" and spec.dtype.kind == "S":
            return decode_text(stored, spec.width)
        return np.array(stored)

    def _gather(self, name: str, rows: np.ndarray, where: np.ndarray | None) -> np.ndarray:
        if where is None:  # one source holds every row
            return self._take(self.nonempty[0], name, rows - self.offsets[self.nonempty[0]])
        out = np.empty(rows.shape, self.spec(name).dtype)
        for i in np.unique(where):
            sel = np.flatnonzero(where == i)
            out[sel] = self._take(int(i), name, rows[sel] - self.offsets[i])
        return out

    def columns(self, rows: Any, columns: Sequence[str] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        """(values, units, descriptions) of the given rows (in that order), one entry per
        column (all, or those named in ``columns``)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} rows of metadata")
        where = None
        if len(self.nonempty) > 1 and rows.size:
            where = np.searchsorted(self.offsets, rows, side="right") - 1
        values: dict[str, np.ndarray] = {}
        units: dict[str, Any] = {}
        descriptions: dict[str, Any] = {}
        for name in self.colnames:
            if columns is not None and name not in columns:
                continue
            spec = self.spec(name)
            stored = self._gather(name, rows, where) if rows.size and self.nonempty \
                else np.zeros(0, spec.dtype)
            values[name] = self.decode(name, stored)
            if spec.unit is not None:
                units[name] = spec.unit
            if spec.description:
                descriptions[name] = spec.description
        return values, units, descriptions

    def rows(self, rows: Any, columns: Sequence[str] | None = None) -> Any:
        """Metadata of the given rows as an astropy Table, in the given order."""
        from astropy.table import Table

        values, units, descriptions = self.columns(rows, columns)
        return Table(values, units=units, descriptions=descriptions, copy=False)

    def column(self, name: str) -> np.ndarray:
        """Every row of one column, decoded (memory: that column)."""
        spec = self.spec(name)
        blocks = [self.block(i, name) for i in self.nonempty]
        return self.decode(name, np.concatenate(blocks) if blocks else np.zeros(0, spec.dtype))

    def table(self, columns: Sequence[str] | None = None) -> Any:
        """Every row as an astropy Table (memory: the whole table; prefer :meth:`rows`)."""
        from astropy.table import Table

        names = [c for c in self.colnames if columns is None or c in columns]
        table = Table({name: self.column(name) for name in names}, copy=False)
        for name in names:
            spec = self.spec(name)
            if spec.unit is not None:
                table[name].unit = spec.unit
            if spec.description:
                table[name].info.description = spec.description
        return table

    def iter_sources(self, columns: Sequence[str]
                     ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """``(first row, n rows, {name: values})`` of each source holding rows, for the named
        columns present in the stack (memory: one source's columns)."""
        names = [c for c in columns if c in self.colnames]
        for i in self.nonempty:
            yield (int(self.offsets[i]), self.sources[i].n_rows,
                   {name: self.decode(name, self.block(i, name)) for name in names})

    def verify(self) -> int:
        """Check every byte of every source's columns; the number of columns checked."""
        return sum(s.verify() for s in self.sources)
