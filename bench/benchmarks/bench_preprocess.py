"""asv: preprocessing a batch of real spectra onto the preset grids."""

from __future__ import annotations

import numpy as np

from pyspec.data import sample_files
from pyspec.io import read_spectra
from pyspec.preprocess import Preprocessor, degrade_resolution


class Prepare:
    """``Preprocessor.apply`` on the 59-spectrum sample, per grid / method / continuum."""

    params = (["lamost", "pq-2A"], ["rebin", "interp"], [None, "median", "poly"])
    param_names = ["grid", "method", "continuum"]
    timeout = 120

    def setup(self, grid: str, method: str, continuum: str | None) -> None:
        self.spectra = read_spectra(sample_files()).spectra
        self.pre = Preprocessor(grid, normalise="l2", continuum=continuum, method=method)
        self.pre.apply(self.spectra[:2])  # JIT cache load

    def time_apply(self, grid: str, method: str, continuum: str | None) -> None:
        self.pre.apply(self.spectra)


class Degrade:
    """Gaussian degradation of a (n, 3921) batch."""

    params = ([64, 1024], [1.5, 6.0])
    param_names = ["n_spectra", "sigma_pix"]

    def setup(self, n_spectra: int, sigma_pix: float) -> None:
        self.flux = np.random.default_rng(0).normal(size=(n_spectra, 3921))

    def time_degrade(self, n_spectra: int, sigma_pix: float) -> None:
        degrade_resolution(self.flux, sigma_pix=sigma_pix)
