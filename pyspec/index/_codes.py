"""Checks shared by the Hamming indexes (:mod:`~pyspec.index.hamming`,
:mod:`~pyspec.index.ivf`): bit counts, the packed uint64 code layout, and the
write lock each index creates lazily. A leaf module, so that the two index
modules need not import each other.
"""

from __future__ import annotations

import numbers
import threading

import numpy as np

from pyspec._bits import n_words as _n_words
from pyspec._validation import describe

_MAX_BITS = 512


def check_n_bits(n_bits: object) -> int:
    if isinstance(n_bits, bool) or not isinstance(n_bits, numbers.Integral):
        raise TypeError(f"n_bits must be an int in [1, {_MAX_BITS}], got {type(n_bits).__name__}")
    if not 1 <= n_bits <= _MAX_BITS:
        raise ValueError(f"n_bits must be in [1, {_MAX_BITS}], got {n_bits}")
    return int(n_bits)


def pad_mask(n_bits: int) -> int:
    """Bits of the last word that must be zero (0 when n_bits % 64 == 0)."""
    used = n_bits % 64
    return 0 if used == 0 else ((1 << 64) - 1) ^ ((1 << used) - 1)


def check_codes(codes: object, n_bits: int, name: str, allow_1d: bool = False) -> np.ndarray:
    """Return ``codes`` unchanged if it is exactly what the kernels take, else raise.

    The one deliberate reshaping is a single 1-D code -> one row when ``allow_1d``.
    """
    nw = _n_words(n_bits)
    expected = f"expected uint64 codes of shape (n, {nw}) for n_bits={n_bits}"
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"{name}: {expected}, got {type(codes).__name__}; "
                        "use pyspec.index.hamming.as_codes to convert")
    if codes.dtype != np.uint64 or not codes.dtype.isnative:
        hint = ("pack boolean bits with pyspec.index.hamming.as_codes (pyspec._bits.pack_bits)"
                if codes.dtype == np.bool_ else "use pyspec.index.hamming.as_codes to convert")
        raise TypeError(f"{name}: {expected}, got {describe(codes)}; {hint}")
    if codes.ndim == 1 and allow_1d:
        codes = codes[np.newaxis, :]
    if codes.ndim != 2 or codes.shape[1] != nw:
        raise ValueError(f"{name}: {expected}, got {describe(codes)}")
    if not codes.flags.c_contiguous:
        raise ValueError(f"{name}: {expected} and C-contiguous, got a non-contiguous array; "
                         "use np.ascontiguousarray(codes) or pyspec.index.hamming.as_codes")
    mask = pad_mask(n_bits)
    if mask and codes.shape[0] and (codes[:, -1] & np.uint64(mask)).any():
        bad = np.flatnonzero(codes[:, -1] & np.uint64(mask))
        raise ValueError(f"{name}: {bad.size} code(s) have bits set above bit {n_bits - 1} "
                         f"(rows {', '.join(map(str, bad[:5]))}); codes of {n_bits} bits "
                         "must leave the rest of the last word zero")
    return codes


def _lazy_lock(index: object) -> threading.Lock:
    lock = index.__dict__.get("_lock")
    if lock is None:  # created lazily so unpickled/loaded indexes get one too
        lock = index.__dict__.setdefault("_lock", threading.Lock())
    return lock


#: The ``_write_lock`` property of an index class (one lock per instance).
lazy_write_lock = property(_lazy_lock)
