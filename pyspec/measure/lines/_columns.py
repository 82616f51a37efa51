"""The catalogue columns of the measurements: units, descriptions, and the table builder.

Shared by :func:`pyspec.measure.lines.line_fluxes`, :func:`pyspec.measure.indices.measure` and
:func:`pyspec.measure.measure`; it depends on the line list only, so none of
them has to import another to build its table.
"""

from __future__ import annotations

import numpy as np

from pyspec.measure.lines._catalogue import FLUX_LINES

_AA = "Angstrom"
_ONE = ""


def _line_column_info() -> dict[str, tuple[str | None, str]]:
    info: dict[str, tuple[str | None, str]] = {
        "measure_reason": (None, "why the spectrum could not be read or measured at all"),
        "z_cl": (_ONE, "line-combination (CL) redshift: mean over agreeing emission lines"),
        "z_cl_err": (_ONE, "scatter (sample std) of the per-line CL redshifts"),
        "n_lines_cl": (None, "number of emission lines that agree on z_cl (within 0.001)"),
        "lines_cl": (None, "names of the lines used for z_cl, comma separated"),
        "z_cl_reason": (None, "why z_cl is NaN"),
        "z_cl_guided": (None, "z_cl needed lines of the guided pass (confirm_nsigma)"),
        "n_lines_found": (None, "emission lines found above the threshold"),
        "z": (_ONE, "adopted redshift (stars: v/c): CL, else template cross-correlation"),
        "z_err": (_ONE, "1-sigma error of z (CL scatter or Tonry & Davis error)"),
        "z_method": (None, "how z was found: CL, OIII-doublet, xcorr-star, xcorr-galaxy or none"),
        "z_quality": (None, "good, uncertain or failed (see pyspec.measure.lines.best_redshift)"),
        "z_template": (None, "best cross-correlation template (file stem)"),
        "z_r_td": (_ONE, "Tonry & Davis r of the cross-correlation peak"),
        "z_reason": (None, "why z is NaN"),
        "z_used": (_ONE, "redshift at which line fluxes and indices were measured"),
        "z_source": (None, "origin of z_used: given, CL, xcorr-star, xcorr-galaxy, header or "
                           "none"),
        "broad_line": (None, "a broad H-alpha, H-beta or Mg II component (FWHM >= 1200 km/s) "
                             "was detected; such objects get no BPT or H II class"),
        "broad_lines": (None, "names of the lines with a broad component"),
        "fwhm_broad_Ha": ("km / s", "FWHM of the broad H-alpha component"),
        "fwhm_broad_Hb": ("km / s", "FWHM of the broad H-beta component"),
        "fwhm_broad_MgII": ("km / s", "FWHM of the broad Mg II 2799 component"),
        "velocity_class": (None, "galactic if |c z_used| < 500 km/s, else extragalactic"),
        "flux_reason": (None, "line fluxes not measured, or lines not covered"),
        "log_nii_ha": (_ONE, "log10 [N II] 6583 / H-alpha (both at S/N >= 3)"),
        "log_oiii_hb": (_ONE, "log10 [O III] 5007 / H-beta (both at S/N >= 3)"),
        "log_sii_ha": (_ONE, "log10 [S II] 6716+6731 / H-alpha (all at S/N >= 3)"),
        "bpt_class": (None, "BPT class: Kauffmann+03, Kewley+01, Schawinski+07 demarcations; "
                            "'broad-line' when broad_line (no BPT class then)"),
        "hii_region": (None, "log([S II]/Ha) >= 0.63 log([N II]/Ha) - 0.55 (never for "
                             "broad-line objects)"),
        "zeta": (_ONE, "zeta TiO/CaH metallicity parameter (Lepine et al. 2013); M stars only"),
        "zeta_err": (_ONE, "1-sigma error of zeta from ivar"),
        "zeta_flag": (None, "'ok' when zeta applies (CaH2 + CaH3 < 1.75, M stars), else why not"),
        "index_velocity": ("km / s", "radial velocity at which the index windows were placed"),
        "index_velocity_source": (None, "origin of index_velocity: given, xcorr, CL, header or "
                                        "none (0)"),
        "ha_ew": (_AA, "H-alpha rest-frame equivalent width, positive = emission (West et al. "
                       "2011 windows)"),
        "ha_ew_err": (_AA, "1-sigma error of ha_ew from ivar"),
        "ha_cont_snr": (_ONE, "median per-pixel S/N in the H-alpha continuum windows"),
        "ha_active": (None, "active: ha_cont_snr > 3 and ha_ew > 1 Angstrom"),
        "index_snr": (_ONE, "median per-pixel S/N over 6230-7135 A (index windows)"),
        "index_reason": (None, "cool-star indices not measured, and why"),
        "z_rt": (_ONE, "redshift transferred from the nearest template (RT)"),
        "z_confirmed": (None, "|z_cl - z_rt| < 0.001 (the study's confirmation rule)"),
    }
    for n in FLUX_LINES:
        info[f"flux_{n}"] = (None, f"{n} flux by integration over the pseudo-continuum "
                                   "(input flux unit x Angstrom)")
        info[f"flux_err_{n}"] = (None, f"1-sigma error of flux_{n} from ivar")
        info[f"ew_{n}"] = (_AA, f"{n} rest-frame equivalent width (observed / (1 + z_used)), "
                                "positive = emission")
        info[f"ew_err_{n}"] = (_AA, f"1-sigma error of ew_{n}")
    return info


#: column name -> (unit or None, description) of every column but the band indices
#: (:data:`pyspec.measure.indices.INDEX_COLUMN_INFO`); :data:`pyspec.measure.COLUMN_INFO` has both.
LINE_COLUMN_INFO = _line_column_info()


def rows_table(rows: list[dict], info: dict[str, tuple[str | None, str]]):
    """Table from per-spectrum dicts (same keys), with units and descriptions from ``info``."""
    from astropy import units as u
    from astropy.table import Table

    t = Table()
    if not rows:
        return t
    for name in rows[0]:
        values = [r[name] for r in rows]
        if name.endswith(("reason", "_flag")) or name in (
                "lines_cl", "z_source", "velocity_class", "bpt_class", "z_method", "z_quality",
                "z_template", "broad_lines", "index_velocity_source"):
            col = np.array(["" if v is None else str(v) for v in values], dtype=str)
        elif name in ("ha_active", "hii_region", "z_confirmed", "z_cl_guided", "broad_line"):
            col = np.array(values, dtype=bool)
        elif name.startswith("n_"):
            col = np.array(values, dtype=np.int32)
        else:
            col = np.array(values, dtype=np.float64)
        t[name] = col
        unit, desc = info.get(name, (None, ""))
        if unit is not None:
            t[name].unit = u.dimensionless_unscaled if unit == _ONE else u.Unit(unit)
        t[name].description = desc
    return t
