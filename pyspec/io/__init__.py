"""Reading survey spectra: format registry, fast path, and astropy fallback.

``read_spectrum(path)`` returns one :class:`Spectrum`; ``read_spectra(paths)``
returns a :class:`ReadResult` holding the spectra and the files that could
not be read, each with a reason. Formats are recognised by structure through
a registry of ``identify``/``load`` pairs (see :mod:`pyspec.io.fits` and
:func:`register_loader`).

Each file is first parsed by the fast path (:mod:`pyspec.io._rawfits`: header
cards and data blocks read directly with NumPy, ``.gz`` inflated by
:mod:`gzip`); anything it does not support goes through astropy, with
astropy's warnings caught for that file only. Both paths feed the same
loaders, so they return identical arrays and metadata.

Examples
--------
>>> from pyspec.data import sample_files
>>> from pyspec.io import read_spectrum
>>> s = read_spectrum(sample_files()[0])
>>> s.flux.dtype, s.wavelength.dtype, s.meta["vacuum"]
(dtype('float32'), dtype('float64'), True)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from pyspec.errors import FitsFormatError
from pyspec.io import fits as _fits  # noqa: F401  (registers the survey loaders)
from pyspec.io._base import (
    META_FLOAT_KEYS,
    META_KEYS,
    Loader,
    ReadResult,
    Spectrum,
    SpectrumBatch,
    bad_pixel_mask,
    empty_meta,
    loaders,
    register_loader,
    unregister_loader,
)
from pyspec.io._discover import FITS_SUFFIXES, LIST_SUFFIXES, iter_sources
from pyspec.io._rawfits import RawCorrupt, RawUnsupported
from pyspec.io._view import astropy_view, open_astropy, raw_view, read_bytes, source_name

__all__ = ["META_KEYS", "META_FLOAT_KEYS", "Loader", "ReadResult", "Spectrum", "SpectrumBatch",
           "FITS_SUFFIXES", "LIST_SUFFIXES", "bad_pixel_mask", "empty_meta", "iter_sources",
           "loaders", "read_batch", "read_spectra", "read_spectrum",
           "register_loader", "unregister_loader"]


def _dispatch(view: Any) -> SpectrumBatch:
    # overflowing casts of damaged data become inf and are masked: no warnings escape
    with np.errstate(all="ignore"):
        return _dispatch_checked(view)


def _dispatch_checked(view: Any) -> SpectrumBatch:
    for loader in loaders():
        if loader.identify(view):
            batch = loader.load(view)
            for m in batch.meta:
                m.setdefault("format", loader.label)
            _validate(view, batch)
            return batch
    from pyspec.io.fits import describe_layout

    labels = ", ".join(x.label for x in loaders())
    raise FitsFormatError(f"{view.name}: not a recognised spectrum layout "
                          f"({describe_layout(view)}); known formats: {labels}")


def _validate(view: Any, batch: SpectrumBatch) -> None:
    """Checks for loaders registered from outside (the built-in ones check in _batch)."""
    if batch.flux.ndim != 2 or batch.flux.shape[0] == 0 or batch.flux.shape[1] == 0:
        raise FitsFormatError(f"{view.name}: no pixels (flux has shape {batch.flux.shape})")


def _astropy_read(data: bytes, name: str, first_error: str | None) -> SpectrumBatch:
    # astropy's first import installs its own warnings.showwarning; imported inside the
    # catch_warnings block below it would replace the recorder, and the first file read in
    # a process would pass a truncation warning to astropy's log instead of rejecting it
    import astropy.io.fits  # noqa: F401

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = open_astropy(data)
            with hdul:
                batch = _dispatch(astropy_view(hdul, name))
        except FitsFormatError:
            raise
        except Exception as exc:  # noqa: BLE001  astropy fails on damaged input in many ways
            truncated = [str(w.message) for w in caught if "truncat" in str(w.message).lower()]
            if first_error:
                reason = first_error
            elif truncated:
                reason = f"truncated file ({truncated[0]})"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            raise FitsFormatError(f"{name}: not a readable FITS file ({reason})") from None
    messages = [str(w.message) for w in caught
                if not issubclass(w.category, ResourceWarning)]
    fatal = [m for m in messages if "truncat" in m.lower()]
    if fatal:
        raise FitsFormatError(f"{name}: truncated file ({fatal[0]})")
    if messages:
        for m in batch.meta:
            m["warnings"] = list(messages)
    return batch


def read_batch(source: Any, *, fast: bool = True) -> SpectrumBatch:
    """Read every spectrum of one file.

    Parameters
    ----------
    source : str, os.PathLike, binary file object, bytes or astropy HDUList
        A ``.fits`` or ``.fits.gz`` file (gzip is recognised by content).
    fast : bool
        Try the NumPy fast path first (default). ``False`` reads through
        astropy only; the results are identical.

    Returns
    -------
    SpectrumBatch

    Raises
    ------
    FitsFormatError
        Unknown or unsupported layout, corrupt or truncated file, no finite
        flux. The message names the file and the reason.
    OSError
        The file cannot be opened.
    """
    if hasattr(source, "__getitem__") and hasattr(source, "fileinfo") and hasattr(source, "info"):
        # an open astropy HDUList: the caller owns it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batch = _dispatch(astropy_view(source, source_name(source)))
        messages = [str(w.message) for w in caught
                    if not issubclass(w.category, ResourceWarning)]
        if messages:
            for m in batch.meta:
                m["warnings"] = messages
        return batch
    data, name = read_bytes(source)
    if len(data) == 0:
        raise FitsFormatError(f"{name}: empty file (0 bytes)")
    first_error = None
    if fast:
        try:
            return _dispatch(raw_view(data, name))
        except FitsFormatError:
            raise
        except RawCorrupt as exc:
            first_error = str(exc)
        except (RawUnsupported, ValueError, KeyError, IndexError, TypeError, ArithmeticError,
                AttributeError):
            pass  # anything unusual: astropy decides
    return _astropy_read(data, name, first_error)


def read_spectrum(source: Any, *, index: int | None = None, fast: bool = True) -> Spectrum:
    """Read one spectrum.

    Parameters
    ----------
    source : path, binary file object, bytes or astropy HDUList
    index : int, optional
        Which spectrum of a multi-spectrum file (DESI coadd). Required when
        the file holds more than one.
    fast : bool
        Use the NumPy fast path when possible (identical results).

    Returns
    -------
    Spectrum

    Raises
    ------
    FitsFormatError
        Unreadable or unsupported file (see :func:`read_batch`).
    ValueError
        A multi-spectrum file without ``index``, or ``index`` out of range.
    """
    batch = read_batch(source, fast=fast)
    if index is None:
        if len(batch) != 1:
            raise ValueError(f"{source_name(source)} holds {len(batch)} spectra; pass index= "
                             "or use read_spectra")
        index = 0
    if not -len(batch) <= index < len(batch):
        raise ValueError(f"index {index} out of range for {len(batch)} spectra")
    return batch.spectrum(index)


def read_spectra(sources: Iterable[Any], *, fast: bool = True) -> ReadResult:
    """Read many files; bad files are reported, not raised.

    Parameters
    ----------
    sources : iterable of path-like (or file objects), or one path
        Multi-spectrum files contribute all their spectra. A single path may
        be a file, a directory (searched recursively for FITS files) or a
        ``.txt``/``.lst`` list of paths.
    fast : bool
        Use the NumPy fast path when possible.

    Returns
    -------
    ReadResult
        ``spectra`` (list of Spectrum) and ``rejects`` (list of
        ``(file, reason)``) with one entry per unreadable file.
    """
    spectra: list[Spectrum] = []
    rejects: list[tuple[str, str]] = []
    if isinstance(sources, str | os.PathLike):
        # one path (a file, a directory or a .txt list), not an iterable of characters
        sources = list(iter_sources([sources], on_error=lambda p, r: rejects.append((p, r))))
    for source in sources:
        try:
            spectra.extend(read_batch(source, fast=fast))
        except (FitsFormatError, OSError) as exc:
            rejects.append((source_name(source), reason_of(exc, source_name(source))))
    return ReadResult(spectra, rejects)


def reason_of(exc: BaseException, name: str) -> str:
    """The message of ``exc`` without a leading ``"<name>: "``."""
    msg = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    prefix = f"{name}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


