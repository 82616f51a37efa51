"""measure(): broad-line guard, rest-frame EWs, indices at the measured velocity,
zeta for M stars only, and ``measure --store`` equal to ``measure FILES`` (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from lines_data import gaussian_lines

import pyspec.lines as L
from pyspec.io import read_spectrum
from pyspec.measure import measure

SAMPLE = Path(__file__).resolve().parents[1] / "pyspec" / "data" / "sample"
NARROW = {"Ha": 40, "NII_6583": 12, "NII_6548": 4, "Hb": 12, "OIII_5007": 10, "OIII_4959": 3.3,
          "SII_6716": 6, "SII_6731": 5}


def _agn(z, broad_flux, rng, fwhm_kms=4000.0):
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    f = 1.0 + gaussian_lines(w, z, NARROW, 90.0, L.REST_LINES)
    sig = fwhm_kms / 2.3548
    f += gaussian_lines(w, z, {"Ha": broad_flux, "Hb": broad_flux / 3}, sig, L.REST_LINES)
    return w, f + rng.normal(0, 0.02, w.size), np.full(w.size, 1 / 0.02**2)


def test_broad_line_objects_get_no_bpt_class(rng):
    w, f, iv = _agn(0.1, 400.0, rng)
    w0, f0, iv0 = _agn(0.1, 0.0, rng)
    t = measure([(w, f, iv), (w0, f0, iv0)], indices=False)
    assert t["broad_line"][0] and t["bpt_class"][0] == "broad-line" and not t["hii_region"][0]
    assert t["fwhm_broad_Ha"][0] == pytest.approx(4000.0, rel=0.15)
    assert "Ha" in t["broad_lines"][0]
    assert not t["broad_line"][1] and t["bpt_class"][1] == "star-forming"
    assert np.isnan(t["fwhm_broad_Ha"][1])


@pytest.mark.parametrize("z", [0.05, 0.4])
def test_equivalent_widths_are_rest_frame(z):
    """A line of rest EW 20 A on a unit continuum has observed flux 20 (1+z)."""
    w = 10 ** (3.5682 + 1e-4 * np.arange(3900))
    f = 1.0 + gaussian_lines(w, z, {"Hb": 20.0 * (1 + z)}, 90.0, L.REST_LINES)
    t = measure([(w, f, np.full(w.size, 1e4))], z=z, indices=False)
    assert t["ew_Hb"][0] == pytest.approx(20.0, rel=0.03)
    assert "rest-frame" in t["ew_Hb"].description


def test_zeta_only_for_m_stars_and_indices_at_the_measured_velocity():
    m = read_spectrum(SAMPLE / "spec-58575-HD103621N361936B01_sp03-061.fits.gz")  # dM1
    a = read_spectrum(SAMPLE / "spec-55862-B6212_sp06-018.fits.gz")  # A4V
    t = measure([m, a])
    assert t["zeta_flag"][0] == "ok" and np.isfinite(t["zeta"][0])
    assert t["zeta_flag"][1].startswith("not an M star") and np.isnan(t["zeta"][1])
    assert np.isfinite(t["tio5"][1])  # the band indices themselves are still given
    assert list(t["index_velocity_source"]) == ["xcorr", "xcorr"]
    assert t["index_velocity"][0] == pytest.approx(t["z"][0] * L.C_KMS)
    # the DR7 dM1's header velocity is good: the measured one agrees within 20 km/s
    assert abs(t["index_velocity"][0] - m.meta["z"] * L.C_KMS) < 20.0


def _compare(a: Table, b: Table, skip=("file", "id", "measured_from")):
    for name in a.colnames:
        if name in skip:
            continue
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert x.tolist() == y.tolist(), name


def test_measure_on_a_store_equals_measure_on_the_files(tmp_path):
    from pyspec.cli import main
    from pyspec.ingest import ingest

    names = ["spec-58575-HD103621N361936B01_sp03-066.fits.gz",  # galaxy
             "spec-58575-HD103621N361936B01_sp03-061.fits.gz",  # dM1
             "spec-55862-B6212_sp06-025.fits.gz",  # DR1 M2, header velocity off
             "spec-57278-EG224429N215706B01_sp01-001.fits.gz"]  # DR10 COADD table
    src = tmp_path / "src"
    src.mkdir()
    for n in names:
        (src / n).write_bytes((SAMPLE / n).read_bytes())
    files = sorted(str(p) for p in src.iterdir())
    ingest(files, tmp_path / "store", progress=False)
    out_f, out_s, out_a = (tmp_path / f"{k}.ecsv" for k in "fsa")
    assert main(["measure", *files, "-o", str(out_f), "--quiet"]) == 0
    assert main(["measure", "--store", str(tmp_path / "store"), "-o", str(out_s), "--quiet"]) == 0
    assert main(["measure", "--store", str(tmp_path / "store"), "--store-flux", "-o", str(out_a),
                 "--quiet"]) == 0
    tf, ts, ta = (Table.read(p, format="ascii.ecsv") for p in (out_f, out_s, out_a))
    ts = ts[np.argsort([str(x) for x in ts["file"]])]
    ta = ta[np.argsort([str(x) for x in ta["file"]])]
    assert [str(x) for x in ts["file"]] == [str(x) for x in tf["file"]]
    assert set(ts["measured_from"]) == {"file"} and set(ta["measured_from"]) == {"store"}
    _compare(tf, ts)
    # the stored (resampled) arrays keep the header metadata: same adopted
    # methods, and stellar velocities within a few km/s of the file's
    assert list(ta["z_method"]) == list(tf["z_method"])
    star = np.array([m == "xcorr-star" for m in tf["z_method"]])
    assert np.all(np.abs(ta["index_velocity"][star] - tf["index_velocity"][star]) < 10.0)


@pytest.mark.shared_data
def test_no_broad_line_rm017_epoch_gets_a_bpt_class(shared_data):
    files = sorted((shared_data / "sdss" / "pyqsofit_rm017").glob("*.fits"))
    assert len(files) == 19
    spectra = [read_spectrum(f) for f in files]
    t = measure(spectra, indices=False)
    assert np.all(t["broad_line"])
    assert set(t["bpt_class"]) == {"broad-line"} and not np.any(t["hii_region"])
    zpipe = np.array([s.meta["z"] for s in spectra])
    assert np.all(np.abs(t["z"] - zpipe) < 0.001 * (1 + zpipe))


def test_cross_correlation_can_be_turned_off(rng):
    m = read_spectrum(SAMPLE / "spec-58575-HD103621N361936B01_sp03-061.fits.gz")  # dM1
    w, f, iv = _agn(0.1, 0.0, rng)
    t = measure([m, (w, f, iv)], templates=False)
    assert t["z_method"][0] == "none" and np.isnan(t["z"][0])
    assert "turned off" in t["z_reason"][0]
    assert t["index_velocity_source"][0] == "header"
    assert t["z_method"][1] == "CL" and t["z"][1] == pytest.approx(0.1, abs=1e-4)


def test_no_zeta_for_a_spectrum_with_an_extragalactic_redshift():
    """M-star band depths under four emission lines at z = 0.2: the adopted
    redshift is extragalactic (CL), so zeta is not reported as valid."""
    m = read_spectrum(SAMPLE / "spec-58575-HD103621N361936B01_sp03-061.fits.gz")  # dM1
    w, f = np.asarray(m.wavelength, float), np.asarray(m.flux, float).copy()
    lines = {"Hb": 1.0, "OIII_5007": 3.0, "OIII_4959": 1.0, "Ha": 3.0, "NII_6583": 1.0}
    f += gaussian_lines(w, 0.2, lines, 90.0, L.REST_LINES) * 3.0 * np.median(f)
    t = measure([m, (w, f, np.asarray(m.ivar, float))])
    assert t["zeta_flag"][0] == "ok"
    assert t["z_method"][1] == "CL"
    assert t["velocity_class"][1] == "extragalactic"
    assert t["zeta_flag"][1] == "not a star: extragalactic redshift"
    assert np.isnan(t["zeta"][1])
