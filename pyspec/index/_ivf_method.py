"""``HammingIndex(method="ivf")``: exact k-NN through ring-sorted inverted lists.

The index keeps its codes in insertion order (the scan, range search,
filters and ``codes`` read them there) and, beside them, an
:class:`~pyspec.IVFHammingIndex` over the same codes and ids whose
``search(exact=True)`` returns exactly the scan's k nearest, ties by id
(``csrc/ivf_exact.hpp``: rows sorted by distance to their list's centroid,
only the band the triangle inequality allows is read). On codes of
real-like spectra a query took 1/20 of the scan's time at 10M codes and
1/4 at 1M (bench/RESULTS.md, session 10); on uniformly random codes every
band is the whole list and the cost model (:func:`estimate_work`) keeps the
scan.

Sizes: ``sqrt(n)`` lists, which the exact search prefers to the
approximate search's ``4 sqrt(n)`` (at 10M codes 20.8x the scan against
9.4x, bench/RESULTS.md, issue 21, session 8). The lists are trained
anew when the codes have doubled since the last training (so many small
adds cost at most about twice one final build); adds in between are
assigned to the existing centroids, at the next search or save.

Memory: a second copy of the codes and ids, plus ring offsets of ~4 bytes
per occupied ring and list (a few MB at 10^7 codes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pyspec import _core
from pyspec.index._plan import PLAN_MARGIN, SearchPlan, fixed, scan_price

if TYPE_CHECKING:
    from pyspec.index.ivf import IVFHammingIndex

# "auto" builds the lists from this many codes on (as it did MIH tables): a
# scan of 65k codes takes ~20 us, about the exact search's fixed cost.
IVF_MIN_CODES = 1 << 16
# Array names of the lists inside a saved HammingIndex (prefix + IVF name).
_PREFIX = "ivf_"
# Stored codes used as sample queries by the cost model (evenly spaced rows).
_PLAN_SAMPLE = 16
# The exact search widens its bands until the top-k is full and reads each
# band at a random place: a band row is priced at this many scanned codes,
# plus one per list for its centroid distance and radius check. Calibrated
# at 1M codes of simulated spectra, k=10, 1 thread: priced at ~1/25 of a
# scan, measured 1/15.
_BAND_ROW_PRICE = 3.0
# A batch goes through the lists in memory order (csrc/ivf_exact.cpp,
# Exact::batch), streaming the bands instead of jumping to them: a band row
# costs about 0.3 of a lone query's (measured ivf/scan time ratio of batches
# of 200 against this estimate: 0.26 / 0.30 / 0.28 at 100k / 400k / 1M codes
# of the default recipe's simulated spectra, 1 thread; bench/RESULTS.md,
# session 10).
_BATCH_BAND_ROW_PRICE = 0.9


def n_lists_for(n: int) -> int:
    """Lists for ``n`` codes: ``sqrt(n)``, at least 1."""
    return max(1, round(math.sqrt(max(n, 1))))


def build(codes: np.ndarray, ids: np.ndarray, n_bits: int) -> IVFHammingIndex:
    """Lists over ``codes`` (rows in insertion order) and their ``ids``."""
    from pyspec.index.ivf import IVFHammingIndex

    lists = IVFHammingIndex(n_bits, n_lists=n_lists_for(codes.shape[0]))
    lists.train(codes)
    lists.add(codes, ids)
    return lists


def extend(lists: IVFHammingIndex, codes: np.ndarray, ids: np.ndarray) -> None:
    """Assign the rows ``len(lists):`` of ``codes`` (and ``ids``) to the existing lists."""
    start = len(lists)
    if start < codes.shape[0]:
        lists.add(np.ascontiguousarray(codes[start:]), np.ascontiguousarray(ids[start:]))


def knn(lists: IVFHammingIndex, queries: np.ndarray, k: int,
        threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (ids, distances), as ``_core.hamming_knn`` over the same codes."""
    found = lists.search(queries, k, num_threads=threads or None, exact=True)
    return found.ids, found.distances


def estimate_work(lists: IVFHammingIndex, codes: np.ndarray, k: int,
                  batch: bool = False) -> float:
    """Mean price of an exact search per query, in codes a scan reads in the same time
    (``batch``: a query of a batch of ``BATCH_MIN_QUERIES`` or more).

    Measured on a fixed sample of stored codes used as queries, each left
    out of its own neighbours: their exact k-th distance ``tau`` gives the
    rows each list's band holds at the end of the search (a lower bound of
    what it reads), priced as described at ``_BAND_ROW_PRICE``.
    """
    n = codes.shape[0]
    rows = np.unique(np.linspace(0, n - 1, num=min(_PLAN_SAMPLE, n)).astype(np.int64))
    sample = np.ascontiguousarray(codes[rows])
    # each sample query finds itself at distance 0: its k-th distance among
    # the others (the (k+1)-th) is what a fresh query's would be
    tau = knn(lists, sample, min(max(k, 1) + 1, n), 1)[1][:, -1].astype(np.int64)
    n_bits = lists.n_bits
    stride = n_bits + 1
    rings = lists.rings
    n_lists = lists.centroids.shape[0]
    dqc = _core.hamming_distances(sample, lists.centroids, 1).astype(np.int64)
    lo = np.clip(dqc - tau[:, None], 0, n_bits)
    hi = np.clip(dqc + tau[:, None], -1, n_bits)
    base = np.arange(n_lists, dtype=np.int64) * stride
    band = np.where(lo <= hi, rings[base + hi + 1] - rings[base + lo], 0)
    price = _BATCH_BAND_ROW_PRICE if batch else _BAND_ROW_PRICE
    return float(price * band.sum(axis=1).mean() + n_lists)


def plan(method: str, codes: np.ndarray, lists: IVFHammingIndex | None, k: int | None,
         batch: bool) -> SearchPlan:
    """The :class:`~pyspec.index._plan.SearchPlan` of a search by ``method`` "ivf" or "auto"
    (``k`` None: a range search, which the lists do not serve)."""
    n = codes.shape[0]
    if k is None:
        return SearchPlan("scan", n, None, f"method={method!r}: range searches scan "
                                           "(the inverted lists serve k-NN only)")
    if method == "auto" and n < IVF_MIN_CODES:
        return SearchPlan("scan", n, None, f"auto: {n} codes < {IVF_MIN_CODES}, scan")
    if lists is None:
        return SearchPlan("scan", n, None, f"method={method!r}: no inverted lists (index "
                                           "loaded without them; the next add builds them)")
    if method == "ivf":
        return fixed("ivf", n)
    work = estimate_work(lists, codes, k, batch)
    scan_work = scan_price(n, batch)
    chosen = "ivf" if work < PLAN_MARGIN * scan_work else "scan"
    return SearchPlan(chosen, scan_work, None,
                      f"auto: exact inverted lists ~{work:.3g} vs scan {scan_work} code reads "
                      f"per query{' (batch)' if batch else ''} -> {chosen}", ivf_work=work)


def arrays(lists: IVFHammingIndex) -> dict[str, np.ndarray]:
    """The lists' arrays under the names a saved HammingIndex gives them."""
    return {_PREFIX + name: a for name, a in lists._arrays().items()}


def meta(lists: IVFHammingIndex) -> dict[str, Any]:
    return lists._meta()


def from_arrays(saved: dict[str, np.ndarray], saved_meta: Any, n_bits: int, n_codes: int,
                source: str) -> IVFHammingIndex | str | None:
    """Lists read from a saved HammingIndex; None when absent, a message when invalid."""
    from pyspec.errors import IndexFormatError
    from pyspec.index.ivf import IVFHammingIndex

    parts = {name[len(_PREFIX):]: a for name, a in saved.items() if name.startswith(_PREFIX)}
    if not parts:
        return None
    try:
        lists = IVFHammingIndex._from_parts(parts, saved_meta, source)
    except IndexFormatError as exc:
        return f"inverted lists: {exc}"
    if lists.n_bits != n_bits or len(lists) != n_codes:
        return (f"inverted lists hold {len(lists)} codes of {lists.n_bits} bits, the index "
                f"{n_codes} of {n_bits}")
    return lists
