"""Preprocessing checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

import pyspec
from pyspec.data import sample_files
from pyspec.errors import SpectrumCoverageError
from pyspec.io import Spectrum, empty_meta, read_spectra
from pyspec.preprocess import (
    Preprocessor,
    WavelengthGrid,
    air_to_vacuum,
    continuum_median,
    continuum_poly,
    degrade_resolution,
    gaussian_kernel,
    kernel_sigma,
    log_to_linear,
    normalise,
    pixel_edges,
    resample,
    to_rest_frame,
    vacuum_to_air,
)


def make_spectrum(wl, flux, ivar=None, mask=None, **meta) -> Spectrum:
    wl = np.asarray(wl, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float32)
    ivar = np.ones_like(flux) if ivar is None else np.asarray(ivar, dtype=np.float32)
    mask = np.zeros(flux.shape, bool) if mask is None else np.asarray(mask, bool)
    m = empty_meta()
    m.update(meta)
    return Spectrum(wl, flux, ivar, mask, m)


# ------------------------------------------------------------------ grids

@pytest.mark.parametrize(("name", "n", "lo", "hi"), [
    ("lamost", 3921, 10 ** 3.567, 9100.0),
    ("pq-1A", 5001, 3900.0, 8900.0),
    ("pq-2A", 2501, 3900.0, 8900.0),
    ("halpha-140", 140, 6519.0, 6732.0),
    ("halpha-wide", 501, 6250.0, 6750.0),
])
def test_presets(name, n, lo, hi):
    g = WavelengthGrid.preset(name)
    assert len(g) == n
    assert g.name == name
    assert g.wavelength[0] == pytest.approx(lo)
    assert g.wavelength[-1] == pytest.approx(hi, abs=1.0)  # log grid stops within a pixel
    assert WavelengthGrid.from_dict(g.to_dict()) == g
    assert WavelengthGrid.from_dict(g.to_dict()).name == name


def test_grid_constructors_and_errors():
    g = WavelengthGrid.log_linear(4000, 5000, 1e-4)
    np.testing.assert_allclose(np.diff(np.log10(g.wavelength)), 1e-4, rtol=1e-9)
    assert g.dlog10 == 1e-4
    assert WavelengthGrid.linear(1, 10, 1).dlog10 is None
    explicit = WavelengthGrid([1.0, 2.0, 4.0], name="x")
    assert WavelengthGrid.from_dict(explicit.to_dict()) == explicit
    np.testing.assert_allclose(explicit.edges(), [0.5, 1.5, 3.0, 5.0])
    assert pyspec.WavelengthGrid is WavelengthGrid
    with pytest.raises(ValueError, match="strictly increasing"):
        WavelengthGrid([1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="unknown grid preset"):
        WavelengthGrid.preset("nope")
    with pytest.raises(ValueError, match="start < stop"):
        WavelengthGrid.linear(5, 4, 1)
    with pytest.raises(ValueError, match="read-only"):
        g.wavelength[0] = 1.0


# ------------------------------------------------------------------ air / vacuum

# Published line wavelengths (vacuum: SDSS line list; air: NIST ASD), Angstrom.
LINES = [  # name, vacuum, air
    ("H-alpha", 6564.61, 6562.80),
    ("H-beta", 4862.68, 4861.33),
    ("[O III]", 5008.24, 5006.84),
    ("[N II]", 6585.27, 6583.45),
    ("[S II]", 6718.29, 6716.44),
    ("Na D2", 5891.58, 5889.95),
]


@pytest.mark.parametrize(("name", "vac", "air"), LINES)
def test_air_vacuum_published_values(name, vac, air):
    # the tables give 0.01 A; the formula agrees to < 0.009 A on all six lines
    assert vacuum_to_air(vac) == pytest.approx(air, abs=0.01)
    assert air_to_vacuum(air) == pytest.approx(vac, abs=0.01)


def test_air_vacuum_round_trip_and_uv():
    wl = np.linspace(2001, 25000, 2001)  # the 2000 A convention cut is not invertible
    np.testing.assert_allclose(vacuum_to_air(air_to_vacuum(wl)), wl, rtol=0, atol=1e-8)
    np.testing.assert_allclose(air_to_vacuum(vacuum_to_air(wl)), wl, rtol=0, atol=1e-8)
    uv = np.array([1215.67, 1549.0])
    np.testing.assert_array_equal(vacuum_to_air(uv), uv)  # IAU: no conversion below 2000 A
    np.testing.assert_array_equal(air_to_vacuum(uv), uv)


def test_rest_frame():
    np.testing.assert_allclose(to_rest_frame([6564.61 * 1.5], 0.5), [6564.61])
    with pytest.raises(ValueError, match="redshift"):
        to_rest_frame([5000.0], math.nan)


# ------------------------------------------------------------------ resampling

def _rebin_reference(wl_in, f_in, grid):
    """Brute force: overlap-weighted mean of piecewise-constant input per output pixel."""
    ein, eout = pixel_edges(wl_in), pixel_edges(grid)
    out = np.empty(len(grid))
    for j in range(len(grid)):
        lo, hi = eout[j], eout[j + 1]
        ov = np.clip(np.minimum(hi, ein[1:]) - np.maximum(lo, ein[:-1]), 0, None)
        out[j] = np.sum(ov * f_in) / np.sum(ov)
    return out


def test_rebin_matches_reference_and_conserves_flux(rng):
    wl = np.sort(rng.uniform(4000, 6000, 900))
    f = rng.normal(10, 2, wl.size)
    grid = WavelengthGrid.linear(4100, 5900, 3.7)
    r = resample(wl, f, np.ones_like(f), None, grid, "rebin")
    np.testing.assert_allclose(r.flux, _rebin_reference(wl, f, grid.wavelength), rtol=1e-12)
    # total flux over fully covered output pixels equals the input integral there
    ein, eout = pixel_edges(wl), grid.edges()
    lo, hi = eout[0], eout[-1]
    ov = np.clip(np.minimum(hi, ein[1:]) - np.maximum(lo, ein[:-1]), 0, None)
    assert np.sum(r.flux * np.diff(eout)) == pytest.approx(np.sum(ov * f), rel=1e-12)


def test_rebin_variance_propagation():
    # 4 input pixels per output pixel, aligned: ivar adds up
    wl = np.arange(1000, 2000, 1.0) + 0.5
    f = np.ones(wl.size)
    ivar = np.full(wl.size, 3.0)
    grid = WavelengthGrid.linear(1002.0, 1998.0, 4.0)
    r = resample(wl, f, ivar, None, grid, "rebin")
    np.testing.assert_allclose(r.ivar, 12.0, rtol=1e-9)
    np.testing.assert_allclose(r.flux, 1.0, rtol=1e-12)


def test_interp_matches_numpy(rng):
    wl = np.linspace(4000, 6000, 500)
    f = np.sin(wl / 50.0)
    grid = WavelengthGrid.linear(4000, 6000, 1.3)
    r = resample(wl, f, np.ones_like(f), None, grid, "interp")
    np.testing.assert_allclose(r.flux, np.interp(grid.wavelength, wl, f), rtol=0, atol=1e-12)
    assert r.coverage == 1.0
    assert r.n_interpolated == 0


@pytest.mark.parametrize("method", ["rebin", "interp"])
def test_masked_pixels_interpolated_and_counted(method):
    wl = np.arange(5000.0, 6000.0, 1.0)
    f = 1.0 + (wl - 5000.0) / 1000.0  # linear: interpolation over a gap is exact
    mask = np.zeros(wl.size, bool)
    mask[400:420] = True
    f_bad = f.copy()
    f_bad[400:420] = 1e6  # garbage under the mask must not leak
    grid = WavelengthGrid.linear(5000.0, 5999.0, 1.0)
    r = resample(wl, f_bad, np.ones_like(f), mask, grid, method)
    np.testing.assert_allclose(r.flux, np.interp(grid.wavelength, wl, f), atol=1e-9)
    assert 20 <= r.n_interpolated <= 22  # the 20 masked pixels (+ neighbours for interp)
    assert np.all(r.ivar[401:419] == 0)


def test_coverage_and_no_good_pixels():
    wl = np.arange(6280.0, 6735.0, 0.25)
    f = np.ones(wl.size)
    r = resample(wl, f, np.ones_like(f), None, WavelengthGrid.preset("lamost"))
    assert 0.05 < r.coverage < 0.1
    assert np.all(r.ivar[~r.covered] == 0)
    with pytest.raises(SpectrumCoverageError, match="no good pixels"):
        resample(wl, f, np.zeros_like(f), None, WavelengthGrid.preset("lamost"))


def test_log_to_linear_conserves_flux():
    wl = 10 ** (3.6 + 1e-4 * np.arange(3000))
    f = 1.0 + np.sin(np.arange(3000) / 40.0)
    lin_wl, lin_f, _ = log_to_linear(wl, f)
    assert np.allclose(np.diff(lin_wl), np.diff(lin_wl)[0])
    e_in = pixel_edges(wl)
    e_out = pixel_edges(lin_wl)
    total_in = np.sum(f * np.diff(e_in))
    total_out = np.sum(lin_f * np.diff(e_out))
    # the linear grid ends within half a pixel of the log grid's end
    assert total_out == pytest.approx(total_in, rel=1e-3)


# ------------------------------------------------------------------ convolution

def test_gaussian_degradation_matches_scipy(rng):
    f = rng.normal(size=(3, 400))
    for sigma in (0.7, 2.5, 6.0):
        ours = degrade_resolution(f, sigma_pix=sigma)
        np.testing.assert_allclose(ours, gaussian_filter1d(f, sigma, axis=-1, mode="nearest",
                                                           truncate=4.0), rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_allclose(degrade_resolution(f, fwhm_pix=2.3548200450309493 * 2),
                               degrade_resolution(f, sigma_pix=2.0), rtol=1e-12)


def test_gaussian_degradation_matches_astropy_in_interior(rng):
    from astropy.convolution import Gaussian1DKernel, convolve

    f = rng.normal(size=500)
    k = Gaussian1DKernel(3.0, x_size=25, mode="center")
    theirs = convolve(f, k, boundary="extend", normalize_kernel=True)
    ours = degrade_resolution(f, sigma_pix=3.0)  # radius int(4*3 + 0.5) = 12 -> 25 taps
    np.testing.assert_allclose(ours[20:-20], theirs[20:-20], rtol=1e-10, atol=1e-12)


def test_resolving_power_kernel_width():
    dlog10 = 1e-4
    # a delta function broadened to R = 1800 on a log grid: FWHM = 1/(R ln10 dlog10) px
    f = np.zeros(801)
    f[400] = 1.0
    out = degrade_resolution(f, resolving_power=1800.0, dlog10=dlog10)
    x = np.arange(f.size) - 400.0
    sigma_measured = math.sqrt(np.sum(out * x * x) / np.sum(out))
    expected = 1 / (1800.0 * math.log(10) * dlog10) / 2.3548200450309493
    assert sigma_measured == pytest.approx(expected, rel=0.01)  # sampled kernel: 0.1% off
    narrower = kernel_sigma(resolving_power=1800.0, dlog10=dlog10,
                            current_resolving_power=5000.0)
    assert narrower == pytest.approx(expected * math.sqrt(1 - (1800 / 5000) ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="log-linear grid"):
        kernel_sigma(resolving_power=1800.0)
    with pytest.raises(ValueError, match="exactly one"):
        kernel_sigma(sigma_pix=1.0, fwhm_pix=2.0)
    assert gaussian_kernel(2.0).sum() == pytest.approx(1.0)


# ------------------------------------------------------------------ continuum, normalisation

def test_continuum_median_matches_brute_force(rng):
    wl = np.arange(4000.0, 4600.0, 2.0)
    f = 5 + rng.normal(size=wl.size)
    cont = continuum_median(f, wl, window=30.0)  # 15 pixels
    for i in range(7, wl.size - 7):
        assert cont[i] == np.median(f[i - 7:i + 8])


def test_continuum_poly_recovers_polynomial_with_lines(rng):
    wl = np.linspace(4000, 8000, 2000)
    x = (wl - 6000) / 2000
    true = 10 + 2 * x - 3 * x ** 2 + 0.5 * x ** 3
    f = true.copy()
    for c in (4861, 5890, 6563):  # deep absorption lines are clipped away
        f -= 6 * np.exp(-0.5 * ((wl - c) / 3.0) ** 2)
    fit = continuum_poly(f, wl, degree=3)
    assert np.max(np.abs(fit - true) / true) < 2e-3


@pytest.mark.parametrize("method", ["minmax", "minmax-sym", "l2", "sumsq", "none"])
def test_normalisations(rng, method):
    f = rng.normal(5, 2, (4, 300))
    ivar = rng.uniform(0.5, 2, f.shape)
    out, iv, ok = normalise(f, method, ivar)
    assert ok.all()
    if method == "minmax":
        np.testing.assert_allclose(out.min(1), 0.0, atol=1e-15)
        np.testing.assert_allclose(out.max(1), 1.0)
    elif method == "minmax-sym":
        np.testing.assert_allclose(out.min(1), -1.0)
        np.testing.assert_allclose(out.max(1), 1.0)
    elif method == "l2":
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    elif method == "sumsq":
        np.testing.assert_allclose(out, f / np.sum(f ** 2, axis=1, keepdims=True))
    else:
        np.testing.assert_array_equal(out, f)
    # ivar follows the flux scaling: ivar * flux**2 is invariant for pure scalings
    if method in ("l2", "sumsq", "none"):
        np.testing.assert_allclose(iv * out ** 2, ivar * f ** 2, rtol=1e-12)
    _, _, ok = normalise(np.ones((1, 10)) * (method != "l2" and method != "sumsq"), method)
    assert ok[0] == (method == "none")


# ------------------------------------------------------------------ Preprocessor

def test_preprocessor_round_trip_and_validation():
    p = Preprocessor("pq-2A", normalise="minmax", continuum="poly", method="interp",
                     rest_frame=True, degrade={"fwhm_pix": 3.0}, min_coverage=0.5)
    q = Preprocessor.from_dict(p.to_dict())
    assert q.to_dict() == p.to_dict()
    assert q.grid == p.grid
    with pytest.raises(ValueError, match="normalise"):
        Preprocessor("lamost", normalise="zscore")
    with pytest.raises(ValueError, match="continuum"):
        Preprocessor("lamost", continuum="spline")
    with pytest.raises(ValueError, match="min_coverage"):
        Preprocessor("lamost", min_coverage=2)
    with pytest.raises(ValueError, match="log-linear"):
        Preprocessor("pq-2A", degrade={"resolving_power": 1000.0})


def test_preprocessor_on_shipped_sample():
    spectra = read_spectra(sample_files()).spectra
    p = Preprocessor("lamost", normalise="l2")
    batch = p.apply(spectra)
    assert batch.flux.shape == (59, 3921)
    assert batch.flux.dtype == np.float32
    assert batch.ivar.dtype == np.float32
    assert batch.ok.sum() >= 50  # measured 54: a few have bad ends (< 80 % coverage)
    np.testing.assert_allclose(np.linalg.norm(batch.flux[batch.ok], axis=1), 1.0, rtol=1e-5)
    assert np.all(batch.flux[~batch.ok] == 0)
    for i in np.flatnonzero(~batch.ok):
        assert "covers" in batch.reasons[i] or "interpolated" in batch.reasons[i]
    # a query alone is prepared exactly like the archive row
    i = int(np.flatnonzero(batch.ok)[3])
    alone = Preprocessor.from_dict(p.to_dict()).apply(spectra[i])
    np.testing.assert_array_equal(alone.flux[0], batch.flux[i])


@pytest.mark.parametrize("continuum", ["median", "poly"])
def test_preprocessor_continuum(continuum, rng):
    wl = np.arange(3600.0, 9200.0, 1.0)
    cont = 100 + 0.01 * (wl - 3600)
    f = cont * (1 - 0.5 * np.exp(-0.5 * ((wl - 6563) / 2.0) ** 2))
    p = Preprocessor("pq-2A", normalise="none", continuum=continuum, continuum_window=100.0)
    out = p.apply(make_spectrum(wl, f))
    assert out.ok[0]
    g = p.grid.wavelength
    far = np.abs(g - 6563) > 50
    np.testing.assert_allclose(out.flux[0][far], 1.0, atol=5e-3)
    assert out.flux[0][np.argmin(np.abs(g - 6563))] < 0.7


def test_preprocessor_air_and_rest_frame():
    g = WavelengthGrid.linear(6500, 6620, 0.5)
    wl_vac = np.arange(6400.0, 6700.0, 0.1)
    line = lambda w, c: 1 - 0.8 * np.exp(-0.5 * ((w - c) / 1.0) ** 2)  # noqa: E731
    # an air-wavelength spectrum of H-alpha lands at the vacuum position
    air = make_spectrum(vacuum_to_air(wl_vac), line(wl_vac, 6564.61), vacuum=False)
    out = Preprocessor(g, normalise="none").apply(air)
    assert g.wavelength[np.argmin(out.flux[0])] == pytest.approx(6564.5, abs=0.5)
    # a redshifted spectrum is moved to the rest frame
    z = 0.01
    red = make_spectrum(wl_vac * (1 + z), line(wl_vac * (1 + z), 6564.61 * (1 + z)), z=z,
                        vacuum=True)
    out = Preprocessor(g, normalise="none", rest_frame=True, min_coverage=0.5).apply(red)
    assert g.wavelength[np.argmin(out.flux[0])] == pytest.approx(6564.5, abs=0.5)
    no_z = make_spectrum(wl_vac, line(wl_vac, 6564.61))
    out = Preprocessor(g, rest_frame=True).apply(no_z)
    assert not out.ok[0]
    assert "no redshift" in out.reasons[0]


def test_preprocessor_rejections():
    g = WavelengthGrid.preset("pq-2A")
    wl = np.arange(6000.0, 7000.0, 1.0)
    short = make_spectrum(wl, np.ones(wl.size))
    flat = make_spectrum(np.arange(3800.0, 9000.0, 1.0), np.full(5200, 3.0))
    masked = make_spectrum(np.arange(3800.0, 9000.0, 1.0), np.linspace(1, 2, 5200),
                           mask=np.arange(5200) % 3 != 0)
    nothing = make_spectrum(wl, np.ones(wl.size), ivar=np.zeros(wl.size))
    out = Preprocessor(g, normalise="minmax").apply([short, flat, masked, nothing])
    assert out.ok.tolist() == [False, False, False, False]
    assert "covers 20% of the grid" in out.reasons[0]
    assert "constant" in out.reasons[1]
    assert "interpolated over masked pixels" in out.reasons[2]
    assert "no good pixels" in out.reasons[3]
    with pytest.raises(TypeError, match="Spectrum"):
        Preprocessor(g).apply([1, 2])


def test_weak_continuum_pixels_are_neutralised_or_rejected():
    wl = np.arange(3800.0, 9000.0, 1.0)
    g = WavelengthGrid.preset("pq-2A")
    p = Preprocessor(g, normalise="none", continuum="median", continuum_window=40.0)
    f = np.full(wl.size, 50.0)
    f[wl < 3960] = 0.0  # 3 % of the grid (3900-3960 A) has no continuum
    out = p.apply(make_spectrum(wl, f, mask=np.zeros(wl.size, bool)))
    assert out.ok[0]
    blue = g.wavelength < 3940
    np.testing.assert_array_equal(out.flux[0][blue], 1.0)  # continuum level
    assert np.all(out.ivar[0][blue] == 0)
    f[wl < 4400] = 0.0  # 10 %: rejected with the fraction in the reason
    out = p.apply(make_spectrum(wl, f))
    assert not out.ok[0]
    assert "continuum is not positive on" in out.reasons[0]
