"""Engine.add: spectra appended to the store and the index together, as a rebuild would."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pyspec.engine import Engine
from pyspec.errors import StoreChangedError
from pyspec.models.itq import ITQHasher
from pyspec.models.pq import ProductQuantizer
from pyspec.preprocess import Preprocessor, WavelengthGrid
from pyspec.search_checks import search_space, to_search_space
from pyspec.store import SpectrumStore

N_PIX = 140


def _recipe() -> dict:
    grid = WavelengthGrid.preset("halpha-140").to_dict()
    return Preprocessor.from_dict({**Preprocessor.preset("similarity").to_dict(),
                                   "grid": grid}).to_dict()


def _write(path, n, seed, prefix):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(6, N_PIX))
    flux = centres[rng.integers(0, 6, n)] + 0.4 * rng.normal(size=(n, N_PIX)) + 3.0
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    meta = [{"id": f"{prefix}{i}", "class": ["STAR", "GALAXY", "QSO"][i % 3],
             "z": 0.01 * i, "ra": float(i), "dec": -float(i), "flagged": bool(i % 2)}
            for i in range(n)]
    ivar = rng.uniform(0.5, 2.0, (n, N_PIX)).astype(np.float32)
    with SpectrumStore.create(path, "halpha-140", _recipe()) as w:
        w.append(flux.astype(np.float32), ivar, meta)
    return SpectrumStore.open(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("add")
    return _write(root / "a", 150, 1, "a"), _write(root / "b", 70, 2, "b")


def _copy_store(store, path):
    shutil.copytree(store.path, path)
    return SpectrumStore.open(path)


def _same_answers(one: Engine, two: Engine, queries: np.ndarray, rerank) -> None:
    a = one.query_batch(queries, k=8, rerank=rerank, prepared=True, columns="all")
    b = two.query_batch(queries, k=8, rerank=rerank, prepared=True, columns="all")
    assert a.colnames == b.colnames
    for name in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


@pytest.mark.parametrize("kind", ["hamming", "pq"])
def test_add_store_rows_equals_fresh_build(stores, tmp_path, kind) -> None:
    a, b = stores
    store = _copy_store(a, tmp_path / "store")
    model = ITQHasher(n_bits=64, random_state=0) if kind == "hamming" else \
        ProductQuantizer(n_segments=7, n_centroids=16, random_state=0)
    engine = Engine.build(store, model, out=tmp_path / "engine", rerank_space="flux")
    out = engine.add(b, chunk_size=32)
    np.testing.assert_array_equal(out["rows"], np.arange(150, 220))
    assert len(engine) == 220
    assert len(engine.index) == 220
    assert out["rejects"] == []
    grown = SpectrumStore.open(store.path)
    assert len(grown) == 220
    np.testing.assert_array_equal(grown.flux[150:], b.flux)  # the store kept in step
    np.testing.assert_array_equal(grown.ivar[150:], b.ivar)
    for col in ("id", "class", "z", "flagged"):
        np.testing.assert_array_equal(grown.meta[col][150:], b.meta[col])
    assert grown.verify()["rows"] == 220
    assert Engine.open(engine.path).verify()["columns"] == len(engine.meta.colnames)

    fresh = Engine.build(grown, engine.model, out=tmp_path / "fresh", rerank_space="flux")
    assert (engine.path / "index.bin").read_bytes() == (fresh.path / "index.bin").read_bytes()
    assert (engine.path / "model.bin").read_bytes() == (fresh.path / "model.bin").read_bytes()
    queries = np.asarray(grown.flux[::11], np.float32)
    _same_answers(engine, fresh, queries, 0)
    _same_answers(Engine.open(engine.path), fresh, queries, None)


def test_add_prepared_arrays_extends_the_pca_projections(stores, tmp_path) -> None:
    a, b = stores
    store = _copy_store(a, tmp_path / "store")
    engine = Engine.build(store, ITQHasher(n_bits=64, random_state=0), out=tmp_path / "engine",
                          n_components=6)
    basis_before, projection_before = (np.array(x) for x in (engine._principal()[0].axes,
                                                              engine._principal()[1]))
    new = np.asarray(b.flux[:25], np.float32)
    engine.add(new, prepared=True)
    basis, projection = engine._principal()
    np.testing.assert_array_equal(basis.axes, basis_before)  # the basis is kept
    np.testing.assert_array_equal(projection[:150], projection_before)
    space = search_space(engine.info["preprocessing"])
    np.testing.assert_allclose(projection[150:], basis.project(to_search_space(new, space)),
                               rtol=0, atol=1e-6)
    engine.verify()
    # each added spectrum finds itself (exact re-rank distance 0) under its new row
    table = engine.query_batch(new, k=1, prepared=True)
    np.testing.assert_array_equal(table["row"], np.arange(150, 175))
    assert SpectrumStore.open(store.path).meta["id"][150:].tolist() == \
        [f"array[{i}]" for i in range(25)]


def test_add_records_rejects_and_keeps_the_store_check(stores, tmp_path) -> None:
    a, b = stores
    store = _copy_store(a, tmp_path / "store")
    engine = Engine.build(store, ITQHasher(n_bits=64, random_state=0), out=tmp_path / "engine",
                          rerank_space="flux")
    raw = np.asarray(b.flux[:3], np.float64) * 100.0
    raw[1] = np.nan  # no good pixels: rejected, recorded, the others are added
    out = engine.add(raw)
    assert out["rows"].tolist() == [150, 151]
    assert len(out["rejects"]) == 1
    assert out["rejects"][0][0] == "array[1]"
    assert SpectrumStore.open(store.path).rejects["file"].tolist() == ["array[1]"]
    engine.verify()
    assert len(Engine.open(engine.path).store) == 152
    # another writer changes the store afterwards: the engine still notices
    with SpectrumStore.create(store.path, store.grid, store.preprocessing, append=True) as w:
        w.append(b.flux[:1], b.ivar[:1], [{"id": "other"}])
    with pytest.raises(StoreChangedError):
        Engine.open(engine.path).store  # noqa: B018
    with pytest.raises(StoreChangedError):
        Engine.open(engine.path).add(np.asarray(b.flux[:1]), prepared=True)


def test_add_refuses_a_store_of_another_grid(stores, tmp_path) -> None:
    a, _ = stores
    store = _copy_store(a, tmp_path / "store")
    engine = Engine.build(store, ITQHasher(n_bits=64, random_state=0), out=tmp_path / "engine",
                          rerank_space="flux")
    other_grid = WavelengthGrid.preset("halpha-wide")
    with SpectrumStore.create(tmp_path / "wide", other_grid, _recipe()) as w:
        w.append(np.ones((2, len(other_grid))), np.ones((2, len(other_grid))), [{}, {}])
    with pytest.raises(ValueError, match="different wavelength grid"):
        engine.add(SpectrumStore.open(tmp_path / "wide"))
    with pytest.raises(ValueError, match="chunk_size"):
        engine.add(np.asarray(a.flux[:1]), prepared=True, chunk_size=0)
    assert len(SpectrumStore.open(store.path)) == 150  # nothing appended
