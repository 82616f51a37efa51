"""Bound tables from the 8-bit codebook copy (csrc/pq.hpp, "Bound tables").

Single-query searches over the scan layout may prune with lower bounds of the
ADC table read from an 8-bit copy of the codebook, computing exact
entries only for the rows that survive. The bounds must never exceed the
exact table entries, and search results must be the same floats and ids as
without the copy, at every SIMD level and thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
from pairwise import pairwise_parametrize
from reference import knn_ref, pq_adc_ref

import pyspec
from pyspec import PQIndex, ProductQuantizer, _core
from pyspec.models.pq import int8_bound_copy, segment_bounds


def make_pq(codebook: np.ndarray, n_segments: int) -> ProductQuantizer:
    pq = ProductQuantizer(n_segments, codebook.shape[0])
    pq._set_codebook(codebook.astype(np.float32), segment_bounds(codebook.shape[1], n_segments))
    return pq


def bound_copy(pq: ProductQuantizer) -> tuple:
    ct, cnorm, bounds, K = pq._kernel_args()
    copy = int8_bound_copy(pq.codebook_, bounds, len(cnorm) // (len(bounds) - 1))
    assert copy is not None
    return copy


def spectra_like(rng: np.random.Generator, n: int, D: int, scale: float = 1.0) -> np.ndarray:
    """Smooth positive continua with lines and noise (structured, not white noise)."""
    x = np.linspace(0, 1, D)
    cont = 1 + rng.uniform(-0.5, 0.5, (n, 1)) * x + rng.uniform(-0.3, 0.3, (n, 1)) * x ** 2
    centre, height = rng.uniform(0, 1, (n, 1)), rng.uniform(-0.5, 1, (n, 1))
    lines = np.exp(-0.5 * ((x - centre) / 0.01) ** 2) * height
    return ((cont + lines + rng.normal(0, 0.02, (n, D))) * scale).astype(np.float32)


@pytest.mark.parametrize(("D", "M", "K", "scale"), [
    (103, 7, 300, 1.0),     # unequal segments, K not a multiple of 32
    (200, 25, 64, 1e-3),    # normalised-flux scale
    (64, 8, 33, 3e4),       # raw counts
    (40, 1, 100, 1e-30),    # tiny values: scales down to 2^-100 are refused below
    (50, 25, 2, 1.0),       # the study's worked example shape
])
def test_bounds_never_exceed_exact_tables(simd_level: str, rng: np.random.Generator, D: int,
                                          M: int, K: int, scale: float) -> None:
    codebook = spectra_like(rng, K, D, scale)
    pq = make_pq(codebook, M)
    ct, cnorm, bounds, _ = pq._kernel_args()
    copy = int8_bound_copy(pq.codebook_, bounds, len(cnorm) // M)
    if scale < 1e-20:  # outside [2^-40, 2^40]: no copy, searches use exact tables
        assert copy is None
        return
    # queries: near the codebook, equal to centroids (exact zero), and far away
    Q = np.concatenate([spectra_like(rng, 4, D, scale), codebook[:3],
                        spectra_like(rng, 2, D, scale) * 50]).astype(np.float32)
    exact = _core.pq_tables(Q, *pq._kernel_args())
    lower, upper = _core.pq_bound_tables(Q, *pq._kernel_args(), copy)
    assert lower.shape == upper.shape == exact.shape and lower.dtype == upper.dtype == np.float32
    assert (lower >= 0).all()
    assert (lower <= exact).all(), float((lower - exact).max())
    assert (upper >= exact).all(), float((exact - upper).max())
    # and useful: within 10% of the exact entry for the typical (non-tiny) entries
    big = exact > np.median(exact) * 1e-2
    assert np.median((exact[big] - lower[big]) / exact[big]) < 0.1
    assert np.median((upper[big] - exact[big]) / exact[big]) < 0.1


def test_bound_tables_identical_across_levels_and_threads(rng: np.random.Generator) -> None:
    pq = make_pq(spectra_like(rng, 200, 150), 10)
    copy = bound_copy(pq)
    Q = spectra_like(rng, 3, 150)
    results = []
    for level in pyspec.available_simd_levels():
        with pyspec.simd_level(level):
            for nt in (1, 2):
                results.append(np.stack(_core.pq_bound_tables(Q, *pq._kernel_args(), copy,
                                                              num_threads=nt)))
    for other in results[1:]:
        np.testing.assert_array_equal(other.view(np.int32), results[0].view(np.int32))


# Single queries and small batches (the per-query scan paths), exact ties
# (duplicated rows), a partial last block, k above n, both code types; pairwise
# over case, query count, SIMD level and thread count (3: an uneven split).
@pairwise_parametrize(case=[
    (103, 7, 300, 20_011, 10),
    (200, 25, 64, 5_000, 1),
    (60, 6, 1000, 9_000, 25),
    (50, 5, 40, 30, 50),        # k > n: padded with (-1, inf)
], nq=[1, 3], level=pyspec.available_simd_levels(), num_threads=[1, 2, 3, 4])
def test_search_with_bounds_equals_exact_search(rng: np.random.Generator,
                                                case: tuple[int, ...], nq: int, level: str,
                                                num_threads: int) -> None:
    D, M, K, n, k = case
    pq = make_pq(spectra_like(rng, K, D), M)
    X = spectra_like(rng, n, D)
    codes = pq.encode(X)
    dup = min(20, n // 2)
    codes[n // 2: n // 2 + dup] = codes[:dup]  # exact ties, settled by id
    ids = rng.permutation(n).astype(np.int64)
    scan = _core.pq_scan_layout(codes)
    Q = spectra_like(rng, nq, D)
    args = pq._kernel_args()
    with pyspec.simd_level(level):
        got = _core.pq_search(Q, *args, codes, ids, k, num_threads=num_threads,
                              scan_codes=scan, bound_copy=bound_copy(pq))
    ref = knn_ref(pq_adc_ref(pq.distance_tables(Q), codes), ids, k)
    np.testing.assert_array_equal(got[1].view(np.int32), ref[1].view(np.int32))
    np.testing.assert_array_equal(got[0], ref[0])


def test_bound_copy_is_checked(rng: np.random.Generator) -> None:
    pq = make_pq(spectra_like(rng, 64, 40), 4)
    cq, bmean, bscale, berr, rows = bound_copy(pq)
    Q = spectra_like(rng, 1, 40)
    args = pq._kernel_args()
    with pytest.raises(ValueError, match="bound_copy"):
        _core.pq_bound_tables(Q, *args, (cq, bmean, bscale, berr))
    with pytest.raises(ValueError, match="int8"):
        _core.pq_bound_tables(Q, *args, (cq.astype(np.int32), bmean, bscale, berr, rows))
    with pytest.raises(ValueError, match="powers of two"):
        _core.pq_bound_tables(Q, *args, (cq, bmean, bscale * np.float32(1.5), berr, rows))
    with pytest.raises(ValueError, match="Kp"):
        _core.pq_bound_tables(Q, *args, (cq[:-1], bmean, bscale, berr, rows))
    with pytest.raises(ValueError, match="bmean"):
        _core.pq_bound_tables(Q, *args, (cq, bmean[:-1], bscale, berr, rows))
    with pytest.raises(ValueError, match="rows"):
        _core.pq_bound_tables(Q, *args, (cq, bmean, bscale, berr, rows[:-1]))


def test_index_uses_bounds_only_when_they_pay(monkeypatch: pytest.MonkeyPatch,
                                              rng: np.random.Generator) -> None:
    # 25 x 3200 at 2500 pixels pays; small codebooks stay in cache and do not
    assert _core.pq_bound_copy_pays(3200, 2500)
    assert not _core.pq_bound_copy_pays(256, 2500)
    X = spectra_like(rng, 3000, 100)
    pq = ProductQuantizer(10, 1000, random_state=0, n_iter=2).fit(X)
    assert pq._bound_copy() is None
    plain = PQIndex(pq)
    plain.add(X)
    Q = spectra_like(rng, 2, 100)
    expected = [plain.search(q[None], 7) for q in Q]
    monkeypatch.setattr(_core, "pq_bound_copy_pays", lambda kp, d: True)
    pq._bounds_copy = False  # decide again under the patched rule
    assert pq._bound_copy() is not None
    index = PQIndex(pq)
    index.add(X)
    assert index._scan_codes() is not None  # 10 x 1000 tables overflow L1
    for q, exp in zip(Q, expected):
        res = index.search(q[None], 7)
        np.testing.assert_array_equal(res.ids, exp.ids)
        np.testing.assert_array_equal(res.distances, exp.distances)
