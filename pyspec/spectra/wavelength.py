"""Air <-> vacuum and rest-frame wavelengths: the one implementation in pyspec.

The refractive index is the IAU standard one: Birch & Downs (1994, Metrologia
31, 315) for dry air at 15 C, 101 325 Pa and 450 ppm CO2, in the form of
Morton (2000, ApJS 130, 403, eq. 8), the formula VALD and the NIST atomic
spectra database use. By the IAU convention (Morton 1991) wavelengths below
2000 A are quoted in vacuum, so both conversions leave them unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Below this wavelength (Angstrom) air and vacuum wavelengths are the same by convention.
AIR_VACUUM_LIMIT = 2000.0


def vacuum_to_air(wavelength: Any) -> np.ndarray:
    """Vacuum -> air wavelength (Angstrom), ``lambda_air = lambda_vac / n`` with::

        s = 1e4 / lambda_vac
        n = 1 + 8.34254e-5 + 2.406147e-2 / (130 - s**2) + 1.5998e-4 / (38.9 - s**2)

    Wavelengths below 2000 A are returned unchanged.

    Examples
    --------
    >>> round(float(vacuum_to_air(5008.240)), 2)  # [O III]
    5006.84
    """
    wl = np.asarray(wavelength, dtype=np.float64)
    s2 = (1e4 / wl) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return np.where(wl >= AIR_VACUUM_LIMIT, wl / n, wl)


def air_to_vacuum(wavelength: Any) -> np.ndarray:
    """Air -> vacuum wavelength (Angstrom), the inverse of :func:`vacuum_to_air`.

    Starts from N. Piskunov's inversion of the same refractive index (as used
    by VALD) and refines it by two fixed-point steps, so that
    ``vacuum_to_air(air_to_vacuum(x)) == x`` to about 1e-9 A. Wavelengths
    below 2000 A are returned unchanged.

    Examples
    --------
    >>> round(float(air_to_vacuum(6562.80)), 2)  # H-alpha
    6564.61
    """
    air = np.asarray(wavelength, dtype=np.float64)
    s2 = (1e4 / air) ** 2
    n = (1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2)
         + 1.599740894897e-4 / (38.92568793293 - s2))
    vac = air * n
    for _ in range(2):
        vac = vac + (air - vacuum_to_air(vac)) * n
    return np.where(air >= AIR_VACUUM_LIMIT, vac, air)


def to_rest_frame(wavelength: Any, z: float) -> np.ndarray:
    """Rest-frame wavelength ``wavelength / (1 + z)``."""
    z = float(z)
    if not math.isfinite(z) or z <= -1:
        raise ValueError(f"redshift must be finite and > -1, got {z}")
    return np.asarray(wavelength, dtype=np.float64) / (1.0 + z)
