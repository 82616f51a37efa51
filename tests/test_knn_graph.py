"""pyspec.knn_graph: exact neighbours vs brute force, symmetry, approximate recall."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pyspec.knn_graph import knn_graph, knn_neighbours, nearest_rows, neighbours_to_graph


def _blobs(rng: np.random.Generator, n: int = 600, d: int = 24) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(3, d)) * 3
    lab = rng.integers(0, 3, n)
    return (centres[lab] + rng.normal(size=(n, d))).astype(np.float32), lab


def _brute(x: np.ndarray, k: int) -> np.ndarray:
    d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_exact_neighbours_match_brute_force(rng):
    x, _ = _blobs(rng, 300)
    ids, dist = knn_neighbours(x, 6, "exact", block_size=64)
    ref = _brute(x, 6)
    assert np.mean(ids == ref) > 0.999  # float32 GEMM ties aside
    d_ref = ((x[:, None, :] - x[ref]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, d_ref, rtol=1e-3, atol=1e-3)
    assert not np.any(ids == np.arange(300)[:, None])


def test_exact_block_over_database_slices(rng):
    x, _ = _blobs(rng, 200)
    from pyspec.knn_graph import _exact_block, _row_norms

    a = _exact_block(x[:50], x, _row_norms(x), 5, self_start=0, db_block=37)[0]
    np.testing.assert_array_equal(a, _brute(x, 5)[:50])


def test_symmetric_scan_over_strips_and_slices(rng):
    # the upper-triangle scan: every pair's distance from one tile, folded
    # into both rows; strips and database slices that do not divide n
    x, _ = _blobs(rng, 230)
    from pyspec.knn_graph import _exact_all, _row_norms

    ids, dist = _exact_all(x, _row_norms(x), 5, block_size=29, db_block=41)
    np.testing.assert_array_equal(ids, _brute(x, 5))
    d_ref = ((x[:, None, :] - x[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, d_ref, rtol=1e-3, atol=1e-3)


def test_graph_is_symmetric_union_of_neighbour_lists(rng):
    x, _ = _blobs(rng, 200)
    g = knn_graph(x, k=4, method="exact")
    assert isinstance(g, sp.csr_matrix)
    assert g.shape == (200, 200)
    assert (g != g.T).nnz == 0
    assert g.diagonal().sum() == 0
    ref = _brute(x, 4)
    a = np.zeros((200, 200))
    a[np.repeat(np.arange(200), 4), ref.ravel()] = 1
    np.testing.assert_array_equal(g.toarray(), np.maximum(a, a.T))


def test_distance_mode_holds_l2_distances(rng):
    x, _ = _blobs(rng, 100)
    g = knn_graph(x, k=3, mode="distance").tocoo()
    d = np.sqrt(((x[g.row] - x[g.col]) ** 2).sum(-1))
    np.testing.assert_allclose(g.data, d, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("method", ["hamming", "pq"])
def test_candidate_methods_recall(rng, method):
    x, _ = _blobs(rng, 800, 32)
    ids, _ = knn_neighbours(x, 5, method, n_candidates=120, n_train=800)
    ref = _brute(x, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, ref, strict=False)])
    assert recall > 0.8, recall
    assert not np.any(ids == np.arange(800)[:, None])


def _recall(ids: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / ref.shape[1]
                          for a, b in zip(ids, ref, strict=True)]))


def test_inverted_file_probing_every_cell_is_exact(rng):
    # with every cell probed the inverted file compares all pairs (each pair
    # of cells once, folded both ways): the exact neighbours
    x, _ = _blobs(rng, 700, 16)
    ids, dist = knn_neighbours(x, 5, "ivf", list_size=40, n_probe=10_000, n_train=700)
    ref = _brute(x, 5)
    assert np.mean(ids == ref) > 0.999
    np.testing.assert_allclose(dist, ((x[:, None, :] - x[ids]) ** 2).sum(-1),
                               rtol=1e-3, atol=1e-3)
    assert not np.any(ids == np.arange(700)[:, None])


def test_inverted_file_recall_and_work(rng, monkeypatch):
    import importlib

    from pyspec import knn_ivf

    kg = importlib.import_module("pyspec.knn_graph")  # the attribute is the function

    x, _ = _blobs(rng, 3000, 16)
    ref = _brute(x, 6)
    few = knn_neighbours(x, 6, "ivf", list_size=100, n_probe=2, n_train=3000)[0]
    more = knn_neighbours(x, 6, "ivf", list_size=100, n_probe=8, n_train=3000)[0]
    assert 0.5 < _recall(few, ref) < _recall(more, ref)
    assert _recall(more, ref) > 0.9  # isotropic blobs: the hardest case for cells
    assert not np.any(more == np.arange(3000)[:, None])
    # the sorted copy in a temporary memmap gives the same table
    monkeypatch.setattr(knn_ivf, "_MEMMAP_BYTES", 1000)
    again = knn_neighbours(x, 6, "ivf", list_size=100, n_probe=8, n_train=3000)[0]
    np.testing.assert_array_equal(again, more)
    # "auto" takes the inverted file above the exact scan's size limit
    monkeypatch.setattr(kg, "_AUTO_EXACT_MAX", 1000)
    g = knn_graph(x, k=6, n_train=3000)
    assert (g != knn_graph(x, k=6, method="ivf", n_train=3000)).nnz == 0


def test_memmapped_table_equals_in_memory(rng, tmp_path):
    x, _ = _blobs(rng, 150)
    a = knn_neighbours(x, 4, "exact")
    b = knn_neighbours(x, 4, "exact", memmap_dir=tmp_path, memmap_threshold=10)
    assert isinstance(b[0], np.memmap)
    np.testing.assert_array_equal(a[0], b[0])
    assert list(tmp_path.iterdir()) == []  # the files are unlinked at once


def test_store_source(rng, tmp_path):
    from pyspec.store import SpectrumStore

    x, _ = _blobs(rng, 120, 140)
    with SpectrumStore.create(tmp_path / "s", "halpha-140") as w:
        w.append(x, np.ones_like(x), [{"id": str(i)} for i in range(120)])
    g1 = knn_graph(tmp_path / "s", k=3)
    g2 = knn_graph(x, k=3)
    assert (g1 != g2).nnz == 0


def test_nearest_rows_for_new_queries(rng):
    x, _ = _blobs(rng, 100)
    q = x[:10] + 0.01
    np.testing.assert_array_equal(nearest_rows(x, q, 1)[:, 0], np.arange(10))


def test_neighbour_table_with_missing_entries():
    g = neighbours_to_graph(np.array([[1, -1], [0, -1], [-1, -1]]))
    assert g.toarray().tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize(("kwargs", "err"), [
    ({"k": 0}, ValueError), ({"k": 5}, ValueError), ({"k": 2.5}, ValueError),
    ({"method": "annoy"}, ValueError), ({"mode": "rbf"}, ValueError),
    ({"method": "ivf", "n_probe": 0}, ValueError), ({"method": "ivf", "list_size": 0}, ValueError),
])
def test_bad_arguments(kwargs, err):
    x = np.zeros((5, 3), np.float32)
    x[:, 0] = np.arange(5)
    with pytest.raises(err):
        knn_graph(x, **{"k": 2, **kwargs})


def test_bad_sources():
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]), k=1)
    with pytest.raises(ValueError, match="shape"):
        knn_graph(np.zeros(5), k=1)
    with pytest.raises(TypeError, match="sparse"):
        knn_graph(sp.eye(5, format="csr"), k=1)
    with pytest.raises(FileNotFoundError):
        knn_graph("/nonexistent/store", k=1)


def test_all_principal_components_keep_the_neighbours(rng):
    # a full-rank projection is a rotation (plus a shift): distances are unchanged
    x, _ = _blobs(rng, 300, 12)
    a = knn_neighbours(x, 5, "exact")[0]
    b, d = knn_neighbours(x, 5, "exact", n_components=12)
    assert np.mean(a == b) > 0.99
    fewer = knn_neighbours(x, 5, "exact", n_components=4)[0]
    assert fewer.shape == (300, 5)
    with pytest.raises(ValueError, match="n_components"):
        knn_neighbours(x, 5, n_components=13)
