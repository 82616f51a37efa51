"""Engine: build/open round trip, query-by-example on real spectra, re-ranking, PQ, errors.

The engine is built over a store of the shipped LAMOST sample plus simulated
spectra (as in `pyspec demo`), with a small PIL hasher so the suite stays fast.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pyspec._bits import unpack_bits
from pyspec.data import sample_files
from pyspec.data.sample_store import build_sample_store
from pyspec.engine import Engine
from pyspec.errors import FitsFormatError, IndexFormatError, PyspecError
from pyspec.models.pil import PILHasher
from pyspec.workflows import catalogue_search


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store, n_real, n_rejected, _ = build_sample_store(tmp_path_factory.mktemp("s") / "store", 240,
                                                      seed=1)
    # one shipped spectrum covers only 70% of the grid (44% of its ivar is zero) and is rejected;
    # so are two of S/N 0.1 and 1.2 whose continuum is not positive on 11-19% of the grid
    assert n_real + n_rejected == 59 and n_real == 56
    assert sum("continuum is not positive" in r for r in store.rejects["reason"]) == 2
    assert len(store) == n_real + 240 and len(store.rejects) == n_rejected
    return store


@pytest.fixture(scope="module")
def engine(store, tmp_path_factory):
    hasher = PILHasher(n_bits=64, hidden=(128, 96), random_state=0)
    return Engine.build(store, hasher, out=tmp_path_factory.mktemp("e") / "engine")


def test_sample_store_with_another_preset(store, tmp_path) -> None:
    """build_sample_store(preprocessing=...) prepares and records that preset (the bench's
    first-wave configuration is an engine on the "l2" recipe)."""
    l2 = build_sample_store(tmp_path / "l2", 0, preprocessing="l2")[0]
    assert l2.preprocessing["name"] == "l2"
    assert l2.preprocessing["normalise"] == "l2"
    assert l2.preprocessing["grid"] == store.preprocessing["grid"]  # the same LAMOST grid
    np.testing.assert_allclose(np.linalg.norm(np.asarray(l2.flux), axis=1), 1.0, rtol=1e-5)
    assert store.preprocessing["name"] == "similarity"  # the default stays the default
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        build_sample_store(tmp_path / "bad", 0, preprocessing="nope")


def test_build_writes_directory_and_opens(engine, store) -> None:
    for name in ("engine.json", "model.bin", "index.bin", "meta"):
        assert (engine.path / name).exists()
    again = Engine.open(engine.path)
    assert len(again) == len(store) and again.kind == "hamming"
    assert again.n_pixels == len(store.grid)
    np.testing.assert_array_equal(again.grid.wavelength, store.grid.wavelength)
    info = json.loads((engine.path / "engine.json").read_text())
    assert info["preprocessing"] == store.preprocessing
    assert info["model_class"] == "PILHasher" and info["model_params"]["n_bits"] == 64
    # the index holds exactly the model's codes of the store rows, ids = rows
    np.testing.assert_array_equal(np.asarray(again.index.codes), again.model.encode(store.flux))
    np.testing.assert_array_equal(np.asarray(again.index.ids), np.arange(len(store)))
    rows = np.array([5, 0, 17])
    t = again.meta_rows(rows)
    assert list(t["id"]) == list(store.meta["id"][rows])
    assert t["ra"].unit == "deg"


@pytest.mark.parametrize("i", [0, 11, 33, 55])
def test_sample_file_is_its_own_first_neighbour(engine, store, i) -> None:
    path = str(store.meta["file"][i])
    table = engine.query(path, k=5)
    row = i
    assert table["distance"][0] == 0
    assert row in set(table["row"][table["distance"] == 0])
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert np.all(np.diff(np.asarray(table["distance"])) >= 0)
    for col in ("id", "file", "ra", "dec", "class", "subclass", "z", "snr_r", "distance", "rank"):
        assert col in table.colnames
    # two-stage search by default: exact squared L2 on the stored spectra
    assert table["distance"].unit is None
    codes_only = engine.query(path, k=5, rerank=0)
    assert str(codes_only["distance"].unit) == "bit"
    assert row in set(codes_only["row"][codes_only["distance"] == 0])


def test_query_distances_equal_brute_force(engine, store) -> None:
    flux, _, _ = engine.prepare(str(sample_files()[3]))
    code = engine.encode_prepared(flux)
    bits = unpack_bits(np.asarray(engine.index.codes), 64)
    d = (unpack_bits(code, 64) != bits).sum(1)
    order = np.lexsort((np.arange(d.size), d))[:10]
    # an array on the engine grid is prepared the same way; rerank=0: the codes alone
    table = engine.query(flux[0], k=10, rerank=0, prepared=True)
    np.testing.assert_array_equal(table["row"], order)
    np.testing.assert_array_equal(table["distance"], d[order])


def test_store_row_as_array_and_rerank(engine, store) -> None:
    row = 100  # a simulated spectrum
    table = engine.query(np.asarray(store.flux[row]), k=5, rerank=50, prepared=True)
    assert table["row"][0] == row
    assert table["distance"][0] == pytest.approx(0.0, abs=1e-6)
    # the default re-rank space: the projections on the store's principal components
    basis, _ = engine._principal()
    z = (np.asarray(store.flux[table["row"]], np.float64) - basis.mean) @ basis.axes.T
    exact = ((z - z[0]) ** 2).sum(1)
    np.testing.assert_allclose(table["distance"], exact, rtol=1e-4, atol=1e-6)
    assert table["distance"].unit is None


def test_query_batch_records_rejects(engine, tmp_path) -> None:
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file at all" * 10)
    files = [str(sample_files()[0]), str(bad), str(sample_files()[1])]
    table = engine.query_batch(files, k=3)
    assert sorted(set(table["query_index"])) == [0, 1]
    assert len(table) == 6
    assert [r[0] for r in table.meta["rejects"]] == [str(bad)]
    assert (table["distance"][table["rank"] == 1] == 0).all()


def test_k_larger_than_engine(engine) -> None:
    table = engine.query(str(sample_files()[0]), k=len(engine) + 10)
    assert len(table) == len(engine)
    assert sorted(table["row"]) == list(range(len(engine)))


def test_catalogue_search_on_real_engine_vs_brute_force(engine, store) -> None:
    rows = np.arange(0, 59, 6)
    table = catalogue_search(engine, np.asarray(store.flux[rows]), rows, radius=12)
    bits = unpack_bits(np.asarray(engine.index.codes), 64)
    expected: dict[int, tuple[int, int, int]] = {}
    for q in rows:
        d = (bits != bits[q]).sum(1)
        for r in np.flatnonzero(d <= 12):
            c, b, bq = expected.get(int(r), (0, 99, -1))
            expected[int(r)] = (c + 1, *min((b, bq), (int(d[r]), int(q))))
    assert {int(r) for r in table["row"]} == set(expected)
    for rec in table:
        assert (rec["n_queries"], rec["best_distance"], rec["best_query"]) == expected[rec["row"]]


def test_pq_engine(store, tmp_path) -> None:
    from pyspec.models.pq import ProductQuantizer

    pq = ProductQuantizer(n_segments=8, n_centroids=16, random_state=0)
    eng = Engine.build(store, pq, out=tmp_path / "pq")
    assert Engine.open(eng.path).kind == "pq" and eng.metric == "l2"
    table = eng.query(np.asarray(store.flux[7]), k=5, rerank=40, prepared=True)
    assert table["row"][0] == 7 and table["distance"][0] == pytest.approx(0, abs=1e-6)
    plain = eng.query(np.asarray(store.flux[7]), k=5, rerank=0, prepared=True)
    assert np.all(np.diff(np.asarray(plain["distance"])) >= 0)


def test_errors(engine, store, tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        Engine.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexFormatError, match="engine.json"):
        Engine.open(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(engine.path, broken)
    (broken / "engine.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="JSON"):
        Engine.open(broken)
    shutil.rmtree(broken)
    shutil.copytree(engine.path, broken)
    (broken / "index.bin").write_bytes((engine.path / "index.bin").read_bytes()[:100])
    with pytest.raises(IndexFormatError):
        Engine.open(broken)
    with pytest.raises(FileNotFoundError):
        engine.query(str(tmp_path / "missing.fits"))
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"SIMPLE  = garbage")
    with pytest.raises(FitsFormatError):
        engine.query(str(junk))
    with pytest.raises(ValueError, match="engine's grid"):
        engine.query(np.ones(100, np.float32))
    from pyspec.preprocess import WavelengthGrid

    with pytest.raises(ValueError, match="different wavelength grid"):
        engine.check_grid(WavelengthGrid.preset("pq-2A"), "store x")
    with pytest.raises(FileExistsError):
        Engine.build(store, PILHasher(n_bits=64, hidden=(128, 96)), out=engine.path)
    fitted_elsewhere = PILHasher(n_bits=64, hidden=(16,), random_state=0).fit(
        np.random.default_rng(0).random((100, 30), dtype=np.float32))
    with pytest.raises(ValueError, match="pixels"):
        Engine.build(store, fitted_elsewhere, out=tmp_path / "e2")
    assert issubclass(IndexFormatError, PyspecError)


def test_query_metadata_columns(engine, store) -> None:
    path = str(store.meta["file"][0])
    main = engine.query(path, k=3)
    every = engine.query(path, k=3, columns="all")
    some = engine.query(path, k=3, columns=["ra"])
    assert set(main.colnames) < set(every.colnames)
    assert set(every.colnames) >= set(store.meta.colnames)
    assert "ra" in some.colnames and "class" not in some.colnames
    np.testing.assert_array_equal(main["row"], every["row"])
    with pytest.raises(ValueError, match="unknown metadata column"):
        engine.query(path, k=3, columns=["nope"])
    with pytest.raises(ValueError, match="'main', 'all'"):
        engine.query(path, k=3, columns="everything")
