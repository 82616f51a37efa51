"""Compiled linalg kernels against the NumPy references in tests/reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec import _core, linalg
from reference import dense_forward_reference, gram_reference, ridge_reference


def spd(rng: np.random.Generator, L: int, cond: float) -> np.ndarray:
    """Symmetric positive definite matrix with the given 2-norm condition number."""
    q, _ = np.linalg.qr(rng.standard_normal((L, L)))
    w = np.geomspace(1.0, 1.0 / cond, L)
    return (q * w) @ q.T


# ------------------------------------------------------------------ Gram
@pytest.mark.parametrize("chunks", [[1000], [1, 499, 500], [5000]])
def test_gram_matches_reference(rng, chunks):
    L, D = 37, 23
    H = rng.standard_normal((sum(chunks), L)).astype(np.float32)
    X = rng.standard_normal((sum(chunks), D)).astype(np.float32)
    acc = linalg.GramAccumulator(L, D)
    start = 0
    for c in chunks:
        acc.add(H[start:start + c], X[start:start + c])
        start += c
    G, C = gram_reference(H, X)
    # float32 products over blocks of 4096 rows added in float64: entries agree
    # to ~1e-6 of sqrt(n) * |h||x| (measured max 2e-7 relative to the scale).
    scale_g = np.sqrt(np.outer(np.diag(G), np.diag(G)))
    scale_c = np.sqrt(np.outer(np.diag(G), (X.astype(np.float64) ** 2).sum(0)))
    assert np.max(np.abs(acc.gram - G) / scale_g) < 1e-5
    assert np.max(np.abs(acc.cross - C) / scale_c) < 1e-5
    np.testing.assert_array_equal(acc.gram, acc.gram.T)
    assert acc.n_samples == sum(chunks)


def test_gram_without_targets_and_empty_chunk(rng):
    H = rng.random((300, 16), dtype=np.float32)
    acc = linalg.GramAccumulator(16).add(H[:0]).add(H)
    np.testing.assert_allclose(acc.gram, gram_reference(H)[0], rtol=1e-5)
    assert acc.cross is None


def test_gram_identical_at_every_thread_count(rng, num_threads):
    H = rng.standard_normal((9000, 130)).astype(np.float32)
    X = rng.standard_normal((9000, 70)).astype(np.float32)
    ref = linalg.GramAccumulator(130, 70, num_threads=1).add(H, X)
    got = linalg.GramAccumulator(130, 70, num_threads=num_threads).add(H, X)
    np.testing.assert_array_equal(got.gram, ref.gram)
    np.testing.assert_array_equal(got.cross, ref.cross)


def test_gram_converts_non_contiguous_input(rng):
    H = rng.random((50, 20)).astype(np.float64)[:, ::2]  # float64, strided
    acc = linalg.GramAccumulator(10).add(H)
    np.testing.assert_allclose(acc.gram, gram_reference(H)[0], rtol=1e-5)


def test_gram_bad_input(rng):
    acc = linalg.GramAccumulator(8, 3)
    with pytest.raises(ValueError, match="pixels"):
        acc.add(np.zeros((4, 9), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="X is required"):
        acc.add(np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="same rows"):
        acc.add(np.zeros((4, 8), np.float32), np.zeros((5, 3), np.float32))


def test_core_rejects_wrong_dtype():
    G = np.zeros((4, 4))
    with pytest.raises(TypeError):
        _core.gram_accumulate(np.zeros((3, 4), np.float64), None, G, None, 0)
    with pytest.raises(TypeError):
        _core.dense_forward(np.zeros((3, 4), np.float32), np.zeros((4, 2), np.float64))
    with pytest.raises(ValueError, match="G must be"):
        _core.gram_accumulate(np.zeros((3, 4), np.float32), None, np.zeros((3, 3)), None, 0)


# ------------------------------------------------------------------ dense layer
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
def test_dense_forward_matches_reference(rng, activation):
    X = rng.standard_normal((333, 41)).astype(np.float32)
    W = (rng.standard_normal((41, 29)) / 6).astype(np.float32)
    b = rng.standard_normal(29).astype(np.float32)
    got = linalg.dense_forward(X, W, b, activation)
    ref = dense_forward_reference(X, W, b, activation)
    # float32 dot products of length 41: |error| ~ 1e-6 (measured 5e-7).
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_dense_forward_thread_independent(rng, num_threads):
    X = rng.standard_normal((2000, 300)).astype(np.float32)
    W = rng.standard_normal((300, 200)).astype(np.float32) / 17
    ref = linalg.dense_forward(X, W, None, "sigmoid", num_threads=1)
    np.testing.assert_array_equal(linalg.dense_forward(X, W, None, "sigmoid", num_threads), ref)


def test_dense_forward_bad_input(rng):
    with pytest.raises(ValueError, match="activation"):
        linalg.dense_forward(np.zeros((2, 3)), np.zeros((3, 2)), activation="softmax")
    with pytest.raises(ValueError, match="rows"):
        linalg.dense_forward(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="b:"):
        linalg.dense_forward(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(3))


# ------------------------------------------------------------------ solves
def rel_residual(G, C, lam, beta):
    A = G + lam * np.eye(G.shape[0])
    return np.linalg.norm(A @ beta - C) / (np.linalg.norm(A) * np.linalg.norm(beta))


@pytest.mark.parametrize(("L", "D", "cond"), [(1, 1, 1.0), (50, 7, 1e3), (300, 40, 1e6)])
def test_ridge_cholesky_matches_reference(rng, L, D, cond):
    G = spd(rng, L, cond)
    C = rng.standard_normal((L, D))
    lam = 1e-9
    sol = linalg.ridge_solve(G, C, lam)
    assert sol.method.tolist() == [0]
    ref = ridge_reference(G, C, lam)
    # Backward stable: residual ~ L * eps (measured <= 3e-16 at L=300).
    assert rel_residual(G, C, lam, sol.beta) < 1e-13
    # Forward error grows with the condition number: cond * 1e-14 margin
    # (measured 2e-11 at cond 1e6).
    err = np.linalg.norm(sol.beta - ref) / np.linalg.norm(ref)
    assert err < max(cond, 10) * 1e-13
    assert 0.5 * np.sqrt(cond) < sol.cond[0] <= cond * 1.01


def test_ridge_batch_of_different_sizes(rng, num_threads):
    Gs = [spd(rng, L, 100.0) for L in (5, 64, 17, 128)]
    Cs = [rng.standard_normal((G.shape[0], d)) for G, d in zip(Gs, (1, 300, 9, 50))]
    lams = np.array([0.0, 0.1, 1.0, 1e-3])
    sol = linalg.ridge_solve(Gs, Cs, lams, num_threads=num_threads)
    one = linalg.ridge_solve(Gs, Cs, lams, num_threads=1)
    for G, C, lam, beta, b1 in zip(Gs, Cs, lams, sol.beta, one.beta):
        np.testing.assert_allclose(beta, ridge_reference(G, C, lam), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(beta, b1)  # thread-count independent


def test_ridge_rank_deficient_uses_pseudo_inverse(rng):
    A = rng.standard_normal((200, 60))
    A[:, 40:] = A[:, :20] @ rng.standard_normal((20, 20))  # rank 40
    G = A.T @ A
    C = A.T @ rng.standard_normal((200, 5))
    sol = linalg.ridge_solve(G, C, 0.0)
    assert sol.method.tolist() == [1]
    assert sol.rank[0] == 40
    ref = ridge_reference(G, C, 0.0)
    # Minimum-norm solution: same as pinv up to the kept spectrum's
    # conditioning (measured 1e-12 relative).
    np.testing.assert_allclose(sol.beta, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_ridge_ill_conditioned_falls_back(rng):
    G = spd(rng, 80, 1e14)
    C = rng.standard_normal((80, 3))
    sol = linalg.ridge_solve(G, C, 0.0, cond_limit=1e10, rcond=1e-16)
    assert sol.method.tolist() == [1]
    assert sol.rank[0] == 80
    assert rel_residual(G, C, 0.0, sol.beta) < 1e-12
    # Same solution as Cholesky would give, to cond * eps (measured 1e-3 at 1e14).
    ref = np.linalg.solve(G, C)
    assert np.linalg.norm(sol.beta - ref) / np.linalg.norm(ref) < 1e14 * 1e-14
    forced = linalg.ridge_solve(G, C, 0.0, cond_limit=1e20)
    assert forced.method.tolist() == [0]


def test_ridge_indefinite_falls_back(rng):
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    w = np.linspace(-1.0, 2.0, 30)
    G = (q * w) @ q.T
    C = rng.standard_normal((30, 2))
    sol = linalg.ridge_solve(G, C, 0.0)
    assert sol.method.tolist() == [1]
    # Negative eigenvalues are dropped: the solution lives in the positive part.
    keep = w > 1e-12 * 2.0
    ref = (q[:, keep] / w[keep]) @ (q[:, keep].T @ C)
    np.testing.assert_allclose(sol.beta, ref, atol=1e-10)


def test_ridge_bad_input(rng):
    G = spd(rng, 4, 2.0)
    with pytest.raises(ValueError, match="square"):
        linalg.ridge_solve(np.zeros((3, 4)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="rows"):
        linalg.ridge_solve(G, np.zeros((5, 1)))
    with pytest.raises(ValueError, match="ridge"):
        linalg.ridge_solve(G, np.zeros((4, 1)), -1.0)
    bad = G.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linalg.ridge_solve(bad, np.zeros((4, 1)))
    with pytest.raises(TypeError):
        linalg.ridge_solve("G", np.zeros((4, 1)))


@pytest.mark.parametrize("L", [1, 2, 7, 64, 101])
def test_eigh_matches_numpy(rng, L, num_threads):
    A = rng.standard_normal((L, L))
    A = A + A.T
    w, V = linalg.eigh(A, num_threads=num_threads)
    # Jacobi is accurate to ~eps * ||A|| (measured 4e-15 relative).
    np.testing.assert_allclose(w, np.linalg.eigvalsh(A), atol=1e-12 * np.abs(A).max() * L)
    np.testing.assert_allclose(V.T @ V, np.eye(L), atol=1e-12)
    np.testing.assert_allclose(A @ V, V * w, atol=1e-11 * np.abs(A).max() * L)
    w1, V1 = linalg.eigh(A, num_threads=1)
    np.testing.assert_array_equal(w, w1)


def test_backend_named():
    assert linalg.backend()
