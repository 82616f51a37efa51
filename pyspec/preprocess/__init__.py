"""Preprocessing: wavelength grids, resampling, masking, continuum and flux normalisation.

Everything needed to turn spectra of different surveys and pixel counts
into rows of one float32 matrix on a common :class:`WavelengthGrid`:

* :func:`air_to_vacuum` / :func:`vacuum_to_air` and :func:`to_rest_frame`
  (re-exported from :mod:`pyspec.spectra.wavelength`, the one implementation),
* :func:`resample` onto a grid by flux-conserving rebinning or linear
  interpolation, masked pixels interpolated over and counted,
* :func:`degrade_resolution` (Gaussian convolution given sigma or FWHM in
  pixels, or a target resolving power on a log-linear grid),
* :func:`continuum_median` (running median, window in Angstrom),
  :func:`continuum_clipped_median` (running median over good pixels with
  absorption lines clipped away) and :func:`continuum_poly` (sigma-clipped
  Chebyshev fit),
* :func:`wavelength_mask` (grid pixels outside a useful range or on strong
  night-sky lines),
* :func:`normalise` ("minmax" to [0, 1], "minmax-sym" to [-1, 1], "l2" unit
  norm, "sumsq" f / sum(f**2), "none"),
* :func:`log_to_linear`,

and :class:`Preprocessor`, which chains them (named recipes, the default
"similarity" one included, are in :data:`PREPROCESSING_PRESETS`) with fixed settings that
round-trip through ``to_dict``/``from_dict`` so a query spectrum is prepared
exactly like the archive it is searched against.
"""


from __future__ import annotations

from pyspec.preprocess._adapt import (
    ADAPTATION_PRESETS,
    adapt_spectra,
    adaptation_preprocessor,
    degrade_at_source,
    source_blur_sigma,
)
from pyspec.preprocess._common import CONTINUA, METHODS, NORMALISATIONS
from pyspec.preprocess._continuum import (  # noqa: F401  (the private ones: their tests)
    SKY_LINES,
    _continuum_blocks,
    _divide_clip_mask,
    _divide_clip_mask_numpy,
    continuum_clipped_median,
    continuum_median,
    continuum_poly,
    normalise,
    wavelength_mask,
)
from pyspec.preprocess._grid import WavelengthGrid, as_grid, pixel_edges
from pyspec.preprocess._pipeline import (
    DEFAULT_PREPROCESSING,
    PREPROCESSING_PRESETS,
    PreparedBatch,
    Preprocessor,
)
from pyspec.preprocess._resample import (
    Resampled,
    degrade_resolution,
    gaussian_kernel,
    kernel_sigma,
    log_to_linear,
    resample,
)
from pyspec.spectra import air_to_vacuum, to_rest_frame, vacuum_to_air

__all__ = ["ADAPTATION_PRESETS", "CONTINUA", "DEFAULT_PREPROCESSING", "METHODS", "NORMALISATIONS",
           "PREPROCESSING_PRESETS", "PreparedBatch", "Preprocessor", "Resampled", "SKY_LINES",
           "WavelengthGrid", "adapt_spectra", "adaptation_preprocessor", "air_to_vacuum",
           "as_grid", "continuum_clipped_median", "continuum_median", "continuum_poly",
           "degrade_at_source", "degrade_resolution", "gaussian_kernel", "kernel_sigma",
           "log_to_linear", "normalise", "pixel_edges", "resample", "source_blur_sigma",
           "to_rest_frame", "vacuum_to_air", "wavelength_mask"]
