"""Memory and time of knn_graph + LabelSpreading on a simulated store, by size.

Each size runs in a fresh process that reads a ``pyspec simulate`` store
("halpha-140" grid) through its memory map, builds the kNN graph and fits
label spreading from 1 % random labels; the child reports its peak resident
set size (``ru_maxrss``) and its CPU time (user + system, all threads).
The spectra themselves are never loaded whole.

    python bench/semi_scaling.py --sizes 200000 1000000 --method ivf
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
import pyspec
from pyspec.store import SpectrumStore
store = SpectrumStore.open(sys.argv[1])
method, comps = sys.argv[2], (int(sys.argv[3]) or None)
t0 = time.perf_counter()
g = pyspec.knn_graph(store, k=7, method=method, n_components=comps)
t1 = time.perf_counter()
n = len(store)
rng = np.random.default_rng(0)
y = np.full(n, -1)
lab = rng.choice(n, n // 100, replace=False)
y[lab] = rng.integers(0, 2, lab.size)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = pyspec.LabelSpreading(7).fit(g, y)
t2 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"n": n, "graph_s": t1 - t0, "fit_s": t2 - t1, "edges": int(g.nnz // 2),
                  "cpu_s": ru.ru_utime + ru.ru_stime,
                  "steps": int(m.n_iter_), "store_MiB": store.flux.nbytes / 2**20,
                  "peak_rss_MiB": ru.ru_maxrss / 1024}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[20000, 50000, 100000])
    p.add_argument("--method", default="ivf")
    p.add_argument("--components", type=int, default=0, help="PCA components (0 = none)")
    p.add_argument("--workdir", default=None)
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pyspec-semi-scaling-"))
    for n in args.sizes:
        store = work / f"sim-{n}"
        if not store.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pyspec.cli", "simulate", "--n", str(n),
                            "--out", str(store), "--grid", "halpha-140", "--quiet"], check=True)
            print(f"simulated {n} in {time.perf_counter() - t0:.0f} s", flush=True)
        out = subprocess.run([sys.executable, "-c", CHILD, str(store), args.method,
                              str(args.components)], check=True, capture_output=True,
                             text=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row.update(method=args.method, components=args.components)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                          for k, v in row.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
