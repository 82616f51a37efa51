"""Measurements of spectra, and the batch driver that makes one catalogue row of them each.

The package holds :mod:`pyspec.measure.lines` (emission lines, redshifts, line
fluxes), :mod:`pyspec.measure.indices` (cool-star band indices, H-alpha
activity) and :mod:`pyspec.measure.classify` (BPT, H II region, velocity
classes); ``pyspec.lines``, ``pyspec.indices`` and ``pyspec.classify`` are
aliases of them, kept for existing code.

:func:`measure` runs, for every spectrum of a batch, the emission-line search
and CL redshift (:mod:`pyspec.measure.lines`), line fluxes and equivalent widths at
the adopted redshift, the BPT / H II-region / velocity classes
(:mod:`pyspec.measure.classify`) and the cool-star indices (:mod:`pyspec.measure.indices`),
and returns an astropy Table whose rows are aligned with the input.  Columns
carry units and descriptions.  A spectrum that cannot be measured gets NaN and
a reason in the ``*_reason`` columns; nothing raises for one bad spectrum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pyspec.measure import indices as _indices
from pyspec.measure import lines as _lines
from pyspec.measure.classify import BROAD_LINE_CLASS, C_KMS, hii_region, velocity_class
from pyspec.measure.lines._columns import LINE_COLUMN_INFO, rows_table
from pyspec.measure.lines._input import as_prepared
from pyspec.measure.lines.auto import combine
from pyspec.measure.lines.broad import broad_line_fwhm

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["measure", "add_measurements", "COLUMN_INFO"]

#: column name -> (unit or None, description)
COLUMN_INFO = {**LINE_COLUMN_INFO, **_indices.INDEX_COLUMN_INFO}


def _line_rows_table(rows: list[dict]):
    """Table from per-spectrum dicts (same keys), with units and descriptions."""
    return rows_table(rows, COLUMN_INFO)


def _adopted_z(zgiven: float, best: Any, meta: dict) -> tuple[float, str]:
    if np.isfinite(zgiven):
        return float(zgiven), "given"
    if best.ok:
        return float(best.z), best.method
    zh = _lines.header_z(meta)
    return (zh, "header") if np.isfinite(zh) else (np.nan, "none")


def _index_velocity(zgiven: float, best: Any, meta: dict) -> tuple[float | None, str]:
    """Stellar z for the index windows: given, measured (xcorr / CL), else header."""
    if np.isfinite(zgiven):
        return float(zgiven), "given"
    if best.ok and best.method == "xcorr-star":
        return float(best.z), "xcorr"
    if best.ok and best.method == "CL" and abs(best.z) < 0.01:
        return float(best.z), "CL"
    hz = _indices._star_z(meta, None)
    return (hz, "header") if hz != 0.0 else (0.0, "none")


def _measure_one(it, zgiven, lines, indices, args, confirm_nsigma, half_width_kms, method,
                 templates) -> dict:
    row: dict[str, Any] = {"measure_reason": it.error}
    a = _lines._analyse(it, args[0])
    _lines._detect(a, *args[1:])
    r = _lines._redshift_one(a, 0.001, 3, (-0.01, 1.5), confirm_nsigma)
    best = combine(r, it, templates, (-0.01, 1.5), 0.001, a, confirm_nsigma)
    if lines:
        row.update(z_cl=r.z, z_cl_err=r.z_err, n_lines_cl=r.n_lines,
                   lines_cl=",".join(r.lines), z_cl_reason=r.reason, z_cl_guided=r.guided,
                   n_lines_found=int(a.extra["centre"].size) if "centre" in a.extra else 0)
        row.update(z=best.z, z_err=best.z_err, z_method=best.method, z_quality=best.quality,
                   z_template=best.template, z_r_td=best.r_td, z_reason=best.reason)
        zu, src = _adopted_z(zgiven, best, it.meta)
        vclass = str(velocity_class(zu))
        row.update(z_used=zu, z_source=src, velocity_class=vclass)
        row.update(_lines._flux_row(a, zu, half_width_kms, method, 3.0))
        row["hii_region"] = bool(hii_region(row["log_sii_ha"], row["log_nii_ha"]))
        # broad lines are looked for in extragalactic spectra only: a star's
        # absorption-line continuum is no place for a broad-line region
        if it.error is None and vclass == "extragalactic":
            row.update(broad_line_fwhm(it.wavelength, it.flux, it.ivar, zu))
        else:
            row.update(broad_line_fwhm(it.wavelength, it.flux, it.ivar, np.nan))
        if row["broad_line"]:
            row["bpt_class"] = BROAD_LINE_CLASS
            row["hii_region"] = False
    if indices:
        zs, vsrc = _index_velocity(zgiven, best, it.meta)
        row.update(_indices._measure_one(it, zs, "lepine2013"))
        row["index_velocity"] = float(zs * C_KMS) if it.error is None else np.nan
        row["index_velocity_source"] = vsrc if it.error is None else "none"
        if best.ok and str(velocity_class(best.z)) == "extragalactic" and row["zeta_flag"] == "ok":
            # CaH/TiO band depths of a galaxy or quasar are no M-star metallicity
            row.update(zeta=np.nan, zeta_err=np.nan,
                       zeta_flag="not a star: extragalactic redshift")
    return row


def measure(spectra: Any, *, lines: bool = True, indices: bool = True, z: Any = None,
            method: str = "direct", window: float = 150.0, quantile: float | None = 0.9,
            nsigma: float | None = 3.0, confirm_nsigma: float | None = 2.0,
            half_width_kms: float = 300.0,
            template_z: Any = None, templates: Any = None, progress: Any = None):
    """Measure a batch of spectra into a catalogue table (rows aligned with input).

    Parameters
    ----------
    spectra : list of Spectrum, (wavelength, flux (n, npix), ivar) or one spectrum
    lines, indices : bool
        Which groups of columns to compute.
    z : float, array of shape (n,), or None
        Redshift for the line fluxes and indices; None takes the adopted
        redshift ``z`` (CL, else cross-correlation; see
        :func:`pyspec.measure.lines.best_redshift`), else the header redshift
        ``meta['z']`` (``z_source`` tells which).  The cool-star index windows
        are placed at the measured stellar velocity (``index_velocity``).
    method : {"direct", "gaussian"}
        Line-flux method (:func:`pyspec.measure.lines.line_fluxes`).
    window, quantile, nsigma, confirm_nsigma
        Line search settings (:func:`pyspec.measure.lines.find_lines`,
        :func:`pyspec.measure.lines.redshift`).
    half_width_kms : float
        Half width of the line-flux windows.
    templates : pyspec.measure.lines.xcorr.XcorrTemplates, None or False
        Cross-correlation templates for ``z`` (default: the shipped sample);
        False turns the cross-correlation off (CL redshifts only, stellar
        indices at the header velocity; about 5x faster).
    template_z : array of shape (n,), optional
        RT redshift of each spectrum (:func:`pyspec.measure.lines.transfer_redshift`);
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
        zi = zgiven[i] if zgiven is not None else np.nan
        row = _measure_one(it, zi, lines, indices, args, confirm_nsigma, half_width_kms, method,
                           templates)
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


def add_measurements(table: Table, spectra: Any, **kwargs: Any) -> Table:
    """Append measurement columns to a candidate table (rows aligned with ``spectra``).

    Parameters
    ----------
    table : astropy.table.Table
        Candidate catalogue, one row per spectrum.
    spectra : list of Spectrum, or (wavelength, flux (n, npix), ivar)
        The candidates' spectra in the table's row order (None entries allowed:
        their rows get NaN and a reason).
    **kwargs
        Passed to :func:`pyspec.measure.measure` (``lines``, ``indices``,
        ``method``, ``template_z`` ...).

    Returns
    -------
    astropy.table.Table
        A new table: ``table``'s columns followed by the measurement columns
        (a measurement column whose name is taken gets the prefix ``m_``).

    Raises
    ------
    ValueError
        When the numbers of rows and spectra differ.
    """
    from astropy.table import Table

    if isinstance(spectra, list):
        spectra = [s if s is not None else "missing spectrum" for s in spectra]
    m = measure(spectra, **kwargs)
    if len(m) != len(table):
        raise ValueError(f"table has {len(table)} rows but {len(m)} spectra were given; pass "
                         "one spectrum per row, in row order")
    out = Table(table, copy=True)
    for name in m.colnames:
        new = name if name not in out.colnames else f"m_{name}"
        out[new] = m[name]
    out.meta.setdefault("pyspec_measure", m.meta.get("pyspec_measure"))
    return out
