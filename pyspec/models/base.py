"""Shared machinery of the binary hashers (PIL, LSH, ITQ).

The scikit-learn contract (``TransformerMixin``, tags, one ``random_state``
policy, ``get_feature_names_out``, ``transform`` output choice), validation
of spectra, chunked iteration over arrays or a
:class:`~pyspec.store.SpectrumStore` (anything with
``iter_chunks(chunk_size)`` yielding ``(start, flux, ivar)``), per-bit
median thresholds (exact in memory, two-level histogram when streaming),
packing into the Hamming engine's uint64 layout and save/load through
:mod:`pyspec._fileformat`.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_feature_names_in

from pyspec._bits import pack_bits
from pyspec._fileformat import read_container, write_container
from pyspec._validation import as_float_matrix, check_num_threads, describe
from pyspec.errors import IndexFormatError, NotFittedError

#: Code lengths of the published comparison; any length from 1 to 512 bits is
#: accepted (the Hamming index pads codes to whole 64-bit words).
CODE_LENGTHS = (32, 64, 128, 256)
MAX_BITS = 512

#: What ``transform`` returns (the ``output`` parameter of every hasher).
OUTPUTS = ("bits", "packed", "embedding")

# Bins of each level of the streaming median: two levels of 4096 resolve the
# threshold to range / 4096**2, below float32 resolution for values in [0, 1].
_MEDIAN_BINS = 4096


# Arrays with more elements than this (or memory maps) are streamed in chunks
# like a store, so validation and median thresholds never build an (n, d)
# temporary: 2**27 float32 values = 512 MiB.
_IN_MEMORY_LIMIT = 1 << 27

# Training embeddings up to this many values (64 MiB of float32) get exact
# median thresholds, from an array or a store alike; larger sets stream.
_EXACT_MEDIAN_LIMIT = 1 << 24


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
    """Validate a code length: an int from 1 to 512 (usually 32, 64, 128 or 256)."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, numbers.Integral):
        raise TypeError(f"n_bits must be an int (32, 64, 128 or 256), got {type(n_bits).__name__}")
    if not 1 <= n_bits <= MAX_BITS:
        raise ValueError(f"n_bits must be between 1 and {MAX_BITS} (usually 32, 64, 128 or "
                         f"256), got {n_bits}")
    return int(n_bits)


def check_random_state(random_state: object) -> np.random.Generator:
    """The one ``random_state`` policy of every pyspec model -> a numpy Generator.

    None: fresh entropy; int: ``numpy.random.default_rng(seed)`` (the same
    draws on every fit); Generator: used as is (its state advances);
    RandomState (scikit-learn's convention): a Generator seeded from it, so
    its state advances too and a given RandomState state gives one result.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1, size=4))
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool)):
        if random_state is not None and random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int, a numpy Generator or a numpy "
                    f"RandomState, got {type(random_state).__name__}")


def check_chunk_rows(chunk_rows: object) -> int:
    """Validate ``chunk_rows`` (rows per block when iterating over spectra)."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral):
        raise TypeError(f"chunk_rows must be an int, got {type(chunk_rows).__name__}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return int(chunk_rows)


def reject_unsupported(X: object) -> np.ndarray:
    """``np.asarray(X)``, refusing sparse and complex input with the wording
    scikit-learn's estimator checks look for."""
    if scipy.sparse.issparse(X):
        raise TypeError("X: sparse input is not supported; pass a dense array of spectra "
                        "(X.toarray())")
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError("X: Complex data not supported; pass real spectra (float32)")
    if arr.dtype == object:  # numbers held as Python objects (TypeError for anything else)
        arr = arr.astype(np.float64)
    return arr


def check_has_pixels(n: int, d: int) -> None:
    """Refuse spectra without pixels (wording of scikit-learn's check_array)."""
    if d < 1:
        raise ValueError(f"X: spectra have no pixels: 0 feature(s) (shape=({n}, {d})) while a "
                         "minimum of 1 is required.")


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
    arr = reject_unsupported(X)
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


def _histogram_block(block: np.ndarray, lo: np.ndarray, width: np.ndarray
                     ) -> tuple[np.ndarray, int]:
    """Per-unit counts of one block in ``_MEDIAN_BINS`` bins over ``[lo, lo + width)``,
    plus an under- and an overflow bin: (n_units, _MEDIAN_BINS + 2) int64, rows counted."""
    nb = _MEDIAN_BINS
    n_units = block.shape[1]
    idx = np.floor((block - lo) / width * nb).astype(np.int64) + 1
    np.clip(idx, 0, nb + 1, out=idx)
    flat = (np.arange(n_units)[np.newaxis, :] * (nb + 2) + idx).ravel()
    return np.bincount(flat, minlength=n_units * (nb + 2)).reshape(n_units, nb + 2), block.shape[0]


def _range_block(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (min, max) of one block (float64; +-inf for an empty block)."""
    if not block.shape[0]:
        return np.full(block.shape[1], np.inf), np.full(block.shape[1], -np.inf)
    return block.min(axis=0).astype(np.float64), block.max(axis=0).astype(np.float64)


def _gap_block(block: np.ndarray, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (largest value <= edge, smallest value > edge) of one block."""
    under_edge = block <= edge
    if not block.shape[0]:
        return np.full(block.shape[1], -np.inf), np.full(block.shape[1], np.inf)
    return (np.where(under_edge, block, -np.inf).max(axis=0),
            np.where(under_edge, np.inf, block).min(axis=0))


def _sum_pair(a: tuple, b: tuple) -> tuple:
    return a[0] + b[0], a[1] + b[1]


def _range_pair(a: tuple, b: tuple) -> tuple:
    return np.minimum(a[0], b[0]), np.maximum(a[1], b[1])


def _gap_pair(a: tuple, b: tuple) -> tuple:
    return np.maximum(a[0], b[0]), np.minimum(a[1], b[1])


def fold_blocks(embed_chunks: Callable[[], Iterator[np.ndarray]]) -> Callable[..., Any]:
    """The in-process ``fold`` of :func:`streaming_median`: ``block_fn`` on every block of
    ``embed_chunks()``, the results combined left to right by ``combine``."""
    def fold(block_fn: Callable[[np.ndarray], Any], combine: Callable[[Any, Any], Any]) -> Any:
        acc = None
        for block in embed_chunks():
            part = block_fn(block)
            acc = part if acc is None else combine(acc, part)
        return acc

    return fold


def streaming_median(embed_chunks: Callable[[], Iterator[np.ndarray]] | None, n_units: int,
                     lo: np.ndarray, hi: np.ndarray,
                     fold: Callable[..., Any] | None = None) -> np.ndarray:
    """Per-unit medians of a stream of (n, n_units) float32 blocks in bounded memory.

    Three passes over ``embed_chunks()``: a 4096-bin histogram per unit over
    ``[lo, hi]`` (values outside go to under/overflow counts) locates the bin
    holding the median; a second 4096-bin histogram inside that bin refines
    it; a last pass moves the threshold from that fine bin's upper edge to
    the midpoint between the nearest values on either side of it, so
    thresholding gives fraction of ones 0.5 up to the values sharing that
    fine bin, and no spectrum sits on a threshold.
    Memory: two (n_units, 4098) int64 arrays, whatever the number of rows.

    Every pass is a fold: a per-block statistic (counts, extremes) combined by
    an associative, order-free rule (sums, min/max), so the passes may run
    anywhere. ``fold(block_fn, combine)`` applies ``block_fn`` to every block
    and combines the results (default: :func:`fold_blocks` over
    ``embed_chunks``; :mod:`pyspec.distributed.fit` folds per shard on a
    cluster and reduces the shards' results), and the medians do not depend
    on how the blocks were cut or grouped.
    """
    if fold is None:
        fold = fold_blocks(embed_chunks)
    lo = np.asarray(lo, dtype=np.float64).copy()
    hi = np.asarray(hi, dtype=np.float64).copy()
    width = np.maximum(hi - lo, 1e-30)
    nb = _MEDIAN_BINS

    def histogram(lo_: np.ndarray, width_: np.ndarray) -> tuple[np.ndarray, int]:
        got = fold(functools.partial(_histogram_block, lo=lo_, width=width_), _sum_pair)
        return (np.zeros((n_units, nb + 2), np.int64), 0) if got is None else got

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
        mins, maxs = fold(_range_block, _range_pair)
        redo = under | over
        lo2 = np.where(redo, mins, lo)
        hi2 = np.where(redo, maxs, hi)
        return streaming_median(embed_chunks, n_units, lo2, np.nextafter(hi2, np.inf), fold)
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
    below, above = fold(functools.partial(_gap_block, edge=edge), _gap_pair)
    gap = np.isfinite(below) & np.isfinite(above)
    return np.where(gap, (below + above) / 2, edge).astype(np.float32)


class SpectrumTransformer(TransformerMixin, BaseEstimator):
    """The scikit-learn glue every pyspec model shares (hashers and the product quantiser).

    Parameters are plain attributes set by ``__init__`` (``get_params`` and
    ``set_params`` come from :class:`~sklearn.base.BaseEstimator`); subclasses
    name the attribute that exists once fitted (``_FITTED_ATTR``), the values
    of their ``output`` parameter (``_OUTPUTS``) and the one output that is
    float32 whatever the input (``_FLOAT_OUTPUT``).
    """

    _FITTED_ATTR = ""
    _OUTPUTS: tuple[str, ...] = ()
    _FLOAT_OUTPUT = ""

    def _check_fitted(self) -> None:
        if not hasattr(self, self._FITTED_ATTR):
            name = type(self).__name__
            raise NotFittedError(f"this {name} is not fitted yet; call fit(X) with training "
                                 f"spectra first (or {name}.load(path))")

    def _check_output(self) -> str:
        if not isinstance(self.output, str) or self.output not in self._OUTPUTS:
            raise ValueError(f"output must be one of {self._OUTPUTS}, got {self.output!r}")
        return self.output

    def _check_n_features(self, arr: np.ndarray) -> None:
        """Refuse spectra of another width than those the model was fitted on."""
        if arr.ndim == 2 and arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {arr.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input (expected "
                             f"{self.n_features_in_} pixels per spectrum, as in fit)")

    def __sklearn_tags__(self):  # noqa: ANN204 (sklearn.utils.Tags)
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.allow_nan = False
        # codes are integers whatever the input; only the float output keeps float32
        tags.transformer_tags.preserves_dtype = (["float32"] if self.output == self._FLOAT_OUTPUT
                                                 else [])
        return tags


class BaseHasher(SpectrumTransformer):
    """Common API of the hashers: fit, transform, encode, embed, save, load.

    A scikit-learn transformer: ``transform`` returns what ``output`` names
    ("bits": 0/1 uint8 (n, n_bits), what ``KNeighborsClassifier(metric=
    "hamming")`` expects; "packed": the Hamming index's uint64 words;
    "embedding": the float32 values that are thresholded into bits), while
    :meth:`encode` always gives the packed codes pyspec's indexes take.

    Subclasses implement ``_fit(X, n, d, rng, num_threads)`` (learns
    everything but the thresholds), ``_embed(X, num_threads)`` (float32 (n,
    n_bits)), ``_state()`` / ``_set_state(arrays, meta)`` and set ``_KIND``.
    Thresholds ``thresholds_`` float32 (n_bits,) come from
    :meth:`_fit_thresholds` unless the subclass fixes them (LSH and ITQ use 0).
    """

    _KIND = b"??"
    _FITTED_ATTR = "thresholds_"
    _OUTPUTS = OUTPUTS
    _FLOAT_OUTPUT = "embedding"  # bits are uint8 and packed codes uint64 whatever the input

    # ------------------------------------------------------------ checks
    def _check_X(self, X: object) -> np.ndarray:
        self._check_fitted()
        arr = reject_unsupported(X)
        self._check_n_features(arr)
        return as_float_matrix(arr, "X", n_features=self.n_features_in_)

    # ------------------------------------------------------------ public API
    def fit(self, X: object, y: object = None, num_threads: int | None = None) -> BaseHasher:
        """Learn the hash from training spectra.

        Parameters
        ----------
        X : ndarray of shape (n_spectra, n_pixels), float32, or SpectrumStore
            Preprocessed spectra (finite), or any object with
            ``iter_chunks(chunk_size)`` yielding ``(start, flux, ivar)``. An
            array and a store holding the same spectra give identical models.
        y : ignored
        num_threads : int or None
            Threads for compiled kernels (None: OpenMP default).

        Returns
        -------
        self
        """
        check_n_bits(self.n_bits)
        check_chunk_rows(self.chunk_rows)
        self._check_output()
        nt = check_num_threads(num_threads) or None
        rng = check_random_state(self.random_state)
        if not is_chunked_source(X):
            X = reject_unsupported(X)
        n, d = source_shape(X)
        if isinstance(X, np.memmap) or (isinstance(X, np.ndarray) and X.size > _IN_MEMORY_LIMIT):
            X = ArraySource(X)  # validated chunk by chunk
        elif not is_chunked_source(X):
            X = as_float_matrix(X, "X", allow_1d=False)  # finite check with global row numbers
        if n < 2:
            raise ValueError(f"X: need at least 2 spectra to fit, got n_samples = {n}")
        check_has_pixels(n, d)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, attr)
        self._fit(X, n, d, rng, nt)
        self.n_features_in_ = d
        if not hasattr(self, "thresholds_"):
            self.thresholds_ = self._fit_thresholds(X, n, nt)
        return self

    def embed(self, X: object, num_threads: int | None = None) -> np.ndarray:
        """Real-valued embedding (the values that are thresholded into bits).

        Parameters
        ----------
        X : ndarray of shape (n_spectra, n_pixels), float32, or SpectrumStore
        num_threads : int or None

        Returns
        -------
        ndarray of shape (n_spectra, n_bits), float32
        """
        return self._map_rows(X, num_threads, lambda x, nt: self._embed(x, nt))

    def encode(self, X: object, num_threads: int | None = None) -> np.ndarray:
        """Binary codes packed for the Hamming index (what pyspec's engine stores).

        Parameters
        ----------
        X : ndarray of shape (n_spectra, n_pixels), float32, or SpectrumStore
        num_threads : int or None

        Returns
        -------
        ndarray of shape (n_spectra, ceil(n_bits / 64)), uint64
            Bit j in word j // 64 at position j % 64 (:mod:`pyspec._bits`).
        """
        return self._map_rows(X, num_threads,
                              lambda x, nt: pack_bits(self._embed(x, nt) > self.thresholds_))

    def transform(self, X: object, num_threads: int | None = None) -> np.ndarray:
        """Codes of spectra in the form ``output`` names.

        Returns
        -------
        ndarray
            ``output="bits"`` (default): uint8 0/1 of shape (n_spectra,
            n_bits), bit j = ``embedding[:, j] > thresholds_[j]``;
            ``"packed"``: :meth:`encode`'s uint64 words; ``"embedding"``:
            :meth:`embed`'s float32 values.
        """
        self._check_fitted()
        output = self._check_output()
        if output == "packed":
            return self.encode(X, num_threads)
        if output == "embedding":
            return self.embed(X, num_threads)
        return self._map_rows(X, num_threads, lambda x, nt: (
            self._embed(x, nt) > self.thresholds_).view(np.uint8))

    def fit_transform(self, X: object, y: object = None, num_threads: int | None = None
                      ) -> np.ndarray:
        """``fit(X).transform(X)`` (for a store, every spectrum in order)."""
        return self.fit(X, num_threads=num_threads).transform(X, num_threads)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the columns of :meth:`transform`'s output (object array).

        ``<class>_bit<j>`` (bits), ``<class>_word<j>`` (packed) or
        ``<class>_unit<j>`` (embedding), e.g. ``pilhasher_bit0``.
        """
        self._check_fitted()
        _check_feature_names_in(self, input_features, generate_names=False)
        output = self._check_output()
        n_bits = int(self.thresholds_.shape[0])
        count, word = {"bits": (n_bits, "bit"), "packed": (-(-n_bits // 64), "word"),
                       "embedding": (n_bits, "unit")}[output]
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}_{word}{j}" for j in range(count)], dtype=object)

    def _map_rows(self, X: object, num_threads: int | None,
                  fn: Callable[[np.ndarray, int | None], np.ndarray]) -> np.ndarray:
        """``fn`` on validated spectra; stores and large arrays chunk by chunk."""
        self._check_fitted()
        nt = check_num_threads(num_threads) or None
        if is_chunked_source(X) or isinstance(X, np.memmap) or (
                isinstance(X, np.ndarray) and X.size > _IN_MEMORY_LIMIT and X.ndim == 2):
            src = X if is_chunked_source(X) else ArraySource(X)
            parts = [fn(f, nt) for _, f in iter_source(src, self.chunk_rows, self.n_features_in_)]
            if parts:
                return np.concatenate(parts)
            return fn(np.empty((0, self.n_features_in_), np.float32), nt)
        return fn(self._check_X(X), nt)

    # ------------------------------------------------------------ thresholds
    def _embed_source(self, X: object, nt: int | None) -> Iterator[np.ndarray]:
        for _, flux in iter_source(X, self.chunk_rows, self.n_features_in_):
            yield self._embed(flux, nt)

    def _fit_thresholds(self, X: object, n: int, nt: int | None) -> np.ndarray:
        """Median of every embedding unit over the training spectra.

        The embeddings are computed chunk by chunk (``chunk_rows``) whatever
        the input, so an array and a store give bit-identical values. When
        they fit in 64 MiB (``n * n_bits`` values up to 2**24, e.g. 65,536
        spectra at 256 bits): the midpoint of the two middle order
        statistics (the usual median for even n; for odd n the gap above the
        middle value), so no training spectrum sits exactly on a threshold,
        where float rounding differences between a batch and a single-row
        forward pass (BLAS picks kernels by matrix shape) could flip its bit
        and a spectrum would no longer match itself. Beyond that:
        :func:`streaming_median` in bounded memory, with the first histogram
        range taken from the first chunk's 0.1 %/99.9 % quantiles widened by
        half the span (values outside trigger an exact re-pass over the
        full range).
        """
        if not is_chunked_source(X):
            X = ArraySource(X)
        return self._thresholds_of(n, lambda: self._embed_source(X, nt))

    def _thresholds_of(self, n: int, embed_chunks: Callable[[], Iterator[np.ndarray]],
                       first: np.ndarray | None = None,
                       fold: Callable[..., Any] | None = None) -> np.ndarray:
        """:meth:`_fit_thresholds` on embeddings from ``embed_chunks()`` (all ``n`` rows in
        order); a streamed fit passes the first chunk_rows embeddings (``first``) and
        the ``fold`` of :func:`streaming_median` it runs the passes with."""
        if n * int(self.n_bits) <= _EXACT_MEDIAN_LIMIT:
            return midpoint_median(np.concatenate(list(embed_chunks())))
        if first is None:
            first = next(embed_chunks())
        q_lo, q_hi = np.quantile(first, [0.001, 0.999], axis=0)
        span = np.maximum(q_hi - q_lo, 1e-6)
        return streaming_median(embed_chunks, first.shape[1], q_lo - span / 2, q_hi + span / 2,
                                fold)

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
    codes = model.encode(np.zeros((1, n_in), np.float32), num_threads=1)
    if codes.shape != (1, -(-n_bits // 64)):
        raise ValueError(f"codes of shape {codes.shape} for n_bits {n_bits}")
