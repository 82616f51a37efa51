"""Peers for the line measurements: scipy.ndimage + scipy.signal pipeline.

The peer computes the same pseudo-continuum with ``scipy.ndimage.median_filter``
(a fixed window in pixels, no masked-pixel handling) and finds peaks with
``scipy.signal.find_peaks`` at the same noise threshold; pyspec does the
Angstrom window with masked pixels, the peak/extent search, and the CL
redshift.  Ratio = peer time / pyspec time (> 1: pyspec faster).
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import best_time

NAME = "lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines-n", type=int, default=1000,
                        help="spectra per batch for the lines section (default 1000)")


def run(args: argparse.Namespace) -> list[dict]:
    import sys
    from pathlib import Path

    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pyspec.lines as lines
    from benchmarks.bench_lines import make_batch
    from pyspec.measure import measure

    n = 32 if args.quick else args.lines_n
    w, flux, ivar = make_batch(n)
    lines.find_lines(make_batch(2))  # compile / load cache
    pix = int(150.0 / np.median(np.diff(w))) | 1

    def peer():
        cont = median_filter(flux, size=(1, pix), mode="nearest")
        resid = flux - cont
        for i in range(n):
            find_peaks(resid[i], height=3.0 / np.sqrt(ivar[i]), distance=3)

    def ours():
        lines.find_lines((w, flux, ivar))

    t_peer, t_ours = best_time(peer), best_time(ours)
    t_all = best_time(lambda: measure((w, flux, ivar)), repeat=1)
    # without the template cross-correlation (CL redshifts only, issue 15)
    t_cl = best_time(lambda: measure((w, flux, ivar), templates=False), repeat=1)
    return [
        {"case": f"continuum+peaks n={n}", "pyspec": t_ours, "peer": t_peer,
         "ratio": t_peer / t_ours, "peer_name": "scipy median_filter+find_peaks"},
        {"case": f"measure() n={n}", "pyspec": t_all, "peer": float("nan"), "ratio": float("nan"),
         "spectra_per_s": n / t_all},
        {"case": f"measure(templates=False) n={n}", "pyspec": t_cl, "peer": float("nan"),
         "ratio": float("nan"), "spectra_per_s": n / t_cl},
    ]
