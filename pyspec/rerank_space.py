"""The space the second stage of a search re-ranks its candidates in.

Two spaces, chosen at ``Engine.build(rerank_space=...)`` and recorded in
``engine.json``:

* ``"flux"``: squared L2 between the prepared spectra themselves (read from
  the store);
* ``"pca"`` (default): squared L2 between the spectra's projections on the
  store's first principal components. Measured in issue 14 on the real
  LAMOST corpus, this denoised distance finds another epoch of the same star
  far more often than L2 on all pixels (repeat recall@10 0.84 vs 0.55) and
  gives better type and subclass neighbours: the leading components carry
  the stellar parameters, the trailing ones mostly pixel noise, sky and
  calibration residuals that differ between epochs of one star.

The principal components are fitted at build from the covariance of (at
most :data:`PCA_FIT_ROWS` randomly chosen) stored rows, accumulated chunk by
chunk (memory: one n_pixels^2 float64 matrix, whatever the store's size);
every row is then projected once and the projections (n x n_components
float32) are stored with the engine, so a re-rank reads 128 bytes per
candidate instead of a whole spectrum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RERANK_SPACES", "PCA_COMPONENTS", "PCA_FIT_ROWS", "n_pca_components",
           "PrincipalBasis", "fit_principal_basis"]

RERANK_SPACES = ("pca", "flux")
#: Components kept by default. A label-free choice: stellar spectra vary with a
#: handful of physical parameters (Teff, log g, [Fe/H], [alpha/Fe], v sin i,
#: extinction, ...) whose effects are non-linear, so a few tens of linear
#: components describe them. On the real corpus the re-rank quality is flat
#: from 16 to 64 components and falls beyond (128 lets noise back in).
PCA_COMPONENTS = 32
#: Rows the covariance is estimated from (a seeded random sample above this).
PCA_FIT_ROWS = 20_000


def n_pca_components(n_spectra: int, n_features: int, wanted: int = PCA_COMPONENTS) -> int:
    """Components for a store of ``n_spectra`` rows: ``wanted``, at most n / 4 and n_features.

    With fewer than four spectra per component the trailing components of a
    small store describe individual spectra rather than shared structure.
    """
    return int(max(1, min(int(wanted), n_spectra // 4, n_features)))


class PrincipalBasis:
    """The store's mean row and its first principal axes: ``project(x) = (x - mean) @ axes.T``."""

    def __init__(self, mean: np.ndarray, axes: np.ndarray,
                 explained_variance_ratio: float) -> None:
        self.mean = np.ascontiguousarray(mean, np.float32)
        self.axes = np.ascontiguousarray(axes, np.float32)
        self.explained_variance_ratio = float(explained_variance_ratio)

    @property
    def n_components(self) -> int:
        return int(self.axes.shape[0])

    def project(self, x: np.ndarray) -> np.ndarray:
        """(n, n_pixels) rows -> (n, n_components) float32 coordinates.

        Computed in float64 and rounded, so a row projects to the same float32
        values whether it comes alone (a query) or in a chunk (the build): a
        stored spectrum queried by example is at distance 0 from itself.
        """
        x = np.asarray(x, np.float64)
        return np.ascontiguousarray((x - self.mean) @ self.axes.T.astype(np.float64),
                                    dtype=np.float32)


def fit_principal_basis(flux: Any, n_components: int, *, chunk_size: int = 8192,
                        random_state: int | None = 0, transform: Any = None) -> PrincipalBasis:
    """Fit the first ``n_components`` principal axes of the rows of ``flux`` (n, n_pixels).

    ``flux`` may be a memory-mapped store array: rows are read chunk by chunk
    (a sorted random sample of :data:`PCA_FIT_ROWS` rows when there are more);
    ``transform`` maps a chunk to the search space first. The top eigenvectors
    of the covariance come from Lanczos iteration (a seeded start vector, so a
    build is reproducible), not a full eigen-decomposition: ~1 s instead of
    ~16 s of CPU for 3,920 pixels.
    """
    from scipy.sparse.linalg import eigsh

    n, p = flux.shape
    rows = np.arange(n)
    if n > PCA_FIT_ROWS:
        rng = np.random.default_rng(random_state)
        rows = np.sort(rng.choice(n, size=PCA_FIT_ROWS, replace=False))
    total = np.zeros(p)
    gram = np.zeros((p, p))
    for start in range(0, rows.size, chunk_size):
        chunk = np.asarray(flux[rows[start:start + chunk_size]], np.float32)
        if transform is not None:
            chunk = transform(chunk)
        chunk = chunk.astype(np.float64)
        total += chunk.sum(axis=0)
        gram += chunk.T @ chunk
    m = rows.size
    mean = total / m
    cov = (gram - m * np.outer(mean, mean)) / max(m - 1, 1)
    c = int(min(n_components, p))
    if c >= p - 1:  # Lanczos needs k < p: take the full decomposition
        w, v = np.linalg.eigh(cov)
    else:
        w, v = eigsh(cov, k=c, which="LA", v0=np.ones(p))
    order = np.argsort(w)[::-1][:c]
    # a fixed sign per axis (largest |entry| positive) makes the stored basis reproducible
    axes = v[:, order].T
    axes *= np.sign(axes[np.arange(c), np.argmax(np.abs(axes), axis=1)])[:, None]
    trace = float(np.trace(cov))
    ratio = float(w[order].sum() / trace) if trace > 0 else 1.0
    return PrincipalBasis(mean, axes, ratio)
