"""Peer for the simulator: the same model written as a plain NumPy loop per spectrum.

The peer does what a user would write without pyspec.simulate: for each
spectrum, ``np.interp`` of the shifted template onto the grid, the tilt,
Gaussian lines, a noise model with ``rng.normal`` and the ivar, with the
parameters pyspec drew (so both do the same work). pyspec runs its numba
kernels over the whole chunk. Ratio = peer time / pyspec time (> 1: pyspec
faster).
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import best_time

NAME = "simulate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simulate-n", type=int, default=8192,
                        help="spectra for the simulate section (default 8192)")


def _numpy_loop(sim, params) -> None:
    lib = sim.templates
    wl = sim.wavelength
    log_wl = np.log10(wl)
    rest = lib.rest_wavelength
    ref = (wl >= 5600) & (wl <= 6800)
    rng = np.random.default_rng(0)
    x = np.log(wl / 6000.0)
    for i in range(len(params["index"])):
        t = params["template"][i]
        lo, hi = lib.lo[t], lib.hi[t]
        shifted = 10 ** (log_wl - np.log10(1 + params["z"][i]))
        f = np.interp(shifted, rest[lo:hi + 1], lib.flux[t, lo:hi + 1], left=0.0, right=0.0)
        f = params["scale"][i] * f * np.exp(params["slope"][i] * x + params["curv"][i] * x * x)
        for m in np.flatnonzero(params["line_amp"][i]):
            c = params["line_lam"][i, m] * (1 + params["z"][i])
            s = np.hypot(c * params["line_sig"][i, m] / 299792.458, c / (2.355 * sim.resolution))
            f += params["scale"][i] * params["line_amp"][i, m] * np.exp(-0.5 * ((wl - c) / s) ** 2)
        m_level = np.median(f[f != 0])
        floor = params["sky"][i] * m_level
        ratio = np.median(f[ref] / np.sqrt(np.maximum(f[ref], 0) + floor))
        sigma = ratio / params["snr"][i] * np.sqrt(np.maximum(f, 0) + floor)
        f = (f + sigma * rng.standard_normal(f.size)).astype(np.float32)
        ivar = (1.0 / sigma**2).astype(np.float32)
        ivar[f == 0] = 0


def run(args: argparse.Namespace) -> list[dict]:
    from pyspec.simulate import Simulator, load_library
    from pyspec.simulate._templates import SAMPLE_DIR

    n = 512 if args.quick else args.simulate_n
    sim = Simulator(grid=np.geomspace(3900.0, 8900.0, 2500), seed=0,
                    templates=load_library([SAMPLE_DIR]))
    sim.generate(0, 8)  # compile / load the numba cache
    params = sim.parameters(0, n)
    t_py = best_time(lambda: sim.render(params))
    t_np = best_time(lambda: _numpy_loop(sim, params), repeat=1 if n > 1000 else 3)
    return [{"case": f"render {n} x 2500 px", "pyspec": t_py, "peer": t_np,
             "ratio": t_np / t_py, "peer_name": "numpy loop (np.interp, rng.normal)",
             "pyspec_spectra_per_s": n / t_py}]
