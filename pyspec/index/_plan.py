"""Search plans of ``HammingIndex``: which method answers a search, and why.

Methods (``HammingIndex(method=...)``; results are identical whatever the
method): "scan" reads every code; "ivf" reads the bands of ring-sorted
inverted lists (:mod:`pyspec.index._ivf_method`); "mih" probes multi-index
hashing tables (:mod:`pyspec.index._mih`); "auto" picks the cheaper of
the scan and the inverted lists per search by a cost model priced in
"codes a linear scan reads in the same time".
"""

from __future__ import annotations

from typing import NamedTuple

METHODS = ("auto", "scan", "mih", "ivf")
# A batch of at least this many queries shares every pass of the scan over
# the codes (csrc/hamming.cpp, kTransposeMinQueries), which costs each query
# about a third of a lone scan: 1M codes, 1 thread, 0.90 ms for one query,
# 273 ms for 1,000 (bench/RESULTS.md, Hamming). For batches the inverted
# lists are weighed against that third (and priced for their own batch path,
# _ivf_method._BATCH_BAND_ROW_PRICE).
BATCH_MIN_QUERIES = 32
_BATCH_SCAN_SHARE = 1 / 3
# Another method is chosen when its estimated work is below this fraction
# of a scan's. The inverted lists' estimate tracked the measured time ratio
# within ~10% for k=10 and overestimated it ~1.7x for k=100 (100k-200k codes
# of simulated spectra, 1 thread), so a choice near the margin costs little.
PLAN_MARGIN = 0.75


def check_method(method: object) -> str:
    """Validate ``HammingIndex(method=...)``."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, "
                         f"got {method!r}")
    return method


class SearchPlan(NamedTuple):
    """Which method a search uses and why.

    method : "scan", "mih" or "ivf".
    scan_work : int, the scan's price per query (codes read; a third of
        the codes for batches, which share the scan's passes).
    mih_work : float or None, MIH's estimated price per query in the same
        units (None: not estimated; MIH is used only when asked for).
    reason : str, one line for logs.
    ivf_work : float or None, the exact inverted-list search's estimated
        price per query in the same units (None when not estimated).
    """

    method: str
    scan_work: int
    mih_work: float | None
    reason: str
    ivf_work: float | None = None


def scan_price(n: int, batch: bool) -> int:
    """The scan's price per query, in codes read: ``n``, a third of it in a batch."""
    return round(n * _BATCH_SCAN_SHARE) if batch else n


def fixed(method: str, n: int) -> SearchPlan:
    """The plan of an index whose method is not "auto" (nothing is estimated)."""
    return SearchPlan(method, n, None, f"method={method!r}")
