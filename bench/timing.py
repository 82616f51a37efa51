"""Timing helper shared by bench/peers.py sections and bench/scaling.py."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeat: int = 3, warmup: bool = False) -> float:
    """Best wall time in seconds of ``repeat`` calls (after one untimed call if ``warmup``).

    The minimum is the figure least disturbed by other work on a shared machine.
    """
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
