"""Batch measurement driver: one catalogue row of line and index measurements per spectrum.

:func:`measure` runs, for every spectrum of a batch, the emission-line search
and CL redshift (:mod:`pyspec.lines`), line fluxes and equivalent widths at
the adopted redshift, the BPT / H II-region / velocity classes
(:mod:`pyspec.classify`) and the cool-star indices (:mod:`pyspec.indices`),
and returns an astropy Table whose rows are aligned with the input.  Columns
carry units and descriptions.  A spectrum that cannot be measured gets NaN and
a reason in the ``*_reason`` columns; nothing raises for one bad spectrum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec import indices as _indices
from pyspec import lines as _lines
from pyspec.classify import hii_region, velocity_class
from pyspec.lines._input import as_prepared

__all__ = ["measure", "COLUMN_INFO"]

_AA = "Angstrom"
_ONE = ""


def _column_info() -> dict[str, tuple[str | None, str]]:
    info: dict[str, tuple[str | None, str]] = {
        "measure_reason": (None, "why the spectrum could not be read or measured at all"),
        "z_cl": (_ONE, "line-combination (CL) redshift: mean over agreeing emission lines"),
        "z_cl_err": (_ONE, "scatter (sample std) of the per-line CL redshifts"),
        "n_lines_cl": (None, "number of emission lines that agree on z_cl (within 0.001)"),
        "lines_cl": (None, "names of the lines used for z_cl, comma separated"),
        "z_cl_reason": (None, "why z_cl is NaN"),
        "z_cl_guided": (None, "z_cl needed lines of the guided pass (confirm_nsigma)"),
        "n_lines_found": (None, "emission lines found above the threshold"),
        "z_used": (_ONE, "redshift at which line fluxes were measured"),
        "z_source": (None, "origin of z_used: CL, given, header or none"),
        "velocity_class": (None, "galactic if |c z_used| < 500 km/s, else extragalactic"),
        "flux_reason": (None, "line fluxes not measured, or lines not covered"),
        "log_nii_ha": (_ONE, "log10 [N II] 6583 / H-alpha (both at S/N >= 3)"),
        "log_oiii_hb": (_ONE, "log10 [O III] 5007 / H-beta (both at S/N >= 3)"),
        "log_sii_ha": (_ONE, "log10 [S II] 6716+6731 / H-alpha (all at S/N >= 3)"),
        "bpt_class": (None, "BPT class: Kauffmann+03, Kewley+01, Schawinski+07 demarcations"),
        "hii_region": (None, "log([S II]/Ha) >= 0.63 log([N II]/Ha) - 0.55"),
        "zeta": (_ONE, "zeta TiO/CaH metallicity parameter (Lepine et al. 2013)"),
        "zeta_err": (_ONE, "1-sigma error of zeta from ivar"),
        "ha_ew": (_AA, "H-alpha equivalent width, positive = emission (West et al. 2011 windows)"),
        "ha_ew_err": (_AA, "1-sigma error of ha_ew from ivar"),
        "ha_cont_snr": (_ONE, "median per-pixel S/N in the H-alpha continuum windows"),
        "ha_active": (None, "active: ha_cont_snr > 3 and ha_ew > 1 Angstrom"),
        "index_snr": (_ONE, "median per-pixel S/N over 6230-7135 A (index windows)"),
        "index_reason": (None, "cool-star indices not measured, and why"),
        "z_rt": (_ONE, "redshift transferred from the nearest template (RT)"),
        "z_confirmed": (None, "|z_cl - z_rt| < 0.001 (the study's confirmation rule)"),
    }
    for n in _lines.FLUX_LINES:
        info[f"flux_{n}"] = (None, f"{n} flux by integration over the pseudo-continuum "
                                   "(input flux unit x Angstrom)")
        info[f"flux_err_{n}"] = (None, f"1-sigma error of flux_{n} from ivar")
        info[f"ew_{n}"] = (_AA, f"{n} equivalent width, positive = emission")
        info[f"ew_err_{n}"] = (_AA, f"1-sigma error of ew_{n}")
    for n in _indices.INDEX_NAMES:
        info[n] = (_ONE, f"{n.upper()} band index (Reid, Hawley & Gizis 1995 windows)")
        info[f"{n}_err"] = (_ONE, f"1-sigma error of {n} from ivar")
    return info


#: column name -> (unit or None, description)
COLUMN_INFO = _column_info()


def _line_rows_table(rows: list[dict]):
    """Table from per-spectrum dicts (same keys), with units and descriptions."""
    from astropy import units as u
    from astropy.table import Table

    t = Table()
    if not rows:
        return t
    for name in rows[0]:
        values = [r[name] for r in rows]
        if name.endswith("reason") or name in ("lines_cl", "z_source", "velocity_class",
                                                "bpt_class"):
            col = np.array(["" if v is None else str(v) for v in values], dtype=str)
        elif name in ("ha_active", "hii_region", "z_confirmed", "z_cl_guided"):
            col = np.array(values, dtype=bool)
        elif name.startswith("n_"):
            col = np.array(values, dtype=np.int32)
        else:
            col = np.array(values, dtype=np.float64)
        t[name] = col
        unit, desc = COLUMN_INFO.get(name, (None, ""))
        if unit is not None:
            t[name].unit = u.dimensionless_unscaled if unit == _ONE else u.Unit(unit)
        t[name].description = desc
    return t


def measure(spectra: Any, *, lines: bool = True, indices: bool = True, z: Any = None,
            method: str = "direct", window: float = 150.0, quantile: float | None = 0.9,
            nsigma: float | None = 3.0, confirm_nsigma: float | None = 2.0,
            half_width_kms: float = 300.0,
            template_z: Any = None, progress: Any = None):
    """Measure a batch of spectra into a catalogue table (rows aligned with input).

    Parameters
    ----------
    spectra : list of Spectrum, (wavelength, flux (n, npix), ivar) or one spectrum
    lines, indices : bool
        Which groups of columns to compute.
    z : float, array of shape (n,), or None
        Redshift for the line fluxes; None takes the CL redshift, else the
        header redshift ``meta['z']`` (``z_source`` tells which).
    method : {"direct", "gaussian"}
        Line-flux method (:func:`pyspec.lines.line_fluxes`).
    window, quantile, nsigma, confirm_nsigma
        Line search settings (:func:`pyspec.lines.find_lines`,
        :func:`pyspec.lines.redshift`).
    half_width_kms : float
        Half width of the line-flux windows.
    template_z : array of shape (n,), optional
        RT redshift of each spectrum (:func:`pyspec.lines.transfer_redshift`);
        adds ``z_rt`` and ``z_confirmed``.
    progress : callable or None
        Called with the number of spectra done after each one (progress bars).

    Returns
    -------
    astropy.table.Table
        One row per input spectrum; see :data:`COLUMN_INFO` for the columns.

    Raises
    ------
    TypeError, ValueError
        Input of an unknown type or bad parameters (never for one bad spectrum).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.linspace(3800, 9000, 5000)
    >>> f = np.ones_like(w)
    >>> for rest in (4862.68, 5008.24, 6564.61):
    ...     f += 5 * np.exp(-0.5 * ((w - rest * 1.05) / 2.0) ** 2)
    >>> t = measure((w, f[None], np.full((1, w.size), 1e4)), indices=False)
    >>> round(float(t["z_cl"][0]), 4), str(t["z_source"][0])
    (0.05, 'CL')
    """
    if method not in ("direct", "gaussian"):
        raise ValueError(f"method must be 'direct' or 'gaussian', got {method!r}")
    args = _lines._check_detect_args(window, quantile, nsigma, 2, 2, 40)
    half_width_kms = _lines._check_positive("half_width_kms", half_width_kms)
    items, _ = as_prepared(spectra)
    n = len(items)
    zgiven = None
    if z is not None:
        zgiven = np.broadcast_to(np.asarray(z, dtype=np.float64), (n,))
    rows = []
    for i, it in enumerate(items):
        row: dict[str, Any] = {"measure_reason": it.error}
        if lines:
            a = _lines._analyse(it, args[0])
            _lines._detect(a, *args[1:])
            r = _lines._redshift_one(a, 0.001, 3, (-0.01, 1.5), confirm_nsigma)
            row.update(z_cl=r.z, z_cl_err=r.z_err, n_lines_cl=r.n_lines,
                       lines_cl=",".join(r.lines), z_cl_reason=r.reason, z_cl_guided=r.guided,
                       n_lines_found=int(a.extra["centre"].size) if "centre" in a.extra else 0)
            if zgiven is not None and np.isfinite(zgiven[i]):
                zu, src = float(zgiven[i]), "given"
            elif r.ok:
                zu, src = r.z, "CL"
            else:
                zu = _lines.header_z(it.meta)
                src = "header" if np.isfinite(zu) else "none"
            row.update(z_used=zu, z_source=src, velocity_class=str(velocity_class(zu)))
            row.update(_lines._flux_row(a, zu, half_width_kms, method, 3.0))
            row["hii_region"] = bool(hii_region(row["log_sii_ha"], row["log_nii_ha"]))
        if indices:
            row.update(_indices._measure_one(it, None, "lepine2013"))
        rows.append(row)
        if progress is not None:
            progress(i + 1)
    t = _line_rows_table(rows)
    if template_z is not None and lines:
        zrt = np.asarray(template_z, dtype=np.float64)
        if zrt.shape != (n,):
            raise ValueError(f"template_z has shape {zrt.shape}, expected ({n},)")
        ok, _ = _lines.confirm_redshift(t["z_cl"], zrt)
        t2 = _line_rows_table([{"z_rt": float(v), "z_confirmed": bool(c)}
                               for v, c in zip(zrt, ok, strict=True)])
        for name in t2.colnames:
            t[name] = t2[name]
    t.meta["pyspec_measure"] = {"window_A": float(args[0]), "quantile": quantile,
                                "nsigma": nsigma, "confirm_nsigma": confirm_nsigma,
                                "method": method,
                                "half_width_kms": float(half_width_kms),
                                "zeta_calibration": "lepine2013"}
    return t
