"""[O III] 4959/5007 doublet redshift (pyspec.lines.doublet) on synthetic spectra with known z."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lines_data import gaussian_lines

import pyspec.lines as L
from pyspec.io import read_spectrum
from pyspec.lines.doublet import OIII_RATIO

SAMPLE = Path(__file__).resolve().parents[1] / "pyspec" / "data" / "sample"
G_STAR = "spec-58575-HD103621N361936B01_sp03-026"  # G8, S/N 129, DR7
WAVE = 10 ** (3.5682 + 1e-4 * np.arange(3900))  # LAMOST grid, 3700-9100 A
NOISE = 0.1


def _spectrum(z, fluxes, seed):
    """Flat continuum, Gaussian noise of NOISE, lines of 150 km/s dispersion."""
    rng = np.random.default_rng(seed)
    f = 1.0 + rng.normal(0.0, NOISE, WAVE.size)
    f += gaussian_lines(WAVE, z, fluxes, 150.0, L.REST_LINES)
    return WAVE, f, np.full(WAVE.size, NOISE**-2)


@pytest.mark.parametrize(("z", "seed"), [(0.05, 1), (0.31, 2), (0.62, 3)])
def test_doublet_alone_gives_the_redshift(z, seed):
    """Only [O III] 4959/5007 (1:2.98) above the noise: CL needs three lines
    and fails, the doublet gives z within the CL tolerance."""
    f5007 = 12.0  # peak ~ 15 sigma at 6500 A
    spec = _spectrum(z, {"OIII_5007": f5007, "OIII_4959": f5007 / OIII_RATIO}, seed)
    assert not L.redshift(spec).ok
    best = L.best_redshift(spec, templates=False)
    assert best.method == "OIII-doublet"
    assert best.quality == "uncertain"
    assert best.lines == ("OIII_4959", "OIII_5007")
    assert abs(best.z - z) < 0.001 * (1 + z)


@pytest.mark.parametrize("ratio", [1.0, 8.0])
def test_a_pair_with_the_wrong_flux_ratio_is_no_doublet(ratio):
    """Two lines at the [O III] separation whose ratio is not 2.98 (equal
    lines, or a 'weak member' far below 5007 / 2.98) are not accepted."""
    z, f5007 = 0.31, 12.0
    spec = _spectrum(z, {"OIII_5007": f5007, "OIII_4959": f5007 / ratio}, 4)
    best = L.best_redshift(spec, templates=False)
    assert not best.ok


def test_a_single_line_gives_no_redshift():
    spec = _spectrum(0.31, {"OIII_5007": 12.0}, 5)
    best = L.best_redshift(spec, templates=False)
    assert not best.ok
    assert best.quality == "failed"


def test_a_clear_stellar_match_beats_the_doublet():
    """A doublet-like pair of spikes on a bright star: the star's clear
    cross-correlation (r >= 5) wins over the two-line solution."""
    s = read_spectrum(SAMPLE / f"{G_STAR}.fits.gz")
    w = np.asarray(s.wavelength, float)
    f = np.asarray(s.flux, float).copy()
    amp = 3.0 * np.median(f)
    f += gaussian_lines(w, 0.31, {"OIII_5007": 1.0, "OIII_4959": 1.0 / OIII_RATIO}, 60.0,
                        L.REST_LINES) * amp
    best = L.best_redshift((w, f, np.asarray(s.ivar, float)))
    assert best.method == "xcorr-star"
    assert best.quality == "good"
    assert abs(best.z) < 0.002
