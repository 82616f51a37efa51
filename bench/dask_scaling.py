"""Scale-out benchmark: 1 vs 2 local Dask workers for encode, batch search and ingest.

    python bench/dask_scaling.py --quick    # 100,000 spectra, 400 FITS files, 2000 queries
    python bench/dask_scaling.py            # 1,000,000 spectra, 2000 FITS files, 2000 queries

The data are simulated once into ``--work`` (default ``/tmp/pyspec-dask-scaling``) and
reused by later runs (``pyspec simulate --n N --out WORK/store-N --grid halpha-140
--seed 2``; ``pyspec.simulate.write_fits`` for the FITS files; the 1M store is 1.1 GB);
nothing there is timed. A PIL hasher (256 bits, default layers) is fitted once on 20,000
of the spectra. Then:

* a single engine is built in this process (``Engine.build``, one thread): the
  reference every sharded result must equal (ids and distances) and the
  "one process" column;
* for each worker count, a ``LocalCluster`` of that many single-threaded worker
  processes on 127.0.0.1 runs ``build_sharded`` (4 shards: the encode), a sharded
  batch search (k = 10, one thread per kernel) and ``ingest_sharded`` of the
  FITS files (8 shards).

Each job runs ``--repeat`` times (quick: 2) and its fastest run is kept. Speed-ups are
ratios from the same run: wall clock, and the CPU critical path: CPU seconds of the
calling thread (its serial work, ``time.thread_time``) + of the busiest worker process
(``getrusage`` there), the wall time with one free core per worker, which cores shared
with other jobs hide. The calling process's CPU is printed too: beyond the calling
thread it is the Dask client's event loop, which runs while the thread waits. Wall-clock
figures mean something only on a quiet machine with at least one free core per worker:
the load average is printed before and after.

On a real cluster the same jobs run with ``--scheduler tcp://HOST:8786`` on the CLI
(``pyspec ingest --shards``, ``pyspec build``, ``pyspec search``) or ``client=`` in the
API, with the store and engine on a file system every worker sees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = {"quick": {"n": 100_000, "fits": 400, "queries": 2000, "repeat": 2},
         "full": {"n": 1_000_000, "fits": 2000, "queries": 2000, "repeat": 1}}


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timing:
    """Wall and CPU seconds of one job: here, and on each worker of ``client`` (if any).

    "main" is the CPU of this process's calling thread: its serial work (fitting
    nothing here, encoding queries, scattering, merging, opening the result). The
    rest of "here" is the Dask client's event-loop thread, which runs beside the
    workers while the calling thread waits and grows with the wall time.
    """

    def __init__(self, client) -> None:  # noqa: ANN001
        self.client = client

    def __call__(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN204
        before = self.client.run(_cpu_seconds) if self.client else {}
        cpu0, main0, t0 = _cpu_seconds(), time.thread_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        wall, main = time.perf_counter() - t0, time.thread_time() - main0
        here = _cpu_seconds() - cpu0
        after = self.client.run(_cpu_seconds) if self.client else {}
        workers = [after[w] - before[w] for w in sorted(after)] or [0.0]
        return out, {"wall": wall, "main": main, "here": here, "path": main + max(workers),
                     "total": here + sum(workers)}


def best_of(repeat: int, timed, fn, *args, prepare=None, **kwargs):  # noqa: ANN001, ANN201
    """(result, timing) of the fastest of ``repeat`` runs (``prepare()`` before each)."""
    best = None
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        out, t = timed(fn, *args, **kwargs)
        if best is None or t["wall"] < best[1]["wall"]:
            best = (out, t)
    return best


def make_data(work: Path, n: int, n_fits: int) -> tuple[Path, Path]:
    """The simulated store and FITS folder (made once, reused)."""
    from pyspec.simulate import write_fits

    work.mkdir(parents=True, exist_ok=True)
    store = work / f"store-{n}"
    if not (store / "manifest.json").exists():
        shutil.rmtree(store, ignore_errors=True)
        print(f"simulating {n} spectra into {store} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pyspec.cli", "simulate", "--n", str(n),
                        "--out", str(store), "--grid", "halpha-140", "--seed", "2", "--quiet"],
                       check=True)
    fits = work / f"fits-{n_fits}"
    if len(list(fits.glob("*.fits"))) != n_fits:
        shutil.rmtree(fits, ignore_errors=True)
        print(f"writing {n_fits} FITS files into {fits} (once) ...", flush=True)
        write_fits(fits, n_fits, seed=3)
    return store, fits


def _cluster(n_workers: int):  # noqa: ANN202
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           protocol="tcp://", host="127.0.0.1",
                           dashboard_address="127.0.0.1:0",
                           env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    return cluster, Client(cluster)


def _same(a, b, what: str) -> None:  # noqa: ANN001
    if not (np.array_equal(a.ids, b.ids) and np.array_equal(a.distances, b.distances)):
        raise AssertionError(f"{what}: the sharded search differs from the single engine")


def run(store_path: Path, fits_dir: Path, n_queries: int, workers: list[int], repeat: int,
        work: Path) -> dict[str, dict]:
    from pyspec.distributed import build_sharded, ingest_sharded
    from pyspec.engine import Engine
    from pyspec.models.pil import PILHasher
    from pyspec.store import SpectrumStore

    store = SpectrumStore.open(store_path)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(store), size=min(20_000, len(store)), replace=False))
    model = PILHasher(n_bits=256, random_state=0).fit(np.asarray(store.flux[sample]))
    queries = np.asarray(store.flux[np.sort(rng.choice(len(store), n_queries, replace=False))])
    results: dict[str, dict] = {"encode": {}, "search": {}, "ingest": {}}

    here = Timing(None)
    single, t = best_of(repeat, here, Engine.build, store, model, out=work / "single",
                        num_threads=1, overwrite=True, rerank_space="flux")
    results["encode"]["single"] = t
    reference, t = best_of(repeat, here, single.search_prepared, queries, 10, num_threads=1)
    results["search"]["single"] = t
    print(f"one process: encode {results['encode']['single']['wall']:.1f} s, "
          f"search {t['wall']:.2f} s", flush=True)

    for w in workers:
        cluster, client = _cluster(w)
        try:
            for module in ("pyspec.distributed.build", "pyspec.distributed.ingest",
                           "pyspec.catalogue", "astropy.table"):
                client.run(__import__, module)  # first-use imports are not the work
            timed = Timing(client)
            eng, results["encode"][w] = best_of(
                repeat, timed, build_sharded, store, model, work / f"engine-{w}", n_shards=4,
                client=client, num_threads=1, overwrite=True)
            eng.search_prepared(queries[:2], 10, num_threads=1)  # workers open their shards
            res, results["search"][w] = best_of(repeat, timed, eng.search_prepared, queries,
                                                10, num_threads=1)
            _same(res, reference, f"{w} worker(s)")
            out = work / f"ingest-{w}"
            summary, results["ingest"][w] = best_of(
                repeat, timed, ingest_sharded, [fits_dir], out, n_shards=8, client=client,
                prepare=lambda out=out: shutil.rmtree(out, ignore_errors=True))
            if summary.accepted + summary.rejected != summary.seen:
                raise AssertionError("ingest: accepted + rejected != seen")
            print(f"{w} worker(s): " + ", ".join(f"{job} {results[job][w]['wall']:.2f} s"
                                                 for job in results), flush=True)
        finally:
            client.close()
            cluster.close()
    return results


def table(results: dict[str, dict], workers: list[int], labels: dict[str, str]) -> str:
    a, b = workers[0], workers[-1]
    head = (f"| job | one process (s) | wall {a} w (s) | wall {b} w (s) | wall speed-up | "
            f"CPU path {a} w (s) | CPU path {b} w (s) | CPU-path speed-up | "
            f"caller's thread {a} w / {b} w (s) | caller's process {a} w / {b} w (s) |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for job, r in results.items():
        single = f"{r['single']['wall']:.2f}" if "single" in r else "-"
        lines.append(
            f"| {labels[job]} | {single} | {r[a]['wall']:.2f} | {r[b]['wall']:.2f} | "
            f"{r[a]['wall'] / r[b]['wall']:.2f}x | {r[a]['path']:.2f} | {r[b]['path']:.2f} | "
            f"{r[a]['path'] / r[b]['path']:.2f}x | {r[a]['main']:.2f} / {r[b]['main']:.2f} | "
            f"{r[a]['here']:.2f} / {r[b]['here']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100,000 spectra (~2-3 min)")
    p.add_argument("--work", default="/tmp/pyspec-dask-scaling",
                   help="folder of the simulated data (kept and reused) and the outputs")
    p.add_argument("--n", type=int, default=None, help="spectra (default 1M, quick 100k)")
    p.add_argument("--fits", type=int, default=None, help="FITS files to ingest")
    p.add_argument("--queries", type=int, default=None, help="batch size of the search")
    p.add_argument("--repeat", type=int, default=None, help="runs per job (fastest kept)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    n, n_fits = args.n or size["n"], args.fits or size["fits"]
    n_queries, repeat = args.queries or size["queries"], args.repeat or size["repeat"]
    work = Path(args.work)
    store, fits = make_data(work, n, n_fits)
    load0 = os.getloadavg()[0]
    results = run(store, fits, n_queries, args.workers, repeat, work / "out")
    load1 = os.getloadavg()[0]
    shutil.rmtree(work / "out", ignore_errors=True)
    print(f"\n{n:,d} spectra, {n_queries} queries (k = 10), {n_fits} FITS files, "
          f"{os.cpu_count()} cores, load average {load0:.1f} before / {load1:.1f} after; "
          "sharded search == single engine (ids and distances): asserted\n")
    print(table(results, args.workers, {"encode": f"encode ({n:,d})",
                                        "search": f"batch search ({n_queries} x {n:,d})",
                                        "ingest": f"ingest ({n_fits} files)"}))
    if max(load0, load1) > (os.cpu_count() or 1) - max(args.workers):
        print("\nwarning: fewer free cores than workers; the wall-clock speed-ups are capped "
              "by the CPU share, read the CPU-path column")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
