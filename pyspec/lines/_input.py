"""Input adapter shared by ``pyspec.lines``, ``pyspec.indices`` and ``pyspec.measure``.

The measurement functions accept, for one spectrum,

* a :class:`pyspec.Spectrum` (or any object with ``wavelength``, ``flux`` and
  ``ivar`` attributes and optional ``mask`` and ``meta``), or
* a ``(wavelength, flux, ivar)`` triple of 1-D arrays,

and for a batch

* a list (or tuple of more than three items) of the above, or
* a ``(wavelength, flux, ivar)`` triple whose ``flux``/``ivar`` have shape
  ``(n_spectra, n_pixels)``, with ``wavelength`` of shape ``(n_pixels,)`` (a
  shared grid) or ``(n_spectra, n_pixels)``.

Everything is converted to :class:`Prepared` items: float64 wavelength in
vacuum Angstrom (air grids, ``meta['vacuum'] is False``, are converted), float64
flux, float64 ivar with masked and non-finite pixels set to ivar = 0.  Bad
items in a batch are kept as :class:`Prepared` with ``error`` set so that batch
drivers can record the reason and carry on; single-spectrum calls raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Prepared:
    """One spectrum after validation (``error`` is None when usable)."""

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    meta: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def good(self) -> np.ndarray:
        return self.ivar > 0


def vacuum_to_air(wavelength: np.ndarray | float) -> np.ndarray:
    """Vacuum to air wavelength (Angstrom) with the IAU standard formula.

    Morton (2000, ApJS 130, 403), eq. 8, with the refractive index of
    Ciddor (1996); valid above 2000 Angstrom.
    """
    w = np.asarray(wavelength, dtype=np.float64)
    s2 = (1e4 / w) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return w / n


def air_to_vacuum(wavelength: np.ndarray | float) -> np.ndarray:
    """Air to vacuum wavelength (Angstrom): fixed-point inverse of :func:`vacuum_to_air`.

    Three iterations reach 1e-8 Angstrom over 3000-10000 Angstrom.
    """
    air = np.asarray(wavelength, dtype=np.float64)
    vac = air.copy()
    for _ in range(4):
        vac = vac + (air - vacuum_to_air(vac))
    return vac


def _is_spectrum_like(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("wavelength", "flux", "ivar"))


def _is_triple(obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 3 and not any(
        _is_spectrum_like(o) or isinstance(o, tuple) for o in obj)


def _prepare_one(wavelength: Any, flux: Any, ivar: Any, mask: Any = None,
                 meta: dict | None = None) -> Prepared:
    meta = dict(meta or {})
    try:
        w = np.asarray(wavelength, dtype=np.float64)
        f = np.asarray(flux, dtype=np.float64)
        iv = np.asarray(ivar, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return Prepared(np.empty(0), np.empty(0), np.empty(0), meta,
                        f"arrays are not numeric: {exc}")
    if w.ndim != 1 or f.shape != w.shape or iv.shape != w.shape:
        return Prepared(np.empty(0), np.empty(0), np.empty(0), meta,
                        f"expected 1-D wavelength, flux and ivar of equal length, got shapes "
                        f"{w.shape}, {f.shape}, {iv.shape}")
    if w.size < 10:
        return Prepared(w, f, iv, meta, f"too few pixels ({w.size})")
    if not np.all(np.isfinite(w)) or np.any(np.diff(w) <= 0):
        return Prepared(w, f, iv, meta, "wavelength must be finite and strictly increasing")
    bad = ~np.isfinite(f) | ~np.isfinite(iv) | (iv < 0)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != w.shape:
            return Prepared(w, f, iv, meta,
                            f"mask shape {m.shape} does not match wavelength {w.shape}")
        bad |= m
    if bad.any():
        f = np.where(bad, 0.0, f)
        iv = np.where(bad, 0.0, iv)
    if meta.get("vacuum") is False:
        w = air_to_vacuum(w)
    return Prepared(np.ascontiguousarray(w), np.ascontiguousarray(f),
                    np.ascontiguousarray(iv), meta)


def _from_spectrum(s: Any) -> Prepared:
    return _prepare_one(s.wavelength, s.flux, s.ivar, getattr(s, "mask", None),
                        getattr(s, "meta", None))


def as_prepared(spectra: Any) -> tuple[list[Prepared], bool]:
    """Convert any accepted input into a list of :class:`Prepared`.

    Returns
    -------
    items : list of Prepared
        One per spectrum, in input order; unusable items carry ``error``.
    single : bool
        True when the input was one spectrum (callers then return a scalar
        result and raise on ``error``).

    Raises
    ------
    TypeError
        When the input is none of the accepted forms.
    ValueError
        When a ``(wavelength, flux, ivar)`` batch triple has inconsistent shapes.
    """
    if _is_spectrum_like(spectra):
        return [_from_spectrum(spectra)], True
    if _is_triple(spectra):
        w, f, iv = (np.asarray(a) for a in spectra)
        if f.ndim == 1:
            return [_prepare_one(w, f, iv)], True
        if f.ndim != 2 or iv.shape != f.shape:
            raise ValueError(f"expected flux and ivar of shape (n_spectra, n_pixels), got "
                             f"{f.shape} and {iv.shape}")
        if w.ndim == 1:
            if w.shape[0] != f.shape[1]:
                raise ValueError(f"shared wavelength grid has {w.shape[0]} pixels but flux has "
                                 f"{f.shape[1]}")
            return [_prepare_one(w, f[i], iv[i]) for i in range(f.shape[0])], False
        if w.shape != f.shape:
            raise ValueError(f"wavelength shape {w.shape} does not match flux {f.shape}")
        return [_prepare_one(w[i], f[i], iv[i]) for i in range(f.shape[0])], False
    if isinstance(spectra, (list, tuple)):
        items = []
        for s in spectra:
            if _is_spectrum_like(s):
                items.append(_from_spectrum(s))
            elif _is_triple(s):
                items.append(_prepare_one(*s))
            else:
                items.append(Prepared(np.empty(0), np.empty(0), np.empty(0), {},
                                      f"not a spectrum: {type(s).__name__}"))
        return items, False
    raise TypeError(f"expected a Spectrum, a (wavelength, flux, ivar) tuple or a list of them, "
                    f"got {type(spectra).__name__}")
