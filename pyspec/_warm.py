"""Bringing a model's weights back into cache on an idle core while a query is prepared.

A query-by-example reads a FITS file and prepares it (Python and numba on one core,
about a millisecond), then encodes it: the first layer of the forward pass streams its
whole weight matrix (8 MB for 3921 pixels x 512 units), which the previous query's scan
over the codes has pushed out of the last-level cache, so the pass runs at the speed of
main memory. Touching those cache lines from a second thread while the spectrum is read
and prepared puts them back in the (shared) last-level cache in time; the forward pass
then runs from cache. Nothing ever waits for the warm-up: when no core is free it
finishes late or is skipped (the previous one still running), and the answer does not
depend on it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

_LINE_BYTES = 64
# smaller arrays are read often enough to stay cached between queries
_MIN_BYTES = 1 << 20

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One background thread per process, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyspec-warm")
        return _pool


def line_views(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A strided 1-D view holding one element per cache line of each large contiguous
    numeric array (smaller or other arrays are left out)."""
    views = []
    for a in arrays:
        a = np.asarray(a)
        if a.nbytes < _MIN_BYTES or not a.flags.c_contiguous or a.dtype.kind not in "fiu":
            continue
        views.append(a.reshape(-1)[::max(1, _LINE_BYTES // a.itemsize)])
    return views


def touch(views: Sequence[np.ndarray]) -> None:
    """Read every element of ``views`` (numpy releases the GIL while it sums)."""
    with np.errstate(all="ignore"):
        for v in views:
            np.add.reduce(v)


class WeightWarmer:
    """Starts :func:`touch` of a model's :meth:`streamed_arrays` in the background."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self._views = line_views(arrays) if (os.cpu_count() or 1) > 1 else []
        self._pending: Future | None = None

    def start(self) -> None:
        """Begin a warm-up unless there is nothing to warm or the last one still runs."""
        if not self._views:
            return
        pending = self._pending
        if pending is not None and not pending.done():
            return
        self._pending = _executor().submit(touch, self._views)
