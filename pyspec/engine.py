"""The search engine: a model, an index and metadata over a spectrum store, saved as a directory.

``Engine.build(store, model, out=DIR)`` encodes every spectrum of a
:class:`~pyspec.SpectrumStore` (fitting the model first if it is not fitted)
and writes::

    DIR/engine.json     kind, model class, grid, preprocessing, store path, sizes, provenance
    DIR/model.bin       the model (PILHasher/LSHHasher/ITQHasher/ProductQuantizer .save())
    DIR/index.bin       HammingIndex (binary codes) or PQIndex (product-quantised codes)
    DIR/meta/           the store's metadata, one .npy file per column (memory-mapped)
    DIR/rerank/         re-rank space "pca": the principal basis and every row's projection

``Engine.open(DIR)`` maps the index and the metadata columns without reading
them, so opening an engine over millions of spectra takes milliseconds; only
the rows a query returns are ever decoded. Index ids are store rows, so a
neighbour's metadata and spectrum are one lookup away.

``engine.query(x, k=10)`` accepts a FITS path, a :class:`~pyspec.Spectrum`
or a flux array on the engine's grid, prepares it with the store's own
:class:`~pyspec.preprocess.Preprocessor` settings (the same resampling and
normalisation the archive went through), encodes it, searches, optionally
re-ranks the best candidates by exact squared L2 (by default between their
projections on the store's principal components, see
:mod:`pyspec.rerank_space`), and returns an astropy Table of neighbours with
their metadata.

Integrity and atomicity (version 2 engines): ``engine.json`` carries a
checksum of its own content and a size/CRC32 record of every other file
(plus each metadata column's dtype and data CRC). :meth:`Engine.open` checks
the description, the column headers and the containers (which check
themselves); a column's data is checked the first time it is read, and
:meth:`Engine.verify` (``pyspec verify``) checks every byte. A build writes
into a temporary directory beside ``out`` and swaps it in only when complete
(atomically on Linux), so readers and a killed build always leave a complete
engine at ``out``; an engine object that is already open keeps reading the
files it mapped. Queries on one Engine object may run from many threads.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec._validation import as_float_matrix, check_k
from pyspec.errors import IndexFormatError, NotFittedError

__all__ = ["Engine", "make_model"]

ENGINE_FORMAT = "pyspec-engine"
ENGINE_VERSION = 2
_LEGACY_VERSIONS = (1,)  # engines written before checksums
_MODEL_CLASSES = {
    "PILHasher": "pyspec.models.pil",
    "LSHHasher": "pyspec.models.lsh",
    "ITQHasher": "pyspec.models.itq",
    "ProductQuantizer": "pyspec.models.pq",
}
_MODEL_ALIASES = {"pil": "PILHasher", "lsh": "LSHHasher", "itq": "ITQHasher",
                  "pq": "ProductQuantizer"}
# Output columns of a query, in this order, when the store has them.
RESULT_COLUMNS = ("id", "file", "ra", "dec", "class", "subclass", "z", "snr_r")
_DEFAULT_CHUNK = 8192


def _model_class(name: str) -> type:
    import importlib

    if name not in _MODEL_CLASSES:
        raise IndexFormatError(f"unknown model class {name!r}; "
                               f"expected one of {sorted(_MODEL_CLASSES)}")
    return getattr(importlib.import_module(_MODEL_CLASSES[name]), name)


def make_model(name: str, **params: Any) -> Any:
    """A fresh model from a short name ("pil", "lsh", "itq", "pq") or class name."""
    cls_name = _MODEL_ALIASES.get(name.lower(), name)
    if cls_name not in _MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; choose pil, lsh, itq or pq")
    return _model_class(cls_name)(**params)


def _is_fitted(model: Any) -> bool:
    """True when the model has learned state (probes with a one-row transform/encode)."""
    n_in = getattr(model, "n_features_in_", None)
    if n_in is None:
        return False
    probe = np.zeros((1, int(n_in)), np.float32)
    try:
        (model.encode if type(model).__name__ == "ProductQuantizer" else model.transform)(probe)
    except NotFittedError:
        return False
    return True


def _kind_of(model: Any) -> str:
    name = type(model).__name__
    if name == "ProductQuantizer":
        return "pq"
    if name in ("PILHasher", "LSHHasher", "ITQHasher") or hasattr(model, "n_bits"):
        return "hamming"
    raise TypeError(f"model must be a PILHasher, LSHHasher, ITQHasher or ProductQuantizer, "
                    f"got {name}")


def _safe_params(model: Any) -> dict[str, Any]:
    from pyspec.catalogue import _jsonable

    try:
        return _jsonable(model.get_params(deep=False))
    except AttributeError:
        return {}


def _load_index(kind: str, path: Path, model: Any, mmap: bool) -> Any:
    if kind == "hamming":
        from pyspec.index.hamming import HammingIndex

        return HammingIndex.load(path, mmap=mmap)
    from pyspec.index.pq import PQIndex

    try:
        return PQIndex.load(path, mmap=mmap)
    except TypeError:  # a PQIndex.load without mmap=
        return PQIndex.load(path)


# ----------------------------------------------------------------------------- arrays on disk

def _save_array(path: Path, arr: np.ndarray) -> None:
    """Write one engine array (.npy, no pickles): every array of an engine goes through here."""
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def _load_array(path: Path, shape: tuple[int, ...], mmap: bool = True) -> np.ndarray:
    """Read an array written by :func:`_save_array`; IndexFormatError unless it has ``shape``."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise IndexFormatError(f"{path}: unreadable engine array ({exc})") from None
    if arr.shape != shape:
        raise IndexFormatError(f"{path}: shape {arr.shape}, expected {shape}")
    return arr


# ----------------------------------------------------------------------------- metadata columns

def _write_meta_columns(meta: Any, folder: Path) -> list[dict[str, Any]]:
    """Write each column of ``meta`` as a .npy file; return the column schema."""
    folder.mkdir()
    schema = []
    for i, name in enumerate(meta.colnames):
        col = meta[name]
        values = col.filled() if hasattr(col, "filled") and getattr(col, "mask", None) is not None \
            else col
        arr = np.asarray(values)
        entry: dict[str, Any] = {"name": name, "file": f"col{i:03d}.npy",
                                 "unit": None if col.unit is None else str(col.unit),
                                 "description": col.info.description or None}
        if arr.dtype.kind in "OUS":
            if arr.dtype.kind == "O":
                arr = np.array(["" if v is None else str(v) for v in arr])
            if arr.dtype.kind == "U":
                arr = np.char.encode(arr, "utf-8")
            entry["kind"] = "str"
        elif arr.dtype.kind in "biuf":
            entry["kind"] = "num"
        else:
            continue  # e.g. a mixin column: not carried into the engine
        if arr.ndim != 1:
            continue
        if arr.dtype.kind == "S" and arr.dtype.itemsize == 0:
            arr = arr.astype("S1")
        _save_array(folder / entry["file"], arr)
        schema.append(entry)
    return schema


class _MetaColumns:
    """Memory-mapped metadata columns; decodes only the rows asked for.

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
        if not isinstance(arr, np.ndarray) or arr.shape != (self._n,):
            raise IndexFormatError(f"{path}: shape {getattr(arr, 'shape', None)}, expected "
                                   f"({self._n},)")
        kinds = "S" if entry["kind"] == "str" else "biuf"
        record = self._records[entry["name"]]
        expected = record.get("dtype") if isinstance(record, dict) else None
        if arr.dtype.kind not in kinds or (expected is not None and arr.dtype.str != expected):
            raise IndexFormatError(f"{path}: dtype {arr.dtype.str} does not match the "
                                   f"{entry['kind']} column it should hold")
        return arr

    def __len__(self) -> int:
        return self._n

    def array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            arr = self._mapped[name]
            record = self._records[name]
            if record is not None and _array_crc(arr) != record.get("data_crc32"):
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


# ----------------------------------------------------------------------------- integrity

_COLUMN_FILE = re.compile(r"col\d{3,6}\.npy")
_INFO_TYPES = {"kind": str, "model_class": str, "n_spectra": int, "n_pixels": int,
               "grid": dict, "meta_columns": list}


def _array_crc(arr: np.ndarray) -> str:
    data = np.ascontiguousarray(arr).reshape(-1).view(np.uint8) if arr.size else b""
    return _integrity.crc_text(zlib.crc32(data))


#: The arrays of a "pca" re-rank space (see :mod:`pyspec.rerank_space`), under ``rerank/``.
RERANK_FILES = ("pca_mean.npy", "pca_axes.npy", "pca_projection.npy")


def _file_checksums(folder: Path, schema: list[dict[str, Any]]) -> dict[str, Any]:
    """Records of every file of a freshly written engine directory."""
    sums = {name: _integrity.file_record(folder / name) for name in ("model.bin", "index.bin")}
    for entry in schema:
        rel = f"meta/{entry['file']}"
        arr = np.load(folder / rel, mmap_mode="r", allow_pickle=False)
        sums[rel] = {**_integrity.file_record(folder / rel), "dtype": arr.dtype.str,
                     "data_crc32": _array_crc(arr)}
        del arr
    for name in RERANK_FILES:
        rel = f"rerank/{name}"
        if (folder / rel).is_file():
            arr = np.load(folder / rel, mmap_mode="r", allow_pickle=False)
            sums[rel] = {**_integrity.file_record(folder / rel), "data_crc32": _array_crc(arr)}
            del arr
    return sums


def _check_info(info_path: Path, info: dict[str, Any]) -> None:
    """Types, ranges and file names of an engine description, before any is used.

    Column file names must be plain ``colNNN.npy`` names: a description can
    never make the engine read a file outside its ``meta/`` folder.
    """
    def bad(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{info_path}: invalid engine description ({msg})")

    for key, typ in _INFO_TYPES.items():
        v = info.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise bad(f"{key!r} must be a {typ.__name__}, got {type(v).__name__}")
    if info["kind"] not in ("hamming", "pq"):
        raise bad(f"unknown kind {info['kind']!r}")
    if info["model_class"] not in _MODEL_CLASSES:
        raise bad(f"unknown model class {info['model_class']!r}")
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
    names, files = set(), set()
    for entry in info["meta_columns"]:
        if not isinstance(entry, dict):
            raise bad("meta_columns entries must be objects")
        name, file = entry.get("name"), entry.get("file")
        if not isinstance(name, str) or name in names:
            raise bad(f"column name {name!r} is missing or repeated")
        if not isinstance(file, str) or not _COLUMN_FILE.fullmatch(file) or file in files:
            raise bad(f"column file {file!r} is not a plain colNNN.npy name")
        if entry.get("kind") not in ("str", "num"):
            raise bad(f"column {name!r} has unknown kind {entry.get('kind')!r}")
        for key in ("unit", "description"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise bad(f"column {name!r}: {key} must be a string or null")
        if entry.get("unit") is not None and not _is_unit(entry["unit"]):
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
    if info.get("version") == ENGINE_VERSION:
        sums = info.get("checksums")
        wanted = {"model.bin", "index.bin", *(f"meta/{f}" for f in files)}
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


def _preprocessor_from(settings: dict[str, Any], where: Path) -> Any:
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


@functools.lru_cache(maxsize=256)
def _is_unit(text: str) -> bool:
    from astropy import units

    try:
        units.Unit(text, parse_strict="raise")
    except (ValueError, TypeError):
        return False
    return True


def _check_size(path: Path, record: dict[str, Any]) -> None:
    """Cheap open-time check of a self-checking container: size as recorded."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: missing") from None
    if size != record["size"]:
        raise IndexFormatError(f"{path}: {size} bytes, {record['size']} recorded (truncated, "
                               "corrupted or from another build)")


def _dir_identity(path: Path) -> tuple[int, int] | None:
    """(inode, ctime) of a directory: changes when a build swaps a new one in."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns


# ----------------------------------------------------------------------------- the engine

class Engine:
    """A searchable engine directory (see the module docstring).

    Create with :meth:`build`, load with :meth:`open`. Attributes: ``path``,
    ``kind`` ("hamming" or "pq"), ``metric`` ("hamming" or "l2"), ``model``,
    ``index``, ``grid`` (WavelengthGrid), ``n_pixels``, ``info`` (the parsed
    ``engine.json``) and ``distance_unit``.
    """

    def __init__(self, path: Path, info: dict[str, Any], model: Any, index: Any) -> None:
        from pyspec.preprocess import WavelengthGrid

        self.path = Path(path)
        self.info = info
        self.kind = info["kind"]
        self.metric = "hamming" if self.kind == "hamming" else "l2"
        self.distance_unit = "bit" if self.kind == "hamming" else None
        self.model = model
        self.index = index
        self.grid = WavelengthGrid.from_dict(info["grid"])
        self.n_pixels = len(self.grid)
        self._meta_cols = _MetaColumns(self.path / "meta", info["meta_columns"], info["n_spectra"],
                                       info.get("checksums"))
        self._meta_table: Any = None
        self._table_templates: dict[tuple, Any] = {}
        self._provenance_parts: dict[str, Any] | None = None
        self._preprocessor: Any = None
        self._store: Any = None
        self._pca: tuple[Any, np.ndarray] | None = None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def build(cls, store: Any, model: Any = "pil", out: str | os.PathLike = "engine", *,
              chunk_size: int = _DEFAULT_CHUNK, fit_sample: int | None = None,
              num_threads: int | None = None, progress: bool = False,
              overwrite: bool = False, random_state: int | None = 0,
              allow_unknown_preprocessing: bool = False, rerank_space: str = "pca",
              n_components: int | None = None) -> Engine:
        """Fit (if needed) ``model``, encode ``store`` in chunks and write the engine to ``out``.

        Parameters
        ----------
        store : SpectrumStore or path-like
            The prepared spectra to index (rows become index ids).
        model : model instance or str
            A PILHasher/LSHHasher/ITQHasher (-> HammingIndex) or
            ProductQuantizer (-> PQIndex), fitted or not; or "pil", "lsh",
            "itq", "pq" for one with default parameters.
        out : path-like
            Engine directory to create.
        chunk_size : int
            Spectra encoded per chunk (bounds memory).
        fit_sample : int, optional
            Fit an unfitted model on this many randomly chosen rows (default:
            all rows).
        num_threads : int, optional
            Threads for the compiled kernels.
        progress : bool
            tqdm progress bar while encoding.
        overwrite : bool
            Replace an existing engine directory.
        random_state : int, optional
            Seed for choosing ``fit_sample`` rows.
        allow_unknown_preprocessing : bool
            Build over a store that records no preprocessing (then only
            its own stored rows can be queried meaningfully).
        rerank_space : {"pca", "flux"}
            Where the two-stage search re-ranks its candidates: "pca"
            (default) by L2 between projections on the store's first
            principal components (fitted here, stored with the engine),
            "flux" by L2 between the stored spectra.
        n_components : int, optional
            Principal components for ``rerank_space="pca"`` (default:
            :func:`pyspec.rerank_space.n_pca_components`: 32, at most n / 4).

        Returns
        -------
        Engine
            The engine, opened from ``out``.
        """
        from pyspec.store import SpectrumStore

        if not hasattr(store, "flux"):
            store = SpectrumStore.open(store)
        out = Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; choose another --out or pass overwrite")
        preprocessing = getattr(store, "preprocessing", None)
        if not allow_unknown_preprocessing:
            from pyspec.search_checks import recipe_of

            recipe_of(preprocessing, f"store {getattr(store, 'path', '')}")
        from pyspec.rerank_space import RERANK_SPACES

        if rerank_space not in RERANK_SPACES:
            raise ValueError(f"rerank_space must be one of {RERANK_SPACES}, got {rerank_space!r}")
        if n_components is not None and (isinstance(n_components, bool) or int(n_components) < 1):
            raise ValueError(f"n_components must be an int >= 1, got {n_components!r}")
        if isinstance(model, str):
            model = make_model(model)
        kind = _kind_of(model)
        n = len(store)
        if n == 0:
            raise ValueError(f"store {getattr(store, 'path', '')} holds no spectra")
        grid = store.grid
        n_pix = len(grid)
        if store.flux.shape[1] != n_pix:
            raise IndexFormatError(f"store flux has {store.flux.shape[1]} pixels, its grid {n_pix}")

        from pyspec.search_checks import search_space, to_search_space

        space = search_space(preprocessing)
        t0 = time.perf_counter()
        if not _is_fitted(model):
            if fit_sample is not None and fit_sample < n:
                rng = np.random.default_rng(random_state)
                rows = np.sort(rng.choice(n, size=int(fit_sample), replace=False))
                train = np.asarray(store.flux[rows], np.float32)
            elif kind == "hamming" and hasattr(store, "iter_chunks") and space is None:
                train = store  # the hashers stream a store chunk by chunk
            else:
                train = np.asarray(store.flux, np.float32)
            model.fit(train if space is None else to_search_space(train, space))
            del train
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        basis = None
        if rerank_space == "pca":
            from pyspec.rerank_space import PCA_COMPONENTS, fit_principal_basis, n_pca_components

            c = n_pca_components(n, n_pix, n_components or PCA_COMPONENTS)
            basis = fit_principal_basis(store.flux, c, chunk_size=chunk_size,
                                        random_state=random_state,
                                        transform=lambda x: to_search_space(x, space))
            projection = np.empty((n, basis.n_components), np.float32)
        pca_s = time.perf_counter() - t0
        n_in = getattr(model, "n_features_in_", None)
        if n_in is not None and n_in != n_pix:
            raise ValueError(f"the model was fitted on {n_in} pixels but the store's grid has "
                             f"{n_pix}; fit it on this store's spectra (or use the same grid)")

        if kind == "hamming":
            from pyspec.index.hamming import HammingIndex

            index = HammingIndex(n_bits=int(model.n_bits))
        else:
            from pyspec.index.pq import PQIndex

            index = PQIndex(model)

        from tqdm.auto import tqdm

        from pyspec.search_checks import code_keys, store_fingerprint, warn_if_collapsed

        t0 = time.perf_counter()
        keys = []
        with tqdm(total=n, desc="encoding", unit="spec", disable=not progress, leave=False) as bar:
            for start in range(0, n, chunk_size):
                chunk = to_search_space(as_float_matrix(store.flux[start:start + chunk_size],
                                                        "store flux"), space)
                ids = np.arange(start, start + chunk.shape[0], dtype=np.int64)
                if basis is not None:
                    projection[start:start + chunk.shape[0]] = basis.project(chunk)
                if kind == "hamming":
                    codes = model.encode(chunk, num_threads=num_threads)
                    keys.append(code_keys(codes))
                    index.add(codes, ids=ids)
                else:
                    index.add(chunk, ids=ids, num_threads=num_threads)
                bar.update(chunk.shape[0])
        encode_s = time.perf_counter() - t0
        if keys:
            warn_if_collapsed(int(np.unique(np.concatenate(keys)).size), n,
                              f"{type(model).__name__} on {getattr(store, 'path', 'the store')}")

        timings = {"fit": round(fit_s, 3), "pca": round(pca_s, 3), "encode": round(encode_s, 3)}
        return cls.write(out, model, index, store.meta, grid,
                         preprocessing=preprocessing,
                         store_path=getattr(store, "path", None), timings=timings,
                         overwrite=overwrite, store_fingerprint=store_fingerprint(store),
                         rerank=None if basis is None else (basis, projection))

    @classmethod
    def write(cls, out: str | os.PathLike, model: Any, index: Any, meta: Any, grid: Any, *,
              preprocessing: dict[str, Any] | None = None,
              store_path: str | os.PathLike | None = None,
              timings: dict[str, float] | None = None, overwrite: bool = False,
              store_fingerprint: dict[str, Any] | None = None,
              rerank: tuple[Any, np.ndarray] | None = None) -> Engine:
        """Write an engine directory from a fitted model, a filled index and metadata.

        :meth:`build` ends here; call it directly to assemble an engine from
        codes encoded elsewhere (e.g. a distributed encoding job). Index ids
        must be rows of ``meta`` (and of the store at ``store_path``).
        ``rerank``: (PrincipalBasis, projections of every row) for the "pca"
        re-rank space; None re-ranks by L2 between the stored spectra.
        """
        out = Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; choose another --out or pass overwrite")
        kind = _kind_of(model)
        if len(meta) != len(index):
            raise ValueError(f"metadata has {len(meta)} rows but the index holds {len(index)}")
        out.parent.mkdir(parents=True, exist_ok=True)
        _integrity.clean_stale_temp_dirs(out.parent, out.name)  # left by killed builds
        tmp = _integrity.make_temp_dir(out.parent, out.name)
        try:
            model.save(tmp / "model.bin")
            index.save(tmp / "index.bin")
            schema = _write_meta_columns(meta, tmp / "meta")
            rerank_info: dict[str, Any] = {"space": "flux"}
            if rerank is not None:
                basis, projection = rerank
                if projection.shape != (len(index), basis.n_components):
                    raise ValueError(f"projections of shape {projection.shape}, expected "
                                     f"({len(index)}, {basis.n_components})")
                (tmp / "rerank").mkdir()
                for name, arr in (("pca_mean", basis.mean), ("pca_axes", basis.axes),
                                  ("pca_projection", projection)):
                    _save_array(tmp / "rerank" / f"{name}.npy", arr)
                rerank_info = {"space": "pca", "n_components": basis.n_components,
                               "explained_variance_ratio":
                                   round(basis.explained_variance_ratio, 6)}
            from pyspec.catalogue import provenance

            store_path = Path(store_path).resolve() if store_path else None
            info = {
                "format": ENGINE_FORMAT,
                "version": ENGINE_VERSION,
                "kind": kind,
                "model_class": type(model).__name__,
                "model_params": _safe_params(model),
                "n_bits": int(model.n_bits) if kind == "hamming" else None,
                "n_spectra": int(len(index)),
                "n_pixels": int(len(grid)),
                "grid": grid.to_dict(),
                "preprocessing": preprocessing,
                "store": None if store_path is None else str(store_path),
                "store_relative": None if store_path is None else
                os.path.relpath(store_path, out.resolve().parent / out.name),
                "meta_columns": schema,
                "store_fingerprint": store_fingerprint,
                "rerank": rerank_info,
                "timings_s": dict(timings or {}),
                "provenance": provenance(command="Engine.build"),
            }
            info["checksums"] = _file_checksums(tmp, schema)
            _integrity.atomic_write(tmp / "engine.json", _integrity.dumps_checked(info))
            _integrity.replace_dir(tmp, out)  # the old engine stays until this point
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(out)

    @classmethod
    def open(cls, path: str | os.PathLike, mmap: bool = True) -> Engine:
        """Open an engine directory written by :meth:`build` (index memory-mapped).

        Raises
        ------
        FileNotFoundError
            No such directory.
        IndexFormatError
            Not an engine, or a damaged one (the message names the file).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such engine directory: {path}")
        if cls is Engine and (path / "sharded-engine.json").is_file():
            from pyspec.distributed.engine import ShardedEngine  # one engine per shard

            return ShardedEngine.open(path, mmap=mmap)
        for attempt in range(3):
            before = _dir_identity(path)
            try:
                engine = cls._open_once(path, mmap)
            except (IndexFormatError, FileNotFoundError):
                # a build swapped the directory while we read it: read the new one
                if attempt == 2 or _dir_identity(path) == before:
                    raise
                continue
            if _dir_identity(path) == before or attempt == 2:
                return engine
        raise IndexFormatError(f"{path}: replaced while being opened, three times in a row")

    def verify(self) -> dict[str, int]:
        """Check every byte of the engine directory against its recorded checksums.

        Returns
        -------
        dict
            ``files``: files checked, ``columns``: metadata columns checked.

        Raises
        ------
        IndexFormatError
            The first damaged file (named), or a version-1 engine, which has
            no checksums.
        """
        sums = self.info.get("checksums")
        if sums is None:
            raise IndexFormatError(f"{self.path}: a version-1 engine has no checksums; "
                                   "rebuild it to get them")
        for name, record in sums.items():
            _integrity.check_file(self.path / name, record)
        for name in self._meta_cols.colnames:
            self._meta_cols.array(name)
        if self.rerank_space == "pca":
            self._pca = None  # read and check the re-rank arrays' data anew
            self._principal()
        return {"files": len(sums) + 1, "columns": len(self._meta_cols.colnames)}

    @classmethod
    def _open_once(cls, path: Path, mmap: bool) -> Engine:
        info_path = path / "engine.json"
        if not info_path.is_file():
            raise IndexFormatError(f"{path} is not a pyspec engine directory (no engine.json); "
                                   "create one with `pyspec build`")
        info = _integrity.loads_checked(info_path, legacy_versions=_LEGACY_VERSIONS,
                                        what="engine description")
        if info.get("format") != ENGINE_FORMAT:
            raise IndexFormatError(f"{info_path}: not a pyspec engine description")
        if info.get("version") not in (ENGINE_VERSION, *_LEGACY_VERSIONS):
            raise IndexFormatError(f"{info_path}: engine format version {info.get('version')} "
                                   f"is not supported (this pyspec reads {ENGINE_VERSION})")
        _check_info(info_path, info)
        sums = info.get("checksums", {})
        for name in ("model.bin", "index.bin"):
            if name in sums:
                _check_size(path / name, sums[name])
        model = _model_class(info["model_class"]).load(path / "model.bin")
        index = _load_index(info["kind"], path / "index.bin", model, mmap)
        engine = cls(path, info, model, index)
        if len(index) != info["n_spectra"]:
            raise IndexFormatError(f"{path}: index holds {len(index)} spectra, engine.json says "
                                   f"{info['n_spectra']}")
        n_in = getattr(model, "n_features_in_", None)
        if n_in is not None and n_in != engine.n_pixels:
            raise IndexFormatError(f"{path}: model expects {n_in} pixels but the engine grid has "
                                   f"{engine.n_pixels}")
        return engine

    # -- basic facts ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.info["n_spectra"])

    def __repr__(self) -> str:
        return (f"Engine({str(self.path)!r}, kind={self.kind!r}, model={self.info['model_class']}, "
                f"n_spectra={len(self)}, n_pixels={self.n_pixels})")

    @property
    def meta(self) -> Any:
        """The full metadata table (decoded on first use; prefer :meth:`meta_rows`)."""
        if self._meta_table is None:
            self._meta_table = self._meta_cols.rows(np.arange(len(self)))
        return self._meta_table

    def meta_rows(self, rows: np.ndarray, columns: Sequence[str] | None = None) -> Any:
        """Metadata of the given store rows only (astropy Table, in the given order)."""
        return self._meta_cols.rows(np.asarray(rows, np.int64), columns)

    @property
    def preprocessor(self) -> Any:
        """The Preprocessor that prepared the store (rebuilt from its settings)."""
        if self._preprocessor is None:
            from pyspec.search_checks import recipe_of

            settings = self.info.get("preprocessing")
            if settings and "grid" not in settings:
                settings = {**settings, "grid": self.info["grid"]}
            if settings:  # damaged settings are a format error before a recipe question
                _preprocessor_from(settings, self.path / "engine.json")
            self._preprocessor = recipe_of(settings, f"engine {self.path}")
        return self._preprocessor

    @property
    def store(self) -> Any:
        """The spectrum store the engine was built from (for re-ranking and plots)."""
        if self._store is None:
            from pyspec.store import SpectrumStore

            candidates = []
            if self.info.get("store_relative"):
                candidates.append((self.path / self.info["store_relative"]).resolve())
            if self.info.get("store"):
                candidates.append(Path(self.info["store"]))
            found = next((p for p in candidates if p.exists()), None)
            if found is None:
                raise FileNotFoundError(f"the engine's spectrum store is gone (looked at "
                                        f"{', '.join(map(str, candidates)) or 'nothing'}); "
                                        "re-ranking and neighbour spectra need it")
            store = SpectrumStore.open(found)
            self.check_grid(store.grid, f"store {found}")
            if len(store) < len(self):
                raise IndexFormatError(f"store {found} has {len(store)} spectra, the engine "
                                       f"indexes {len(self)}: rebuild the engine")
            from pyspec.search_checks import check_store_unchanged

            check_store_unchanged(self.info.get("store_fingerprint"), store, str(self.path))
            self._store = store
        return self._store

    def check_store(self, store: Any, what: str = "store") -> None:
        """Raise unless ``store`` has the engine's grid and preprocessing recipe.

        Raises
        ------
        ValueError
            A different wavelength grid.
        PreprocessingError
            A different or unknown preprocessing recipe.
        """
        from pyspec.search_checks import check_same_preprocessing

        self.check_grid(store.grid, what)
        check_same_preprocessing(self.info.get("preprocessing"),
                                 getattr(store, "preprocessing", None), what, str(self.path))

    def check_grid(self, grid: Any, what: str = "input") -> None:
        """Raise ValueError unless ``grid`` equals the engine's wavelength grid."""
        wave = np.asarray(grid.wavelength, np.float64)
        mine = self.grid.wavelength
        if wave.shape != mine.shape or not np.allclose(wave, mine, rtol=1e-9, atol=1e-6):
            raise ValueError(
                f"{what} uses a different wavelength grid ({len(wave)} pixels, "
                f"{wave[0]:.1f}-{wave[-1]:.1f} A) from the engine {self.path} "
                f"({len(mine)} pixels, {mine[0]:.1f}-{mine[-1]:.1f} A); "
                "prepare it with the engine's grid")

    # -- preparation and encoding ---------------------------------------------------------------
    def prepare(self, items: Any, prepared: bool = False
                ) -> tuple[np.ndarray, list[dict[str, Any]], list[tuple[str, str]]]:
        """Read and preprocess query spectra exactly as the store's spectra were.

        Parameters
        ----------
        items : path, Spectrum, ndarray or a sequence of paths / Spectrum objects
            A 1-D array (or 2-D array, one row per spectrum) is taken as flux
            on the engine's grid and goes through the same normalisation.
        prepared : bool
            ``items`` is an array of rows already prepared by the store's
            recipe (e.g. rows of the store): used as they are. A recipe with
            a continuum division is not idempotent, so a stored row prepared
            a second time is close to, not equal to, itself.

        Returns
        -------
        flux : ndarray of shape (n_ok, n_pixels), float32
        metas : list of n_ok dicts (the spectra's metadata)
        rejects : list of (name, reason) for inputs that could not be used
        """
        if prepared:
            flux = as_float_matrix(np.atleast_2d(np.asarray(items)), "prepared flux",
                                   n_features=self.n_pixels)
            return np.ascontiguousarray(flux), [{"id": f"array[{i}]"}
                                                for i in range(flux.shape[0])], []
        spectra, names, rejects = self._as_spectra(items)
        if not spectra:
            return np.empty((0, self.n_pixels), np.float32), [], rejects
        batch = self.preprocessor.apply(spectra)
        ok = np.asarray(batch.ok, bool)
        metas = []
        for i, spec in enumerate(spectra):
            if ok[i]:
                metas.append(dict(getattr(spec, "meta", None) or {}))
            else:
                rejects.append((names[i], str(batch.reasons[i])))
        flux = np.ascontiguousarray(np.asarray(batch.flux, np.float32)[ok])
        return flux, metas, rejects

    def _as_spectra(self, items: Any) -> tuple[list[Any], list[str], list[tuple[str, str]]]:
        from pyspec.io import Spectrum, read_spectra, read_spectrum

        if isinstance(items, np.ndarray):
            arr = np.asarray(items)
            if arr.ndim == 1:
                arr = arr[np.newaxis, :]
            if arr.ndim != 2 or arr.shape[1] != self.n_pixels:
                raise ValueError(f"array queries must be flux on the engine's grid: expected "
                                 f"shape ({self.n_pixels},) or (n, {self.n_pixels}), got "
                                 f"{arr.shape}")
            wave = self.grid.wavelength
            spectra = [self._array_spectrum(Spectrum, wave, row, i) for i, row in enumerate(arr)]
            return spectra, [f"array[{i}]" for i in range(len(spectra))], []
        if isinstance(items, (str, os.PathLike)):
            spec = read_spectrum(items)
            return [spec], [str(items)], []
        if isinstance(items, Spectrum):
            return [items], [str(items.meta.get("id", "spectrum"))], []
        items = list(items)
        if all(isinstance(x, Spectrum) for x in items):
            return items, [str(s.meta.get("id", i)) for i, s in enumerate(items)], []
        if all(isinstance(x, (str, os.PathLike)) for x in items):
            res = read_spectra(items)
            names = [str(getattr(s, "meta", {}).get("file", "")) for s in res.spectra]
            return list(res.spectra), names, [(str(f), str(r)) for f, r in res.rejects]
        raise TypeError("queries must be a path, a Spectrum, a flux array, or a list of paths "
                        "or Spectrum objects")

    @staticmethod
    def _array_spectrum(cls: type, wave: np.ndarray, flux: np.ndarray, i: int) -> Any:
        flux = np.asarray(flux, np.float32)
        finite = np.isfinite(flux)
        meta = {"id": f"array[{i}]", "file": None}
        return cls(wavelength=np.asarray(wave, np.float64), flux=np.where(finite, flux, 0),
                   ivar=finite.astype(np.float32), mask=~finite, meta=meta)

    def encode_prepared(self, flux: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Binary codes (uint64, (n, n_words)) of prepared spectra (Hamming engines)."""
        if self.kind != "hamming":
            raise ValueError("a product-quantisation engine searches float spectra; "
                             "it has no binary codes")
        x = as_float_matrix(flux, "flux", n_features=self.n_pixels)
        return self.model.encode(x, num_threads=num_threads)

    def search_prepared(self, flux: np.ndarray, k: int, num_threads: int | None = None,
                        where: Any = None) -> Any:
        """k-NN of prepared spectra: SearchResult(ids = store rows, distances); with
        ``where``, exactly the k nearest among the rows it allows (:meth:`allowed_rows`)."""
        x = self._in_search_space(as_float_matrix(flux, "flux", n_features=self.n_pixels))
        allowed = None if where is None else self.allowed_rows(where)
        if self.kind == "hamming":
            codes = self.model.encode(x, num_threads=num_threads)
            return self.index.search(codes, k, num_threads=num_threads, filter=allowed)
        return self.index.search(x, k, num_threads=num_threads, filter=allowed)

    def allowed_rows(self, where: Any) -> np.ndarray:
        """Rows a ``where=`` search may return: ``where`` is a predicate on the metadata
        table (e.g. ``lambda m: (m["class"] == "STAR") & (m["snr_r"] > 20)``), a boolean
        mask over the rows, or row numbers."""
        if not callable(where):
            return np.asarray(where)
        mask = np.asarray(where(self.meta), dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(f"where: the predicate must give one bool per spectrum "
                             f"({len(self)},), got shape {mask.shape}")
        return mask

    def _in_search_space(self, x: np.ndarray) -> np.ndarray:
        """Rows as the model and index see them (unit norm for the f / sum f^2 recipe)."""
        from pyspec.search_checks import search_space, to_search_space

        return to_search_space(x, search_space(self.info.get("preprocessing")))

    def range_search_prepared(self, flux: np.ndarray, radius: int,
                              num_threads: int | None = None) -> Any:
        """Every indexed spectrum within Hamming ``radius`` (RangeResult)."""
        if self.kind != "hamming":
            raise ValueError("range search by radius needs a binary (Hamming) engine")
        codes = self.encode_prepared(flux, num_threads=num_threads)
        return self.index.range_search(codes, int(radius), num_threads=num_threads)

    def search_plan(self, k: int = 10) -> Any:
        """How a k-NN search runs: ``index.plan(k)`` for Hamming engines (MIH or scan, and
        why, see :meth:`pyspec.HammingIndex.plan`); PQ engines always scan."""
        if self.kind == "hamming":
            return self.index.plan(k=k)
        from pyspec.index._mih import SearchPlan

        return SearchPlan("scan", len(self), None, "product-quantisation engine: ADC scan")

    @property
    def rerank_space(self) -> str:
        """Where candidates are re-ranked: "pca" or "flux" (engines before issue 14: "flux")."""
        return str((self.info.get("rerank") or {}).get("space", "flux"))

    def _rerank_array(self, name: str, shape: tuple[int, ...], mmap: bool = True) -> np.ndarray:
        """One array of the re-rank space, its data CRC checked (version-2 engines)."""
        path = self.path / "rerank" / name
        arr = _load_array(path, shape, mmap)
        record = (self.info.get("checksums") or {}).get(f"rerank/{name}")
        if self.info.get("checksums") is not None and (
                record is None or _array_crc(arr) != record.get("data_crc32")):
            raise IndexFormatError(f"{path}: re-rank array checksum mismatch or missing record "
                                   "(file corrupted)")
        return arr

    def _principal(self) -> tuple[Any, np.ndarray]:
        """(PrincipalBasis, memory-mapped projections of every row) of a "pca" engine."""
        if self._pca is None:
            from pyspec.rerank_space import PrincipalBasis

            try:
                c = int(self.info["rerank"]["n_components"])
            except (TypeError, ValueError, KeyError):
                raise IndexFormatError(f"{self.path / 'engine.json'}: invalid re-rank "
                                       "description") from None
            basis = PrincipalBasis(self._rerank_array("pca_mean.npy", (self.n_pixels,), False),
                                   self._rerank_array("pca_axes.npy", (c, self.n_pixels), False),
                                   self.info["rerank"].get("explained_variance_ratio", 0.0))
            self._pca = basis, self._rerank_array("pca_projection.npy", (len(self), c))
        return self._pca

    def rerank(self, flux: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-order candidate rows by exact squared L2 in the engine's re-rank space.

        flux : (n, n_pixels) float32 prepared queries; ids : (n, m) int64
        candidate rows (-1 = none). Returns (ids, distances float32) of
        shape (n, k), ordered by (distance, row). The space is
        :attr:`rerank_space`: the projections on the store's principal
        components ("pca") or the stored spectra ("flux").
        """
        flux = self._in_search_space(np.asarray(flux, np.float32))
        store = self.store  # checked even when unused: a changed store means a stale engine
        if self.rerank_space == "pca":
            basis, rows_of = self._principal()
            flux = basis.project(flux)
        else:
            rows_of = store.flux
        n = flux.shape[0]
        out_ids = np.full((n, k), -1, np.int64)
        out_d = np.full((n, k), np.inf, np.float32)
        for i in range(n):
            cand = ids[i][ids[i] >= 0]
            if cand.size == 0:
                continue
            order_rows = np.sort(cand)  # sorted reads from the memmap
            cand_x = np.asarray(rows_of[order_rows], np.float32)
            if self.rerank_space != "pca":
                cand_x = self._in_search_space(cand_x)
            diff = cand_x - flux[i]
            d = np.einsum("ij,ij->i", diff, diff)
            o = np.lexsort((order_rows, d))[:k]
            out_ids[i, :o.size] = order_rows[o]
            out_d[i, :o.size] = d[o]
        return out_ids, out_d

    # -- queries --------------------------------------------------------------------------------
    def query(self, spectrum: Any, k: int = 10, rerank: int | None = None,
              num_threads: int | None = None, columns: str | Sequence[str] = "main",
              prepared: bool = False, where: Any = None) -> Any:
        """Query-by-example for one spectrum.

        Parameters
        ----------
        spectrum : path, Spectrum or ndarray of shape (n_pixels,)
            FITS file (read with :func:`pyspec.read_spectrum`), a spectrum, or
            flux on the engine's grid.
        k : int
            Neighbours to return.
        rerank : int, optional
            Two-stage search: the codes select the best ``rerank`` (>= k)
            candidates and exact squared L2 in :attr:`rerank_space`
            (principal components by default, or the stored spectra)
            orders them; distances are then float squared L2. Default (None):
            ``max(10 k, 100)`` candidates when the store is reachable (a
            warning and code distances otherwise); 0: codes only.
        num_threads : int, optional
            Threads for encoding and search. Default: all cores (or
            ``OMP_NUM_THREADS``): a one-spectrum forward pass splits W's
            columns and the scan splits the codes across threads. On a
            machine whose cores are busy with other work, ``num_threads=1``
            avoids waiting for the scheduler (measured 8-24 ms instead of
            ~1 ms for 1M codes on a loaded 2-core machine).
        columns : "main", "all" or list of str
            Store metadata columns to include: "main" (default) is id, file,
            ra, dec, class, subclass, z and snr_r; "all" every stored column
            (each column adds ~50 us of astropy Table construction).
        prepared : bool
            ``spectrum`` is an array already prepared like the store's rows
            (see :meth:`prepare`).
        where : callable, bool mask or row numbers, optional
            Only rows it allows are returned (:meth:`allowed_rows`), e.g.
            ``where=lambda m: m["snr_r"] > 20``: the k nearest among them.

        Returns
        -------
        astropy.table.Table
            ``k`` rows (fewer if the engine is smaller), ordered by distance:
            rank, row, the store metadata (id, file, ra, dec, class, subclass,
            z, snr_r, ...) and distance.

        Raises
        ------
        FileNotFoundError, FitsFormatError
            If the file is missing or not a spectrum.
        SpectrumCoverageError or ValueError
            If the spectrum cannot be prepared on the engine's grid.
        """
        if isinstance(spectrum, np.ndarray) and spectrum.ndim != 1:
            raise ValueError(f"query() takes one spectrum; got an array of shape {spectrum.shape}, "
                             "use query_batch()")
        flux, metas, rejects = self.prepare(spectrum, prepared)
        if rejects:
            from pyspec.errors import SpectrumCoverageError

            name, reason = rejects[0]
            raise SpectrumCoverageError(f"{name}: cannot be prepared on the engine's grid: "
                                        f"{reason}")
        table = self._neighbour_table(flux, k, rerank, num_threads, columns, where)
        table.meta["query"] = {k2: _plain(v) for k2, v in metas[0].items()
                               if k2 in ("id", "file", "ra", "dec", "class", "subclass", "z")}
        table.meta["query_flux_available"] = True
        self._last_query_flux = flux[0]
        self._remember_queries(table, flux)
        return table

    def query_batch(self, spectra: Any, k: int = 10, rerank: int | None = None,
                    num_threads: int | None = None,
                    columns: str | Sequence[str] = "main", prepared: bool = False,
                    where: Any = None) -> Any:
        """Query-by-example for many spectra at once (one table, ``query_index`` column).

        Inputs that cannot be read or prepared are skipped and listed in
        ``table.meta["rejects"]`` as [name, reason] pairs.
        """
        flux, metas, rejects = self.prepare(spectra, prepared)
        table = self._neighbour_table(flux, k, rerank, num_threads, columns, where)
        qid = np.array([str(m.get("id", i)) if m.get("id") is not None else str(i)
                        for i, m in enumerate(metas)] or [""])
        if len(table):
            table["query_id"] = qid[table["query_index"]]
        else:
            table["query_id"] = np.array([], dtype=str)
        table.meta["rejects"] = [[str(n), str(r)] for n, r in rejects]
        table.meta["n_queries"] = int(flux.shape[0])
        self._remember_queries(table, flux)
        return table

    def _neighbour_table(self, flux: np.ndarray, k: int, rerank: int | None,
                         num_threads: int | None, columns: str | Sequence[str] = "main",
                         where: Any = None) -> Any:
        k = check_k(k)
        unit = self.distance_unit
        explicit = rerank is not None
        rerank = self._candidates(k, rerank)
        where_kw = {} if where is None else {"where": where}  # sharded engines take no where
        if rerank:
            if explicit and rerank < k:
                raise ValueError(f"rerank ({rerank}) must be >= k ({k}): it is the number of "
                                 "candidates re-ranked to choose the best k (0 = codes only)")
            m = max(int(rerank), k)
            res = self.search_prepared(flux, m, num_threads=num_threads, **where_kw)
            ids, dist = self.rerank(flux, res.ids, k)
            unit = None
        else:
            res = self.search_prepared(flux, k, num_threads=num_threads, **where_kw)
            ids, dist = res.ids, res.distances
        valid = ids >= 0
        qidx = np.nonzero(valid)[0]
        rank = (np.cumsum(valid, axis=1) - 1)[valid] + 1
        rows = ids[valid]
        if columns == "main":
            wanted: Sequence[str] | None = RESULT_COLUMNS
        elif columns == "all":
            wanted = None
        elif isinstance(columns, str):
            raise ValueError(f"columns must be 'main', 'all' or a list of names, got {columns!r}")
        else:
            unknown = set(columns) - set(self._meta_cols.colnames)
            if unknown:
                raise ValueError(f"unknown metadata column(s) {sorted(unknown)}; "
                                 f"the engine has {self._meta_cols.colnames}")
            wanted = list(columns)
        values, units, descriptions = self._meta_cols.columns(rows, wanted)
        # one Table construction, main columns first (astropy column edits are slow and a
        # single query's latency budget is a few milliseconds)
        cols = {"query_index": qidx.astype(np.int64), "rank": rank.astype(np.int32)}
        cols.update((c, values[c]) for c in RESULT_COLUMNS if c in values)
        cols["distance"] = dist[valid]
        cols["row"] = rows
        cols.update((c, v) for c, v in values.items() if c not in cols)
        if unit is not None:
            units = {**units, "distance": unit}
        from pyspec.catalogue import provenance

        if self._provenance_parts is None:  # fixed for the engine's lifetime
            self._provenance_parts = {
                "engine": {"path": str(self.path.resolve()), "kind": self.kind,
                           "n_spectra": len(self),
                           "grid": self.grid.name if hasattr(self.grid, "name") else None},
                "model": {"class": self.info["model_class"],
                          **self.info.get("model_params", {})}}
        meta = provenance(command="query", **self._provenance_parts, k=k, rerank=rerank)
        return self._result_table(cols, units, descriptions, meta)

    def _candidates(self, k: int, rerank: int | None) -> int:
        """Candidates to re-rank exactly (0 = codes only); see :meth:`query`."""
        from pyspec.search_checks import default_candidates

        if rerank is not None:
            if isinstance(rerank, bool) or int(rerank) < 0:
                raise ValueError(f"rerank must be an int >= 0, got {rerank!r}")
            return int(rerank)
        try:
            self.store  # noqa: B018  (opens and checks the store once)
        except FileNotFoundError as exc:
            import warnings

            warnings.warn(f"{exc}; answering from the codes alone", UserWarning, stacklevel=4)
            return 0
        return default_candidates(k, len(self))

    def _remember_queries(self, table: Any, flux: np.ndarray) -> None:
        """Keep the prepared query flux so :meth:`plot_query` draws the table's own query."""
        import uuid

        store = self.__dict__.setdefault("_query_flux", {})
        if len(store) >= 64:  # bounded: the oldest results lose their flux
            store.pop(next(iter(store)))
        key = uuid.uuid4().hex
        store[key] = flux
        table.meta["query_key"] = key

    def _query_flux_of(self, table: Any) -> np.ndarray:
        """The prepared flux of the query whose neighbours ``table`` lists."""
        flux = self.__dict__.get("_query_flux", {}).get(table.meta.get("query_key"))
        if flux is None:
            raise ValueError("this table's query spectrum is not known to the engine (a table "
                             "read from disk, or an old result): pass query_flux= (the prepared "
                             "query spectrum, e.g. engine.prepare(path)[0][0])")
        qi = np.unique(np.asarray(table["query_index"])) if "query_index" in table.colnames \
            else np.array([0])
        if qi.size != 1:
            raise ValueError(f"the table holds the neighbours of {qi.size} queries; plot one: "
                             "table[table['query_index'] == i]")
        return flux[int(qi[0])]

    def _result_table(self, cols: dict[str, np.ndarray], units: dict[str, Any],
                      descriptions: dict[str, Any], meta: dict[str, Any]) -> Any:
        """astropy Table of ``cols`` (equal-length 1-D arrays).

        astropy builds a Table at ~25 us per column, a tenth of a single
        query's latency. Each result layout (names, dtypes, units) is therefore
        built once as a one-row template; a result is the template's row
        repeated by fancy indexing (new columns at ~10 us each, units and
        descriptions carried over) with the values written into them.
        """
        from astropy.table import Table

        key = (tuple((name, v.dtype.str, v.shape[1:]) for name, v in cols.items()),
               tuple(sorted(units.items())), tuple(sorted(descriptions.items())))
        template = self._table_templates.get(key)
        if template is None:
            if len(self._table_templates) >= 32:  # many column selections: start over
                self._table_templates.clear()
            template = Table({name: np.zeros((1,) + v.shape[1:], v.dtype)
                              for name, v in cols.items()},
                             units=units, descriptions=descriptions, copy=False)
            self._table_templates[key] = template
        n = len(next(iter(cols.values()))) if cols else 0
        table = template[np.zeros(n, dtype=np.intp)]
        for name, v in cols.items():
            table[name].data[...] = v
        table.meta.update(meta)
        return table

    def spectra(self, rows: Iterable[int]) -> np.ndarray:
        """Prepared flux of the given store rows, float32 (n, n_pixels)."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, np.int64)
        return np.asarray(self.store.flux[rows], np.float32)

    def plot_query(self, table: Any, path: str | os.PathLike, query_flux: np.ndarray | None = None,
                   query_label: str | None = None) -> Path:
        """PNG of a :meth:`query` result: the query in red over its neighbours."""
        from pyspec.plotting import plot_neighbours

        if query_flux is None:
            query_flux = self._query_flux_of(table)
        rows = np.asarray(table["row"], np.int64)
        labels = []
        for r in table:
            d = r["distance"]
            dtxt = f"{int(d)}" if self.metric == "hamming" and table["distance"].unit is not None \
                else f"{float(d):.3g}"
            cls = r["class"] if "class" in table.colnames else ""
            sub = r["subclass"] if "subclass" in table.colnames else ""
            labels.append(f"{r['rank']}. {r['id'] if 'id' in table.colnames else r['row']}  "
                          f"{cls} {sub}  d={dtxt}")
        if query_label is None:
            q = table.meta.get("query", {})
            query_label = f"query {q.get('id', '')}  {q.get('class', '') or ''} " \
                          f"{q.get('subclass', '') or ''}"
        return plot_neighbours(path, self.grid.wavelength, query_flux, self.spectra(rows),
                               labels, query_label=query_label,
                               title=f"{len(rows)} nearest neighbours ({self.info['model_class']}, "
                                     f"{len(self):,d} spectra)")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)

