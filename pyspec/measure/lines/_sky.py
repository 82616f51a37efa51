"""Observed-frame regions where a spectrum's features are not the object's.

Night-sky emission lines leave subtraction residuals at fixed *observed*
wavelengths; the strongest ones pass for emission lines, and they (or the
telluric absorption bands) pull a cross-correlation towards z = 0.  The list
is in vacuum Angstrom, since LAMOST and SDSS spectra are vacuum:

==================  =================  =====================================
feature             vacuum (A)         why
==================  =================  =====================================
Hg I (street light) 4359.6             mercury lamp line, strong at LAMOST
[O I] 5577          5578.9             strongest sky line
Na D (sky)          5891.6, 5897.6     low-pressure sodium lamps + sky
[O I] 6300, 6364    6302.0, 6365.5     sky airglow
LAMOST artefact     7655-7670          a residual spike at 7660-7665 A on
                                       many spectra of some plates
O2 A band           7590-7700          telluric absorption (cross-
                                       correlation only)
O2 B band           6867-6920          telluric absorption (cross-
                                       correlation only)
==================  =================  =====================================

Line half-widths are 6 A: about three resolution elements at R ~ 1800, so a
residual with a wing is covered.  ``sky_mask`` gives the pixels to ignore; the
emission-line search ignores the sky lines and artefacts (absorption bands
fake no emission, and masking them would hide H-alpha at z ~ 0.05 and
0.16-0.17), the cross-correlation ignores the bands too.  Line fluxes are still
integrated at the object's own lines, sky or not.
"""

from __future__ import annotations

import numpy as np

#: (low, high) vacuum Angstrom of sky-line residuals and known artefacts.
SKY_REGIONS: tuple[tuple[float, float], ...] = (
    (4359.6 - 6.0, 4359.6 + 6.0),
    (5578.9 - 6.0, 5578.9 + 6.0),
    (5891.6 - 6.0, 5897.6 + 6.0),
    (6302.0 - 6.0, 6302.0 + 6.0),
    (6365.5 - 6.0, 6365.5 + 6.0),
    (7655.0, 7670.0),
)

#: Telluric absorption bands (vacuum Angstrom): no emission is faked there, but
#: they correlate with every template at z = 0.
TELLURIC_BANDS: tuple[tuple[float, float], ...] = ((6867.0, 6920.0), (7590.0, 7700.0))


def sky_mask(wavelength: np.ndarray, telluric: bool = False) -> np.ndarray:
    """True for pixels in :data:`SKY_REGIONS` (and :data:`TELLURIC_BANDS` if asked)."""
    w = np.asarray(wavelength, dtype=np.float64)
    out = np.zeros(w.shape, bool)
    for lo, hi in SKY_REGIONS + (TELLURIC_BANDS if telluric else ()):
        out |= (w >= lo) & (w <= hi)
    return out
