"""Structured synthetic spectra for the PQ tests: a few smooth templates
(continuum + absorption/emission lines) with pixel shifts (redshift),
continuum slopes and Gaussian noise, each row L2-normalised. Not uniform noise:
neighbours are meaningful, as in real archives."""

from __future__ import annotations

import numpy as np


def structured_spectra(n: int, n_pixels: int, seed: int = 0, n_templates: int = 6,
                       noise: float = 0.02, max_shift: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width = n_pixels + 2 * max_shift
    x = np.linspace(0.0, 1.0, width)
    templates = np.empty((n_templates, width))
    for t in range(n_templates):
        cont = 1.0 + rng.uniform(-0.8, 0.8) * x + rng.uniform(-0.5, 0.5) * x**2
        lines = np.zeros(width)
        for _ in range(rng.integers(8, 20)):
            centre, sigma = rng.uniform(0, 1), rng.uniform(0.001, 0.01)
            lines += rng.uniform(-0.8, 1.5) * np.exp(-0.5 * ((x - centre) / sigma) ** 2)
        templates[t] = cont + lines
    which = rng.integers(0, n_templates, n)
    shift = rng.integers(0, 2 * max_shift + 1, n)
    slope = rng.normal(0, 0.3, n)
    xs = np.linspace(-0.5, 0.5, n_pixels)
    out = np.empty((n, n_pixels), dtype=np.float32)
    for i in range(n):
        row = templates[which[i], shift[i]:shift[i] + n_pixels] * (1.0 + slope[i] * xs)
        out[i] = row
    out += rng.normal(0, noise, size=out.shape).astype(np.float32) * np.abs(out).mean()
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out
