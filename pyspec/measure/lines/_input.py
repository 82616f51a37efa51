"""Validation of the measurements' input (:mod:`pyspec.measure` and its ``lines``, ``indices``).

The forms accepted are those of the one input adapter,
:func:`pyspec.spectra.as_spectra`; this module validates each spectrum for
the measurements.

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

from pyspec.spectra import air_to_vacuum, as_spectra, vacuum_to_air  # noqa: F401


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
    """Convert any accepted input (:func:`pyspec.spectra.as_spectra`) into :class:`Prepared`.

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
    got = as_spectra(spectra, strict=False)
    items = [_from_spectrum(s) if s is not None else
             Prepared(np.empty(0), np.empty(0), np.empty(0), {}, why)
             for s, why in zip(got.spectra, got.errors, strict=True)]
    return items, got.single
