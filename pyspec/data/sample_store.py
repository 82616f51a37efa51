"""A spectrum store made from the shipped LAMOST sample, for demos, examples and tests.

The 59 real spectra are too few to train a 256-bit PIL hasher (its
pseudo-inverse solves need more spectra than hidden units), so
:func:`build_sample_store` adds spectra simulated from those same spectra as
templates (:mod:`pyspec.simulate`: shifts, continuum tilts, emission lines,
survey noise).  Simulated rows are labelled ``class = SIM-<template class>``
with ids ``sim-NNNNN``; the real rows come first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspec.preprocess import PreparedBatch, Preprocessor
    from pyspec.store import SpectrumStore

__all__ = ["build_sample_store", "SAMPLE_GRID"]

#: Wavelength grid of the sample store (LAMOST, 3690-9100 A, log-linear).
SAMPLE_GRID = "lamost"


def _simulated_spectra(prep: Preprocessor, n: int, seed: int
                       ) -> tuple[PreparedBatch, list[dict]]:
    """``n`` simulated spectra on the recipe's grid, prepared by it, and their metadata."""
    from pyspec.data import SAMPLE_DIR
    from pyspec.io import Spectrum
    from pyspec.simulate import Simulator, load_library

    sim = Simulator(grid=prep.grid, seed=seed, templates=load_library(sources=[SAMPLE_DIR]))
    batch = sim.generate(0, n)
    labels = batch.labels
    rows = [{"id": f"sim-{i:05d}", "file": "simulated", "class": f"SIM-{labels['class'][i]}",
             "subclass": str(labels["subclass"][i]), "z": float(labels["z"][i]),
             "snr_r": float(labels["snr_r"][i]), "ra": float("nan"), "dec": float("nan")}
            for i in range(n)]
    wavelength = prep.grid.wavelength
    spectra = [Spectrum(wavelength=wavelength, flux=np.asarray(f, np.float32),
                        ivar=np.asarray(iv, np.float32), mask=~(np.asarray(iv) > 0),
                        meta={**m, "vacuum": True})
               for f, iv, m in zip(batch.flux, batch.ivar, rows, strict=True)]
    return prep.apply(spectra), rows


def build_sample_store(store_dir: str | Path, n_simulated: int, seed: int = 0,
                       preprocessing: str | None = None
                       ) -> tuple[SpectrumStore, int, int, str]:
    """Store of the shipped real spectra (first rows) plus ``n_simulated`` simulated ones.

    Parameters
    ----------
    store_dir : path-like
        Store directory to create (must not exist).
    n_simulated : int
        Simulated spectra to add (0: the real spectra only).
    seed : int
        Seed of the simulation.
    preprocessing : str, optional
        Preset of :data:`pyspec.preprocess.PREPROCESSING_PRESETS` on the
        LAMOST grid (default: the default recipe, "similarity").

    Returns
    -------
    store : SpectrumStore
        The store, opened.
    n_real : int
        Real spectra stored (the first rows).
    n_rejected : int
        Shipped files the default preprocessing rejected.
    how : str
        How the extra spectra were made.
    """
    from pyspec.data import sample_files
    from pyspec.io import read_spectra
    from pyspec.preprocess import DEFAULT_PREPROCESSING, Preprocessor
    from pyspec.store import SpectrumStore

    if n_simulated < 0:
        raise ValueError(f"n_simulated must be >= 0, got {n_simulated}")
    preset = Preprocessor.preset(preprocessing or DEFAULT_PREPROCESSING)
    prep = Preprocessor.from_dict({**preset.to_dict(),
                                   "grid": Preprocessor(SAMPLE_GRID).grid.to_dict()})
    read = read_spectra(sample_files())
    batch = prep.apply(read.spectra)
    ok = np.asarray(batch.ok)
    real_meta = [dict(s.meta) for s, good in zip(read.spectra, ok, strict=True) if good]
    rejects = list(read.rejects) + [(str(s.meta.get("file")), str(r))
                                    for s, good, r in zip(read.spectra, ok, batch.reasons,
                                                          strict=True) if not good]
    with SpectrumStore.create(store_dir, prep.grid, preprocessing=prep.to_dict()) as writer:
        writer.append(batch.flux[ok], batch.ivar[ok], real_meta)
        if n_simulated:
            sim_batch, sim_rows = _simulated_spectra(prep, n_simulated, seed)
            good = np.asarray(sim_batch.ok)
            writer.append(sim_batch.flux[good], sim_batch.ivar[good],
                          [r for r, g in zip(sim_rows, good, strict=True) if g])
        for name, reason in rejects:
            writer.reject(name, reason)
    how = "pyspec.simulate (templates: the shipped sample)" if n_simulated else "none"
    return SpectrumStore.open(store_dir), int(ok.sum()), len(rejects), how
