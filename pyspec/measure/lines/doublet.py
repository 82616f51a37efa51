"""[O III] 4959/5007 doublet redshift: two lines whose ratio is fixed by atomic physics.

The strict CL redshift needs three agreeing lines.  A quasar or Seyfert at
low S/N often shows only [O III] 5007 clearly, with its broad Balmer lines
lost in the noise.  Two peaks alone are no redshift: any pair of noise peaks
fits some pair of rest lines.  The [O III] doublet is an exception, because
both members come from the same upper level:

* their wavelength ratio is fixed (5008.24 / 4960.30), so both lines give
  the same z within the CL tolerance;
* their flux ratio is fixed by the transition probabilities, 5007 / 4959 =
  2.98 (Storey & Zeippen 2000), in every nebula at every density, and both
  have the same profile, so the peak ratio is the flux ratio.

The pair is accepted only where that ratio can be tested: 5007 must be
strong enough (``2.98 * confirm_nsigma``) that 4959 is expected above the
detection threshold, 4959 must be detected, and its peak must agree with
5007 / 2.98 within ``_RATIO_NSIGMA`` times its noise.  The result is always
a two-line solution; :func:`pyspec.measure.lines.auto.combine` uses it only when
the CL search fails and no template matches clearly (quality ``uncertain``
unless a cross-correlation agrees).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OIII_RATIO", "oiii_doublet_redshift"]

#: [O III] 5007 / 4959 flux ratio (Storey & Zeippen 2000, MNRAS 312, 813).
OIII_RATIO = 2.98
# how far (in units of the 4959 pixel noise) its peak may lie from 5007 / 2.98
_RATIO_NSIGMA = 2.0


def oiii_doublet_redshift(a: Any, tol: float, z_range: tuple[float, float],
                          confirm_nsigma: float | None):
    """Redshift from the [O III] doublet of an analysed spectrum (see module docstring).

    Parameters
    ----------
    a : pyspec.measure.lines._Analysis
        Spectrum after :func:`pyspec.measure.lines._detect` (its settings are reused).
    tol : float
        Agreement tolerance in z between the two members.
    z_range : (float, float)
    confirm_nsigma : float or None
        Detection threshold for 4959 (the guided-pass threshold of
        :func:`pyspec.measure.lines.redshift`); None turns the doublet search off.

    Returns
    -------
    RedshiftResult
        ``method="OIII-doublet"``, two lines; z NaN with ``reason`` when no
        pair passes.
    """
    from pyspec.measure.lines._catalogue import REST_LINES, RedshiftResult, _failed
    from pyspec.measure.lines._core import _peaks

    if a.reason is not None or "settings" not in a.extra:
        return _failed(a.reason or "spectrum not analysed")
    quantile, nsigma, min_pixels, half_window, max_lines = a.extra["settings"]
    if confirm_nsigma is None or nsigma is None:
        return _failed("doublet search needs nsigma and confirm_nsigma")
    low = _peaks(a, quantile, confirm_nsigma, min_pixels, half_window, 2 * max_lines)
    if low["peak"].size < 2:
        return _failed("fewer than two lines for an [O III] doublet")
    centre = low["centre"]
    height = a.resid[low["peak"]]
    noise = a.extra["noise"][low["peak"]]
    sig = np.where(noise > 0, height / noise, 0.0)
    w59, w07 = REST_LINES["OIII_4959"], REST_LINES["OIII_5007"]
    z59 = centre / w59 - 1.0
    z07 = centre / w07 - 1.0
    # 5007 must be strong enough that 4959 (2.98x fainter) is detectable
    strong_min = max(nsigma, OIII_RATIO * confirm_nsigma)
    best = None
    for j in np.flatnonzero((sig >= strong_min) & (z07 >= z_range[0]) & (z07 <= z_range[1])):
        for i in np.flatnonzero(np.abs(z59 - z07[j]) < tol):
            if i == j or abs(height[i] - height[j] / OIII_RATIO) > _RATIO_NSIGMA * noise[i]:
                continue
            if best is None or sig[j] > sig[best[1]]:
                best = (i, j)
    if best is None:
        return _failed("no [O III] 4959/5007 pair with the fixed 1:2.98 ratio")
    i, j = best
    zs = np.array([z59[i], z07[j]])
    return RedshiftResult(float(zs.mean()), float(zs.std(ddof=1)), 2,
                          ("OIII_4959", "OIII_5007"), (float(centre[i]), float(centre[j])),
                          None, guided=True, method="OIII-doublet")
