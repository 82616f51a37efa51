"""Cool-star spectral indices: TiO/CaH/CaOH band indices, zeta, H-alpha activity.

Band indices (Reid, Hawley & Gizis 1995, AJ 110, 1838, Table 2; the PMSU
system) are the ratio of the mean flux in a molecular band to the mean flux
in a nearby pseudo-continuum window (CaH1: the mean of two windows).  The
windows, in AIR Angstrom as published, are

=======  ===========  ==========================
index    band         continuum
=======  ===========  ==========================
TiO1     6718-6723    6703-6708
TiO2     7058-7061    7043-7046
TiO3     7092-7097    7079-7084
TiO4     7130-7135    7115-7120
TiO5     7126-7135    7042-7046
CaH1     6380-6390    6345-6355 and 6410-6420
CaH2     6814-6846    7042-7046
CaH3     6960-6990    7042-7046
CaOH     6230-6240    6345-6354
=======  ===========  ==========================

They are converted to vacuum (Morton 2000) and shifted by the star's
redshift before use, since LAMOST and SDSS spectra are in vacuum.  Mean fluxes
weight each pixel by its overlap with the window; errors are propagated from
ivar.

zeta (metallicity class parameter): ``zeta = (1 - TiO5) / (1 - [TiO5]_Zsun)``
with ``[TiO5]_Zsun`` a cubic in ``CaH = CaH2 + CaH3``.  The default is the
recalibration of Lepine et al. 2013 (AJ 145, 102, eq. 4):
``0.622 - 1.906 CaH + 2.211 CaH**2 - 0.588 CaH**3``; the original Lepine,
Rich & Shara 2007 (ApJ 669, 1235, eq. 3) calibration
``-0.050 - 0.118 CaH + 0.670 CaH**2 - 0.164 CaH**3`` is available with
``zeta_calibration="lepine2007"``.  (Check: the LAMOST DR10 dM1 row in the
shared catalogue, TiO5 = 0.708241, CaH2 = 0.595941, CaH3 = 0.846592, has
zeta = 1.000423; the 2013 formula gives 1.00042.)

H-alpha activity: equivalent width over 6557.61-6571.61 A with the
continuum from 6500-6550 and 6575-6625 A (vacuum; West et al. 2011, AJ 141,
97), positive for emission.  A star is active when the continuum S/N exceeds
3 and EW > 1 A (the M-star study's rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec.measure.lines import _kernels
from pyspec.measure.lines._input import Prepared, air_to_vacuum, as_prepared

__all__ = ["BAND_INDICES", "INDEX_NAMES", "HALPHA_WINDOWS", "measure", "zeta", "halpha_activity"]

#: index -> (band, [continuum windows]) in air Angstrom (Reid et al. 1995).
BAND_INDICES: dict[str, tuple[tuple[float, float], tuple[tuple[float, float], ...]]] = {
    "tio1": ((6718.0, 6723.0), ((6703.0, 6708.0),)),
    "tio2": ((7058.0, 7061.0), ((7043.0, 7046.0),)),
    "tio3": ((7092.0, 7097.0), ((7079.0, 7084.0),)),
    "tio4": ((7130.0, 7135.0), ((7115.0, 7120.0),)),
    "tio5": ((7126.0, 7135.0), ((7042.0, 7046.0),)),
    "cah1": ((6380.0, 6390.0), ((6345.0, 6355.0), (6410.0, 6420.0))),
    "cah2": ((6814.0, 6846.0), ((7042.0, 7046.0),)),
    "cah3": ((6960.0, 6990.0), ((7042.0, 7046.0),)),
    "caoh": ((6230.0, 6240.0), ((6345.0, 6354.0),)),
}
INDEX_NAMES = tuple(BAND_INDICES)
#: Catalogue columns of the band indices: name -> (unit, description).
INDEX_COLUMN_INFO: dict[str, tuple[str | None, str]] = {
    key: value for n in INDEX_NAMES for key, value in (
        (n, ("", f"{n.upper()} band index (Reid, Hawley & Gizis 1995 windows)")),
        (f"{n}_err", ("", f"1-sigma error of {n} from ivar")))}

#: H-alpha line and continuum windows, vacuum Angstrom (West et al. 2011).
HALPHA_WINDOWS = {"line": (6557.61, 6571.61), "continuum": ((6500.0, 6550.0), (6575.0, 6625.0))}

#: zeta is calibrated on M dwarfs only; K and earlier stars have no TiO, so
#: 1 - [TiO5]_Zsun -> 0 and zeta turns into noise (91% of A stars would read as
#: metal-poor).  zeta is given when CaH2 + CaH3 < ZETA_MAX_CAH: in the PMSU
#: system CaH2 + CaH3 falls from ~2.0 (G/K) through ~1.8 (K7) to ~1.7 (M0) and
#: below, so 1.75 keeps M0 and later.
ZETA_MAX_CAH = 1.75

_ZETA_COEFFS = {
    "lepine2013": (0.622, -1.906, 2.211, -0.588),
    "lepine2007": (-0.050, -0.118, 0.670, -0.164),
}

# Fraction of a window that must have good pixels (ivar > 0).
_MIN_COVERAGE = 0.7


def _window_table() -> tuple[np.ndarray, np.ndarray, list]:
    """All windows as vacuum (lo, hi) arrays plus, per index, the window slots."""
    lo, hi, slots = [], [], []
    for name in INDEX_NAMES:
        band, conts = BAND_INDICES[name]
        ids = []
        for a, b in (band, *conts):
            ids.append(len(lo))
            lo.append(a)
            hi.append(b)
        slots.append(ids)
    return air_to_vacuum(np.array(lo)), air_to_vacuum(np.array(hi)), slots


_LO, _HI, _SLOTS = _window_table()


def zeta(tio5: Any, cah2: Any, cah3: Any, tio5_err: Any = 0.0, cah2_err: Any = 0.0,
         cah3_err: Any = 0.0, calibration: str = "lepine2013") -> tuple[np.ndarray, np.ndarray]:
    """zeta_TiO/CaH and its propagated error.

    Parameters
    ----------
    tio5, cah2, cah3 : float or arrays of shape (n,)
    tio5_err, cah2_err, cah3_err : float or arrays, 1-sigma errors
    calibration : {"lepine2013", "lepine2007"}

    Returns
    -------
    zeta, zeta_err : ndarrays (NaN where 1 - [TiO5]_Zsun <= 0)
        The error assumes independent index errors; :func:`measure` instead
        propagates from the window means, since the three indices share a
        continuum window.

    Examples
    --------
    >>> z, _ = zeta(0.708241, 0.595941, 0.846592)
    >>> round(float(z), 4)
    1.0004
    """
    if calibration not in _ZETA_COEFFS:
        raise ValueError(f"calibration must be one of {sorted(_ZETA_COEFFS)}, got {calibration!r}")
    c0, c1, c2, c3 = _ZETA_COEFFS[calibration]
    t = np.asarray(tio5, dtype=np.float64)
    cah = np.asarray(cah2, dtype=np.float64) + np.asarray(cah3, dtype=np.float64)
    tsun = c0 + c1 * cah + c2 * cah**2 + c3 * cah**3
    den = 1.0 - tsun
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(den > 0, (1.0 - t) / den, np.nan)
        dz_dt = -1.0 / den
        dz_dcah = (1.0 - t) / den**2 * (c1 + 2 * c2 * cah + 3 * c3 * cah**2)
        var_cah = np.asarray(cah2_err, dtype=np.float64) ** 2 + np.asarray(cah3_err,
                                                                           dtype=np.float64) ** 2
        err = np.sqrt((dz_dt * np.asarray(tio5_err, dtype=np.float64)) ** 2
                      + dz_dcah**2 * var_cah)
    return z, np.where(np.isfinite(z), err, np.nan)


def halpha_activity(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                    z: float = 0.0, snr_min: float = 3.0, ew_min: float = 1.0) -> dict:
    """H-alpha equivalent width (positive = emission), its error and the activity flag.

    The continuum is a straight line through the mean fluxes of the two
    continuum windows (at their centres); EW = sum over the line window of
    (F - Fc) / Fc times the pixel overlap.

    Returns
    -------
    dict with ha_ew, ha_ew_err (Angstrom), ha_cont_snr (median per-pixel S/N
    in the continuum windows), ha_active (bool)
    """
    s = 1.0 + z
    (l0, l1), conts = HALPHA_WINDOWS["line"], HALPHA_WINDOWS["continuum"]
    lo = np.array([l0] + [c[0] for c in conts]) * s
    hi = np.array([l1] + [c[1] for c in conts]) * s
    mean, err, _ = _kernels.band_means(wavelength, flux, ivar, lo, hi, _MIN_COVERAGE)
    out = {"ha_ew": np.nan, "ha_ew_err": np.nan, "ha_cont_snr": np.nan, "ha_active": False}
    if not np.all(np.isfinite(mean)):
        return out
    xc = 0.5 * (lo[1:] + hi[1:])
    x0 = 0.5 * (lo[0] + hi[0])
    t = (x0 - xc[0]) / (xc[1] - xc[0])
    fc = mean[1] + t * (mean[2] - mean[1])
    fc_err = np.hypot((1 - t) * err[1], t * err[2])
    if not fc > 0:
        return out
    width = l1 - l0  # rest-frame width: the EW is a rest-frame EW
    # EW = width * (<F_line> - Fc) / Fc = width * (<F_line>/Fc - 1)
    r = mean[0] / fc
    ew = width * (r - 1.0)
    ew_err = width * abs(r) * np.hypot(err[0] / mean[0] if mean[0] else np.inf, fc_err / fc)
    # continuum S/N per pixel: median of flux * sqrt(ivar) over the continuum windows
    in_cont = np.zeros(wavelength.size, bool)
    for a, b in zip(lo[1:], hi[1:], strict=True):
        in_cont |= (wavelength >= a) & (wavelength <= b)
    in_cont &= ivar > 0
    snr = float(np.median(flux[in_cont] * np.sqrt(ivar[in_cont]))) if in_cont.any() else np.nan
    out.update(ha_ew=float(ew), ha_ew_err=float(ew_err), ha_cont_snr=float(snr),
               ha_active=bool(snr > snr_min and ew > ew_min))
    return out


def _zeta_shared_continuum(mean: np.ndarray, err: np.ndarray,
                           calibration: str) -> tuple[float, float]:
    """zeta and its error from the window means: TiO5, CaH2 and CaH3 share the
    7042-7046 A continuum, so the error is propagated from the four independent
    window means (numerical derivatives), not from the three correlated indices."""
    slots = [_SLOTS[INDEX_NAMES.index(n)] for n in ("tio5", "cah2", "cah3")]
    ids = [slots[0][0], slots[1][0], slots[2][0], slots[0][1]]  # T, B2, B3, shared C
    x0 = mean[ids].astype(np.float64)
    if not np.all(np.isfinite(x0)) or x0[3] <= 0:
        return np.nan, np.nan

    def f(x):
        return float(zeta(x[0] / x[3], x[1] / x[3], x[2] / x[3], calibration=calibration)[0])

    z0 = f(x0)
    if not np.isfinite(z0):
        return np.nan, np.nan
    var = 0.0
    for k in range(4):
        h = 1e-6 * abs(x0[k]) + 1e-12
        xp = x0.copy()
        xp[k] += h
        var += ((f(xp) - z0) / h * err[ids[k]]) ** 2
    return z0, float(np.sqrt(var))


def _zeta_flag(row: dict) -> str:
    """'ok' when zeta applies: an M star by its own CaH bands (see ZETA_MAX_CAH)."""
    cah = row["cah2"] + row["cah3"]
    if not np.isfinite(cah) or not np.isfinite(row["tio5"]):
        return "not measured"
    if cah >= ZETA_MAX_CAH:
        return f"not an M star (CaH2 + CaH3 = {cah:.2f} >= {ZETA_MAX_CAH})"
    if not np.isfinite(row["zeta"]):
        return "undefined ([TiO5]_Zsun >= 1)"
    return "ok"


def _star_z(meta: dict, z: float | None) -> float:
    if z is not None and np.isfinite(z):
        return float(z)
    try:
        hz = float(meta.get("z"))
    except (TypeError, ValueError):
        return 0.0
    # only a stellar radial velocity (|cz| < 3000 km/s) shifts the windows
    return hz if np.isfinite(hz) and abs(hz) < 0.01 else 0.0


def _band_snr(item: Prepared, lo: float, hi: float) -> float:
    sel = (item.wavelength >= lo) & (item.wavelength <= hi) & (item.ivar > 0)
    if not sel.any():
        return np.nan
    return float(np.median(item.flux[sel] * np.sqrt(item.ivar[sel])))


def _measure_one(item: Prepared, z: float | None, calibration: str,
                 min_snr: float = 3.0) -> dict:
    out: dict[str, Any] = {}
    for n in INDEX_NAMES:
        out[n] = np.nan
        out[f"{n}_err"] = np.nan
    out.update(zeta=np.nan, zeta_err=np.nan, zeta_flag="not measured", ha_ew=np.nan,
               ha_ew_err=np.nan, ha_cont_snr=np.nan, ha_active=False, index_snr=np.nan,
               index_reason=None)
    if item.error is not None:
        out["index_reason"] = item.error
        return out
    zz = _star_z(item.meta, z)
    s = 1.0 + zz
    out["index_snr"] = _band_snr(item, _LO.min() * s, _HI.max() * s)
    out.update(halpha_activity(item.wavelength, item.flux, item.ivar, zz))
    if not out["index_snr"] >= min_snr:
        out["index_reason"] = (f"median S/N {out['index_snr']:.2g} in 6230-7135 A is below "
                               f"{min_snr:g}" if np.isfinite(out["index_snr"])
                               else "6230-7135 A not covered")
        return out
    mean, err, _ = _kernels.band_means(item.wavelength, item.flux, item.ivar, _LO * s, _HI * s,
                                       _MIN_COVERAGE)
    missing = []
    for n, slots in zip(INDEX_NAMES, _SLOTS, strict=True):
        band, conts = slots[0], slots[1:]
        c = float(np.mean(mean[conts]))
        c_err = float(np.sqrt(np.sum(err[conts] ** 2)) / len(conts))
        b, b_err = float(mean[band]), float(err[band])
        if not (np.isfinite(b) and np.isfinite(c)) or c <= 0:
            missing.append(n)
            continue
        val = b / c
        out[n] = val
        out[f"{n}_err"] = abs(val) * np.hypot(b_err / b if b else 0.0, c_err / c)
    out["zeta"], out["zeta_err"] = _zeta_shared_continuum(mean, err, calibration)
    out["zeta_flag"] = _zeta_flag(out)
    if out["zeta_flag"] != "ok":
        out["zeta"] = out["zeta_err"] = np.nan
    notes = []
    if missing:
        notes.append("no coverage or bad continuum for " + ",".join(missing))
    if not np.isfinite(out["ha_ew"]):
        notes.append("H-alpha windows not covered")
    out["index_reason"] = "; ".join(notes) if notes else None
    return out


def measure(spectra: Any, z: Any = None, *, zeta_calibration: str = "lepine2013",
            min_snr: float = 3.0):
    """TiO1-5, CaH1-3, CaOH with errors, zeta, and H-alpha activity.

    Parameters
    ----------
    spectra : Spectrum, (wavelength, flux, ivar), or a batch of them
    z : float, array of shape (n_spectra,), or None
        Stellar redshift (v/c) that shifts the windows; None uses
        ``meta['z']`` when it is a stellar velocity (|z| < 0.01), else 0.
    zeta_calibration : {"lepine2013", "lepine2007"}
    min_snr : float
        Band indices are NaN (with a reason) when the median per-pixel S/N
        over 6230-7135 A is below this (default 3); H-alpha is still measured.

    Returns
    -------
    dict for one spectrum, astropy.table.Table for a batch
        ``<index>``, ``<index>_err`` (dimensionless), ``zeta``, ``zeta_err``
        (NaN unless ``zeta_flag`` is "ok": M stars only, see
        :data:`ZETA_MAX_CAH`),
        ``ha_ew``, ``ha_ew_err`` (Angstrom, positive = emission),
        ``ha_cont_snr``, ``ha_active``, ``index_snr`` (median per-pixel S/N
        over the index windows) and ``index_reason`` (None when all were
        measured).

    Raises
    ------
    ValueError
        An unusable single spectrum, a bad calibration name or z shape.
    """
    if zeta_calibration not in _ZETA_COEFFS:
        raise ValueError(f"zeta_calibration must be one of {sorted(_ZETA_COEFFS)}, "
                         f"got {zeta_calibration!r}")
    items, single = as_prepared(spectra)
    if single and items[0].error is not None:
        raise ValueError(items[0].error)
    if z is None:
        zs = [None] * len(items)
    else:
        za = np.asarray(z, dtype=np.float64)
        if za.ndim == 0:
            zs = [float(za)] * len(items)
        elif za.shape == (len(items),):
            zs = [float(v) for v in za]
        else:
            raise ValueError(f"z has shape {za.shape}, expected ({len(items)},)")
    rows = [_measure_one(it, zi, zeta_calibration, float(min_snr))
            for it, zi in zip(items, zs, strict=True)]
    if single:
        return rows[0]
    from pyspec.measure.lines._columns import LINE_COLUMN_INFO, rows_table

    return rows_table(rows, {**LINE_COLUMN_INFO, **INDEX_COLUMN_INFO})
