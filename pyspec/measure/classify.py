"""Emission-line classification: BPT classes, H II regions, velocity split.

Demarcations in the [N II]-BPT diagram (x = log10([N II] 6583 / H-alpha),
y = log10([O III] 5007 / H-beta)):

* Kauffmann et al. 2003, MNRAS 346, 1055, eq. 1 (empirical upper bound of
  star-forming galaxies): ``y = 0.61 / (x - 0.05) + 1.3`` for x < 0.05.
* Kewley et al. 2001, ApJ 556, 121, eq. 5 (theoretical maximum starburst):
  ``y = 0.61 / (x - 0.47) + 1.19`` for x < 0.47.
* Schawinski et al. 2007, MNRAS 382, 1415, eq. 2 (Seyfert / LINER division
  above the Kewley line): ``y = 1.05 x + 0.45``.

Classes: star-forming below the Kauffmann curve (and x < 0.05); composite
between the two curves; above the Kewley curve (or x >= 0.47) Seyfert when
above the Schawinski line, else LINER; ``unclassified`` when a ratio is NaN.

H II region criterion (issue 7): ``log([S II]/H-alpha) >= 0.63
log([N II]/H-alpha) - 0.55`` with [S II] = 6716 + 6731.

Velocity split: ``|c z| < 500 km/s`` is Galactic, otherwise extragalactic.

Broad-line objects (a broad H-alpha, H-beta or Mg II component,
:mod:`pyspec.measure.lines.broad`) have no meaningful narrow-line ratios;
:func:`pyspec.measure.measure` labels them :data:`BROAD_LINE_CLASS` instead of
a BPT class and never calls them H II regions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C_KMS = 299792.458

BPT_CLASSES = ("star-forming", "composite", "seyfert", "liner", "unclassified")
#: The label that replaces the BPT class of a broad-line object.
BROAD_LINE_CLASS = "broad-line"

__all__ = ["BPT_CLASSES", "BROAD_LINE_CLASS", "kauffmann03", "kewley01", "schawinski07",
           "bpt_class", "hii_region", "velocity_class"]


def kauffmann03(log_nii_ha: Any) -> np.ndarray:
    """Kauffmann et al. (2003) curve y(x); NaN for x >= 0.05."""
    x = np.asarray(log_nii_ha, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < 0.05, 0.61 / (x - 0.05) + 1.3, np.nan)


def kewley01(log_nii_ha: Any) -> np.ndarray:
    """Kewley et al. (2001) maximum-starburst curve y(x); NaN for x >= 0.47."""
    x = np.asarray(log_nii_ha, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < 0.47, 0.61 / (x - 0.47) + 1.19, np.nan)


def schawinski07(log_nii_ha: Any) -> np.ndarray:
    """Schawinski et al. (2007) Seyfert/LINER line y = 1.05 x + 0.45."""
    return 1.05 * np.asarray(log_nii_ha, dtype=np.float64) + 0.45


def bpt_class(log_nii_ha: Any, log_oiii_hb: Any) -> np.ndarray:
    """BPT class of each object from its log line ratios.

    Parameters
    ----------
    log_nii_ha : float or array of shape (n,)
        log10([N II] 6583 / H-alpha).
    log_oiii_hb : float or array of shape (n,)
        log10([O III] 5007 / H-beta).

    Returns
    -------
    ndarray of str (shape of the broadcast inputs; 0-d for scalars)
        One of :data:`BPT_CLASSES`.

    Examples
    --------
    >>> bpt_class([-0.6, -0.2, 0.2, 0.2], [-0.3, 0.0, 1.0, 0.0]).tolist()
    ['star-forming', 'composite', 'seyfert', 'liner']
    """
    x, y = np.broadcast_arrays(np.asarray(log_nii_ha, dtype=np.float64),
                               np.asarray(log_oiii_hb, dtype=np.float64))
    ok = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        below_k03 = (x < 0.05) & (y < kauffmann03(x))
        below_k01 = (x < 0.47) & (y < kewley01(x))
        above_s07 = y > schawinski07(x)
    out = np.full(x.shape, "unclassified", dtype="<U12")
    agn = ok & ~below_k01
    out[agn & above_s07] = "seyfert"
    out[agn & ~above_s07] = "liner"
    out[ok & below_k01 & ~below_k03] = "composite"
    out[ok & below_k03] = "star-forming"
    return out


def hii_region(log_sii_ha: Any, log_nii_ha: Any) -> np.ndarray:
    """H II region criterion log([S II]/Ha) >= 0.63 log([N II]/Ha) - 0.55.

    Returns a bool array (False where either ratio is NaN).

    Examples
    --------
    >>> hii_region([-0.5, -1.2], [-0.5, -0.5]).tolist()
    [True, False]
    """
    s, n = np.broadcast_arrays(np.asarray(log_sii_ha, dtype=np.float64),
                               np.asarray(log_nii_ha, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.isfinite(s) & np.isfinite(n) & (s >= 0.63 * n - 0.55)


def velocity_class(z: Any, split_kms: float = 500.0) -> np.ndarray:
    """'galactic' when |c z| < split_kms (500 km/s), 'extragalactic' above, else 'unknown'.

    Examples
    --------
    >>> velocity_class([0.0001, 0.01, float("nan")]).tolist()
    ['galactic', 'extragalactic', 'unknown']
    """
    v = np.abs(np.asarray(z, dtype=np.float64)) * C_KMS
    out = np.full(v.shape, "unknown", dtype="<U13")
    with np.errstate(invalid="ignore"):
        out[np.isfinite(v) & (v < split_kms)] = "galactic"
        out[np.isfinite(v) & (v >= split_kms)] = "extragalactic"
    return out
