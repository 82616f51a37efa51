"""ProductQuantizer: estimator contract, training properties, configurations of
the published study, persistence and typed errors."""

from __future__ import annotations

import numpy as np
import pytest
from pq_data import structured_spectra
from reference import pq_encode_ref
from sklearn.base import clone

import pyspec
from pyspec import IndexFormatError, NotFittedError, ProductQuantizer
from pyspec.models.pq import segment_bounds


@pytest.fixture(scope="module")
def spectra() -> np.ndarray:
    return structured_spectra(600, 200, seed=3)


def nearest_centroid_excess(pq: ProductQuantizer, X: np.ndarray, codes: np.ndarray) -> float:
    """Largest (distance to the chosen centroid - distance to the nearest), float64."""
    _, dist = pq_encode_ref(X, pq.codebook_, pq.segment_bounds_)
    chosen = np.take_along_axis(dist, codes.astype(np.int64)[:, :, None], axis=2)[:, :, 0]
    return float((chosen - dist.min(axis=2)).max())


def test_fit_returns_self_and_learned_state(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(n_segments=8, n_centroids=32, random_state=0)
    assert pq.fit(spectra) is pq
    assert pq.codebook_.shape == (32, 200) and pq.codebook_.dtype == np.float32
    np.testing.assert_array_equal(pq.segment_bounds_, segment_bounds(200, 8))
    assert pq.n_features_in_ == 200
    assert 1 <= pq.n_iter_ <= 25 and pq.inertia_ > 0


def test_code_dtype_follows_n_centroids(spectra: np.ndarray) -> None:
    small = ProductQuantizer(4, 256, random_state=0, n_iter=2).fit(spectra)
    codes = small.encode(spectra[:3])
    assert codes.dtype == np.uint8
    assert nearest_centroid_excess(small, spectra[:3], codes) <= 1e-6  # rows have unit norm
    large = ProductQuantizer(4, 300, random_state=0, n_iter=2).fit(spectra)
    codes = large.encode(spectra)
    assert codes.dtype == np.uint16 and codes.max() >= 256
    assert nearest_centroid_excess(large, spectra, codes) <= 1e-6


def test_uneven_split_rule(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(n_segments=7, n_centroids=8, random_state=0, n_iter=3).fit(spectra)
    lengths = np.diff(pq.segment_bounds_)
    assert lengths.tolist() == [29, 29, 29, 29, 28, 28, 28]  # 200 = 4 * 29 + 3 * 28


def test_encode_is_nearest_centroid_and_decode_reconstructs(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(10, 16, random_state=1).fit(spectra)
    codes = pq.encode(spectra)
    ref, dist = pq_encode_ref(spectra, pq.codebook_, pq.segment_bounds_)
    chosen = np.take_along_axis(dist, codes.astype(np.int64)[:, :, None], axis=2)[:, :, 0]
    assert np.all(chosen - dist.min(axis=2) <= 1e-6)  # rows have unit norm
    recon = pq.decode(codes)
    err = ((spectra.astype(np.float64) - recon) ** 2).sum()
    np.testing.assert_allclose(err, chosen.sum(), rtol=1e-5)
    # inertia_ is measured at the last assignment, before the final update,
    # which can only lower the error
    assert err <= pq.inertia_ * (1 + 1e-5)
    # training must beat the trivial quantiser (every segment -> the mean)
    assert err < 0.5 * ((spectra - spectra.mean(axis=0)) ** 2).sum()


def test_deterministic_for_random_state_and_threads(spectra: np.ndarray) -> None:
    fits = [ProductQuantizer(8, 32, random_state=7).fit(spectra, num_threads=nt)
            for nt in (1, 2, 4)]
    for other in fits[1:]:
        np.testing.assert_array_equal(fits[0].codebook_, other.codebook_)
    other_seed = ProductQuantizer(8, 32, random_state=8).fit(spectra)
    assert not np.array_equal(fits[0].codebook_, other_seed.codebook_)


def test_deterministic_across_simd_levels(spectra: np.ndarray) -> None:
    books = []
    for level in pyspec.available_simd_levels():
        with pyspec.simd_level(level):
            books.append(ProductQuantizer(5, 16, random_state=2, n_iter=5).fit(spectra).codebook_)
    for b in books[1:]:
        np.testing.assert_array_equal(books[0], b)


def test_refit_equals_fresh_fit_and_params(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(4, 8, random_state=0).fit(spectra[:100])
    pq.fit(spectra)
    fresh = ProductQuantizer(4, 8, random_state=0).fit(spectra)
    np.testing.assert_array_equal(pq.codebook_, fresh.codebook_)
    params = pq.get_params()
    assert params["n_segments"] == 4 and params["n_centroids"] == 8
    assert ProductQuantizer(**params).get_params() == params
    c = clone(pq).set_params(n_centroids=4)
    assert c.n_centroids == 4 and not hasattr(c, "codebook_")


def test_empty_clusters_are_repaired() -> None:
    # 8 distinct rows, each repeated 40 times: random seeding almost surely
    # picks a row twice, leaving an empty cluster that must be moved to the
    # farthest row. After repair every distinct row is its own centroid.
    rng = np.random.default_rng(5)
    distinct = rng.normal(size=(8, 12)).astype(np.float32)
    X = np.repeat(distinct, 40, axis=0)
    for seed in range(5):
        pq = ProductQuantizer(1, 8, random_state=seed, init="random", tol=0).fit(X)
        assert len(np.unique(pq.encode(distinct)[:, 0])) == 8
        np.testing.assert_allclose(pq.decode(pq.encode(X)), X, atol=1e-6)
    pq = ProductQuantizer(2, 8, random_state=0).fit(X)  # k-means++ path
    np.testing.assert_allclose(pq.decode(pq.encode(distinct)), distinct, atol=1e-6)


def test_worked_example() -> None:
    """4 spectra, 25 segments, 2 centroids: the query's nearest neighbour is
    itself, at the (non-zero) squared distance to its own reconstruction."""
    X = structured_spectra(4, 2500, seed=11)
    pq = ProductQuantizer(n_segments=25, n_centroids=2, random_state=0).fit(X)
    index = pyspec.PQIndex(pq)
    index.add(X)
    for q in range(4):
        res = index.search(X[q], k=4)
        assert res.ids[0, 0] == q
        assert res.distances[0, 0] > 0
        recon = pq.decode(pq.encode(X[q]))[0]
        exact = float(((X[q].astype(np.float64) - recon) ** 2).sum())
        assert res.distances[0, 0] == pytest.approx(exact, rel=1e-5)


@pytest.mark.parametrize("D", [2500, 5000])
@pytest.mark.parametrize("M", [25, 50, 100, 200, 250, 500, 1000, 1250])
def test_published_splits(D: int, M: int) -> None:
    """Every segment count of the study, on both spectrum lengths (small K and
    few rows keep this fast; centroid counts are covered below)."""
    X = structured_spectra(120, D, seed=M)
    pq = ProductQuantizer(M, 100, random_state=0, n_iter=2).fit(X)
    codes = pq.encode(X)
    assert codes.shape == (120, M)
    assert np.diff(pq.segment_bounds_).min() == D // M
    assert pq.decode(codes).shape == (120, D)


@pytest.mark.parametrize("K", [100, 256, 1000, 3200])
def test_published_centroid_counts(K: int) -> None:
    X = structured_spectra(K + 50, 100, seed=K)
    pq = ProductQuantizer(25, K, random_state=0, n_iter=2).fit(X)
    codes = pq.encode(X)
    assert codes.dtype == (np.uint8 if K <= 256 else np.uint16)
    assert codes.max() < K
    # 200 rows: the float64 reference holds n * M * K distances
    assert nearest_centroid_excess(pq, X[:200], codes[:200]) <= 1e-6


@pytest.mark.slow
def test_study_scale_3200_centroids() -> None:
    X = structured_spectra(3300, 2500, seed=1)
    pq = ProductQuantizer(1250, 3200, random_state=0, n_iter=1).fit(X)
    codes = pq.encode(X[:2])
    assert codes.dtype == np.uint16
    assert codes.shape == (2, 1250)
    assert nearest_centroid_excess(pq, X[:2], codes) <= 1e-6


def test_save_load_round_trip(tmp_path, spectra: np.ndarray) -> None:
    pq = ProductQuantizer(7, 20, random_state=0).fit(spectra)
    path = tmp_path / "model.pq"
    pq.save(path)
    back = ProductQuantizer.load(path)
    np.testing.assert_array_equal(back.codebook_, pq.codebook_)
    assert back.get_params() == pq.get_params()
    np.testing.assert_array_equal(back.encode(spectra), pq.encode(spectra))


def test_corrupted_or_foreign_file(tmp_path, spectra: np.ndarray) -> None:
    pq = ProductQuantizer(4, 8, random_state=0).fit(spectra)
    path = tmp_path / "model.pq"
    pq.save(path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.pq"
    bad.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError):
        ProductQuantizer.load(bad)
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexFormatError):
        ProductQuantizer.load(bad)
    index = pyspec.PQIndex(pq)
    index.save(tmp_path / "index.pqx")
    with pytest.raises(IndexFormatError, match="expected 'QM'"):
        ProductQuantizer.load(tmp_path / "index.pqx")


def test_typed_errors(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(4, 8)
    with pytest.raises(NotFittedError, match="fit"):
        pq.encode(spectra)
    with pytest.raises(NotFittedError):
        pq.decode(np.zeros((1, 4), np.uint8))
    bad = spectra.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pq.fit(bad)
    with pytest.raises(ValueError, match="train on at least 700"):
        ProductQuantizer(4, 700).fit(spectra)
    with pytest.raises(ValueError, match="Complex data not supported"):
        pq.fit(spectra.astype(np.complex64))
    with pytest.raises(ValueError, match="n_segments"):
        ProductQuantizer(201, 8).fit(spectra)
    with pytest.raises(ValueError, match="n_centroids"):
        ProductQuantizer(4, 70000).fit(spectra)
    with pytest.raises(TypeError, match="n_segments"):
        ProductQuantizer(4.0, 8).fit(spectra)
    with pytest.raises(ValueError, match="init"):
        ProductQuantizer(4, 8, init="kmeans").fit(spectra)
    pq.fit(spectra)
    with pytest.raises(ValueError, match="expected 200 pixels"):
        pq.encode(spectra[:, :150])
    with pytest.raises(ValueError, match="expected 200 pixels"):
        pq.distance_tables(spectra[:, :150])
    with pytest.raises(ValueError, match="values must be in"):
        pq.decode(np.full((2, 4), 8))
    with pytest.raises(TypeError, match="integer"):
        pq.decode(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        pq.decode(np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match="num_threads"):
        pq.encode(spectra, num_threads=0)


def test_float64_input_is_converted(spectra: np.ndarray) -> None:
    pq = ProductQuantizer(4, 8, random_state=0).fit(spectra)
    np.testing.assert_array_equal(pq.encode(spectra.astype(np.float64)), pq.encode(spectra))
    noncontig = np.asfortranarray(spectra)
    np.testing.assert_array_equal(pq.encode(noncontig), pq.encode(spectra))
