"""Cached, fixed-seed data generators shared by the asv benchmarks (append-only).

Each generator is self-contained; a released generator is never changed, only
new ones are appended, so figures stay comparable over time.
"""

from __future__ import annotations

import functools


# ---------------------------------------------------------------- simulator (issue 8)

@functools.lru_cache(maxsize=1)
def simulation_templates():
    """The template library from the shipped sample only (the same on every machine)."""
    from pyspec.simulate import load_library
    from pyspec.simulate._templates import SAMPLE_DIR

    return load_library([SAMPLE_DIR])


def simulation_grid(n_pixels: int = 2500):
    """Log-linear wavelengths (Angstrom) from 3900 to 8900 A with ``n_pixels`` pixels."""
    import numpy as np

    return np.geomspace(3900.0, 8900.0, n_pixels)


@functools.lru_cache(maxsize=4)
def simulate_spectra(n: int, n_pixels: int = 2500, seed: int = 0, snr="lamost"):
    """``n`` realistic labelled spectra (a :class:`pyspec.simulate.SimulatedBatch`).

    Real LAMOST templates with shifts, tilts, emission lines, survey-like S/N,
    bad-pixel runs and end padding, on :func:`simulation_grid`. Cached: do not
    modify the returned arrays in place.
    """
    from pyspec.simulate import Simulator

    sim = Simulator(grid=simulation_grid(n_pixels), seed=seed, templates=simulation_templates(),
                    snr=snr)
    return sim.generate(0, n)
