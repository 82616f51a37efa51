"""Domain adaptation between instruments (seed 002: Ondrejov CCD700 -> LAMOST)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pyspec.preprocess._common import (
    _FWHM_PER_SIGMA,
)
from pyspec.preprocess._grid import WavelengthGrid
from pyspec.preprocess._pipeline import PreparedBatch, Preprocessor, _as_spectra
from pyspec.preprocess._resample import degrade_resolution
from pyspec.spectra import (  # noqa: F401  (air_to_vacuum, vacuum_to_air: public here too)
    air_to_vacuum,
    as_spectra,
    to_rest_frame,
    vacuum_to_air,
)

# ================================================================ issue 18: domain adaptation
# Ondrejov CCD700 -> LAMOST (seed 002). Kept in its own block: the rest of
# this module is shared with other work.

#: Named source -> target adaptations: the source spectrograph's and the
#: target survey's resolving power near H-alpha, and the preparation that
#: follows (grid, continuum, normalisation). CCD700 on the Ondrejov 2 m: about
#: 0.25 A per pixel and R ~ 13 000 at H-alpha (Slechta & Skoda 2002, PAICz 90,
#: 1); LAMOST LRS: R ~ 1800 (Cui et al. 2012, RAA 12, 1197).
ADAPTATION_PRESETS: dict[str, dict[str, Any]] = {
    "ccd700-lamost": {"source_resolving_power": 13000.0, "target_resolving_power": 1800.0,
                      "grid": "halpha-140", "continuum": "poly", "continuum_degree": 1,
                      "normalise": "minmax-sym"},
}


def source_blur_sigma(wavelength: Any, target_resolving_power: float,
                      source_resolving_power: float | None = None) -> float:
    """Gaussian sigma in SOURCE pixels that takes a spectrum from R0 to R.

    The kernel FWHM in Angstrom is ``lambda * sqrt(1/R**2 - 1/R0**2)`` at the
    middle wavelength of the spectrum, divided by its median pixel width. A
    CCD700 spectrum spans ~450 A, so one kernel is within 4 % of the local
    one everywhere.
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    if wl.ndim != 1 or wl.size < 2:
        raise ValueError(f"wavelength must be 1-D with >= 2 pixels, got shape {wl.shape}")
    inv2 = 1.0 / float(target_resolving_power) ** 2 - (
        0.0 if source_resolving_power is None else 1.0 / float(source_resolving_power) ** 2)
    if not inv2 > 0:
        raise ValueError(f"target resolving power {target_resolving_power} must be below the "
                         f"source's {source_resolving_power}")
    mid = 0.5 * (wl[0] + wl[-1])
    fwhm_angstrom = mid * math.sqrt(inv2)
    return fwhm_angstrom / float(np.median(np.diff(wl))) / _FWHM_PER_SIGMA


def degrade_at_source(spectrum: Any, target_resolving_power: float,
                      source_resolving_power: float | None = None) -> Any:
    """A copy of ``spectrum`` blurred on its own pixels to ``target_resolving_power``.

    Blurring before resampling matters: on a coarse output grid (1.5 A for
    "halpha-140") the line profile is already averaged over pixels, and a
    kernel applied there cannot undo that averaging's dependence on where
    the source pixels fall. Masked pixels are interpolated over first so
    they do not spread; they stay masked.
    """
    wl = np.asarray(spectrum.wavelength, dtype=np.float64)
    f = np.asarray(spectrum.flux, dtype=np.float64)
    mask = np.asarray(getattr(spectrum, "mask", None) if getattr(spectrum, "mask", None)
                      is not None else np.zeros(f.shape, bool), dtype=bool)
    good = ~mask & np.isfinite(f)
    if not good.any():
        from pyspec.errors import SpectrumCoverageError

        raise SpectrumCoverageError("no good pixels to blur")
    filled = np.where(good, f, np.interp(wl, wl[good], f[good]))
    sigma = source_blur_sigma(wl, target_resolving_power, source_resolving_power)
    blurred = degrade_resolution(filled, sigma_pix=sigma)
    return dataclasses.replace(spectrum, flux=blurred.astype(np.float32))


def adapt_spectra(spectra: Any, preset: str = "ccd700-lamost", *, source: bool = True,
                  grid: WavelengthGrid | str | None = None) -> PreparedBatch:
    """Prepare spectra of two instruments alike (seed 002's domain adaptation).

    ``source=True``: the spectra come from the preset's source spectrograph
    (CCD700) and are blurred at their own pixels to the target resolution
    first; ``source=False``: target-survey spectra (LAMOST), not blurred.
    Both then go through the same :class:`Preprocessor`: air -> vacuum,
    resampling onto the preset grid ("halpha-140": 140 points over
    6519-6732 A; or ``grid``, e.g. "halpha-wide" for 6250-6750 A),
    sigma-clipped linear continuum division and min-max scaling to [-1, 1].
    """
    if preset not in ADAPTATION_PRESETS:
        raise ValueError(f"unknown adaptation preset {preset!r}; choose from "
                         f"{sorted(ADAPTATION_PRESETS)}")
    p = ADAPTATION_PRESETS[preset]
    prep = adaptation_preprocessor(preset, grid)
    items = list(_as_spectra(spectra))
    if not source:
        return prep.apply(items)
    blurred, failed = [], {}
    for i, s in enumerate(items):
        try:
            blurred.append(degrade_at_source(s, p["target_resolving_power"],
                                             p["source_resolving_power"]))
        except ValueError as exc:
            failed[i] = str(exc)
            blurred.append(s)
    out = prep.apply(blurred)
    for i, why in failed.items():
        out.ok[i] = False
        out.reasons[i] = why
        out.flux[i] = 0.0
        out.ivar[i] = 0.0
    return out


def adaptation_preprocessor(preset: str = "ccd700-lamost",
                            grid: WavelengthGrid | str | None = None) -> Preprocessor:
    """The :class:`Preprocessor` that follows the source blur of ``preset``."""
    if preset not in ADAPTATION_PRESETS:
        raise ValueError(f"unknown adaptation preset {preset!r}; choose from "
                         f"{sorted(ADAPTATION_PRESETS)}")
    p = ADAPTATION_PRESETS[preset]
    return Preprocessor(grid or p["grid"], normalise=p["normalise"], continuum=p["continuum"],
                        continuum_degree=p["continuum_degree"], to_vacuum=True)
# ================================================================ end of issue 18 block
