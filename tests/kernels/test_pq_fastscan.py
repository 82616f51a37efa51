"""4-bit fast-scan PQ kernels (pyspec._core.pq_fastscan_*, csrc/pq_fastscan.hpp)
against NumPy references, at every SIMD level, byte-sum group and thread count.

* the packed layout round-trips and matches its formula;
* the quantised tables equal a NumPy evaluation of the documented formula
  (float32 operations, round half to even), and the quantised sums of every
  row equal the NumPy sums of those tables exactly;
* the candidate set of a search is exactly {rows: S <= S_k + margin}
  computed in NumPy from those sums, and it contains the float-ADC top k;
* search results (ids and float32 distances) equal the NumPy top k by
  (distance, id) of the float ADC distances, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import knn_ref, pq_adc_ref

import pyspec
from pyspec import _core

LEVELS = pyspec.available_simd_levels()
GROUPS = [1, 2, 4]


def quantise_ref(tables: np.ndarray, group: int, kth: np.ndarray | None = None):
    """The documented table quantisation (csrc/pq_fastscan.hpp), evaluated in the
    kernel's float32 / float64 operation order: (q, inv, thr0)."""
    nq, M, K = tables.shape
    levels = min(255 // group, 65535 // M)
    gamma = M * 2.0**-24 / (1 - M * 2.0**-24)
    entry_err = M * (0.5 + 1e-4)
    q = np.zeros((nq, M, 16), dtype=np.uint8)
    inv = np.zeros(nq, dtype=np.float32)
    thr0 = np.full(nq, 65535, dtype=np.uint16)
    for i in range(nq):
        lo, hi = tables[i].min(axis=1), tables[i].max(axis=1)
        off_sum = abs_sum = 0.0
        for m in range(M):  # sequential float64 sums, as the kernel
            off_sum += float(lo[m])
            abs_sum += max(abs(float(lo[m])), abs(float(hi[m])))
        rng = float((hi - lo).max())
        s = np.float32(levels / rng) if rng > 0 else np.float32(0)

        def bound(s, i=i, off_sum=off_sum, abs_sum=abs_sum):
            if kth is None:
                return -1.0
            return np.floor((float(kth[i]) - off_sum) * float(s) + entry_err
                            + 2.0 * gamma * abs_sum * float(s) + 1.0)

        b = bound(s)
        if kth is not None and float(kth[i]) - off_sum > 0 and levels > M + 3:
            sc = np.float32((levels - M - 3) / (float(kth[i]) - off_sum))
            if (sc > s or b >= 255) and bound(sc) < levels:
                s, b = sc, bound(sc)
        inv[i] = s
        if b >= 0:
            thr0[i] = min(b, 65535)
        v = np.rint((tables[i] - lo[:, None]) * s)
        q[i, :, :K] = np.minimum(v, np.float32(levels)).astype(np.uint8)
    return q, inv, thr0


def sample_kth_ref(tables: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The search's bound on the k-th distance: k-th smallest float ADC over 8
    runs of contiguous rows, max(1024, 8k) rows in all (every row when n is at
    most twice that)."""
    n = len(codes)
    want = max(1024, 8 * k)
    if n <= 2 * want:
        rows = np.arange(n)
    else:
        length = -(-want // 8)
        rows = np.concatenate([np.arange(length) + (n - length) * c // 7 for c in range(8)])
    kth = np.sort(pq_adc_ref(tables, codes[rows]), axis=1)[:, min(k, len(rows)) - 1]
    return np.ascontiguousarray(kth)


def sums_ref(q: np.ndarray, codes: np.ndarray) -> np.ndarray:
    out = np.zeros((q.shape[0], codes.shape[0]), dtype=np.int64)
    for m in range(codes.shape[1]):
        out += q[:, m, codes[:, m].astype(np.int64)]
    return out


def random_case(rng: np.random.Generator, n: int, M: int, K: int = 16, nq: int = 3):
    codes = rng.integers(0, K, size=(n, M), dtype=np.uint8)
    tables = rng.gamma(2.0, 1.0, size=(nq, M, K)).astype(np.float32)
    # near-duplicate rows, so the top k has many close and some equal distances
    if n > 8:
        codes[n // 2: n // 2 + 4] = codes[1]
    return codes, tables


@pytest.mark.parametrize(("n", "M"), [(0, 3), (1, 1), (31, 2), (32, 5), (33, 25), (100, 50),
                                 (65, 7)])
def test_pack_round_trip(rng: np.random.Generator, n: int, M: int) -> None:
    codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
    packed = _core.pq_fastscan_pack(codes)
    P = (M + 1) // 2
    assert packed.shape == (-(-n // 32) * P * 32,)
    np.testing.assert_array_equal(_core.pq_fastscan_unpack(packed, n, M), codes)
    # the documented formula, byte by byte
    blocks = packed.reshape(-1, P, 32)
    for r in range(n):
        for m in range(M):
            assert (blocks[r // 32, m // 2, r % 32] >> (4 * (m % 2))) & 15 == codes[r, m]
    # padding: rows past n, and the high nibble of the last pair when M is odd
    full = _core.pq_fastscan_unpack(packed, blocks.shape[0] * 32, M)
    assert not full[n:].any()
    if M % 2:
        assert not (blocks[:, -1, :] >> 4).any()
    with pytest.raises(ValueError, match="< 16"):
        _core.pq_fastscan_pack(np.full((2, M), 16, dtype=np.uint8))


@pytest.mark.parametrize("group", GROUPS)
def test_quantised_tables_match_reference(rng: np.random.Generator, group: int) -> None:
    for M, K in [(25, 16), (50, 16), (7, 5), (300, 16)]:
        tables = rng.gamma(2.0, 1.0, size=(4, M, K)).astype(np.float32)
        tables[3] = 1.5  # a flat table: every entry 0
        # plain scale, then clipped at a bound of the k-th distance
        lo = tables.min(axis=2)
        kth = (lo + 0.05 * (tables.mean(axis=2) - lo)).sum(axis=1).astype(np.float32)
        for bound in (None, kth):
            q, offsets, inv, margin, thr0 = _core.pq_fastscan_quantise(tables, group, bound)
            q_ref, inv_ref, thr0_ref = quantise_ref(tables, group, bound)
            np.testing.assert_array_equal(inv, inv_ref)
            np.testing.assert_array_equal(q, q_ref)
            np.testing.assert_array_equal(thr0, thr0_ref)
            np.testing.assert_array_equal(offsets, tables.min(axis=2))
        q, offsets, inv, margin, _ = _core.pq_fastscan_quantise(tables, group)
        if _core.pq_fastscan_levels(M, group) > 4 * M:  # the clipped scale is finer here
            assert np.all(_core.pq_fastscan_quantise(tables, group, kth)[2][:3] > inv[:3])
        levels = _core.pq_fastscan_levels(M, group)
        assert q.max() <= levels
        assert levels * group <= 255
        assert levels * M <= 65535
        assert np.all(margin >= M)
        # the documented error bound: each entry within 1/2 (+1e-4) units
        back = offsets[:, :, None] + q[:, :, :K] / np.maximum(inv, 1e-30)[:, None, None]
        err = np.abs(back[:3] - tables[:3]) * inv[:3, None, None]
        assert err.max() <= 0.5 + 1e-4


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("group", GROUPS)
def test_quantised_sums_equal_reference(rng: np.random.Generator, level: str, group: int) -> None:
    for n, M in [(1, 1), (45, 3), (200, 25), (97, 50), (64, 8)]:
        codes, tables = random_case(rng, n, M)
        q, *_ = _core.pq_fastscan_quantise(tables, group)
        packed = _core.pq_fastscan_pack(codes)
        with pyspec.simd_level(level):
            got = _core.pq_fastscan_sums(packed, n, q, group=group)
        np.testing.assert_array_equal(got, sums_ref(q, codes))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("threads", [1, 2])
def test_saturated_sums_equal_reference(rng: np.random.Generator, level: str,
                                        threads: int) -> None:
    """The byte path (min(S, 255)) for every query tile and block tile and
    their tails: 1..9 queries, 1 to 8 blocks per tile plus a partial block,
    even and odd numbers of segment pairs; sums on both sides of 255."""
    for n, M, nq in [(1, 1, 1), (33, 3, 2), (300, 25, 5), (290, 50, 9), (97, 7, 3),
                     (40_000, 8, 4)]:
        codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
        top = max(1, 2 * 255 // M)  # sums spread over about 0 .. 2 x 255
        q = np.zeros((nq, M, 16), dtype=np.uint8)
        q[:] = rng.integers(0, min(top, 255) + 1, size=(nq, M, 16))
        packed = _core.pq_fastscan_pack(codes)
        ref = sums_ref(q, codes)
        with pyspec.simd_level(level):
            got = _core.pq_fastscan_sums(packed, n, q, saturate=True, num_threads=threads)
            plain = _core.pq_fastscan_sums(packed, n, q, num_threads=threads)
        np.testing.assert_array_equal(got, np.minimum(ref, 255))
        np.testing.assert_array_equal(plain, ref)
        if n > 100 and M > 1:
            assert (ref > 255).any()
            assert (ref < 255).any()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("threads", [1, 3])
def test_candidates_and_topk_equal_reference(rng: np.random.Generator, level: str,
                                             threads: int) -> None:
    byte_path = []  # per case and group: every thr0 < 255 (the saturated byte sums)
    for n, M, K, k, nq in [(1000, 25, 16, 10, 5), (777, 50, 16, 7, 40), (70, 3, 9, 5, 2),
                           (5000, 25, 16, 10, 3), (9000, 4, 16, 3, 2),
                           (1000, 24, 16, 100, 1), (300, 3, 16, 250, 3),
                           (200, 260, 16, 5, 2)]:  # levels <= M + 3: the plain scale
        codes, tables = random_case(rng, n, M, K, nq)
        ids = rng.permutation(n * 3)[:n].astype(np.int64)
        packed = _core.pq_fastscan_pack(codes)
        for group in GROUPS:
            q, _, _, margin, thr0 = _core.pq_fastscan_quantise(
                tables, group, sample_kth_ref(tables, codes, k))
            byte_path.append(bool((thr0 < 255).all()))
            S = sums_ref(q, codes)
            with pyspec.simd_level(level):
                got_ids, got_d, ncand, cand = _core.pq_fastscan_search(
                    tables, codes, packed, ids, k, num_threads=threads, group=group,
                    return_candidates=True)
            adc = pq_adc_ref(tables, codes)
            ref_ids, ref_d = knn_ref(adc, ids, k)
            np.testing.assert_array_equal(got_ids, ref_ids)
            np.testing.assert_array_equal(got_d, ref_d)
            for i in range(nq):
                kth = np.sort(S[i])[min(k, n) - 1]
                expect = np.flatnonzero(S[i] <= min(int(thr0[i]), kth + margin[i]))
                np.testing.assert_array_equal(cand[i], expect)
                assert ncand[i] == expect.size
                # the exact top k is inside the candidates
                top = np.lexsort((ids, adc[i]))[:k]
                assert np.isin(top, cand[i]).all()
    assert any(byte_path)  # both the byte and the 16-bit path
    assert not all(byte_path)


@pytest.mark.parametrize("level", LEVELS)
def test_thread_splits_equal_reference(rng: np.random.Generator, level: str) -> None:
    """Large enough to run in parallel: a batch split into equal query groups
    (30 queries on 3 threads), the database split into block ranges (few
    queries per thread), and a thread count above the queries."""
    for n, M, nq, threads in [(20_000, 8, 30, 3), (150_000, 16, 3, 3), (150_000, 32, 1, 2),
                              (30_000, 10, 17, 2)]:
        codes, tables = random_case(rng, n, M, 16, nq)
        ids = np.arange(n, dtype=np.int64)[::-1].copy()
        packed = _core.pq_fastscan_pack(codes)
        adc = pq_adc_ref(tables, codes)
        ref_ids, ref_d = knn_ref(adc, ids, 10)
        with pyspec.simd_level(level):
            one = _core.pq_fastscan_search(tables, codes, packed, ids, 10, num_threads=1)
            got = _core.pq_fastscan_search(tables, codes, packed, ids, 10, num_threads=threads)
        np.testing.assert_array_equal(got[0], ref_ids)
        np.testing.assert_array_equal(got[1], ref_d)
        # the candidate set is a function of the sums alone, whatever the split
        np.testing.assert_array_equal(got[2], one[2])


@pytest.mark.parametrize("level", LEVELS)
def test_identical_to_float_adc_scan(rng: np.random.Generator, level: str) -> None:
    """Same ids and distances as pq_search_tables over the same uint8 codes."""
    codes, tables = random_case(rng, 3000, 25, 16, 20)
    ids = np.arange(3000, dtype=np.int64)
    packed = _core.pq_fastscan_pack(codes)
    with pyspec.simd_level(level):
        got = _core.pq_fastscan_search(tables, codes, packed, ids, 10, num_threads=2)
    ref = _core.pq_search_tables(tables, codes, ids, 10, num_threads=1)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


@pytest.mark.parametrize("level", LEVELS)
def test_edge_cases(rng: np.random.Generator, level: str) -> None:
    codes, tables = random_case(rng, 40, 6, 16, 2)
    ids = np.arange(40, dtype=np.int64)
    packed = _core.pq_fastscan_pack(codes)
    with pyspec.simd_level(level):
        # k > n: every row, then (-1, inf) padding
        i, d, ncand = _core.pq_fastscan_search(tables, codes, packed, ids, 50)
        ref_i, ref_d = knn_ref(pq_adc_ref(tables, codes), ids, 50)
        np.testing.assert_array_equal(i, ref_i)
        np.testing.assert_array_equal(d, ref_d)
        assert np.all(ncand == 40)
        # n = 0
        empty = np.empty((0, 6), dtype=np.uint8)
        i, d, ncand = _core.pq_fastscan_search(tables, empty, _core.pq_fastscan_pack(empty),
                                               np.empty(0, np.int64), 3)
        assert np.all(i == -1)
        assert np.all(np.isinf(d))
        assert np.all(ncand == 0)
        # k = 0 and no queries
        assert _core.pq_fastscan_search(tables, codes, packed, ids, 0)[0].shape == (2, 0)
        assert _core.pq_fastscan_search(tables[:0], codes, packed, ids, 4)[0].shape == (0, 4)
    bad = codes.copy()
    bad[:, 0] = 15
    with pytest.raises(ValueError, match="n_centroids"):  # codes >= K, found on re-rank
        _core.pq_fastscan_search(np.ascontiguousarray(tables[:, :, :8]), bad,
                                 _core.pq_fastscan_pack(bad), ids, 3)
    with pytest.raises(ValueError, match="packed"):
        _core.pq_fastscan_search(tables, codes, packed[:-1], ids, 3)
    with pytest.raises(ValueError, match="K <= 16"):
        _core.pq_fastscan_search(np.zeros((1, 6, 17), np.float32), codes, packed, ids, 3)
    with pytest.raises(ValueError, match="group"):
        _core.pq_fastscan_search(tables, codes, packed, ids, 3, group=3)


# ---- PQIndex(pq, fast_scan=True) ---------------------------------------------------


@pytest.fixture(scope="module")
def fitted_4bit():
    from pyspec.models.pq import ProductQuantizer

    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 60)).astype(np.float32)
    X[:, :30] += np.linspace(0, 3, 1500, dtype=np.float32)[:, None]  # some structure
    return ProductQuantizer(n_segments=15, n_centroids=16, random_state=0).fit(X), X


def test_index_matches_plain_index(fitted_4bit, tmp_path) -> None:
    from pyspec.index.pq import PQIndex

    pq, X = fitted_4bit
    plain, fast = PQIndex(pq), PQIndex(pq, fast_scan=True)
    ids = np.arange(len(X), dtype=np.int64) * 7 + 3
    for index in (plain, fast):
        index.add(X[:1000], ids[:1000])
        index.add(X[1000:], ids[1000:])  # a second add invalidates the packed copy
    Q = X[::97] + 0.01
    for kwargs in ({}, {"num_threads": 3}, {"filter": ids[::3]}):
        a, b = plain.search(Q, 10, **kwargs), fast.search(Q, 10, **kwargs)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)
    # a filtered search packs its gathered codes for the call only
    assert fast._fastscan_cache[0] is fast._codes
    for index in (plain, fast):
        index.attach_vectors(X)
    a, b = plain.search(Q, 5, rerank=40), fast.search(Q, 5, rerank=40)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert fast.remove_ids(ids[:50]) == 50
    assert plain.remove_ids(ids[:50]) == 50
    np.testing.assert_array_equal(plain.search(Q, 10).ids, fast.search(Q, 10).ids)
    assert fast.memory_usage() > plain.memory_usage()  # the packed copy is counted
    # save / load: the flag survives, the packed layout is rebuilt from the codes
    fast.save(tmp_path / "fast.pqx")
    back = PQIndex.load(tmp_path / "fast.pqx")
    assert back.fast_scan
    np.testing.assert_array_equal(back.search(Q, 10).ids, fast.search(Q, 10).ids)
    plain.save(tmp_path / "plain.pqx")
    assert not PQIndex.load(tmp_path / "plain.pqx").fast_scan
    import pickle

    clone = pickle.loads(pickle.dumps(fast))
    np.testing.assert_array_equal(clone.search(Q, 10).distances, fast.search(Q, 10).distances)


def test_index_typed_errors(fitted_4bit, tmp_path) -> None:
    from pyspec.errors import IndexFormatError
    from pyspec.index import _fastscan
    from pyspec.index.pq import PQIndex
    from pyspec.models.pq import ProductQuantizer

    pq, X = fitted_4bit
    with pytest.raises(TypeError, match="fast_scan"):
        PQIndex(pq, fast_scan="yes")
    big = ProductQuantizer(n_segments=15, n_centroids=32, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_centroids <= 16"):
        PQIndex(big, fast_scan=True)
    with pytest.raises(IndexFormatError, match="layout version"):
        _fastscan.from_meta({"fast_scan": _fastscan.LAYOUT_VERSION + 1}, "f.pqx")
    assert _fastscan.from_meta({}, "f.pqx") is False
