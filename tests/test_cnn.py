"""SpectrumCNN: backprop against finite differences, learning, API errors."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.active.cnn import SpectrumCNN, _col2im, _im2col
from pyspec.errors import NotFittedError


def test_col2im_is_adjoint_of_im2col(rng):
    x = rng.normal(size=(2, 7, 3))
    g = rng.normal(size=(2, 7, 9))
    assert np.sum(_im2col(x) * g) == pytest.approx(np.sum(x * _col2im(g, 3)))


@pytest.mark.parametrize("length", [12, 13])
def test_gradients_match_finite_differences(rng, length):
    net = SpectrumCNN(n_filters=(3, 2), n_dense=5, dropout=0.5)
    params = net._init(length, 3, rng)
    params = [p + rng.normal(0, 0.1, p.shape) for p in params]  # biases off zero
    x = rng.normal(size=(4, length))
    onehot = np.eye(3)[[0, 2, 1, 2]]
    mask = (rng.random((4, 5)) < 0.5) / 0.5

    def loss(ps):
        return net._loss(net._forward(ps, x, mask)[0], onehot)[0]

    logits, cache = net._forward(params, x, mask)
    grads = net._backward(params, cache, net._loss(logits, onehot)[1])
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        for idx in list(np.ndindex(p.shape))[:: max(1, p.size // 7)]:
            old = p[idx]
            p[idx] = old + h
            up = loss(params)
            p[idx] = old - h
            down = loss(params)
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-7)


def test_learns_emission_from_absorption(rng):
    wl = np.linspace(-1, 1, 64)
    lab = rng.integers(0, 2, 300)
    line = np.exp(-0.5 * (wl / 0.1) ** 2)
    x = np.where(lab[:, None] == 1, line, -line) + rng.normal(0, 0.3, (300, 64))
    names = np.array(["absorption", "emission"])
    net = SpectrumCNN(n_filters=(4,), n_dense=16, max_epochs=30, random_state=0)
    net.fit(x[:200], names[lab[:200]])
    assert np.mean(net.predict(x[200:]) == names[lab[200:]]) > 0.95
    assert net.n_epochs_ <= 30
    np.testing.assert_allclose(net.predict_proba(x[:5]).sum(axis=1), 1.0)


def test_errors(rng):
    with pytest.raises(NotFittedError):
        SpectrumCNN().predict(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="two classes"):
        SpectrumCNN().fit(np.zeros((4, 16)), ["a"] * 4)
    with pytest.raises(ValueError, match="pixels"):
        SpectrumCNN(n_filters=(2, 2, 2)).fit(rng.normal(size=(6, 4)), [0, 1] * 3)
