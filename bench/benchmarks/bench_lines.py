"""Line and index measurements over a batch (issue 7): spectra per second.

Synthetic LAMOST-like batches (log-linear 3700-9100 A grid, 3900 pixels):
a sloped continuum with noise, half of them with a star-forming emission-line
pattern at z in [0.01, 0.3].  Fixed seed; numba kernels are compiled (or
loaded from the on-disk cache) in ``setup`` so the timings exclude JIT.
"""

from __future__ import annotations

import numpy as np

import pyspec.indices as indices
import pyspec.lines as lines
from pyspec.measure import measure

_PATTERN = {"Ha": 30.0, "NII_6583": 10.0, "Hb": 8.0, "OIII_5007": 10.0, "OII_3727": 8.0,
            "SII_6716": 5.0, "SII_6731": 4.0}


def make_batch(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = np.geomspace(3700.0, 9100.0, 3900)
    flux = np.empty((n, w.size), np.float32)
    for i in range(n):
        f = 1.0 + 0.3 * (w - 6000.0) / 3000.0
        if i % 2 == 0:
            z = rng.uniform(0.01, 0.3)
            for name, ew in _PATTERN.items():
                mu = lines.REST_LINES[name] * (1 + z)
                sig = mu * 100.0 / 299792.458
                f = f + ew / (sig * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((w - mu) / sig) ** 2)
        flux[i] = f + rng.normal(0.0, 0.1, w.size)
    return w, flux, np.full(flux.shape, 100.0, np.float32)


class LineMeasure:
    params = [[16, 256]]
    param_names = ["n_spectra"]
    timeout = 300

    def setup(self, n):
        self.batch = make_batch(n)
        measure(make_batch(2))  # JIT / cache load outside the timing

    def time_measure(self, n):
        measure(self.batch)

    def time_measure_gaussian(self, n):
        measure(self.batch, method="gaussian")

    def time_redshift(self, n):
        lines.redshift(self.batch)

    def time_indices(self, n):
        indices.measure(self.batch)

    def time_continuum(self, n):
        lines.pseudo_continuum(self.batch)
