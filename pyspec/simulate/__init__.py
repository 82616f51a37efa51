"""Realistic simulated spectra from real templates, for tests and survey-scale benchmarks.

Each simulated spectrum starts from a real, cleaned rest-frame template
(:mod:`pyspec.simulate._templates`) and gets

* a shift: a radial velocity for stars, a redshift around the template's own
  for galaxies and quasars;
* a continuum tilt ``exp(slope * x + curv * x**2)``, ``x = ln(lambda / 6000 A)``,
  and an overall flux scale;
* emission lines of chosen strength: single- or double-peaked H-alpha (Be-star
  like) in stars, the usual galaxy set (H-alpha, H-beta, [O III], [N II],
  [S II], [O II]) at the galaxy's redshift, broadened by the instrument;
* noise from a chosen S/N distribution (log-normal, as survey S/N is; the
  ``"unknown"`` preset puts 87 % of spectra below S/N 10), with variance
  ``a * (flux + sky)`` and an ``ivar`` consistent with it;
* runs of bad pixels (bad columns: ivar = 0, flux at an arbitrary level) and
  zero-flux padding at the blue and red ends (ivar = 0);

and is resampled onto the chosen wavelength grid. Labels (template, class,
shift, injected lines, S/N) come with every spectrum.

Determinism: the parameters of spectrum ``i`` are drawn in fixed blocks of
:data:`BLOCK` spectra from ``(seed, block)``, and its noise is a counter-based
function of ``(seed, i, pixel)``, so the output for a seed and a template
library is identical whatever the chunk size or thread count. The library is
part of the input: the default one includes ``shared/data`` when present, so
pass ``templates=load_library([...])`` for output that is the same on every
machine.

Examples
--------
>>> import numpy as np
>>> from pyspec.simulate import Simulator, load_library
>>> from pyspec.simulate._templates import SAMPLE_DIR
>>> sim = Simulator(grid=np.geomspace(3900.0, 8900.0, 500), seed=1,
...                 templates=load_library([SAMPLE_DIR]))
>>> batch = sim.generate(0, 10)
>>> batch.flux.shape, batch.ivar.dtype.name, len(batch.labels)
((10, 500), 'float32', 10)
>>> bool(np.all(batch.ivar[batch.flux == 0] == 0))  # padding and gaps are masked
True
"""


from __future__ import annotations

from pathlib import Path

from pyspec.simulate._simulator import (  # noqa: F401  (LINE_NAMES and the constants: public)
    BLOCK,
    C_KMS,
    LAMOST_RESOLUTION,
    LINE_NAMES,
    LINES,
    MAX_BAD_RUNS,
    SimulatedBatch,
    Simulator,
    SNRDistribution,
    measure_snr,
    simulate_spectra,
)
from pyspec.simulate._templates import TemplateLibrary, load_library, shared_data_dir

__all__ = [
    "BLOCK", "LINES", "SNRDistribution", "SimulatedBatch", "Simulator", "TemplateLibrary",
    "load_library", "shared_data_dir", "simulate_spectra", "measure_snr", "write_store",
    "write_fits",
]


def write_store(path, n: int, seed: int = 0, grid="lamost", chunk_size: int = 4096,
                progress: bool = False, **kwargs) -> Path:
    """Write ``n`` simulated spectra into a new SpectrumStore at ``path`` chunk by chunk.

    Memory stays bounded by the chunk size (flux and ivar of one chunk plus
    the template library). The flux is prepared like an ingest with the
    ``preprocessing`` recipe (keyword; default "similarity", a preset name of
    :data:`pyspec.preprocess.PREPROCESSING_PRESETS` or a Preprocessor), which
    the store records. Returns the store path.
    """
    from pyspec.simulate._writers import write_store as _ws

    return _ws(path, n, seed=seed, grid=grid, chunk_size=chunk_size, progress=progress, **kwargs)


def write_fits(directory, n: int, seed: int = 0, grid=None, layouts=("C", "D"),
               progress: bool = False, **kwargs) -> list[Path]:
    """Write ``n`` simulated spectra as LAMOST FITS files (layouts C and D alternating).

    ``grid`` defaults to LAMOST's native 3909-pixel log-linear grid. Returns the paths.
    """
    from pyspec.simulate._writers import write_fits as _wf

    return _wf(directory, n, seed=seed, grid=grid, layouts=layouts, progress=progress, **kwargs)
