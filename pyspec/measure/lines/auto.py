"""One redshift for every class: emission lines first, then template cross-correlation.

:func:`best_redshift` combines the strict line-combination redshift (CL,
:func:`pyspec.measure.lines.redshift`) with the cross-correlation against real
template spectra (:mod:`pyspec.measure.lines.xcorr`):

1. When at least ``min_lines`` emission lines agree, z is the CL redshift
   (``method="CL"``).  Its quality is ``good`` with four or more lines or
   when the cross-correlation agrees within ``tol (1 + z)``, else
   ``uncertain`` (three lines of which any could be a chance peak).  A
   three-line CL solution more than 1000 km/s from a clear (r >= 5)
   stellar cross-correlation is rejected: those are spikes on a star.
2. Otherwise the best template decides: a stellar template gives a radial
   velocity (``method="xcorr-star"``, z = v/c), a galaxy template a galaxy
   redshift (``method="xcorr-galaxy"``).  Quality is ``good`` when the
   Tonry & Davis r is at least ``_R_GOOD`` (5), ``uncertain`` from
   ``_R_MIN`` (3); below that the cross-correlation peak is not
   distinguishable from noise and z is NaN (``quality="failed"``).
3. Before a star or galaxy template is adopted with less than clear
   significance (r < ``_R_GOOD``), a spectrum without a CL redshift is
   searched for the [O III] 4959/5007 doublet with its fixed 1:2.98 ratio
   (:mod:`pyspec.measure.lines.doublet`; low-S/N quasars and Seyferts where only
   [O III] stands out).  A pair found gives ``method="OIII-doublet"``:
   ``good`` when the cross-correlation agrees, else ``uncertain``.  A clear
   (r >= 5) template match always wins over the two-line solution.

``z_err`` is the CL scatter or the Tonry & Davis error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.measure.lines.doublet import oiii_doublet_redshift
from pyspec.measure.lines.xcorr import C_KMS, XcorrResult, XcorrTemplates, xcorr_redshift

__all__ = ["best_redshift"]

_R_GOOD = 5.0
_R_MIN = 3.0
_STAR_VMAX = 1000.0


def _self_id(meta: dict) -> str | None:
    f = meta.get("file")
    return Path(str(f)).name.split(".fits")[0] if f else None


def _analysed(item: Any, window: float = 150.0, quantile: float | None = 0.9,
              nsigma: float | None = 3.0, min_pixels: int = 2, half_window: int = 2,
              max_lines: int = 40, local_scatter: bool = True, **_cl_only: Any):
    """The line-search state of one spectrum (as :func:`pyspec.measure.lines.redshift` builds
    it)."""
    from pyspec.measure.lines._core import _analyse, _detect

    a = _analyse(item, window)
    _detect(a, quantile, nsigma, min_pixels, half_window, max_lines, local_scatter)
    return a


def combine(cl: Any, item: Any, templates: XcorrTemplates | None,
            z_range: tuple[float, float], tol: float, analysis: Any = None,
            confirm_nsigma: float | None = 2.0):
    """The adopted redshift of one spectrum from its CL result and a cross-correlation.

    ``analysis`` is the line-search state of the CL run (built with the
    default settings when None); the [O III] doublet search reuses it.
    """
    from pyspec.measure.lines._catalogue import RedshiftResult

    if item.error is not None:
        return replace(cl, method="none", quality="failed")
    if templates is False:  # CL only (the cross-correlation is most of the cost)
        xc = XcorrResult(np.nan, np.nan, reason="cross-correlation turned off")
    else:
        xc = xcorr_redshift(item.wavelength, item.flux, item.ivar > 0, templates=templates,
                            z_range=(max(z_range[0], -0.005), z_range[1]),
                            exclude=_self_id(item.meta))
    if cl.ok and cl.n_lines <= 3 and xc.template_class == "STAR" and xc.r_td >= _R_GOOD \
            and abs(cl.z - xc.z) * C_KMS > _STAR_VMAX:
        # three lines at a large redshift against a clear stellar match: the
        # lines are chance peaks (cosmic rays, detector spikes) on a star
        cl = RedshiftResult(np.nan, np.nan, 0, reason=f"CL z = {cl.z:.4f} from {cl.n_lines} "
                            f"lines rejected: the spectrum matches star {xc.template} "
                            f"(r = {xc.r_td:.1f})")
    if cl.ok:
        agree = xc.ok and abs(xc.z - cl.z) < tol * (1.0 + cl.z)
        quality = "good" if cl.n_lines >= 4 or agree else "uncertain"
        return replace(cl, method="CL", quality=quality,
                       template=xc.template if agree else "",
                       r_td=xc.r_td if agree else np.nan)
    why = cl.reason or "no emission-line redshift"
    if not (xc.ok and xc.r_td >= _R_GOOD):
        pair = oiii_doublet_redshift(analysis if analysis is not None else _analysed(item),
                                     tol, z_range, confirm_nsigma)
        if pair.ok:
            agree = xc.ok and abs(xc.z - pair.z) < tol * (1.0 + pair.z)
            return replace(pair, quality="good" if agree else "uncertain",
                           template=xc.template if agree else "",
                           r_td=xc.r_td if agree else np.nan)
    method = "xcorr-star" if xc.template_class == "STAR" else "xcorr-galaxy"
    if not xc.ok:
        return replace(cl, method="none", quality="failed", reason=f"{why}; {xc.reason}")
    if not xc.r_td >= _R_MIN:
        return RedshiftResult(np.nan, np.nan, 0, reason=f"{why}; cross-correlation peak "
                              f"r = {xc.r_td:.2g} below {_R_MIN:g}", method=method,
                              quality="failed", template=xc.template, r_td=xc.r_td)
    quality = "good" if xc.r_td >= _R_GOOD else "uncertain"
    return RedshiftResult(xc.z, xc.z_err, 0, method=method, quality=quality,
                          template=xc.template, r_td=xc.r_td)


def best_redshift(spectra: Any, *, templates: XcorrTemplates | None | bool = None,
                  tol: float = 0.001, z_range: tuple[float, float] = (-0.01, 1.5),
                  **kwargs: Any):
    """Redshift of any spectrum: CL for emission lines, else template cross-correlation.

    Parameters
    ----------
    spectra : Spectrum, (wavelength, flux, ivar), or a batch
    templates : XcorrTemplates, None or False
        Cross-correlation templates; default the shipped sample
        (:func:`pyspec.measure.lines.xcorr.default_templates`); False: CL only.
    tol, z_range, **kwargs
        Passed to :func:`pyspec.measure.lines.redshift` (CL settings).

    Returns
    -------
    RedshiftResult, or a list of them for a batch
        ``method``, ``quality`` and ``z_err`` say how z was found; z is NaN
        with ``reason`` when neither method is trustworthy.

    Raises
    ------
    ValueError
        Bad parameters, or an unusable single spectrum.
    """
    from pyspec.measure.lines._core import cl_redshifts
    from pyspec.measure.lines._input import as_prepared

    items, single = as_prepared(spectra)
    if single and items[0].error is not None:
        raise ValueError(items[0].error)
    confirm = kwargs.get("confirm_nsigma", 2.0)
    # one analysis per spectrum: the CL line search's, reused by the [O III] doublet search
    out = [combine(c, it, templates, z_range, tol, a, confirm)
           for it, (c, a) in zip(items, cl_redshifts(items, tol=tol, z_range=z_range, **kwargs),
                                 strict=True)]
    return out[0] if single else out
