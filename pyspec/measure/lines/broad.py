"""Broad permitted lines (type 1 AGN): FWHM of a broad H-alpha, H-beta or Mg II component.

A broad-line region gives permitted lines thousands of km/s wide under the
narrow lines.  The narrow-line windows of :func:`pyspec.measure.lines.line_fluxes`
(+-300 km/s) then sample only the top of the broad H-alpha or H-beta, so the
BPT ratios mean nothing: broad-line objects must stay out of the BPT and H II
classification and be labelled instead.

For each line at the adopted redshift, the continuum is a straight line
through the medians of two side bands, and the residual in the fit window is
fitted twice (scipy ``curve_fit``, errors from ivar): narrow lines only (the
[N II] doublet and H-alpha, or H-beta and [O III], sharing one width <= 400
km/s and one shift), and narrow lines plus one broad Gaussian (shift within
+-3000 km/s, sigma 500-5000 km/s).  The broad component is *detected* when

* its FWHM is at least ``fwhm_min`` (1200 km/s; narrow lines of galaxies stay
  below ~500 km/s, broad lines of Seyfert 1s and quasars exceed 1000-2000),
* its flux is at least ``snr_min`` (5) times its error, and
* its width is not at the upper bound (then it models the continuum), and
* it lowers chi-square by at least ``snr_min**2``,

with errors and chi-square scaled by the reduced chi-square of the fit when
it exceeds 1 (continuum structure the straight line misses, such as stellar
absorption lines or Fe II, must not pass for a broad line).  Callers apply it
to extragalactic spectra only (:func:`pyspec.measure.measure`).

The fits run only when the flux outside the narrow-line cores (+-500 km/s)
exceeds ``snr_min`` times its error: a broad line must put flux there.

Rest windows (vacuum Angstrom):

=======  ===========  =========================
line     fit window   continuum side bands
=======  ===========  =========================
H-alpha  6440-6690    6350-6420, 6780-6850
H-beta   4750-5050    4650-4720, 5080-5150
Mg II    2700-2900    2650-2690, 2910-2950
=======  ===========  =========================
"""

from __future__ import annotations

import numpy as np

__all__ = ["BROAD_LINES", "broad_line_fwhm"]

C_KMS = 299792.458

#: line -> (rest centre, fit window, side bands, narrow components (rest))
BROAD_LINES: dict[str, tuple] = {
    "Ha": (6564.61, (6440.0, 6690.0), ((6350.0, 6420.0), (6780.0, 6850.0)),
           (6549.86, 6564.61, 6585.27)),
    "Hb": (4862.68, (4750.0, 5050.0), ((4650.0, 4720.0), (5080.0, 5150.0)),
           (4862.68, 4960.30, 5008.24)),
    "MgII": (2799.49, (2700.0, 2900.0), ((2650.0, 2690.0), (2910.0, 2950.0)), ()),
}
_SIGMA_MAX = 5000.0  # km/s: FWHM 11800 km/s, half the H-alpha fit window
_SIG = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _gauss(x, amp, mu, sigma):
    return amp * np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _fit_one(wave, flux, ivar, z, centre, window, bands, narrow, fwhm_min, snr_min):
    from scipy.optimize import curve_fit

    s = 1.0 + z
    good = ivar > 0
    side = []
    for lo, hi in bands:
        sel = good & (wave >= lo * s) & (wave <= hi * s)
        if sel.sum() < 5:
            return None
        side.append((np.median(wave[sel]), np.median(flux[sel])))
    (x0, y0), (x1, y1) = side
    sel = good & (wave >= window[0] * s) & (wave <= window[1] * s)
    if sel.sum() < 20:
        return None
    x = wave[sel]
    y = flux[sel] - (y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    sd = 1.0 / np.sqrt(ivar[sel])
    nar = np.asarray(narrow, float) * s
    k = nar.size
    # a broad line puts flux outside the narrow cores (+-500 km/s); without a
    # significant excess there, no fit can find one (and none is run)
    wings = np.ones(x.size, bool)
    for m0 in nar:
        wings &= np.abs(x - m0) > m0 * 500.0 / C_KMS
    if wings.sum() < 10 or y[wings].sum() < snr_min * np.sqrt(np.sum(sd[wings] ** 2)):
        return {"fwhm": np.nan, "snr": 0.0, "detected": False}

    def narrow_model(x, *p):
        dv, sv = p[k], p[k + 1]
        out = np.zeros_like(x)
        for j in range(k):
            m = nar[j] * (1.0 + dv / C_KMS)
            out += _gauss(x, p[j], m, m * sv / C_KMS)
        return out

    def full_model(x, *p):
        m = centre * s * (1.0 + p[k + 2] / C_KMS)
        return narrow_model(x, *p[:k + 2]) + _gauss(x, p[k + 4], m, m * p[k + 3] / C_KMS)

    amp0 = max(float(np.max(y)), 1e-3 * float(np.max(np.abs(y))) + 1e-30)
    pn = [amp0] * k + [0.0, 100.0]
    lo_n = [0.0] * k + [-300.0, 20.0]
    hi_n = [np.inf] * k + [300.0, 400.0]
    pf = pn + [0.0, 1500.0, 0.3 * amp0]
    lo_f = lo_n + [-3000.0, 500.0, 0.0]
    hi_f = hi_n + [3000.0, _SIGMA_MAX, np.inf]
    try:
        if k:
            pn_fit, _ = curve_fit(narrow_model, x, y, p0=pn, sigma=sd, absolute_sigma=True,
                                  bounds=(lo_n, hi_n))
            chi_n = float(np.sum(((y - narrow_model(x, *pn_fit)) / sd) ** 2))
        else:
            chi_n = float(np.sum((y / sd) ** 2))
        pf_fit, cov = curve_fit(full_model, x, y, p0=pf, sigma=sd, absolute_sigma=True,
                                bounds=(lo_f, hi_f))
    except (RuntimeError, ValueError):
        return None
    chi_f = float(np.sum(((y - full_model(x, *pf_fit)) / sd) ** 2))
    # continuum structure the straight line does not follow (absorption lines,
    # Fe II blends) shows as chi2/dof > 1: scale the errors by it, so only a
    # component that stands out of that structure counts
    scale = max(chi_f / max(x.size - len(pf), 1), 1.0)
    amp, sv = pf_fit[k + 4], pf_fit[k + 3]
    m = centre * s * (1.0 + pf_fit[k + 2] / C_KMS)
    root2pi = np.sqrt(2.0 * np.pi)
    flux_b = amp * m * sv / C_KMS * root2pi
    # flux error from the amplitude and width errors (their covariance kept)
    jac = np.array([m * sv / C_KMS * root2pi, amp * m / C_KMS * root2pi])
    sub = cov[np.ix_([k + 4, k + 3], [k + 4, k + 3])]
    err_b = float(np.sqrt(max(jac @ sub @ jac, 0.0))) if np.all(np.isfinite(sub)) else np.inf
    fwhm = _SIG * sv
    err_b *= np.sqrt(scale)
    snr = flux_b / err_b if err_b > 0 else 0.0
    # a width at its upper bound is the fit following the continuum, not a line
    detected = bool(fwhm >= fwhm_min and sv < 0.95 * _SIGMA_MAX and snr >= snr_min
                    and (chi_n - chi_f) / scale >= snr_min**2)
    return {"fwhm": float(fwhm), "snr": float(snr), "detected": detected}


def broad_line_fwhm(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray, z: float, *,
                    fwhm_min: float = 1200.0, snr_min: float = 5.0) -> dict:
    """Broad components of H-alpha, H-beta and Mg II at redshift z (one spectrum).

    Returns
    -------
    dict
        ``fwhm_broad_<line>`` (km/s; NaN when the line is not covered, the
        fit failed or no broad component was detected), ``broad_lines``
        (comma-separated names of the detected lines) and ``broad_line``
        (bool: any detected).
    """
    out: dict = {}
    found = []
    for name, (centre, window, bands, narrow) in BROAD_LINES.items():
        res = None
        if np.isfinite(z):
            res = _fit_one(wavelength, flux, ivar, z, centre, window, bands, narrow,
                           fwhm_min, snr_min)
        out[f"fwhm_broad_{name}"] = res["fwhm"] if res and res["detected"] else np.nan
        if res and res["detected"]:
            found.append(name)
    out["broad_lines"] = ",".join(found)
    out["broad_line"] = bool(found)
    return out
