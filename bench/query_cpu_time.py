"""CPU time of one query-by-example, for A/B runs of two builds on a loaded machine.

Usage::

    python bench/query_cpu_time.py --build DIR [--n 1000000] [--preprocessing l2]
    python bench/query_cpu_time.py LABEL DIR [DIR ...]

``--build`` writes an engine like ``peers.py query``'s (``make_engine``: the
sample store prepared with the given preset, its codes then random ones up to
``--n``) under DIR/engine. The second form prints, for each DIR, the p50 of
``time.thread_time`` over 500 ``Engine.query(path, k=10, rerank=0,
num_threads=1)`` of the sample's LAMOST DR10 file, after 50 warm-up queries.
Thread CPU time counts the work of the query's one thread and not the time
spent waiting for a core, so two interpreters (e.g. main's and a branch's)
run alternately on the same engines compare the work each build does even
when the wall clock measures the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_sections.query import _QUERY_FILE, make_engine  # noqa: E402


def cpu_ms(engine_dir: Path, reps: int = 500) -> float:
    from pyspec.data import SAMPLE_DIR
    from pyspec.engine import Engine

    path = SAMPLE_DIR / _QUERY_FILE
    engine = Engine.open(engine_dir / "engine")
    for _ in range(50):
        engine.query(path, k=10, rerank=0, num_threads=1)
    times = []
    for _ in range(reps):
        c0 = time.thread_time()
        engine.query(path, k=10, rerank=0, num_threads=1)
        times.append(time.thread_time() - c0)
    return 1e3 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, help="write an engine under this directory")
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed codes (--build)")
    parser.add_argument("--preprocessing", default=None, help="store preset (--build)")
    parser.add_argument("label", nargs="?", help="name printed first (e.g. main, branch)")
    parser.add_argument("dirs", nargs="*", type=Path, help="directories written by --build")
    args = parser.parse_args(argv)
    if args.build is not None:
        make_engine(args.build, args.n, 700, preprocessing=args.preprocessing)
        return 0
    if not args.dirs:
        parser.error("give a label and at least one directory written by --build")
    print(" | ".join([args.label] + [f"{d.name} {cpu_ms(d):.3f} ms" for d in args.dirs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
