"""Peak RSS of ``pyspec queries`` and ``pyspec evaluate --store`` against the store size.

Both commands stream their store (issue 19): their peak resident set should not
grow with the number of spectra (target: the largest store within 1.3x of the
smallest). Each command runs in a fresh interpreter under GNU time
(``/usr/bin/time -f "%M %e"``): Linux carries a process's peak RSS across fork
and exec, so a child of a large process would report at least that process's
size.

    pyspec simulate --n 100000 --out S100K --grid halpha-140 --seed 1
    pyspec simulate --n 1000000 --out S1M --grid halpha-140 --seed 2
    python bench/stream_rss.py S100K S1M [--in-memory]

``--in-memory`` adds, for comparison, the evaluation with the whole matrix and
metadata table loaded (``np.asarray(store.flux)``, ``store.meta``: what
``evaluate --store`` did before it streamed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

EVAL_ARGS = ["--label-column", "subclass", "--hashers", "lsh", "--n-bits", "64",
             "--n-queries", "200", "--num-threads", "1", "--quiet"]

# the same evaluation with the store's matrix and metadata table in memory
IN_MEMORY = """
import sys, numpy as np
from pyspec.store import SpectrumStore
from pyspec.evaluate import evaluate_hashers
store = SpectrumStore.open(sys.argv[1])
labels = np.array([str(v).strip() for v in store.meta["subclass"]])
evaluate_hashers(np.asarray(store.flux), labels, ["lsh"], [64], n_queries=200, num_threads=1)
"""


def commands(store: str, out: Path, in_memory: bool) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "pyspec.cli"]
    cmds = {
        "queries": [*cli, "queries", store, "--groups", "20", "--subclusters", "10",
                    "--fit-sample", "50000", "--num-threads", "1", "--quiet", "--overwrite",
                    "-o", str(out / "q.ecsv")],
        "evaluate --store": [*cli, "evaluate", "--store", store, *EVAL_ARGS, "--overwrite",
                             "-o", str(out / "e.ecsv")],
    }
    if in_memory:
        cmds["evaluate, in memory"] = [sys.executable, "-c", IN_MEMORY, store]
    return cmds


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``cmd`` run under GNU time."""
    res = subprocess.run(["/usr/bin/time", "-f", "%M %e", *cmd], capture_output=True,
                         text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed:\n{res.stderr[-2000:]}")
    kb, wall = res.stderr.split()[-2:]
    return int(kb) / 1024, float(wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", nargs="+", help="simulated stores, smallest first")
    p.add_argument("--in-memory", action="store_true",
                   help="also run the in-memory evaluation, for comparison")
    p.add_argument("--only", choices=["queries", "evaluate"], default=None)
    args = p.parse_args(argv)
    from pyspec.distributed.store import open_any_store

    sizes = {s: len(open_any_store(s)) for s in args.stores}
    rows: dict[str, list[tuple[str, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="pyspec-stream-rss-") as tmp:
        for s in args.stores:
            for name, cmd in commands(s, Path(tmp), args.in_memory).items():
                if args.only and not name.startswith(args.only):
                    continue
                rss, wall = peak_rss(cmd)
                rows.setdefault(name, []).append((s, rss, wall))
                print(f"{name:22s} {Path(s).name:>12s} {sizes[s]:>10,d} spectra: "
                      f"peak RSS {rss:7.0f} MB, {wall:6.1f} s", flush=True)
    print("\n| command | store | spectra | peak RSS (MB) | wall (s) | RSS / smallest |")
    print("|---|---|---:|---:|---:|---:|")
    for name, runs in rows.items():
        for s, rss, wall in runs:
            print(f"| {name} | {Path(s).name} | {sizes[s]:,d} | {rss:.0f} | {wall:.1f} | "
                  f"{rss / runs[0][1]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
