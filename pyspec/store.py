"""The spectrum store: preprocessed spectra on disk, memory-mapped for search.

A store is a directory::

    flux.f32, ivar.f32     float32 (n_spectra, n_pixels), row-major, little-endian
    parts/part-NNNNNN/     metadata of each appended chunk: a column set
                           (:mod:`pyspec.meta_columns`) whose attrs hold the
                           chunk's first row, matrix CRCs and rejects
    grid.json              the WavelengthGrid (WavelengthGrid.to_dict)
    preprocessing.json     the preprocessing settings (Preprocessor.to_dict or user dict)
    manifest.json          written last by close(): rows, parts, pixels, checksums

Integrity: ``manifest.json`` (version 3) carries a checksum of its own
content and a ``{"size", "crc32"}`` record of ``grid.json``,
``preprocessing.json`` and every part's ``columns.json``, which in turn
records its column files; each part records the CRC32 of its rows of
``flux.f32`` and ``ivar.f32``. Opening checks the descriptions, reading
metadata checks the parts and columns it reads, and the matrices are checked
by :meth:`SpectrumStore.verify` (``pyspec verify``) and, lazily, by the first
full pass of :meth:`SpectrumStore.iter_chunks`. Stores of versions 1
(without checksums) and 2 (parts as ``part-NNNNNN.npz``) still open, through
the legacy reader (:mod:`pyspec._meta_legacy`); appending to one adds parts
in the current format after the old ones.

Appends are crash-safe: matrix rows are appended to ``flux.f32``/``ivar.f32``
as they come, and their metadata is buffered and committed as one part (after
an ``fsync`` of the matrices, via a temporary directory + rename) every
``rows_per_part`` rows, so a part on disk always describes rows that are fully
written. ``manifest.json`` is (re)written only by :meth:`StoreWriter.close`;
:meth:`SpectrumStore.open` reads exactly the rows and parts the manifest
lists, so an interrupted first run never opens as complete and an interrupted
append leaves the previous complete state. Re-open with ``append=True`` (what
``pyspec ingest`` does) to resume: rows past the last committed part are cut
off and :meth:`StoreWriter.done_files` tells which inputs are already stored
or rejected.

Memory stays bounded: the writer buffers at most ``rows_per_part`` metadata
rows (default 16384, a few MB) and the pending rejects; readers memory-map the
matrices and the metadata columns (:attr:`SpectrumStore.meta_columns` reads
columns or rows without loading the table). Parts of 16384 rows keep a store
of a million spectra at about 60 metadata parts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec._meta_legacy import PART_FILE as _LEGACY_PART_RE
from pyspec._meta_legacy import LegacyStorePart
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import (
    SET_FILE,
    STORE_UNITS,
    ColumnSet,
    ColumnSetWriter,
    ColumnSource,
    ColumnStack,
    InMemoryColumns,
    columns_from_rows,
    concat_columns,
)
from pyspec.preprocess import WavelengthGrid, as_grid

FORMAT = "pyspec-spectrum-store"
VERSION = 3
_LEGACY_VERSIONS = (1,)  # stores written before checksums
_NPZ_VERSIONS = (1, 2)  # stores whose parts are all part-NNNNNN.npz (the legacy reader)
_PART_RE = re.compile(r"part-(\d{6})$")
#: pending rejects are flushed into a part once this many accumulate
_REJECT_FLUSH = 4096


def _atomic_write(path: Path, data: bytes) -> None:
    _integrity.atomic_write(path, data)


def _read_json(path: Path) -> Any:
    """A small JSON file, read with a size bound (IndexFormatError when damaged)."""
    data = _integrity.read_limited(path, _integrity.MAX_JSON_BYTES, "JSON file")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{path}: not valid JSON ({exc})") from None


def _part_key(p: Path) -> str:
    """A part's entry in the manifest's checksums: the file that describes it."""
    return f"parts/{p.name}" if p.suffix == ".npz" else f"parts/{p.name}/{SET_FILE}"


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Types and ranges of the manifest fields (before any of them sizes anything)."""
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or isinstance(version, bool) or version not in (
            VERSION, *_NPZ_VERSIONS):
        raise IndexFormatError(f"{path}: not a version-{VERSION} pyspec spectrum store")
    for key in ("n_spectra", "n_pixels", "n_parts"):
        v = manifest.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise IndexFormatError(f"{path}: manifest field {key!r} must be an int >= 0, "
                                   f"got {v!r}")
    if manifest.get("dtype", "<f4") != "<f4":
        raise IndexFormatError(f"{path}: matrices of dtype {manifest.get('dtype')!r}; this "
                               "pyspec reads little-endian float32 ('<f4')")
    if version in _LEGACY_VERSIONS:
        return
    sums = manifest.get("checksums")
    if not isinstance(sums, dict) or len(sums) != manifest["n_parts"] + 2:
        raise IndexFormatError(f"{path}: manifest checksums do not list the store's files")
    wanted = ["grid.json", "preprocessing.json"]
    for i in range(manifest["n_parts"]):
        old, new = f"parts/part-{i:06d}.npz", f"parts/part-{i:06d}/{SET_FILE}"
        # version 2 has old parts only; version 3 may begin with old parts (appended to)
        wanted.append(old if version != VERSION or old in sums else new)
    if sorted(sums) != sorted(wanted):
        raise IndexFormatError(f"{path}: manifest checksums do not list the store's files")
    for name in wanted:
        _integrity.check_record(sums[name], f"{path}/{name}")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _scan_parts(path: Path) -> list[Path]:
    """Contiguous committed parts part-000000 ... in order (column-set directories, or the
    ``.npz`` files of a store written before them)."""
    parts_dir = path / "parts"
    if not parts_dir.is_dir():
        return []
    found: dict[int, Path] = {}
    for p in sorted(parts_dir.iterdir()):  # sorted: a directory before an .npz of one number
        m = _PART_RE.match(p.name) or _LEGACY_PART_RE.match(p.name)
        if m and (p.suffix == ".npz" or p.is_dir()):
            found.setdefault(int(m.group(1)), p)
    out = []
    k = 0
    while k in found:
        out.append(found[k])
        k += 1
    return out


def _open_part(p: Path, record: Any = None) -> ColumnSource:
    """A committed part as a column source, its store attrs checked (any format)."""
    part: ColumnSource = LegacyStorePart(p, record) if p.suffix == ".npz" \
        else ColumnSet(p, record)

    def bad(msg: str) -> IndexFormatError:
        return IndexFormatError(f"store part {p}: {msg}")

    attrs = part.attrs
    for key in ("row_start", "flux_crc32", "ivar_crc32"):
        v = attrs.get(key)
        if (v is None and key == "row_start") or v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 63):
            raise bad(f"missing or invalid {key!r}")
    rejects = attrs.get("rejects")
    if not isinstance(rejects, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r)
            for r in rejects):
        raise bad("missing or invalid rejects")
    file = part.specs.get("file")
    if file is None or file.kind != "str":
        raise bad("missing 'file' column")
    return part


def _schema() -> InMemoryColumns:
    """The columns every store has, even one without rows."""
    return InMemoryColumns(columns_from_rows([]), 0, STORE_UNITS, "<store schema>")


def _block_crc(arr: np.ndarray, crc: int = 0) -> int:
    """CRC32 of a C-contiguous block of matrix rows (as stored on disk)."""
    if arr.size == 0:
        return crc
    return zlib.crc32(memoryview(np.ascontiguousarray(arr)).cast("B"), crc)


class StoreWriter:
    """Appends preprocessed spectra to a store directory (see :meth:`SpectrumStore.create`).

    Use as a context manager: leaving the block normally calls :meth:`close`
    (which writes the manifest); leaving it by an exception does not, so an
    interrupted job never looks complete.
    """

    def __init__(self, path: Path, grid: WavelengthGrid, preprocessing: dict[str, Any] | None,
                 append: bool, rows_per_part: int = 16384) -> None:
        if rows_per_part < 1:
            raise ValueError(f"rows_per_part must be >= 1, got {rows_per_part}")
        self.rows_per_part = int(rows_per_part)
        self.path = path
        self.grid = grid
        self.preprocessing = preprocessing
        self.n_pixels = len(grid)
        self._closed = False
        self._pending_rejects: list[tuple[str, str]] = []
        # metadata of rows already in flux.f32/ivar.f32 but not yet in a part
        self._pending_meta: list[tuple[dict[str, np.ndarray], int]] = []
        self._pending_rows = 0
        self._pending_crc = {"flux": 0, "ivar": 0}  # CRC32 of the rows not yet in a part
        existing = (path / "grid.json").exists()
        if existing and not append:
            raise FileExistsError(f"{path} already holds a spectrum store; pass append=True to "
                                  "add to it (or resume), or choose a new path")
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        if existing:
            self._check_same(path)
        else:
            path.mkdir(parents=True, exist_ok=True)
            _atomic_write(path / "grid.json", _json_bytes(grid.to_dict()))
            _atomic_write(path / "preprocessing.json", _json_bytes(preprocessing))
        (path / "parts").mkdir(exist_ok=True)
        # temporary files and part directories of an interrupted write (one writer at a time)
        stale = {*(path / "parts").glob("*.tmp"), *(path / "parts").glob(".*.tmp"),
                 *path.glob(".*.tmp"), *(path / "parts").glob(".part-*.tmp-*")}
        for p in stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        self._parts = _scan_parts(path)
        self._n_rows = sum(_open_part(p).n_rows for p in self._parts)
        nbytes = self._n_rows * self.n_pixels * 4
        for name in ("flux.f32", "ivar.f32"):
            f = path / name
            if not f.exists():
                f.touch()
            size = f.stat().st_size
            if size < nbytes:
                raise IndexFormatError(f"{f} has {size} bytes but the committed parts describe "
                                       f"{self._n_rows} rows ({nbytes} bytes); the store is "
                                       "damaged")
            if size > nbytes:  # rows of an interrupted chunk: drop them
                os.truncate(f, nbytes)

    def _check_same(self, path: Path) -> None:
        try:
            old_grid = _integrity.grid_from_dict(_read_json(path / "grid.json"),
                                                 str(path / "grid.json"))
            old_pre = _read_json(path / "preprocessing.json")
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"{path}: cannot read the store's grid/preprocessing "
                                   f"({exc})") from None
        if old_grid != self.grid:
            raise ValueError(f"{path} was written on grid {old_grid!r}, not {self.grid!r}; use "
                             "the same --grid to append, or a new store")
        if json.loads(json.dumps(self.preprocessing)) != old_pre:
            raise ValueError(f"{path} was written with different preprocessing settings "
                             f"({old_pre}); use the same settings to append, or a new store")

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def __len__(self) -> int:
        """Rows written so far (committed or buffered)."""
        return self._n_rows + self._pending_rows

    def _committed(self) -> ColumnStack:
        """The committed parts, read through the metadata reader (a part at a time)."""
        return ColumnStack([_open_part(p) for p in self._parts], _schema())

    def done_files(self) -> set[str]:
        """Input files already stored or rejected (for resuming)."""
        done: set[str] = set()
        committed = self._committed()
        for _, _, cols in committed.iter_sources(["file"]):
            done.update(cols["file"].tolist())
        for part in committed.sources:
            done.update(f for f, _ in part.attrs.get("rejects", ()))
        done.update(f for f, _ in self._pending_rejects)
        for cols, _ in self._pending_meta:
            done.update(cols["file"].tolist())
        return done

    def content_hashes(self) -> dict[str, str]:
        """content_hash -> first stored file with that content (for deduplicating inputs)."""
        out: dict[str, str] = {}
        pieces = [cols for _, _, cols in self._committed().iter_sources(["content_hash",
                                                                          "file"])]
        pieces += [cols for cols, _ in self._pending_meta]
        for cols in pieces:
            hashes = cols.get("content_hash")
            if hashes is not None:
                for digest, file in zip(hashes.tolist(), cols["file"].tolist(),
                                        strict=True):
                    if digest:
                        out.setdefault(digest, file)
        return out

    def append(self, flux: Any, ivar: Any, meta_rows: Sequence[Mapping[str, Any]] | Any) -> None:
        """Append rows.

        Parameters
        ----------
        flux, ivar : array of shape (n, n_pixels), float32 (other real dtypes converted)
        meta_rows : sequence of dict (or an astropy Table), one per row, with
            the :data:`pyspec.io.META_KEYS` keys (missing keys become missing values)
        """
        self._check_open()
        flux = np.ascontiguousarray(flux, dtype="<f4")
        ivar = np.ascontiguousarray(ivar, dtype="<f4")
        if flux.ndim != 2 or flux.shape[1] != self.n_pixels or ivar.shape != flux.shape:
            raise ValueError(f"expected flux and ivar of shape (n, {self.n_pixels}), got "
                             f"{flux.shape} and {ivar.shape}")
        if hasattr(meta_rows, "colnames"):
            meta_rows = [dict(zip(meta_rows.colnames, row, strict=True)) for row in meta_rows]
        meta_rows = list(meta_rows)
        if len(meta_rows) != flux.shape[0]:
            raise ValueError(f"{flux.shape[0]} rows of flux but {len(meta_rows)} metadata rows")
        if not (np.all(np.isfinite(flux)) and np.all(np.isfinite(ivar))):
            bad = np.flatnonzero(~(np.isfinite(flux).all(1) & np.isfinite(ivar).all(1)))
            raise ValueError(f"non-finite values in rows {bad[:5].tolist()}; reject those "
                             "spectra instead of storing them")
        if flux.shape[0] == 0:
            return
        # files are opened per chunk, so an abandoned writer holds no handles
        for name, arr in (("flux.f32", flux), ("ivar.f32", ivar)):
            with open(self.path / name, "ab") as fh:
                fh.write(arr.tobytes())
            key = name[:4]
            self._pending_crc[key] = _block_crc(arr, self._pending_crc[key])
        self._pending_meta.append((columns_from_rows(meta_rows), flux.shape[0]))
        self._pending_rows += flux.shape[0]
        if self._pending_rows >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        """Commit buffered rows and rejects as one metadata part (durable on return).

        Rows appended since the last flush are lost if the process dies before
        it (a resumed ingest redoes their inputs); the store never shows them
        half-written.
        """
        self._check_open()
        if not self._pending_rows and not self._pending_rejects:
            return
        for name in ("flux.f32", "ivar.f32"):
            with open(self.path / name, "ab") as fh:
                os.fsync(fh.fileno())
        cols = concat_columns(self._pending_meta) if self._pending_meta else {}
        self._write_part(cols, self._pending_rows)
        self._pending_meta = []
        self._pending_rows = 0

    def reject(self, file: Any, reason: str) -> None:
        """Record an input that could not be stored, with a readable reason."""
        self._check_open()
        self._pending_rejects.append((os.fspath(file) if isinstance(file, os.PathLike)
                                      else str(file), str(reason)))
        if len(self._pending_rejects) >= _REJECT_FLUSH:
            self.flush()

    def _write_part(self, cols: dict[str, np.ndarray], n_rows: int) -> None:
        if n_rows == 0:
            cols = columns_from_rows([])
        attrs = {"row_start": self._n_rows, "flux_crc32": self._pending_crc["flux"],
                 "ivar_crc32": self._pending_crc["ivar"],
                 "rejects": [[f, r] for f, r in self._pending_rejects]}
        path = self.path / "parts" / f"part-{len(self._parts):06d}"
        with ColumnSetWriter(path, n_rows) as writer:
            for name, values in cols.items():
                writer.add(name, values, unit=STORE_UNITS.get(name))
            writer.commit(attrs)  # the part exists, complete, from here on
        self._pending_crc = {"flux": 0, "ivar": 0}
        self._parts.append(path)
        self._n_rows += n_rows
        self._pending_rejects = []

    def close(self) -> None:
        """Flush pending rejects and write the manifest (the store is then complete)."""
        if self._closed:
            return
        self.flush()
        from pyspec import __version__

        files = ["grid.json", "preprocessing.json"] + [_part_key(p) for p in self._parts]
        manifest = {"format": FORMAT, "version": VERSION, "n_spectra": self._n_rows,
                    "n_pixels": self.n_pixels, "n_parts": len(self._parts),
                    "dtype": "<f4", "pyspec_version": __version__,
                    "checksums": {f: _integrity.file_record(self.path / f) for f in files}}
        _atomic_write(self.path / "manifest.json", _integrity.dumps_checked(manifest, indent=2))
        self._closed = True

    def _abort(self) -> None:
        """Stop without writing the manifest (the store keeps its last complete state)."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("store writer is closed")


class SpectrumStore:
    """A complete store opened for reading.

    Attributes
    ----------
    flux, ivar : numpy.memmap of shape (n_spectra, n_pixels), float32, read-only
    meta : astropy.table.Table
        id, file, ra, dec, class, subclass, z, z_err, snr_u..snr_z,
        data_release, vacuum (1 vacuum, 0 air, -1 unknown), layout, plus
        extra columns (e.g. n_interpolated, coverage, format).
    grid : WavelengthGrid
    preprocessing : dict or None
    rejects : astropy.table.Table with columns file, reason

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pyspec.preprocess import WavelengthGrid
    >>> d = tempfile.mkdtemp() + "/store"
    >>> g = WavelengthGrid.preset("halpha-140")
    >>> with SpectrumStore.create(d, g) as w:
    ...     w.append(np.ones((2, 140)), np.ones((2, 140)), [{"id": "a"}, {"id": "b"}])
    ...     w.reject("bad.fits", "truncated file")
    >>> s = SpectrumStore.open(d)
    >>> len(s), s.flux.shape, s.meta["id"].tolist(), s.rejects["reason"].tolist()
    (2, (2, 140), ['a', 'b'], ['truncated file'])
    """

    def __init__(self, path: Path, manifest: dict[str, Any], grid: WavelengthGrid,
                 preprocessing: dict[str, Any] | None) -> None:
        self.path = path
        self.manifest = manifest
        self.grid = grid
        self.preprocessing = preprocessing
        n, m = int(manifest["n_spectra"]), int(manifest["n_pixels"])
        self.flux = self._map("flux.f32", n, m)
        self.ivar = self._map("ivar.f32", n, m)
        self._meta = None
        self._rejects = None
        self._sources: list[ColumnSource] | None = None
        self._stack: ColumnStack | None = None
        self._blocks: list[tuple[int, int, dict[str, int]]] | None = None
        self._verified: set[int] = set()  # blocks whose matrix CRCs have been checked

    @staticmethod
    def create(path: str | os.PathLike, grid: WavelengthGrid | str | dict,
               preprocessing: dict[str, Any] | None = None, *,
               append: bool = False, rows_per_part: int = 16384) -> StoreWriter:
        """Start writing a store (or, with ``append=True``, add to / resume one).

        Parameters
        ----------
        path : directory (created when missing)
        grid : WavelengthGrid, preset name or dict
        preprocessing : dict, optional
            Settings that produced the rows (``Preprocessor.to_dict()``).
        append : bool
            Open an existing store for appending; grid and preprocessing
            must match what it was written with.
        rows_per_part : int
            Metadata rows buffered before they are committed as one part
            (bounds the writer's memory and the number of part files).

        Raises
        ------
        FileExistsError
            ``path`` already holds a store and ``append`` is False.
        ValueError
            Appending with a different grid or preprocessing.
        """
        return StoreWriter(Path(path), as_grid(grid), preprocessing, append, rows_per_part)

    @classmethod
    def open(cls, path: str | os.PathLike) -> SpectrumStore:
        """Open a complete store.

        Raises
        ------
        FileNotFoundError
            No such directory.
        IndexFormatError
            No manifest (an ingest that never finished: re-run it to resume),
            or damaged files.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no spectrum store at {path}")
        mpath = path / "manifest.json"
        if not mpath.exists():
            raise IndexFormatError(f"{path} is not a complete spectrum store (no manifest.json: "
                                   "an ingest was interrupted or is still running); re-run "
                                   "pyspec ingest with the same --out to resume")
        manifest = _integrity.loads_checked(mpath, legacy_versions=_LEGACY_VERSIONS,
                                            what="store manifest")
        _check_manifest(path, manifest)
        sums = manifest.get("checksums", {})
        for name in ("grid.json", "preprocessing.json"):
            if name in sums:
                _integrity.check_file(path / name, sums[name])
        grid = _integrity.grid_from_dict(_read_json(path / "grid.json"), str(path / "grid.json"))
        preprocessing = _read_json(path / "preprocessing.json")
        if preprocessing is not None and not isinstance(preprocessing, dict):
            raise IndexFormatError(f"{path}/preprocessing.json: expected an object or null")
        if int(manifest["n_pixels"]) != len(grid):
            raise IndexFormatError(f"{path}: manifest says {manifest['n_pixels']} pixels, "
                                   f"grid has {len(grid)}")
        return cls(path, manifest, grid, preprocessing)

    def _map(self, name: str, n: int, m: int) -> np.ndarray:
        f = self.path / name
        need = n * m * 4
        size = f.stat().st_size if f.exists() else -1
        if f.exists() and not f.is_file():
            raise IndexFormatError(f"{f} is not a regular file")
        if size < need:
            raise IndexFormatError(f"{f} has {size} bytes, expected at least {need} for "
                                   f"{n} x {m} float32")
        if n == 0 or m == 0:
            out = np.empty((n, m), dtype=np.float32)
            out.setflags(write=False)
            return out
        return np.memmap(f, dtype="<f4", mode="r", shape=(n, m))

    def __len__(self) -> int:
        return int(self.manifest["n_spectra"])

    def __repr__(self) -> str:
        return (f"SpectrumStore({str(self.path)!r}, {len(self)} spectra x "
                f"{self.manifest['n_pixels']} pixels, grid={self.grid.name or self.grid.kind})")

    def _parts(self) -> list[ColumnSource]:
        """The manifest's parts, opened (their descriptions checked against its records)."""
        if self._sources is None:
            paths = _scan_parts(self.path)
            n_parts = int(self.manifest["n_parts"])
            if len(paths) < n_parts:
                raise IndexFormatError(f"{self.path}: manifest lists {n_parts} parts, "
                                       f"{len(paths)} found")
            sums = self.manifest.get("checksums", {})
            legacy = self.manifest["version"] in _NPZ_VERSIONS
            parts = []
            start = 0
            for p in paths[:n_parts]:
                if legacy and p.suffix != ".npz":
                    raise IndexFormatError(f"store part {p}: a version-"
                                           f"{self.manifest['version']} store has .npz parts")
                record = sums.get(_part_key(p))
                if record is None and sums:
                    raise IndexFormatError(f"store part {p}: not listed in the manifest")
                part = _open_part(p, record)
                if part.attrs["row_start"] != start:
                    raise IndexFormatError(f"store part {p}: starts at row "
                                           f"{part.attrs['row_start']}, expected {start}")
                start += part.n_rows
                parts.append(part)
            if start != len(self):
                raise IndexFormatError(f"{self.path}: parts describe {start} rows, the manifest "
                                       f"{len(self)}")
            self._sources = parts
        return self._sources

    @property
    def meta_columns(self) -> ColumnStack:
        """The metadata reader: columns or rows without loading the whole table.

        ``store.meta_columns.rows(rows)`` (an astropy Table of those rows),
        ``.column(name)``, ``.colnames``; see :class:`pyspec.meta_columns.ColumnStack`.
        """
        if self._stack is None:
            self._stack = ColumnStack(self._parts(), _schema())
        return self._stack

    def meta_rows(self, rows: Any, columns: Sequence[str] | None = None) -> Any:
        """Metadata of the given rows only (astropy Table, in the given order)."""
        return self.meta_columns.rows(rows, columns)

    def _row_blocks(self) -> list[tuple[int, int, dict[str, int]]]:
        """(start, stop, {"flux": crc, "ivar": crc}) of every part with recorded CRCs."""
        if self._blocks is None:
            blocks = []
            for part in self._parts():
                if "flux_crc32" in part.attrs and "ivar_crc32" in part.attrs:
                    a = part.attrs["row_start"]
                    blocks.append((a, a + part.n_rows, {"flux": part.attrs["flux_crc32"],
                                                        "ivar": part.attrs["ivar_crc32"]}))
            self._blocks = blocks
        return self._blocks

    def _check_block(self, i: int, crcs: dict[str, int]) -> None:
        a, b, want = self._row_blocks()[i]
        for key, crc in crcs.items():
            if crc != want[key]:
                raise IndexFormatError(f"{self.path}/{key}.f32: rows {a}..{b - 1} fail their "
                                       "checksum (file corrupted)")
        self._verified.add(i)

    def verify(self, chunk_size: int = 4096) -> dict[str, int]:
        """Check every file of the store against its recorded checksums.

        Reads the whole store once: descriptions, parts, and each part's rows
        of ``flux.f32`` and ``ivar.f32``.

        Returns
        -------
        dict
            Counts of what was checked: ``files``, ``parts``, ``rows``.

        Raises
        ------
        IndexFormatError
            The first damaged file or block (named in the message), or a
            version-1 store that has no checksums to check.
        """
        if "checksums" not in self.manifest:
            raise IndexFormatError(f"{self.path}: a version-1 store has no checksums; "
                                   "re-ingest it to get them")
        for name, record in self.manifest["checksums"].items():
            _integrity.check_file(self.path / name, record)
        self._sources = self._stack = None  # read every part and column anew
        n_columns = self.meta_columns.verify()
        for i, (a, b, _) in enumerate(self._row_blocks()):
            crcs = {"flux": 0, "ivar": 0}
            for s in range(a, b, chunk_size):
                e = min(b, s + chunk_size)
                crcs["flux"] = _block_crc(self.flux[s:e], crcs["flux"])
                crcs["ivar"] = _block_crc(self.ivar[s:e], crcs["ivar"])
            self._check_block(i, crcs)
        return {"files": len(self.manifest["checksums"]), "parts": len(self._row_blocks()),
                "columns": n_columns, "rows": len(self)}

    @property
    def meta(self):  # -> astropy.table.Table
        """Per-spectrum metadata (astropy Table, one row per matrix row; the whole table is
        read on first use: prefer :attr:`meta_columns` / :meth:`meta_rows` on large stores)."""
        if self._meta is None:
            meta = self.meta_columns.table()
            meta.meta["grid"] = self.grid.name or self.grid.kind
            self._meta = meta
        return self._meta

    @property
    def rejects(self):  # -> astropy.table.Table
        """Inputs that were not stored: columns file, reason."""
        if self._rejects is None:
            from astropy.table import Table

            rejects = [r for part in self._parts() for r in part.attrs["rejects"]]
            self._rejects = Table({"file": np.array([f for f, _ in rejects], dtype=str),
                                   "reason": np.array([r for _, r in rejects], dtype=str)})
        return self._rejects

    @property
    def preprocessor(self):  # -> pyspec.preprocess.Preprocessor
        """The :class:`~pyspec.preprocess.Preprocessor` that produced the rows."""
        from pyspec.preprocess import Preprocessor

        if not self.preprocessing:
            raise ValueError(f"{self.path} has no preprocessing settings recorded")
        return Preprocessor.from_dict(self.preprocessing)

    def iter_chunks(self, chunk_size: int = 4096) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(start, flux, ivar)`` row blocks of at most ``chunk_size`` rows."""
        chunk_size = int(chunk_size)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        checker = _LazyChecker(self) if "checksums" in self.manifest else None
        for start in range(0, len(self), chunk_size):
            stop = min(start + chunk_size, len(self))
            flux, ivar = self.flux[start:stop], self.ivar[start:stop]
            if checker is not None:
                checker.feed(start, flux, ivar)
            yield start, flux, ivar


class _LazyChecker:
    """Checks each part's matrix CRCs the first time a full pass reads its rows."""

    def __init__(self, store: SpectrumStore) -> None:
        self.store = store
        self.blocks = store._row_blocks()
        self.i = 0
        self.crcs = {"flux": 0, "ivar": 0}

    def feed(self, start: int, flux: np.ndarray, ivar: np.ndarray) -> None:
        stop = start + flux.shape[0]
        pos = start
        while self.i < len(self.blocks) and pos < stop:
            a, b, _ = self.blocks[self.i]
            e = min(b, stop)
            if self.i not in self.store._verified:
                self.crcs["flux"] = _block_crc(flux[pos - start:e - start], self.crcs["flux"])
                self.crcs["ivar"] = _block_crc(ivar[pos - start:e - start], self.crcs["ivar"])
            pos = e
            if e == b:
                if self.i not in self.store._verified:
                    self.store._check_block(self.i, self.crcs)
                self.crcs = {"flux": 0, "ivar": 0}
                self.i += 1
