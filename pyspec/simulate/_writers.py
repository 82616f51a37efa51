"""Writers of simulated spectra: a SpectrumStore in chunks, or LAMOST-layout FITS files.

The store writer holds one chunk at a time (flux, ivar and labels of
``chunk_size`` spectra), so memory does not grow with the number of spectra.
The FITS writer produces files in two real LAMOST layouts that
:func:`pyspec.read_spectrum` reads by structure:

* ``"C"``: DR5-DR8 style, primary image of 5 rows (flux, ivar, wavelength,
  andmask, ormask) with OBSID and SNR* header cards;
* ``"D"``: DR9+ style, empty primary HDU plus a one-row binary table
  ``COADD`` with vector columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK,
  NORMALIZATION.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# LAMOST's own log-linear pixelisation: log10(lambda) = 3.5682 + 1e-4 * i, 3909 pixels
LAMOST_COEFF0 = 3.5682
LAMOST_COEFF1 = 1e-4
LAMOST_NPIX = 3909
LAYOUTS = ("C", "D")
_ANDMASK_BAD = 1.0  # bad-column runs
_ANDMASK_PAD = 32.0  # zero padding at the ends (no data)


def lamost_native_wavelength() -> np.ndarray:
    """The LAMOST low-resolution pixel wavelengths (vacuum, Angstrom), 3909 pixels."""
    return 10.0 ** (LAMOST_COEFF0 + LAMOST_COEFF1 * np.arange(LAMOST_NPIX))


def _progress(total: int, enabled: bool, desc: str):
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, unit="spectra", desc=desc,
                disable=not (enabled and sys.stderr.isatty()))


def write_store(path, n: int, seed: int = 0, grid="lamost", chunk_size: int = 4096,
                progress: bool = False, templates=None, preprocessing: str = "similarity",
                **kwargs) -> Path:
    """Write ``n`` simulated spectra into a new SpectrumStore at ``path``.

    See :func:`pyspec.simulate.write_store`.
    """
    from pyspec.simulate._simulator import Simulator
    from pyspec.store import SpectrumStore

    _check_count(n)
    sim = Simulator(grid=grid, seed=seed, templates=templates, **kwargs)
    if sim.grid is None:
        raise TypeError("write_store needs a WavelengthGrid or preset name, not a bare array")
    pre = simulation_preprocessor(preprocessing, sim.grid)
    path = Path(path)
    with SpectrumStore.create(path, sim.grid, preprocessing=pre.to_dict()) as writer, \
            _progress(n, progress, "simulate") as bar:
        for batch in sim.iter_chunks(n, chunk_size):
            # normalised exactly as `pyspec ingest` would (a spectrum the recipe rejects
            # keeps a zero row, so row i stays simulated spectrum i)
            prepared = pre.apply_on_grid(batch.flux, batch.ivar)
            writer.append(prepared.flux, prepared.ivar, _rows(batch.labels))
            bar.update(len(batch))
    return path


def simulation_preprocessor(preprocessing, grid):
    """The named preprocessing recipe (or a Preprocessor) on the simulation's grid."""
    from pyspec.preprocess import Preprocessor

    pre = preprocessing if isinstance(preprocessing, Preprocessor) else \
        Preprocessor.preset(str(preprocessing))
    if pre.grid != grid:
        pre = Preprocessor.from_dict({**pre.to_dict(), "grid": grid.to_dict()})
    return pre


def _rows(table) -> list[dict]:
    """Table -> list of dicts of plain Python scalars (much faster than iterating Rows)."""
    names = table.colnames
    columns = [np.asarray(table[c]).tolist() for c in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return int(n)


def _header_cards(row, i: int, seed: int, wl: np.ndarray, layout: str) -> list:
    """Primary-header cards of one simulated LAMOST file."""
    dlog = np.diff(np.log10(wl))
    log_linear = bool(np.allclose(dlog, dlog[0], rtol=1e-6, atol=1e-12))
    obsid = 900_000_000 + i  # outside the range of real LAMOST obsids of the corpus
    snr = float(row["snr_r"])
    release = "LAMOST DR8" if layout == "C" else "LAMOST DR10"
    cards = [
        ("FILENAME", f"sim-{seed}-{i:09d}.fits", "Simulated by pyspec.simulate"),
        ("OBSID", obsid, "Unique number ID of this spectrum"),
        ("AUTHOR", "pyspec.simulate", "Who compiled the information"),
        ("DATA_V", release, "Data release version (layout emulated)"),
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope (emulated)"),
        ("RA", float(row["ra"]), "[deg] Right ascension of object"),
        ("DEC", float(row["dec"]), "[deg] Declination of object"),
        ("DESIG", f"SIM J{i:09d}", "Designation"),
        ("FIBERID", i % 250 + 1, "Fiber ID of Object"),
        ("VACUUM", True, "Wavelengths are in vacuum"),
        ("HELIO", True, "Heliocentric correction"),
        ("VERSPIPE", "v2.9.8", "Version of Pipeline (emulated)"),
        ("CLASS", str(row["class"]), "Class of object (template)"),
        ("SUBCLASS", str(row["subclass"]) or "Non", "Subclass of object (template)"),
        ("Z", float(row["z"]), "Redshift of object (injected)"),
        ("Z_ERR", 0.0, "Redshift error of object"),
        ("SNRU", snr * 0.3, "SNR of u filter"),
        ("SNRG", snr * 0.8, "SNR of g filter"),
        ("SNRR", snr, "SNR of r filter"),
        ("SNRI", snr * 1.1, "SNR of i filter"),
        ("SNRZ", snr * 0.9, "SNR of z filter"),
        ("SIMSEED", int(seed), "pyspec.simulate seed"),
        ("SIMINDEX", int(row["id"]), "index of the spectrum in the simulation"),
        ("SIMTMPL", str(row["template"])[:60], ""),
        ("SIMRV", float(row["rv"]) if math.isfinite(row["rv"]) else 0.0,
         "[km/s] injected radial velocity (0 if z)"),
        ("SIMLMASK", _line_bits(str(row["lines"])), "injected lines, bit k = LINE_NAMES[k]"),
        ("SIMHAAMP", float(row["amp_Halpha"]), "injected H-alpha peak / continuum"),
    ]
    if log_linear:
        cards += [("NWORDER", 2, "Number of linear-log10 coefficients"),
                  ("WFITTYPE", "LOG-LINEAR", "Linear-log10 dispersion"),
                  ("COEFF0", float(np.log10(wl[0])), "Central wavelength (log10) of first pixel"),
                  ("COEFF1", float(dlog.mean()), "Log10 dispersion per pixel")]
    return cards


def _line_bits(lines: str) -> int:
    """Bit mask of injected lines (bit k = pyspec.simulate.LINE_NAMES[k])."""
    from pyspec.simulate._simulator import LINE_NAMES

    names = set(lines.split(",")) if lines else set()
    return sum(1 << k for k, name in enumerate(LINE_NAMES) if name in names)


def _andmask(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    m = np.zeros(flux.shape, np.float32)
    bad = ivar <= 0
    m[bad] = _ANDMASK_BAD
    m[bad & (flux == 0)] = _ANDMASK_PAD
    return m


def fits_hdulist(flux, ivar, wavelength, row, i: int, seed: int, layout: str):
    """One simulated spectrum as an astropy HDUList in LAMOST layout ``"C"`` or ``"D"``."""
    from astropy.io import fits

    if layout not in LAYOUTS:
        raise ValueError(f"unknown LAMOST layout {layout!r}; choose from {LAYOUTS}")
    wl = np.asarray(wavelength, np.float32)
    flux = np.asarray(flux, np.float32)
    ivar = np.asarray(ivar, np.float32)
    andmask = _andmask(flux, ivar)
    cards = _header_cards(row, i, seed, np.asarray(wavelength, float), layout)
    if layout == "C":
        data = np.stack([flux, ivar, wl, andmask, andmask])
        hdu = fits.PrimaryHDU(data)
        for key, value, comment in cards:
            hdu.header[key] = (value, comment)
        hdu.header["EXTEN0"] = ("Flux, Inverse, Wavelength, Andmask, Ormask", "")
        hdu.header["EXTNAME"] = ("Flux", "The extension name")
        return fits.HDUList([hdu])
    primary = fits.PrimaryHDU()
    for key, value, comment in cards:
        primary.header[key] = (value, comment)
    primary.header["N_EXTEN"] = (2, "The amount of extension")
    npix = flux.size
    cols = [fits.Column(name=name, format=f"{npix}E", array=arr[np.newaxis, :])
            for name, arr in (("FLUX", flux), ("IVAR", ivar), ("WAVELENGTH", wl),
                              ("ANDMASK", andmask), ("ORMASK", andmask),
                              ("NORMALIZATION", np.where(ivar > 0, 1.0, 0.0).astype(np.float32)))]
    table = fits.BinTableHDU.from_columns(cols, name="COADD")
    return fits.HDUList([primary, table])


def write_fits(directory, n: int, seed: int = 0, grid=None, layouts=LAYOUTS,
               progress: bool = False, gzip: bool = False, chunk_size: int = 1024,
               templates=None, **kwargs) -> list[Path]:
    """Write ``n`` simulated spectra as LAMOST FITS files, cycling through ``layouts``.

    ``grid`` defaults to LAMOST's native 3909-pixel log-linear grid. Files are
    named ``sim-<seed>-<index>.fits`` (``.fits.gz`` with ``gzip``); existing
    files are an error (FileExistsError), never overwritten.
    """
    from pyspec.simulate._simulator import Simulator

    _check_count(n)
    layouts = tuple(layouts)
    if not layouts or any(lay not in LAYOUTS for lay in layouts):
        raise ValueError(f"layouts must be a non-empty selection of {LAYOUTS}, got {layouts}")
    sim = Simulator(grid=lamost_native_wavelength() if grid is None else grid, seed=seed,
                    templates=templates, **kwargs)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".fits.gz" if gzip else ".fits"
    paths = []
    with _progress(n, progress, "simulate FITS") as bar:
        for batch in sim.iter_chunks(n, chunk_size):
            for k, row in enumerate(batch.labels):
                i = int(row["id"])
                path = directory / f"sim-{seed}-{i:09d}{suffix}"
                hdul = fits_hdulist(batch.flux[k], batch.ivar[k], batch.wavelength, row, i,
                                    seed, layouts[i % len(layouts)])
                hdul.writeto(path, overwrite=False)
                paths.append(path)
            bar.update(len(batch))
    return paths
