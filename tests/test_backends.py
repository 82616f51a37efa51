"""The backend registry: one place per model kind, and a new backend plugs into Engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyspec import backends
from pyspec.backends import (
    Backend,
    backend_for_class,
    backend_of,
    get_backend,
    load_model,
    make_model,
    register_backend,
    unregister_backend,
)
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.evaluate import make_hasher
from pyspec.index._result import SearchResult
from pyspec.store import SpectrumStore
from pyspec.workflows import catalogue_search, match_templates

N_PIX = 140


class Centred:
    """A tiny model: subtracts the training mean (fitted state: ``mean_``)."""

    def __init__(self) -> None:
        self.mean_ = None

    @property
    def n_features_in_(self):
        return None if self.mean_ is None else self.mean_.size

    def get_params(self, deep: bool = False) -> dict:
        return {}

    def fit(self, x):
        self.mean_ = np.asarray(x, np.float64).mean(axis=0).astype(np.float32)
        return self

    def transform(self, x, num_threads=None):
        return np.asarray(x, np.float32) - self.mean_

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            np.save(fh, self.mean_, allow_pickle=False)

    @classmethod
    def load(cls, path):
        model = cls()
        model.mean_ = np.load(path, allow_pickle=False)
        return model


class ExactL2Index:
    """Brute-force squared-L2 index over float vectors, ordered by (distance, id)."""

    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((0, dim), np.float32)
        self.ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.ids.size)

    def add(self, vectors, ids) -> None:
        self.vectors = np.concatenate([self.vectors, np.asarray(vectors, np.float32)])
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])

    def search(self, queries, k, num_threads=None):
        d = ((queries[:, None, :] - self.vectors[None]) ** 2).sum(-1).astype(np.float32)
        k_eff = min(k, len(self))
        order = np.lexsort((np.broadcast_to(self.ids, d.shape), d), axis=1)[:, :k_eff]
        ids = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        ids[:, :k_eff] = self.ids[order]
        dist[:, :k_eff] = np.take_along_axis(d, order, 1)
        return SearchResult(ids=ids, distances=dist)

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, vectors=self.vectors, ids=self.ids)

    @classmethod
    def load(cls, path):
        data = np.load(path, allow_pickle=False)
        index = cls(data["vectors"].shape[1])
        index.vectors, index.ids = data["vectors"], data["ids"]
        return index


class ExactL2Backend(Backend):
    name = "exact-l2"
    model_class = "Centred"
    kind = "exact-l2"

    def model_type(self) -> type:
        return Centred

    def new_index(self, model):
        return ExactL2Index(model.n_features_in_)

    def load_index(self, path: Path, model, mmap: bool):
        return ExactL2Index.load(path)

    def index_input(self, model, x, num_threads=None):
        return model.transform(x)


@pytest.fixture
def exact_backend():
    backend = register_backend(ExactL2Backend())
    yield backend
    unregister_backend(backend.name)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(5)
    flux = rng.normal(size=(120, N_PIX)).astype(np.float32) + 2.0
    meta = [{"id": f"s{i}", "class": ["STAR", "QSO"][i % 2], "z": 0.1 * i} for i in range(120)]
    path = tmp_path_factory.mktemp("b") / "store"
    with SpectrumStore.create(path, "halpha-140", {"grid": "halpha-140"}) as w:
        w.append(flux, np.ones_like(flux), meta)
    return SpectrumStore.open(path)


def test_registry_names_every_builtin_kind() -> None:
    assert backends.backend_names()[:5] == ["pil", "lsh", "itq", "pq", "pil-graph"]
    for name, cls, kind in (("pil", "PILHasher", "hamming"), ("lsh", "LSHHasher", "hamming"),
                            ("itq", "ITQHasher", "hamming"), ("pq", "ProductQuantizer", "pq")):
        backend = get_backend(name)
        assert get_backend(cls) is backend
        assert backend_for_class(cls) is backend
        model = make_model(name)
        assert type(model).__name__ == cls
        assert backend_of(model) is backend
        assert backend.kind == kind
        assert backend.has_codes == (kind == "hamming")
    assert type(make_hasher("itq", 64)).__name__ == "ITQHasher"
    with pytest.raises(ValueError, match="unknown hasher"):
        make_hasher("pq", 64)  # no binary codes
    with pytest.raises(ValueError, match="unknown model"):
        get_backend("hnsw")
    with pytest.raises(IndexFormatError, match="no backend for model class 'Nope'"):
        backend_for_class("Nope")
    with pytest.raises(IndexFormatError, match="and kind 'pq'"):
        backend_for_class("PILHasher", "pq")
    assert backend_for_class("PILHasher", "graph") is get_backend("pil-graph")
    assert backend_for_class("PILHasher") is get_backend("pil")  # the class's default
    with pytest.raises(TypeError, match="model must be one of"):
        backend_of(object())
    with pytest.raises(ValueError, match="already registered"):
        register_backend(get_backend("pil").__class__("pil", "X", "pyspec.models.pil", b"XX"))
    with pytest.raises(ValueError, match="built-in"):
        unregister_backend("pq")


def test_load_model_finds_each_kind(tmp_path, rng) -> None:
    x = rng.normal(size=(80, 64)).astype(np.float32)
    for name, params in (("lsh", {"n_bits": 64}), ("itq", {"n_bits": 64}),
                         ("pq", {"n_segments": 4, "n_centroids": 8})):
        model = make_model(name, random_state=0, **params).fit(x)
        model.save(tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert type(loaded) is type(model)
        probe = get_backend(name).probe
        np.testing.assert_array_equal(probe(loaded, x[:5]), probe(model, x[:5]))
    (tmp_path / "junk").write_bytes(b"not a model at all, just bytes" * 4)
    with pytest.raises(IndexFormatError, match="not a pyspec model file"):
        load_model(tmp_path / "junk")
    from pyspec.index.hamming import HammingIndex
    from pyspec.models import pq as pq_module

    HammingIndex(n_bits=64).save(tmp_path / "index.bin")
    with pytest.raises(IndexFormatError, match="not a pyspec model file"):
        load_model(tmp_path / "index.bin")
    for name in ("pil", "lsh", "itq"):  # the header kind each model class writes
        assert get_backend(name).file_kind == get_backend(name).model_type()._KIND
    assert get_backend("pq").file_kind == pq_module._KIND
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing")


def _own_copy(store, tmp_path):
    """A private copy of the module's store (tests that add spectra grow it)."""
    import shutil

    shutil.copytree(store.path, tmp_path / "store")
    return SpectrumStore.open(tmp_path / "store")


def test_a_new_backend_plugs_into_engine(exact_backend, store, tmp_path) -> None:
    store = _own_copy(store, tmp_path)
    engine = Engine.build(store, Centred(), out=tmp_path / "e", rerank_space="flux",
                          allow_unknown_preprocessing=True)
    assert engine.backend is exact_backend
    assert engine.kind == "exact-l2"
    assert engine.metric == "l2"
    assert engine.distance_unit is None
    flux = np.asarray(store.flux, np.float32)
    q = flux[:9] + 0.01
    d = ((q[:, None] - flux[None]) ** 2).sum(-1)
    want = np.argsort(d, axis=1, kind="stable")[:, :5]
    reopened = Engine.open(engine.path)
    assert reopened.verify()["columns"] == len(store.meta.colnames)
    for eng in (engine, reopened):
        res = eng.search_prepared(q, 5)
        np.testing.assert_array_equal(res.ids, want)
        np.testing.assert_allclose(res.distances, np.take_along_axis(d, want, 1), rtol=1e-5)
        table = eng.query_batch(q, k=5, rerank=0, prepared=True)
        np.testing.assert_array_equal(np.asarray(table["row"]).reshape(9, 5), want)
        assert table["id"][0] == f"s{want[0, 0]}"
    cat = catalogue_search(reopened, q, k=3)
    assert set(cat["row"].tolist()) == set(want[:, :3].ravel().tolist())
    matched = match_templates(reopened, q, rerank=0)
    np.testing.assert_array_equal(matched["template_row"], want[:, 0])
    with pytest.raises(ValueError, match="radius"):
        catalogue_search(reopened, q, radius=3)
    with pytest.raises(ValueError, match="no binary codes"):
        reopened.encode_prepared(q)
    assert reopened.search_plan(5).method == "scan"
    reopened.add(flux[:4] * 3.0, prepared=True)  # grows like any engine
    np.testing.assert_array_equal(reopened.search_prepared(flux[:4] * 3.0, 1).ids[:, 0],
                                  np.arange(120, 124))


def test_engine_description_must_pair_kind_and_model_class(store, tmp_path) -> None:
    from pyspec import _integrity

    engine = Engine.build(store, make_model("lsh", n_bits=64), out=tmp_path / "e",
                          rerank_space="flux", allow_unknown_preprocessing=True)
    path = engine.path / "engine.json"
    info = json.loads(path.read_text())
    info.pop("checksum", None)
    info["kind"] = "pq"
    _integrity.atomic_write(path, _integrity.dumps_checked(info))
    with pytest.raises(IndexFormatError, match="cannot make a 'pq' engine"):
        Engine.open(engine.path)


def test_graph_backend_serves_a_hashers_embeddings(store, tmp_path) -> None:
    from pyspec.models.pil import PILHasher

    store = _own_copy(store, tmp_path)
    hasher = PILHasher(n_bits=32, hidden=(48,), random_state=0)
    engine = Engine.build(store, hasher, out=tmp_path / "g", backend="pil-graph",
                          rerank_space="flux", allow_unknown_preprocessing=True)
    assert engine.kind == "graph"
    assert type(engine.index).__name__ == "GraphIndex"
    reopened = Engine.open(engine.path)
    assert reopened.backend is get_backend("pil-graph")
    reopened.verify()
    flux = np.asarray(store.flux, np.float32)
    emb = hasher.embed(flux[:30])
    all_emb = hasher.embed(flux)
    d = ((emb[:, None] - all_emb[None]) ** 2).sum(-1)
    want = np.argsort(d, axis=1, kind="stable")[:, :5]
    got = reopened.search_prepared(flux[:30], 5).ids
    recall = np.mean([np.intersect1d(g, w).size / 5 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95  # HNSW is approximate; 120 points and ef=64 find nearly all
    np.testing.assert_array_equal(got[:, 0], np.arange(30))  # each row finds itself
    assert reopened.search_plan(5).method == "graph"
    reopened.add(flux[:2] + 1.0, prepared=True)
    assert len(Engine.open(engine.path)) == 122
    with pytest.raises(TypeError, match="takes a PILHasher"):
        Engine.build(store, make_model("lsh", n_bits=32), out=tmp_path / "x",
                     backend="pil-graph", allow_unknown_preprocessing=True)
