"""Iterative quantisation (ITQ) baseline: PCA then a learned rotation.

Gong & Lazebnik 2011, "Iterative quantization: a Procrustean approach to
learning binary codes" (CVPR): project centred data onto the top ``n_bits``
principal components V, then alternate B = sign(V R) and the orthogonal
Procrustes update of R that minimises ||B - V R||_F (50 iterations in the
paper). Bits are the signs of the rotated projections.

Streaming: the mean and covariance are accumulated chunk by chunk with the
compiled Gram kernel (memory d x d, independent of the number of spectra);
the rotation is learned on a random sample of ``n_sample`` projected rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from pyspec import linalg
from pyspec.models.base import BaseHasher, iter_source


def _fix_signs(comps: np.ndarray) -> np.ndarray:
    """Principal directions (columns) with their largest-magnitude entry
    positive: SVD and eigen-solvers may return either sign."""
    big = np.argmax(np.abs(comps), axis=0)
    signs = np.sign(comps[big, np.arange(comps.shape[1])])
    return comps * np.where(signs == 0, 1.0, signs)


class ITQHasher(BaseHasher):
    """PCA + iterative quantisation.

    Parameters
    ----------
    n_bits : int, default 256
        Code length; at most the number of pixels and of training spectra.
    n_iter : int, default 50
        Alternating B / R iterations.
    n_sample : int, default 20000
        Training rows used to learn the rotation.
    random_state : None, int, numpy Generator or RandomState
        Seeds the initial rotation and the sample.
    output : {"bits", "packed", "embedding"}, default "bits"
        What :meth:`transform` returns: 0/1 uint8 bits (n, n_bits), the
        packed uint64 codes of :meth:`encode`, or the float32 embedding.
    chunk_rows : int, default 8192
        Rows per block when iterating over a store or a large array.

    Attributes
    ----------
    mean_ : ndarray of shape (n_pixels,), float32
    components_ : ndarray of shape (n_pixels, n_bits), float32
        Top principal directions (columns).
    rotation_ : ndarray of shape (n_bits, n_bits), float32
    projection_ : ndarray of shape (n_pixels, n_bits), float32
        ``components_ @ rotation_``.
    thresholds_ : ndarray of shape (n_bits,), float32
        All zero (bit = sign).

    Examples
    --------
    >>> import numpy as np
    >>> from pyspec import ITQHasher
    >>> X = np.random.default_rng(0).random((200, 80), dtype=np.float32)
    >>> ITQHasher(n_bits=32, random_state=0).fit_transform(X).shape
    (200, 32)
    """

    _KIND = b"IT"

    def __init__(self, n_bits: int = 256, n_iter: int = 50, n_sample: int = 20000,
                 random_state: object = None, output: str = "bits",
                 chunk_rows: int = 8192) -> None:
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.n_sample = n_sample
        self.random_state = random_state
        self.output = output
        self.chunk_rows = chunk_rows

    def _fit(self, X: object, n: int, d: int, rng: np.random.Generator, nt: int | None) -> None:
        nb = int(self.n_bits)
        if nb > min(n, d):
            raise ValueError(f"ITQ needs n_bits <= min(n_spectra, n_pixels) = {min(n, d)} "
                             f"(n_samples = {n}, n_features = {d}), got n_bits={nb}; use "
                             "fewer bits or more spectra")
        if int(self.n_iter) < 0:
            raise ValueError(f"n_iter must be >= 0, got {self.n_iter}")
        m = min(n, max(int(self.n_sample), nb))
        idx = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        if n <= d:
            # Few spectra: exact thin SVD of the centred data, gathered the
            # same way from an array or a store so both give the same model
            # (the store used to take the covariance route below, whose
            # eigenvectors differ from the SVD's in sign and rounding).
            A = np.concatenate([c for _, c in iter_source(X, self.chunk_rows, d)]
                               ).astype(np.float64)
            mean = A.mean(axis=0)
            _, _, vt = np.linalg.svd(A - mean, full_matrices=False)
            comps = vt[:nb].T
            sample = A[idx]
        else:
            # Covariance from Gram sums of shifted rows: shifting by the first
            # chunk's mean avoids the cancellation of E[x x^T] - mu mu^T for
            # spectra whose mean is large against their scatter.
            acc = linalg.GramAccumulator(d, None, nt)
            total = np.zeros(d)
            rows = []
            shift = None
            for start, chunk in iter_source(X, self.chunk_rows, d):
                if shift is None:
                    shift = chunk.mean(axis=0, dtype=np.float64).astype(np.float32)
                acc.add(chunk - shift)
                total += chunk.sum(axis=0, dtype=np.float64)
                sel = idx[(idx >= start) & (idx < start + len(chunk))] - start
                rows.append(chunk[sel])
            mean = total / n
            dm = mean - shift
            cov = acc.gram / n - np.outer(dm, dm)
            _, vecs = scipy.linalg.eigh(cov, subset_by_index=[d - nb, d - 1])
            comps = vecs[:, ::-1]
            sample = np.concatenate(rows).astype(np.float64)
        comps = _fix_signs(comps)
        V = (sample - mean) @ comps
        R = np.linalg.qr(rng.standard_normal((nb, nb)))[0]
        # The (n_bits, n_bits) SVDs are too small for BLAS threads; on a busy
        # machine threaded LAPACK made each one ~50x slower.
        with threadpool_limits(1, user_api="blas"):
            for _ in range(int(self.n_iter)):
                B = np.where(V @ R >= 0, 1.0, -1.0)
                u, _, wt = np.linalg.svd(V.T @ B)
                R = u @ wt
        self.mean_ = mean.astype(np.float32)
        self.components_ = comps.astype(np.float32)
        self.rotation_ = R.astype(np.float32)
        self._finish()
        self.thresholds_ = np.zeros(nb, dtype=np.float32)

    def _finish(self) -> None:
        proj = self.components_.astype(np.float64) @ self.rotation_.astype(np.float64)
        self.projection_ = proj.astype(np.float32)
        self._offset = (-(self.mean_.astype(np.float64) @ proj)).astype(np.float32)

    def _embed(self, X: np.ndarray, nt: int | None) -> np.ndarray:
        return linalg.dense_forward(X, self.projection_, self._offset, "identity", nt)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"mean": self.mean_, "components": self.components_, "rotation": self.rotation_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.mean_ = np.ascontiguousarray(arrays["mean"], dtype=np.float32)
        self.components_ = np.ascontiguousarray(arrays["components"], dtype=np.float32)
        self.rotation_ = np.ascontiguousarray(arrays["rotation"], dtype=np.float32)
        self._finish()
