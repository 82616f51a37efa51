"""Emission lines, line-combination redshifts, line fluxes and BPT classes.

This module measures the candidates that a similarity search finds, following
the emission-line galaxy study: a pseudo-continuum by running median, a search
for strong emission peaks in the residual, a line-combination redshift
("CL"), the redshift transferred from the nearest template ("RT") with the
study's confirmation rule, and line fluxes / equivalent widths feeding the
BPT, H II-region and velocity classifications (:mod:`pyspec.measure.classify`).

Rest wavelengths (vacuum, Angstrom)
-----------------------------------
The values are those of the SDSS spectroscopic pipeline line list (idlspec2d
``emlines.par``, as tabulated on the SDSS DR7+ "spectral lines" page), which
derive from the NIST Atomic Spectra Database air wavelengths converted to
vacuum:

==============  ===========
line            vacuum (A)
==============  ===========
[O II] 3726     3727.09
[O II] 3729     3729.88
H-beta          4862.68
[O III] 4959    4960.30
[O III] 5007    5008.24
[N II] 6548     6549.86
H-alpha         6564.61
[N II] 6583     6585.27
[S II] 6716     6718.29
[S II] 6731     6732.67
C IV 1549       1549.48
C III] 1909     1908.73
Mg II 2799      2799.49
[Ne V] 3426     3426.84
[Ne III] 3869   3869.86
H-delta         4102.89
H-gamma         4341.68
==============  ===========

Spectra flagged ``meta['vacuum'] is False`` are converted from air to vacuum
before matching (Morton 2000); LAMOST and SDSS spectra are already vacuum.

Every function takes one spectrum or a batch (see
:mod:`pyspec.measure.lines._input`); a spectrum without usable lines gives NaN with a
reason, never an exception that stops a batch.
"""


from __future__ import annotations

from pyspec.measure.classify import (
    BPT_CLASSES,
    bpt_class,
    hii_region,
    kauffmann03,
    kewley01,
    schawinski07,
    velocity_class,
)
from pyspec.measure.lines._catalogue import C_KMS, FLUX_LINES, REST_LINES, RedshiftResult
from pyspec.measure.lines._core import (  # noqa: F401  (the private ones: pyspec.measure's driver)
    _analyse,
    _check_detect_args,
    _check_positive,
    _detect,
    _redshift_one,
    confirm_redshift,
    find_lines,
    pseudo_continuum,
    redshift,
    redshift_from_lines,
    transfer_redshift,
)
from pyspec.measure.lines._fluxes import _flux_row, header_z, line_fluxes  # noqa: F401
from pyspec.measure.lines._sky import SKY_REGIONS, sky_mask
from pyspec.measure.lines.auto import best_redshift
from pyspec.spectra import air_to_vacuum, vacuum_to_air

__all__ = [
    "REST_LINES", "FLUX_LINES", "RedshiftResult", "pseudo_continuum", "find_lines",
    "redshift", "redshift_from_lines", "transfer_redshift", "confirm_redshift",
    "line_fluxes", "bpt_class", "hii_region", "velocity_class", "kauffmann03", "kewley01",
    "schawinski07", "BPT_CLASSES", "air_to_vacuum", "vacuum_to_air", "C_KMS",
    "best_redshift", "SKY_REGIONS", "sky_mask",
]
