"""Synthetic FITS files in every supported layout, built with astropy, for the I/O tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from astropy.io import fits


def smooth_flux(n: int, rng: np.random.Generator, level: float = 100.0) -> np.ndarray:
    x = np.linspace(0, 1, n)
    return (level * (1 + 0.3 * x) + rng.normal(0, 1, n)).astype(np.float32)


def lamost_header(layout: str, n: int) -> fits.Header:
    h = fits.Header()
    h["TELESCOP"] = "LAMOST"
    h["LMJD"] = 55862
    h["PLANID"] = "B6212"
    h["SPID"] = 6
    h["FIBERID"] = 68 if layout != "B" else "68"
    h["RA"] = 99.97
    h["DEC"] = 27.97
    h["CLASS"] = "STAR"
    h["SUBCLASS"] = "G2"
    h["Z"] = -0.0002
    h["Z_ERR"] = 0.00005
    h["VACUUM"] = True
    h["COEFF0"] = 3.5682
    h["COEFF1"] = 1e-4
    h["VERSPIPE"] = {"A": "v2.6.4", "B": "v2.7.5"}.get(layout, "v2.9.8")
    if layout in ("A", "B"):
        h["SN_U"], h["SN_G"], h["SN_R"], h["SN_I"], h["SN_Z"] = 0.5, 8.0, 99.0, 40.0, 30.0
    else:
        h["OBSID"] = 101005
        h["DATA_V"] = "LAMOST DR8" if layout == "C" else "LAMOST DR9"
        h["SNRU"], h["SNRG"], h["SNRR"], h["SNRI"], h["SNRZ"] = 0.7, 8.1, -9999.0, 23.0, 12.0
    return h


def lamost_arrays(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    wl = 10 ** (3.5682 + 1e-4 * np.arange(n))
    flux = smooth_flux(n, rng)
    ivar = np.full(n, 0.5, dtype=np.float32)
    andmask = np.zeros(n, dtype=np.float32)
    return {"wavelength": wl, "flux": flux, "ivar": ivar, "andmask": andmask}


def write_lamost_image(path: Path, layout: str, rng: np.random.Generator, n: int = 3900,
                       arrays: dict | None = None) -> dict[str, np.ndarray]:
    """Layout A (row 2 = continuum-subtracted), B or C (row 2 = wavelength)."""
    a = arrays or lamost_arrays(n, rng)
    row2 = (a["flux"] / 100.0) if layout == "A" else a["wavelength"]
    data = np.vstack([a["flux"], a["ivar"], row2, a["andmask"], np.zeros(n)]).astype(np.float32)
    hdu = fits.PrimaryHDU(data, header=lamost_header(layout, n))
    _write(hdu, path)
    return a


def write_lamost_table(path: Path, rng: np.random.Generator, n: int = 3909,
                       arrays: dict | None = None) -> dict[str, np.ndarray]:
    """Layout D: empty primary with stray NAXIS1/NAXIS2 keys + one-row COADD table."""
    a = arrays or lamost_arrays(n, rng)
    h = lamost_header("D", n)
    primary = fits.PrimaryHDU(header=h)
    cols = [fits.Column(name=name, format=f"{n}E", array=np.asarray(a[key], np.float32)[None])
            for name, key in (("FLUX", "flux"), ("IVAR", "ivar"), ("WAVELENGTH", "wavelength"),
                              ("ANDMASK", "andmask"))]
    cols.append(fits.Column(name="ORMASK", format=f"{n}E", array=np.zeros((1, n), np.float32)))
    table = fits.BinTableHDU.from_columns(cols, name="COADD")
    hdul = fits.HDUList([primary, table])
    # the stray keys of the real DR9 files (NAXIS = 0 but NAXIS1/NAXIS2 present)
    hdul[0].header.set("NAXIS1", n, after="NAXIS")
    hdul[0].header.set("NAXIS2", 5, after="NAXIS1")
    _write(hdul, path, verify="ignore")
    return a


def write_sdss_spec(path: Path, rng: np.random.Generator, n: int = 3800) -> dict:
    loglam = (3.5800 + 1e-4 * np.arange(n)).astype(np.float32)
    flux = smooth_flux(n, rng, 10.0)
    ivar = np.full(n, 2.0, np.float32)
    and_mask = np.zeros(n, np.int32)
    and_mask[100:110] = 16
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=loglam),
        fits.Column(name="ivar", format="E", array=ivar),
        fits.Column(name="and_mask", format="J", array=and_mask),
    ], name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column(name="PLATE", format="J", array=[266]),
        fits.Column(name="MJD", format="J", array=[51602]),
        fits.Column(name="FIBERID", format="J", array=[13]),
        fits.Column(name="PLUG_RA", format="D", array=[146.9341]),
        fits.Column(name="PLUG_DEC", format="D", array=[-0.6704]),
        fits.Column(name="CLASS", format="6A", array=["GALAXY"]),
        fits.Column(name="SUBCLASS", format="21A", array=[""]),
        fits.Column(name="Z", format="E", array=[0.1213]),
        fits.Column(name="Z_ERR", format="E", array=[1e-5]),
        fits.Column(name="SN_MEDIAN", format="5E", array=[[1.4, 8.5, 21.0, 24.4, 16.3]]),
        fits.Column(name="RUN2D", format="3A", array=["26"]),
    ], name="SPECOBJ")
    _write(fits.HDUList([fits.PrimaryHDU(), coadd, specobj]), path)
    return {"wavelength": 10.0 ** loglam.astype(np.float64), "flux": flux, "ivar": ivar,
            "and_mask": and_mask}


def write_sdss_spspec(path: Path, rng: np.random.Generator, n: int = 3000) -> dict:
    flux = smooth_flux(n, rng, 20.0)
    sigma = np.full(n, 0.5, np.float32)
    sigma[:5] = 0.0
    data = np.vstack([flux, flux - 20.0, sigma, np.zeros(n), np.zeros(n)]).astype(np.float32)
    h = fits.Header()
    h["TELESCOP"] = "SDSS 2.5-M"
    h["COEFF0"] = 3.5797
    h["COEFF1"] = 1e-4
    h["PLATEID"] = 266
    h["MJD"] = 51630
    h["FIBERID"] = 1
    h["RAOBJ"] = 150.1
    h["DECOBJ"] = -0.5
    h["Z"] = 0.5
    h["Z_ERR"] = 1e-4
    h["SPEC_CLN"] = 3
    h["SN_G"], h["SN_R"], h["SN_I"] = 5.0, 7.0, 6.0
    _write(fits.PrimaryHDU(data, header=h), path)
    return {"flux": flux, "sigma": sigma, "wavelength": 10 ** (3.5797 + 1e-4 * np.arange(n))}


def write_desi_coadd(path: Path, rng: np.random.Generator, nspec: int = 3) -> dict:
    arms = {"B": (3600.0, 5800.0), "R": (5760.0, 7620.0), "Z": (7520.0, 9824.0)}
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["SPECPROD"] = "iron"
    truth = {}
    for arm, (lo, hi) in arms.items():
        wl = np.arange(lo, hi + 0.01, 0.8)
        flux = (rng.normal(0, 1, (nspec, wl.size)) + 5).astype(np.float32)
        ivar = np.full((nspec, wl.size), 4.0, np.float32)
        mask = np.zeros((nspec, wl.size), np.int32)
        mask[:, :3] = 1
        truth[arm] = (wl, flux, ivar, mask)
        hdus.append(fits.ImageHDU(wl, name=f"{arm}_WAVELENGTH"))
        hdus.append(fits.ImageHDU(flux, name=f"{arm}_FLUX"))
        hdus.append(fits.ImageHDU(ivar, name=f"{arm}_IVAR"))
        hdus.append(fits.ImageHDU(mask, name=f"{arm}_MASK"))
    tids = np.array([39627000000000001 + i for i in range(nspec)], dtype=np.int64)
    hdus.insert(1, fits.BinTableHDU.from_columns([
        fits.Column(name="TARGETID", format="K", array=tids),
        fits.Column(name="TARGET_RA", format="D", array=np.linspace(10, 11, nspec)),
        fits.Column(name="TARGET_DEC", format="D", array=np.linspace(-5, -4, nspec)),
    ], name="FIBERMAP"))
    hdus.append(fits.BinTableHDU.from_columns([
        fits.Column(name="TARGETID", format="K", array=tids),
        fits.Column(name="Z", format="D", array=np.linspace(0.1, 0.3, nspec)),
        fits.Column(name="ZERR", format="D", array=np.full(nspec, 1e-4)),
        fits.Column(name="SPECTYPE", format="6A", array=["GALAXY"] * nspec),
    ], name="REDSHIFTS"))
    _write(fits.HDUList(hdus), path)
    return {"arms": truth, "targetid": tids}


def write_table_1d(path: Path, rng: np.random.Generator, n: int = 1757, unit: str = "Angstrom",
                   comment: str = "Air wavelength", scale: float = 1.0) -> dict:
    wl = np.linspace(6282.15, 6732.88, n)
    flux = 1.0 + 0.01 * rng.normal(size=n)
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="spectral", format="D", array=wl / scale, unit=unit),
        fits.Column(name="flux", format="D", array=flux),
    ])
    table.header.comments["TTYPE1"] = comment
    table.header["RA"] = 279.23
    table.header["DEC"] = 38.78
    table.header["OBJECT"] = "alpha Lyr"
    table.header["DS_IDPUB"] = "ivo://asu.cas.cz/stel/ccd700/vh130075"
    _write(fits.HDUList([fits.PrimaryHDU(), table]), path)
    return {"wavelength": wl, "flux": flux}


def write_lamost_mrs(path: Path, rng: np.random.Generator) -> None:
    n = 100
    cols = [fits.Column(name=c, format="E", array=rng.normal(size=n).astype(np.float32))
            for c in ("FLUX", "IVAR", "LOGLAM")]
    hdus = [fits.PrimaryHDU(header=fits.Header([("TELESCOP", "LAMOST")])),
            fits.BinTableHDU.from_columns(cols, name="COADD_B"),
            fits.BinTableHDU.from_columns(cols, name="COADD_R")]
    _write(fits.HDUList(hdus), path)


def _write(hdu: fits.HDUList | fits.PrimaryHDU, path: Path, verify: str = "exception") -> None:
    path = Path(path)
    if isinstance(hdu, fits.PrimaryHDU):
        hdu = fits.HDUList([hdu])
    if path.name.endswith(".gz"):
        import io

        buf = io.BytesIO()
        hdu.writeto(buf, output_verify=verify)
        path.write_bytes(gzip.compress(buf.getvalue()))
    else:
        hdu.writeto(path, overwrite=True, output_verify=verify)


def write_bad_inputs(directory: Path, good_lamost: Path, rng: np.random.Generator
                     ) -> dict[str, Path]:
    """The bad inputs every reader/ingester must reject with a reason."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = good_lamost.read_bytes()
    out = {}
    out["truncated"] = directory / "truncated.fits"
    out["truncated"].write_bytes(raw[: len(raw) // 2])
    out["random"] = directory / "random.fits"
    out["random"].write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    out["empty"] = directory / "empty.fits"
    out["empty"].write_bytes(b"")
    out["truncated_gz"] = directory / "truncated.fits.gz"
    out["truncated_gz"].write_bytes(gzip.compress(raw)[:3000])
    out["wrong_shape"] = directory / "wrong_shape.fits"
    h = lamost_header("C", 3900)
    _write(fits.PrimaryHDU(rng.normal(size=(2, 3900)).astype(np.float32), header=h),
           out["wrong_shape"])
    out["all_nan"] = directory / "all_nan.fits"
    a = lamost_arrays(3900, rng)
    a["flux"] = np.full(3900, np.nan, np.float32)
    write_lamost_image(out["all_nan"], "C", rng, arrays=a)
    return out
