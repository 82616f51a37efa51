"""Tests of pyspec.simulate: templates, determinism, S/N, shifts, lines, masks, writers."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.simulate import (
    BLOCK,
    LINES,
    SNRDistribution,
    Simulator,
    TemplateLibrary,
    load_library,
    measure_snr,
)
from pyspec.simulate._templates import REST_DLOG, REST_LOG_START, SAMPLE_DIR, clean_one
from pyspec.simulate._writers import lamost_native_wavelength

C_KMS = 299792.458
# A small log-linear grid (3 x LAMOST's pixel) keeps the tests fast.
SMALL_GRID = 10.0 ** (np.log10(3900.0) + 3e-4 * np.arange(1150))


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return load_library([SAMPLE_DIR], use_cache=False)


def _quiet(**kw) -> dict:
    """Settings without lines, masks, padding or tilt (for isolating one effect)."""
    base = dict(p_be=0.0, p_galaxy_lines=0.0, bad_run_rate=0.0, p_pad=0.0, tilt_sigma=(0, 0))
    base.update(kw)
    return base


# ---------------------------------------------------------------- templates

def test_library_from_sample(library):
    assert len(library) >= 30
    assert {"STAR", "GALAXY"} <= set(library.classes)
    for i in range(len(library)):
        lo, hi = library.lo[i], library.hi[i]
        valid = library.flux[i, lo:hi + 1]
        assert np.all(np.isfinite(valid))
        # median-normalised, zero outside the coverage
        assert np.median(valid) == pytest.approx(1.0, rel=1e-3)
        assert not library.flux[i, :lo].any() and not library.flux[i, hi + 1:].any()


def test_library_is_in_rest_frame(library):
    """Coverage starts at (first observed pixel) / (1 + z): galaxies at z ~ 0.05-0.15."""
    gal = [i for i, c in enumerate(library.classes) if c == "GALAXY"]
    assert gal
    for i in gal:
        start = 10 ** (REST_LOG_START + REST_DLOG * library.lo[i])
        # LAMOST spectra start at 3700 A; end padding can cut a few dozen pixels
        expected = 3700.0 / (1 + library.z[i])
        assert expected * 0.999 <= start <= expected * 1.03


def test_clean_one_interpolates_masked_pixels_and_cuts_ends():
    wave = 10 ** (3.6 + 1e-4 * np.arange(2000))
    flux = 2.0 + np.sin(wave / 50.0)
    mask = np.zeros(2000, bool)
    mask[500:520] = True
    flux[500:520] = 1e6  # a bad column: must not leak into the template
    flux[1000] = np.nan
    flux[:30] = 0.0  # LAMOST-style zero padding
    out, lo, hi = clean_one(wave, flux, mask, z=0.0)
    rest = 10 ** (REST_LOG_START + REST_DLOG * np.arange(out.size))
    good = ~mask & np.isfinite(flux) & (flux != 0)
    expected = np.interp(rest[lo:hi + 1], wave[good], flux[good])
    np.testing.assert_allclose(out[lo:hi + 1] * np.median(expected), expected, rtol=1e-5)
    assert rest[lo] >= wave[30] * (1 - 1e-9)
    assert out.max() < 10


def test_library_disk_cache_round_trip(tmp_path, monkeypatch, library):
    monkeypatch.setenv("PYSPEC_CACHE_DIR", str(tmp_path))
    from pyspec.simulate import _templates

    monkeypatch.setattr(_templates, "_MEMORY_CACHE", {})
    first = load_library([SAMPLE_DIR])
    assert len(list(tmp_path.glob("templates-*.npz"))) == 1
    monkeypatch.setattr(_templates, "_MEMORY_CACHE", {})
    again = load_library([SAMPLE_DIR])
    np.testing.assert_array_equal(first.flux, again.flux)
    assert first.ids == again.ids and first.classes == again.classes
    np.testing.assert_array_equal(first.flux, library.flux)


def test_no_templates_is_an_error():
    with pytest.raises(ValueError, match="no template spectra"):
        load_library([SAMPLE_DIR], classes=("WD",))


@pytest.mark.shared_data
@pytest.mark.slow
def test_library_from_shared_corpus(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PYSPEC_CACHE_DIR", str(tmp_path))
    lib = load_library([SAMPLE_DIR, shared_data])
    # ~560 LAMOST/SDSS spectra of STAR/GALAXY/QSO with S/N >= 10 (sample duplicates removed)
    assert len(lib) >= 400
    assert {"STAR", "GALAXY", "QSO"} <= set(lib.classes)
    assert len(set(lib.ids)) == len(lib)


# ---------------------------------------------------------------- determinism

def test_same_seed_same_output_whatever_the_chunks(library):
    n = 2 * BLOCK + 300  # crosses two parameter-block boundaries
    sim = Simulator(grid=SMALL_GRID, seed=11, templates=library)
    whole = sim.generate(0, n)
    for chunk in (777, 1000):
        sim2 = Simulator(grid=SMALL_GRID, seed=11, templates=library, num_threads=1)
        parts = list(sim2.iter_chunks(n, chunk))
        flux = np.concatenate([p.flux for p in parts])
        ivar = np.concatenate([p.ivar for p in parts])
        np.testing.assert_array_equal(flux, whole.flux)
        np.testing.assert_array_equal(ivar, whole.ivar)
        ids = np.concatenate([np.asarray(p.labels["id"]) for p in parts])
        np.testing.assert_array_equal(ids, np.arange(n))
        for col in ("template", "z", "snr_r", "lines", "amp_Halpha"):
            got = np.concatenate([np.asarray(p.labels[col]) for p in parts])
            np.testing.assert_array_equal(got, np.asarray(whole.labels[col]))
    other = Simulator(grid=SMALL_GRID, seed=12, templates=library).generate(0, 50)
    assert not np.array_equal(other.flux, whole.flux[:50])


# ---------------------------------------------------------------- noise and S/N

def test_snr_matches_requested_distribution(library):
    dist = SNRDistribution(5.0, 0.6)
    sim = Simulator(grid=SMALL_GRID, seed=3, templates=library, snr=dist,
                    **_quiet(bad_run_rate=0.7, p_pad=0.2))
    b = sim.generate(0, 3000)
    measured = measure_snr(b.flux, b.ivar, b.wavelength)
    target = np.asarray(b.labels["snr_r"])
    ratio = measured / target
    # per spectrum: median of f/sigma + N(0,1) over ~250 r-band pixels; measured
    # spread of the ratio 2.6 % (1-99 %: 0.91-1.06) at seed 3, 99.3 % within 10 %
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    assert np.mean(np.abs(ratio - 1) < 0.1) > 0.97
    # the sample of measured S/N follows the log-normal: mean and sd of ln S/N
    # within 4 standard errors (sd/sqrt(n) = 0.011 and about 0.008)
    logm = np.log(measured)
    assert np.mean(logm) == pytest.approx(np.log(5.0), abs=0.045)
    assert np.std(logm) == pytest.approx(0.6, abs=0.035)


def test_unknown_preset_is_mostly_below_snr_10(library):
    sim = Simulator(grid=SMALL_GRID, seed=4, templates=library, snr="unknown")
    b = sim.generate(0, 2000)
    measured = measure_snr(b.flux, b.ivar, b.wavelength)
    frac = np.mean(measured < 10)
    expected = SNRDistribution.coerce("unknown").cdf(10.0)  # 0.87
    assert frac == pytest.approx(expected, abs=0.04)
    assert frac > 0.8


def test_noise_is_gaussian_with_the_stated_ivar(library):
    """(noisy - noise-free) * sqrt(ivar) is N(0, 1): ivar is consistent, noise not uniform."""
    sim = Simulator(grid=SMALL_GRID, seed=5, templates=library, snr=(8.0, 0.5))
    params = sim.parameters(0, 400)
    noisy, ivar = sim.render(params, noise=True)
    clean, ivar2 = sim.render(params, noise=False)
    np.testing.assert_array_equal(ivar, ivar2)
    good = ivar > 0
    r = ((noisy - clean) * np.sqrt(ivar))[good].astype(np.float64)
    assert r.size > 300_000
    assert abs(r.mean()) < 0.01
    assert r.std() == pytest.approx(1.0, abs=0.01)
    # tails of a normal: P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027; a uniform
    # variable of unit variance has none beyond 1.73
    assert np.mean(np.abs(r) > 2) == pytest.approx(0.0455, abs=0.003)
    assert np.mean(np.abs(r) > 3) == pytest.approx(0.0027, abs=0.0006)
    # heteroscedastic: sigma grows with the flux (source + sky), so ivar varies along a row
    row = ivar[0][good[0]]
    assert row.max() > 1.2 * row.min()


# ---------------------------------------------------------------- shifts

def _flatten(y: np.ndarray, width: int = 101) -> np.ndarray:
    """Divide out the continuum (running median) and subtract the mean."""
    from scipy.ndimage import median_filter

    cont = median_filter(y, size=width, mode="nearest")
    out = y / np.where(cont > 0, cont, 1) - 1
    return out - out.mean()


def test_radial_velocity_recovered_by_cross_correlation(library):
    wl = lamost_native_wavelength()
    sim = Simulator(grid=wl, seed=8, templates=library, snr=60.0, rv_sigma=200.0,
                    class_weights={"STAR": 1.0}, **_quiet(tilt_sigma=(0.5, 0.5)))
    params = sim.parameters(0, 40)
    flux, _ = sim.render(params, noise=True)
    rest = dict(params, z=np.zeros(40), slope=np.zeros(40), curv=np.zeros(40))
    tmpl, _ = sim.render(rest, noise=False)
    lags = np.arange(-25, 26)
    sl = slice(200, 3700)  # away from the ends and edge effects of the shift
    errors = []
    for i in range(40):
        a, b = _flatten(flux[i])[sl], _flatten(tmpl[i])[sl]
        cc = np.array([np.dot(a, np.roll(b, k)) for k in lags])
        j = int(np.argmax(cc))
        y0, y1, y2 = cc[j - 1], cc[j], cc[j + 1]
        lag = lags[j] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)  # parabolic peak
        v = (10 ** (lag * 1e-4) - 1) * C_KMS
        errors.append(v - params["rv"][i])
    errors = np.abs(errors)
    # one LAMOST pixel is 69 km/s; at S/N 60 the parabolic CCF peak is good to a
    # few km/s (median 2.4 km/s, max 12.5 km/s measured at seed 8)
    assert np.median(errors) < 8.0
    assert np.max(errors) < 25.0
    assert np.std(params["rv"]) > 100  # shifts of several pixels were injected


def test_galaxy_redshift_is_applied_to_template_and_lines(library):
    sim = Simulator(grid=lamost_native_wavelength(), seed=9, templates=library, snr=1e3,
                    class_weights={"GALAXY": 1.0}, z_spread=0.05,
                    **_quiet(p_galaxy_lines=1.0, line_amplitude=(5.0, 5.0)))
    b = sim.generate(0, 20, noise=False)
    lab = b.labels
    assert set(lab["shift_kind"]) == {"z"}
    z0 = library.z[[library.ids.index(t) for t in lab["template"]]]
    assert np.all(np.abs(lab["z"] - z0) <= 0.05 + 1e-12)
    for i in range(20):
        obs = LINES["Halpha"] * (1 + lab["z"][i])
        if not (b.wavelength[0] < obs < b.wavelength[-1] - 50):
            continue
        win = np.abs(b.wavelength - obs) < 30
        peak = b.wavelength[win][np.argmax(b.flux[i][win])]
        assert peak == pytest.approx(obs, abs=3.0)  # within two pixels of the injected line


# ---------------------------------------------------------------- lines

def test_emission_line_labels_match_injected_flux(library):
    sim = Simulator(grid=lamost_native_wavelength(), seed=21, templates=library, snr=40.0,
                    class_weights={"STAR": 0.5, "GALAXY": 0.5}, p_be=0.5, p_double=0.5,
                    p_galaxy_lines=1.0, line_amplitude=(0.5, 3.0), bad_run_rate=0.0, p_pad=0.0)
    params = sim.parameters(0, 300)
    lab = sim.labels(params)
    with_lines, ivar = sim.render(params, noise=False)
    none = dict(params, line_amp=np.zeros_like(params["line_amp"]))
    without, _ = sim.render(none, noise=False)
    diff = with_lines.astype(np.float64) - without
    has_lines = np.array([s != "" for s in lab["lines"]])
    assert 30 < has_lines.sum() < 270
    # no line injected -> identical spectra; injected -> flux added
    assert not diff[~has_lines].any()
    wl = sim.wavelength
    for i in np.flatnonzero(has_lines):
        names = lab["lines"][i].split(",")
        for name in LINES:
            amp = lab[f"amp_{name}"][i]
            assert (amp > 0) == (name in names)
        obs = LINES["Halpha"] * (1 + lab["z"][i])
        j = int(np.argmin(np.abs(wl - obs)))
        if ivar[i, j] == 0 or not 10 < j < wl.size - 10:
            continue
        scale = lab["flux_scale"][i]
        peak = diff[i, j - 8:j + 9].max() / scale
        amp = lab["amp_Halpha"][i]
        if lab["halpha_profile"][i] == "single":
            # peak height within 15 % of the label (pixel sampling of a narrow
            # Gaussian, [N II] wings; measured 0.93-1.00 at seed 21)
            assert peak == pytest.approx(amp, rel=0.15)
        else:
            # two components, each at most ``amp``, blend into one to two peaks
            assert 0.85 * amp < peak < 2.0 * amp
            sep = lab["halpha_sep"][i] / C_KMS * obs
            sig_inst = obs / (2.355 * 1800)
            if sep > 4 * np.hypot(sig_inst, lab["line_sigma"][i] / C_KMS * obs):
                # resolved double peak: a dip at the centre
                assert diff[i, j] < 0.95 * diff[i, j - 8:j + 9].max()
    # the noisy spectra: an H-alpha line of peak >= 0.5 continuum at S/N 40 stands
    # out by > 5 sigma over +-3 pixels; without lines nothing does (< 5 sigma)
    noisy, _ = sim.render(params, noise=True)
    for i in range(300):
        obs = LINES["Halpha"] * (1 + lab["z"][i])
        j = int(np.argmin(np.abs(wl - obs)))
        if not 10 < j < wl.size - 10:
            continue
        w = slice(j - 3, j + 4)
        excess = (noisy[i, w] - without[i, w]).sum()
        sigma = np.sqrt((1 / ivar[i, w]).sum())
        if lab["amp_Halpha"][i] >= 0.5:
            assert excess / sigma > 5
        elif lab["amp_Halpha"][i] == 0:
            assert abs(excess / sigma) < 5


# ---------------------------------------------------------------- masks and padding

def test_masks_where_bad_pixels_and_padding_were_placed(library):
    sim = Simulator(grid=SMALL_GRID, seed=31, templates=library, bad_run_rate=2.0, p_pad=0.5,
                    max_pad=40, class_weights={"STAR": 1.0})
    params = sim.parameters(0, 500)
    flux, ivar = sim.render(params)
    lab = sim.labels(params, ivar)
    npix = SMALL_GRID.size
    covered_flux, _ = sim.render(dict(params, run_len=np.zeros_like(params["run_len"]),
                                      pad_blue=np.zeros(500, int), pad_red=np.zeros(500, int)),
                                 noise=False)
    assert lab["n_bad_runs"].sum() > 500 and (lab["pad_blue"] > 0).sum() > 150
    for i in range(500):
        expected = np.zeros(npix, bool)
        starts = np.floor(params["run_start"][i] * npix).astype(int)
        for s, length in zip(starts, params["run_len"][i], strict=True):
            expected[s:s + length] = True
        pb, pr = params["pad_blue"][i], params["pad_red"][i]
        expected[:pb] = True
        expected[npix - pr:] = True
        expected |= covered_flux[i] == 0  # template coverage ends
        np.testing.assert_array_equal(ivar[i] == 0, expected)
        assert lab["n_masked"][i] == expected.sum()
        assert not flux[i, :pb].any() and not flux[i, npix - pr:].any()
        assert np.all(np.isfinite(flux[i]))


def test_chunked_generation_memory_does_not_grow_with_n(library):
    """Peak traced memory of iterating 12 chunks is that of iterating 2 (within 25 %)."""
    import tracemalloc

    sim = Simulator(grid=SMALL_GRID, seed=6, templates=library)
    sim.generate(0, 4)  # kernels compiled, library loaded
    peaks = []
    for n in (2 * 512, 12 * 512):
        tracemalloc.start()
        total = sum(len(b) for b in sim.iter_chunks(n, 512))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert total == n
    # one chunk of flux + ivar + coverage is 512 x 1150 x 9 B = 5.3 MB
    assert peaks[1] < 1.25 * peaks[0]


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize(("kwargs", "error"), [
    ({"snr": "nonsense"}, ValueError),
    ({"snr": -3.0}, ValueError),
    ({"snr": object()}, TypeError),
    ({"p_be": 1.5}, ValueError),
    ({"seed": -1}, ValueError),
    ({"grid": np.array([5000.0, 4000.0, 6000.0])}, ValueError),
    ({"line_amplitude": (0.0, 1.0)}, ValueError),
    ({"class_weights": {"WD": 1.0}}, ValueError),
    ({"num_threads": 0}, ValueError),
])
def test_bad_settings_raise(library, kwargs, error):
    kw = {"grid": SMALL_GRID, "templates": library} | kwargs
    with pytest.raises(error):
        Simulator(**kw)


def test_bad_ranges_raise(library):
    sim = Simulator(grid=SMALL_GRID, templates=library)
    with pytest.raises(ValueError, match="stop"):
        sim.generate(10, 5)
    with pytest.raises(ValueError, match="chunk_size"):
        next(sim.iter_chunks(10, 0))
    assert len(sim.generate(5, 5)) == 0


# ---------------------------------------------------------------- writers and CLI

@pytest.mark.parametrize("gzip", [False, True])
def test_fits_output_round_trips_through_read_spectrum(library, tmp_path, gzip):
    from pyspec.io import read_spectrum
    from pyspec.simulate import write_fits

    paths = write_fits(tmp_path, 6, seed=5, templates=library, gzip=gzip, snr=20.0,
                       bad_run_rate=1.0, p_pad=0.5)
    assert len(paths) == 6 and all(p.is_file() for p in paths)
    ref = Simulator(grid=lamost_native_wavelength(), seed=5, templates=library, snr=20.0,
                    bad_run_rate=1.0, p_pad=0.5).generate(0, 6)
    layouts = []
    for i, path in enumerate(paths):
        s = read_spectrum(path)
        np.testing.assert_allclose(s.wavelength, ref.wavelength, rtol=1e-6)  # float32 storage
        np.testing.assert_array_equal(s.flux, ref.flux[i])
        np.testing.assert_array_equal(s.ivar, ref.ivar[i])
        np.testing.assert_array_equal(np.asarray(s.mask, bool) | (s.ivar == 0), ref.ivar[i] == 0)
        assert s.meta["class"] == ref.labels["class"][i]
        assert s.meta["z"] == pytest.approx(ref.labels["z"][i], abs=1e-9)
        assert s.meta["snr_r"] == pytest.approx(ref.labels["snr_r"][i], rel=1e-6)
        layouts.append(s.meta.get("layout"))
    assert len(set(layouts)) == 2  # C and D alternate
    with pytest.raises(OSError):  # never overwrites
        write_fits(tmp_path, 1, seed=5, templates=library, gzip=gzip)


def test_fits_on_a_linear_grid_reads_back(library, tmp_path):
    """A non-log-linear grid (no COEFF cards) is still read, from the wavelength row/column."""
    from pyspec import WavelengthGrid
    from pyspec.io import read_spectrum
    from pyspec.simulate import write_fits

    grid = WavelengthGrid.preset("pq-2A")
    paths = write_fits(tmp_path, 2, seed=8, grid=grid, templates=library)
    ref = Simulator(grid=grid, seed=8, templates=library).generate(0, 2)
    for i, path in enumerate(paths):
        s = read_spectrum(path)
        np.testing.assert_allclose(s.wavelength, grid.wavelength, rtol=1e-6)
        np.testing.assert_array_equal(s.flux, ref.flux[i])


def test_fits_layouts_have_the_lamost_structure(library, tmp_path):
    from astropy.io import fits

    from pyspec.simulate import write_fits

    c, d = write_fits(tmp_path, 2, seed=1, templates=library)
    with fits.open(c) as h:
        assert len(h) == 1 and h[0].data.shape == (5, 3909) and h[0].data.dtype == ">f4"
        assert h[0].header["COEFF0"] == pytest.approx(3.5682)
        assert h[0].header["COEFF1"] == pytest.approx(1e-4)
        assert {"OBSID", "SNRR", "CLASS", "Z", "RA", "DEC"} <= set(h[0].header)
    with fits.open(d) as h:
        assert h[0].data is None and h[1].name == "COADD" and len(h[1].data) == 1
        assert h[1].columns.names == ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK",
                                      "NORMALIZATION"]
        assert h[1].data["FLUX"].shape == (1, 3909)


def test_store_output_opens_with_labels(library, tmp_path):
    from pyspec import SpectrumStore, WavelengthGrid
    from pyspec.preprocess import Preprocessor
    from pyspec.simulate import write_store

    grid = WavelengthGrid.preset("pq-2A")
    path = write_store(tmp_path / "store", 700, seed=2, grid=grid, chunk_size=256,
                       templates=library)
    store = SpectrumStore.open(path)
    assert len(store) == 700
    assert store.flux.shape == (700, len(grid)) and store.ivar.shape == (700, len(grid))
    ref = Simulator(grid=grid, seed=2, templates=library).generate(0, 700)
    # the flux is prepared like an ingest, with the recipe the store records
    pre = Preprocessor.from_dict(store.preprocessing)
    assert pre.name == "similarity" and pre.grid == grid
    prepared = pre.apply_on_grid(ref.flux, ref.ivar)
    assert prepared.ok.mean() > 0.95
    np.testing.assert_allclose(np.asarray(store.flux), prepared.flux, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(store.ivar), prepared.ivar)
    for col in ("class", "subclass", "z", "snr_r", "template", "lines", "amp_Halpha"):
        np.testing.assert_array_equal(np.asarray(store.meta[col]), np.asarray(ref.labels[col]))
    np.testing.assert_allclose(store.grid.wavelength, grid.wavelength)


def test_cli_simulate_store_and_fits(library, tmp_path):
    from pyspec.cli import main

    rc = main(["simulate", "--n", "300", "--out", str(tmp_path / "st"), "--seed", "4",
               "--grid", "pq-2A", "--chunk-size", "128", "--quiet", "--templates",
               str(SAMPLE_DIR)])
    assert rc == 0
    from pyspec import SpectrumStore

    assert len(SpectrumStore.open(tmp_path / "st")) == 300
    rc = main(["simulate", "--n", "3", "--fits", str(tmp_path / "ff"), "--layouts", "D",
               "--quiet", "--snr", "unknown", "--templates", str(SAMPLE_DIR)])
    assert rc == 0
    assert len(list((tmp_path / "ff").glob("sim-0-*.fits"))) == 3


@pytest.mark.parametrize("argv", [
    ["--n", "-1", "--out", "X"],
    ["--n", "5", "--fits", "X", "--layouts", "E"],
    ["--n", "5", "--out", "X", "--snr", "nonsense"],
    ["--n", "5", "--out", "X", "--classes", "WD=1"],
])
def test_cli_bad_input_exits_1(tmp_path, argv, capsys):
    from pyspec.cli import main

    argv = [a.replace("X", str(tmp_path / "x")) for a in argv]
    assert main(["simulate", *argv, "--quiet", "--templates", str(SAMPLE_DIR)]) == 1
    assert "error" in capsys.readouterr().err


def test_write_store_needs_a_grid_object(library, tmp_path):
    from pyspec.simulate import write_store

    with pytest.raises(TypeError, match="WavelengthGrid"):
        write_store(tmp_path / "s", 10, grid=SMALL_GRID, templates=library)
    with pytest.raises(ValueError, match="n must be"):
        write_store(tmp_path / "s", -5, templates=library)
