"""Hamming kernels (pyspec._core) against the NumPy reference, exactly.

Cases are pairwise (tests/pairwise.py) over SIMD level, code width, query
count and thread count (1-4, 3 for uneven splits): every level meets every
width, every width every thread count, and so on; integer results must be
identical everywhere. The one path that needs four values together (the
transposed batch scan: a SIMD level, >= 3 words, >= 32 queries per group, so
1 or 2 threads for 70 queries) is added for every such level and width. The
data has many exact ties (few distinct codes, ids in random order) so
tie-breaking by id is exercised, and the databases are large enough to span
several scan blocks and to pass the kernels' serial-work threshold (2**18 word
comparisons), so the threaded paths (over queries, and over database slices
for few queries) run.
"""

from __future__ import annotations

import numpy as np
import pytest
from pairwise import pairwise_parametrize
from reference import hamming_distances_ref, hamming_knn_ref, hamming_range_ref

import pyspec
from pyspec import _core

LEVELS = pyspec.available_simd_levels()
THREADS = [1, 2, 3, 4]

# Widths: 32 (one zero-padded word), 64, 128, 192 (3 words, generic path),
# 256, 320 (5 words, generic path), 512.
N_BITS = [32, 64, 128, 192, 256, 320, 512]
# 1 query (database split across threads), 3 (fewer queries than 4 threads),
# 70 (query groups of >= 32 at 1 and 2 threads take the transposed AVX-512
# path for >= 3 words, with a remainder after groups of 4 or 2 queries).
N_QUERIES = [1, 3, 70]
# The transposed batch scan (csrc/hamming.cpp kTransposeMinWords/Queries):
# every SIMD level with a transposed kernel, every width of >= 3 words, 70
# queries in one group of 64 (1 thread) or two of 35 (2 threads).
TRANSPOSED = [(level, n_bits, 70, threads) for level in LEVELS if level != "scalar"
              for n_bits, threads in zip((192, 256, 320, 512), (1, 2, 1, 2), strict=True)]
SCAN_CASES = pairwise_parametrize(extra=TRANSPOSED, level=LEVELS, n_bits=N_BITS,
                                  n_queries=N_QUERIES, num_threads=THREADS)

_CACHE: dict[tuple[int, int], dict] = {}


def _mask_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    if n_bits % 64:
        codes[:, -1] &= np.uint64((1 << (n_bits % 64)) - 1)
    return codes


def make_case(n_bits: int, n_queries: int) -> dict:
    """Fixed-seed codes with many ties, queries near and far, and references."""
    key = (n_bits, n_queries)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(1000 + n_bits + n_queries)
    n_words = (n_bits + 63) // 64
    # Enough codes that a single query exceeds the serial threshold.
    n = max(6000, (1 << 18) // n_words + 1234) if n_queries == 1 else 6000
    distinct = _mask_bits(rng.integers(0, 2**64, size=(40, n_words), dtype=np.uint64), n_bits)
    codes = distinct[rng.integers(0, len(distinct), size=n)]
    # Flip one random bit in a third of the rows: spreads distances, keeps ties.
    rows = rng.choice(n, size=n // 3, replace=False)
    bit = rng.integers(0, n_bits, size=rows.size)
    codes[rows, bit // 64] ^= np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
    codes = np.ascontiguousarray(codes)
    ids = (rng.permutation(n) * 3 + 11).astype(np.int64)
    near = codes[rng.integers(0, n, size=n_queries)].copy()
    far = _mask_bits(rng.integers(0, 2**64, size=(n_queries, n_words), dtype=np.uint64), n_bits)
    queries = np.ascontiguousarray(np.where(np.arange(n_queries)[:, None] % 3 == 2, far, near))
    dist = hamming_distances_ref(queries, codes)
    case = {"queries": queries, "codes": codes, "ids": ids, "n_bits": n_bits, "dist": dist,
            "knn": {}, "range": {}}
    # 5000 is above the kernels' heap limit (2048): selection by histogram.
    for k in (1, 10, 64, 5000):
        case["knn"][k] = hamming_knn_ref(queries, codes, ids, k, n_bits + 1)
    for radius in (0, n_bits // 4, n_bits // 2 - 4, n_bits):
        case["range"][radius] = hamming_range_ref(queries, codes, ids, radius)
    _CACHE[key] = case
    return case


@SCAN_CASES
def test_knn_equals_reference(level, n_bits, n_queries, num_threads):
    case = make_case(n_bits, n_queries)
    for k, (ref_ids, ref_d) in case["knn"].items():
        with pyspec.simd_level(level):
            ids, d = _core.hamming_knn(case["queries"], case["codes"], case["ids"], k,
                                       n_bits + 1, num_threads)
        assert ids.dtype == np.int64 and d.dtype == np.int32
        np.testing.assert_array_equal(d, ref_d, err_msg=f"k={k}")
        np.testing.assert_array_equal(ids, ref_ids, err_msg=f"k={k}")


@SCAN_CASES
def test_range_equals_reference(level, n_bits, n_queries, num_threads):
    case = make_case(n_bits, n_queries)
    for radius, (ref_off, ref_ids, ref_d) in case["range"].items():
        with pyspec.simd_level(level):
            off, ids, d = _core.hamming_range(case["queries"], case["codes"], case["ids"],
                                              radius, num_threads)
        np.testing.assert_array_equal(off, ref_off, err_msg=f"radius={radius}")
        np.testing.assert_array_equal(d, ref_d, err_msg=f"radius={radius}")
        np.testing.assert_array_equal(ids, ref_ids, err_msg=f"radius={radius}")


@pairwise_parametrize(level=LEVELS, n_bits=[64, 256, 320], num_threads=THREADS)
def test_distance_matrix_equals_reference(level, n_bits, num_threads):
    case = make_case(n_bits, 70)
    with pyspec.simd_level(level):
        got = _core.hamming_distances(case["queries"], case["codes"], num_threads)
    np.testing.assert_array_equal(got, case["dist"])


def test_k_above_database_size_pads(simd_level, num_threads, rng):
    codes = rng.integers(0, 2**64, size=(5, 4), dtype=np.uint64)
    ids = np.arange(5, dtype=np.int64)[::-1].copy()
    queries = rng.integers(0, 2**64, size=(9, 4), dtype=np.uint64)
    got_ids, got_d = _core.hamming_knn(queries, codes, ids, 8, 257, num_threads)
    ref_ids, ref_d = hamming_knn_ref(queries, codes, ids, 8, 257)
    np.testing.assert_array_equal(got_ids, ref_ids)
    np.testing.assert_array_equal(got_d, ref_d)
    assert (got_ids[:, 5:] == -1).all() and (got_d[:, 5:] == 257).all()


def test_k_zero_and_empty_database(simd_level, rng):
    codes = rng.integers(0, 2**64, size=(50, 4), dtype=np.uint64)
    ids = np.arange(50, dtype=np.int64)
    queries = codes[:3].copy()
    got_ids, got_d = _core.hamming_knn(queries, codes, ids, 0, 257, 2)
    assert got_ids.shape == (3, 0) and got_d.shape == (3, 0)
    empty = np.empty((0, 4), dtype=np.uint64)
    got_ids, got_d = _core.hamming_knn(queries, empty, np.empty(0, np.int64), 4, 257, 2)
    assert (got_ids == -1).all() and (got_d == 257).all() and got_ids.shape == (3, 4)
    off, hit_ids, hit_d = _core.hamming_range(queries, empty, np.empty(0, np.int64), 256, 2)
    np.testing.assert_array_equal(off, [0, 0, 0, 0])
    assert hit_ids.size == 0 and hit_d.size == 0
    got_ids, got_d = _core.hamming_knn(np.empty((0, 4), np.uint64), codes, ids, 4, 257, 2)
    assert got_ids.shape == (0, 4)


@pairwise_parametrize(level=LEVELS, num_threads=[1, 3])
def test_single_code_database(level, num_threads, rng):
    codes = rng.integers(0, 2**64, size=(1, 4), dtype=np.uint64)
    ids = np.array([42], dtype=np.int64)
    queries = np.concatenate([codes, rng.integers(0, 2**64, size=(4, 4), dtype=np.uint64)])
    with pyspec.simd_level(level):
        got_ids, got_d = _core.hamming_knn(queries, codes, ids, 3, 257, num_threads)
        got_range = _core.hamming_range(queries, codes, ids, 128, num_threads)
    ref_ids, ref_d = hamming_knn_ref(queries, codes, ids, 3, 257)
    np.testing.assert_array_equal(got_ids, ref_ids)
    np.testing.assert_array_equal(got_d, ref_d)
    assert got_d[0, 0] == 0
    assert (got_ids[:, 1:] == -1).all()
    for got, ref in zip(got_range, hamming_range_ref(queries, codes, ids, 128), strict=True):
        np.testing.assert_array_equal(got, ref)


def test_wrong_dtype_or_layout_straight_to_core_is_type_error(rng):
    codes = rng.integers(0, 2**64, size=(20, 4), dtype=np.uint64)
    ids = np.arange(20, dtype=np.int64)
    with pytest.raises(TypeError):
        _core.hamming_knn(codes.astype(np.int64), codes, ids, 3, 257, 1)
    with pytest.raises(TypeError):
        _core.hamming_knn(codes, codes.view(np.uint8), ids, 3, 257, 1)
    with pytest.raises(TypeError):
        _core.hamming_knn(codes, codes[::2], ids[::2], 3, 257, 1)  # non-contiguous
    with pytest.raises(TypeError):
        _core.hamming_knn(codes, codes, ids.astype(np.int32), 3, 257, 1)
    with pytest.raises(TypeError):
        _core.hamming_range(codes.astype(np.uint32), codes, ids, 3, 1)
    with pytest.raises(TypeError):
        _core.hamming_distances(codes.tolist(), codes, 1)


def test_contract_violations_straight_to_core_are_value_errors(rng):
    codes = rng.integers(0, 2**64, size=(20, 4), dtype=np.uint64)
    ids = np.arange(20, dtype=np.int64)
    with pytest.raises(ValueError, match="word counts"):
        _core.hamming_knn(codes[:, :2].copy(), codes, ids, 3, 257, 1)
    with pytest.raises(ValueError, match="ids"):
        _core.hamming_knn(codes, codes, ids[:5].copy(), 3, 257, 1)
    with pytest.raises(ValueError, match="n_words"):
        wide = np.zeros((3, 9), dtype=np.uint64)
        _core.hamming_knn(wide, wide, np.arange(3, dtype=np.int64), 1, 577, 1)
    with pytest.raises(ValueError, match="k must be"):
        _core.hamming_knn(codes, codes, ids, -1, 257, 1)


def test_large_k_above_database_size_pads(simd_level, num_threads, rng):
    # k above the heap limit (2048) and above n: every code, then padding.
    distinct = rng.integers(0, 2**64, size=(30, 2), dtype=np.uint64)
    codes = np.ascontiguousarray(distinct[rng.integers(0, 30, size=2500)])
    ids = rng.permutation(2500).astype(np.int64)
    queries = codes[:5].copy()
    got_ids, got_d = _core.hamming_knn(queries, codes, ids, 3000, 129, num_threads)
    ref_ids, ref_d = hamming_knn_ref(queries, codes, ids, 3000, 129)
    np.testing.assert_array_equal(got_d, ref_d)
    np.testing.assert_array_equal(got_ids, ref_ids)
    assert (got_ids[:, 2500:] == -1).all()
