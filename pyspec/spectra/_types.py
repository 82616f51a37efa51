"""The in-memory spectrum types: one spectrum, and spectra of one file on one grid.

Readers (:mod:`pyspec.io`), simulation and array inputs all produce these;
preprocessing, the measurements and the engine consume them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np


@dataclasses.dataclass(eq=False)
class Spectrum:
    """One spectrum as stored in its file.

    Attributes
    ----------
    wavelength : ndarray of shape (n_pixels,), float64
        Wavelength in Angstrom, as stored (vacuum for LAMOST and SDSS;
        ``meta["vacuum"]`` says which).
    flux : ndarray of shape (n_pixels,), float32
        Flux in the file's units.
    ivar : ndarray of shape (n_pixels,), float32
        Inverse variance of ``flux`` (0 where unknown).
    mask : ndarray of shape (n_pixels,), bool
        True marks a bad pixel: ivar <= 0, non-finite flux or ivar, nonzero
        and-mask, or part of a run of exactly-zero flux at either end.
    meta : dict
        Keys :data:`META_KEYS` plus format-specific extras.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    def __repr__(self) -> str:
        wl = self.wavelength
        rng = f"{wl[0]:.1f}-{wl[-1]:.1f} A" if wl.size else "empty"
        return (f"Spectrum(id={self.meta.get('id')!r}, layout={self.meta.get('layout')!r}, "
                f"n_pixels={len(self)}, {rng}, masked={int(self.mask.sum())})")


@dataclasses.dataclass(eq=False)
class SpectrumBatch:
    """Spectra of one file sharing a pixel count.

    Attributes
    ----------
    wavelength : ndarray of shape (n_pixels,) or (n_spectra, n_pixels), float64
        Angstrom; 1-D when all spectra share the grid.
    flux, ivar : ndarray of shape (n_spectra, n_pixels), float32
    mask : ndarray of shape (n_spectra, n_pixels), bool
    ids : list of str
    meta : list of dict
        One metadata dict per spectrum (see :data:`META_KEYS`).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray
    ids: list[str]
    meta: list[dict[str, Any]]

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    def spectrum(self, i: int) -> Spectrum:
        """The ``i``-th spectrum as a :class:`Spectrum`."""
        wl = self.wavelength if self.wavelength.ndim == 1 else self.wavelength[i]
        return Spectrum(wl, self.flux[i], self.ivar[i], self.mask[i], self.meta[i])

    def __iter__(self) -> Iterator[Spectrum]:
        for i in range(len(self)):
            yield self.spectrum(i)
