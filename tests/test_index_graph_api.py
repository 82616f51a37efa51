"""GraphIndex's index API: remove_ids, filtered search, memory use (issue 17)."""

import numpy as np
import pytest

from pyspec import GraphIndex


def _blobs(n=600, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim)) * 4
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def _brute(x, ids, q, k):
    d = ((q[:, None, :] - x[None]) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(ids, d.shape), d), axis=1)[:, :k]
    return ids[order]


def _recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)])


@pytest.fixture
def index_and_data():
    x = _blobs()
    ids = np.arange(1000, 1000 + len(x), dtype=np.int64)
    index = GraphIndex(dim=x.shape[1], ef=128)
    index.add(x, ids=ids, num_threads=1)
    return index, x, ids


def test_removed_ids_are_never_returned_and_recall_holds(index_and_data):
    index, x, ids = index_and_data
    gone = ids[::3]
    assert index.remove_ids(gone) == gone.size
    assert index.remove_ids(gone) == 0  # already removed
    assert len(index) == len(ids) - gone.size
    assert not np.isin(index.ids, gone).any()
    res = index.search(x[:50], 10, num_threads=1)
    assert not np.isin(res.ids, gone).any()
    keep = ~np.isin(ids, gone)
    truth = _brute(x[keep], ids[keep], x[:50], 10)
    assert _recall(res.ids, truth) > 0.95


def test_filtered_search_returns_only_allowed_ids(index_and_data):
    index, x, ids = index_and_data
    allowed = ids[ids % 2 == 0]
    res = index.search(x[:40], 8, filter=allowed)
    assert np.isin(res.ids, allowed).all()
    truth = _brute(x[ids % 2 == 0], allowed, x[:40], 8)
    assert _recall(res.ids, truth) > 0.95
    mask = np.zeros(ids.max() + 1, dtype=bool)
    mask[allowed] = True
    np.testing.assert_array_equal(index.search(x[:40], 8, filter=mask).ids, res.ids)
    # fewer allowed than k: padded with -1 / inf
    few = index.search(x[:2], 5, filter=allowed[:3])
    assert (few.ids[:, 3:] == -1).all()
    assert np.isinf(few.distances[:, 3:]).all()
    assert set(few.ids[0, :3]) == set(allowed[:3])


def test_removals_survive_save_and_load(index_and_data, tmp_path):
    index, x, ids = index_and_data
    index.remove_ids(ids[:100])
    index.save(tmp_path / "g.bin")
    back = GraphIndex.load(tmp_path / "g.bin")
    assert len(back) == len(index)
    np.testing.assert_array_equal(back.ids, index.ids)
    res = back.search(x[:30], 10, num_threads=1)
    assert not np.isin(res.ids, ids[:100]).any()


def test_memory_usage_and_estimate(index_and_data):
    index, x, ids = index_and_data
    used = index.memory_usage()
    assert used > x.nbytes + ids.nbytes  # holds the vectors themselves, and more
    est = GraphIndex.estimate_memory(len(ids), x.shape[1], M=index.M)
    assert 0.7 * used < est < 1.3 * used
    with pytest.raises(ValueError, match="n must be"):
        GraphIndex.estimate_memory(-1, 4)


def test_remove_ids_rejects_non_integer_ids(index_and_data):
    index, _, _ = index_and_data
    with pytest.raises(TypeError, match="integer ids"):
        index.remove_ids(np.array([0.5]))
