"""Emission-line search, CL/RT redshifts, line fluxes and classification (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
from lines_data import gaussian_lines, load_sample, read_simple

import pyspec.lines as L
from pyspec.classify import bpt_class, hii_region, kauffmann03, kewley01, velocity_class

# Equivalent widths (Angstrom, emission) of a typical star-forming galaxy, the
# pattern injected into real continua; WEAK is the same pattern / 3.
STRONG_EW = {"Ha": 30.0, "NII_6583": 10.0, "NII_6548": 3.4, "Hb": 8.0, "OIII_5007": 10.0,
             "OIII_4959": 3.4, "OII_3727": 8.0, "OII_3729": 10.0, "SII_6716": 5.0,
             "SII_6731": 4.0}
WEAK_EW = {k: v / 3.0 for k, v in STRONG_EW.items()}


def _flat(n=4000, lo=3700.0, hi=9100.0):
    w = np.geomspace(lo, hi, n)
    return w, np.ones(n), np.full(n, 1e4)


@pytest.fixture(scope="module")
def continua():
    """Real F/G/K continua from the shipped LAMOST sample (S/N_r >= 30)."""
    specs = [s for s in load_sample("STAR", min_snr=30.0)
             if str(s.meta["subclass"])[:1] in "FGK"]
    assert len(specs) >= 8
    return specs[:8]


def _inject(spec, z, ew, snr, rng, sigma_kms=100.0):
    """Lines of given EW at z on a real continuum, plus Gaussian noise giving
    continuum S/N = snr per pixel; ivar is set to that noise."""
    w = spec.wavelength
    good = spec.ivar > 0
    cont = L.pseudo_continuum((w, spec.flux, spec.ivar), window=300.0)
    lines = np.zeros_like(w)
    for name, e in ew.items():
        j = min(np.searchsorted(w, L.REST_LINES[name] * (1 + z)), w.size - 1)
        lines += gaussian_lines(w, z, {name: e * cont[j]}, sigma_kms, L.REST_LINES)
    sig = np.median(cont[good]) / snr
    flux = spec.flux + lines + rng.normal(0.0, sig, w.size)
    ivar = np.where(good, 1.0 / sig**2, 0.0).astype(np.float32)
    return w, flux.astype(np.float32), ivar


# ------------------------------------------------------------------ constants


@pytest.mark.parametrize(("name", "air"), [
    # NIST ASD air wavelengths
    ("Ha", 6562.80), ("Hb", 4861.33), ("OIII_5007", 5006.84), ("OIII_4959", 4958.91),
    ("NII_6583", 6583.45), ("NII_6548", 6548.05), ("SII_6716", 6716.44),
    ("SII_6731", 6730.82), ("OII_3727", 3726.03), ("OII_3729", 3728.82),
])
def test_rest_wavelengths_are_vacuum_of_nist_air(name, air):
    # the SDSS list rounds to 0.01 A; the conversion itself is good to 1e-3 A
    assert L.air_to_vacuum(air) == pytest.approx(L.REST_LINES[name], abs=0.03)


def test_air_vacuum_round_trip():
    w = np.linspace(3500, 10000, 50)
    np.testing.assert_allclose(L.vacuum_to_air(L.air_to_vacuum(w)), w, atol=1e-8)


# ------------------------------------------------------------------ continuum and lines


def test_pseudo_continuum_ignores_lines_and_masked_pixels():
    w, f, iv = _flat()
    f = f + 3.0 * np.exp(-0.5 * ((w - 5000.0) / 2.0) ** 2)
    f[100:120] = 1e6
    iv[100:120] = 0.0
    c = L.pseudo_continuum((w, f, iv), window=150.0)
    np.testing.assert_allclose(c, 1.0, atol=1e-12)


def test_find_lines_recovers_centres_and_extent():
    w, f, iv = _flat()
    centres = [4500.0, 5600.0, 6700.0]
    for c in centres:
        f = f + 0.5 * np.exp(-0.5 * ((w - c) / 2.5) ** 2)
    t = L.find_lines((w, f, iv))
    assert len(t) == 3
    # noiseless Gaussians sampled at ~1.3-2 A: the parabola vertex is within 0.2 A
    np.testing.assert_allclose(t["centre"].value, centres, atol=0.2)
    assert np.all(t["start"].value < t["centre"].value)
    assert np.all(t["end"].value > t["centre"].value)
    assert t["centre"].unit == "Angstrom"


def test_find_lines_splits_resolved_and_merges_wiggles(rng):
    w, f, iv = _flat()
    # two lines 20 A apart (H-alpha / [N II]-like) stay two lines
    f2 = f + np.exp(-0.5 * ((w - 7000) / 2.0) ** 2) + np.exp(-0.5 * ((w - 7020) / 2.0) ** 2)
    assert len(L.find_lines((w, f2, iv))) == 2
    # a broad line with 1 % ripples is one line
    broad = np.exp(-0.5 * ((w - 6000) / 25.0) ** 2) * (1 + 0.01 * np.sin(w))
    assert len(L.find_lines((w, f + broad, iv), window=400.0)) == 1


def test_quantile_threshold_alone_and_nsigma_alone():
    w, f, iv = _flat()
    f = f + 0.2 * np.exp(-0.5 * ((w - 5000) / 2.0) ** 2)
    # quantile only: top tenth of the residual distribution, line found
    assert len(L.find_lines((w, f, iv), nsigma=None, quantile=0.9)) >= 1
    # noise only: sigma = 0.01, a 0.2 peak is 20 sigma
    assert len(L.find_lines((w, f, iv), quantile=None, nsigma=5.0)) == 1
    # far above the peak: nothing
    t = L.find_lines((w, f, iv), quantile=None, nsigma=50.0)
    assert len(t) == 0
    assert "no emission line" in t.meta["reason"]


@pytest.mark.parametrize("kwargs", [
    {"quantile": None, "nsigma": None}, {"quantile": 1.5}, {"nsigma": -1.0},
    {"window": 0.0}, {"min_pixels": 0}, {"half_window": 1.5},
])
def test_find_lines_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="quantile|nsigma|window|min_pixels|half_window"):
        L.find_lines(_flat(), **kwargs)


def test_bad_input_types_and_shapes():
    w, f, iv = _flat()
    with pytest.raises(TypeError, match="expected a Spectrum"):
        L.find_lines("spectrum.fits")
    with pytest.raises(ValueError, match="equal length"):
        L.find_lines((w, f[:-1], iv))
    with pytest.raises(ValueError, match="strictly increasing"):
        L.redshift((w[::-1], f, iv))
    with pytest.raises(ValueError, match="shared wavelength grid"):
        L.redshift((w[:-1], np.ones((2, w.size)), np.ones((2, w.size))))


# ------------------------------------------------------------------ CL redshift


def test_redshift_from_lines_exact_and_tolerance():
    z = 0.123
    obs = [L.REST_LINES[n] * (1 + z) for n in ("Hb", "OIII_5007", "Ha", "NII_6583")]
    r = L.redshift_from_lines(obs, [5, 10, 20, 8])
    assert r.ok and r.n_lines == 4
    assert r.z == pytest.approx(z, abs=1e-12)
    assert r.lines == ("Hb", "OIII_5007", "Ha", "NII_6583")
    assert r.z_err == pytest.approx(0.0, abs=1e-12)
    # a line 0.002 off in z no longer agrees: 3 remain
    obs[0] = L.REST_LINES["Hb"] * (1 + z + 0.002)
    r = L.redshift_from_lines(obs, [5, 10, 20, 8])
    assert r.n_lines == 3 and "Hb" not in r.lines


def test_redshift_needs_three_lines():
    z = 0.05
    r = L.redshift_from_lines([L.REST_LINES["Ha"] * (1 + z), L.REST_LINES["Hb"] * (1 + z)])
    assert np.isnan(r.z) and np.isnan(r.z_err)
    assert r.n_lines == 2 and "fewer than 3" in r.reason
    r = L.redshift_from_lines([])
    assert np.isnan(r.z) and r.reason == "no emission lines detected"


def test_guided_second_pass():
    """Noiseless H-alpha and H-beta plus [O III] 5007 peaking at 2.5 sigma
    (sigma from ivar): only the guided pass (confirm_nsigma = 2) reaches three
    lines."""
    w = np.geomspace(3700, 9100, 3900)
    z = 0.07
    sigma = 0.02
    # peak = a / (s sqrt(2 pi)), s = 100 km/s = 1.79 A at 5359 A: a = 0.224 gives 2.5 sigma
    f = 1.0 + gaussian_lines(w, z, {"Ha": 3.0, "Hb": 1.0, "OIII_5007": 0.224}, 100.0,
                             L.REST_LINES)
    iv = np.full(w.size, 1 / sigma**2)
    one = L.redshift((w, f, iv), confirm_nsigma=None)
    assert not one.ok and one.n_lines == 2
    two = L.redshift((w, f, iv))
    assert two.ok and two.guided and two.n_lines == 3
    assert two.z == pytest.approx(z, abs=1e-4)


def test_partner_rule_and_doublet_order():
    z = 0.2
    rl = L.REST_LINES
    # [N II] 6548 + [S II] pair without H-alpha / [N II] 6583 while they are observable
    w = np.linspace(3700, 9100, 4000)
    obs = [rl[n] * (1 + z) for n in ("NII_6548", "SII_6716", "SII_6731")]
    r = L.redshift_from_lines(obs, wavelength=w, good=np.ones(w.size, bool))
    assert not r.ok
    # [O III] 4959 stronger than 5007 is not [O III]
    obs = [rl[n] * (1 + z) for n in ("Hb", "OIII_4959", "OIII_5007")]
    assert L.redshift_from_lines(obs, [5, 10, 30]).ok
    assert not L.redshift_from_lines(obs, [5, 30, 10]).ok


def test_injection_recovery_strong_lines(continua, rng):
    """Star-forming line pattern (H-alpha EW 30 A) injected into 8 real LAMOST
    continua at z = 0.02, 0.08, 0.15, 0.25.  Measured (one fresh seeded run per
    S/N): recovered within 0.001 in 32/32 cases at continuum S/N 4 per pixel,
    30/32 at S/N 3 and 22/32 at S/N 2, never a wrong z."""
    for snr, floor in ((4.0, 32), (3.0, 28)):
        n_ok = n_wrong = 0
        for spec in continua:
            for z in (0.02, 0.08, 0.15, 0.25):
                r = L.redshift(_inject(spec, z, STRONG_EW, snr, rng))
                n_ok += abs(r.z - z) < 0.001
                n_wrong += r.ok and abs(r.z - z) >= 0.001
        assert n_ok >= floor, (snr, n_ok)
        assert n_wrong == 0


@pytest.mark.slow
def test_injection_recovery_weak_lines(continua, rng):
    """Same with EWs / 3 (H-alpha EW 10 A).  Measured: 32/32 at S/N 20, 31/32 at
    S/N 10, 26/32 at S/N 7, 16/32 at S/N 5; never a wrong z."""
    for snr, floor in ((20.0, 31), (10.0, 26)):
        n_ok = n_wrong = 0
        for spec in continua:
            for z in (0.02, 0.08, 0.15, 0.25):
                r = L.redshift(_inject(spec, z, WEAK_EW, snr, rng))
                n_ok += abs(r.z - z) < 0.001
                n_wrong += r.ok and abs(r.z - z) >= 0.001
        assert n_ok >= floor, (snr, n_ok)
        assert n_wrong == 0


def test_no_false_redshift_on_line_free_spectra(rng):
    """Pure noise (200 spectra) and the shipped stars: no CL redshift.  Measured:
    0/200 noise spectra and 0 of the shipped stars; over all 546 stars of the
    shared corpus 1 (an A7IV with junk at 6800-7400 A) gets one."""
    w = np.geomspace(3700, 9100, 3900)
    flux = 1.0 + rng.normal(0, 0.05, (200, w.size))
    res = L.redshift((w, flux, np.full(flux.shape, 400.0)))
    assert sum(r.ok for r in res) == 0
    stars = load_sample("STAR")
    assert len(stars) >= 30
    assert sum(r.ok for r in L.redshift(stars)) <= 1


def test_batch_forms_agree_and_bad_items_do_not_stop_the_batch(rng):
    w = np.geomspace(3700, 9100, 3900)
    z = 0.1
    f = 1.0 + gaussian_lines(w, z, {"Ha": 40, "Hb": 15, "OIII_5007": 20}, 80.0, L.REST_LINES)
    flux = np.stack([f + rng.normal(0, 0.01, w.size) for _ in range(3)])
    iv = np.full(flux.shape, 1e4)
    as_matrix = L.redshift((w, flux, iv))
    as_list = L.redshift([(w, flux[i], iv[i]) for i in range(3)])
    assert [r.z for r in as_matrix] == [r.z for r in as_list]
    assert all(abs(r.z - z) < 1e-4 for r in as_list)
    batch = [(w, flux[0], iv[0]), (w[:5], flux[1][:5], iv[1][:5]), "nonsense",
             (w, np.zeros(w.size), np.zeros(w.size))]
    res = L.redshift(batch)
    assert res[0].ok
    assert "too few pixels" in res[1].reason
    assert "not a spectrum" in res[2].reason
    assert "usable" in res[3].reason
    lines = L.find_lines(batch)
    assert len(lines) == 4 and len(lines[1]) == 0


# ------------------------------------------------------------------ RT and confirmation


def test_transfer_and_confirm_redshift():
    class Result:  # a SearchResult-like object
        ids = np.array([[2, 0], [-1, -1], [1, 2]])

    zrt = L.transfer_redshift(Result(), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(zrt, [0.3, np.nan, 0.2])
    ok, dz = L.confirm_redshift([0.3004, 0.2, 0.2011], zrt)
    np.testing.assert_array_equal(ok, [True, False, False])
    assert dz[0] == pytest.approx(0.0004)
    with pytest.raises(ValueError, match="beyond"):
        L.transfer_redshift([[5]], [0.1])


# ------------------------------------------------------------------ fluxes


def test_line_fluxes_direct_and_gaussian_recover_injected_flux(rng):
    """50 noisy realisations: the mean recovers the injected flux (measured
    bias -1.4 % to -0.1 %: the +-300 km/s window and the median continuum) and
    the ivar-propagated error matches the scatter (within 25 %, measured 5-8 %)."""
    w = np.geomspace(3700, 9100, 3900)
    z, flux_in = 0.05, {"Ha": 30.0, "Hb": 10.0, "NII_6583": 9.0}
    clean = 2.0 + gaussian_lines(w, z, flux_in, 100.0, L.REST_LINES)
    sigma = 0.1
    res = {"direct": [], "gaussian": []}
    for _ in range(50):
        f = clean + rng.normal(0, sigma, w.size)
        spec = (w, f, np.full(w.size, 1 / sigma**2))
        for method in res:
            res[method].append(L.line_fluxes(spec, z, method=method))
    for method, rows in res.items():
        for name, fin in flux_in.items():
            vals = np.array([r[f"flux_{name}"] for r in rows])
            errs = np.array([r[f"flux_err_{name}"] for r in rows])
            # +-300 km/s holds 99 % of a 100 km/s Gaussian; tolerance 3 errors of the mean
            assert vals.mean() == pytest.approx(fin, abs=3 * vals.std() / np.sqrt(50) + 0.02 * fin)
            assert np.median(errs) == pytest.approx(vals.std(), rel=0.25)
        ew = np.array([r["ew_Ha"] for r in rows])
        # rest-frame EW: observed flux / continuum, divided by (1 + z)
        assert ew.mean() == pytest.approx(flux_in["Ha"] / 2.0 / (1 + z), rel=0.05)


def test_line_fluxes_batch_table_and_failures():
    w = np.geomspace(3700, 9100, 3900)
    f = 1.0 + gaussian_lines(w, 0.1, {"Ha": 30, "Hb": 10, "OIII_5007": 30, "NII_6583": 3},
                             80.0, L.REST_LINES)
    iv = np.full(w.size, 1e4)
    t = L.line_fluxes([(w, f, iv), (w, f, iv)], [0.1, np.nan])
    assert len(t) == 2
    assert t["flux_Ha"][0] == pytest.approx(30, rel=0.02)
    assert np.isnan(t["flux_Ha"][1]) and t["flux_reason"][1] == "no redshift"
    assert t["ew_Ha"].unit == "Angstrom"
    assert t["bpt_class"][0] == "star-forming"  # log NII/Ha = -1, log OIII/Hb = 0.48
    with pytest.raises(ValueError, match="method"):
        L.line_fluxes((w, f, iv), 0.1, method="spline")


# ------------------------------------------------------------------ classification


def test_bpt_demarcations_at_known_points():
    # on each side of Kauffmann et al. 2003 at x = -0.5: y = 0.61 / -0.55 + 1.3 = 0.1909
    assert kauffmann03(-0.5) == pytest.approx(0.61 / -0.55 + 1.3)
    assert kewley01(-0.5) == pytest.approx(0.61 / -0.97 + 1.19)
    x = np.array([-0.5, -0.5, -0.5, -0.5, 0.3, 0.3, 0.6, 0.6, np.nan])
    y = np.array([0.18, 0.20, 0.55, 0.6, 1.0, 0.6, 1.2, 0.5, 0.0])
    # (-0.5, 0.55): below Kewley (0.561) -> composite; (-0.5, 0.6) above -> AGN,
    # Schawinski line at x=-0.5 is -0.075 -> Seyfert; (0.3, 0.6) vs 1.05*0.3+0.45=0.765 -> LINER
    expect = ["star-forming", "composite", "composite", "seyfert", "seyfert", "liner",
              "seyfert", "liner", "unclassified"]
    assert bpt_class(x, y).tolist() == expect
    # the Kauffmann curve lies below the Kewley curve over the populated range
    # (they cross near x = -1.28, far left of any galaxy)
    xs = np.linspace(-1.2, 0.04, 200)
    assert np.all(kauffmann03(xs) < kewley01(xs))


def test_hii_region_and_velocity_split():
    n = np.array([-0.5, -0.5, -0.5, np.nan])
    s = np.array([-0.865, -0.86, -0.87, -0.5])  # boundary 0.63 * -0.5 - 0.55 = -0.865
    assert hii_region(s, n).tolist() == [True, True, False, False]
    c = 299792.458
    assert velocity_class(np.array([499.0, -499.0, 501.0, -600.0]) / c).tolist() == [
        "galactic", "galactic", "extragalactic", "extragalactic"]


# ------------------------------------------------------------------ real spectra


@pytest.mark.shared_data
def test_cl_redshift_of_corpus_galaxies_and_quasars(shared_data):
    """All 32 GALAXY/QSO spectra with a pipeline Z.  Measured: 23/32 CL
    redshifts within 0.001 of Z (20/32 without the guided pass) and none
    outside it.  The misses are LAMOST
    galaxies with only H-alpha + [N II] 6583 above the noise (or no lines) and
    the lowest-S/N epochs of the z = 0.456 quasar."""
    from astropy.table import Table

    idx = Table.read(shared_data / "spectra_index.csv", format="ascii.csv")
    rows = [r for r in idx if r["obj_class"] in ("GALAXY", "QSO")]
    specs = [read_simple(shared_data / r["relative_path"]) for r in rows]
    res = L.redshift(specs)
    z_pipe = np.array([float(r["z"]) for r in rows])
    z_cl = np.array([r.z for r in res])
    agree = np.abs(z_cl - z_pipe) < 0.001
    assert agree.sum() >= 21
    assert np.sum(np.isfinite(z_cl) & ~agree) == 0
    single_pass = L.redshift(specs, confirm_nsigma=None)
    assert sum(abs(r.z - z) < 0.001 for r, z in zip(single_pass, z_pipe, strict=True)) >= 18
    # strong-line objects: >= 3 lines at flux S/N >= 8 at the pipeline redshift.
    # Measured: 20 such objects, 18 with an agreeing CL redshift; the two
    # misses are the S/N 5 DR13 quasar and RM017 epoch 7339-57428, where the
    # broad H-beta breaks into several peaks and only two lines agree.
    fl = L.line_fluxes(specs, z_pipe)
    snr = np.stack([fl[f"flux_{n}"] / fl[f"flux_err_{n}"] for n in L.FLUX_LINES], axis=1)
    strong = np.sum(np.nan_to_num(snr) >= 8, axis=1) >= 3
    assert strong.sum() >= 15
    assert agree[strong].sum() >= strong.sum() - 2


def test_running_median_kernel_equals_numpy(rng):
    from pyspec.lines import _kernels

    w = np.geomspace(3700, 9100, 1500)
    f = rng.normal(size=w.size)
    f[::7] = f[3]  # ties
    good = rng.random(w.size) > 0.2
    good[600:700] = False  # a gap wider than the window
    got = _kernels.median_continuum(w, f, good, 20.0)
    ref = np.array([np.median(f[(np.abs(w - x) <= 20.0) & good])
                    if np.any((np.abs(w - x) <= 20.0) & good) else np.nan for x in w])
    np.testing.assert_array_equal(got, ref)


def test_air_wavelength_spectra_are_converted():
    z = 0.08
    w_vac = np.geomspace(3700, 9100, 3900)
    f = 1.0 + gaussian_lines(w_vac, z, {"Ha": 30, "Hb": 10, "OIII_5007": 20}, 90.0,
                             L.REST_LINES)

    class AirSpectrum:
        wavelength = L.vacuum_to_air(w_vac)
        flux = f
        ivar = np.full(w_vac.size, 1e4)
        meta = {"vacuum": False}

    class VacSpectrum(AirSpectrum):
        meta = {"vacuum": True}

    assert L.redshift(AirSpectrum()).z == pytest.approx(z, abs=2e-5)
    # read as vacuum, an air grid is off by ~ 2.8e-4 in z
    assert abs(L.redshift(VacSpectrum()).z - z) > 2e-4


def test_local_scatter_floor_suppresses_stellar_bumps():
    """Shipped F/G/K stars at S/N_r >= 30: with the ivar noise alone the bumps
    between absorption lines pass a 3 sigma threshold by the dozen; the local
    scatter floor removes almost all (measured median 55 -> 0 lines per star)."""
    stars = [s for s in load_sample("STAR", min_snr=30.0) if str(s.meta["subclass"])[:1] in "FGK"]
    n_ivar = [len(t) for t in L.find_lines(stars[:10], local_scatter=False, max_lines=1000)]
    n_floor = [len(t) for t in L.find_lines(stars[:10], max_lines=1000)]
    assert np.median(n_ivar) >= 5 * max(np.median(n_floor), 1)


def test_gaussian_method_splits_a_blend(rng):
    """H-alpha + [N II] broadened to 250 km/s overlap each other's direct
    windows; the joint fit recovers each flux (within 3 errors + 2 %)."""
    w = np.geomspace(3700, 9100, 3900)
    z = 0.03
    flux_in = {"Ha": 30.0, "NII_6583": 15.0, "NII_6548": 5.0}
    f = 1.0 + gaussian_lines(w, z, flux_in, 250.0, L.REST_LINES) + rng.normal(0, 0.02, w.size)
    spec = (w, f, np.full(w.size, 1 / 0.02**2))
    g = L.line_fluxes(spec, z, method="gaussian")
    d = L.line_fluxes(spec, z, method="direct")
    for n, fin in flux_in.items():
        assert g[f"flux_{n}"] == pytest.approx(fin, abs=3 * g[f"flux_err_{n}"] + 0.02 * fin), n
    # the direct windows (+-300 km/s) clip a 250 km/s line: 77 % inside
    assert d["flux_Ha"] < 0.9 * flux_in["Ha"]
