"""256-bit PIL codes of simulated spectra, generated in chunks and cached on disk.

The data behind the ``mih`` section of bench/peers.py. Codes of
real-like spectra, not random bits: :class:`pyspec.simulate.Simulator`
(real templates of the shipped sample and ``shared/data`` when present,
shifts, tilts, emission lines, survey S/N, bad pixels) on a reduced grid of
``n_pixels`` log-spaced pixels over 3900-8900 A, masked pixels filled with
the row mean, each row L2-normalised, then encoded by a
:class:`pyspec.PILHasher` fitted on 20,000 spectra of another seed. The
queries are fresh spectra of a third seed (not in the database).

    nice python bench/simulated_codes.py 10000000   # -> /tmp/pyspec-mih/

Memory stays at one chunk of spectra; the codes go to a ``.npy`` memory map
(32 bytes per spectrum) that is renamed into place when complete.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("PYSPEC_MIH_CACHE", "/tmp/pyspec-mih"))
N_PIXELS = 500
CHUNK = 32768
N_FIT = 20_000
N_QUERIES = 1000


def _prepared(batch) -> np.ndarray:
    valid = batch.ivar > 0
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = np.where(valid, batch.flux, 0).sum(axis=1, keepdims=True) / count
    flux = np.where(valid, batch.flux, mean).astype(np.float32)
    norm = np.linalg.norm(flux, axis=1, keepdims=True)
    return np.ascontiguousarray(flux / np.where(norm > 0, norm, 1), dtype=np.float32)


def _hasher(n_pixels: int):
    import pyspec
    from pyspec.simulate import Simulator

    sim = Simulator(grid=np.geomspace(3900.0, 8900.0, n_pixels), seed=101)
    hasher = pyspec.PILHasher(n_bits=256, hidden=(512,), random_state=0)
    return hasher.fit(_prepared(sim.generate(0, N_FIT)))


def _encode(hasher, n: int, seed: int, n_pixels: int, out: np.ndarray, log: bool) -> None:
    from pyspec.simulate import Simulator

    sim = Simulator(grid=np.geomspace(3900.0, 8900.0, n_pixels), seed=seed)
    t0 = time.perf_counter()
    for s in range(0, n, CHUNK):
        batch = sim.generate(s, min(n, s + CHUNK))
        out[s:s + len(batch.flux)] = hasher.encode(_prepared(batch))
        if log and (s // CHUNK) % 20 == 0:
            done = s + len(batch.flux)
            print(f"  {done}/{n} spectra encoded, {done / (time.perf_counter() - t0):.0f}/s",
                  flush=True)


def simulated_codes(n: int, n_pixels: int = N_PIXELS, log: bool = True,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(codes uint64 (n, 4) memory-mapped, queries uint64 (N_QUERIES, 4)), cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"codes-{n}-{n_pixels}px.npy"
    # Spectrum i depends only on (seed, i), so a bigger cached set's first n
    # rows are exactly this set.
    sizes = {int(p.name.split("-")[1]): p for p in CACHE.glob(f"codes-*-{n_pixels}px.npy")
             if p.name.split("-")[1].isdigit()}
    bigger = [size for size in sizes if size > n]
    qpath = CACHE / f"queries-{N_QUERIES}-{n_pixels}px.npy"
    if bigger and qpath.exists():
        return np.load(sizes[min(bigger)], mmap_mode="r")[:n], np.load(qpath)
    if not (path.exists() and qpath.exists()):
        hasher = _hasher(n_pixels)
        if not qpath.exists():
            queries = np.empty((N_QUERIES, 4), np.uint64)
            _encode(hasher, N_QUERIES, 303, n_pixels, queries, False)
            np.save(qpath, queries)
        if not path.exists():
            tmp = path.with_suffix(".partial.npy")
            codes = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint64, shape=(n, 4))
            _encode(hasher, n, 202, n_pixels, codes, log)
            codes.flush()
            del codes
            os.replace(tmp, path)
    return np.load(path, mmap_mode="r"), np.load(qpath)


if __name__ == "__main__":
    simulated_codes(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else N_PIXELS)
