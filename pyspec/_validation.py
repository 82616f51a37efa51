"""Argument coercion and checks shared by the public API.

The compiled kernels accept exactly one dtype and layout per argument; these
helpers make the one deliberate conversion (or refuse) with a message that
says what was expected, what was received and how to fix it.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_num_threads(num_threads: int | None) -> int:
    """Map the public ``num_threads`` (None or int >= 1) to the kernels' int (0 = default)."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be None or an int >= 1, got {type(num_threads).__name__}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads}")
    return int(num_threads)


def ids_to_remove(ids: object) -> np.ndarray:
    """The ids a ``remove_ids`` call names, as int64 (any 1-D integer array-like)."""
    drop = np.asarray(ids)
    if drop.ndim > 1 or (drop.size and drop.dtype.kind not in "iu"):
        raise TypeError(f"ids: expected a 1-D array of integer ids, got {describe(drop)}")
    return drop.astype(np.int64).ravel()


def check_k(k: int) -> int:
    """Validate a neighbour count (0 allowed: returns empty rows)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int >= 0, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(k)


def describe(a: object) -> str:
    """Short 'dtype shape' description of an array-like for error messages."""
    if isinstance(a, np.ndarray):
        layout = "" if a.flags.c_contiguous else ", non-contiguous"
        return f"{a.dtype} {a.shape}{layout}"
    return type(a).__name__


def as_float_matrix(
    x: object,
    name: str,
    dtype: type = np.float32,
    n_features: int | None = None,
    allow_1d: bool = True,
    check_finite: bool = True,
) -> np.ndarray:
    """Return ``x`` as a C-contiguous 2-D float array of ``dtype``.

    Integer and other float dtypes are converted (a documented, deliberate
    copy); complex, object, bool and string input is a ``TypeError``. A 1-D
    input is one row when ``allow_1d``. Non-finite values are a
    ``ValueError`` naming the first offending rows.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real numeric array, got {describe(arr)}")
    if arr.ndim == 1 and allow_1d:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_spectra, n_pixels), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} pixels per spectrum (as in fit), got {arr.shape[1]}; "
            "resample onto the model's wavelength grid first"
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if check_finite:
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if rows.size > 5 else "")
            raise ValueError(
                f"{name}: {rows.size} row(s) contain NaN or Inf (rows {shown}); "
                "mask and fill them with pyspec.preprocess first"
            )
    return arr


#: Largest id an index stores (int64); -1 marks a missing neighbour in results.
MAX_ID = np.iinfo(np.int64).max


def as_ids(ids: object, n: int, start: int = 0) -> np.ndarray:
    """Return int64 ids of length ``n`` (default ``start .. start+n-1``).

    Ids must be in ``0 .. 2**63 - 1``: negative ids would collide with the
    -1 that pads missing neighbours, and larger unsigned ids would wrap.
    """
    if ids is None:
        if start + n - 1 > MAX_ID:
            raise ValueError("ids: default ids would pass 2**63 - 1; pass ids explicitly")
        return np.arange(start, start + n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids: expected an integer array, got {describe(arr)}")
    if arr.shape != (n,):
        raise ValueError(f"ids: expected shape ({n},) to match the data, got {arr.shape}")
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > MAX_ID:
        raise ValueError(f"ids: {int(arr.max())} is above the largest id, 2**63 - 1")
    if arr.size and arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise ValueError(f"ids must be >= 0 (-1 marks a missing neighbour in results), got "
                         f"{int(arr.min())}")
    return np.ascontiguousarray(arr, dtype=np.int64)


#: Results larger than this many bytes are refused when ``k`` exceeds the
#: index size (they would be padding only): 256 MiB.
MAX_PADDED_RESULT_BYTES = 256 << 20


def check_result_size(n_queries: int, k: int, n_indexed: int, bytes_per_entry: int = 12) -> None:
    """Refuse a ``k`` far above the index size whose padded result would be huge.

    A result has ``n_queries x k`` entries (an int64 id and a 4-byte
    distance each); when ``k`` exceeds the number of indexed items every
    extra column is padding, so asking for it is almost always a mistake
    (``k=200_000_000`` on 100 codes would allocate gigabytes).
    """
    if k > n_indexed and n_queries * k * bytes_per_entry > MAX_PADDED_RESULT_BYTES:
        raise ValueError(f"k={k} is larger than the index ({n_indexed} items) and the padded "
                         f"result for {n_queries} queries would take "
                         f"{n_queries * k * bytes_per_entry / 2**30:.1f} GiB; use k <= "
                         f"{n_indexed}")
