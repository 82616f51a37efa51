"""Line fluxes and equivalent widths at a given redshift, direct or by Gaussian fits."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec.measure.classify import (
    bpt_class,
)
from pyspec.measure.lines import _kernels
from pyspec.measure.lines._catalogue import (
    C_KMS,
    FLUX_LINES,
)
from pyspec.measure.lines._columns import LINE_COLUMN_INFO, rows_table
from pyspec.measure.lines._core import (
    _analyse,
    _Analysis,
    _check_positive,
    _detect,
    _redshift_one,
)
from pyspec.measure.lines._input import Prepared, as_prepared

# ---------------------------------------------------------------- line fluxes


# Lines fitted together (shared velocity shift and width in km/s): name of the
# output line for each component and its rest wavelength.  The [O II] doublet
# is fitted as two components and reported as their sum.
_GAUSS_GROUPS: tuple[tuple[tuple[str, float], ...], ...] = (
    (("OII_3727", 3727.09), ("OII_3727", 3729.88)),
    (("Hb", 4862.68),),
    (("OIII_4959", 4960.30), ("OIII_5007", 5008.24)),
    (("NII_6548", 6549.86), ("Ha", 6564.61), ("NII_6583", 6585.27)),
    (("SII_6716", 6718.29), ("SII_6731", 6732.67)),
)
_SIGMA_KMS_BOUNDS = (20.0, 1000.0)


def _gaussian_group_fit(wave, resid, ivar, z, half_width_kms, comps):
    """Joint Gaussian fit of one line group to the residual, errors from ivar.

    Model: sum_j A_j exp(-(x - m_j)^2 / 2 s_j^2) with m_j = rest_j (1+z)
    (1 + dv/c) and s_j = m_j sigma_v / c: free amplitudes, one velocity shift
    dv (|dv| <= half_width_kms / 2) and one width sigma_v.  Fluxes are
    A_j s_j sqrt(2 pi), summed per output line, with errors from the
    covariance (scipy curve_fit, absolute_sigma=True).

    Returns (fluxes, errors, note) with fluxes/errors dicts by output name.
    """
    from scipy.optimize import curve_fit

    names = [n for n, _ in comps]
    mu0 = np.array([r for _, r in comps]) * (1.0 + z)
    pad = 1.5 * mu0 * half_width_kms / C_KMS
    sel = (wave >= mu0.min() - pad.min()) & (wave <= mu0.max() + pad.max()) & (ivar > 0)
    k = len(comps)
    nan = ({n: np.nan for n in names}, {n: np.nan for n in names})
    if sel.sum() < k + 5:
        return (*nan, "too few good pixels for a Gaussian fit")
    x, y, sd = wave[sel], resid[sel], 1.0 / np.sqrt(ivar[sel])

    def model(x, *p):
        amps, dv, sv = np.asarray(p[:k]), p[k], p[k + 1]
        m = mu0 * (1.0 + dv / C_KMS)
        sg = m * sv / C_KMS
        return np.sum(amps[:, None] * np.exp(-0.5 * ((x[None, :] - m[:, None])
                                                     / sg[:, None]) ** 2), axis=0)

    a0 = [float(y[np.argmin(np.abs(x - m))]) for m in mu0]
    p0 = [*(max(v, 1e-3 * (np.abs(y).max() + 1e-30)) for v in a0), 0.0, 100.0]
    dvmax = 0.5 * half_width_kms
    lo = [-np.inf] * k + [-dvmax, _SIGMA_KMS_BOUNDS[0]]
    hi = [np.inf] * k + [dvmax, _SIGMA_KMS_BOUNDS[1]]
    try:
        p, cov = curve_fit(model, x, y, p0=p0, sigma=sd, absolute_sigma=True, bounds=(lo, hi))
    except (RuntimeError, ValueError) as exc:
        return (*nan, f"Gaussian fit failed: {exc}")
    if not np.all(np.isfinite(cov)):
        return (*nan, "Gaussian fit: undefined covariance")
    amps, dv, sv = p[:k], p[k], p[k + 1]
    root2pi = np.sqrt(2.0 * np.pi)
    m = mu0 * (1.0 + dv / C_KMS)
    sg = m * sv / C_KMS
    fluxes, errors = {}, {}
    for name in dict.fromkeys(names):
        jac = np.zeros(k + 2)
        total = 0.0
        for j in range(k):
            if names[j] != name:
                continue
            total += amps[j] * sg[j] * root2pi
            jac[j] = sg[j] * root2pi
            jac[k] += amps[j] * root2pi * mu0[j] * sv / C_KMS**2
            jac[k + 1] += amps[j] * root2pi * m[j] / C_KMS
        fluxes[name] = float(total)
        errors[name] = float(np.sqrt(max(jac @ cov @ jac, 0.0)))
    return fluxes, errors, None


def _fluxes_one(a: _Analysis, z: float, half_width_kms: float, method: str) -> dict:
    out: dict[str, Any] = {}
    reason = a.item.error or (a.reason if a.reason and "usable" in a.reason else None)
    if reason is None and not np.isfinite(z):
        reason = "no redshift"
    names = list(FLUX_LINES)
    if reason is not None:
        for n in names:
            for col in ("flux", "flux_err", "ew", "ew_err"):
                out[f"{col}_{n}"] = np.nan
        out["flux_reason"] = reason
        return out
    centres = np.array([FLUX_LINES[n][0] for n in names]) * (1.0 + z)
    hw = centres * half_width_kms / C_KMS + np.array([FLUX_LINES[n][1] for n in names]) * (1 + z)
    # The running median over a window holding H-alpha and [N II] is pulled up
    # by the lines themselves (2-4 % of the flux in tests); re-estimate it from
    # the pixels outside all line windows before integrating.
    w = a.item.wavelength
    in_line = np.zeros(w.size, bool)
    for c, h in zip(centres, hw, strict=True):
        lo, hi = np.searchsorted(w, [c - h, c + h])
        in_line[lo:hi] = True
    cont_lf = _kernels.median_continuum(w, a.item.flux, a.item.good & ~in_line,
                                        0.5 * a.extra.get("window", 150.0))
    resid = np.where(a.good & np.isfinite(cont_lf), a.item.flux - np.nan_to_num(cont_lf), 0.0)
    flux, err, cont, _ = _kernels.integrate_lines(w, resid, cont_lf, a.item.ivar, centres, hw,
                                                  0.8)
    notes = []
    if method == "gaussian":
        for comps in _GAUSS_GROUPS:
            idx = [names.index(n) for n in dict.fromkeys(c for c, _ in comps)]
            if not any(np.isfinite(cont[i]) for i in idx):
                continue
            fl, er, why = _gaussian_group_fit(w, resid, a.item.ivar, z, half_width_kms, comps)
            for i in idx:
                if np.isfinite(cont[i]):
                    flux[i], err[i] = fl[names[i]], er[names[i]]
            if why:
                notes.append(f"{'+'.join(names[i] for i in idx)}: {why}")
    # rest-frame equivalent widths: the observed EW is stretched by (1 + z)
    with np.errstate(divide="ignore", invalid="ignore"):
        ew = np.where(cont > 0, flux / cont, np.nan) / (1.0 + z)
        ew_err = np.where(cont > 0, err / cont, np.nan) / (1.0 + z)
    for i, n in enumerate(names):
        out[f"flux_{n}"] = flux[i]
        out[f"flux_err_{n}"] = err[i]
        out[f"ew_{n}"] = ew[i]
        out[f"ew_err_{n}"] = ew_err[i]
    missing = [n for i, n in enumerate(names) if not np.isfinite(flux[i])]
    if missing:
        notes.append("not covered: " + ",".join(missing))
    out["flux_reason"] = "; ".join(notes) if notes else None
    return out


def _ratio_columns(row: dict, snr_min: float) -> dict:
    """log10 line ratios for BPT; NaN unless both lines are detected at snr_min."""
    def det(n):
        f, e = row[f"flux_{n}"], row[f"flux_err_{n}"]
        return np.isfinite(f) and np.isfinite(e) and e > 0 and f / e >= snr_min

    def ratio(a, b):
        if all(det(n) for n in a) and all(det(n) for n in b):
            return float(np.log10(sum(row[f"flux_{n}"] for n in a)
                                  / sum(row[f"flux_{n}"] for n in b)))
        return np.nan

    return {"log_nii_ha": ratio(["NII_6583"], ["Ha"]),
            "log_oiii_hb": ratio(["OIII_5007"], ["Hb"]),
            "log_sii_ha": ratio(["SII_6716", "SII_6731"], ["Ha"])}


def line_fluxes(spectra: Any, z: Any = None, *, method: str = "direct",
                half_width_kms: float = 300.0, window: float = 150.0, snr_min: float = 3.0):
    """Fluxes and equivalent widths of :data:`FLUX_LINES` at redshift z.

    ``direct`` integrates ``flux - pseudo-continuum`` over ``centre*(1+z) +-
    half_width_kms`` (300 km/s: about 3 sigma of an unresolved line at
    LAMOST/SDSS resolution, and half the H-alpha-[N II] spacing); ``gaussian``
    fits each group of neighbouring lines (H-alpha + [N II], [S II], [O III],
    [O II] doublet, H-beta) jointly with one velocity shift and one width, so
    blends are split, with errors from ivar (scipy ``curve_fit``, absolute
    sigma).  In both cases the pseudo-continuum is re-estimated from pixels
    outside all line windows.  Equivalent widths are rest-frame: flux over
    the mean pseudo-continuum in the window, divided by (1 + z), positive for
    emission.  Also gives the log ratios for the BPT diagram (lines detected
    at ``snr_min``) and the BPT class.

    Parameters
    ----------
    spectra : Spectrum, (wavelength, flux, ivar) or a batch
    z : float, array of shape (n_spectra,), or None
        Redshift of each spectrum; None uses the CL redshift (:func:`redshift`)
        and falls back to ``meta['z']``.
    method : {"direct", "gaussian"}

    Returns
    -------
    dict for one spectrum, astropy.table.Table for a batch
        One row per spectrum: ``flux_<line>``, ``flux_err_<line>`` (input flux
        unit times Angstrom), ``ew_<line>``, ``ew_err_<line>`` (rest-frame
        Angstrom),
        ``log_nii_ha``, ``log_oiii_hb``, ``log_sii_ha``, ``bpt_class``,
        ``flux_reason``.
    """
    if method not in ("direct", "gaussian"):
        raise ValueError(f"method must be 'direct' or 'gaussian', got {method!r}")
    half_width_kms = _check_positive("half_width_kms", half_width_kms)
    window = _check_positive("window", window)
    items, single = as_prepared(spectra)
    if single and items[0].error is not None:
        raise ValueError(items[0].error)
    zs, analyses = _resolve_z(items, z, window)
    rows = []
    for it, zi, a in zip(items, zs, analyses, strict=True):
        # the line search's analysis when z came from it: each spectrum is analysed once
        a = _analyse(it, window) if a is None else a
        rows.append(_flux_row(a, zi, half_width_kms, method, snr_min))
    return rows[0] if single else rows_table(rows, LINE_COLUMN_INFO)


def _flux_row(a: _Analysis, z: float, half_width_kms: float, method: str,
              snr_min: float) -> dict:
    row = _fluxes_one(a, z, half_width_kms, method)
    row.update(_ratio_columns(row, snr_min))
    row["bpt_class"] = str(bpt_class(row["log_nii_ha"], row["log_oiii_hb"]))
    return row


def header_z(meta: dict) -> float:
    """The pipeline redshift ``meta['z']`` when usable (finite, > -0.1), else NaN."""
    try:
        z = float(meta.get("z"))
    except (TypeError, ValueError):
        return np.nan
    return z if np.isfinite(z) and z > -0.1 else np.nan


def _resolve_z(items: list[Prepared], z: Any, window: float
               ) -> tuple[np.ndarray, list[_Analysis | None]]:
    """The redshift of each spectrum and, when the line search found it (``z`` None), the
    analysis it made (the line fluxes reuse it: the detection leaves the continuum and
    residual that they read unchanged)."""
    n = len(items)
    analyses: list[_Analysis | None] = [None] * n
    if z is None:
        out = np.full(n, np.nan)
        for i, it in enumerate(items):
            if it.error is not None:
                continue
            a = analyses[i] = _analyse(it, window)
            _detect(a, 0.9, 3.0, 2, 2, 40)
            r = _redshift_one(a, 0.001, 3, (-0.01, 1.5))
            out[i] = r.z if r.ok else header_z(it.meta)
        return out, analyses
    zs = np.asarray(z, dtype=np.float64)
    if zs.ndim == 0:
        return np.full(n, float(zs)), analyses
    if zs.shape != (n,):
        raise ValueError(f"z has shape {zs.shape}, expected ({n},) for {n} spectra")
    return zs, analyses

