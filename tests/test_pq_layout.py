"""The PQ codebook layouts built in C++ (_core.pq_layout, _core.pq_bound_copy)
against their definitions in csrc/pq.hpp, written here with NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec import _core
from pyspec.models.pq import segment_bounds


def blocked_reference(codebook: np.ndarray, bounds: np.ndarray, kp: int) -> np.ndarray:
    """ct[Kp*bounds[m] + (j // 32)*32*L + d*32 + j % 32] = codebook[j, bounds[m] + d]."""
    K, D = codebook.shape
    ct = np.zeros(kp * D, np.float32)
    for m in range(len(bounds) - 1):
        s, e = int(bounds[m]), int(bounds[m + 1])
        L = e - s
        j, d = np.meshgrid(np.arange(K), np.arange(L), indexing="ij")
        ct[kp * s + (j // 32) * 32 * L + d * 32 + j % 32] = codebook[:, s:e]
    return ct


@pytest.mark.parametrize(("K", "D", "M"), [(1, 5, 2), (40, 33, 4), (300, 64, 64)])
def test_layout_matches_definition(rng: np.random.Generator, K: int, D: int, M: int) -> None:
    codebook = rng.normal(size=(K, D)).astype(np.float32)
    bounds = segment_bounds(D, M)
    kp = -(-K // 32) * 32
    ct, cnorm = _core.pq_layout(codebook, bounds)
    np.testing.assert_array_equal(ct, blocked_reference(codebook, bounds, kp))
    cnorm = cnorm.reshape(M, kp)
    want = np.add.reduceat(codebook.astype(np.float64) ** 2, bounds[:-1], axis=1).T
    np.testing.assert_allclose(cnorm[:, :K], want, rtol=1e-7)
    assert np.all(np.isposinf(cnorm[:, K:]))


def test_bound_copy_bounds_the_rounding(rng: np.random.Generator) -> None:
    K, D, M = 70, 48, 6
    codebook = (rng.normal(size=(K, D)) * 10.0 ** rng.integers(-3, 4, size=D)).astype(np.float32)
    bounds = segment_bounds(D, M)
    kp = -(-K // 32) * 32
    cq, bmean, bscale, berr, rows = _core.pq_bound_copy(codebook, bounds)
    assert rows is codebook
    mantissa, _ = np.frexp(bscale)
    assert np.all(mantissa == 0.5)  # powers of two
    scaled = np.empty((K, D))
    for m in range(M):
        s, e = int(bounds[m]), int(bounds[m + 1])
        scaled[:, s:e] = (codebook[:, s:e].astype(np.float64) - bmean[s:e]) / bscale[m]
    assert np.abs(scaled).max() <= 127
    rounded = np.rint(scaled)
    np.testing.assert_array_equal(cq, blocked_reference(rounded, bounds, kp).astype(np.int8))
    berr = berr.reshape(M, kp)
    for m in range(M):
        s, e = int(bounds[m]), int(bounds[m + 1])
        err = np.sqrt(np.sum((scaled[:, s:e] - rounded[:, s:e]) ** 2, axis=1))
        assert np.all(berr[m, :K] >= err)
        assert np.all(berr[m, :K] <= np.nextafter(err.astype(np.float32), np.float32(np.inf)))
        assert np.all(berr[m, K:] == 0)


def test_bound_copy_none_when_unscalable() -> None:
    codebook = np.full((40, 6), 1e30, np.float32)
    codebook[0] = -1e30
    assert _core.pq_bound_copy(codebook, segment_bounds(6, 2)) is None


def test_layout_rejects_bad_inputs() -> None:
    codebook = np.zeros((4, 6), np.float32)
    with pytest.raises(TypeError):
        _core.pq_layout(codebook.astype(np.float64), segment_bounds(6, 2))
    with pytest.raises(ValueError, match="bounds"):
        _core.pq_layout(codebook, segment_bounds(5, 2))
    with pytest.raises(ValueError, match="codebook"):
        _core.pq_bound_copy(np.zeros((0, 6), np.float32), segment_bounds(6, 2))
