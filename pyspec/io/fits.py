"""Survey FITS layouts: one ``identify``/``load`` pair per format.

Every loader receives a :class:`pyspec.io._view.FitsView` (fast NumPy parser
or astropy, same interface; a path, bytes, binary file object or open
``HDUList`` is turned into one) and returns a :class:`SpectrumBatch`. Formats are
recognised by structure (HDU kinds, shapes, column names, header keywords),
never by file name or release string.

Formats
-------
``lamost-lrs-image``
    LAMOST low-resolution primary image, 5 x N rows. Three layouts:
    A (DR1, pipeline v2.6.4: rows flux, ivar, continuum-subtracted flux,
    andmask, ormask; wavelength from ``10**(COEFF0 + COEFF1*i)``),
    B (pipeline v2.7.5: row 2 is wavelength, ``SN_*`` keys, no OBSID) and
    C (DR5-DR8: row 2 is wavelength, ``OBSID`` and ``SNR*`` keys).
``lamost-lrs-table``
    Layout D (DR9 and later): empty primary (with stray NAXIS1/NAXIS2 keys)
    and a one-row ``COADD`` binary table with vector columns.
``lamost-mrs``
    LAMOST medium-resolution files: recognised only to be refused with a
    clear :class:`~pyspec.errors.FitsFormatError`.
``sdss-spec``
    SDSS ``spec-PLATE-MJD-FIBER`` files: ``COADD`` table (one row per
    pixel: loglam, flux, ivar, and_mask) plus ``SPECOBJ``/``SPALL`` metadata.
    Only the and_mask bits of :data:`SDSS_DEFAULT_MASKED` mark a pixel bad
    (see there why; :func:`set_sdss_masked_bits` chooses others).
``sdss-spspec``
    Old SDSS ``spSpec`` primary images (rows flux, continuum-subtracted
    flux, sigma, mask); ivar = 1/sigma**2.
``desi-coadd``
    DESI coadd files: per-arm ``{B,R,Z}_WAVELENGTH``, ``_FLUX``, ``_IVAR``,
    ``_MASK`` HDUs and a ``FIBERMAP`` table; many spectra per file, arms
    joined at the middle of their overlap.
``table-1d``
    Generic one-dimensional table spectra (e.g. Ondrejov CCD700: columns
    ``spectral``, ``flux``, air wavelengths), one row per pixel or one row
    of vector columns.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np

from pyspec.io._base import (
    SpectrumBatch,
    clean_float,
    clean_snr,
    clean_str,
    empty_meta,
    fail,
    register_loader,
)
from pyspec.io._kernels import check_wavelength, mask_and_count
from pyspec.io._view import accepts_source

_BANDS = ("u", "g", "r", "i", "z")


def _f32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _batch(view: Any, wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
           and_mask: np.ndarray | None, metas: list[dict[str, Any]]) -> SpectrumBatch:
    flux = np.atleast_2d(_f32(flux))
    ivar = np.atleast_2d(_f32(ivar))
    if flux.shape != ivar.shape:
        raise fail(view, f"flux {flux.shape} and ivar {ivar.shape} have different shapes")
    wavelength = np.ascontiguousarray(wavelength, dtype=np.float64)
    if wavelength.shape[-1] != flux.shape[-1]:
        raise fail(view, f"wavelength has {wavelength.shape[-1]} pixels but flux has "
                   f"{flux.shape[-1]}")
    if and_mask is not None:
        and_mask = np.atleast_2d(np.asarray(and_mask))
        if and_mask.shape != flux.shape:
            raise fail(view, f"mask {and_mask.shape} and flux {flux.shape} have different "
                       "shapes")
    # one-pass kernel; pyspec.io.bad_pixel_mask is its NumPy reference
    mask, n_finite = mask_and_count(flux, ivar, and_mask)
    if flux.shape[1] == 0:
        raise fail(view, f"no pixels (flux has shape {flux.shape})")
    status = check_wavelength(wavelength)
    if status == 1:
        raise fail(view, "wavelength array has non-finite values")
    if status == 2:
        raise fail(view, "wavelengths are not strictly increasing")
    if not n_finite.any():
        raise fail(view, "flux has no finite values (all NaN/Inf)")
    for m in metas:
        m["file"] = view.name
    return SpectrumBatch(wavelength, flux, ivar, mask, [m["id"] for m in metas], metas)


def _hdu_desc(view: Any) -> str:
    parts = []
    i = 0
    while view.has(i) and i < 4:
        hdu = view[i]
        if hdu.kind == "image":
            naxis = hdu.header.get("NAXIS", 0)
            shape = "x".join(str(hdu.header.get(f"NAXIS{k}")) for k in range(naxis, 0, -1))
            parts.append(f"HDU{i} image {shape}")
        elif hdu.kind == "bintable":
            cols = ",".join(hdu.colnames[:6])
            parts.append(f"HDU{i} table {hdu.name or '(no EXTNAME)'} [{cols}] "
                         f"{hdu.header.get('NAXIS2')} rows")
        else:
            parts.append(f"HDU{i} {hdu.kind}")
        i += 1
    return "; ".join(parts) or "no HDUs"


def describe_layout(view: Any) -> str:
    """One-line summary of a file's HDU structure, for error messages."""
    return _hdu_desc(view)


# ---------------------------------------------------------------- LAMOST LRS

# Releases of the pipelines that predate the DATA_V keyword (metadata only; the
# layout is detected from the file's structure, never from these strings)
_LAMOST_PIPELINE_RELEASE = {"v2.6.4": "LAMOST DR1 (pipeline v2.6.4)",
                            "v2.7.5": "LAMOST DR2/DR3 (pipeline v2.7.5)"}


def _lamost_meta(h: Any, layout: str) -> dict[str, Any]:
    meta = empty_meta()
    obsid = h.get("OBSID")
    fiber = h.get("FIBERID")
    fiber_s = clean_str(fiber)
    if isinstance(obsid, int) and obsid > 0:
        meta["id"] = str(obsid)
    else:
        meta["id"] = "-".join(str(clean_str(h.get(k)) or "") for k in ("LMJD", "PLANID", "SPID")) \
            + f"-{fiber_s or ''}"
    meta["ra"] = clean_float(h.get("RA"))
    meta["dec"] = clean_float(h.get("DEC"))
    meta["class"] = clean_str(h.get("CLASS"))
    meta["subclass"] = clean_str(h.get("SUBCLASS"))
    meta["z"] = clean_float(h.get("Z"))
    meta["z_err"] = clean_float(h.get("Z_ERR"))
    for b in _BANDS:
        key = f"SNR{b.upper()}" if f"SNR{b.upper()}" in h else f"SN_{b.upper()}"
        meta[f"snr_{b}"] = clean_snr(h.get(key))
    pipeline = clean_str(h.get("VERSPIPE"))
    meta["data_release"] = clean_str(h.get("DATA_V")) or _LAMOST_PIPELINE_RELEASE.get(
        pipeline or "", f"LAMOST (pipeline {pipeline})" if pipeline else "LAMOST")
    vac = h.get("VACUUM", True)
    meta["vacuum"] = bool(vac) if isinstance(vac, bool) else True
    meta["layout"] = layout
    meta["pipeline"] = pipeline
    return meta


def _is_wavelength_row(row: np.ndarray, h: Any) -> bool:
    """Row 2 holds wavelengths: finite, increasing, optical/IR Angstrom, on the COEFF grid."""
    row = np.asarray(row, dtype=np.float64)
    if row.size < 2 or not np.all(np.isfinite(row)):
        return False
    if not (1000.0 < row[0] < 30000.0 and np.all(np.diff(row) > 0)):
        return False
    c0 = h.get("COEFF0")
    if isinstance(c0, int | float):
        return abs(math.log10(row[0]) - float(c0)) < 0.01
    return True


def _loglinear(h: Any, n: int, view: Any) -> np.ndarray:
    c0, c1 = h.get("COEFF0"), h.get("COEFF1")
    if not isinstance(c0, int | float) or not isinstance(c1, int | float) or c1 <= 0:
        raise fail(view, "image has no wavelength row and no valid COEFF0/COEFF1 "
                   "log-linear dispersion keywords")
    return _loglinear_grid(float(c0), float(c1), int(n)).copy()


@functools.lru_cache(maxsize=64)
def _loglinear_grid(c0: float, c1: float, n: int) -> np.ndarray:
    # survey files share a handful of grids: compute each once (callers copy)
    return 10.0 ** (c0 + c1 * np.arange(n, dtype=np.float64))


def _is_sdss_header(h: Any) -> bool:
    return "SPEC_CLN" in h or str(h.get("TELESCOP", "")).upper().startswith("SDSS")


@accepts_source
def identify_lamost_image(view: Any) -> bool:
    hdu = view[0]
    if hdu.kind != "image" or _is_sdss_header(hdu.header):
        return False
    h = hdu.header
    lamost_keys = "COEFF0" in h or str(h.get("TELESCOP", "")).upper().startswith("LAMOST")
    return h.get("NAXIS") in (1, 2) and lamost_keys


@accepts_source
def load_lamost_image(view: Any) -> SpectrumBatch:
    hdu = view[0]
    h = hdu.header
    data = hdu.image()
    if data.ndim != 2 or data.shape[0] < 3:
        raise fail(view, f"primary image has shape {data.shape}; a LAMOST low-resolution "
                   "image needs at least 3 rows (flux, ivar, wavelength/continuum) x N pixels")
    n = data.shape[1]
    if _is_wavelength_row(data[2], h):
        wavelength = np.asarray(data[2], dtype=np.float64)
        layout = "lamost-C" if "OBSID" in h else "lamost-B"
    else:
        wavelength = _loglinear(h, n, view)
        layout = "lamost-A"
    and_mask = data[3] if data.shape[0] > 3 else None
    meta = _lamost_meta(h, layout)
    return _batch(view, wavelength, data[0], data[1], and_mask, [meta])


@accepts_source
def identify_lamost_table(view: Any) -> bool:
    if not view.has(1):
        return False
    hdu = view[1]
    if hdu.kind != "bintable" or hdu.name != "COADD":
        return False
    cols = {c.upper() for c in hdu.colnames}
    return {"FLUX", "IVAR", "WAVELENGTH"} <= cols


@accepts_source
def load_lamost_table(view: Any) -> SpectrumBatch:
    hdu = view[1]
    nrows = hdu.header.get("NAXIS2", 0)
    if nrows != 1:
        raise fail(view, f"COADD table has {nrows} rows; the LAMOST DR9+ layout has one row "
                   "of vector columns")
    flux = hdu.column("FLUX")[0]
    ivar = hdu.column("IVAR")[0]
    wavelength = np.asarray(hdu.column("WAVELENGTH")[0], dtype=np.float64)
    and_mask = hdu.column("ANDMASK")[0] if "ANDMASK" in {c.upper() for c in hdu.colnames} \
        else None
    meta = _lamost_meta(view[0].header, "lamost-D")
    return _batch(view, wavelength, flux, ivar, and_mask, [meta])


@accepts_source
def identify_lamost_mrs(view: Any) -> bool:
    for i in range(1, 4):
        if not view.has(i):
            return False
        name = view[i].name
        if name in ("COADD_B", "COADD_R") or re.fullmatch(r"[BR]-\d+", name):
            return True
    return False


@accepts_source
def load_lamost_mrs(view: Any) -> SpectrumBatch:
    raise fail(view, "LAMOST medium-resolution (MRS) file (COADD_B/COADD_R extensions); "
               "pyspec reads low-resolution spectra only")


# ---------------------------------------------------------------- SDSS

@accepts_source
def identify_sdss_spec(view: Any) -> bool:
    if not view.has(1):
        return False
    hdu = view[1]
    if hdu.kind != "bintable":
        return False
    cols = {c.lower() for c in hdu.colnames}
    return {"loglam", "flux", "ivar"} <= cols


def _row_value(hdu: Any, name: str) -> Any:
    try:
        col = hdu.column(name)
    except KeyError:
        return None
    return col[0] if len(col) else None


#: SDSS spectroscopic pixel mask bits (SPPIXMASK, idlspec2d ``sdssMaskbits.par``).
SDSS_PIXMASK_BITS: dict[str, int] = {
    "NOPLUG": 0, "BADTRACE": 1, "BADFLAT": 2, "BADARC": 3, "MANYBADCOLUMNS": 4,
    "MANYREJECTED": 5, "LARGESHIFT": 6, "BADSKYFIBER": 7, "NEARWHOPPER": 8, "WHOPPER": 9,
    "SMEARIMAGE": 10, "SMEARHIGHSN": 11, "SMEARMEDSN": 12, "NEARBADPIXEL": 16,
    "LOWFLAT": 17, "FULLREJECT": 18, "PARTIALREJECT": 19, "SCATTEREDLIGHT": 20,
    "CROSSTALK": 21, "NOSKY": 22, "BRIGHTSKY": 23, "NODATA": 24, "COMBINEREJ": 25,
    "BADFLUXFACTOR": 26, "BADSKYCHI": 27, "REDMONSTER": 28,
}

#: and_mask bits that mark a pixel bad by default.  Per the SDSS bitmask
#: documentation, bits 0-12 except the fibre-level NOPLUG/BADTRACE/BADFLAT/
#: BADARC describe a whole fibre (MANYBADCOLUMNS: > 10 % of its pixels on bad
#: columns, MANYREJECTED, SMEAR*, ...) and are set on every pixel of a usable
#: spectrum; NEARBADPIXEL, LOWFLAT, PARTIALREJECT, SCATTEREDLIGHT, CROSSTALK,
#: BRIGHTSKY and BADSKYCHI are warnings whose pixels keep a valid, larger
#: error in ivar.  The defaults mask what has no valid data: an unplugged or
#: untraceable fibre, no flat or arc, a pixel fully rejected in extraction or
#: in the combine, no data, no sky model, or a bad flux calibration.
SDSS_DEFAULT_MASKED = ("NOPLUG", "BADTRACE", "BADFLAT", "BADARC", "FULLREJECT", "NOSKY",
                       "NODATA", "COMBINEREJ", "BADFLUXFACTOR")

_sdss_masked = [SDSS_DEFAULT_MASKED]


def _bit_value(names: Any) -> int:
    value = 0
    for name in names:
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not 0 <= int(name) < 32:
                raise ValueError(f"SDSS mask bit must be in 0..31, got {name}")
            value |= 1 << int(name)
        elif str(name).upper() in SDSS_PIXMASK_BITS:
            value |= 1 << SDSS_PIXMASK_BITS[str(name).upper()]
        else:
            raise ValueError(f"unknown SDSS mask bit {name!r}; known: "
                             f"{', '.join(SDSS_PIXMASK_BITS)}")
    return value


def sdss_masked_bits() -> tuple:
    """The SDSS and_mask bits (names or numbers) that currently mark a pixel bad."""
    return tuple(_sdss_masked[0])


def set_sdss_masked_bits(bits: Any = None) -> tuple:
    """Choose the SDSS and_mask bits that mark a pixel bad; returns the previous choice.

    Parameters
    ----------
    bits : iterable of bit names (see :data:`SDSS_PIXMASK_BITS`) or numbers, "all",
        or None for :data:`SDSS_DEFAULT_MASKED`.

    Raises
    ------
    ValueError
        An unknown bit name or a number outside 0..31.
    """
    previous = sdss_masked_bits()
    if bits is None:
        chosen = SDSS_DEFAULT_MASKED
    elif isinstance(bits, str) and bits.lower() == "all":
        chosen = tuple(range(32))
    else:
        chosen = tuple(bits)
    _bit_value(chosen)  # validate before changing anything
    _sdss_masked[0] = chosen
    return previous


def _sdss_and_mask(and_mask: Any) -> np.ndarray | None:
    """The and_mask reduced to the chosen bits (pixels with other bits stay good)."""
    if and_mask is None:
        return None
    keep = _bit_value(_sdss_masked[0])
    return np.asarray(and_mask).astype(np.int64) & keep


@accepts_source
def load_sdss_spec(view: Any) -> SpectrumBatch:
    hdu = view[1]
    cols = {c.lower() for c in hdu.colnames}
    loglam = np.asarray(hdu.column("loglam"), dtype=np.float64)
    if loglam.ndim != 1:
        raise fail(view, f"loglam column has shape {loglam.shape}; expected one row per pixel")
    wavelength = 10.0 ** loglam
    and_mask = _sdss_and_mask(hdu.column("and_mask") if "and_mask" in cols else None)
    meta = empty_meta()
    # SDSS-I/II files carry SPECOBJ, BOSS/eBOSS files SPALL, always as HDU 2
    obj = view[2] if view.has(2) and view[2].name in ("SPECOBJ", "SPALL") else None
    h0 = view[0].header
    if obj is not None and obj.kind == "bintable":
        plate, mjd, fiber = (_row_value(obj, k) for k in ("PLATE", "MJD", "FIBERID"))
        meta["ra"] = clean_float(_row_value(obj, "PLUG_RA"))
        meta["dec"] = clean_float(_row_value(obj, "PLUG_DEC"))
        meta["class"] = clean_str(_row_value(obj, "CLASS"))
        meta["subclass"] = clean_str(_row_value(obj, "SUBCLASS"))
        meta["z"] = clean_float(_row_value(obj, "Z"))
        meta["z_err"] = clean_float(_row_value(obj, "Z_ERR"))
        sn = _row_value(obj, "SN_MEDIAN")
        if sn is not None and np.size(sn) == 5:
            for b, v in zip(_BANDS, np.ravel(sn), strict=True):
                meta[f"snr_{b}"] = clean_snr(v)
        run2d = clean_str(_row_value(obj, "RUN2D"))
    else:
        plate, mjd, fiber = h0.get("PLATEID"), h0.get("MJD"), h0.get("FIBERID")
        meta["ra"] = clean_float(h0.get("PLUG_RA", h0.get("RA")))
        meta["dec"] = clean_float(h0.get("PLUG_DEC", h0.get("DEC")))
        run2d = clean_str(h0.get("RUN2D"))
    try:
        meta["id"] = f"{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}"
    except (TypeError, ValueError):
        meta["id"] = None
    meta["data_release"] = f"SDSS (run2d {run2d})" if run2d else "SDSS"
    meta["vacuum"] = True
    meta["layout"] = "sdss-spec"
    return _batch(view, wavelength, hdu.column("flux"), hdu.column("ivar"), and_mask, [meta])


_SPEC_CLN = {0: "UNKNOWN", 1: "STAR", 2: "GALAXY", 3: "QSO", 4: "HIZ_QSO", 5: "SKY",
             6: "STAR_LATE", 7: "GAL_EM"}


@accepts_source
def identify_sdss_spspec(view: Any) -> bool:
    hdu = view[0]
    return hdu.kind == "image" and _is_sdss_header(hdu.header)


@accepts_source
def load_sdss_spspec(view: Any) -> SpectrumBatch:
    hdu = view[0]
    h = hdu.header
    data = hdu.image()
    if data.ndim != 2 or data.shape[0] < 3:
        raise fail(view, f"primary image has shape {data.shape}; an SDSS spSpec image needs "
                   "at least 3 rows (flux, continuum-subtracted flux, sigma)")
    n = data.shape[1]
    wavelength = _loglinear(h, n, view)
    sigma = np.asarray(data[2], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(sigma > 0, 1.0 / (sigma * sigma), 0.0)
    and_mask = _sdss_and_mask(data[3] if data.shape[0] > 3 else None)
    meta = empty_meta()
    try:
        meta["id"] = f"{int(h.get('PLATEID')):04d}-{int(h.get('MJD')):05d}-" \
                     f"{int(h.get('FIBERID')):04d}"
    except (TypeError, ValueError):
        meta["id"] = None
    meta["ra"] = clean_float(h.get("RAOBJ", h.get("RA")))
    meta["dec"] = clean_float(h.get("DECOBJ", h.get("DEC")))
    cln = h.get("SPEC_CLN")
    meta["class"] = _SPEC_CLN.get(cln) if isinstance(cln, int) else clean_str(h.get("CLASS"))
    meta["z"] = clean_float(h.get("Z"))
    meta["z_err"] = clean_float(h.get("Z_ERR"))
    for b in _BANDS:
        meta[f"snr_{b}"] = clean_snr(h.get(f"SN_{b.upper()}"))
    meta["data_release"] = "SDSS (spSpec)"
    meta["vacuum"] = True
    meta["layout"] = "sdss-spspec"
    return _batch(view, wavelength, data[0], ivar, and_mask, [meta])


# ---------------------------------------------------------------- DESI

def _desi_arms(view: Any) -> list[str]:
    arms = []
    for arm in ("B", "R", "Z"):
        if view.find(f"{arm}_FLUX") is not None and view.find(f"{arm}_WAVELENGTH") is not None:
            arms.append(arm)
    return arms


@accepts_source
def identify_desi_coadd(view: Any) -> bool:
    if not view.has(1):
        return False
    # cheap pre-check before walking all HDUs
    i, names = 1, set()
    while view.has(i) and i < 8:
        names.add(view[i].name)
        i += 1
    return any(n.endswith("_WAVELENGTH") for n in names) and \
        any(n.endswith("_FLUX") for n in names)


@accepts_source
def load_desi_coadd(view: Any) -> SpectrumBatch:
    arms = _desi_arms(view)
    if not arms:
        raise fail(view, "DESI-like file without a complete arm (X_WAVELENGTH + X_FLUX)")
    pieces = []
    nspec = None
    for arm in arms:
        wl = np.asarray(view.find(f"{arm}_WAVELENGTH").image(), dtype=np.float64).ravel()
        flux = np.atleast_2d(view.find(f"{arm}_FLUX").image())
        ivar_hdu = view.find(f"{arm}_IVAR")
        if ivar_hdu is None:
            raise fail(view, f"arm {arm} has no {arm}_IVAR HDU")
        ivar = np.atleast_2d(ivar_hdu.image())
        mask_hdu = view.find(f"{arm}_MASK")
        mask = np.atleast_2d(mask_hdu.image()) if mask_hdu is not None else \
            np.zeros(flux.shape, dtype=np.int32)
        if flux.shape[1] != wl.size or ivar.shape != flux.shape or mask.shape != flux.shape:
            raise fail(view, f"arm {arm}: wavelength {wl.shape}, flux {flux.shape}, ivar "
                       f"{ivar.shape} and mask {mask.shape} do not agree")
        if nspec is not None and flux.shape[0] != nspec:
            raise fail(view, f"arm {arm} has {flux.shape[0]} spectra, earlier arms {nspec}")
        nspec = flux.shape[0]
        pieces.append((wl, flux, ivar, mask))
    pieces.sort(key=lambda p: p[0][0])
    # join neighbouring arms at the middle of their overlap
    keep = [np.ones(p[0].size, dtype=bool) for p in pieces]
    for k in range(len(pieces) - 1):
        lo, hi = pieces[k][0], pieces[k + 1][0]
        cut = 0.5 * (max(hi[0], lo[0]) + min(lo[-1], hi[-1])) if hi[0] <= lo[-1] else hi[0]
        keep[k] &= lo < cut
        keep[k + 1] &= hi >= cut
    wavelength = np.concatenate([p[0][m] for p, m in zip(pieces, keep, strict=True)])
    flux = np.concatenate([p[1][:, m] for p, m in zip(pieces, keep, strict=True)], axis=1)
    ivar = np.concatenate([p[2][:, m] for p, m in zip(pieces, keep, strict=True)], axis=1)
    and_mask = np.concatenate([p[3][:, m] for p, m in zip(pieces, keep, strict=True)], axis=1)
    fm = view.find("FIBERMAP")
    if fm is None or fm.kind != "bintable":
        raise fail(view, "DESI coadd without a FIBERMAP table (needed for TARGETID)")
    cols = {c.upper() for c in fm.colnames}
    if "TARGETID" not in cols:
        raise fail(view, "FIBERMAP has no TARGETID column")
    tid = fm.column("TARGETID")
    if len(tid) != nspec:
        raise fail(view, f"FIBERMAP has {len(tid)} rows for {nspec} spectra")
    ra = fm.column("TARGET_RA") if "TARGET_RA" in cols else None
    dec = fm.column("TARGET_DEC") if "TARGET_DEC" in cols else None
    zhdu = view.find("REDSHIFTS")
    zcols = {c.upper() for c in zhdu.colnames} if zhdu is not None else set()
    release = clean_str(view[0].header.get("SPECPROD"))
    metas = []
    for i in range(nspec):
        meta = empty_meta()
        meta["id"] = str(int(tid[i]))
        if ra is not None:
            meta["ra"] = clean_float(ra[i])
            meta["dec"] = clean_float(dec[i])
        if zhdu is not None and zhdu.header.get("NAXIS2") == nspec:
            if "Z" in zcols:
                meta["z"] = clean_float(zhdu.column("Z")[i])
            if "ZERR" in zcols:
                meta["z_err"] = clean_float(zhdu.column("ZERR")[i])
            if "SPECTYPE" in zcols:
                meta["class"] = clean_str(zhdu.column("SPECTYPE")[i])
            if "SUBTYPE" in zcols:
                meta["subclass"] = clean_str(zhdu.column("SUBTYPE")[i])
        meta["data_release"] = f"DESI ({release})" if release else "DESI"
        meta["vacuum"] = True
        meta["layout"] = "desi-coadd"
        metas.append(meta)
    return _batch(view, wavelength, flux, ivar, and_mask, metas)


# ---------------------------------------------------------------- generic tables

_WAVE_COLS = ("wavelength", "wave", "spectral", "lambda", "wl", "loglam")
_FLUX_COLS = ("flux", "fluxes", "f_lambda", "flam")
_ERR_COLS = ("error", "err", "flux_err", "sigma", "uncertainty", "flux_error")
_UNIT_SCALE = {"angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "aa": 1.0, "0.1nm": 1.0,
               "nm": 10.0, "um": 1e4, "micron": 1e4, "microns": 1e4, "m": 1e10, "cm": 1e8}


def _find_col(names: list[str], candidates: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _table_hdu(view: Any) -> Any:
    for i in range(1, 4):
        if not view.has(i):
            return None
        hdu = view[i]
        if hdu.kind == "bintable" and _find_col(hdu.colnames, _WAVE_COLS) and \
                _find_col(hdu.colnames, _FLUX_COLS):
            return hdu
    return None


@accepts_source
def identify_table_1d(view: Any) -> bool:
    return _table_hdu(view) is not None


@accepts_source
def load_table_1d(view: Any) -> SpectrumBatch:
    hdu = _table_hdu(view)
    h = hdu.header
    names = hdu.colnames
    wcol = _find_col(names, _WAVE_COLS)
    fcol = _find_col(names, _FLUX_COLS)
    k = names.index(wcol) + 1
    wave = np.asarray(hdu.column(wcol), dtype=np.float64)
    flux = np.asarray(hdu.column(fcol))
    if wave.ndim == 2 and wave.shape[0] == 1:  # one row of vector columns
        wave, flux = wave[0], flux[0]
    if wave.ndim != 1 or flux.shape != wave.shape:
        raise fail(view, f"table columns {wcol!r} {wave.shape} and {fcol!r} {flux.shape} are "
                   "not one spectrum (one row per pixel, or one row of vector columns)")
    unit = str(h.get(f"TUNIT{k}", "") or "").strip()
    if wcol.lower() == "loglam":
        wave = 10.0 ** wave
    elif unit:
        scale = _UNIT_SCALE.get(unit.lower().replace(" ", ""))
        if scale is None:
            raise fail(view, f"wavelength column {wcol!r} has unit {unit!r}; expected Angstrom, "
                       "nm, um or m")
        wave = wave * scale
    elif not (wave.size and 500.0 < np.nanmedian(wave) < 200000.0):
        raise fail(view, f"wavelength column {wcol!r} has no unit and values that do not "
                   "look like Angstrom")
    ecol = _find_col(names, _ERR_COLS)
    icol = _find_col(names, ("ivar",))
    fluxf = np.asarray(flux, dtype=np.float64)
    if icol is not None:
        ivar = np.asarray(hdu.column(icol), dtype=np.float64).reshape(fluxf.shape)
        known = True
    elif ecol is not None:
        err = np.asarray(hdu.column(ecol), dtype=np.float64).reshape(fluxf.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where(err > 0, 1.0 / (err * err), 0.0)
        known = True
    else:
        # no uncertainties in the file: unit weight for every finite pixel
        ivar = np.where(np.isfinite(fluxf), 1.0, 0.0)
        known = False
    comment = h.comment(f"TTYPE{k}").lower()
    airorvac = str(h.get("AIRORVAC", "") or view[0].header.get("AIRORVAC", "") or "").lower()
    if "air" in comment or airorvac.startswith("air"):
        vacuum: bool | None = False
    elif "vac" in comment or airorvac.startswith("vac"):
        vacuum = True
    else:
        vac = h.get("VACUUM", view[0].header.get("VACUUM"))
        vacuum = vac if isinstance(vac, bool) else None
    meta = empty_meta()
    stem = re.sub(r"\.(fits?|fts)(\.gz)?$", "", view.name.replace("\\", "/").rsplit("/", 1)[-1],
                  flags=re.IGNORECASE)
    meta["id"] = stem
    h0 = view[0].header
    meta["ra"] = clean_float(h.get("RA", h0.get("RA")))
    meta["dec"] = clean_float(h.get("DEC", h0.get("DEC")))
    meta["z"] = clean_float(h.get("Z", h0.get("Z")))
    pub = clean_str(h.get("DS_IDPUB"))
    meta["data_release"] = clean_str(h.get("DATA_V", h0.get("DATA_V"))) or (
        pub.rsplit("/", 1)[0] if pub and "/" in pub else None)
    meta["vacuum"] = vacuum
    meta["layout"] = "table-1d"
    meta["object"] = clean_str(h.get("OBJECT", h0.get("OBJECT")))
    meta["ivar_known"] = known
    return _batch(view, wave, flux, ivar, None, [meta])


# ---------------------------------------------------------------- registry

register_loader("lamost-mrs", identify_lamost_mrs, load_lamost_mrs, priority=100)
register_loader("lamost-lrs-table", identify_lamost_table, load_lamost_table, priority=50)
register_loader("sdss-spec", identify_sdss_spec, load_sdss_spec, priority=50)
register_loader("lamost-lrs-image", identify_lamost_image, load_lamost_image, priority=40)
register_loader("sdss-spspec", identify_sdss_spspec, load_sdss_spspec, priority=40)
register_loader("desi-coadd", identify_desi_coadd, load_desi_coadd, priority=30)
register_loader("table-1d", identify_table_1d, load_table_1d, priority=0)
