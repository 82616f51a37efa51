"""The line list and the result type of the redshift measurements (no computation here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

C_KMS = 299792.458
"""Speed of light in km/s."""

#: Rest vacuum wavelengths (Angstrom) used for the CL redshift (see module docstring).
REST_LINES: dict[str, float] = {
    "OII_3727": 3727.09,
    "OII_3729": 3729.88,
    "Hb": 4862.68,
    "OIII_4959": 4960.30,
    "OIII_5007": 5008.24,
    "NII_6548": 6549.86,
    "Ha": 6564.61,
    "NII_6583": 6585.27,
    "SII_6716": 6718.29,
    "SII_6731": 6732.67,
    # narrow lines that keep three lines in reach above z ~ 0.8, and the
    # quasar lines (broad in type 1 objects; a broad line counts only when its
    # centroid meets the strict tolerance like every other line)
    "CIV_1549": 1549.48,
    "CIII_1909": 1908.73,
    "MgII_2799": 2799.49,
    "NeV_3426": 3426.84,
    "NeIII_3869": 3869.86,
    "Hd": 4102.89,
    "Hg": 4341.68,
}

#: Lines whose flux is measured: name -> (centre, extra half-width) in vacuum Angstrom.
#: The [O II] doublet is not resolved at R ~ 1800-2000 and is measured as one blend.
FLUX_LINES: dict[str, tuple[float, float]] = {
    "OII_3727": (0.5 * (3727.09 + 3729.88), 0.5 * (3729.88 - 3727.09)),
    "Hb": (4862.68, 0.0),
    "OIII_4959": (4960.30, 0.0),
    "OIII_5007": (5008.24, 0.0),
    "NII_6548": (6549.86, 0.0),
    "Ha": (6564.61, 0.0),
    "NII_6583": (6585.27, 0.0),
    "SII_6716": (6718.29, 0.0),
    "SII_6731": (6732.67, 0.0),
}

# A weaker member counts towards a CL redshift only when its partner is matched
# too, or when the partner falls outside the usable pixels.  This encodes fixed
# atomic ratios ([O III] 5007/4959 = 3, [N II] 6583/6548 = 3) and that [N II]
# and [S II] sit next to H-alpha in every emission-line galaxy, and it removes
# most chance coincidences of noise peaks.
# The same holds down the Balmer series (H-delta < H-gamma < H-beta in every
# nebula) and for [Ne V] 3426, weaker than [Ne III] 3869 in AGN.
_PARTNER = {"OIII_4959": "OIII_5007", "NII_6548": "NII_6583", "NII_6583": "Ha",
            "SII_6716": "Ha", "SII_6731": "Ha", "Hd": "Hg", "Hg": "Hb",
            "NeV_3426": "NeIII_3869"}


def _n_features(keep) -> int:
    """Matched lines, with the two [O II] members counted once.

    The doublet is one feature at R ~ 2000: two noise peaks 3-6 A apart would
    otherwise count as two independent agreeing lines.
    """
    names = {_REST_NAMES[c] for _, c in keep}
    return len(keep) - int({"OII_3727", "OII_3729"} <= names)

_REST_NAMES = tuple(REST_LINES)
_REST_WAVES = np.array([REST_LINES[k] for k in _REST_NAMES])


@dataclass(frozen=True)
class RedshiftResult:
    """Line-combination (CL) redshift of one spectrum.

    Attributes
    ----------
    z : float
        Mean of the per-line redshifts, NaN when fewer than ``min_lines`` agree.
    z_err : float
        Scatter (sample standard deviation) of the per-line redshifts.
    n_lines : int
        Number of detected lines that agree.
    lines : tuple of str
        Names (keys of :data:`REST_LINES`) of the lines used.
    observed : tuple of float
        Observed (vacuum) centres of those lines, Angstrom.
    reason : str or None
        Why z is NaN (None when z was found).
    guided : bool
        True when lines of the guided second pass (``confirm_nsigma``) were
        needed to reach ``min_lines``.
    method : str
        ``"CL"`` (emission-line combination), ``"OIII-doublet"`` ([O III]
        4959/5007 pair, :mod:`pyspec.measure.lines.doublet`), ``"xcorr-star"`` (radial
        velocity, z = v/c) or ``"xcorr-galaxy"`` (template cross-correlation);
        see :func:`pyspec.measure.lines.best_redshift`.
    quality : str
        ``"good"``, ``"uncertain"`` or ``"failed"`` (see :func:`best_redshift`);
        empty for a plain CL result.
    template : str
        Best cross-correlation template (file stem), when one was used.
    r_td : float
        Tonry & Davis r of the cross-correlation peak (NaN for CL).
    """

    z: float
    z_err: float
    n_lines: int
    lines: tuple[str, ...] = ()
    observed: tuple[float, ...] = ()
    reason: str | None = None
    guided: bool = False
    method: str = "CL"
    quality: str = ""
    template: str = ""
    r_td: float = np.nan

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.z))


def _failed(reason: str, n_lines: int = 0) -> RedshiftResult:
    return RedshiftResult(np.nan, np.nan, n_lines, (), (), reason)


