"""The ``lamost`` grid preset lies on LAMOST's own pixels (issue 15).

LAMOST LRS files sample log10(wavelength) = COEFF0 + COEFF1 i with COEFF0 =
3.5682 and COEFF1 = 1e-4.  A grid on those pixels leaves every shipped
spectrum's flux and ivar unchanged by resampling; a grid half a pixel off
averages neighbouring pixels, which shows as ivar larger than the file's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyspec.io import read_spectrum
from pyspec.preprocess import WavelengthGrid, resample

SAMPLE = Path(__file__).resolve().parents[1] / "pyspec" / "data" / "sample"


def test_lamost_preset_is_on_the_header_pixel_grid():
    g = WavelengthGrid.preset("lamost")
    pix = (np.log10(g.wavelength) - 3.5682) / 1e-4
    np.testing.assert_allclose(pix, np.round(pix), atol=1e-6)


def _on_grid(path, grid):
    s = read_spectrum(path)
    r = resample(s.wavelength, s.flux, s.ivar, s.mask, grid)
    idx = np.round((np.log10(s.wavelength) - np.log10(grid.wavelength[0])) / 1e-4).astype(int)
    ok = (idx > 0) & (idx < len(grid) - 1) & ~s.mask & (s.ivar > 0)
    # a pixel next to a masked one or an edge draws on interpolated input
    ok[1:-1] &= ok[:-2] & ok[2:]
    ok[[0, -1]] = False
    return s, r, idx, ok


@pytest.mark.parametrize("name", ["spec-55862-B6212_sp06-025.fits.gz",
                                  "spec-58575-HD103621N361936B01_sp03-003.fits.gz",
                                  "spec-57278-EG224429N215706B01_sp01-001.fits.gz"])
def test_lamost_spectra_pass_through_the_preset_unchanged(name):
    grid = WavelengthGrid.preset("lamost")
    s, r, idx, ok = _on_grid(SAMPLE / name, grid)
    assert ok.sum() > 3000
    scale = np.abs(s.flux[ok]).max()
    assert np.max(np.abs(r.flux[idx[ok]] - s.flux[ok])) < 2e-3 * scale
    assert np.median(r.ivar[idx[ok]] / s.ivar[ok]) == pytest.approx(1.0, abs=0.01)


def test_a_grid_off_the_pixels_averages_them():
    """The check above can fail: half a pixel off, ivar is overstated."""
    off = WavelengthGrid.log_linear(10 ** (3.567 + 0.5e-4), 9100.0, 1e-4)
    s, r, idx, ok = _on_grid(SAMPLE / "spec-55862-B6212_sp06-025.fits.gz", off)
    assert np.median(r.ivar[idx[ok]] / s.ivar[ok]) > 1.2
