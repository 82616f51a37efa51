"""Streamed model fit across shards (pyspec.distributed.fit): the model of a single fit.

PILHasher: Gram sums per shard, reduced, solved here; the per-bit medians
exact (gathered embeddings, or the streaming median's histogram passes per
shard). ProductQuantizer: k-means map (assign, per-centroid sums) / reduce.
Each is compared with ``fit`` on the concatenated rows: float tolerance for
the float64 sums added in another order, exact where only the grouping of
integer counts changes. The Dask tests use an in-process LocalCluster of 2
workers.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.cli import main
from pyspec.distributed import build_sharded
from pyspec.distributed.fit import fit_streamed
from pyspec.engine import Engine
from pyspec.models import base
from pyspec.models.pil import PILHasher
from pyspec.models.pq import ProductQuantizer
from pyspec.search_checks import to_search_space
from pyspec.store import SpectrumStore

N_PIX = 140


def _store(path, n, seed, normalise="l2", duplicates=False):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, N_PIX))
    flux = centres[rng.integers(0, 8, n)] + rng.normal(size=(n, N_PIX))
    if duplicates:  # 40 distinct rows: random seeding picks equal rows, clusters go empty
        flux = flux[rng.integers(0, 40, n)]
    if normalise == "sumsq":
        flux /= (flux ** 2).sum(axis=1, keepdims=True)
    else:
        flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    flux = flux.astype(np.float32)
    with SpectrumStore.create(path, "halpha-140", {"grid": "halpha-140",
                                                   "normalise": normalise}) as w:
        w.append(flux, np.ones_like(flux), [{"id": f"r{i}"} for i in range(n)])
    return SpectrumStore.open(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("fit") / "store", 900, 3)



def _pil(**kw):
    return PILHasher(n_bits=64, hidden=(96, 80), random_state=0, chunk_rows=100, **kw)


def _same_pil(a, b, exact=False):
    check = np.testing.assert_array_equal if exact else \
        (lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6))
    for name in ("input_weights_", "input_biases_", "encoder_weights_", "encoder_biases_",
                 "decoders_"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            check(x, y)
    check(a.thresholds_, b.thresholds_)


@pytest.mark.parametrize("encoder", ["beta", "random"])
def test_streamed_pil_equals_a_single_fit(store, encoder) -> None:
    # row ranges start on the single fit's chunks (chunk_rows=100): the same float32 blocks,
    # float64 sums in another order, and the model bit for bit
    flux = np.asarray(store.flux)
    single = _pil(encoder=encoder).fit(flux)
    streamed = fit_streamed(_pil(encoder=encoder), store, n_parts=4)
    assert streamed.solve_info_ == single.solve_info_
    _same_pil(streamed, single, exact=True)
    # balanced bits: every threshold is the median of the training embeddings
    codes = streamed.encode(flux)
    ones = np.unpackbits(codes.view(np.uint8), bitorder="little").reshape(900, -1)[:, :64]
    assert np.abs(ones.mean(axis=0) - 0.5).max() < 0.01


def test_streamed_pil_over_shards_cut_anywhere(store, tmp_path) -> None:
    # shard stores of 250 / 333 / 317 rows: blocks cut elsewhere than the single fit's
    # round differently in float32; the model agrees to the float tolerance of the solves
    from pyspec.distributed.store import ShardedStore, write_sharded_manifest

    dirs = []
    for i, (a, b) in enumerate([(0, 250), (250, 583), (583, 900)]):
        d = tmp_path / "sh" / f"shard-{i:04d}"
        with SpectrumStore.create(d, store.grid, store.preprocessing) as w:
            w.append(store.flux[a:b], store.ivar[a:b], [{"id": f"r{r}"} for r in range(a, b)])
        dirs.append(d)
    write_sharded_manifest(tmp_path / "sh", dirs)
    flux = np.asarray(store.flux)
    single = _pil().fit(flux)
    streamed = fit_streamed(_pil(), ShardedStore.open(tmp_path / "sh"))
    for name in ("decoders_", "encoder_weights_"):
        for x, y in zip(getattr(streamed, name), getattr(single, name), strict=True):
            assert np.linalg.norm(x - y) <= 2e-3 * np.linalg.norm(y)
    np.testing.assert_allclose(streamed.thresholds_, single.thresholds_, atol=1e-3)
    differ = np.unpackbits((streamed.encode(flux) ^ single.encode(flux)).view(np.uint8))
    assert differ.mean() < 2e-3


def test_streamed_pil_in_the_search_space(tmp_path) -> None:
    # f / sum f^2 rows are fitted at unit norm, as Engine.build fits them
    st = _store(tmp_path / "sumsq", 400, 5, normalise="sumsq")
    single = _pil().fit(to_search_space(np.asarray(st.flux), "unit"))
    _same_pil(fit_streamed(_pil(), st, n_parts=2, space="unit"), single)


def test_streamed_thresholds_by_histogram_passes(store, monkeypatch) -> None:
    # above the exact-median size the three histogram passes run per shard; their integer
    # counts add up to the single pass's, so the thresholds are the same numbers
    monkeypatch.setattr(base, "_EXACT_MEDIAN_LIMIT", 1000)
    monkeypatch.setattr("pyspec.distributed.fit._EXACT_MEDIAN_LIMIT", 1000)
    model = fit_streamed(_pil(), store, n_parts=3)
    expected = model._fit_thresholds(store, len(store), None)
    np.testing.assert_array_equal(model.thresholds_, expected)
    _same_pil(model, _pil().fit(np.asarray(store.flux)))


def test_streaming_median_does_not_depend_on_the_grouping(rng) -> None:
    x = rng.normal(size=(3001, 5)).astype(np.float32)
    blocks = [x[a:a + 400] for a in range(0, len(x), 400)]
    lo, hi = np.full(5, -0.5), np.full(5, 0.5)  # narrow: forces the out-of-range re-pass
    one = base.streaming_median(lambda: iter(blocks), 5, lo, hi)

    def grouped_fold(block_fn, combine):  # shards of 3 blocks, then reduced pairwise
        shards = [base.fold_blocks(lambda s=s: iter(blocks[s:s + 3]))(block_fn, combine)
                  for s in range(0, len(blocks), 3)]
        while len(shards) > 1:
            shards = [combine(*shards[i:i + 2]) if i + 1 < len(shards) else shards[i]
                      for i in range(0, len(shards), 2)]
        return shards[0]

    np.testing.assert_array_equal(base.streaming_median(None, 5, lo, hi, grouped_fold), one)
    # the midpoint of the two middle values, as the exact in-memory thresholds
    np.testing.assert_allclose(one, base.midpoint_median(x), rtol=1e-6)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_streamed_pq_equals_a_single_fit(store, init) -> None:
    flux = np.asarray(store.flux)

    def pq():  # 16 * 40 < 900 rows: both fits draw the same 640 training rows
        return ProductQuantizer(n_segments=7, n_centroids=16, random_state=0, init=init,
                                max_points_per_centroid=40)

    single = pq().fit(flux)
    streamed = fit_streamed(pq(), store, n_parts=3)
    assert streamed.n_iter_ == single.n_iter_
    np.testing.assert_allclose(streamed.codebook_, single.codebook_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(streamed.inertia_, single.inertia_, rtol=1e-9)
    np.testing.assert_array_equal(streamed.encode(flux), single.encode(flux))


def test_streamed_pq_fills_empty_clusters_like_a_single_fit(tmp_path, monkeypatch) -> None:
    import pyspec.distributed.fit as dfit

    st = _store(tmp_path / "dup", 600, 9, duplicates=True)
    calls = []
    original = dfit.farthest_rows
    monkeypatch.setattr(dfit, "farthest_rows", lambda *a, **kw: calls.append(1) or
                        original(*a, **kw))

    def pq():
        return ProductQuantizer(n_segments=5, n_centroids=32, random_state=2, init="random",
                                max_points_per_centroid=None)

    single = pq().fit(np.asarray(st.flux))
    streamed = fit_streamed(pq(), st, n_parts=3)
    assert calls, "no cluster went empty: the test data no longer exercise the refill"
    np.testing.assert_allclose(streamed.codebook_, single.codebook_, rtol=1e-5, atol=1e-6)
    assert streamed.n_iter_ == single.n_iter_


def test_streamed_fit_on_a_cluster_equals_in_process(store, client) -> None:
    here = fit_streamed(_pil(), store, n_parts=3)
    there = fit_streamed(_pil(), store, client=client, n_parts=3)
    _same_pil(there, here, exact=True)
    pq = ProductQuantizer(n_segments=7, n_centroids=16, random_state=0)
    a = fit_streamed(pq, store, n_parts=3)
    b = fit_streamed(ProductQuantizer(n_segments=7, n_centroids=16, random_state=0), store,
                     client=client, n_parts=3)
    np.testing.assert_array_equal(a.codebook_, b.codebook_)


def test_streamed_sharded_build_answers_as_one_engine(store, client, tmp_path) -> None:
    many = build_sharded(store, _pil(), tmp_path / "many", client=client, fit="streamed")
    assert many.info["fit"] == "streamed"
    assert many.rerank_space == "pca"
    _same_pil(many.model, _pil().fit(np.asarray(store.flux)), exact=True)
    one = Engine.build(store, _pil(), out=tmp_path / "one")  # fits its own: the same model
    q = np.asarray(store.flux[np.array([0, 1, 450, 899])]) + np.float32(0.01)
    for rerank in (0, None):
        a = many.query_batch(q, k=7, rerank=rerank, columns="all")
        b = one.query_batch(q, k=7, rerank=rerank, columns="all")
        for c in ("row", "distance", "rank", "query_index"):
            np.testing.assert_array_equal(a[c], b[c])


def test_streamed_fit_refuses_what_it_cannot_do(store) -> None:
    from pyspec.models.lsh import LSHHasher

    with pytest.raises(ValueError, match="streamed fit takes"):
        fit_streamed(LSHHasher(n_bits=32), store)
    with pytest.raises(ValueError, match="fit must be"):
        build_sharded(store, _pil(), "unused", fit="everything")


def test_cli_fit_flag(store, tmp_path, capsys) -> None:
    common = [str(store.path), "--model", "pil", "--n-bits", "64", "--hidden", "96,80",
              "--quiet"]
    assert main(["build", *common, "--out", str(tmp_path / "e"), "--shards", "3",
                 "--fit", "streamed"]) == 0
    eng = Engine.open(tmp_path / "e")
    assert eng.info["fit"] == "streamed"
    assert len(eng.shards) == 3
    assert main(["build", *common, "--out", str(tmp_path / "x"), "--fit", "streamed"]) != 0
    assert "--fit streamed" in capsys.readouterr().err
    assert main(["build", *common, "--out", str(tmp_path / "y"), "--shards", "2",
                 "--fit", "streamed", "--fit-sample", "100"]) != 0
    assert "--fit-sample" in capsys.readouterr().err
