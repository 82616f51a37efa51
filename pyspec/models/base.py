"""Shared machinery of the binary hashers (PIL, LSH, ITQ).

Validation of spectra, chunked iteration over arrays or a
:class:`~pyspec.store.SpectrumStore` (anything with
``iter_chunks(chunk_size)`` yielding ``(start, flux, ivar)``), per-bit
median thresholds (exact in memory, two-level histogram when streaming),
packing into the Hamming engine's uint64 layout and save/load through
:mod:`pyspec._fileformat`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from pyspec._bits import pack_bits
from pyspec._fileformat import read_container, write_container
from pyspec._validation import as_float_matrix, check_num_threads, describe
from pyspec.errors import IndexFormatError, NotFittedError

#: Code lengths of the published comparison; other multiples of 32 up to 512
#: are accepted too.
CODE_LENGTHS = (32, 64, 128, 256)
MAX_BITS = 512

# Bins of each level of the streaming median: two levels of 4096 resolve the
# threshold to range / 4096**2, below float32 resolution for values in [0, 1].
_MEDIAN_BINS = 4096


# Arrays with more elements than this (or memory maps) are streamed in chunks
# like a store, so validation and median thresholds never build an (n, d)
# temporary: 2**27 float32 values = 512 MiB.
_IN_MEMORY_LIMIT = 1 << 27


class ArraySource:
    """Store-like view of a large array or memory map (``iter_chunks``, ``flux``)."""

    def __init__(self, flux: np.ndarray) -> None:
        self.flux = flux

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray, None]]:
        for start in range(0, len(self), chunk_size):
            yield start, self.flux[start:start + chunk_size], None


def check_n_bits(n_bits: object) -> int:
    """Validate a code length: a positive multiple of 32, at most 512."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, numbers.Integral):
        raise TypeError(f"n_bits must be an int (32, 64, 128 or 256), got {type(n_bits).__name__}")
    if n_bits < 32 or n_bits > MAX_BITS or n_bits % 32:
        raise ValueError(f"n_bits must be a multiple of 32 between 32 and {MAX_BITS} "
                         f"(e.g. 32, 64, 128, 256), got {n_bits}")
    return int(n_bits)


def check_random_state(random_state: object) -> np.random.Generator:
    """``None``/int/Generator -> a fresh ``numpy.random.Generator``."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int or a numpy Generator, "
                    f"got {type(random_state).__name__}")


def is_chunked_source(X: object) -> bool:
    """True for store-like inputs (``iter_chunks`` method) rather than arrays."""
    return hasattr(X, "iter_chunks") and not isinstance(X, np.ndarray)


def source_shape(X: object) -> tuple[int, int]:
    """(n_spectra, n_pixels) of an array or store-like input."""
    if is_chunked_source(X):
        flux = getattr(X, "flux", None)
        if flux is not None and getattr(flux, "ndim", 0) == 2:
            return int(flux.shape[0]), int(flux.shape[1])
        for _, chunk, _ in X.iter_chunks(1):
            return len(X), int(np.asarray(chunk).shape[1])
        return 0, 0
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"X: expected a real numeric array or a SpectrumStore, got {describe(arr)}")
    if arr.ndim != 2:
        raise ValueError(f"X: expected a 2-D array (n_spectra, n_pixels), got shape {arr.shape}")
    return int(arr.shape[0]), int(arr.shape[1])


def iter_source(X: object, chunk_size: int, n_features: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, flux)`` float32 C-contiguous chunks of an array or store.

    Every chunk is checked for NaN/Inf (``ValueError`` naming the global rows)
    and for the pixel count.
    """
    if is_chunked_source(X):
        chunks = ((int(s), f) for s, f, _ in X.iter_chunks(chunk_size))
    else:
        arr = np.asarray(X)
        chunks = ((s, arr[s:s + chunk_size]) for s in range(0, arr.shape[0], chunk_size))
    for start, flux in chunks:
        try:
            yield start, as_float_matrix(flux, "X", n_features=n_features, allow_1d=False)
        except ValueError as exc:
            if "NaN" in str(exc):
                bad = np.flatnonzero(~np.isfinite(np.asarray(flux, dtype=np.float32)).all(axis=1))
                shown = ", ".join(str(start + r) for r in bad[:5]) + (" ..." if bad.size > 5 else "")
                raise ValueError(f"X: {bad.size} spectra in rows {start}..{start + len(flux) - 1} "
                                 f"contain NaN or Inf (rows {shown}); mask and fill them with "
                                 "pyspec.preprocess first") from None
            raise


def midpoint_median(values: np.ndarray) -> np.ndarray:
    """Per-column midpoint of the order statistics ``(n-1)//2`` and ``(n-1)//2 + 1``.

    values : ndarray (n, n_units). For one row the value itself is returned.
    """
    n = values.shape[0]
    if n == 0:
        raise ValueError("no spectra to compute median thresholds from")
    if n == 1:
        return values[0].astype(np.float32)
    m = (n - 1) // 2
    part = np.partition(values, (m, m + 1), axis=0)
    return ((part[m].astype(np.float64) + part[m + 1]) / 2).astype(np.float32)


def streaming_median(embed_chunks: Callable[[], Iterator[np.ndarray]], n_units: int,
                     lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per-unit medians of a stream of (n, n_units) float32 blocks in bounded memory.

    Three passes over ``embed_chunks()``: a 4096-bin histogram per unit over
    ``[lo, hi]`` (values outside go to under/overflow counts) locates the bin
    holding the median; a second 4096-bin histogram inside that bin refines
    it; a last pass moves the threshold from that fine bin's upper edge to
    the midpoint between the nearest values on either side of it, so
    thresholding gives fraction of ones 0.5 up to the values sharing that
    fine bin, and no spectrum sits on a threshold.
    Memory: two (n_units, 4098) int64 arrays, whatever the number of rows.
    """
    lo = np.asarray(lo, dtype=np.float64).copy()
    hi = np.asarray(hi, dtype=np.float64).copy()
    width = np.maximum(hi - lo, 1e-30)
    units = np.arange(n_units)
    nb = _MEDIAN_BINS

    def histogram(lo_: np.ndarray, width_: np.ndarray) -> tuple[np.ndarray, int]:
        counts = np.zeros((n_units, nb + 2), dtype=np.int64)
        total = 0
        for block in embed_chunks():
            idx = np.floor((block - lo_) / width_ * nb).astype(np.int64) + 1
            np.clip(idx, 0, nb + 1, out=idx)
            flat = (units[np.newaxis, :] * (nb + 2) + idx).ravel()
            counts += np.bincount(flat, minlength=n_units * (nb + 2)).reshape(n_units, nb + 2)
            total += block.shape[0]
        return counts, total

    counts, total = histogram(lo, width)
    if total == 0:
        raise ValueError("no spectra to compute median thresholds from")
    target = (total - 1) // 2  # 0-based rank of the lower median
    cum = np.cumsum(counts, axis=1)
    b = np.argmax(cum > target, axis=1)
    # Bins 0 / nb+1 are the under/overflow: widen them to the real extremes.
    step = width / nb
    flo = lo + (b - 1) * step
    fw = step.copy()
    under = b == 0
    over = b == nb + 1
    if under.any() or over.any():
        # The median fell outside [lo, hi]: fall back to one more coarse pass
        # over the true range of those units.
        mins = np.full(n_units, np.inf)
        maxs = np.full(n_units, -np.inf)
        for block in embed_chunks():
            mins = np.minimum(mins, block.min(axis=0))
            maxs = np.maximum(maxs, block.max(axis=0))
        redo = under | over
        lo2 = np.where(redo, mins, lo)
        hi2 = np.where(redo, maxs, hi)
        return streaming_median(embed_chunks, n_units, lo2, np.nextafter(hi2, np.inf))
    fine, _ = histogram(flo, fw)
    # The fine pass counts everything below the coarse bin in its underflow
    # bin, so its cumulative sum is the global rank directly.
    fb = np.clip(np.argmax(np.cumsum(fine, axis=1) > target, axis=1), 1, nb)
    # Upper edge of the fine bin holding the median: values up to it become
    # 0 bits, the rest 1 bits.
    edge = flo + fb * fw / nb
    # A third pass moves the threshold to the midpoint between the largest
    # value at or below the edge and the smallest above it. Cast to float32,
    # the edge itself can land exactly on the median spectrum's value, whose
    # bit would then flip under the last-ulp differences between a batched
    # and a single-row forward pass (see midpoint_median).
    below = np.full(n_units, -np.inf)
    above = np.full(n_units, np.inf)
    for block in embed_chunks():
        under_edge = block <= edge
        below = np.maximum(below, np.where(under_edge, block, -np.inf).max(axis=0))
        above = np.minimum(above, np.where(under_edge, np.inf, block).min(axis=0))
    gap = np.isfinite(below) & np.isfinite(above)
    return np.where(gap, (below + above) / 2, edge).astype(np.float32)


class BaseHasher(BaseEstimator):
    """Common API of the hashers: transform, fit_transform, embed, save, load.

    Subclasses implement ``_fit(X, rng, num_threads)`` (learns everything but
    the thresholds), ``_embed(X, num_threads)`` (float32 (n, n_bits)),
    ``_state()`` / ``_set_state(arrays, meta)`` and set ``_KIND``.
    Thresholds ``thresholds_`` float32 (n_bits,) come from
    :meth:`_fit_thresholds` unless the subclass fixes them (LSH uses 0).
    """

    _KIND = b"??"
    #: Rows per block when iterating over spectra.
    chunk_rows = 8192

    # ------------------------------------------------------------ checks
    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call "
                                 f"fit(X) with training spectra first (or {type(self).__name__}"
                                 ".load(path))")

    def _check_X(self, X: object) -> np.ndarray:
        self._check_fitted()
        return as_float_matrix(X, "X", n_features=self.n_features_in_)

    # ------------------------------------------------------------ public API
    def fit(self, X: object, y: object = None, num_threads: int | None = None) -> BaseHasher:
        """Learn the hash from training spectra.

        Parameters
        ----------
        X : ndarray of shape (n_spectra, n_pixels), float32, or SpectrumStore
            Preprocessed spectra (finite), or any object with
            ``iter_chunks(chunk_size)`` yielding ``(start, flux, ivar)``.
        y : ignored
        num_threads : int or None
            Threads for compiled kernels (None: OpenMP default).

        Returns
        -------
        self
        """
        check_n_bits(self.n_bits)
        nt = check_num_threads(num_threads) or None
        rng = check_random_state(self.random_state)
        n, d = source_shape(X)
        if isinstance(X, np.memmap) or (isinstance(X, np.ndarray) and X.size > _IN_MEMORY_LIMIT):
            X = ArraySource(X)  # validated chunk by chunk, medians by histogram
        elif not is_chunked_source(X):
            X = as_float_matrix(X, "X", allow_1d=False)  # finite check with global row numbers
        if n < 2:
            raise ValueError(f"X: need at least 2 spectra to fit, got {n}")
        if d < 1:
            raise ValueError("X: spectra have no pixels")
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self._fit(X, n, d, rng, nt)
        self.n_features_in_ = d
        if not hasattr(self, "thresholds_"):
            self.thresholds_ = self._fit_thresholds(X, n, nt)
        return self

    def embed(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Real-valued embedding (the values that are thresholded into bits).

        Parameters
        ----------
        X : ndarray of shape (n_spectra, n_pixels), float32
        num_threads : int or None

        Returns
        -------
        ndarray of shape (n_spectra, n_bits), float32
        """
        X = self._check_X(X)
        return self._embed(X, check_num_threads(num_threads) or None)

    def transform(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Binary codes packed for the Hamming engine.

        Returns
        -------
        ndarray of shape (n_spectra, ceil(n_bits / 64)), uint64
            Bit j in word j // 64 at position j % 64 (:mod:`pyspec._bits`).
        """
        return pack_bits(self.embed(X, num_threads) > self.thresholds_)

    def fit_transform(self, X: object, y: object = None, num_threads: int | None = None
                      ) -> np.ndarray:
        """``fit(X).transform(X)`` (for a store, codes of every spectrum in order)."""
        self.fit(X, num_threads=num_threads)
        if is_chunked_source(X) or isinstance(X, np.memmap) or (
                isinstance(X, np.ndarray) and X.size > _IN_MEMORY_LIMIT):
            src = X if is_chunked_source(X) else ArraySource(X)
            return np.concatenate([self.transform(f, num_threads)
                                   for _, f in iter_source(src, self.chunk_rows)])
        return self.transform(X, num_threads)

    # ------------------------------------------------------------ thresholds
    def _embed_source(self, X: object, nt: int | None) -> Iterator[np.ndarray]:
        for _, flux in iter_source(X, self.chunk_rows, self.n_features_in_):
            yield self._embed(flux, nt)

    def _fit_thresholds(self, X: object, n: int, nt: int | None) -> np.ndarray:
        """Median of every embedding unit over the training spectra.

        In memory (array input): the midpoint of the two middle order
        statistics (the usual median for even n; for odd n the gap above the
        middle value), so no training spectrum sits exactly on a threshold,
        where float rounding differences between a batch and a single-row
        forward pass (BLAS picks kernels by matrix shape) could flip its bit
        and a spectrum would no longer match itself. Streaming (store
        input): :func:`streaming_median`, with the first histogram range taken
        from the first chunk's 0.1 %/99.9 % quantiles widened by half the
        span (values outside trigger an exact re-pass over the full range).
        """
        if not is_chunked_source(X):
            return midpoint_median(self._embed(X, nt))
        first = next(self._embed_source(X, nt))
        q_lo, q_hi = np.quantile(first, [0.001, 0.999], axis=0)
        span = np.maximum(q_hi - q_lo, 1e-6)
        return streaming_median(lambda: self._embed_source(X, nt), first.shape[1],
                                q_lo - span / 2, q_hi + span / 2)

    # ------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Write the fitted model to ``path`` (pyspec container, never pickle)."""
        self._check_fitted()
        from pyspec import __version__

        arrays, extra = self._state()
        arrays = dict(arrays, thresholds=self.thresholds_)
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params().items() if k != "random_state"}
        rs = self.random_state
        params["random_state"] = rs if rs is None or isinstance(rs, numbers.Integral) else None
        meta = {"class": type(self).__name__, "params": params, "n_features_in": self.n_features_in_,
                "pyspec_version": __version__, **extra}
        write_container(path, self._KIND, arrays, meta)

    @classmethod
    def load(cls, path: str) -> BaseHasher:
        """Read a model written by :meth:`save` (``IndexFormatError`` if not one)."""
        arrays, meta = read_container(path, cls._KIND)
        if meta.get("class") != cls.__name__:
            raise IndexFormatError(f"{path}: holds a {meta.get('class')!r}, expected {cls.__name__}")
        try:
            obj = cls._from_saved(arrays, meta)
            _check_loaded(obj)
        except IndexFormatError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
                NotFittedError) as exc:
            # the checksums passed, so this is a file written inconsistently (or crafted)
            raise IndexFormatError(f"{path}: inconsistent model file ({type(exc).__name__}: "
                                   f"{exc})") from None
        return obj

    @classmethod
    def _from_saved(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> BaseHasher:
        params = dict(meta["params"])
        if "hidden" in params and params["hidden"] is not None and \
                not isinstance(params["hidden"], str):
            params["hidden"] = tuple(params["hidden"])
        obj = cls(**params)
        obj.n_features_in_ = int(meta["n_features_in"])
        obj.thresholds_ = np.array(arrays["thresholds"], dtype=np.float32)
        obj._set_state(arrays, meta)
        return obj


#: Largest input width a saved model may declare (the wavelength grids stay far below).
_MAX_FEATURES = 1 << 20


def _check_loaded(model: BaseHasher) -> None:
    """Sizes of a loaded hasher agree with each other: one probe row goes through."""
    n_bits = check_n_bits(model.n_bits)
    n_in = model.n_features_in_
    if not 1 <= n_in <= _MAX_FEATURES:
        raise ValueError(f"n_features_in {n_in} out of range")
    if model.thresholds_.shape != (n_bits,):
        raise ValueError(f"thresholds of shape {model.thresholds_.shape}, n_bits {n_bits}")
    codes = model.transform(np.zeros((1, n_in), np.float32), num_threads=1)
    if codes.shape != (1, -(-n_bits // 64)):
        raise ValueError(f"codes of shape {codes.shape} for n_bits {n_bits}")
