"""4-bit fast-scan search for :class:`~pyspec.index.PQIndex` (``fast_scan=True``).

With at most 16 centroids per segment, a code is 4 bits and the scan can
look up 32 (AVX2) or 64 (AVX-512BW) table entries per byte-shuffle
instruction from a query table quantised to bytes and held in registers
(csrc/pq_fastscan.hpp). The scan keeps only rows whose quantised distance
can still reach the top k (a threshold with a documented error margin) and
re-ranks them with the float table, so ids and distances are exactly those
of the ordinary float ADC scan over the same codes -- only faster.

The packed copy of the codes (blocks of 32 rows, two 4-bit codes per byte;
about half the bytes of the uint8 codes) is built from the codes on the
first search and after every change; it is never saved (files keep the
codes; the layout version below is checked on load).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyspec import _core
from pyspec.errors import IndexFormatError

#: Version of the fast-scan layout recorded in saved index files. A file
#: written by a newer layout is refused rather than misread.
LAYOUT_VERSION = 1
MAX_CENTROIDS = 16  # 4-bit codes


def check(pq: Any, fast_scan: object) -> bool:
    """Validate ``PQIndex(..., fast_scan=...)`` for a fitted quantiser."""
    if not isinstance(fast_scan, (bool, np.bool_)):
        raise TypeError(f"fast_scan must be True or False, got {type(fast_scan).__name__}")
    K = pq.codebook_.shape[0]
    if fast_scan and K > MAX_CENTROIDS:
        raise ValueError(f"fast_scan=True needs 4-bit codes (n_centroids <= {MAX_CENTROIDS}); "
                         f"this quantiser has n_centroids={K}: fit "
                         "ProductQuantizer(n_centroids=16) or use fast_scan=False")
    return bool(fast_scan)


def packed_codes(index: Any, codes: np.ndarray) -> np.ndarray:
    """The fast-scan layout of ``codes``, cached on the index for this array.

    PQIndex replaces its code array on every change (never modifies it in
    place), so the array's identity tells whether the cached copy is current.
    Other arrays (the gathered codes of a filtered search) are packed for
    the call only, so they never evict the index's own packed copy.
    """
    if codes is not index._codes:
        return _core.pq_fastscan_pack(codes)
    cache = index._fastscan_cache
    if cache is None or cache[0] is not codes:
        cache = (codes, _core.pq_fastscan_pack(codes))
        index._fastscan_cache = cache
    return cache[1]


def search(index: Any, Q: np.ndarray, codes: np.ndarray, ids: np.ndarray, k: int,
           num_threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, distances) of the k nearest codes by float ADC distance, ordered by
    (distance, id): the result of ``_core.pq_search`` over the same codes."""
    packed = packed_codes(index, codes)
    tables = _core.pq_tables(Q, *index.pq._kernel_args(), num_threads=num_threads)
    out_ids, out_dist, _ = _core.pq_fastscan_search(tables, codes, packed, ids, k,
                                                    num_threads=num_threads)
    return out_ids, out_dist


def file_meta(fast_scan: bool) -> dict:
    """Entries of a saved index's metadata (none for a plain index)."""
    return {"fast_scan": LAYOUT_VERSION} if fast_scan else {}


def from_meta(meta: dict, source: str) -> bool:
    """``fast_scan`` of a saved index, checking the recorded layout version."""
    version = meta.get("fast_scan", 0)
    if isinstance(version, bool) or not isinstance(version, int) or not (
            0 <= version <= LAYOUT_VERSION):
        raise IndexFormatError(f"{source}: fast-scan layout version {version!r} is not supported "
                               f"(this pyspec reads versions up to {LAYOUT_VERSION})")
    return version > 0
