"""Test helpers for the line/index tests: a minimal FITS reader and line injection.

The reader covers the LAMOST (image with and without a wavelength row, DR9+
COADD table) and SDSS ``spec`` layouts of the shipped sample and the shared
corpus.  It exists so these tests do not depend on ``pyspec.io``; it returns
objects with the ``pyspec.Spectrum`` attributes (wavelength, flux, ivar, mask,
meta) that the measurement functions accept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits


@dataclass
class SimpleSpectrum:
    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict = field(default_factory=dict)


def _header_z(h) -> float:
    try:
        z = float(h.get("Z", np.nan))
    except (TypeError, ValueError):
        return np.nan
    return z if z > -99 else np.nan


def read_simple(path: str | Path) -> SimpleSpectrum:
    """Read one file; astropy's header warnings (non-ASCII cards, padding) are
    ignored here because these tests are about measurements, not I/O."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read(path)


def load_sample(obj_class: str, subclass_prefix: str = "", min_snr: float = 0.0,
                limit: int | None = None) -> list[SimpleSpectrum]:
    """Shipped sample spectra of one class (files that do not open are skipped)."""
    from astropy.table import Table

    from pyspec.data import SAMPLE_DIR, sample_index_path

    idx = Table.read(sample_index_path(), format="ascii.csv")
    out = []
    for r in idx:
        if r["obj_class"] != obj_class or not str(r["subclass"]).startswith(subclass_prefix):
            continue
        if not float(r["snr_r"]) >= min_snr:
            continue
        try:
            out.append(read_simple(SAMPLE_DIR / r["file"]))
        except OSError:
            continue
        if limit is not None and len(out) >= limit:
            break
    return out


def _read(path: str | Path) -> SimpleSpectrum:
    with fits.open(path, memmap=False) as hdul:
        h0 = hdul[0].header
        if len(hdul) > 1 and hdul[1].name == "COADD" and "loglam" in hdul[1].columns.names:
            d = hdul[1].data  # SDSS spec
            w = 10.0 ** np.asarray(d["loglam"], dtype=np.float64)
            f = np.asarray(d["flux"], dtype=np.float32)
            iv = np.asarray(d["ivar"], dtype=np.float32)
            mask = np.asarray(d["and_mask"]) != 0
            z = float(hdul[2].data["Z"][0]) if len(hdul) > 2 else np.nan
            cls = str(hdul[2].data["CLASS"][0]).strip() if len(hdul) > 2 else ""
            meta = {"z": z, "class": cls, "subclass": "", "vacuum": True}
        elif len(hdul) > 1 and hdul[1].name == "COADD":
            d = hdul[1].data  # LAMOST DR9+
            w = np.asarray(d["WAVELENGTH"][0], dtype=np.float64)
            f = np.asarray(d["FLUX"][0], dtype=np.float32)
            iv = np.asarray(d["IVAR"][0], dtype=np.float32)
            mask = np.asarray(d["ANDMASK"][0]) != 0
            meta = {"z": _header_z(h0), "class": h0.get("CLASS", ""),
                    "subclass": h0.get("SUBCLASS", ""), "vacuum": True}
        else:
            data = np.asarray(hdul[0].data, dtype=np.float64)
            f = data[0].astype(np.float32)
            iv = data[1].astype(np.float32)
            if "Subcontinuum" in str(h0.get("EXTEN0", "")) or "Subcontinuum" in str(
                    h0.get("EXTNAME", "")):
                w = 10.0 ** (h0["COEFF0"] + h0["COEFF1"] * np.arange(f.size))
            else:
                w = data[2]
            mask = data[3] != 0
            meta = {"z": _header_z(h0), "class": h0.get("CLASS", ""),
                    "subclass": h0.get("SUBCLASS", ""), "vacuum": True}
    meta["file"] = str(path)
    return SimpleSpectrum(np.ascontiguousarray(w), f, iv, mask, meta)


def gaussian_lines(wavelength: np.ndarray, z: float, fluxes: dict[str, float],
                   sigma_kms: float, rest: dict[str, float]) -> np.ndarray:
    """Sum of Gaussians with integrated ``fluxes`` at rest wavelengths * (1 + z)."""
    out = np.zeros_like(wavelength)
    for name, flux in fluxes.items():
        mu = rest[name] * (1.0 + z)
        sig = mu * sigma_kms / 299792.458
        out += flux / (sig * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wavelength - mu) / sig) ** 2)
    return out
