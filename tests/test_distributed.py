"""Sharded build and search (pyspec.distributed): exactly the results of one engine.

The spectra are random clusters on a 140-pixel grid; the single engine and
the shards share one fitted model, so every difference would be the
sharding's. The Dask tests use an in-process LocalCluster of 2 workers.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.distributed import ShardedEngine, build_sharded, merge_ranges, merge_topk
from pyspec.distributed.rows import ConcatRows
from pyspec.engine import Engine
from pyspec.index._result import RangeResult
from pyspec.models.pil import PILHasher
from pyspec.models.pq import ProductQuantizer
from pyspec.store import SpectrumStore
from pyspec.workflows import catalogue_search

N_PIX = 140


def _write_store(path, n, rng, start=0):
    centres = rng.normal(size=(8, N_PIX))
    flux = (centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, N_PIX)))
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    classes = np.array(["STAR", "GALAXY", "QSO"])
    meta = [{"id": f"s{start + i}" + "x" * (i % 7), "class": str(classes[i % 3]),
             "subclass": f"K{i % 5}", "ra": float(i), "dec": -float(i)} for i in range(n)]
    with SpectrumStore.create(path, "halpha-140", {"grid": "halpha-140"}) as w:
        w.append(flux.astype(np.float32), np.ones((n, N_PIX), np.float32), meta)
    return SpectrumStore.open(path), flux.astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(7)
    store, flux = _write_store(tmp_path_factory.mktemp("s") / "store", 900, rng)
    # duplicated rows: equal distances across shards, so the (distance, id) tie order matters
    queries = np.concatenate([flux[[3, 450, 899]], rng.normal(size=(20, N_PIX))]).astype(
        np.float32)
    return store, queries


@pytest.fixture(scope="module")
def hasher(data):
    store, _ = data
    return PILHasher(n_bits=64, hidden=(96,), random_state=0).fit(np.asarray(store.flux))


@pytest.fixture(scope="module")
def single(data, hasher, tmp_path_factory):
    # sharded engines re-rank in the single engine's principal-component space (issue 19)
    return Engine.build(data[0], hasher, out=tmp_path_factory.mktemp("e") / "single")


@pytest.fixture(scope="module")
def sharded(data, hasher, tmp_path_factory):
    return build_sharded(data[0], hasher, tmp_path_factory.mktemp("e") / "sharded", n_shards=3)


def _same_search(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)
    assert a.distances.dtype == b.distances.dtype


def test_merge_topk_is_the_global_order(rng) -> None:
    d = rng.integers(0, 6, size=(5, 40)).astype(np.int32)  # many ties
    parts, k = [], 7
    for off in (0, 10, 25):
        width = {0: 10, 10: 15, 25: 15}[off]
        local = d[:, off:off + width]
        o = np.lexsort((np.broadcast_to(np.arange(width), local.shape), local), axis=1)[:, :k]
        parts.append((o, np.take_along_axis(local, o, 1), off))
    res = merge_topk(parts, k)
    ids = np.broadcast_to(np.arange(40), d.shape)
    ref = np.lexsort((ids, d), axis=1)[:, :k]
    np.testing.assert_array_equal(res.ids, ref)
    np.testing.assert_array_equal(res.distances, np.take_along_axis(d, ref, 1))


def test_merge_ranges_orders_by_distance_then_id() -> None:
    a = RangeResult(lims=np.array([0, 2, 2]), ids=np.array([1, 0]),
                    distances=np.array([3, 5], np.int32))
    b = RangeResult(lims=np.array([0, 1, 2]), ids=np.array([0, 4]),
                    distances=np.array([3, 1], np.int32))
    res = merge_ranges([(a, 0), (b, 10)])
    np.testing.assert_array_equal(res.offsets, [0, 3, 4])
    np.testing.assert_array_equal(res.ids, [1, 10, 0, 14])
    np.testing.assert_array_equal(res.distances, [3, 3, 5, 1])


def test_concat_rows_reads_like_one_matrix(rng) -> None:
    arrays = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 5, 2)]
    rows = ConcatRows(arrays, [1, 0, 0], [2, 5, 2])
    full = np.concatenate([arrays[0][1:], arrays[1], arrays[2]])
    assert rows.shape == (9, 4)
    assert len(rows) == 9
    np.testing.assert_array_equal(rows[1:8], full[1:8])
    np.testing.assert_array_equal(rows[np.array([8, 0, 4, 4])], full[[8, 0, 4, 4]])
    np.testing.assert_array_equal(np.asarray(rows), full)
    with pytest.raises(IndexError):
        rows[np.array([9])]


def test_open_returns_a_sharded_engine(sharded, single) -> None:
    again = Engine.open(sharded.path)
    assert isinstance(again, ShardedEngine)
    assert len(again.shards) == 3
    assert len(again) == len(single)
    assert again.kind == "hamming"
    assert [len(s) for s in again.shards] == [300, 300, 300]


@pytest.mark.parametrize("k", [1, 10, 950])
def test_sharded_search_equals_single_engine(sharded, single, data, k) -> None:
    _, queries = data
    _same_search(sharded.search_prepared(queries, k), single.search_prepared(queries, k))


def test_sharded_range_search_equals_single_engine(sharded, single, data) -> None:
    _, queries = data
    a = sharded.range_search_prepared(queries, 20)
    b = single.range_search_prepared(queries, 20)
    for field in ("lims", "ids", "distances"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_query_tables_and_catalogue_search_match(sharded, single, data) -> None:
    _, queries = data
    for rerank in (None, 30):
        a = sharded.query_batch(queries, k=8, rerank=rerank, columns="all")
        b = single.query_batch(queries, k=8, rerank=rerank, columns="all")
        assert a.colnames == b.colnames
        for c in a.colnames:
            np.testing.assert_array_equal(a[c], b[c])
    a = catalogue_search(sharded, queries, fraction=0.05)
    b = catalogue_search(single, queries, fraction=0.05)
    for c in b.colnames:
        np.testing.assert_array_equal(a[c], b[c])


def test_sharded_pq_equals_single_engine(data, tmp_path) -> None:
    store, queries = data
    pq = ProductQuantizer(n_segments=7, n_centroids=16, random_state=0).fit(
        np.asarray(store.flux))
    one = Engine.build(store, pq, out=tmp_path / "one")
    many = build_sharded(store, pq, tmp_path / "many", n_shards=4)
    _same_search(many.search_prepared(queries, 12), one.search_prepared(queries, 12))


# 900 spectra round 8 centres: 32-bit codes of a 300-row sample legitimately collide
@pytest.mark.filterwarnings("ignore:.*distinct codes:UserWarning")
def test_fit_sample_fits_the_same_model(data, tmp_path) -> None:
    store, queries = data
    one = Engine.build(store, PILHasher(n_bits=32, hidden=(64,), random_state=1),
                       out=tmp_path / "one", fit_sample=300, random_state=5)
    many = build_sharded(store, PILHasher(n_bits=32, hidden=(64,), random_state=1),
                         tmp_path / "many", n_shards=2, fit_sample=300, random_state=5)
    _same_search(many.search_prepared(queries, 5), one.search_prepared(queries, 5))


def test_build_refuses_existing_out_and_bad_shards(data, hasher, sharded) -> None:
    with pytest.raises(FileExistsError):
        build_sharded(data[0], hasher, sharded.path)
    with pytest.raises(ValueError, match="n_shards"):
        build_sharded(data[0], hasher, sharded.path.parent / "x", n_shards=0)



def test_dask_build_and_search_equal_single_engine(client, data, hasher, single,
                                                   tmp_path) -> None:
    _, queries = data
    eng = build_sharded(data[0], hasher, tmp_path / "dask", client=client)
    assert eng.client is client
    assert len(eng.shards) == 2
    _same_search(eng.search_prepared(queries, 17), single.search_prepared(queries, 17))
    a = eng.range_search_prepared(queries, 18)
    b = single.range_search_prepared(queries, 18)
    for field in ("lims", "ids", "distances"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    a = catalogue_search(eng, queries, k=40)
    b = catalogue_search(single, queries, k=40)
    for c in b.colnames:
        np.testing.assert_array_equal(a[c], b[c])


def test_damaged_sharded_manifests_are_typed_errors(data, hasher, tmp_path) -> None:
    from pyspec.errors import IndexFormatError

    eng = build_sharded(data[0], hasher, tmp_path / "e", n_shards=2)
    manifest = eng.path / "sharded-engine.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"n_spectra": 900', '"n_spectra": 901', 1))
    with pytest.raises(IndexFormatError, match="checksum"):
        Engine.open(eng.path)
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(IndexFormatError):
        Engine.open(eng.path)


def test_sharded_equals_single_on_a_sumsq_store(tmp_path) -> None:
    # f / sum f^2 rows are compared by direction (unit norm) when fitting, encoding and
    # querying: the sharded build and search must take that step exactly as Engine does
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(6, N_PIX))
    flux = centres[rng.integers(0, 6, 400)] + 0.3 * rng.normal(size=(400, N_PIX))
    flux = (flux / (flux ** 2).sum(axis=1, keepdims=True)).astype(np.float32)
    meta = [{"id": f"r{i}"} for i in range(len(flux))]
    with SpectrumStore.create(tmp_path / "store", "halpha-140",
                              {"grid": "halpha-140", "normalise": "sumsq"}) as w:
        w.append(flux, np.ones_like(flux), meta)
    store = SpectrumStore.open(tmp_path / "store")

    def model():
        return PILHasher(n_bits=64, hidden=(96,), random_state=0)

    single = Engine.build(store, model(), out=tmp_path / "single", rerank_space="flux")
    sharded = build_sharded(store, model(), tmp_path / "sharded", n_shards=3)
    np.testing.assert_array_equal(sharded.model.encode(flux[:5]), single.model.encode(flux[:5]))
    res_single = single.search_prepared(flux[:40], 5)
    _same_search(sharded.search_prepared(flux[:40], 5), res_single)
    # every stored row finds a code at distance 0 (its own): queries are encoded like the rows
    assert (res_single.distances[:, 0] == 0).all()
    codes = single.encode_prepared(flux[:40])
    np.testing.assert_array_equal(single.index.search(codes, 5).distances, res_single.distances)
