"""PQ kernels (pyspec._core.pq_*) against the NumPy references, at every SIMD
level and thread count.

The ADC scans are tested pairwise (tests/pairwise.py) over the scan body,
the shape, the query count and the thread count (1-4; 3 splits unevenly). The
scan body is the product of SIMD level and scan variant, one factor, because
each pair is its own kernel: every body meets every shape (code dtype, table
size). Table building keeps the full product of level, shape and query count:
each ISA's table template tiles queries by 8 and centroids by its lane width,
so all three decide the code that runs. Bit-identical results over the full
product of level, variant and thread count are checked by
test_identical_across_levels_and_threads.

Tolerances: table entries are float32 fma sums of squared differences over at
most a few hundred pixels, compared with a float64 reference at rtol 1e-5
(largest relative error seen 2e-7). ADC scan distances are compared exactly
with the float32 reference summed in the same segment order, which the kernels
promise bit for bit.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
from pairwise import pairwise_parametrize, product
from reference import knn_ref, pq_adc_ref, pq_encode_ref, pq_segment_bounds_ref, pq_tables_ref

import pyspec
from pyspec import _core
from pyspec.models.pq import ProductQuantizer, segment_bounds

LEVELS = pyspec.available_simd_levels()
THREADS = [1, 2, 3, 4]
# Both ADC scan variants of the SIMD levels (identical results by design).
VARIANTS = {"interleaved": 0, "gather": 1}


@contextlib.contextmanager
def scan_body(level: str, variant: str):
    """Run the block with the scan kernels of ``level`` and ``variant``."""
    _core.pq_set_scan_variant(VARIANTS[variant])
    try:
        with pyspec.simd_level(level):
            yield
    finally:
        _core.pq_set_scan_variant(-1)


def make_pq(rng: np.random.Generator, n_features: int, n_segments: int, n_centroids: int,
            ) -> ProductQuantizer:
    """A quantiser with a random codebook (kernel layout built as in fit)."""
    pq = ProductQuantizer(n_segments, n_centroids)
    codebook = rng.normal(size=(n_centroids, n_features)).astype(np.float32)
    pq._set_codebook(codebook, segment_bounds(n_features, n_segments))
    return pq


@pytest.mark.parametrize(("D", "M"), [(10, 4), (103, 7), (2500, 25), (2500, 1250), (5000, 200)])
def test_segment_bounds_rule(D: int, M: int) -> None:
    np.testing.assert_array_equal(segment_bounds(D, M), pq_segment_bounds_ref(D, M))


@pytest.mark.parametrize("nq", [1, 5, 19])  # 19: two 8-query tiles and 3 single queries
@pytest.mark.parametrize(("D", "M", "K"), [(103, 7, 5), (64, 8, 256), (40, 5, 300), (12, 6, 33)])
def test_tables_match_reference(simd_level: str, rng: np.random.Generator, D: int, M: int,
                                K: int, nq: int) -> None:
    pq = make_pq(rng, D, M, K)
    Q = rng.normal(size=(nq, D)).astype(np.float32)
    got = _core.pq_tables(Q, *pq._kernel_args(), num_threads=1)
    assert got.shape == (nq, M, K) and got.dtype == np.float32
    np.testing.assert_allclose(got, pq_tables_ref(Q, pq.codebook_, pq.segment_bounds_),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("D", "M", "K"), [(103, 7, 5), (64, 8, 256), (40, 5, 300), (50, 25, 2)])
def test_encode_matches_argmin(simd_level: str, rng: np.random.Generator, D: int, M: int,
                               K: int) -> None:
    pq = make_pq(rng, D, M, K)
    X = rng.normal(size=(203, D)).astype(np.float32)
    fn = _core.pq_encode if K <= 256 else _core.pq_encode16
    codes, best = fn(X, *pq._kernel_args(), with_best=True, num_threads=2)
    assert codes.dtype == (np.uint8 if K <= 256 else np.uint16)
    ref, dist = pq_encode_ref(X, pq.codebook_, pq.segment_bounds_)
    chosen = np.take_along_axis(dist, codes.astype(np.int64)[:, :, None], axis=2)[:, :, 0]
    dmin = dist.min(axis=2)
    # ||c||^2 - 2 x.c in float32 may pick a centroid whose exact distance is
    # within rounding of the best (scale ~ ||x||^2 + ||c||^2 ~ 2 L).
    scale = 2.0 * np.diff(pq.segment_bounds_)[None, :]
    assert np.all(chosen - dmin <= 1e-5 * scale)
    assert np.mean(codes == ref) > 0.99
    # `best` + ||x_m||^2 is the squared distance to the chosen centroid.
    xnorm = np.add.reduceat(X.astype(np.float64) ** 2, pq.segment_bounds_[:-1], axis=1)
    np.testing.assert_allclose(best + xnorm, chosen, atol=1e-4 * scale.max())


# nq 3: per-query scans; 5 and 37: vertical groups (partial, several uneven).
# M 400 with K 100: a 160 kB table, scanned segment group by segment group.
# (M, K) is one factor: K decides the code dtype, M * K the table blocking.
@pairwise_parametrize(body=product(LEVELS, VARIANTS),
                      shape=[(m, k) for m in (1, 3, 4, 25) for k in (256, 100, 3200)]
                      + [(400, 100)],
                      nq=[3, 5, 37], num_threads=THREADS)
def test_adc_scan_matches_reference(rng: np.random.Generator, body: tuple[str, str],
                                    shape: tuple[int, int], nq: int, num_threads: int) -> None:
    (M, K), n, k = shape, 1037, 10  # n not a multiple of 16 or 8: exercises the row tails
    dtype = np.uint8 if K <= 256 else np.uint16
    tables = rng.random((nq, M, K), dtype=np.float32)
    codes = rng.integers(0, K, size=(n, M)).astype(dtype)
    ids = rng.permutation(n).astype(np.int64) + 100
    with scan_body(*body):
        got_ids, got_d = _core.pq_search_tables(tables, codes, ids, k, num_threads=num_threads)
    ref_ids, ref_d = knn_ref(pq_adc_ref(tables, codes), ids, k)
    np.testing.assert_array_equal(got_d, ref_d)
    np.testing.assert_array_equal(got_ids, ref_ids)


@pytest.mark.parametrize("nq", [1, 5])
def test_adc_scan_with_negative_table_entries(simd_level: str, rng: np.random.Generator,
                                              nq: int) -> None:
    """Tables from spectra are >= 0, which lets the scan stop rows early; given
    tables with negative entries must be summed in full (the partial sums are
    then not monotone), still matching the reference exactly."""
    n, M, K, k = 5000, 25, 256, 10
    tables = (rng.random((nq, M, K), dtype=np.float32) - np.float32(0.5))
    codes = rng.integers(0, K, size=(n, M)).astype(np.uint8)
    ids = np.arange(n, dtype=np.int64)
    got_ids, got_d = _core.pq_search_tables(tables, codes, ids, k, num_threads=1)
    ref_ids, ref_d = knn_ref(pq_adc_ref(tables, codes), ids, k)
    np.testing.assert_array_equal(got_d, ref_d)
    np.testing.assert_array_equal(got_ids, ref_ids)


SCAN_ROWS = 2048  # rows per block of the scan layout (csrc/pq.hpp kScanLayoutRows)


def scan_layout_ref(codes: np.ndarray) -> np.ndarray:
    """Segment-major blocks of SCAN_ROWS rows, rows past n zero (csrc/pq.hpp)."""
    n, M = codes.shape
    nblk = -(-n // SCAN_ROWS)
    padded = np.zeros((nblk * SCAN_ROWS, M), dtype=codes.dtype)
    padded[:n] = codes
    return padded.reshape(nblk, SCAN_ROWS, M).transpose(0, 2, 1).ravel()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(("n", "M"), [(0, 3), (1, 1), (2047, 25), (2048, 3), (4101, 7)])
def test_scan_layout_matches_reference(rng: np.random.Generator, dtype: type, n: int,
                                       M: int) -> None:
    codes = rng.integers(0, np.iinfo(dtype).max + 1, size=(n, M)).astype(dtype)
    got = _core.pq_scan_layout(codes, num_threads=2)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, scan_layout_ref(codes))


# Scans of the scan layout: M odd and even (a last unpaired segment), K with
# 1-byte and 2-byte codes, n with a partial last block and a row tail that is
# not a whole 8-byte code word; "skewed" puts nearly all of the distance in
# the first segments, so most rows leave the top-k early and the survivor
# lists (early exit) are taken.
@pairwise_parametrize(shape=[(1, 3200), (3, 256), (25, 100), (25, 3200), (50, 256)],
                      tables_kind=["uniform", "skewed", "negative"], nq=[1, 3],
                      num_threads=THREADS, level=LEVELS)
def test_adc_scan_layout_matches_reference(rng: np.random.Generator, shape: tuple[int, int],
                                           tables_kind: str, nq: int, num_threads: int,
                                           level: str) -> None:
    (M, K), n, k = shape, 5003, 10
    dtype = np.uint8 if K <= 256 else np.uint16
    tables = rng.random((nq, M, K), dtype=np.float32)
    if tables_kind == "skewed":
        tables[:, :2] *= np.float32(1000.0)
    elif tables_kind == "negative":
        tables -= np.float32(0.5)
    codes = rng.integers(0, K, size=(n, M)).astype(dtype)
    ids = rng.permutation(n).astype(np.int64) + 7
    scan = _core.pq_scan_layout(codes)
    with pyspec.simd_level(level):
        got_ids, got_d = _core.pq_search_tables(tables, codes, ids, k, num_threads=num_threads,
                                                scan_codes=scan)
    ref_ids, ref_d = knn_ref(pq_adc_ref(tables, codes), ids, k)
    np.testing.assert_array_equal(got_d, ref_d)
    np.testing.assert_array_equal(got_ids, ref_ids)


# Single queries from spectra (tables built by the kernel) over the scan
# layout, one thread: segment lengths differ (D % M != 0), M odd, even or 1,
# one partial block up to 98 blocks.
@pytest.mark.parametrize(("D", "M", "K", "n"), [(103, 7, 300, 200_003), (64, 8, 256, 5000),
                                                (40, 1, 3200, 3000), (50, 25, 2, 70)])
def test_single_query_scan_layout_matches_reference(rng: np.random.Generator, D: int, M: int,
                                                    K: int, n: int) -> None:
    pq = make_pq(rng, D, M, K)
    Q = rng.normal(size=(2, D)).astype(np.float32)
    codes = rng.integers(0, K, size=(n, M)).astype(pq.code_dtype)
    ids = np.arange(n, dtype=np.int64)
    scan = _core.pq_scan_layout(codes)
    for q in Q:
        got_ids, got_d = _core.pq_search(q[None], *pq._kernel_args(), codes, ids, 10,
                                         num_threads=1, scan_codes=scan)
        ref_ids, ref_d = knn_ref(pq_adc_ref(pq.distance_tables(q[None]), codes), ids, 10)
        np.testing.assert_array_equal(got_d, ref_d)
        np.testing.assert_array_equal(got_ids, ref_ids)


def test_scan_layout_size_is_checked(rng: np.random.Generator) -> None:
    codes = rng.integers(0, 8, size=(10, 4)).astype(np.uint8)
    tables = rng.random((1, 4, 8), dtype=np.float32)
    ids = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="scan_codes"):
        _core.pq_search_tables(tables, codes, ids, 1, scan_codes=codes.ravel())
    with pytest.raises(TypeError):  # uint16 layout for uint8 codes
        _core.pq_search_tables(tables, codes, ids, 1,
                               scan_codes=_core.pq_scan_layout(codes.astype(np.uint16)))


def test_adc_equals_distance_to_decoded(simd_level: str, rng: np.random.Generator) -> None:
    pq = make_pq(rng, 120, 12, 64)
    X = rng.normal(size=(500, 120)).astype(np.float32)
    codes = pq.encode(X)
    Q = rng.normal(size=(4, 120)).astype(np.float32)
    ids, d = _core.pq_search(Q, *pq._kernel_args(), codes, np.arange(500, dtype=np.int64), 500)
    recon = pq.decode(codes).astype(np.float64)
    exact = ((Q[:, None, :].astype(np.float64) - recon[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(d, np.take_along_axis(exact, ids, axis=1), rtol=1e-5)


@pytest.mark.parametrize(("K", "M"), [(4, 25), (256, 25), (3200, 5)])
def test_identical_across_levels_and_threads(rng: np.random.Generator, K: int, M: int) -> None:
    """Exact equality (codes, ids and float distances) for every SIMD level and
    thread count, on a database large enough to take both parallel paths
    (over queries when nq >= threads, over database blocks otherwise), for
    per-query scans (3 queries, 1 query, 1 query over the scan layout) and
    vertical groups (20 queries: one or two groups, with the database split
    when groups are fewer than threads). K=4 gives many exactly tied distances, so the (distance, id)
    order is tested."""
    D = 5 * M
    pq = make_pq(rng, D, M, K)
    X = rng.normal(size=(1500, D)).astype(np.float32)
    Q = rng.normal(size=(20, D)).astype(np.float32)
    # 3 * n * M table lookups must exceed the kernel's serial threshold (2**20)
    n = (1 << 20) // (3 * M) + 1000
    db = rng.integers(0, K, size=(n, M)).astype(pq.code_dtype)
    ids = rng.permutation(n).astype(np.int64)
    scan = _core.pq_scan_layout(db)
    results = {}
    for level, variant in itertools.product(pyspec.available_simd_levels(), (0, 1)):
        _core.pq_set_scan_variant(variant)
        with pyspec.simd_level(level):
            for nt in (1, 2, 4):
                codes = pq.encode(X, num_threads=nt)
                tables = pq.distance_tables(Q, num_threads=nt)
                r1 = _core.pq_search(Q[:3], *pq._kernel_args(), db, ids, 20, num_threads=nt)
                r2 = _core.pq_search(Q[:1], *pq._kernel_args(), db, ids, 20, num_threads=nt)
                r3 = _core.pq_search(Q, *pq._kernel_args(), db, ids, 20, num_threads=nt)
                r4 = _core.pq_search(Q[:1], *pq._kernel_args(), db, ids, 20, num_threads=nt,
                                     scan_codes=scan)
                results[level, variant, nt] = (codes, tables, *r1, *r2, *r3, *r4)
    _core.pq_set_scan_variant(-1)
    base = results["scalar", 0, 1]
    for key, got in results.items():
        for a, b in zip(base, got, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=str(key))


def test_scan_variant_auto_decides() -> None:
    _core.pq_set_scan_variant(-1)
    assert _core.pq_scan_variant() in (0, 1)
    with pytest.raises(ValueError):
        _core.pq_set_scan_variant(3)


def test_edge_cases(simd_level: str, rng: np.random.Generator) -> None:
    pq = make_pq(rng, 16, 4, 8)
    args = pq._kernel_args()
    Q = rng.normal(size=(2, 16)).astype(np.float32)
    codes = pq.encode(rng.normal(size=(3, 16)).astype(np.float32))
    ids = np.array([5, 6, 7], dtype=np.int64)
    i, d = _core.pq_search(Q, *args, codes, ids, 5)  # k above the database size
    assert (i[:, 3:] == -1).all() and np.isinf(d[:, 3:]).all()
    assert set(i[0, :3]) == {5, 6, 7}
    i, d = _core.pq_search(Q, *args, codes, ids, 0)
    assert i.shape == (2, 0) and d.shape == (2, 0)
    i, d = _core.pq_search(Q, *args, codes[:0], ids[:0], 2)  # empty database
    assert (i == -1).all() and np.isinf(d).all()
    i, d = _core.pq_search(Q[:1], *args, codes, ids, 1)  # single query
    assert i.shape == (1, 1)
    np.testing.assert_array_equal(i, knn_ref(pq_adc_ref(_core.pq_tables(Q[:1], *args), codes),
                                             ids, 1)[0])
    # a one-row database, an odd thread count: the row, then padding
    i, d = _core.pq_search(Q, *args, codes[:1], ids[:1], 3, num_threads=3)
    ref_i, ref_d = knn_ref(pq_adc_ref(_core.pq_tables(Q, *args), codes[:1]), ids[:1], 3)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(d, ref_d)


def test_wrong_dtype_straight_to_core_is_type_error(rng: np.random.Generator) -> None:
    pq = make_pq(rng, 16, 4, 8)
    args = pq._kernel_args()
    X = rng.normal(size=(3, 16))
    with pytest.raises(TypeError):
        _core.pq_encode(X, *args)  # float64
    with pytest.raises(TypeError):
        _core.pq_encode(np.asfortranarray(X.astype(np.float32)), *args)
    codes = np.zeros((3, 4), dtype=np.int32)
    with pytest.raises(TypeError):
        _core.pq_search(X.astype(np.float32), *args, codes, np.arange(3, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="expected float32"):
        _core.pq_tables(np.zeros((2, 15), np.float32), *args)
    tables = np.zeros((1, 4, 8), np.float32)
    with pytest.raises(IndexError):
        _core.pq_search_tables(tables, np.full((2, 4), 9, np.uint8), np.arange(2, dtype=np.int64), 1)


def test_kmeanspp_and_accumulate(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 20)).astype(np.float32)
    bounds = segment_bounds(20, 3)
    seeds = np.arange(1, 4, dtype=np.uint64)
    centers = _core.pq_kmeanspp(X, bounds, 16, seeds, num_threads=1)
    # every seed centroid is a training row's segment, and distinct rows are picked
    for m in range(3):
        s, e = bounds[m], bounds[m + 1]
        match = (centers[:, None, s:e] == X[None, :, s:e]).all(axis=2)
        assert match.any(axis=1).all()
        assert len({int(np.flatnonzero(r)[0]) for r in match}) == 16
    np.testing.assert_array_equal(centers, _core.pq_kmeanspp(X, bounds, 16, seeds, num_threads=2))
    codes = rng.integers(0, 16, size=(300, 3)).astype(np.uint8)
    sums, counts = _core.pq_accumulate(X, codes, bounds, 16, num_threads=2)
    for m in range(3):
        s, e = bounds[m], bounds[m + 1]
        np.testing.assert_array_equal(counts[m], np.bincount(codes[:, m], minlength=16))
        ref = np.zeros((16, e - s))
        np.add.at(ref, codes[:, m], X[:, s:e].astype(np.float64))
        np.testing.assert_allclose(sums[:, s:e], ref, rtol=1e-12)
