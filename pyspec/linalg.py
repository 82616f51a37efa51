"""Batched pseudo-inverse / ridge solves and streamed Gram accumulation.

Thin, validating wrappers around the compiled ``linalg`` kernels
(``csrc/linalg.hpp``). They are the numerical core of the PIL hasher: a PIL
autoencoder layer with hidden outputs ``H`` and targets ``X`` needs
``beta = (H^T H + lambda I)^-1 H^T X``; :class:`GramAccumulator` sums
``H^T H`` and ``H^T X`` chunk by chunk (memory independent of the number of
spectra) and :func:`ridge_solve` solves one or many such systems.

Examples
--------
>>> import numpy as np
>>> from pyspec.linalg import GramAccumulator, ridge_solve
>>> rng = np.random.default_rng(0)
>>> H = rng.standard_normal((1000, 20)).astype(np.float32)
>>> X = rng.standard_normal((1000, 5)).astype(np.float32)
>>> acc = GramAccumulator(20, 5)
>>> acc.add(H[:400], X[:400]).add(H[400:], X[400:]).n_samples
1000
>>> sol = ridge_solve(acc.gram, acc.cross, ridge=1e-3)
>>> sol.beta.shape, int(sol.method[0])
((20, 5), 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyspec._validation import as_float_matrix, check_num_threads, describe

ACTIVATIONS = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3}

# Cholesky results whose condition estimate exceeds this are recomputed by
# the eigen-decomposition fallback (float64 keeps ~4 digits at 1e12).
DEFAULT_COND_LIMIT = 1e12
# Eigenvalues below rcond * max eigenvalue are dropped by the fallback
# (numpy.linalg.pinv's default rcond is 1e-15 * max(shape); we are looser
# because Gram matrices square the condition number of H).
DEFAULT_RCOND = 1e-12


def _core():
    from pyspec import _core

    return _core


def backend() -> str:
    """Name of the matrix-product backend compiled into ``pyspec._core``."""
    return _core().linalg_backend()


def dense_forward(X: np.ndarray, W: np.ndarray, b: np.ndarray | None = None,
                  activation: str = "sigmoid", num_threads: int | None = None) -> np.ndarray:
    """One dense layer ``g(X W + b)``.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32
        Inputs (converted to C-contiguous float32 if needed).
    W : ndarray of shape (d, p), float32
        Weights.
    b : ndarray of shape (p,), float32, optional
        Bias (zero when omitted).
    activation : {"sigmoid", "tanh", "relu", "identity"}
    num_threads : int or None
        Threads (None: OpenMP default).

    Returns
    -------
    ndarray of shape (n, p), float32
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    X = as_float_matrix(X, "X", check_finite=False)
    W = as_float_matrix(W, "W", allow_1d=False, check_finite=False)
    if W.shape[0] != X.shape[1]:
        raise ValueError(f"W: expected {X.shape[1]} rows to match X, got shape {W.shape}")
    if b is not None:
        b = np.ascontiguousarray(b, dtype=np.float32)
        if b.shape != (W.shape[1],):
            raise ValueError(f"b: expected shape ({W.shape[1]},), got {b.shape}")
    return _core().dense_forward(X, W, b, ACTIVATIONS[activation], check_num_threads(num_threads))


class GramAccumulator:
    """Running sums ``gram = H^T H`` and ``cross = H^T X`` over chunks (float64).

    Parameters
    ----------
    n_hidden : int
        Columns L of ``H``.
    n_targets : int or None
        Columns D of ``X``; None accumulates only ``H^T H``.
    num_threads : int or None
        Threads for the products (None: OpenMP default).

    Attributes
    ----------
    gram : ndarray of shape (L, L), float64
    cross : ndarray of shape (L, D), float64, or None
    n_samples : int
        Rows added so far.
    """

    def __init__(self, n_hidden: int, n_targets: int | None = None,
                 num_threads: int | None = None) -> None:
        if int(n_hidden) < 1:
            raise ValueError(f"n_hidden must be >= 1, got {n_hidden}")
        self.gram = np.zeros((int(n_hidden), int(n_hidden)), dtype=np.float64)
        self.cross = None if n_targets is None else np.zeros((int(n_hidden), int(n_targets)))
        self.n_samples = 0
        self._threads = check_num_threads(num_threads)

    def add(self, H: np.ndarray, X: np.ndarray | None = None) -> GramAccumulator:
        """Add one chunk: ``H`` float32 (n, L) and, if targets are kept, ``X`` float32 (n, D)."""
        L = self.gram.shape[0]
        H = as_float_matrix(H, "H", n_features=L, allow_1d=False, check_finite=False)
        if self.cross is not None:
            if X is None:
                raise ValueError("X is required: this accumulator was created with n_targets")
            X = as_float_matrix(X, "X", n_features=self.cross.shape[1], allow_1d=False,
                                check_finite=False)
            if X.shape[0] != H.shape[0]:
                raise ValueError(f"H and X must have the same rows, got {H.shape[0]} and {X.shape[0]}")
        elif X is not None:
            raise ValueError("this accumulator keeps no H^T X (n_targets=None); pass X=None")
        _core().gram_accumulate(H, X, self.gram, self.cross, self._threads)
        self.n_samples += H.shape[0]
        return self


@dataclass
class RidgeSolution:
    """Solutions of ``(G_i + lambda_i I) beta_i = C_i``.

    ``beta`` is one float64 (L, D) array for a single system, else a list;
    ``method`` int32 (B,): 0 Cholesky, 1 eigen-decomposition fallback;
    ``rank`` int64 (B,): eigenvalues kept (L for Cholesky); ``cond`` float64
    (B,): condition estimate of ``G + lambda I``.
    """

    beta: np.ndarray | list[np.ndarray]
    method: np.ndarray
    rank: np.ndarray
    cond: np.ndarray


def _as_system_list(a: object, name: str) -> tuple[list[np.ndarray], bool]:
    if isinstance(a, np.ndarray) and a.ndim == 2:
        return [np.ascontiguousarray(a, dtype=np.float64)], True
    if isinstance(a, np.ndarray) and a.ndim == 3:
        return [np.ascontiguousarray(x, dtype=np.float64) for x in a], False
    if isinstance(a, (list, tuple)):
        out = []
        for i, x in enumerate(a):
            x = np.asarray(x)
            if x.ndim != 2 or x.dtype.kind not in "fiu":
                raise ValueError(f"{name}[{i}]: expected a 2-D real matrix, got {describe(x)}")
            out.append(np.ascontiguousarray(x, dtype=np.float64))
        return out, False
    raise TypeError(f"{name}: expected a 2-D/3-D array or a list of 2-D arrays, got {describe(a)}")


def ridge_solve(G: object, C: object, ridge: float | np.ndarray = 0.0,
                cond_limit: float = DEFAULT_COND_LIMIT, rcond: float = DEFAULT_RCOND,
                num_threads: int | None = None) -> RidgeSolution:
    """Solve one or many systems ``(G + ridge I) beta = C`` (float64).

    Cholesky first; systems that are indefinite, singular or whose condition
    estimate exceeds ``cond_limit`` are re-solved through a symmetric
    eigen-decomposition, dropping eigenvalues below ``rcond`` times the
    largest (the pseudo-inverse solution).

    Parameters
    ----------
    G : ndarray (L, L) or (B, L, L), or list of (L_i, L_i) arrays
        Symmetric positive semi-definite Gram matrices.
    C : ndarray (L, D) or (B, L, D), or list of (L_i, D_i) arrays
        Right-hand sides.
    ridge : float or array of shape (B,)
        Non-negative ridge parameter(s) lambda.
    cond_limit, rcond : float
        Fallback trigger and eigenvalue cut-off (see above).
    num_threads : int or None
        Threads (None: OpenMP default).

    Returns
    -------
    RidgeSolution

    Raises
    ------
    ValueError
        Shapes disagree, non-finite input, negative ridge.
    """
    Gs, single = _as_system_list(G, "G")
    Cs, single_c = _as_system_list(C, "C")
    if len(Gs) != len(Cs) or single != single_c:
        raise ValueError(f"G and C must describe the same systems, got {len(Gs)} and {len(Cs)}")
    for i, (g, c) in enumerate(zip(Gs, Cs)):
        if g.shape[0] != g.shape[1] or g.shape[0] < 1:
            raise ValueError(f"G[{i}]: expected a square matrix, got shape {g.shape}")
        if c.shape[0] != g.shape[0]:
            raise ValueError(f"C[{i}]: expected {g.shape[0]} rows to match G, got shape {c.shape}")
        if not (np.isfinite(g).all() and np.isfinite(c).all()):
            raise ValueError(f"system {i} contains NaN or Inf; check the inputs of the Gram sums")
    lam = np.broadcast_to(np.asarray(ridge, dtype=np.float64), (len(Gs),)).copy()
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge!r}")
    if not cond_limit > 0 or not rcond >= 0:
        raise ValueError("cond_limit must be > 0 and rcond >= 0")
    betas, method, rank, cond = _core().ridge_solve_batched(
        Gs, Cs, lam, float(cond_limit), float(rcond), check_num_threads(num_threads))
    return RidgeSolution(betas[0] if single else list(betas), method, rank, cond)


def eigh(A: np.ndarray, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric eigen-decomposition by parallel Jacobi: ``A = V diag(w) V^T``.

    Returns ``w`` float64 (L,) ascending and ``V`` float64 (L, L) with unit
    eigenvectors in columns.
    """
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A: expected a square matrix, got {describe(A)}")
    A = np.ascontiguousarray(A, dtype=np.float64)
    if not np.isfinite(A).all():
        raise ValueError("A contains NaN or Inf")
    return _core().sym_eig_jacobi(A, check_num_threads(num_threads))
