"""Engine directories on disk: the description, its checks, and the files' checksums.

An engine directory (see :mod:`pyspec.engine`) is written into a temporary
directory beside its final path and swapped in whole; ``engine.json``
describes it and records a size/CRC32 of every other file. This module
writes that directory (:func:`write_engine_dir`), checks a description before
any of it is used (:func:`check_info`) and reads the arrays back
(:func:`load_array`). The metadata is one column set, ``meta/``, written and
read by :mod:`pyspec.meta_columns` (:func:`open_engine_meta`; engines of
versions 1 and 2 keep ``meta/colNNN.npy`` files, read by the legacy reader
:mod:`pyspec._meta_legacy`); the model and index containers are the
engine's backend's (:mod:`pyspec.backends`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec._meta_legacy import ENGINE_COLUMN_FILE, LegacyEngineColumns
from pyspec.backends import Backend, backend_for_class, backend_of, engine_kinds
from pyspec.errors import IndexFormatError
from pyspec.meta_columns import (
    SET_FILE,
    ColumnSet,
    ColumnStack,
    column_crc,
    is_unit,
    save_array,
    write_stack,
    write_table,
)

ENGINE_FORMAT = "pyspec-engine"
ENGINE_VERSION = 3
LEGACY_VERSIONS = (1,)  # engines written before checksums
#: versions whose metadata is meta/colNNN.npy described by "meta_columns" (the legacy reader)
COLUMN_FILE_VERSIONS = (1, 2)
#: the checksum record of the metadata column set's manifest
META_RECORD = f"meta/{SET_FILE}"
#: The arrays of a "pca" re-rank space (see :mod:`pyspec.rerank_space`), under ``rerank/``.
RERANK_FILES = ("pca_mean.npy", "pca_axes.npy", "pca_projection.npy")


def safe_params(model: Any) -> dict[str, Any]:
    from pyspec.catalogue import _jsonable

    try:
        return _jsonable(model.get_params(deep=False))
    except AttributeError:
        return {}


# ----------------------------------------------------------------------------- arrays on disk

def load_array(path: Path, shape: tuple[int, ...], mmap: bool = True) -> np.ndarray:
    """Read an array written by :func:`save_array`; IndexFormatError unless it has ``shape``."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise IndexFormatError(f"{path}: unreadable engine array ({exc})") from None
    if arr.shape != shape:
        raise IndexFormatError(f"{path}: shape {arr.shape}, expected {shape}")
    return arr


# ----------------------------------------------------------------------------- integrity

_INFO_TYPES = {"kind": str, "model_class": str, "n_spectra": int, "n_pixels": int,
               "grid": dict}


def file_checksums(folder: Path, meta_record: dict[str, Any]) -> dict[str, Any]:
    """Records of every file of a freshly written engine directory (the metadata set's
    manifest records its own columns)."""
    sums = {name: _integrity.file_record(folder / name) for name in ("model.bin", "index.bin")}
    sums[META_RECORD] = meta_record
    for name in RERANK_FILES:
        rel = f"rerank/{name}"
        if (folder / rel).is_file():
            arr = np.load(folder / rel, mmap_mode="r", allow_pickle=False)
            sums[rel] = {**_integrity.file_record(folder / rel), "data_crc32": column_crc(arr)}
            del arr
    return sums


def check_info(info_path: Path, info: dict[str, Any]) -> None:
    """Types, ranges and file names of an engine description, before any is used.

    Column file names (of a version-1/2 engine's ``meta_columns``) must be
    plain ``colNNN.npy`` names, as a column set's must be ``cNNN.npy``: a
    description can never make the engine read a file outside its ``meta/``
    folder.
    """
    def bad(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{info_path}: invalid engine description ({msg})")

    for key, typ in _INFO_TYPES.items():
        v = info.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise bad(f"{key!r} must be a {typ.__name__}, got {type(v).__name__}")
    if info["kind"] not in engine_kinds():
        raise bad(f"unknown kind {info['kind']!r}")
    try:
        backend_for_class(info["model_class"])
    except IndexFormatError:
        raise bad(f"unknown model class {info['model_class']!r}") from None
    try:
        backend_for_class(info["model_class"], info["kind"])
    except IndexFormatError:
        raise bad(f"a {info['model_class']} model cannot make a {info['kind']!r} engine") from None
    if info["n_spectra"] < 0:
        raise bad("negative n_spectra")
    for key in ("model_params",):
        if not isinstance(info.get(key, {}), dict):
            raise bad(f"{key!r} must be an object")
    for key in ("preprocessing",):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise bad(f"{key!r} must be an object or null")
    for key in ("store", "store_relative"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise bad(f"{key!r} must be a string or null")
    legacy_meta = info.get("version") in COLUMN_FILE_VERSIONS
    if legacy_meta and not isinstance(info.get("meta_columns"), list):
        raise bad("'meta_columns' must be a list")
    names, files = set(), set()
    for entry in info["meta_columns"] if legacy_meta else ():
        if not isinstance(entry, dict):
            raise bad("meta_columns entries must be objects")
        name, file = entry.get("name"), entry.get("file")
        if not isinstance(name, str) or name in names:
            raise bad(f"column name {name!r} is missing or repeated")
        if not isinstance(file, str) or not ENGINE_COLUMN_FILE.fullmatch(file) or file in files:
            raise bad(f"column file {file!r} is not a plain colNNN.npy name")
        if entry.get("kind") not in ("str", "num"):
            raise bad(f"column {name!r} has unknown kind {entry.get('kind')!r}")
        for key in ("unit", "description"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise bad(f"column {name!r}: {key} must be a string or null")
        if entry.get("unit") is not None and not is_unit(entry["unit"]):
            raise bad(f"column {name!r}: {entry['unit']!r} is not a unit")
        names.add(name)
        files.add(file)
    _integrity.grid_from_dict(info["grid"], str(info_path))
    rerank = info.get("rerank") or {"space": "flux"}
    if not isinstance(rerank, dict) or rerank.get("space") not in ("flux", "pca"):
        raise bad(f"unknown re-rank description {rerank!r}")
    stamp = info.get("store_fingerprint")
    if stamp is not None and not (
            isinstance(stamp, dict) and isinstance(stamp.get("n_spectra"), int)
            and not isinstance(stamp.get("n_spectra"), bool)
            and (stamp.get("manifest_sha256") is None
                 or re.fullmatch(r"[0-9a-f]{64}", str(stamp["manifest_sha256"]))
                 and isinstance(stamp["manifest_sha256"], str))):
        raise bad("invalid store fingerprint")
    if info.get("version") != 1:
        sums = info.get("checksums")
        wanted = {"model.bin", "index.bin",
                  *((f"meta/{f}" for f in files) if legacy_meta else (META_RECORD,))}
        if rerank["space"] == "pca":
            wanted |= {f"rerank/{name}" for name in RERANK_FILES}
        if not isinstance(sums, dict) or set(sums) != wanted:
            raise bad("checksums do not list the engine's files")
        for name in wanted:
            _integrity.check_record(sums[name], f"{info_path.parent / name}")
        for f in files:
            rec = sums[f"meta/{f}"]
            if not isinstance(rec.get("dtype"), str) or not isinstance(rec.get("data_crc32"), str):
                raise bad(f"checksum record of meta/{f} lacks dtype or data_crc32")


def preprocessor_from(settings: dict[str, Any], where: Path) -> Any:
    """The stored preprocessing settings as a Preprocessor, or IndexFormatError.

    Each setting must have the JSON type of its default (a flag stays a
    bool, a fraction a number): the constructor would coerce a damaged
    ``"rest_frame": 2**63`` or ``"to_vacuum": null`` into a valid-looking value.
    """
    from pyspec.preprocess import Preprocessor, WavelengthGrid

    try:
        grid = settings["grid"]
        grid = (WavelengthGrid.preset(grid) if isinstance(grid, str)  # a preset's name
                else _integrity.grid_from_dict(grid, str(where)))
        defaults = Preprocessor(grid).to_dict()
        for key, default in defaults.items():
            value = settings.get(key, default)
            if default is None or key == "grid":
                continue
            if isinstance(default, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) and isinstance(default, bool)
            elif isinstance(default, int | float):
                ok = isinstance(value, int | float) and np.isfinite(value)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                raise ValueError(f"setting {key!r} = {value!r} should be like {default!r}")
        return Preprocessor.from_dict(settings)
    except IndexFormatError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexFormatError(f"{where}: invalid preprocessing settings ({exc})") from None


def check_size(path: Path, record: dict[str, Any]) -> None:
    """Cheap open-time check of a self-checking container: size as recorded."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: missing") from None
    if size != record["size"]:
        raise IndexFormatError(f"{path}: {size} bytes, {record['size']} recorded (truncated, "
                               "corrupted or from another build)")


def dir_identity(path: Path) -> tuple[int, int] | None:
    """(inode, ctime) of a directory: changes when a build swaps a new one in."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns




def write_engine_dir(out: Path, model: Any, index: Any, meta: Any, grid: Any, *,
                     preprocessing: dict[str, Any] | None, store_path: str | os.PathLike | None,
                     timings: dict[str, float] | None, store_fingerprint: dict[str, Any] | None,
                     rerank: tuple[Any, np.ndarray] | None, command: str = "Engine.build",
                     backend: Backend | None = None) -> None:
    """Write a complete engine directory at ``out`` (see :meth:`pyspec.Engine.write`).

    ``meta``: an astropy Table, or a :class:`~pyspec.meta_columns.ColumnStack`
    (a store's ``meta_columns``), merged into ``meta/`` column by column.
    Everything goes into a temporary directory beside ``out`` that replaces
    ``out`` only once complete, so a reader never sees half an engine.
    """
    backend = backend or backend_of(model)
    if len(meta) != len(index):
        raise ValueError(f"metadata has {len(meta)} rows but the index holds {len(index)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _integrity.clean_stale_temp_dirs(out.parent, out.name)  # left by killed builds
    tmp = _integrity.make_temp_dir(out.parent, out.name)
    try:
        model.save(tmp / "model.bin")
        index.save(tmp / "index.bin")
        meta_record = (write_stack(meta, tmp / "meta") if isinstance(meta, ColumnStack)
                       else write_table(meta, tmp / "meta"))
        rerank_info: dict[str, Any] = {"space": "flux"}
        if rerank is not None:
            basis, projection = rerank
            if projection.shape != (len(index), basis.n_components):
                raise ValueError(f"projections of shape {projection.shape}, expected "
                                 f"({len(index)}, {basis.n_components})")
            (tmp / "rerank").mkdir()
            for name, arr in (("pca_mean", basis.mean), ("pca_axes", basis.axes),
                              ("pca_projection", projection)):
                save_array(tmp / "rerank" / f"{name}.npy", arr)
            rerank_info = {"space": "pca", "n_components": basis.n_components,
                           "explained_variance_ratio": round(basis.explained_variance_ratio, 6)}
        from pyspec.catalogue import provenance

        store_path = Path(store_path).resolve() if store_path else None
        info = {
            "format": ENGINE_FORMAT,
            "version": ENGINE_VERSION,
            "kind": backend.kind,
            "model_class": type(model).__name__,
            "model_params": safe_params(model),
            **backend.describe(model),
            "n_spectra": int(len(index)),
            "n_pixels": int(len(grid)),
            "grid": grid.to_dict(),
            "preprocessing": preprocessing,
            "store": None if store_path is None else str(store_path),
            "store_relative": None if store_path is None else
            os.path.relpath(store_path, out.resolve().parent / out.name),
            "store_fingerprint": store_fingerprint,
            "rerank": rerank_info,
            "timings_s": dict(timings or {}),
            "provenance": provenance(command=command),
        }
        info["checksums"] = file_checksums(tmp, meta_record)
        _integrity.atomic_write(tmp / "engine.json", _integrity.dumps_checked(info))
        _integrity.replace_dir(tmp, out)  # the old engine stays until this point
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_engine_meta(path: Path, info: dict[str, Any]) -> ColumnStack:
    """The metadata reader of an engine directory (its columns mapped, headers checked).

    A version-3 engine's ``meta/`` is one column set, checked against its
    record in ``engine.json``; older engines' ``meta/colNNN.npy`` files are read
    through the legacy reader. A description with an empty ``meta_columns``
    (a sharded engine's manifest) opens no file.
    """
    n = int(info["n_spectra"])
    if info.get("format") == ENGINE_FORMAT and info.get("version") not in COLUMN_FILE_VERSIONS:
        source = ColumnSet(path / "meta", info["checksums"][META_RECORD], eager=True)
        if source.n_rows != n:
            raise IndexFormatError(f"{path / 'meta'}: {source.n_rows} rows of metadata, "
                                   f"engine.json says {n}")
        return ColumnStack([source])
    return ColumnStack([LegacyEngineColumns(path / "meta", info.get("meta_columns", []), n,
                                            info.get("checksums"))])


def read_engine_dir(path: Path, mmap: bool) -> tuple[dict[str, Any], Any, Any]:
    """(description, model, index) of an engine directory, each checked before use."""
    info_path = path / "engine.json"
    if not info_path.is_file():
        raise IndexFormatError(f"{path} is not a pyspec engine directory (no engine.json); "
                               "create one with `pyspec build`")
    info = _integrity.loads_checked(info_path, legacy_versions=LEGACY_VERSIONS,
                                    what="engine description")
    if info.get("format") != ENGINE_FORMAT:
        raise IndexFormatError(f"{info_path}: not a pyspec engine description")
    if info.get("version") not in (ENGINE_VERSION, *COLUMN_FILE_VERSIONS):
        raise IndexFormatError(f"{info_path}: engine format version {info.get('version')} "
                               f"is not supported (this pyspec reads {ENGINE_VERSION})")
    check_info(info_path, info)
    sums = info.get("checksums", {})
    for name in ("model.bin", "index.bin"):
        if name in sums:
            check_size(path / name, sums[name])
    backend = backend_for_class(info["model_class"], info["kind"])
    model = backend.load_model(path / "model.bin")
    return info, model, backend.load_index(path / "index.bin", model, mmap)
