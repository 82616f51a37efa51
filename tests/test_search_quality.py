"""Issue 14: the default pipeline searches well and never answers silently wrong.

Every refusal has a test here: unknown or mismatched preprocessing, a store
that changed after the build; plus the collapse warning, ``plot_query``
drawing the table's own query, the simulate -> build -> self-query round
trip, PIL sizes that scale with the training set, and the held-out evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.engine import Engine
from pyspec.errors import IndexFormatError, PreprocessingError, StoreChangedError
from pyspec.models.lsh import LSHHasher
from pyspec.models.pil import PILHasher
from pyspec.preprocess import PREPROCESSING_PRESETS, Preprocessor, WavelengthGrid
from pyspec.store import SpectrumStore

GRID = WavelengthGrid.preset("pq-2A")


def _rows(n: int, seed: int = 0) -> np.ndarray:
    """Smooth, distinct spectra (continuum ~1 with Gaussian absorption lines)."""
    rng = np.random.default_rng(seed)
    wl = GRID.wavelength
    flux = np.ones((n, wl.size))
    for i in range(n):
        for c in rng.uniform(4100, 8700, 12):
            flux[i] -= rng.uniform(0.1, 0.6) * np.exp(-0.5 * ((wl - c) / rng.uniform(3, 15)) ** 2)
    return (flux * rng.uniform(0.5, 2.0, (n, 1))).astype(np.float32)


def _store(path, n: int = 120, preprocessing: str | None = "similarity", seed: int = 0):
    pre = None if preprocessing is None else Preprocessor.from_dict(
        {**Preprocessor.preset(preprocessing).to_dict(), "grid": GRID.to_dict()})
    raw = _rows(n, seed)
    ivar = np.full(raw.shape, 100.0, np.float32)
    flux = raw if pre is None else pre.apply_on_grid(raw, ivar).flux
    with SpectrumStore.create(path, GRID, None if pre is None else pre.to_dict()) as w:
        w.append(flux, ivar, [{"id": f"s{i}", "file": f"s{i}.fits"} for i in range(n)])
    return SpectrumStore.open(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    store = _store(root / "store")
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=root / "engine")
    return store, engine


def test_presets_round_trip_and_unknown_name() -> None:
    for name in PREPROCESSING_PRESETS:
        pre = Preprocessor.preset(name)
        again = Preprocessor.from_dict(pre.to_dict())
        assert again.same_as(pre) and again.name == name
    assert not Preprocessor.preset("similarity").same_as(Preprocessor.preset("l2"))
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        Preprocessor.preset("nope")


def test_similarity_recipe_removes_continuum_and_masks() -> None:
    pre = Preprocessor.from_dict({**Preprocessor.preset("similarity").to_dict(),
                                  "grid": GRID.to_dict()})
    raw = _rows(3)
    tilt = np.linspace(0.5, 2.0, raw.shape[1])  # a flux-calibration slope
    a = pre.apply_on_grid(raw, np.ones_like(raw))
    b = pre.apply_on_grid(raw * tilt * 3.0, np.ones_like(raw))
    assert a.ok.all() and b.ok.all()
    # scale and a smooth slope barely change the prepared rows (while raw rows differ by 100%)
    assert np.abs(a.flux - b.flux).mean() < 0.01
    wl = GRID.wavelength
    outside = (wl < 4000) | (wl > 8800)
    assert np.all(a.flux[:, outside] == 1.0) and np.all(a.ivar[:, outside] == 0)
    assert a.flux.min() >= 0.0 and a.flux.max() <= 2.0


def test_build_refuses_unknown_preprocessing(tmp_path) -> None:
    store = _store(tmp_path / "raw", 60, preprocessing=None)
    with pytest.raises(PreprocessingError, match="records no preprocessing"):
        Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "e")
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "e",
                          allow_unknown_preprocessing=True)
    with pytest.raises(PreprocessingError):  # a query cannot be prepared like the archive
        engine.query(np.asarray(store.flux[0]), k=3)


def test_mismatched_store_is_refused(built, tmp_path) -> None:
    _, engine = built
    other = _store(tmp_path / "l2", 30, preprocessing="l2")
    with pytest.raises(PreprocessingError, match="'l2'.*'similarity'"):
        engine.check_store(other, "target store")
    engine.check_store(_store(tmp_path / "same", 30), "target store")  # same recipe: fine


def test_cli_search_targets_refuses_mismatch(built, tmp_path, capsys) -> None:
    from pyspec.cli import main

    _, engine = built
    other = _store(tmp_path / "l2", 30, preprocessing="l2")
    code = main(["search", "--engine", str(engine.path), "--targets", str(other.path),
                 "--out", str(tmp_path / "t.ecsv")])
    assert code != 0
    assert "preprocessing" in capsys.readouterr().err


def test_engine_detects_changed_store(tmp_path) -> None:
    store = _store(tmp_path / "s", 60)
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "e")
    assert len(engine.query(np.asarray(store.flux[0]), k=3)) == 3
    with SpectrumStore.create(store.path, GRID, store.preprocessing, append=True) as w:
        w.append(store.flux[:2], store.ivar[:2], [{"id": "x", "file": "x"}, {"id": "y",
                                                                               "file": "y"}])
    again = Engine.open(engine.path)
    with pytest.raises(StoreChangedError, match="changed after the engine"):
        again.query(np.asarray(store.flux[0]), k=3)


def test_build_warns_when_codes_collapse(tmp_path) -> None:
    store = _store(tmp_path / "s", 80)
    flux = np.repeat(np.asarray(store.flux[:4]), 20, axis=0)  # 4 distinct spectra
    with SpectrumStore.create(tmp_path / "dup", GRID, store.preprocessing) as w:
        w.append(flux, np.ones_like(flux), [{"id": str(i)} for i in range(len(flux))])
    with pytest.warns(UserWarning, match="distinct codes for 80 spectra"):
        Engine.build(SpectrumStore.open(tmp_path / "dup"), LSHHasher(n_bits=64, random_state=0),
                     out=tmp_path / "e")


def _reference_principal(x: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, first c principal axes) of the rows of x by NumPy's SVD."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    return mean, np.linalg.svd(x - mean, full_matrices=False)[2][:c]


def test_two_stage_default_reranks_by_principal_components(built) -> None:
    store, engine = built
    flux = np.asarray(store.flux, np.float64)
    assert engine.rerank_space == "pca"
    assert engine.info["rerank"]["n_components"] == 30  # 120 / 4
    mean, axes = _reference_principal(flux, 30)
    basis, projection = engine._principal()
    # the same subspace as NumPy's SVD (the axes' signs and order within ties are free)
    np.testing.assert_allclose(basis.axes.T @ basis.axes, axes.T @ axes, atol=2e-4)
    np.testing.assert_allclose(projection, (flux - basis.mean) @ basis.axes.T.astype(np.float64),
                               rtol=1e-4, atol=1e-4)
    q = np.asarray(store.flux[7])
    table = engine.query(q, k=5)
    prepared = engine.prepare(q)[0][0]
    z = (flux - mean) @ axes.T
    d = (((prepared - mean) @ axes.T - z) ** 2).sum(1)
    cand = engine.search_prepared(prepared[None], 100).ids[0]
    best = cand[np.lexsort((cand, d[cand]))][:5]
    np.testing.assert_array_equal(table["row"], best)
    np.testing.assert_allclose(table["distance"], d[best], rtol=1e-3, atol=1e-4)
    assert table["row"][0] == 7
    with pytest.raises(ValueError, match="rerank"):
        engine.query(q, k=5, rerank=-1)


def test_flux_rerank_space_is_exact_order(built, tmp_path) -> None:
    store, _ = built
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "e",
                          rerank_space="flux")
    assert engine.rerank_space == "flux"
    assert not (engine.path / "rerank").exists()
    q = np.asarray(store.flux[7])
    table = Engine.open(engine.path).query(q, k=5)
    prepared = engine.prepare(q)[0][0]
    d = ((np.asarray(store.flux) - prepared) ** 2).sum(1)
    cand = engine.search_prepared(prepared[None], 100).ids[0]
    best = cand[np.lexsort((cand, d[cand]))][:5]
    np.testing.assert_array_equal(table["row"], best)
    with pytest.raises(ValueError, match="rerank_space"):
        Engine.build(store, "lsh", out=tmp_path / "f", rerank_space="pixels")
    with pytest.raises(ValueError, match="n_components"):
        Engine.build(store, "lsh", out=tmp_path / "f", n_components=0)


def test_principal_rerank_survives_save_and_open(built, tmp_path) -> None:
    import shutil

    store, engine = built
    copy = tmp_path / "copy"
    shutil.copytree(engine.path, copy)
    again = Engine.open(copy)
    q = np.asarray(store.flux[[3, 50, 99]])
    a, b = engine.query_batch(q, k=6), again.query_batch(q, k=6)
    np.testing.assert_array_equal(a["row"], b["row"])
    np.testing.assert_array_equal(a["distance"], b["distance"])
    assert again.info["rerank"] == engine.info["rerank"]
    del again
    np.save(copy / "rerank" / "pca_projection.npy", np.zeros((5, 30), np.float32))
    with pytest.raises(IndexFormatError, match="pca_projection"):
        Engine.open(copy).query(q[0], k=3)


def test_plot_query_uses_the_tables_own_query(built, tmp_path, saved_figures) -> None:
    store, engine = built
    first = engine.query(np.asarray(store.flux[3]), k=4)
    engine.query(np.asarray(store.flux[9]), k=4)  # a later query must not leak into the plot
    np.testing.assert_array_equal(engine._query_flux_of(first),
                                  engine.prepare(np.asarray(store.flux[3]))[0][0])
    assert engine.plot_query(first, tmp_path / "q.png").exists()
    (ax,) = saved_figures[0].axes
    assert len(ax.get_lines()) == 1 + len(first) == 5  # the query, then 4 neighbours
    labels = [text.get_text() for text in ax.texts[1:]]
    assert [lab.split()[1] for lab in labels] == [str(i) for i in first["id"]]
    batch = engine.query_batch(np.asarray(store.flux[[1, 2]]), k=3)
    with pytest.raises(ValueError, match="neighbours of 2 queries"):
        engine.plot_query(batch, tmp_path / "b.png")
    one = batch[batch["query_index"] == 1]
    np.testing.assert_array_equal(engine._query_flux_of(one),
                                  engine.prepare(np.asarray(store.flux[2]))[0][0])


def test_pil_widths_scale_with_training_set() -> None:
    pre = Preprocessor.from_dict({**Preprocessor.preset("similarity").to_dict(),
                                  "grid": GRID.to_dict()})
    raw = _rows(40)
    X = pre.apply_on_grid(raw, np.ones_like(raw)).flux
    model = PILHasher(n_bits=64, random_state=0).fit(X)
    assert model.hidden_widths_ == [64, 64]
    assert np.unique(model.transform(X), axis=0).shape[0] == 40
    with pytest.raises(ValueError, match="hidden='auto'"):
        PILHasher(n_bits=64, hidden=(128, 64)).fit(X)


def test_simulate_build_self_query_round_trip(tmp_path) -> None:
    from pyspec.simulate import write_store

    path = write_store(tmp_path / "sim", 150, seed=3, grid="pq-2A", chunk_size=64)
    store = SpectrumStore.open(path)
    assert Preprocessor.from_dict(store.preprocessing).name == "similarity"
    engine = Engine.build(store, "pil", out=tmp_path / "e")  # defaults, 150 spectra
    for row in (0, 41, 149):
        table = engine.query(np.asarray(store.flux[row]), k=5)
        assert table["row"][0] == row


def test_evaluate_holds_queries_out_and_reports_exact_ceiling() -> None:
    from pyspec.evaluate import evaluate_hashers, holdout_split, synthetic_labelled_spectra

    X, y = synthetic_labelled_spectra(300, 200, 4, 0.2, random_state=0)
    q, db = holdout_split(300, 1000, 0.2, 0)
    assert q.size == 60 and np.intersect1d(q, db).size == 0 and q.size + db.size == 300
    table = evaluate_hashers(X, y, ("lsh",), (64,), random_state=0, cutoffs=np.array([10]))
    assert list(table["hasher"]) == ["exact-l2", "lsh"]
    assert table.meta["n_database"] == 240 and table.meta["n_queries"] == 60
    exact, lsh = table["precision"]
    assert exact >= lsh - 0.05 and 0 <= lsh <= 1


def test_pq_on_sumsq_store_ignores_brightness(tmp_path) -> None:
    """f / sum f^2 rows carry 1 / ||f||: the engine compares them by direction."""
    from pyspec.models.pq import ProductQuantizer

    store = _store(tmp_path / "s", 120, preprocessing="sumsq")
    engine = Engine.build(store, ProductQuantizer(n_segments=8, n_centroids=16, random_state=0),
                          out=tmp_path / "e")
    row = np.asarray(store.flux[5])
    for rerank in (0, None):
        a = engine.query(row, k=5, rerank=rerank, prepared=True)
        b = engine.query(row * 0.2, k=5, rerank=rerank, prepared=True)  # 5x brighter star
        np.testing.assert_array_equal(a["row"], b["row"])
        np.testing.assert_allclose(a["distance"], b["distance"], rtol=1e-4, atol=1e-6)
    assert engine.query(row, k=1, prepared=True)["row"][0] == 5


def test_cli_ingest_records_named_recipe(tmp_path, capsys) -> None:
    from pyspec.cli import main
    from pyspec.data import sample_files

    files = [str(p) for p in sample_files()[:3]]
    assert main(["ingest", *files, "--out", str(tmp_path / "d"), "--quiet"]) == 0
    assert SpectrumStore.open(tmp_path / "d").preprocessing["name"] == "similarity"
    assert main(["ingest", *files, "--out", str(tmp_path / "m"), "--preprocessing", "minmax",
                 "--quiet"]) == 0
    assert Preprocessor.from_dict(SpectrumStore.open(tmp_path / "m").preprocessing).same_as(
        Preprocessor.preset("minmax"))
    capsys.readouterr()


def test_cli_build_errors_name_flags(tmp_path, capsys) -> None:
    from pyspec.cli import main

    store = _store(tmp_path / "s", 40)
    code = main(["build", str(store.path), "--out", str(tmp_path / "e"), "--hidden", "128,64",
                 "--n-bits", "64", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "--hidden" in err and "--n-bits" in err and "n_bits=" not in err
    code = main(["build", str(store.path), "--out", str(tmp_path / "i"), "--model", "itq",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "--n-bits 256" in err
    # defaults scale with the store: PIL widths and PQ centroids fit 40 spectra
    assert main(["build", str(store.path), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert main(["build", str(store.path), "--out", str(tmp_path / "q"), "--model", "pq",
                 "--segments", "5", "--quiet"]) == 0
    assert main(["build", str(_store(tmp_path / "raw", 40, None).path), "--out",
                 str(tmp_path / "r"), "--quiet"]) == 1
    assert "--allow-unknown-preprocessing" in capsys.readouterr().err
    # the re-rank space is chosen and recorded at build; errors name the flags
    assert Engine.open(tmp_path / "p").info["rerank"]["n_components"] == 10  # 40 / 4
    assert main(["build", str(store.path), "--out", str(tmp_path / "f"), "--model", "lsh",
                 "--n-bits", "64", "--rerank-space", "flux", "--quiet"]) == 0
    assert Engine.open(tmp_path / "f").rerank_space == "flux"
    assert main(["build", str(store.path), "--out", str(tmp_path / "c"), "--model", "lsh",
                 "--n-bits", "64", "--components", "6", "--quiet"]) == 0
    rerank = Engine.open(tmp_path / "c").info["rerank"]
    assert rerank["space"] == "pca"
    assert rerank["n_components"] == 6
    assert 0 < rerank["explained_variance_ratio"] <= 1
    assert main(["build", str(store.path), "--out", str(tmp_path / "z"), "--model", "lsh",
                 "--components", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--components" in err
    assert "n_components" not in err


@pytest.mark.parametrize("window", [500.0, 150.0])
def test_clipped_continuum_kernel_matches_numpy_reference(window) -> None:
    from reference import continuum_clipped_median_ref

    from pyspec.preprocess import continuum_clipped_median

    rng = np.random.default_rng(3)
    wl = GRID.wavelength
    flux = _rows(6, seed=3).astype(np.float64) * np.linspace(0.4, 1.6, wl.size)
    flux += rng.normal(0, 0.02, flux.shape)
    ivar = np.ones_like(flux)
    ivar[0, 100:400] = 0  # a masked run wider than a block
    ivar[1, :] = 0
    ivar[1, ::50] = 1  # very few good pixels
    got = continuum_clipped_median(flux, wl, ivar, window)
    want = continuum_clipped_median_ref(flux, wl, ivar > 0, window)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the robust continuum sits on the line-free top, not inside the absorption lines
    plain = continuum_clipped_median(flux, wl, ivar, window, n_iter=0)
    assert (got[2:] - plain[2:]).mean() > 0


def test_missing_store_falls_back_to_codes_with_a_warning(tmp_path) -> None:
    import shutil

    store = _store(tmp_path / "s", 60)
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "e")
    row = np.asarray(store.flux[4])
    shutil.move(str(store.path), str(tmp_path / "moved"))
    again = Engine.open(engine.path)
    with pytest.warns(UserWarning, match="answering from the codes alone"):
        table = again.query(row, k=3, prepared=True)
    assert str(table["distance"].unit) == "bit" and table["row"][0] == 4
