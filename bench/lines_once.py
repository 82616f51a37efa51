"""line_fluxes(z=None) and best_redshift on the shipped sample (issue 20 leftover: one analysis
per spectrum). Run with this checkout's interpreter and with main's to compare::

    python bench/lines_once.py; /work/main/.venv/bin/python bench/lines_once.py
"""

from __future__ import annotations

import time

from pyspec.data import sample_files
from pyspec.io import read_spectra
from pyspec.measure.lines import best_redshift, line_fluxes


def _best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    spectra = read_spectra(sample_files()).spectra
    line_fluxes(spectra[:2])  # numba compilation, outside the clock
    best_redshift(spectra[:2], templates=False)
    for name, fn in (("line_fluxes(z=None)", lambda: line_fluxes(spectra)),
                     ("best_redshift(templates=False)",
                      lambda: best_redshift(spectra, templates=False))):
        print(f"{name} on {len(spectra)} shipped spectra: {_best_of(fn):.3f} s")


if __name__ == "__main__":
    main()
