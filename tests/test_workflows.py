"""Catalogue-search merge and template matching against brute-force computations.

The engine protocol is provided here by a small NumPy brute-force engine
(exact Hamming k-NN / range search and exact squared L2), so the workflow
logic (chunking, union, counts, best distance and query, tie rules) is
checked independently of the compiled indexes; tests/test_engine.py runs
the same workflows on a real engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table

from pyspec._bits import pack_bits
from pyspec.backends import get_backend
from pyspec.index._result import RangeResult, SearchResult
from pyspec.workflows import (
    CandidateMerger,
    DenseCandidateMerger,
    catalogue_search,
    match_templates,
)


class BruteEngine:
    """Exact NumPy engine: codes = signs of a fixed random projection (or plain L2)."""

    def __init__(self, flux: np.ndarray, meta: Table, metric: str = "hamming", n_bits: int = 64,
                 seed: int = 1) -> None:
        self.flux = flux.astype(np.float32)
        self._meta = meta
        self.metric = metric
        self.backend = get_backend("pil" if metric == "hamming" else "pq")
        self.distance_unit = "bit" if metric == "hamming" else None
        self.n_pixels = flux.shape[1]
        self.n_bits = n_bits
        self.proj = np.random.default_rng(seed).normal(size=(flux.shape[1], n_bits))
        self.codes = self.encode(self.flux)

    def __len__(self) -> int:
        return self.flux.shape[0]

    def encode(self, x: np.ndarray) -> np.ndarray:
        return pack_bits(x @ self.proj > 0)

    def distances(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "hamming":
            q = self.encode(x)
            return np.bitwise_count(q[:, None, :] ^ self.codes[None, :, :]).sum(-1)
        return ((x[:, None, :] - self.flux[None, :, :]) ** 2).sum(-1)

    def search_prepared(self, x, k, num_threads=None):
        d = self.distances(x)
        n = len(self)
        ids = np.full((x.shape[0], k), -1, np.int64)
        dist = np.full((x.shape[0], k), self.n_bits + 1 if self.metric == "hamming" else np.inf)
        for i in range(x.shape[0]):
            o = np.lexsort((np.arange(n), d[i]))[:k]
            ids[i, :o.size] = o
            dist[i, :o.size] = d[i, o]
        return SearchResult(ids=ids, distances=dist.astype(np.int32 if self.metric == "hamming"
                                                            else np.float32))

    def range_search_prepared(self, x, radius, num_threads=None):
        d = self.distances(x)
        offsets, ids, dist = [0], [], []
        for i in range(x.shape[0]):
            hit = np.flatnonzero(d[i] <= radius)
            o = np.lexsort((hit, d[i, hit]))
            ids.append(hit[o])
            dist.append(d[i, hit[o]])
            offsets.append(offsets[-1] + hit.size)
        return RangeResult(lims=np.array(offsets, np.int64),
                           ids=np.concatenate(ids).astype(np.int64),
                           distances=np.concatenate(dist).astype(np.int32))

    def meta_rows(self, rows, columns=None):
        t = self._meta[np.asarray(rows, np.int64)]
        return t if columns is None else t[[c for c in columns if c in t.colnames]]


def _brute_merge(lists):
    """lists[q] = (rows, distances); returns {row: (count, best, best_query)}."""
    out = {}
    for q, (rows, dist) in enumerate(lists):
        for r, d in zip(rows, dist, strict=True):
            if r < 0:
                continue
            c, b, bq = out.get(int(r), (0, math.inf, -1))
            if d < b or (d == b and q < bq):
                b, bq = float(d), q
            out[int(r)] = (c + 1, b, bq)
    return out


@pytest.fixture
def archive(rng):
    n, npix = 400, 48
    centres = rng.normal(size=(6, npix))
    labels = rng.integers(0, 6, n)
    flux = (centres[labels] + 0.6 * rng.normal(size=(n, npix))).astype(np.float32)
    meta = Table({"id": np.array([f"obj{i:04d}" for i in range(n)]),
                  "class": np.array(["STAR", "GALAXY", "QSO", "STAR", "STAR", "GALAXY"])[labels],
                  "subclass": np.array([f"T{v}" for v in labels]),
                  "z": rng.uniform(0, 0.3, n), "ra": rng.uniform(0, 360, n)})
    return flux, meta


def test_merger_equals_brute_force_any_chunking(rng) -> None:
    n_q, n_db, k = 37, 200, 25
    lists = []
    for _ in range(n_q):
        rows = rng.choice(n_db, size=k, replace=False)
        rows[rng.random(k) < 0.1] = -1  # padding entries
        rows = np.where(rows >= 0, rows, -1)
        dist = rng.integers(0, 12, k)  # many ties
        lists.append((rows, dist))
    expected = _brute_merge(lists)
    for chunk, cls in ((1, CandidateMerger), (5, CandidateMerger), (n_q, CandidateMerger),
                       (1, DenseCandidateMerger), (n_q, DenseCandidateMerger)):
        merger = cls() if cls is CandidateMerger else cls(n_db, n_q)
        for start in range(0, n_q, chunk):
            part = lists[start:start + chunk]
            q = np.concatenate([np.full(len(r), start + i) for i, (r, _) in enumerate(part)])
            merger.add(q, np.concatenate([r for r, _ in part]),
                       np.concatenate([d for _, d in part]))
        rows, count, best, bq = merger.result()
        assert sorted(expected) == list(rows)
        for r, c, b, q in zip(rows, count, best, bq, strict=True):
            assert expected[int(r)] == (c, b, q)


def test_merger_rejects_ragged_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        CandidateMerger().add(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="differ in length"):
        DenseCandidateMerger(5, 2).add(np.zeros(3), np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("metric", ["hamming", "l2"])
@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_catalogue_search_fraction_vs_brute_force(archive, rng, metric, chunk_size) -> None:
    flux, meta = archive
    engine = BruteEngine(flux, meta, metric=metric)
    queries = flux[rng.choice(len(flux), 20, replace=False)] + 0.1 * rng.normal(size=(20, 48))
    queries = queries.astype(np.float32)
    qids = np.array([f"q{i}" for i in range(20)])
    table = catalogue_search(engine, queries, qids, fraction=0.1, chunk_size=chunk_size)
    k = math.ceil(0.1 * len(flux))
    d = engine.distances(queries)
    lists = []
    for i in range(20):
        o = np.lexsort((np.arange(len(flux)), d[i]))[:k]
        lists.append((o, d[i, o]))
    expected = _brute_merge(lists)
    assert len(table) == len(expected)
    for r in table:
        c, b, q = expected[int(r["row"])]
        assert r["n_queries"] == c
        assert float(r["best_distance"]) == pytest.approx(b, rel=1e-6)
        assert r["best_query"] == qids[q]
        assert r["id"] == meta["id"][r["row"]]
    # sorted by (best_distance, row)
    keys = list(zip(np.asarray(table["best_distance"], float), table["row"], strict=True))
    assert keys == sorted(keys)
    assert table.meta["search"]["k"] == k


def test_catalogue_search_radius_vs_brute_force(archive, rng) -> None:
    flux, meta = archive
    engine = BruteEngine(flux, meta)
    queries = flux[:15]
    qmeta = meta[:15]
    table = catalogue_search(engine, queries, fraction=None, radius=14, chunk_size=4,
                             query_meta=qmeta)
    d = engine.distances(queries)
    lists = [(np.flatnonzero(d[i] <= 14), d[i][d[i] <= 14]) for i in range(15)]
    expected = _brute_merge(lists)
    assert {int(r) for r in table["row"]} == set(expected)
    for r in table:
        got = (r["n_queries"], float(r["best_distance"]), r["best_query"])
        assert got == expected[int(r["row"])]
        assert r["best_query_class"] == qmeta["class"][r["best_query"]]
    # every query is in the archive: retrieved by itself at distance 0
    assert set(range(15)) <= {int(r) for r in table["row"][table["best_distance"] == 0]}


def test_catalogue_search_bad_arguments(archive) -> None:
    flux, meta = archive
    engine = BruteEngine(flux, meta, metric="l2")
    with pytest.raises(ValueError, match="exactly one"):
        catalogue_search(engine, flux[:2], fraction=0.1, k=3)
    with pytest.raises(ValueError, match="exactly one"):
        catalogue_search(engine, flux[:2])
    with pytest.raises(ValueError, match="fraction"):
        catalogue_search(engine, flux[:2], fraction=1.5)
    with pytest.raises(ValueError, match="Hamming"):
        catalogue_search(engine, flux[:2], radius=3)
    with pytest.raises(ValueError, match="pixels"):
        catalogue_search(engine, flux[:2, :10], k=3)
    with pytest.raises(ValueError, match="labels"):
        catalogue_search(engine, flux[:2], ["a"], k=3)


@pytest.mark.parametrize("metric", ["hamming", "l2"])
def test_match_templates_vs_brute_force(archive, rng, metric) -> None:
    flux, meta = archive
    templates = BruteEngine(flux[:150], meta[:150], metric=metric)
    targets = flux[150:] + 0.05 * rng.normal(size=flux[150:].shape).astype(np.float32)
    out = match_templates(templates, targets, meta[150:], chunk_size=33)
    d = templates.distances(targets)
    best = np.array([np.lexsort((np.arange(150), row))[0] for row in d])
    np.testing.assert_array_equal(out["template_row"], best)
    np.testing.assert_array_equal(out["template_id"], meta["id"][best])
    np.testing.assert_array_equal(out["template_class"], meta["class"][best])
    np.testing.assert_allclose(out["template_z"], meta["z"][best])
    np.testing.assert_allclose(out["template_distance"], d[np.arange(len(best)), best], rtol=1e-5)
    np.testing.assert_array_equal(out["id"], meta["id"][150:])  # target metadata carried


def test_match_templates_checks_rows(archive) -> None:
    flux, meta = archive
    with pytest.raises(ValueError, match="rows"):
        match_templates(BruteEngine(flux, meta), flux[:5], meta[:4])
