"""Slow, obviously-correct NumPy references for every compiled kernel.

Each kernel family appends its reference here; tests compare the fast path
against these exactly (integers) or within a stated tolerance (floats).
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------- linalg
def gram_reference(H: np.ndarray, X: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """H^T H and H^T X in float64 (reference of linalg.GramAccumulator)."""
    H64 = np.asarray(H, dtype=np.float64)
    return H64.T @ H64, None if X is None else H64.T @ np.asarray(X, dtype=np.float64)


def dense_forward_reference(X: np.ndarray, W: np.ndarray, b: np.ndarray | None,
                            activation: str) -> np.ndarray:
    """g(X W + b) in float64."""
    z = np.asarray(X, np.float64) @ np.asarray(W, np.float64)
    if b is not None:
        z = z + np.asarray(b, np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.maximum(z, 0.0)
    return z


def ridge_reference(G: np.ndarray, C: np.ndarray, lam: float) -> np.ndarray:
    """(G + lam I)^+ C through numpy.linalg.pinv (minimum-norm for singular G)."""
    A = np.asarray(G, np.float64) + lam * np.eye(G.shape[0])
    return np.linalg.pinv(A, rcond=1e-12, hermitian=True) @ np.asarray(C, np.float64)
