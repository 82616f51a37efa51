"""CCD700 -> LAMOST adaptation: blur at the source pixels, then the shared preparation."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from pyspec.io import Spectrum
from pyspec.preprocess import adapt_spectra, degrade_at_source, source_blur_sigma


def _line_spectrum(step: float = 0.25, width: float = 0.3) -> Spectrum:
    wl = np.arange(6280.0, 6735.0, step)
    flux = 1.0 - 0.6 * np.exp(-0.5 * ((wl - 6564.0) / width) ** 2)
    n = wl.size
    return Spectrum(wl, flux.astype(np.float32), np.ones(n, np.float32), np.zeros(n, bool),
                    {"id": "t", "vacuum": False})


def test_blur_sigma_from_resolving_powers():
    wl = np.linspace(6000.0, 7000.0, 4001)  # 0.25 A pixels, middle 6500 A
    fwhm = 6500.0 * np.sqrt(1 / 1800.0**2 - 1 / 13000.0**2)
    assert source_blur_sigma(wl, 1800, 13000) == pytest.approx(fwhm / 0.25 / 2.3548, rel=1e-4)
    with pytest.raises(ValueError, match="below"):
        source_blur_sigma(wl, 20000, 13000)


def test_blurred_line_has_target_width():
    s = _line_spectrum()
    out = degrade_at_source(s, 1800.0)
    depth = 1.0 - out.flux
    wl = s.wavelength
    sigma = np.sqrt(np.sum(depth * (wl - 6564.0) ** 2) / np.sum(depth))
    want = np.hypot(0.3, 6507.5 / 1800.0 / 2.3548)  # intrinsic (+) kernel, in A
    assert sigma == pytest.approx(want, rel=0.02)
    # the equivalent width is conserved
    assert np.sum(depth) == pytest.approx(np.sum(1.0 - s.flux), rel=1e-3)


def test_adapt_spectra_range_and_rejects():
    s = _line_spectrum()
    bad = dataclasses.replace(s, mask=np.ones(len(s), bool))
    out = adapt_spectra([s, bad])
    assert out.flux.shape == (2, 140)
    assert out.ok.tolist() == [True, False]
    assert out.flux[0].min() == pytest.approx(-1.0)
    assert out.flux[0].max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown adaptation preset"):
        adapt_spectra([s], preset="feros-sdss")


@pytest.mark.shared_data
def test_lamost_ondrejov_pairs_correlate(shared_data):
    from pyspec.io import read_spectrum

    with open(shared_data / "ondrejov/bt_spectraldl_xmatch_labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    ond = adapt_spectra([read_spectrum(shared_data / r["ondrejov_file"]) for r in rows])
    lam = adapt_spectra([read_spectrum(shared_data / r["lamost_match_file"]) for r in rows],
                        source=False)
    assert ond.ok.all()
    assert lam.ok.all()
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(ond.flux, lam.flux, strict=True)]
    assert np.median(corr) >= 0.8
