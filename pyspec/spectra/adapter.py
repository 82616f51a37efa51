"""The one input adapter: everything pyspec accepts as "spectra" -> spectrum objects.

Accepted, for one spectrum:

* a :class:`~pyspec.spectra.Spectrum`, or any object with ``wavelength``,
  ``flux`` and ``ivar`` attributes (``mask`` and ``meta`` optional),
* a ``(wavelength, flux, ivar)`` tuple of 1-D arrays,
* a path, when the caller passes a ``reader`` (:mod:`pyspec.io`);

and for many:

* a :class:`~pyspec.spectra.SpectrumBatch`, a ``ReadResult`` (its spectra
  and its rejected files), or a list or tuple of single spectra,
* a ``(wavelength, flux, ivar)`` tuple whose ``flux`` and ``ivar`` have shape
  ``(n_spectra, n_pixels)``, with ``wavelength`` of shape ``(n_pixels,)``
  (shared) or ``(n_spectra, n_pixels)``,
* an array of flux rows on the caller's ``grid`` (the engine's queries),
* a list of paths, with a ``reader``.

Nothing here validates pixel values: preprocessing and the measurements do,
each with its own rules and error messages.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from pyspec.spectra._types import Spectrum, SpectrumBatch

ACCEPTED = ("a Spectrum, SpectrumBatch, ReadResult, a (wavelength, flux, ivar) tuple or a list "
            "of them")


@dataclasses.dataclass(eq=False)
class ArraySpectrum:
    """A spectrum given as arrays (a ``(wavelength, flux, ivar)`` tuple); not validated."""

    wavelength: Any
    flux: Any
    ivar: Any
    mask: Any = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SpectraInput:
    """What :func:`as_spectra` made of its input.

    Attributes
    ----------
    spectra : list
        Spectrum objects in input order; None where an item of a list is not
        a spectrum (only with ``strict=False``; ``errors`` says why).
    names : list of str
        A label per spectrum (its id, path or position) for reject lists.
    rejects : list of (str, str)
        Files a ``reader`` could not read, with the reason.
    errors : list of (str or None)
        Why an item is not a spectrum (None for the good ones).
    single : bool
        True when the input was one spectrum.
    """

    spectra: list[Any]
    names: list[str]
    rejects: list[tuple[str, str]]
    errors: list[str | None]
    single: bool


def is_spectrum_like(obj: Any) -> bool:
    """True for objects with ``wavelength``, ``flux`` and ``ivar`` of one spectrum."""
    return not isinstance(obj, SpectrumBatch) and all(
        hasattr(obj, a) for a in ("wavelength", "flux", "ivar"))


def _is_triple(obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 3 and not any(
        is_spectrum_like(o) or isinstance(o, tuple) or isinstance(o, (str, os.PathLike))
        for o in obj)


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _name(s: Any, default: Any) -> str:
    meta = getattr(s, "meta", None) or {}
    return str(meta.get("id", default))


def _triple(obj: tuple) -> list[ArraySpectrum]:
    """Spectra of a ``(wavelength, flux, ivar)`` tuple (one, or a batch of rows)."""
    w, f, iv = (np.asarray(a) for a in obj)
    if f.ndim == 1:
        return [ArraySpectrum(w, f, iv)]
    if f.ndim != 2 or iv.shape != f.shape:
        raise ValueError(f"expected flux and ivar of shape (n_spectra, n_pixels), got "
                         f"{f.shape} and {iv.shape}")
    if w.ndim == 1:
        if w.shape[0] != f.shape[1]:
            raise ValueError(f"shared wavelength grid has {w.shape[0]} pixels but flux has "
                             f"{f.shape[1]}")
        return [ArraySpectrum(w, f[i], iv[i]) for i in range(f.shape[0])]
    if w.shape != f.shape:
        raise ValueError(f"wavelength shape {w.shape} does not match flux {f.shape}")
    return [ArraySpectrum(w[i], f[i], iv[i]) for i in range(f.shape[0])]


def _grid_rows(arr: np.ndarray, grid: np.ndarray) -> list[Spectrum]:
    """Flux rows on ``grid`` as spectra: non-finite pixels masked, the others ivar 1."""
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2 or arr.shape[1] != grid.size:
        raise ValueError(f"array queries must be flux on the engine's grid: expected "
                         f"shape ({grid.size},) or (n, {grid.size}), got {arr.shape}")
    wave = np.asarray(grid, np.float64)
    out = []
    for i, row in enumerate(arr):
        flux = np.asarray(row, np.float32)
        finite = np.isfinite(flux)
        out.append(Spectrum(wavelength=wave, flux=np.where(finite, flux, 0),
                            ivar=finite.astype(np.float32), mask=~finite,
                            meta={"id": f"array[{i}]", "file": None}))
    return out


def as_spectra(obj: Any, *, grid: Any | None = None, reader: Any | None = None,
               strict: bool = True) -> SpectraInput:
    """Turn any accepted input (see the module docstring) into spectrum objects.

    Parameters
    ----------
    obj : the input
    grid : array of shape (n_pixels,), optional
        Accept a NumPy array of flux rows on this wavelength grid.
    reader : module or object, optional
        With ``read_spectrum(path)`` and ``read_spectra(paths)`` (e.g.
        :mod:`pyspec.io`): accept paths.
    strict : bool
        Raise TypeError for an item of a list that is not a spectrum (else it
        is kept as None with a reason in ``errors``).

    Raises
    ------
    TypeError
        The input is none of the accepted forms.
    ValueError
        A batch tuple or an array of flux rows has inconsistent shapes.
    """
    if is_spectrum_like(obj):
        return SpectraInput([obj], [_name(obj, "spectrum")], [], [None], True)
    if _is_triple(obj):
        items = _triple(obj)
        single = np.ndim(obj[1]) == 1
        return SpectraInput(items, [f"array[{i}]" for i in range(len(items))], [],
                            [None] * len(items), single)
    if grid is not None and isinstance(obj, np.ndarray):
        items = _grid_rows(obj, np.asarray(grid))
        return SpectraInput(items, [f"array[{i}]" for i in range(len(items))], [],
                            [None] * len(items), False)
    if reader is not None and _is_path(obj):
        return SpectraInput([reader.read_spectrum(obj)], [str(obj)], [], [None], True)
    if isinstance(obj, SpectrumBatch):
        items = list(obj)
        return SpectraInput(items, [_name(s, i) for i, s in enumerate(items)], [],
                            [None] * len(items), False)
    if hasattr(obj, "spectra") and hasattr(obj, "rejects"):  # pyspec.io.ReadResult
        items = list(obj.spectra)
        return SpectraInput(items, [_name(s, i) for i, s in enumerate(items)],
                            [(str(f), str(r)) for f, r in obj.rejects], [None] * len(items),
                            False)
    if isinstance(obj, (list, tuple)) or (not isinstance(obj, (str, bytes, np.ndarray))
                                          and hasattr(obj, "__iter__")):
        items = list(obj)
        if reader is not None and items and all(_is_path(x) for x in items):
            res = reader.read_spectra(items)
            spectra = list(res.spectra)
            return SpectraInput(spectra, [str((getattr(s, "meta", None) or {}).get("file", ""))
                                          for s in spectra],
                                [(str(f), str(r)) for f, r in res.rejects],
                                [None] * len(spectra), False)
        spectra: list[Any] = []
        errors: list[str | None] = []
        for x in items:
            if is_spectrum_like(x):
                spectra.append(x)
                errors.append(None)
            elif _is_triple(x):
                spectra.append(ArraySpectrum(*(np.asarray(a) for a in x)))
                errors.append(None)
            elif strict:
                raise TypeError(f"expected {ACCEPTED}; an item of the list is a "
                                f"{type(x).__name__}")
            else:
                spectra.append(None)
                errors.append(f"not a spectrum: {type(x).__name__}")
        return SpectraInput(spectra, [_name(s, i) for i, s in enumerate(spectra)], [], errors,
                            False)
    raise TypeError(f"expected {ACCEPTED}, got {type(obj).__name__}")
