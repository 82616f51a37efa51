"""Index API: named results, remove_ids, filtered and range search, saved
re-rank vectors and memory accounting, each against brute force or the
arrays actually held."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pyspec import HammingIndex, PQIndex, ProductQuantizer, SearchResult
from pyspec.index._filter import use_post_filter
from pyspec.index._result import RangeResult
from pyspec.index.hamming import hamming_distances
from pyspec.index.pq import adc_distances


def _top_k(dist: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: per row the k smallest by (distance, id)."""
    order = np.stack([np.lexsort((ids, row))[:k] for row in dist])
    return ids[order], np.take_along_axis(dist, order, axis=1)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(11)
    # clustered 256-bit codes: many equal distances, so ties are exercised
    centres = rng.integers(0, 2**63, size=(8, 4), dtype=np.uint64)
    flips = rng.integers(0, 2**63, size=(3000, 4), dtype=np.uint64) & \
        rng.integers(0, 2**63, size=(3000, 4), dtype=np.uint64) & \
        rng.integers(0, 2**63, size=(3000, 4), dtype=np.uint64)
    return np.ascontiguousarray(centres[rng.integers(0, 8, 3000)] ^ flips)


@pytest.fixture(scope="module")
def hamming(codes):
    index = HammingIndex(256)
    index.add(codes, ids=np.arange(len(codes)) * 3 + 1)  # ids are not positions
    return index


def test_results_are_read_by_name_not_unpacked(hamming, codes):
    res = hamming.search(codes[:2], 4)
    assert isinstance(res, SearchResult)
    with pytest.raises(TypeError, match=r"D, I = index.search\(q, k\)` is `r.distances, r.ids"):
        ids, dist = res
    with pytest.raises(TypeError, match="read by name"):
        res[0]
    rng = hamming.range_search(codes[:2], 30)
    assert isinstance(rng, RangeResult)
    assert rng.lims is rng.offsets
    assert len(rng) == 2
    with pytest.raises(TypeError, match=r"r.lims, r.distances, r.ids"):
        lims, d, i = rng
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.ids, res.ids)
    np.testing.assert_array_equal(back.distances, res.distances)
    with pytest.raises(TypeError):
        SearchResult(res.ids, res.distances)  # keywords only: no silent order either


@pytest.mark.parametrize("allowed_fraction", [0.02, 0.6, 0.9995], ids=["gather", "gather-half",
                                                                        "post-filter"])
@pytest.mark.parametrize("as_mask", [False, True], ids=["ids", "mask"])
def test_hamming_filtered_search_is_exact(hamming, codes, allowed_fraction, as_mask):
    rng = np.random.default_rng(1)
    ids = hamming.ids
    allowed = np.sort(rng.choice(ids, size=max(1, int(allowed_fraction * len(ids))),
                                 replace=False))
    if as_mask:
        filt = np.zeros(ids.max() + 1, dtype=bool)
        filt[allowed] = True
    else:
        filt = allowed.tolist()
    q = codes[rng.integers(0, len(codes), 12)] ^ np.uint64(0xF0F0)
    keep = np.isin(ids, allowed)
    for k in (1, 10, 70):
        got = hamming.search(q, k, filter=filt)
        dist = hamming_distances(q, np.ascontiguousarray(codes[keep]), 256)
        exp_ids, exp_d = _top_k(dist, ids[keep], k)
        np.testing.assert_array_equal(got.ids[:, :exp_ids.shape[1]], exp_ids)
        np.testing.assert_array_equal(got.distances[:, :exp_ids.shape[1]], exp_d)
        assert (got.ids[:, exp_ids.shape[1]:] == -1).all()
    # the cases cover both paths: an enlarged search post-filtered, and a gathered scan
    assert use_post_filter(70, len(ids), int(keep.sum())) == (allowed_fraction > 0.99)


def test_hamming_filter_edge_cases(hamming, codes):
    none = hamming.search(codes[:2], 3, filter=np.array([], dtype=np.int64))
    assert (none.ids == -1).all()
    assert (none.distances == 257).all()
    few = hamming.search(codes[:1], 5, filter=[1, 4])  # fewer allowed than k: padded
    assert sorted(few.ids[0, :2].tolist()) == [1, 4]
    assert (few.ids[0, 2:] == -1).all()
    with pytest.raises(TypeError, match="filter"):
        hamming.search(codes[:1], 3, filter=np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="filter"):
        hamming.search(codes[:1], 3, filter=np.zeros((2, 2), dtype=bool))


def test_hamming_filtered_range_search(hamming, codes):
    allowed = hamming.ids[::5]
    got = hamming.range_search(codes[:6], 40, filter=allowed)
    full = hamming.range_search(codes[:6], 40)
    for i in range(6):
        ids, d = full.hits(i)
        keep = np.isin(ids, allowed)
        np.testing.assert_array_equal(got.hits(i)[0], ids[keep])
        np.testing.assert_array_equal(got.hits(i)[1], d[keep])


@pytest.mark.parametrize("method", ["scan", "mih"])
def test_hamming_remove_ids(codes, method):
    index = HammingIndex(256, method=method)
    ids = np.arange(len(codes)) * 2
    index.add(codes, ids=ids)
    gone = ids[::3]
    assert index.remove_ids(np.concatenate([gone, [-5, 10**9]])) == len(gone)
    assert index.remove_ids(gone) == 0
    assert len(index) == len(codes) - len(gone)
    keep = ~np.isin(ids, gone)
    np.testing.assert_array_equal(index.ids, ids[keep])
    q = codes[:7]
    got = index.search(q, 9)
    exp_ids, exp_d = _top_k(hamming_distances(q, np.ascontiguousarray(codes[keep]), 256),
                            ids[keep], 9)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_array_equal(got.distances, exp_d)
    index.add(codes[:2], ids=np.array([10**6, 10**6 + 1]))  # adds continue after a removal
    assert index.search(codes[:1], 1).distances[0, 0] == 0
    with pytest.raises(TypeError, match="ids"):
        index.remove_ids(np.array([1.5]))


@pytest.mark.parametrize("method", ["scan", "mih"])
def test_hamming_memory_usage_matches_estimate_and_arrays(codes, method):
    index = HammingIndex(256, method=method)
    index.add(codes)
    held = index.memory_usage()
    arrays = index._codes.nbytes + index._ids.nbytes
    if method == "mih":
        arrays += sum(a.nbytes for a in index._mih_tables.arrays().values())
    assert held == arrays
    assert held == HammingIndex.estimate_memory(len(codes), 256, method=method)
    assert HammingIndex.estimate_memory(10, 64) == 1024 * 16  # the first allocation
    with pytest.raises(ValueError, match="n must be"):
        HammingIndex.estimate_memory(-1)


@pytest.fixture(scope="module")
def pq_data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1500, 48)).astype(np.float32)
    X[:, :8] += rng.integers(0, 4, size=(1500, 1))  # a few clusters
    ivar = rng.uniform(0.5, 2.0, size=X.shape).astype(np.float32)
    pq = ProductQuantizer(n_segments=6, n_centroids=32, random_state=0).fit(X)
    index = PQIndex(pq)
    index.add(X, ids=np.arange(len(X)) * 5 + 2)
    return X, ivar, index


def _adc_all(index: PQIndex, Q: np.ndarray) -> np.ndarray:
    tables = index.pq.distance_tables(Q)
    codes = index.codes.astype(np.intp)
    return np.stack([adc_distances(t, codes) for t in tables])


def test_pq_adc_distances_are_the_search_distances(pq_data):
    X, _, index = pq_data
    got = index.search(X[:5], 20)
    exp_ids, exp_d = _top_k(_adc_all(index, X[:5]), index.ids, 20)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_array_equal(got.distances, exp_d)


@pytest.mark.parametrize("as_mask", [False, True])
def test_pq_filtered_search_is_exact(pq_data, as_mask):
    X, _, index = pq_data
    rng = np.random.default_rng(2)
    allowed = np.sort(rng.choice(index.ids, size=200, replace=False))
    filt = allowed
    if as_mask:
        filt = np.zeros(index.ids.max() + 1, dtype=bool)
        filt[allowed] = True
    keep = np.isin(index.ids, allowed)
    got = index.search(X[:8], 15, filter=filt)
    exp_ids, exp_d = _top_k(_adc_all(index, X[:8])[:, keep], index.ids[keep], 15)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_array_equal(got.distances, exp_d)


def test_pq_filtered_rerank_over_every_allowed_spectrum_is_exact(pq_data):
    X, ivar, index = pq_data
    index.attach_vectors(X, ivar)
    allowed = index.ids[100:400]
    got = index.search(X[:4] + 0.1, 6, rerank=300, filter=allowed)
    keep = np.isin(index.ids, allowed)
    d = ((X[keep][None].astype(np.float64) - (X[:4] + 0.1)[:, None]) ** 2).sum(axis=2)
    exp_ids, exp_d = _top_k(d.astype(np.float32), index.ids[keep], 6)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_allclose(got.distances, exp_d, rtol=1e-6)


def test_pq_range_search(pq_data):
    X, _, index = pq_data
    Q = X[10:14]
    adc = _adc_all(index, Q)
    radius = float(np.quantile(adc, 0.02))
    for filt in (None, index.ids[::4]):
        got = index.range_search(Q, radius, filter=filt)
        keep = np.ones(len(index), bool) if filt is None else np.isin(index.ids, filt)
        assert len(got) == 4
        assert got.lims[0] == 0
        for i in range(4):
            hit = np.flatnonzero(keep & (adc[i] <= np.float32(radius)))
            order = np.lexsort((index.ids[hit], adc[i, hit]))
            np.testing.assert_array_equal(got.hits(i)[0], index.ids[hit][order])
            np.testing.assert_array_equal(got.hits(i)[1], adc[i, hit][order])
    # the k-NN distances are range hits at their own radius
    knn = index.search(Q, 5)
    within = index.range_search(Q, float(knn.distances.max()))
    for i in range(4):
        assert set(knn.ids[i]) <= set(within.hits(i)[0])
    with pytest.raises(ValueError, match="radius"):
        index.range_search(Q, -1.0)


def test_pq_remove_ids_keeps_rerank_vectors(pq_data):
    X, ivar, _ = pq_data
    pq = ProductQuantizer(n_segments=6, n_centroids=32, random_state=0).fit(X)
    index = PQIndex(pq)
    ids = np.arange(len(X)) * 5 + 2
    index.add(X, ids=ids)
    index.attach_vectors(X, ivar)
    gone = ids[1::2]
    assert index.remove_ids(gone) == len(gone)
    keep = ~np.isin(ids, gone)
    np.testing.assert_array_equal(index.ids, ids[keep])
    got = index.search(X[:3], 5, rerank=int(keep.sum()), metric="chi2")
    d = (ivar[keep][None].astype(np.float64)
         * (X[keep][None].astype(np.float64) - X[:3, None]) ** 2).sum(axis=2)
    exp_ids, exp_d = _top_k(d.astype(np.float32), ids[keep], 5)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_allclose(got.distances, exp_d, rtol=1e-6)


def test_pq_save_load_keeps_rerank_vectors(pq_data, tmp_path):
    X, ivar, _ = pq_data
    index = PQIndex(pq_data[2].pq)
    index.add(X[:600])
    index.attach_vectors(X[:600], ivar[:600])
    index.remove_ids(np.arange(0, 600, 7))
    expected = index.search(X[:3], 4, rerank=50, metric="chi2")
    index.save(tmp_path / "with.pyspec")
    for mmap in (False, True):
        back = PQIndex.load(tmp_path / "with.pyspec", mmap=mmap)
        got = back.search(X[:3], 4, rerank=50, metric="chi2")
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.distances, expected.distances)
    index.save(tmp_path / "without.pyspec", vectors=False)
    with pytest.raises(ValueError, match="attach_vectors"):
        PQIndex.load(tmp_path / "without.pyspec").search(X[:1], 2, rerank=10)


def test_pq_memory_usage_matches_estimate_and_arrays(pq_data):
    X, ivar, _ = pq_data
    pq = pq_data[2].pq
    index = PQIndex(pq)
    index.add(X)
    est = PQIndex.estimate_memory(len(X), 6, 32, X.shape[1])
    assert index.memory_usage() == est
    expected = (index.codes.nbytes + index.ids.nbytes + pq.codebook_.nbytes + pq._ctb.nbytes
                + pq._cnorm.nbytes + pq.segment_bounds_.nbytes)
    assert est == expected
    index.attach_vectors(np.array(X), np.array(ivar))
    assert index.memory_usage() == PQIndex.estimate_memory(len(X), 6, 32, X.shape[1],
                                                           vectors=True, ivar=True)
    assert index.memory_usage() == est + X.nbytes + ivar.nbytes + 8 * len(X)


def test_engine_where_returns_the_nearest_allowed_rows(tmp_path):
    """A metadata predicate at the Engine level is the index's id filter on store rows."""
    from pyspec import Engine, LSHHasher, SpectrumStore
    from pyspec.preprocess import WavelengthGrid

    rng = np.random.default_rng(4)
    flux = rng.random((300, 140)).astype(np.float32)
    meta = [{"id": f"s{i}", "class": "STAR" if i % 3 else "GALAXY", "snr_r": float(i % 50)}
            for i in range(300)]
    with SpectrumStore.create(tmp_path / "store", WavelengthGrid.preset("halpha-140")) as w:
        w.append(flux, np.ones_like(flux), meta)
    store = SpectrumStore.open(tmp_path / "store")
    engine = Engine.build(store, LSHHasher(n_bits=64, random_state=0), out=tmp_path / "engine",
                          allow_unknown_preprocessing=True)  # queries are stored rows
    x = np.asarray(store.flux[:5])
    codes = engine.encode_prepared(x)
    allowed = np.array([(m["class"] == "GALAXY") and m["snr_r"] > 10 for m in meta])
    got = engine.search_prepared(x, 7, where=lambda m: (m["class"] == "GALAXY")
                                 & (m["snr_r"] > 10))
    exp_ids, exp_d = _top_k(hamming_distances(codes, np.asarray(engine.index.codes)[allowed],
                                              64), np.flatnonzero(allowed), 7)
    np.testing.assert_array_equal(got.ids, exp_ids)
    np.testing.assert_array_equal(got.distances, exp_d)
    table = engine.query_batch(x, k=3, rerank=0, prepared=True, where=allowed)
    assert set(table["class"]) == {"GALAXY"}
    with pytest.raises(ValueError, match="one bool per spectrum"):
        engine.search_prepared(x, 3, where=lambda m: np.ones(2, bool))
