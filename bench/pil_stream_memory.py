"""Fit time and peak memory of PILHasher streaming from disk, at two sizes.

Spectra are generated chunk by chunk into a raw float32 file (never held in
memory) and read back by a store-like object whose ``iter_chunks`` reads each
chunk with ``numpy.fromfile`` (anonymous memory only, so the process's peak
resident set ``VmHWM`` measures pyspec, not the page cache of a memory map).
Run each size in a fresh process: the peak is per process.

    python bench/pil_stream_memory.py --n 50000 --pixels 3700
    python bench/pil_stream_memory.py --n 200000 --pixels 3700

If the peak memory does not grow from the first size to the second, the fit
runs in memory independent of the number of spectra. The file is deleted at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


class RawStore:
    """(n, n_pixels) float32 spectra in a raw file, read chunk by chunk."""

    def __init__(self, path: str, n: int, n_pixels: int) -> None:
        self.path, self.n, self.n_pixels = path, n, n_pixels

    def __len__(self) -> int:
        return self.n

    def iter_chunks(self, chunk_size: int):
        with open(self.path, "rb") as f:
            for start in range(0, self.n, chunk_size):
                rows = min(chunk_size, self.n - start)
                flux = np.fromfile(f, dtype=np.float32, count=rows * self.n_pixels)
                yield start, flux.reshape(rows, self.n_pixels), None


def write_spectra(path: str, n: int, n_pixels: int, chunk: int = 4000) -> None:
    """Template spectra (12 classes of absorption lines, pyspec.evaluate's
    generator) times a random continuum tilt, plus noise, L2-normalised;
    vectorised per chunk so a million spectra take about a minute."""
    from pyspec.evaluate import synthetic_labelled_spectra

    templates, _ = synthetic_labelled_spectra(12, n_pixels, n_classes=12, noise=0.0,
                                              random_state=1)
    rng = np.random.default_rng(2)
    x = np.linspace(-0.5, 0.5, n_pixels, dtype=np.float32)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            cls = rng.integers(0, len(templates), m)
            tilt = rng.normal(0.0, 0.3, (m, 1)).astype(np.float32)
            flux = templates[cls] * (1.0 + tilt * x)
            flux += rng.standard_normal((m, n_pixels), dtype=np.float32) * np.float32(0.002)
            flux /= np.linalg.norm(flux, axis=1, keepdims=True)
            flux.astype(np.float32).tofile(f)


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--pixels", type=int, default=3700)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--bits", type=int, default=256)
    p.add_argument("--dir", default=tempfile.gettempdir())
    args = p.parse_args()
    from pyspec import PILHasher

    path = os.path.join(args.dir, f"pyspec_stream_{os.getpid()}.f32")
    try:
        t0 = time.perf_counter()
        write_spectra(path, args.n, args.pixels)
        t_gen = time.perf_counter() - t0
        rss_before = peak_rss_mib()
        hidden = tuple(int(h) for h in args.hidden.split(","))
        model = PILHasher(n_bits=args.bits, hidden=hidden, random_state=0)
        t0 = time.perf_counter()
        model.fit(RawStore(path, args.n, args.pixels))
        t_fit = time.perf_counter() - t0
        print(json.dumps({"n": args.n, "pixels": args.pixels, "hidden": hidden, "bits": args.bits,
                          "generate_s": round(t_gen, 1), "fit_s": round(t_fit, 1),
                          "peak_rss_mib_before_fit": round(rss_before), "peak_rss_mib": round(peak_rss_mib()),
                          "data_gib": round(args.n * args.pixels * 4 / 2**30, 2)}))
    finally:
        if os.path.exists(path):
            os.remove(path)


if __name__ == "__main__":
    main()
