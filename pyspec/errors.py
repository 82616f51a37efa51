"""Exception classes raised by pyspec.

Every pyspec-specific error derives from :class:`PyspecError` and also from
the built-in class a caller would naturally catch (``ValueError``,
``AttributeError``), so generic handlers keep working.
"""

from __future__ import annotations

import functools


class PyspecError(Exception):
    """Base class of all pyspec-specific errors."""


class FitsFormatError(PyspecError, ValueError):
    """A file is not a spectrum layout pyspec can read (names the file and why)."""


class IndexFormatError(PyspecError, ValueError):
    """A saved index, model or store file is truncated, corrupted or not ours."""


class SpectrumCoverageError(PyspecError, ValueError):
    """A spectrum does not cover enough of the target wavelength grid."""


class PreprocessingError(PyspecError, ValueError):
    """Spectra prepared with a different or unknown preprocessing recipe were combined."""


class StoreChangedError(PyspecError, ValueError):
    """An engine's spectrum store changed after the engine was built (rebuild it)."""


class ConfigurationError(PyspecError, ValueError):
    """A run-time setting is invalid: ``PYSPEC_SIMD`` (scalar, avx2 or avx512) or
    ``PYSPEC_PQ_SCAN`` (interleaved or gather)."""


@functools.cache
def _not_fitted_error() -> type:
    """Build :class:`NotFittedError` on first use: it derives from scikit-learn's
    ``NotFittedError`` (itself a ``ValueError`` and ``AttributeError``), and
    importing scikit-learn costs about a second that commands which never
    touch a model (``pyspec info``) should not pay."""
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    class NotFittedError(PyspecError, SklearnNotFittedError):
        """A model was used before ``fit`` (scikit-learn's ``NotFittedError`` too)."""

    NotFittedError.__module__ = __name__
    NotFittedError.__qualname__ = "NotFittedError"  # pickles as pyspec.errors.NotFittedError
    return NotFittedError


def __getattr__(name: str) -> type:
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "NotFittedError"])
