"""asv: linalg kernels (Gram accumulation, dense forward, batched ridge solves)."""

from __future__ import annotations

import numpy as np

from pyspec import linalg


def _hidden(n: int, L: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1.0 / (1.0 + np.exp(-rng.standard_normal((n, L))))).astype(np.float32)


class GramAccumulate:
    params = ([20_000, 100_000], [256, 512], [1, 2])
    param_names = ["n", "L", "num_threads"]
    timeout = 300

    def setup(self, n, L, num_threads):
        self.H = _hidden(n, L)
        self.X = _hidden(n, 128, seed=1)

    def time_gram(self, n, L, num_threads):
        linalg.GramAccumulator(L, num_threads=num_threads).add(self.H)

    def time_gram_and_cross(self, n, L, num_threads):
        linalg.GramAccumulator(L, 128, num_threads=num_threads).add(self.H, self.X)

    def time_numpy_matmul_reference(self, n, L, num_threads):
        self.H.T @ self.H


class DenseForward:
    params = ([10_000], [3700], [512], [1, 2])
    param_names = ["n", "d", "p", "num_threads"]

    def setup(self, n, d, p, num_threads):
        rng = np.random.default_rng(0)
        self.X = rng.random((n, d), dtype=np.float32)
        self.W = (rng.standard_normal((d, p)) / np.sqrt(d)).astype(np.float32)

    def time_sigmoid_layer(self, n, d, p, num_threads):
        linalg.dense_forward(self.X, self.W, None, "sigmoid", num_threads)


class RidgeSolve:
    params = ([1, 8], [256, 512], [1, 2])
    param_names = ["batch", "L", "num_threads"]

    def setup(self, batch, L, num_threads):
        rng = np.random.default_rng(0)
        self.G, self.C = [], []
        for _ in range(batch):
            A = rng.standard_normal((2 * L, L))
            self.G.append(A.T @ A)
            self.C.append(A.T @ rng.standard_normal((2 * L, 256)))

    def time_cholesky(self, batch, L, num_threads):
        linalg.ridge_solve(self.G, self.C, 1e-6, num_threads=num_threads)

    def time_eigen_fallback(self, batch, L, num_threads):
        linalg.ridge_solve(self.G, self.C, 1e-6, cond_limit=1.0, num_threads=num_threads)
