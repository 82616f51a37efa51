"""Steady-state query latency with every metadata column (issue 20: the column-set reader).

DIR holds ``store`` and ``engine`` written by ``bench/meta_format.py --worker ingest sim DIR``
(with this checkout's or main's interpreter)::

    python bench/meta_query_latency.py DIR LABEL
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pyspec.engine import Engine
from pyspec.store import SpectrumStore


def main(out: Path, label: str) -> None:
    store = SpectrumStore.open(out / "store")
    engine = Engine.open(out / "engine")
    probe = np.asarray(store.flux[:50])
    for row in probe[:20]:  # warm-up: first-use checks and caches
        engine.query(row, k=10, prepared=True, columns="all")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for row in probe:
            engine.query(row, k=10, prepared=True, columns="all")
        times.append((time.perf_counter() - t0) / len(probe))
    print(f"{label}: query k=10, columns='all', median of 5 x 50: "
          f"{np.median(times) * 1e3:.2f} ms")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
