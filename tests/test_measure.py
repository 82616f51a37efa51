"""Batch measurement driver, ``pyspec measure`` and add_measurements (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from lines_data import gaussian_lines, load_sample, read_simple

import pyspec.lines as L
from pyspec.commands import measure as cmd
from pyspec.measure import COLUMN_INFO, add_measurements, measure


def _galaxy(z=0.1, n=3900):
    w = np.geomspace(3700, 9100, n)
    f = 1.0 + gaussian_lines(w, z, {"Ha": 40, "NII_6583": 12, "Hb": 12, "OIII_5007": 10,
                                    "SII_6716": 6, "SII_6731": 5}, 90.0, L.REST_LINES)
    return w, f, np.full(n, 1e4)


def test_measure_rows_align_with_input_and_carry_units():
    w, f, iv = _galaxy(0.1)
    stars = load_sample("STAR", "dM", min_snr=10.0)[:2]
    batch = [(w, f, iv), stars[0], "not a spectrum", stars[1], (w, np.zeros(w.size), iv * 0)]
    t = measure(batch)
    assert len(t) == 5
    assert t["z_cl"][0] == pytest.approx(0.1, abs=1e-4) and t["z_source"][0] == "CL"
    assert t["bpt_class"][0] == "star-forming"
    assert t["velocity_class"][0] == "extragalactic"
    assert t["tio5"][1] < 0.9 and t["tio5"][3] < 0.9  # dM stars
    assert "not a spectrum" in t["measure_reason"][2]
    assert np.isnan(t["z_cl"][2]) and np.isnan(t["tio5"][2])
    assert t["z_cl_reason"][4] != ""
    for name in t.colnames:
        assert t[name].description, name
        assert name in COLUMN_INFO
    assert t["ew_Ha"].unit == "Angstrom" and t["tio5"].unit == ""
    # the driver equals the standalone functions
    assert t["z_cl"][0] == L.redshift((w, f, iv)).z
    assert t["flux_Ha"][0] == L.line_fluxes((w, f, iv), t["z_cl"][0])["flux_Ha"]


def test_measure_falls_back_to_header_and_given_redshift():
    w, f, iv = _galaxy(0.1)
    one_line = 1.0 + gaussian_lines(w, 0.05, {"Ha": 40}, 90.0, L.REST_LINES)

    class Spec:
        wavelength, flux, ivar = w, one_line, iv
        meta = {"z": 0.05, "vacuum": True}

    t = measure([Spec(), (w, f, iv)], indices=False)
    assert t["z_source"].tolist() == ["header", "CL"]
    assert t["flux_Ha"][0] == pytest.approx(40, rel=0.03)
    t = measure([(w, f, iv)], z=[0.1], indices=False, template_z=[0.1004])
    assert t["z_source"][0] == "given"
    assert bool(t["z_confirmed"][0])
    with pytest.raises(ValueError, match="template_z"):
        measure([(w, f, iv)], template_z=[0.1, 0.2])


def test_gaussian_method_agrees_with_direct():
    w, f, iv = _galaxy(0.1)
    d = measure([(w, f, iv)], indices=False)
    g = measure([(w, f, iv)], indices=False, method="gaussian")
    for n in ("Ha", "Hb", "OIII_5007", "NII_6583"):
        assert g[f"flux_{n}"][0] == pytest.approx(d[f"flux_{n}"][0], rel=0.03)


def test_add_measurements_appends_aligned_columns():
    w, f, iv = _galaxy(0.2)
    cand = Table({"id": [7, 9], "distance": [1.0, 2.0], "z_cl": [0.0, 0.0]})
    out = add_measurements(cand, [(w, f, iv), None], indices=False)
    assert out.colnames[:3] == ["id", "distance", "z_cl"]
    assert out["m_z_cl"][0] == pytest.approx(0.2, abs=1e-4)
    assert np.isnan(out["m_z_cl"][1]) and out["measure_reason"][1] != ""
    with pytest.raises(ValueError, match="rows"):
        add_measurements(cand, [(w, f, iv)])


def test_cli_measure_writes_ecsv(tmp_path, monkeypatch):
    from pyspec.cli import main
    from pyspec.data import SAMPLE_DIR

    # read with the test reader so the command is exercised before pyspec.io lands
    monkeypatch.setattr(cmd, "_read_one", read_simple)
    files = [str(SAMPLE_DIR / n) for n in ("spec-58575-HD103621N361936B01_sp03-030.fits.gz",
                                           "spec-58575-HD103621N361936B01_sp03-170.fits.gz")]
    broken = tmp_path / "broken.fits.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    files.append(str(broken))  # does not open: a reason row
    out = tmp_path / "cat.ecsv"
    assert main(["measure", *files, "-o", str(out), "--quiet"]) == 0
    t = Table.read(out, format="ascii.ecsv")
    assert len(t) == 3
    assert t["file"].tolist() == files
    assert t["ew_Ha"].unit == "Angstrom"
    assert "OSError" in t["measure_reason"][2]
    assert np.isfinite(t["tio5"][0])
    assert main(["measure", *files, "-o", str(out), "--quiet"]) == 1  # exists
    assert main(["measure", "-o", str(tmp_path / "y.ecsv")]) == 1  # no inputs
    assert main(["measure", str(tmp_path / "nope.fits"), "-o", str(tmp_path / "z.ecsv")]) == 1


def test_cli_measure_with_pyspec_io(tmp_path):
    from pyspec.cli import main
    from pyspec.data import sample_files

    out = tmp_path / "cat.ecsv"
    files = [str(p) for p in sample_files()[:5]]
    assert main(["measure", *files, "-o", str(out), "--quiet"]) == 0
    assert len(Table.read(out, format="ascii.ecsv")) == 5


def test_cli_measure_over_a_store(tmp_path):
    """--store reads the store in chunks; rows whose file cannot be read are
    measured from the stored arrays, and keep the store's ids in order."""
    from pyspec.cli import main
    from pyspec.preprocess import WavelengthGrid
    from pyspec.store import SpectrumStore

    w, f, iv = _galaxy(0.1)
    flux = np.stack([f, f, np.ones_like(f)]).astype(np.float32)
    ivar = np.stack([iv, iv, iv]).astype(np.float32)
    with SpectrumStore.create(tmp_path / "store", WavelengthGrid(w)) as writer:
        writer.append(flux, ivar, [{"id": str(i), "file": str(tmp_path / f"gone{i}.fits")}
                                   for i in (10, 11, 12)])
    out = tmp_path / "cat.ecsv"
    assert main(["measure", "--store", str(tmp_path / "store"), "-o", str(out), "--quiet",
                 "--chunk-size", "2"]) == 0
    t = Table.read(out, format="ascii.ecsv")
    assert [str(i) for i in t["id"]] == ["10", "11", "12"]
    assert t["measured_from"].tolist() == ["store"] * 3
    assert t["z_cl"][0] == pytest.approx(0.1, abs=1e-4) and np.isnan(t["z_cl"][2])
    # the chunked store run equals measuring the same arrays directly
    direct = measure([(w, flux[i], ivar[i]) for i in range(3)])
    np.testing.assert_array_equal(t["z_cl"], direct["z_cl"])
