"""The spectrum base layer: types, the input adapter, and the physics every layer shares.

* :class:`Spectrum`, :class:`SpectrumBatch` (:mod:`pyspec.spectra._types`),
* :func:`as_spectra`, the one adapter from "spectrum-like" inputs
  (:mod:`pyspec.spectra.adapter`),
* :func:`air_to_vacuum`, :func:`vacuum_to_air`, :func:`to_rest_frame`
  (:mod:`pyspec.spectra.wavelength`),
* :func:`running_median`, the masked running-median continuum
  (:mod:`pyspec.spectra.continuum`).

It imports nothing else of pyspec (but the numba cache setting): ``io``,
``preprocess``, the measurements and the engine build on it.
"""

from pyspec.spectra._types import Spectrum, SpectrumBatch
from pyspec.spectra.adapter import ArraySpectrum, SpectraInput, as_spectra, is_spectrum_like
from pyspec.spectra.continuum import running_median
from pyspec.spectra.wavelength import (
    AIR_VACUUM_LIMIT,
    air_to_vacuum,
    to_rest_frame,
    vacuum_to_air,
)

__all__ = ["AIR_VACUUM_LIMIT", "ArraySpectrum", "SpectraInput", "Spectrum", "SpectrumBatch",
           "air_to_vacuum", "as_spectra", "is_spectrum_like", "running_median", "to_rest_frame",
           "vacuum_to_air"]
