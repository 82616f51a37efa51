"""One registry of search backends: what a model kind needs to become a searchable engine.

A backend binds a model class to its index class and says everything the
engine, the evaluation tools and the CLI used to decide by comparing strings:

- how to make, fit (streamed from a store when the model can) and load a model;
- what the index stores (:meth:`Backend.index_input`: binary codes for the
  hashers, the spectra themselves for a product quantiser, which encodes
  inside its index) and how to create, fill, search and load that index;
- the metric, the distance unit and whether distances are integers;
- which searches exist (range search by radius, search plans).

The index classes keep their own APIs: ``HammingIndex`` takes codes,
``PQIndex`` owns its quantiser and takes spectra, ``GraphIndex`` takes float
embeddings; the adapters here absorb those differences, so
:class:`pyspec.Engine` never asks which kind it holds. The built-in
backends: "pil", "lsh", "itq" (Hamming), "pq" and "pil-graph" (a PIL
hasher's embeddings in an HNSW graph, chosen with ``Engine.build(...,
backend="pil-graph")``).
A new backend plugs in with :func:`register_backend` (see
``tests/test_backends.py``, which adds an exact-L2 backend).

Engine descriptions record ``kind`` (the index family: "hamming", "pq",
"graph", ...) and ``model_class``; :func:`backend_for_class` finds the
backend back from the pair.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.errors import IndexFormatError, NotFittedError

__all__ = ["Backend", "GraphBackend", "HammingBackend", "PQBackend",
           "backend_for_class", "backend_of",
           "get_backend", "backend_names", "engine_kinds", "load_model", "make_model",
           "register_backend", "ids_distances"]


def ids_distances(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distances) of an index search result, read by name (never by position).

    Every result read in the engine goes through here, so a change of the
    result type (named fields only, faiss's (D, I) order) touches one place.
    """
    return result.ids, result.distances


class Backend:
    """A model kind and the index that searches its output (subclass per index family).

    Attributes
    ----------
    name : str
        Short name ("pil", "lsh", "itq", "pq"), as ``pyspec build --model``.
    model_class, model_module : str
        The model's class name (recorded in engine.json) and its module.
    kind : str
        Index family, recorded as the engine's ``kind``.
    metric : str
        "hamming" or "l2" (what the index distances are).
    distance_unit : str or None
        Unit of the index distances ("bit"), None for squared L2.
    integer_distances : bool
        Distances are exact integers (dense candidate merges, integer labels).
    has_codes : bool
        :meth:`codes` gives binary codes (the engine's ``encode_prepared``).
    supports_range : bool
        :meth:`range_search` by a radius exists.
    supports_filter : bool
        The index restricts a k-NN search to allowed ids (``filter=``, the
        engine's ``where=``).
    streams_store : bool
        ``model.fit(store)`` reads a store chunk by chunk (bounded memory).
    file_kind : bytes or None
        The two-byte kind in the header of the model's saved container
        (:mod:`pyspec._fileformat`), which tells :func:`load_model` the class
        of a file; None for models saved another way.
    """

    name = ""
    model_class = ""
    model_module = ""
    kind = ""
    metric = "l2"
    distance_unit: str | None = None
    integer_distances = False
    has_codes = False
    supports_range = False
    supports_filter = False
    streams_store = False
    file_kind: bytes | None = None

    # -- models ---------------------------------------------------------------------------------
    def model_type(self) -> type:
        return getattr(importlib.import_module(self.model_module), self.model_class)

    def make_model(self, **params: Any) -> Any:
        return self.model_type()(**params)

    def load_model(self, path: str | os.PathLike) -> Any:
        return self.model_type().load(path)

    def is_fitted(self, model: Any) -> bool:
        """True when the model has learned state (a one-row probe through :meth:`probe`)."""
        n_in = getattr(model, "n_features_in_", None)
        if n_in is None:
            return False
        try:
            self.probe(model, np.zeros((1, int(n_in)), np.float32))
        except NotFittedError:
            return False
        return True

    def probe(self, model: Any, x: np.ndarray) -> Any:
        """The model's cheapest call that needs a fitted model (raises NotFittedError)."""
        return model.transform(x)

    def fit(self, model: Any, train: Any) -> None:
        """Fit on an array, or on a store when :attr:`streams_store` (chunk by chunk)."""
        model.fit(train)

    def describe(self, model: Any) -> dict[str, Any]:
        """Facts about a model recorded in engine.json beside its parameters."""
        return {"n_bits": None}

    # -- index ----------------------------------------------------------------------------------
    def new_index(self, model: Any) -> Any:
        raise NotImplementedError

    def load_index(self, path: Path, model: Any, mmap: bool) -> Any:
        raise NotImplementedError

    def index_input(self, model: Any, x: np.ndarray, num_threads: int | None = None) -> Any:
        """What the index stores and searches for prepared rows ``x`` (default: ``x`` itself)."""
        return x

    def add(self, index: Any, payload: Any, ids: np.ndarray,
            num_threads: int | None = None) -> None:
        index.add(payload, ids=ids)

    def search(self, index: Any, payload: Any, k: int, num_threads: int | None = None,
               filter: Any = None) -> Any:  # noqa: A002 - the index API's keyword
        """k-NN; ``filter`` (allowed ids or a mask by id) restricts the answer exactly."""
        if filter is None:
            return index.search(payload, k, num_threads=num_threads)
        if not self.supports_filter:
            raise ValueError(f"a {self.model_class} engine cannot restrict a search to some "
                             "rows (where=)")
        return index.search(payload, k, num_threads=num_threads, filter=filter)

    def range_search(self, index: Any, payload: Any, radius: int,
                     num_threads: int | None = None) -> Any:
        raise ValueError("range search by radius needs a binary (Hamming) engine")

    def codes(self, model: Any, x: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        raise ValueError(f"a {self.model_class} engine has no binary codes")

    def distinct_keys(self, payload: Any) -> np.ndarray | None:
        """One key per row of ``payload`` for the collapsed-codes warning (None: not checked)."""
        return None

    def plan(self, index: Any, k: int, n: int) -> Any:
        from pyspec.index._plan import SearchPlan

        return SearchPlan("scan", n, None, f"{self.kind} engine: full scan")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.model_class} -> {self.kind}>"


class HammingBackend(Backend):
    """Binary hashers (PIL, LSH, ITQ): 256-bit-max codes in a :class:`~pyspec.HammingIndex`."""

    kind = "hamming"
    metric = "hamming"
    distance_unit = "bit"
    integer_distances = True
    has_codes = True
    supports_range = True
    supports_filter = True
    streams_store = True

    def __init__(self, name: str, model_class: str, model_module: str, file_kind: bytes) -> None:
        self.name, self.model_class, self.model_module = name, model_class, model_module
        self.file_kind = file_kind

    def describe(self, model: Any) -> dict[str, Any]:
        return {"n_bits": int(model.n_bits)}

    def new_index(self, model: Any) -> Any:
        from pyspec.index.hamming import HammingIndex

        # "auto": exact inverted lists once they pay (codes of real-like spectra
        # from 65,536 codes on), the scan otherwise; same results either way
        return HammingIndex(n_bits=int(model.n_bits), method="auto")

    def load_index(self, path: Path, model: Any, mmap: bool) -> Any:
        from pyspec.index.hamming import HammingIndex

        return HammingIndex.load(path, mmap=mmap)

    def index_input(self, model: Any, x: np.ndarray, num_threads: int | None = None) -> Any:
        return model.encode(x, num_threads=num_threads)

    def range_search(self, index: Any, payload: Any, radius: int,
                     num_threads: int | None = None) -> Any:
        return index.range_search(payload, int(radius), num_threads=num_threads)

    def codes(self, model: Any, x: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        return self.index_input(model, x, num_threads=num_threads)  # the codes are the input

    def distinct_keys(self, payload: Any) -> np.ndarray | None:
        from pyspec.search_checks import code_keys

        return code_keys(payload)

    def plan(self, index: Any, k: int, n: int) -> Any:
        return index.plan(k=k)


class PQBackend(Backend):
    """Product quantisation: the :class:`~pyspec.PQIndex` owns the quantiser and takes spectra."""

    name = "pq"
    model_class = "ProductQuantizer"
    model_module = "pyspec.models.pq"
    kind = "pq"
    supports_filter = True
    file_kind = b"QM"

    def probe(self, model: Any, x: np.ndarray) -> Any:
        return model.encode(x)

    def fit(self, model: Any, train: Any) -> None:
        model.fit(train if isinstance(train, np.ndarray) else np.asarray(train.flux, np.float32))

    def new_index(self, model: Any) -> Any:
        from pyspec.index.pq import PQIndex

        return PQIndex(model)

    def load_index(self, path: Path, model: Any, mmap: bool) -> Any:
        from pyspec.index.pq import PQIndex

        try:
            return PQIndex.load(path, mmap=mmap)
        except TypeError:  # a PQIndex.load without mmap=
            return PQIndex.load(path)

    def add(self, index: Any, payload: Any, ids: np.ndarray,
            num_threads: int | None = None) -> None:
        index.add(payload, ids=ids, num_threads=num_threads)

    def plan(self, index: Any, k: int, n: int) -> Any:
        from pyspec.index._plan import SearchPlan

        return SearchPlan("scan", n, None, "product-quantisation engine: ADC scan")


class GraphBackend(Backend):
    """A hasher's real-valued embedding (``embed``, before the threshold) in an HNSW graph.

    :class:`~pyspec.GraphIndex` stores float vectors and answers approximate
    k-NN by squared L2; the adapter feeds it the model's embeddings, so the
    same fitted hasher can back a graph engine (``Engine.build(...,
    backend="pil-graph")``) beside its Hamming one.
    """

    kind = "graph"
    streams_store = True  # the hasher fits from a store chunk by chunk

    def __init__(self, name: str, hashing: HammingBackend) -> None:
        self.name, self.model_class, self.model_module = (name, hashing.model_class,
                                                          hashing.model_module)
        self.file_kind = None  # a model file loads through its hashing backend

    def new_index(self, model: Any) -> Any:
        from pyspec.index.graph import GraphIndex

        return GraphIndex(dim=int(model.n_bits), space="l2")

    def load_index(self, path: Path, model: Any, mmap: bool) -> Any:
        from pyspec.index.graph import GraphIndex

        return GraphIndex.load(path)

    def index_input(self, model: Any, x: np.ndarray, num_threads: int | None = None) -> Any:
        return model.embed(x, num_threads=num_threads)

    def add(self, index: Any, payload: Any, ids: np.ndarray,
            num_threads: int | None = None) -> None:
        index.add(payload, ids=ids, num_threads=num_threads)

    def plan(self, index: Any, k: int, n: int) -> Any:
        from pyspec.index._plan import SearchPlan

        return SearchPlan("graph", n, None, "HNSW graph over the model's embeddings")


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Add a backend to the registry (by its short name; one per model class and kind)."""
    if not backend.name or not backend.model_class or not backend.kind:
        raise ValueError(f"{backend!r}: a backend needs a name, a model_class and a kind")
    if not replace:
        if backend.name in _BACKENDS:
            raise ValueError(f"a backend named {backend.name!r} is already registered")
        if any((b.model_class, b.kind) == (backend.model_class, backend.kind)
               for b in _BACKENDS.values()):
            raise ValueError(f"model class {backend.model_class!r} already has a "
                             f"{backend.kind!r} backend")
    _BACKENDS[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    """Remove a backend added by :func:`register_backend` (the built-in ones stay)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in backend")
    _BACKENDS.pop(name, None)


_PIL = HammingBackend("pil", "PILHasher", "pyspec.models.pil", b"PL")
for _b in (_PIL, HammingBackend("lsh", "LSHHasher", "pyspec.models.lsh", b"LS"),
           HammingBackend("itq", "ITQHasher", "pyspec.models.itq", b"IT"),
           PQBackend(), GraphBackend("pil-graph", _PIL)):
    register_backend(_b)
_BUILTIN = frozenset(_BACKENDS)
del _b


def backend_names() -> list[str]:
    """Short names of the registered backends ("pil", "lsh", "itq", "pq", ...)."""
    return list(_BACKENDS)


def engine_kinds() -> set[str]:
    """Index families an engine description may name."""
    return {b.kind for b in _BACKENDS.values()}


def get_backend(name: str) -> Backend:
    """The backend of a short name ("pil") or model class name ("PILHasher": the first one
    registered for it, its default); ValueError else."""
    backend = _BACKENDS.get(name.lower()) or next(
        (b for b in _BACKENDS.values() if b.model_class == name), None)
    if backend is None:
        raise ValueError(f"unknown model {name!r}; choose {', '.join(backend_names())}")
    return backend


def backend_for_class(model_class: str, kind: str | None = None) -> Backend:
    """The backend an engine description names by model class and kind (IndexFormatError if none).

    ``kind`` None: the class's default backend.
    """
    backend = next((b for b in _BACKENDS.values() if b.model_class == model_class
                    and kind in (None, b.kind)), None)
    if backend is None:
        raise IndexFormatError(f"no backend for model class {model_class!r}"
                               + ("" if kind is None else f" and kind {kind!r}") + "; known: "
                               + ", ".join(f"{b.model_class}/{b.kind}" for b in _BACKENDS.values()))
    return backend


def backend_of(model: Any) -> Backend:
    """The backend of a model instance (by its class name); TypeError for other objects."""
    name = type(model).__name__
    backend = next((b for b in _BACKENDS.values() if b.model_class == name), None)
    if backend is None:
        raise TypeError(f"model must be one of "
                        f"{', '.join(b.model_class for b in _BACKENDS.values())}, got {name}")
    return backend


def make_model(name: str, **params: Any) -> Any:
    """A fresh model from a short name ("pil", "lsh", "itq", "pq") or class name."""
    return get_backend(name).make_model(**params)


def _container_kind(path: Path) -> bytes | None:
    """The two-byte object kind of a pyspec container file, or None for other files."""
    from pyspec._fileformat import _MAGIC_PREFIX

    with open(path, "rb") as fh:
        magic = fh.read(len(_MAGIC_PREFIX) + 2)
    return magic[len(_MAGIC_PREFIX):] if magic.startswith(_MAGIC_PREFIX) else None


def load_model(path: str | os.PathLike) -> Any:
    """Load a saved model of any registered kind (the file's header names its kind).

    Raises
    ------
    FileNotFoundError
        No such file.
    IndexFormatError
        Not a model file of any registered backend, or a damaged one.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    kind = _container_kind(p)
    for backend in _BACKENDS.values():
        if kind is not None and backend.file_kind == kind:
            return backend.load_model(p)
    for backend in _BACKENDS.values():  # models saved in a format of their own
        if backend.file_kind is None:
            try:
                return backend.load_model(p)
            except (IndexFormatError, ValueError, OSError, EOFError):
                continue
    raise IndexFormatError(f"{p}: not a pyspec model file "
                           f"({', '.join(b.model_class for b in _BACKENDS.values())})")
