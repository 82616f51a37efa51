"""k-NN graphs over engines and the sharded "pca" re-rank (issue 19).

A sharded engine shares one model and one principal basis with a single
engine over the same spectra; every block of its graph's queries runs
against every shard and the lists are merged by (distance, global row), so
graph, query tables and distances must be those of the single engine, in
this process and on a LocalCluster of 2 workers.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pyspec.distributed import build_sharded
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.knn_graph import engine_neighbours, knn_graph
from pyspec.models.pil import PILHasher
from pyspec.store import SpectrumStore

N_PIX = 140


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(21)
    n = 500
    centres = rng.normal(size=(6, N_PIX))
    flux = centres[rng.integers(0, 6, n)] + 0.4 * rng.normal(size=(n, N_PIX))
    flux[[10, 260, 499]] = flux[[3, 3, 250]]  # equal rows across shards: ties by global row
    flux = (flux / np.linalg.norm(flux, axis=1, keepdims=True)).astype(np.float32)
    path = tmp_path_factory.mktemp("g") / "store"
    with SpectrumStore.create(path, "halpha-140", {"grid": "halpha-140"}) as w:
        w.append(flux, np.ones_like(flux), [{"id": f"g{i}"} for i in range(n)])
    return SpectrumStore.open(path)


@pytest.fixture(scope="module")
def engines(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("ge")
    hasher = PILHasher(n_bits=64, hidden=(96,), random_state=0).fit(np.asarray(store.flux))
    one = Engine.build(store, hasher, out=out / "one")
    many = build_sharded(store, hasher, out / "many", n_shards=3)
    return one, many



def test_sharded_engines_rerank_in_the_single_engines_pca_space(engines, store) -> None:
    one, many = engines
    assert one.rerank_space == many.rerank_space == "pca"
    np.testing.assert_array_equal(many._principal()[0].axes, one._principal()[0].axes)
    np.testing.assert_array_equal(np.asarray(many._principal()[1]), one._principal()[1])
    q = np.asarray(store.flux[np.array([3, 10, 100, 499])]) + np.float32(0.02)
    for k, rerank in ((5, None), (9, 40)):
        a = many.query_batch(q, k=k, rerank=rerank, columns="all")
        b = one.query_batch(q, k=k, rerank=rerank, columns="all")
        assert a.colnames == b.colnames
        for c in a.colnames:
            np.testing.assert_array_equal(a[c], b[c])


def test_sharded_graph_equals_the_single_engine_graph(engines) -> None:
    one, many = engines
    ids1, d1 = engine_neighbours(one, 6, block_size=128)
    ids2, d2 = engine_neighbours(many, 6, block_size=200)  # blocks do not matter either
    np.testing.assert_array_equal(ids2, ids1)
    np.testing.assert_array_equal(d2, d1)
    assert not (ids1 == np.arange(len(one))[:, None]).any()  # no row is its own neighbour
    g1 = knn_graph(one, 6, mode="distance")
    g2 = knn_graph(many, 6, mode="distance")
    assert (g1 != g2).nnz == 0
    assert (g1 != g1.T).nnz == 0


def test_sharded_graph_on_a_cluster(engines, client) -> None:
    one, many = engines
    many.use_client(client)
    try:
        ids, d = engine_neighbours(many, 4, n_candidates=60)
    finally:
        many.use_client(None)
    ref_ids, ref_d = engine_neighbours(one, 4, n_candidates=60)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(d, ref_d)


def test_engine_graph_with_every_candidate_is_the_exact_pca_graph(engines) -> None:
    one, _ = engines
    n = len(one)
    ids, d = engine_neighbours(one, 5, n_candidates=n)
    proj = np.asarray(one._principal()[1], np.float64)
    full = ((proj[:, None, :] - proj[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(full, np.inf)
    ref = np.sort(full, axis=1)[:, :5]
    np.testing.assert_allclose(d, ref, rtol=1e-4, atol=1e-6)
    # the ids agree wherever the k-th distance is not tied with the next one
    clear = np.sort(full, axis=1)[:, 5] - ref[:, 4] > 1e-4
    np.testing.assert_array_equal(np.sort(ids[clear], axis=1),
                                  np.sort(np.argsort(full, axis=1)[clear, :5], axis=1))


def test_engine_graph_arguments_are_checked(engines) -> None:
    one, _ = engines
    with pytest.raises(ValueError, match="method must be 'auto'"):
        knn_graph(one, 5, method="exact")
    with pytest.raises(ValueError, match="n_candidates"):
        engine_neighbours(one, 5, n_candidates=3)
    with pytest.raises(ValueError, match="k must be"):
        engine_neighbours(one, 0)


def test_shards_with_different_bases_do_not_open(store, engines, tmp_path) -> None:
    _, many = engines
    other = build_sharded(store, many.model, tmp_path / "other", n_shards=3, n_components=8)
    copy = tmp_path / "mixed"
    shutil.copytree(many.path, copy)
    shutil.rmtree(copy / "shard-0001")
    shutil.copytree(other.path / "shard-0001", copy / "shard-0001")
    with pytest.raises(IndexFormatError, match="principal basis"):
        Engine.open(copy)
