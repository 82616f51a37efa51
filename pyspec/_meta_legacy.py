"""The legacy metadata reader: files of pyspec before the one column-set format, read-only.

Stores and engines written before issue 20 (pyspec main ca91938 and earlier)
keep their metadata in two other layouts:

- store parts ``parts/part-NNNNNN.npz``: an uncompressed ``np.savez`` of the
  part's columns under ``m_<name>`` keys (text as numpy unicode), its
  ``n_rows``/``row_start``, matrix CRCs and rejects;
- an engine's ``meta/colNNN.npy``: one column per file (text as UTF-8 bytes),
  described by ``engine.json``'s ``meta_columns`` and checksum records.

:class:`LegacyStorePart` and :class:`LegacyEngineColumns` present them as
column sources, so :class:`pyspec.meta_columns.ColumnStack` reads old and new
files alike and answers as the old readers did. Nothing here writes: a store
appended to gets new parts in the current format after its old ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import (
    STORE_UNITS,
    ColumnSource,
    ColumnSpec,
    check_column,
    column_crc,
    map_npy,
)

#: prefix of a column's key inside an old store part
PART_PREFIX = "m_"
#: file name of an old store part
PART_FILE = re.compile(r"part-(\d{6})\.npz$")
#: file name of an old engine column
ENGINE_COLUMN_FILE = re.compile(r"col\d{3,6}\.npy")


class LegacyStorePart(ColumnSource):
    """An old store part (``part-NNNNNN.npz``), read whole (bounded, zip CRCs checked).

    ``attrs`` hold what the store reads of a part in any format: ``row_start``,
    ``rejects`` ([file, reason] pairs) and, when recorded, ``flux_crc32`` and
    ``ivar_crc32``.
    """

    def __init__(self, path: str | Path, record: Any = None) -> None:
        self.path = Path(path)
        if record is not None:
            _integrity.check_file(self.path, record)
        part = _integrity.read_npz(self.path)

        def bad(msg: str) -> IndexFormatError:
            return IndexFormatError(f"store part {self.path}: {msg}")

        for key in ("n_rows", "row_start"):
            v = part.get(key)
            if v is None or v.shape != () or v.dtype.kind not in "iu" or int(v) < 0:
                raise bad(f"missing or invalid {key!r}")
        rf, rr = part.get("reject_file"), part.get("reject_reason")
        if (rf is None or rr is None or rf.ndim != 1 or rf.shape != rr.shape
                or rf.dtype.kind != "U" or rr.dtype.kind != "U"):
            raise bad("missing or inconsistent reject columns")
        for key, v in part.items():
            if key.endswith("_crc32") and (v.shape != () or v.dtype.kind not in "iu"):
                raise bad(f"invalid {key!r}")
        if "m_file" not in part or part["m_file"].dtype.kind != "U":
            raise bad("missing 'file' column")
        self.n_rows = int(part["n_rows"])
        self.attrs = {"row_start": int(part["row_start"]),
                      "rejects": [[f, r] for f, r in zip(rf.tolist(), rr.tolist(), strict=True)]}
        for key in ("flux_crc32", "ivar_crc32"):
            if key in part:
                self.attrs[key] = int(part[key])
        self.specs, self._arrays = {}, {}
        for key, v in part.items():
            if not key.startswith(PART_PREFIX):
                continue
            name = key[len(PART_PREFIX):]
            arr = check_column(v, self.n_rows, "biufU", f"store part {self.path}", name)
            # text stays numpy text: the reader converts it only where it meets new parts
            width = max(1, arr.dtype.itemsize // 4) if arr.dtype.kind == "U" else None
            self._arrays[name] = arr
            self.specs[name] = ColumnSpec(name, "num" if width is None else "str", arr.dtype,
                                          width, STORE_UNITS.get(name))

    def stored(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def verify(self) -> int:
        return len(self.specs)  # read whole and CRC-checked (zip members) when opened


class LegacyEngineColumns(ColumnSource):
    """An old engine's ``meta/colNNN.npy`` columns, described by ``engine.json``.

    Every column is memory-mapped when opened (headers checked: dtype,
    shape); a column's data CRC, when recorded, is checked the first time it
    is read. Text decodes at its stored byte width, as the old reader did.
    """

    def __init__(self, folder: str | Path, schema: list[dict[str, Any]], n_rows: int,
                 checksums: dict[str, Any] | None = None) -> None:
        self.path = Path(folder)
        self.n_rows = int(n_rows)
        self.attrs = {}
        self.specs, self._arrays, self._crcs = {}, {}, {}
        self._checked: set[str] = set()
        for entry in schema:
            name, file = entry["name"], entry["file"]
            if not ENGINE_COLUMN_FILE.fullmatch(file):  # check_info refuses these first
                raise IndexFormatError(f"{self.path}: column file {file!r} is not a plain "
                                       "colNNN.npy name")
            record = (checksums or {}).get(f"meta/{file}")
            path = self.path / file
            arr = check_column(map_npy(path, "metadata column"), self.n_rows,
                               "S" if entry["kind"] == "str" else "biuf", str(path), name,
                               record.get("dtype") if isinstance(record, dict) else None)
            self._arrays[name] = arr
            self._crcs[name] = (path, record.get("data_crc32") if isinstance(record, dict)
                                else None)
            self.specs[name] = ColumnSpec(
                name, entry["kind"], arr.dtype,
                max(1, arr.dtype.itemsize) if entry["kind"] == "str" else None,
                entry.get("unit"), entry.get("description") or None)

    def stored(self, name: str) -> np.ndarray:
        arr = self._arrays[name]
        if name not in self._checked:
            path, crc = self._crcs[name]
            if crc is not None and column_crc(arr) != crc:
                raise IndexFormatError(f"{path}: metadata column checksum mismatch (file "
                                       "corrupted)")
            self._checked.add(name)
        return arr

    def verify(self) -> int:
        self._checked.clear()
        for name in self.specs:
            self.stored(name)
        return len(self.specs)
