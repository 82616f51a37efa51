"""Containers and the loader registry of :mod:`pyspec.io`.

A *loader* is an ``identify(view) -> bool`` / ``load(view) -> SpectrumBatch``
pair registered with a label and a priority. ``view`` is a
:class:`FitsView`: the HDUs of one file, read either by the fast NumPy
parser (:mod:`pyspec.io._rawfits`) or by astropy. Both present the same small
interface (``header``, ``kind``, ``name``, ``image()``, ``colnames``,
``column(name)``), so each survey format is written once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from pyspec.errors import FitsFormatError
from pyspec.spectra._types import Spectrum, SpectrumBatch

#: Metadata keys every spectrum carries (missing values are None or NaN).
META_KEYS = ("id", "file", "ra", "dec", "class", "subclass", "z", "z_err", "snr_u", "snr_g",
             "snr_r", "snr_i", "snr_z", "data_release", "vacuum", "layout")
#: Float-valued keys of :data:`META_KEYS` (NaN when missing).
META_FLOAT_KEYS = ("ra", "dec", "z", "z_err", "snr_u", "snr_g", "snr_r", "snr_i", "snr_z")

#: S/N values that surveys write for "not measured".
SNR_SENTINELS = (99.0, 999.0, -9999.0, -999.0, -99.0)


def empty_meta() -> dict[str, Any]:
    """A metadata dict with every schema key set to its missing value."""
    meta: dict[str, Any] = dict.fromkeys(META_KEYS)
    for key in META_FLOAT_KEYS:
        meta[key] = math.nan
    return meta


def clean_snr(value: object) -> float:
    """S/N as float, with sentinels (99, 999, -9999, negatives, non-numbers) -> NaN."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(v) or v < 0 or v in SNR_SENTINELS:
        return math.nan
    return v


def clean_float(value: object, sentinels: Sequence[float] = (-9999.0, -999.0)) -> float:
    """Float, or NaN for missing, non-numeric and sentinel values."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(v) or v in sentinels:
        return math.nan
    return v


def clean_str(value: object) -> str | None:
    """Stripped string (bytes decoded), None when empty or missing."""
    if value is None:
        return None
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("ascii", "replace")
    s = str(value).strip()
    return s or None


class ReadResult(Sequence):
    """Spectra read from many files, plus the files that could not be read.

    Attributes
    ----------
    spectra : list of Spectrum
    rejects : list of (file, reason)
    """

    def __init__(self, spectra: list[Spectrum], rejects: list[tuple[str, str]]) -> None:
        self.spectra = spectra
        self.rejects = rejects

    def __getitem__(self, i):  # type: ignore[override]
        return self.spectra[i]

    def __len__(self) -> int:
        return len(self.spectra)

    def __iter__(self) -> Iterator[Spectrum]:
        return iter(self.spectra)

    def __repr__(self) -> str:
        return f"ReadResult({len(self.spectra)} spectra, {len(self.rejects)} rejected files)"


@dataclasses.dataclass(frozen=True)
class Loader:
    """A registered format: ``identify(view) -> bool`` and ``load(view) -> SpectrumBatch``."""

    label: str
    identify: Callable[[Any], bool]
    load: Callable[[Any], SpectrumBatch]
    priority: int = 0


_REGISTRY: list[Loader] = []


def register_loader(label: str, identify: Callable[[Any], bool],
                    load: Callable[[Any], SpectrumBatch], priority: int = 0) -> Loader:
    """Register a format loader; higher priority is tried first (ties: registration order).

    Re-registering a label replaces the earlier loader.
    """
    loader = Loader(label, identify, load, priority)
    for i, old in enumerate(_REGISTRY):
        if old.label == label:
            _REGISTRY[i] = loader
            break
    else:
        _REGISTRY.append(loader)
    return loader


def unregister_loader(label: str) -> None:
    """Remove a registered loader (KeyError if no loader has that label)."""
    for i, old in enumerate(_REGISTRY):
        if old.label == label:
            del _REGISTRY[i]
            return
    raise KeyError(f"no loader registered as {label!r}")


def loaders() -> list[Loader]:
    """Registered loaders in the order they are tried."""
    order = {id(x): i for i, x in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda x: (-x.priority, order[id(x)]))


def bad_pixel_mask(flux: np.ndarray, ivar: np.ndarray,
                   and_mask: np.ndarray | None = None) -> np.ndarray:
    """Mask bits for one or more spectra (last axis = pixels).

    Bad: ivar <= 0, non-finite flux or ivar, nonzero ``and_mask``, and runs of
    exactly-zero flux touching the blue or red end.
    """
    flux = np.asarray(flux)
    ivar = np.asarray(ivar)
    mask = ~np.isfinite(flux) | ~np.isfinite(ivar) | ~(ivar > 0)
    if and_mask is not None:
        am = np.asarray(and_mask)
        mask |= ~np.isfinite(am) | (am != 0) if am.dtype.kind == "f" else (am != 0)
    zero = flux == 0
    if zero[..., 0].any() or zero[..., -1].any():
        # a zero run touching the blue end: cumulative AND from the left
        lead = np.logical_and.accumulate(zero, axis=-1)
        trail = np.flip(np.logical_and.accumulate(np.flip(zero, axis=-1), axis=-1), axis=-1)
        mask |= lead | trail
    return mask


def fail(view: Any, reason: str) -> FitsFormatError:
    """A FitsFormatError naming the file of ``view``."""
    return FitsFormatError(f"{view.name}: {reason}")
