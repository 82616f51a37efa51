"""The search engine: a model, an index and metadata over a spectrum store, saved as a directory.

``Engine.build(store, model, out=DIR)`` encodes every spectrum of a
:class:`~pyspec.SpectrumStore` (fitting the model first if it is not fitted)
and writes::

    DIR/engine.json     kind, model class, grid, preprocessing, store path, sizes, provenance
    DIR/model.bin       the model (PILHasher/LSHHasher/ITQHasher/ProductQuantizer .save())
    DIR/index.bin       HammingIndex (binary codes) or PQIndex (product-quantised codes)
    DIR/meta/           the store's metadata: one column set (pyspec.meta_columns), one
                        memory-mapped .npy file per column
    DIR/rerank/         re-rank space "pca": the principal basis and every row's projection

What a model kind needs (its index class, what the index takes, the metric,
how to fit and load it) comes from its backend (:mod:`pyspec.backends`); the
engine never asks which kind it holds. ``Engine.open(DIR)`` maps the index
and the metadata columns without reading them, so opening an engine over
millions of spectra takes milliseconds; only the rows a query returns are
ever decoded. Index ids are store rows, so a neighbour's metadata and
spectrum are one lookup away. :meth:`Engine.add` appends spectra to the
store and the index together.

``engine.query(x, k=10)`` accepts a FITS path, a :class:`~pyspec.Spectrum`
or a flux array on the engine's grid, prepares it with the store's own
:class:`~pyspec.preprocess.Preprocessor` settings (the same resampling and
normalisation the archive went through), encodes it, searches, optionally
re-ranks the best candidates by exact squared L2 (by default between their
projections on the store's principal components, see
:mod:`pyspec.rerank_space`), and returns an astropy Table of neighbours with
their metadata (:mod:`pyspec._engine_query`).

Integrity and atomicity (version 3 engines; 2 and 1 still open): ``engine.json``
carries a checksum of its own content and a size/CRC32 record of every other
file (``meta/columns.json`` records each metadata column's file, dtype and
data CRC). :meth:`Engine.open` checks
the description, the column headers and the containers (which check
themselves); a column's data is checked the first time it is read, and
:meth:`Engine.verify` (``pyspec verify``) checks every byte. A build writes
into a temporary directory beside ``out`` and swaps it in only when complete
(atomically on Linux), so readers and a killed build always leave a complete
engine at ``out``; an engine object that is already open keeps reading the
files it mapped. Queries on one Engine object may run from many threads.
The directory format lives in :mod:`pyspec._engine_files`.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyspec import _integrity
from pyspec._engine_files import (
    dir_identity,
    open_engine_meta,
    preprocessor_from,
    read_engine_dir,
    safe_params,
    write_engine_dir,
)
from pyspec._engine_query import RESULT_COLUMNS, QueryMixin
from pyspec._validation import as_float_matrix
from pyspec.backends import Backend, backend_for_class, backend_of, get_backend, make_model
from pyspec.errors import IndexFormatError

__all__ = ["Engine", "make_model", "RESULT_COLUMNS"]

_DEFAULT_CHUNK = 8192
_safe_params = safe_params  # the names pyspec.distributed imports


def _is_fitted(model: Any) -> bool:
    """True when the model has learned state (see :meth:`Backend.is_fitted`)."""
    return backend_of(model).is_fitted(model)


def _encode_rows(backend: Backend, model: Any, index: Any, flux: Any, start: int, stop: int, *,
                 chunk_size: int, space: str | None, rerank: tuple[Any, np.ndarray] | None,
                 num_threads: int | None, bar: Any) -> list[np.ndarray]:
    """Encode store rows ``start:stop`` into ``index`` (ids = rows), chunk by chunk.

    ``rerank``: (PrincipalBasis, projection array indexed by row) to fill,
    or None. Returns the per-chunk distinct-code keys (for the collapse check).
    """
    from pyspec.search_checks import to_search_space

    keys = []
    for a in range(start, stop, chunk_size):
        b = min(a + chunk_size, stop)
        chunk = to_search_space(as_float_matrix(flux[a:b], "store flux"), space)
        if rerank is not None:
            rerank[1][a:b] = rerank[0].project(chunk)
        payload = backend.index_input(model, chunk, num_threads=num_threads)
        chunk_keys = backend.distinct_keys(payload)
        if chunk_keys is not None:
            keys.append(chunk_keys)
        backend.add(index, payload, np.arange(a, b, dtype=np.int64), num_threads=num_threads)
        bar.update(b - a)
    return keys


def _store_meta(store: Any) -> Any:
    """What an engine's metadata is written from: the store's column reader where it has
    one (merged column by column, never loaded whole), else its metadata table."""
    stack = getattr(store, "meta_columns", None)
    return stack if stack is not None else store.meta


def _progress(total: int, desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="spec", disable=not progress, leave=False)


# ----------------------------------------------------------------------------- the engine


def fit_on_store(backend: Any, model: Any, store: Any, fit_sample: int | None,
                 random_state: int | None, space: str | None) -> None:
    """Fit ``model`` as :meth:`Engine.build` does: on ``fit_sample`` random rows of
    ``store`` (drawn over its global rows), else streamed chunk by chunk when the
    model can, else on all rows; rows in the engine's search ``space`` (unit norm for
    the f / sum f^2 recipe). Sharded builds call it too, so both fit the same model."""
    from pyspec.search_checks import to_search_space

    n = len(store)
    if fit_sample is not None and fit_sample < n:
        rng = np.random.default_rng(random_state)
        rows = np.sort(rng.choice(n, size=int(fit_sample), replace=False))
        train: Any = np.asarray(store.flux[rows], np.float32)
    elif backend.streams_store and hasattr(store, "iter_chunks") and space is None:
        train = store  # the model streams a store chunk by chunk
    else:
        train = np.asarray(store.flux, np.float32)
    backend.fit(model, train if space is None else to_search_space(train, space))

class Engine(QueryMixin):
    """A searchable engine directory (see the module docstring).

    Create with :meth:`build`, load with :meth:`open`, grow with :meth:`add`.
    Attributes: ``path``, ``kind`` ("hamming" or "pq"), ``metric``
    ("hamming" or "l2"), ``backend`` (:class:`pyspec.backends.Backend`),
    ``model``, ``index``, ``grid`` (WavelengthGrid), ``n_pixels``, ``info``
    (the parsed ``engine.json``) and ``distance_unit``.
    """

    def __init__(self, path: Path, info: dict[str, Any], model: Any, index: Any) -> None:
        from pyspec.preprocess import WavelengthGrid

        self.path = Path(path)
        self.info = info
        self.backend = backend_for_class(info["model_class"], info["kind"])
        self.kind = info["kind"]
        self.metric = self.backend.metric
        self.distance_unit = self.backend.distance_unit
        self.model = model
        self.index = index
        self.grid = WavelengthGrid.from_dict(info["grid"])
        self.n_pixels = len(self.grid)
        self._meta_cols = open_engine_meta(self.path, info)
        self._meta_table: Any = None
        self._table_templates: dict[tuple, Any] = {}
        self._provenance_block: dict[str, Any] | None = None
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
              n_components: int | None = None, backend: str | Backend | None = None,
              rerank_basis: Any = None) -> Engine:
        """Fit (if needed) ``model``, encode ``store`` in chunks and write the engine to ``out``.

        Parameters
        ----------
        store : SpectrumStore or path-like
            The prepared spectra to index (rows become index ids).
        model : model instance or str
            A model of a registered backend (:mod:`pyspec.backends`):
            PILHasher/LSHHasher/ITQHasher (-> HammingIndex) or
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
        backend : str or Backend, optional
            A backend of :mod:`pyspec.backends` other than the model class's
            default, e.g. "pil-graph" (a PILHasher's embeddings in an HNSW
            graph).
        rerank_basis : PrincipalBasis, optional
            For ``rerank_space="pca"``: a basis fitted elsewhere, used instead of
            fitting one here (the shards of a sharded build share one).

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
        if isinstance(backend, str):
            backend = get_backend(backend)
        if backend is None:
            backend = backend_of(model)
        elif type(model).__name__ != backend.model_class:
            raise TypeError(f"the {backend.name!r} backend takes a {backend.model_class}, got "
                            f"{type(model).__name__}")
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
        if not backend.is_fitted(model):
            fit_on_store(backend, model, store, fit_sample, random_state, space)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerank = None
        if rerank_space == "pca":
            from pyspec.rerank_space import PCA_COMPONENTS, fit_principal_basis, n_pca_components

            c = n_pca_components(n, n_pix, n_components or PCA_COMPONENTS)
            basis = rerank_basis or fit_principal_basis(
                store.flux, c, chunk_size=chunk_size, random_state=random_state,
                transform=lambda x: to_search_space(x, space))
            rerank = basis, np.empty((n, basis.n_components), np.float32)
        pca_s = time.perf_counter() - t0
        n_in = getattr(model, "n_features_in_", None)
        if n_in is not None and n_in != n_pix:
            raise ValueError(f"the model was fitted on {n_in} pixels but the store's grid has "
                             f"{n_pix}; fit it on this store's spectra (or use the same grid)")

        from pyspec.search_checks import store_fingerprint, warn_if_collapsed

        index = backend.new_index(model)
        t0 = time.perf_counter()
        with _progress(n, "encoding", progress) as bar:
            keys = _encode_rows(backend, model, index, store.flux, 0, n, chunk_size=chunk_size,
                                space=space, rerank=rerank, num_threads=num_threads, bar=bar)
        encode_s = time.perf_counter() - t0
        if keys:
            warn_if_collapsed(int(np.unique(np.concatenate(keys)).size), n,
                              f"{type(model).__name__} on {getattr(store, 'path', 'the store')}")

        timings = {"fit": round(fit_s, 3), "pca": round(pca_s, 3), "encode": round(encode_s, 3)}
        return cls.write(out, model, index, _store_meta(store), grid,
                         preprocessing=preprocessing,
                         store_path=getattr(store, "path", None), timings=timings,
                         overwrite=overwrite, store_fingerprint=store_fingerprint(store),
                         rerank=rerank, backend=backend)

    @classmethod
    def write(cls, out: str | os.PathLike, model: Any, index: Any, meta: Any, grid: Any, *,
              preprocessing: dict[str, Any] | None = None,
              store_path: str | os.PathLike | None = None,
              timings: dict[str, float] | None = None, overwrite: bool = False,
              store_fingerprint: dict[str, Any] | None = None,
              rerank: tuple[Any, np.ndarray] | None = None,
              backend: Backend | None = None) -> Engine:
        """Write an engine directory from a fitted model, a filled index and metadata.

        :meth:`build` ends here; call it directly to assemble an engine from
        codes encoded elsewhere (e.g. a distributed encoding job). Index ids
        must be rows of ``meta`` (and of the store at ``store_path``): an
        astropy Table, or a store's ``meta_columns`` reader.
        ``rerank``: (PrincipalBasis, projections of every row) for the "pca"
        re-rank space; None re-ranks by L2 between the stored spectra.
        ``backend``: the index's backend when not the model class's default.
        """
        out = Path(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} exists; choose another --out or pass overwrite")
        write_engine_dir(out, model, index, meta, grid, preprocessing=preprocessing,
                         store_path=store_path, timings=timings,
                         store_fingerprint=store_fingerprint, rerank=rerank, backend=backend)
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
            # one engine per shard; named, not imported: pyspec.distributed builds on this module
            sharded = importlib.import_module("pyspec.distributed.engine").ShardedEngine
            return sharded.open(path, mmap=mmap)
        for attempt in range(3):
            before = dir_identity(path)
            try:
                engine = cls._open_once(path, mmap)
            except (IndexFormatError, FileNotFoundError):
                # a build swapped the directory while we read it: read the new one
                if attempt == 2 or dir_identity(path) == before:
                    raise
                continue
            if dir_identity(path) == before or attempt == 2:
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
        self._meta_cols.verify()
        if self.rerank_space == "pca":
            self._pca = None  # read and check the re-rank arrays' data anew
            self._principal()
        return {"files": len(sums) + 1, "columns": len(self._meta_cols.colnames)}

    def add(self, spectra: Any, *, prepared: bool = False, chunk_size: int = _DEFAULT_CHUNK,
            num_threads: int | None = None, progress: bool = False) -> dict[str, Any]:
        """Append spectra to the engine's store and index, encoded with the fitted model.

        The new spectra become rows ``len(engine), len(engine) + 1, ...`` of
        the store (appended through its crash-safe writer) and ids of the
        index; their metadata and, for a "pca" re-rank space, their
        projections on the engine's principal basis (which is kept, not
        refitted) are added too. The engine then answers exactly as an
        engine built over the grown store with the same fitted model (and,
        for "pca", the same basis), and :meth:`verify` passes. The directory
        is rewritten and swapped in as by :meth:`build`; this object reads
        the new one. Other Engine objects open on the same directory still
        read the old files, and their store check then fails
        (StoreChangedError): reopen them.

        Parameters
        ----------
        spectra : SpectrumStore, path, Spectrum, ndarray or a sequence of paths / Spectrum
            A store's rows (same grid and preprocessing as the engine's;
            flux, ivar and metadata copied as they are), or inputs prepared
            with the engine's recipe as in :meth:`prepare`.
        prepared : bool
            ``spectra`` is an array of rows already prepared by the store's
            recipe (stored with ivar 1).
        chunk_size : int
            Rows appended and encoded per chunk.
        num_threads : int, optional
            Threads for encoding.
        progress : bool
            tqdm progress bar while encoding.

        Returns
        -------
        dict
            ``rows``: int64 store rows of the added spectra; ``rejects``: list of
            (name, reason) for inputs that could not be prepared (also recorded
            in the store's rejects).

        Raises
        ------
        StoreChangedError
            The store changed since the engine was built (the engine is stale).
        FileNotFoundError
            The engine's store is gone.
        ValueError, PreprocessingError
            A source store with another grid or preprocessing.
        """
        from pyspec.meta_columns import rows_from_columns
        from pyspec.search_checks import search_space, store_fingerprint
        from pyspec.store import SpectrumStore

        if self.index is None:
            raise NotImplementedError("add spectra to a sharded engine shard by shard")
        if isinstance(chunk_size, bool) or int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        store = self.store  # StoreChangedError when someone else changed it
        if hasattr(spectra, "flux") and hasattr(spectra, "meta"):  # rows of another store
            self.check_store(spectra, f"store {getattr(spectra, 'path', '')}")
            flux, ivar, rejects = spectra.flux, spectra.ivar, []
            metas: Any = spectra.meta
        else:
            flux, ivar, metas, rejects = self._prepare_rows(spectra, prepared)
        m, n0 = int(flux.shape[0]), len(self)
        if m == 0 and not rejects:
            return {"rows": np.zeros(0, np.int64), "rejects": []}
        t0 = time.perf_counter()
        with SpectrumStore.create(store.path, store.grid, store.preprocessing,
                                  append=True) as writer:
            for a in range(0, m, chunk_size):
                b = min(a + chunk_size, m)
                block = metas[a:b]
                writer.append(flux[a:b], np.ones((b - a, flux.shape[1]), np.float32)
                              if ivar is None else ivar[a:b],
                              rows_from_columns(block) if hasattr(block, "colnames") else block)
            for name, reason in rejects:
                writer.reject(name, reason)
        store = SpectrumStore.open(store.path)
        n1 = len(store)
        index = self.backend.load_index(self.path / "index.bin", self.model, mmap=False)
        rerank = None
        if self.rerank_space == "pca":
            basis, projection = self._principal()
            rerank = basis, np.empty((n1, basis.n_components), np.float32)
            rerank[1][:n0] = projection
        with _progress(n1 - n0, "encoding", progress) as bar:
            _encode_rows(self.backend, self.model, index, store.flux, n0, n1,
                         chunk_size=int(chunk_size),
                         space=search_space(self.info.get("preprocessing")), rerank=rerank,
                         num_threads=num_threads, bar=bar)
        timings = {**self.info.get("timings_s", {}), "add": round(time.perf_counter() - t0, 3)}
        write_engine_dir(self.path, self.model, index, store.meta_columns, store.grid,
                         preprocessing=self.info.get("preprocessing"), store_path=store.path,
                         timings=timings, store_fingerprint=store_fingerprint(store),
                         rerank=rerank, command="Engine.add", backend=self.backend)
        self.__dict__.update(type(self)._open_once(self.path, mmap=True).__dict__)
        return {"rows": np.arange(n0, n1, dtype=np.int64), "rejects": list(rejects)}

    @classmethod
    def _open_once(cls, path: Path, mmap: bool) -> Engine:
        info, model, index = read_engine_dir(path, mmap)
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
                preprocessor_from(settings, self.path / "engine.json")
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
        flux, _, metas, rejects = self._prepare_rows(items, prepared)
        return flux, metas, rejects

    def _prepare_rows(self, items: Any, prepared: bool
                      ) -> tuple[np.ndarray, Any, list[dict[str, Any]], list[tuple[str, str]]]:
        """(flux, ivar, metas, rejects) of :meth:`prepare` (ivar None for prepared arrays)."""
        if prepared:
            flux = as_float_matrix(np.atleast_2d(np.asarray(items)), "prepared flux",
                                   n_features=self.n_pixels)
            return (np.ascontiguousarray(flux), None,
                    [{"id": f"array[{i}]"} for i in range(flux.shape[0])], [])
        spectra, names, rejects = self._as_spectra(items)
        if not spectra:
            empty = np.empty((0, self.n_pixels), np.float32)
            return empty, empty, [], rejects
        batch = self.preprocessor.apply(spectra)
        ok = np.asarray(batch.ok, bool)
        metas = []
        for i, spec in enumerate(spectra):
            if ok[i]:
                metas.append(dict(getattr(spec, "meta", None) or {}))
            else:
                rejects.append((names[i], str(batch.reasons[i])))
        flux = np.ascontiguousarray(np.asarray(batch.flux, np.float32)[ok])
        return flux, np.ascontiguousarray(np.asarray(batch.ivar, np.float32)[ok]), metas, rejects

    def _as_spectra(self, items: Any) -> tuple[list[Any], list[str], list[tuple[str, str]]]:
        import pyspec.io
        from pyspec.spectra import as_spectra

        got = as_spectra(items, grid=self.grid.wavelength, reader=pyspec.io)
        return got.spectra, got.names, got.rejects

    def encode_prepared(self, flux: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Binary codes (uint64, (n, n_words)) of prepared spectra (engines with binary codes)."""
        x = self._in_search_space(as_float_matrix(flux, "flux", n_features=self.n_pixels))
        return self.backend.codes(self.model, x, num_threads=num_threads)

    def _index_input(self, flux: np.ndarray, num_threads: int | None) -> Any:
        """What the index searches for prepared rows: the backend's encoding of them."""
        x = self._in_search_space(as_float_matrix(flux, "flux", n_features=self.n_pixels))
        return self.backend.index_input(self.model, x, num_threads=num_threads)

    def search_prepared(self, flux: np.ndarray, k: int, num_threads: int | None = None,
                        where: Any = None) -> Any:
        """k-NN of prepared spectra: SearchResult(ids = store rows, distances); with
        ``where``, exactly the k nearest among the rows it allows (:meth:`allowed_rows`)."""
        allowed = None if where is None else self.allowed_rows(where)
        return self.backend.search(self.index, self._index_input(flux, num_threads), k,
                                   num_threads=num_threads, filter=allowed)

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
        if not self.backend.supports_range:
            raise ValueError("range search by radius needs a binary (Hamming) engine")
        return self.backend.range_search(self.index, self._index_input(flux, num_threads),
                                         int(radius), num_threads=num_threads)

    def search_plan(self, k: int = 10) -> Any:
        """How a k-NN search runs: ``index.plan(k)`` for Hamming engines (the exact
        inverted lists or the scan, and why, see :meth:`pyspec.HammingIndex.plan`); PQ
        engines always scan."""
        return self.backend.plan(self.index, k, len(self))
