"""Strict CL redshifts, sky masks, line centroids and template cross-correlation (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lines_data import gaussian_lines

import pyspec.lines as L
from pyspec.io import read_spectrum
from pyspec.lines.xcorr import C_KMS, default_templates, xcorr_redshift

SAMPLE = Path(__file__).resolve().parents[1] / "pyspec" / "data" / "sample"
G_STAR = "spec-58575-HD103621N361936B01_sp03-026"  # G8, S/N 129, DR7
GALAXY = "spec-58575-HD103621N361936B01_sp03-066"  # z = 0.1308, S/N 21
M_STAR = "spec-58575-HD103621N361936B01_sp03-061"  # dM1, S/N 130
A_STAR = "spec-55862-B6212_sp06-018"  # A4V


def _sample(stem):
    return read_spectrum(SAMPLE / f"{stem}.fits.gz")


def test_every_accepted_line_lies_within_tol_of_the_solution(rng):
    """Random line lists around a true z with per-line scatter up to 1.5 tol:
    whatever is accepted, no accepted line is farther than tol from z."""
    names = list(L.REST_LINES)
    tol = 0.001
    n_ok = 0
    for _ in range(300):
        z = rng.uniform(0.0, 0.5)
        pick = rng.choice(len(names), size=rng.integers(3, 7), replace=False)
        rest = np.array([L.REST_LINES[names[i]] for i in pick])
        zi = z + rng.uniform(-1.5 * tol, 1.5 * tol, rest.size)
        r = L.redshift_from_lines(rest * (1 + zi))
        if not r.ok:
            continue
        n_ok += 1
        per_line = [o / L.REST_LINES[n] - 1 for o, n in zip(r.observed, r.lines, strict=True)]
        assert np.max(np.abs(np.array(per_line) - r.z)) < tol
    assert n_ok > 50  # the check ran on many accepted solutions


def test_oii_doublet_counts_as_one_line():
    z = 0.3
    c = [3727.09 * (1 + z), 3729.88 * (1 + z), 4862.68 * (1 + z)]
    assert not L.redshift_from_lines(c).ok
    assert L.redshift_from_lines(c + [5008.24 * (1 + z)]).ok


def test_sky_lines_and_artefacts_are_not_detected():
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    f = np.ones(w.size)
    for x in (5578.9, 6302.0, 6365.5, 7662.0, 5000.0):
        f += 3.0 * np.exp(-0.5 * ((w - x) / 1.5) ** 2)
    t = L.find_lines((w, f, np.full(w.size, 1e4)))
    assert len(t) == 1 and abs(t["centre"][0] - 5000.0) < 0.5
    assert L.sky_mask(np.array([5578.9, 6302.0, 6365.5, 7662.0, 5000.0])).tolist() == [
        True, True, True, True, False]


def test_line_centres_are_unbiased_at_any_pixel_phase(rng):
    """Centroid of a Gaussian line (sigma 1.5 px) on a log grid, at random
    sub-pixel phases: error < 2 % of a pixel without noise."""
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    for _ in range(20):
        x = rng.uniform(4500, 5500)  # clear of the sky-line mask
        sig = 1.5 * x * 1e-4 * np.log(10)
        f = 1.0 + 5.0 * np.exp(-0.5 * ((w - x) / sig) ** 2)
        t = L.find_lines((w, f, np.full(w.size, 1e4)))
        pix = x * 1e-4 * np.log(10)
        assert abs(t["centre"][0] - x) < 0.02 * pix


def test_centroid_follows_the_flux_of_an_asymmetric_line():
    """A line with a red shoulder: the centre moves from the peak pixel towards
    the flux-weighted centre (the peak-pixel parabola stays at the peak)."""
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    sig = 1.2
    f = 1.0 + 5.0 * np.exp(-0.5 * ((w - 5500.0) / sig) ** 2) \
        + 3.0 * np.exp(-0.5 * ((w - 5502.5) / sig) ** 2)
    peak = w[np.argmax(f)]
    centre = L.find_lines((w, f, np.full(w.size, 1e4)))["centre"][0]
    flux_centre = (5.0 * 5500.0 + 3.0 * 5502.5) / 8.0
    assert peak + 0.1 < centre < flux_centre


def _shift(s, v_kms):
    """The spectrum as seen with an extra velocity v (flux resampled, same grid)."""
    w = np.asarray(s.wavelength, float)
    good = np.asarray(s.ivar) > 0
    f = np.interp(w / (1 + v_kms / C_KMS), w[good], np.asarray(s.flux, float)[good])
    return w, f, good


@pytest.mark.parametrize("v", [-180.0, 75.0, 420.0])
def test_xcorr_recovers_an_injected_stellar_velocity(v):
    s = _sample(G_STAR)
    w, f0, good = _shift(s, 0.0)
    base = xcorr_redshift(w, f0, good, exclude=G_STAR)
    w, f1, good = _shift(s, v)
    moved = xcorr_redshift(w, f1, good, exclude=G_STAR)
    assert base.template_class == moved.template_class == "STAR"
    assert (moved.z - base.z) * C_KMS == pytest.approx(v, abs=5.0)
    assert moved.z_err * C_KMS < 10.0


def test_xcorr_redshifts_a_galaxy_without_using_itself():
    s = _sample(GALAXY)
    zh = s.meta["z"]
    w = np.asarray(s.wavelength, float)
    good = np.asarray(s.ivar) > 0
    # move the galaxy to z' = (1 + zh)(1 + 0.05) - 1 by stretching its wavelengths
    r = xcorr_redshift(w * 1.05, np.asarray(s.flux, float), good, exclude=GALAXY)
    expected = (1 + zh) * 1.05 - 1
    assert r.template_class == "GALAXY" and r.template != GALAXY
    assert abs(r.z - expected) < 0.001 * (1 + expected)


def test_best_redshift_methods_and_quality():
    star = L.best_redshift(_sample(M_STAR))
    assert star.method == "xcorr-star" and star.quality == "good"
    assert abs(star.z) * C_KMS < 300 and star.template != M_STAR
    gal = L.best_redshift(_sample(GALAXY))
    assert gal.ok and abs(gal.z - 0.130824) < 0.001 * 1.13
    assert gal.method in ("CL", "xcorr-galaxy") and gal.quality == "good"
    # pure noise: nothing trustworthy
    rng = np.random.default_rng(3)
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    noise = L.best_redshift((w, 1 + rng.normal(0, 0.1, w.size), np.full(w.size, 100.0)))
    assert not noise.ok and noise.quality == "failed" and noise.reason


def test_spikes_on_a_star_lose_to_its_stellar_match():
    """Three fake lines at a galaxy redshift on a bright star: the CL solution
    is rejected in favour of the star's velocity."""
    s = _sample(G_STAR)
    w = np.asarray(s.wavelength, float)
    f = np.asarray(s.flux, float).copy()
    z = 0.124
    amp = 3.0 * np.median(f)
    f += gaussian_lines(w, z, {"Ha": 1.0, "NII_6583": 0.8, "NII_6548": 0.4}, 60.0,
                        L.REST_LINES) * amp
    spec = (w, f, np.asarray(s.ivar, float))
    assert L.redshift(spec).ok  # the lines alone make a CL redshift
    best = L.best_redshift(spec)
    assert best.method == "xcorr-star" and abs(best.z) < 0.002


def test_default_templates_are_real_spectra_from_the_sample():
    t = default_templates()
    stems = {p.name.split(".fits")[0] for p in SAMPLE.glob("*.fits*")}
    assert len(t) >= 20 and set(t.ids) <= stems
    assert {"STAR", "GALAXY"} <= set(t.classes)
