"""Cached, fixed-seed data generators shared by the asv suite and bench/peers.py.

Append-only: a released generator keeps its name, signature and output, so
figures stay comparable over time. Returned arrays are cached and shared;
callers must not modify them.
"""

from __future__ import annotations

import functools

import numpy as np

from pyspec._bits import pack_bits

# --- hamming ---


@functools.lru_cache(maxsize=8)
def clustered_codes(n: int, n_bits: int = 256, sample_seed: int = 1, model_seed: int = 0,
                    n_dims: int = 32, n_clusters: int = 64) -> np.ndarray:
    """Binary codes with structure: random-hyperplane signs of clustered vectors.

    Vectors come from ``n_clusters`` Gaussian clusters in ``n_dims`` dimensions;
    bit j is the sign of the projection on hyperplane j (SimHash). Codes from
    one cluster share most bits, like codes of similar spectra. The clusters
    and hyperplanes depend only on ``model_seed``, so database and queries
    drawn with different ``sample_seed`` come from the same distribution.

    Returns uint64 of shape (n, ceil(n_bits / 64)), C-contiguous.
    """
    model = np.random.default_rng(model_seed)
    centres = model.normal(scale=2.0, size=(n_clusters, n_dims)).astype(np.float32)
    planes = model.normal(size=(n_dims, n_bits)).astype(np.float32)
    rng = np.random.default_rng(sample_seed)
    out = np.empty((n, (n_bits + 63) // 64), dtype=np.uint64)
    chunk = 1 << 16
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(0, n_clusters, size=m)]
        x = x + rng.normal(size=(m, n_dims)).astype(np.float32)
        out[start:start + m] = pack_bits(x @ planes > 0)
    out.flags.writeable = False
    return out


def uniform_codes(n: int, n_bits: int = 256, seed: int = 2) -> np.ndarray:
    """Independent uniform random bits, uint64 (n, ceil(n_bits / 64)) (not cached: large)."""
    rng = np.random.default_rng(seed)
    n_words = (n_bits + 63) // 64
    out = np.empty((n, n_words), dtype=np.uint64)
    chunk = 1 << 20
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        out[start:start + m] = rng.integers(0, 2**64, size=(m, n_words), dtype=np.uint64,
                                            endpoint=False)
    if n_bits % 64:
        out[:, -1] &= np.uint64((1 << (n_bits % 64)) - 1)
    return out
