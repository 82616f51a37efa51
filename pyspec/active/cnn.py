"""A small 1-D convolutional classifier in NumPy (seed 003's architecture, CPU).

Layers: ``n_blocks`` x [convolution of width 3 ("same" padding) -> ReLU ->
max-pool 2], then dense 512 -> ReLU -> dropout 0.5 -> dense -> softmax;
cross-entropy loss, Adam (Kingma & Ba 2015), early stopping on a held-out
validation part. This is the published architecture of the active-learning
CNN for emission-line stars, written out in NumPy because the usual
framework (PyTorch) pulls gigabytes of CUDA wheels into a CPU install. For
140-pixel H-alpha spectra the network is small (two blocks of 16 filters:
~0.3 M weights, nearly all in the dense layer) and trains in seconds.

The gradients are checked against finite differences in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from pyspec.errors import NotFittedError

__all__ = ["SpectrumCNN"]


def _im2col(x: np.ndarray) -> np.ndarray:
    """(B, L, C) -> (B, L, 3C): each position with its left and right neighbours (zero pad)."""
    pad = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    return np.concatenate([pad[:, :-2], pad[:, 1:-1], pad[:, 2:]], axis=2)


def _col2im(g: np.ndarray, c: int) -> np.ndarray:
    """Adjoint of :func:`_im2col`: (B, L, 3C) -> (B, L, C)."""
    left, mid, right = g[..., :c], g[..., c:2 * c], g[..., 2 * c:]
    out = mid.copy()
    out[:, :-1] += left[:, 1:]  # x[m] was the left neighbour of position m + 1
    out[:, 1:] += right[:, :-1]  # and the right neighbour of position m - 1
    return out


class SpectrumCNN(ClassifierMixin, BaseEstimator):
    """1-D CNN classifier of spectra (see the module docstring).

    Parameters
    ----------
    n_filters : tuple of int, default (16, 16)
        Filters of each convolution block (one block per entry).
    n_dense : int, default 512
    dropout : float, default 0.5
    learning_rate : float, default 1e-3
    batch_size : int, default 64
    max_epochs : int, default 50
    patience : int, default 5
        Epochs without a better validation loss before stopping (the best
        weights are kept).
    validation_fraction : float, default 0.1
    random_state : int or None
    """

    def __init__(self, n_filters: tuple[int, ...] = (16, 16), n_dense: int = 512,
                 dropout: float = 0.5, learning_rate: float = 1e-3, batch_size: int = 64,
                 max_epochs: int = 50, patience: int = 5, validation_fraction: float = 0.1,
                 random_state: int | None = None) -> None:
        self.n_filters = n_filters
        self.n_dense = n_dense
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # ------------------------------------------------------------------ network
    def _init(self, length: int, n_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
        params, c, L = [], 1, length
        for f in self.n_filters:
            params += [rng.normal(0, np.sqrt(2.0 / (3 * c)), (3 * c, f)), np.zeros(f)]
            c, L = f, L // 2
        if L < 1:
            raise ValueError(f"{len(self.n_filters)} pooling blocks need spectra of at least "
                             f"{2 ** len(self.n_filters)} pixels, got {length}")
        params += [rng.normal(0, np.sqrt(2.0 / (L * c)), (L * c, self.n_dense)),
                   np.zeros(self.n_dense),
                   rng.normal(0, np.sqrt(1.0 / self.n_dense), (self.n_dense, n_classes)),
                   np.zeros(n_classes)]
        return params

    def _forward(self, params: list[np.ndarray], x: np.ndarray,
                 drop_mask: np.ndarray | None) -> tuple[np.ndarray, list[Any]]:
        """Logits and the cache for backprop; x (B, L)."""
        h = x[:, :, None]
        cache = []
        for i in range(len(self.n_filters)):
            w, b = params[2 * i], params[2 * i + 1]
            cols = _im2col(h)
            z = cols @ w + b
            a = np.maximum(z, 0.0)
            half = a.shape[1] // 2
            pairs = a[:, :2 * half].reshape(a.shape[0], half, 2, a.shape[2])
            pooled = pairs.max(axis=2)
            cache.append((h.shape, cols, z, pairs, pooled))
            h = pooled
        flat = h.reshape(h.shape[0], -1)
        j = 2 * len(self.n_filters)
        zd = flat @ params[j] + params[j + 1]
        ad = np.maximum(zd, 0.0)
        if drop_mask is not None:
            ad = ad * drop_mask
        logits = ad @ params[j + 2] + params[j + 3]
        cache.append((h.shape, flat, zd, ad, drop_mask))
        return logits, cache

    def _backward(self, params: list[np.ndarray], cache: list[Any],
                  dlogits: np.ndarray) -> list[np.ndarray]:
        grads = [np.zeros_like(p) for p in params]
        j = 2 * len(self.n_filters)
        hshape, flat, zd, ad, drop_mask = cache[-1]
        grads[j + 2] = ad.T @ dlogits
        grads[j + 3] = dlogits.sum(axis=0)
        dad = dlogits @ params[j + 2].T
        if drop_mask is not None:
            dad = dad * drop_mask
        dzd = dad * (zd > 0)
        grads[j] = flat.T @ dzd
        grads[j + 1] = dzd.sum(axis=0)
        dh = (dzd @ params[j].T).reshape(hshape)
        for i in reversed(range(len(self.n_filters))):
            in_shape, cols, z, pairs, pooled = cache[i]
            # max-pool: the gradient goes to the first maximum of each pair
            first = pairs[:, :, 0, :] >= pairs[:, :, 1, :]
            da = np.zeros(z.shape)
            half = pairs.shape[1]
            da[:, 0:2 * half:2] = dh * first
            da[:, 1:2 * half:2] = dh * ~first
            dz = da * (z > 0)
            grads[2 * i] = cols.reshape(-1, cols.shape[2]).T @ dz.reshape(-1, dz.shape[2])
            grads[2 * i + 1] = dz.sum(axis=(0, 1))
            dh = _col2im(dz @ params[2 * i].T, in_shape[2])
        return grads

    @staticmethod
    def _loss(logits: np.ndarray, onehot: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean cross-entropy and its gradient with respect to the logits."""
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -float(np.mean(np.sum(onehot * np.log(np.maximum(p, 1e-300)), axis=1)))
        return loss, (p - onehot) / logits.shape[0]

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any) -> SpectrumCNN:
        """Train with Adam and early stopping; ``X`` (n, n_pixels), ``y`` labels."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or not np.all(np.isfinite(x)):
            raise ValueError(f"X must be a finite 2-D array (n, n_pixels), got {x.shape}")
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have one label per spectrum ({x.shape[0]}), got "
                             f"{y.shape}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError("need at least two classes")
        rng = np.random.default_rng(self.random_state)
        onehot = np.eye(self.classes_.size)[codes]
        order = rng.permutation(x.shape[0])
        n_val = int(round(self.validation_fraction * x.shape[0]))
        val, train = order[:n_val], order[n_val:]
        params = self._init(x.shape[1], self.classes_.size, rng)
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
        best, best_params, waited = np.inf, [p.copy() for p in params], 0
        keep = 1.0 - float(self.dropout)
        for epoch in range(int(self.max_epochs)):  # noqa: B007 (n_epochs_ after the loop)
            rng.shuffle(train)
            for s in range(0, train.size, int(self.batch_size)):
                idx = train[s:s + int(self.batch_size)]
                mask = (rng.random((idx.size, self.n_dense)) < keep) / keep \
                    if self.dropout > 0 else None
                logits, cache = self._forward(params, x[idx], mask)
                _, dlogits = self._loss(logits, onehot[idx])
                grads = self._backward(params, cache, dlogits)
                t += 1
                for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                    mi *= b1
                    mi += (1 - b1) * g
                    vi *= b2
                    vi += (1 - b2) * g * g
                    p -= (self.learning_rate * (mi / (1 - b1 ** t))
                          / (np.sqrt(vi / (1 - b2 ** t)) + eps))
            check = val if val.size else train
            loss = self._loss(self._forward(params, x[check], None)[0], onehot[check])[0]
            if loss < best - 1e-6:
                best, best_params, waited = loss, [p.copy() for p in params], 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        self.params_ = best_params
        self.n_epochs_ = epoch + 1
        self.best_validation_loss_ = best
        self.n_features_in_ = x.shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise NotFittedError("this SpectrumCNN is not fitted; call fit() first")
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected spectra of shape (n, {self.n_features_in_}), got "
                             f"{x.shape}")
        out = []
        for s in range(0, x.shape[0], 4096):
            z = self._forward(self.params_, x[s:s + 4096], None)[0]
            z = np.exp(z - z.max(axis=1, keepdims=True))
            out.append(z / z.sum(axis=1, keepdims=True))
        return np.concatenate(out)

    def predict(self, X: Any) -> np.ndarray:
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)]
