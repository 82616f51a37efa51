"""Streamed (distributed) model fit against the single-process fit, same run, same spectra.

    pyspec simulate --n 100000 --out /tmp/fit19/s100k --seed 1 --grid halpha-140
    nice python bench/distributed_fit.py /tmp/fit19/s100k --workers 2

For each model (the default 256-bit PILHasher; the default ProductQuantizer
of ``pyspec build --model pq``, 25 segments x 256 centroids, which trains on
65,536 sampled rows) the script times:

* ``single``: ``model.fit`` on the store's rows, one process, kernels at
  ``--threads`` threads (the fit ``Engine.build`` runs);
* ``streamed here``: :func:`pyspec.distributed.fit.fit_streamed` with
  ``client=None`` over ``--workers`` row ranges (the same passes, one
  shard after another);
* ``streamed, N workers``: the same on a ``LocalCluster`` of N
  single-threaded worker processes on 127.0.0.1.

and checks the models agree: largest relative difference of the solved
weights / centroids, fraction of code bits that differ on 4,096 rows, and
the bit balance (largest deviation of a bit's fraction of ones from 0.5 on
those rows). Printed: wall clock, CPU seconds of this process (with the
cluster: the client and the LocalCluster's scheduler) and of each worker,
and the CPU critical path (this process plus the busiest worker: what the
wall clock would be with one free core per worker, which a shared machine
hides).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np


def _timed(fn, client=None):  # noqa: ANN001, ANN202
    """(fn(), wall seconds, CPU seconds of this process (with a LocalCluster: client and
    scheduler), CPU seconds of each worker process)."""
    workers0 = client.run(time.process_time) if client is not None else {}
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    wall, own = time.perf_counter() - t0, time.process_time() - c0
    workers1 = client.run(time.process_time) if client is not None else {}
    return out, wall, own, sorted(workers1[w] - workers0[w] for w in workers0)


def _compare(model, ref, flux: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    from pyspec.models.pil import PILHasher

    if isinstance(model, PILHasher):
        pairs = list(zip(model.decoders_, ref.decoders_, strict=True))
        codes, ref_codes = model.encode(flux), ref.encode(flux)
        bits = np.unpackbits(codes.view(np.uint8), bitorder="little").reshape(len(flux), -1)
        differ = np.unpackbits((codes ^ ref_codes).view(np.uint8)).mean()
        ones = bits[:, :model.n_bits].mean(axis=0)
        return {"max_rel_diff": max(float(np.abs(a - b).max() / np.abs(b).max())
                                    for a, b in pairs),
                "bits_differ": float(differ), "worst_bit_balance": float(np.abs(ones - 0.5).max())}
    rel = float(np.abs(model.codebook_ - ref.codebook_).max() / np.abs(ref.codebook_).max())
    same = float((model.encode(flux) == ref.encode(flux)).mean())
    return {"max_rel_diff": rel, "codes_equal": same, "n_iter": model.n_iter_,
            "n_iter_single": ref.n_iter_}


def _fit_in_memory(model, flux: np.ndarray, threads: int):  # noqa: ANN001, ANN202
    return model.fit(flux, num_threads=threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="kernel threads of the single fit and of each task (default 1)")
    p.add_argument("--models", default="pil,pq")
    args = p.parse_args()

    from distributed import Client, LocalCluster

    from pyspec.backends import make_model
    from pyspec.distributed.fit import fit_streamed
    from pyspec.store import SpectrumStore

    store = SpectrumStore.open(args.store)
    n = len(store)
    check = np.asarray(store.flux[:4096])
    print(f"store {args.store}: {n:,d} spectra x {store.flux.shape[1]} pixels, "
          f"{args.workers} parts/workers, {args.threads} kernel thread(s) per fit/task")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      protocol="tcp://", host="127.0.0.1", dashboard_address=None,
                      env={"OMP_NUM_THREADS": str(args.threads),
                           "OPENBLAS_NUM_THREADS": str(args.threads)}) as cluster, \
            Client(cluster) as client:
        for name in args.models.split(","):
            def model(name=name):  # noqa: ANN202
                return make_model(name, random_state=0)

            ref, *single = _timed(functools.partial(
                _fit_in_memory, model(), np.asarray(store.flux), args.threads))
            here, *in_process = _timed(lambda: fit_streamed(
                model(), store, n_parts=args.workers, num_threads=args.threads))
            there, *cluster = _timed(lambda: fit_streamed(
                model(), store, client=client, n_parts=args.workers,
                num_threads=args.threads), client)
            print(f"\n{type(ref).__name__}")
            print(f"{'fit':<24}{'wall s':>8}{'CPU here s':>12}{'CPU workers s':>16}"
                  f"{'CPU path s':>12}")
            for label, (t, own, workers) in (("single", single), ("streamed here", in_process),
                                             (f"streamed, {args.workers} workers", cluster)):
                shown = " / ".join(f"{w:.2f}" for w in workers) or "-"
                path = own + (max(workers) if workers else 0.0)
                print(f"{label:<24}{t:>8.2f}{own:>12.2f}{shown:>16}{path:>12.2f}")
            print("streamed here vs single:", _compare(here, ref, check))
            print(f"{args.workers} workers vs single:", _compare(there, ref, check))


if __name__ == "__main__":
    main()
