"""PQIndex.range_search in bounded blocks (of queries and of code rows) equals brute force."""

from __future__ import annotations

import numpy as np
import pytest

import pyspec.index.pq as pq_module
from pyspec.index.pq import PQIndex
from pyspec.models.pq import ProductQuantizer


@pytest.fixture(scope="module")
def index():
    rng = np.random.default_rng(21)
    X = rng.normal(size=(900, 24)).astype(np.float32)
    X[:, :6] += rng.integers(0, 3, size=(900, 1))
    index = PQIndex(ProductQuantizer(n_segments=4, n_centroids=16, random_state=0).fit(X))
    index.add(X, ids=rng.permutation(900).astype(np.int64) * 3 + 1)
    return X, index


def _brute(index: PQIndex, Q: np.ndarray, radius: float, allowed: np.ndarray | None):
    """Hits of each query from the decoded reconstructions' ADC distances, one query at a time."""
    tables = index.pq.distance_tables(Q)
    codes = index.codes.astype(np.intp)
    out = []
    for t in tables:
        d = np.zeros(len(codes), np.float32)
        for m in range(codes.shape[1]):  # the kernels' float32 order, segment by segment
            d += t[m, codes[:, m]]
        keep = d <= np.float32(radius)
        if allowed is not None:
            keep &= np.isin(index.ids, allowed)
        hit = np.flatnonzero(keep)
        order = np.lexsort((index.ids[hit], d[hit]))
        out.append((index.ids[hit][order], d[hit][order]))
    return out


@pytest.mark.parametrize(("block", "batch"), [(1 << 16, 1024), (97, 3), (1, 2)])
def test_blocked_range_search_equals_brute_force(index, monkeypatch, block, batch):
    X, idx = index
    monkeypatch.setattr(pq_module, "_RANGE_BLOCK", block)
    monkeypatch.setattr(pq_module, "_QUERY_BATCH", batch)
    Q = X[[5, 17, 400, 899, 3]] + 0.05
    radius = float(np.quantile(_brute(idx, Q[:1], 1e9, None)[0][1], 0.05))
    mask = np.zeros(idx.ids.max() + 1, bool)
    mask[idx.ids[::3]] = True
    for filt, allowed in ((None, None), (idx.ids[::5], idx.ids[::5]), (mask, idx.ids[::3])):
        got = idx.range_search(Q, radius, filter=filt)
        want = _brute(idx, Q, radius, allowed)
        assert got.lims.tolist() == np.cumsum([0] + [len(w[0]) for w in want]).tolist()
        assert got.lims[-1] > len(Q)  # the radius keeps several rows per query
        for i, (ids, dist) in enumerate(want):
            np.testing.assert_array_equal(got.hits(i)[0], ids)
            np.testing.assert_array_equal(got.hits(i)[1], dist)
    empty = idx.range_search(Q, 0.0, filter=np.zeros(0, np.int64))
    assert empty.lims.tolist() == [0] * (len(Q) + 1)
