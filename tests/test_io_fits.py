"""FITS readers: every layout built with astropy, bad inputs, the shipped sample."""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np
import pytest
from astropy.io import fits
from io_builders import (
    write_bad_inputs,
    write_desi_coadd,
    write_lamost_image,
    write_lamost_mrs,
    write_lamost_table,
    write_sdss_spec,
    write_sdss_spspec,
    write_table_1d,
)

import pyspec
from pyspec.data import sample_files, sample_index_path
from pyspec.errors import FitsFormatError
from pyspec.io import META_KEYS, read_batch, read_spectra, read_spectrum


@pytest.fixture(params=[True, False], ids=["fast", "astropy"])
def fast(request: pytest.FixtureRequest) -> bool:
    return request.param


# ------------------------------------------------------------------ LAMOST layouts

@pytest.mark.parametrize("layout", ["A", "B", "C"])
def test_lamost_image_layouts(tmp_path, rng, fast, layout):
    path = tmp_path / f"lamost_{layout}.fits"
    truth = write_lamost_image(path, layout, rng)
    s = read_spectrum(path, fast=fast)
    assert s.meta["layout"] == f"lamost-{layout}"
    # layout A has no wavelength row: the grid comes from COEFF0/COEFF1, and
    # float32 storage of the row in B/C rounds it to ~1e-4 A
    np.testing.assert_allclose(s.wavelength, truth["wavelength"], rtol=1e-7)
    np.testing.assert_array_equal(s.flux, truth["flux"])
    assert s.wavelength.dtype == np.float64
    assert s.flux.dtype == np.float32
    assert s.ivar.dtype == np.float32
    assert s.mask.dtype == bool
    assert set(META_KEYS) <= set(s.meta)
    if layout == "C":
        assert s.meta["id"] == "101005"
        assert math.isnan(s.meta["snr_r"])  # SNRR = -9999 sentinel
        assert s.meta["snr_g"] == pytest.approx(8.1)
        assert s.meta["data_release"] == "LAMOST DR8"
    else:
        assert s.meta["id"] == "55862-B6212-6-68"  # LMJD-PLANID-SPID-FIBERID
        assert math.isnan(s.meta["snr_r"])  # SN_R = 99 sentinel
        assert s.meta["snr_i"] == pytest.approx(40.0)
    assert s.meta["class"] == "STAR"
    assert s.meta["subclass"] == "G2"
    assert s.meta["vacuum"] is True
    assert not s.mask.any()


def test_lamost_table_layout_d(tmp_path, rng, fast):
    path = tmp_path / "dr9.fits.gz"
    truth = write_lamost_table(path, rng)
    s = read_spectrum(path, fast=fast)
    assert s.meta["layout"] == "lamost-D"
    np.testing.assert_array_equal(s.flux, truth["flux"])
    np.testing.assert_array_equal(s.wavelength, truth["wavelength"].astype(np.float32))
    assert s.meta["id"] == "101005"
    assert s.meta["data_release"] == "LAMOST DR9"


def test_image_and_table_layouts_agree(tmp_path, rng):
    """The same arrays written as layout C and layout D read back identically."""
    arrays = write_lamost_image(tmp_path / "c.fits", "C", rng)
    write_lamost_table(tmp_path / "d.fits", rng, n=arrays["flux"].size, arrays=arrays)
    c, d = read_spectrum(tmp_path / "c.fits"), read_spectrum(tmp_path / "d.fits")
    np.testing.assert_array_equal(c.flux, d.flux)
    np.testing.assert_array_equal(c.wavelength, d.wavelength)
    assert c.meta["id"] == d.meta["id"]


# ------------------------------------------------------------------ masks

def test_mask_bits(tmp_path, rng):
    a = write_lamost_image(tmp_path / "x.fits", "C", rng)
    n = a["flux"].size
    a["flux"][:7] = 0.0          # zero run at the blue end
    a["flux"][-4:] = 0.0         # and at the red end
    a["flux"][500] = 0.0         # an isolated zero is not an end run
    a["flux"][600] = np.nan
    a["ivar"][700] = 0.0
    a["ivar"][701] = -1.0
    a["ivar"][702] = np.inf
    a["andmask"][800:803] = 4.0
    write_lamost_image(tmp_path / "m.fits", "C", rng, arrays=a)
    s = read_spectrum(tmp_path / "m.fits")
    expected = np.zeros(n, dtype=bool)
    expected[:7] = expected[-4:] = True
    expected[[600, 700, 701, 702, 800, 801, 802]] = True
    np.testing.assert_array_equal(s.mask, expected)


# ------------------------------------------------------------------ SDSS, DESI, tables

def test_sdss_spec(tmp_path, rng, fast):
    truth = write_sdss_spec(tmp_path / "spec-0266-51602-0013.fits", rng)
    s = read_spectrum(tmp_path / "spec-0266-51602-0013.fits", fast=fast)
    assert s.meta["layout"] == "sdss-spec"
    assert s.meta["id"] == "0266-51602-0013"
    assert s.meta["class"] == "GALAXY"
    assert s.meta["subclass"] is None
    assert s.meta["z"] == pytest.approx(0.1213, rel=1e-6)
    assert s.meta["snr_r"] == pytest.approx(21.0)
    np.testing.assert_allclose(s.wavelength, truth["wavelength"], rtol=1e-12)
    # the builder sets MANYBADCOLUMNS (bit 4), a fibre-level warning: not masked by default
    assert (truth["and_mask"] == 16).any()
    assert not s.mask[truth["and_mask"] != 0].any()


@pytest.mark.parametrize("bits", [["MANYBADCOLUMNS"], [4], "all"])
def test_sdss_and_mask_bits_are_configurable(tmp_path, rng, bits):
    from pyspec.io import fits as F

    truth = write_sdss_spec(tmp_path / "spec-0266-51602-0013.fits", rng)
    previous = F.set_sdss_masked_bits(bits)
    try:
        s = read_spectrum(tmp_path / "spec-0266-51602-0013.fits")
    finally:
        F.set_sdss_masked_bits(previous)
    np.testing.assert_array_equal(s.mask, truth["and_mask"] != 0)
    assert F.sdss_masked_bits() == F.SDSS_DEFAULT_MASKED


def test_sdss_and_mask_bad_bit_names_raise():
    from pyspec.io import fits as F

    with pytest.raises(ValueError, match="unknown SDSS mask bit"):
        F.set_sdss_masked_bits(["NOT_A_BIT"])
    with pytest.raises(ValueError, match="0..31"):
        F.set_sdss_masked_bits([40])
    assert F.sdss_masked_bits() == F.SDSS_DEFAULT_MASKED


def test_sdss_spspec_sigma_row(tmp_path, rng, fast):
    truth = write_sdss_spspec(tmp_path / "spSpec-51630-0266-001.fit", rng)
    s = read_spectrum(tmp_path / "spSpec-51630-0266-001.fit", fast=fast)
    assert s.meta["layout"] == "sdss-spspec"
    assert s.meta["class"] == "QSO"
    assert s.meta["id"] == "0266-51630-0001"
    sigma = truth["sigma"].astype(np.float64)
    expected = np.where(sigma > 0, 1 / np.where(sigma > 0, sigma, 1) ** 2, 0).astype(np.float32)
    np.testing.assert_array_equal(s.ivar, expected)  # ivar = 1 / sigma**2, 0 where sigma = 0
    assert s.mask[:5].all()
    assert not s.mask[5:].any()
    np.testing.assert_allclose(s.wavelength, truth["wavelength"], rtol=1e-12)


def test_desi_coadd_many_spectra(tmp_path, rng, fast):
    truth = write_desi_coadd(tmp_path / "coadd-sv1-dark-1000.fits", rng, nspec=3)
    batch = read_batch(tmp_path / "coadd-sv1-dark-1000.fits", fast=fast)
    assert len(batch) == 3
    assert batch.ids == [str(t) for t in truth["targetid"]]
    assert np.all(np.diff(batch.wavelength) > 0)
    b_wl, b_flux = truth["arms"]["B"][:2]
    r_wl, r_flux = truth["arms"]["R"][:2]
    cut = 0.5 * (r_wl[0] + b_wl[-1])  # arms join at the middle of their overlap
    nb = int(np.sum(b_wl < cut))
    np.testing.assert_array_equal(batch.flux[:, :nb], b_flux[:, :nb])
    first_r = int(np.sum(r_wl < cut))
    np.testing.assert_array_equal(batch.flux[:, nb:nb + 10], r_flux[:, first_r:first_r + 10])
    assert batch.mask[:, :3].all()  # B_MASK bits
    assert batch.meta[1]["z"] == pytest.approx(0.2)
    assert batch.meta[0]["class"] == "GALAXY"
    assert batch.meta[2]["ra"] == pytest.approx(11.0)
    with pytest.raises(ValueError, match="holds 3 spectra"):
        read_spectrum(tmp_path / "coadd-sv1-dark-1000.fits")
    assert read_spectrum(tmp_path / "coadd-sv1-dark-1000.fits", index=2).meta["id"] == \
        str(truth["targetid"][2])
    result = read_spectra([tmp_path / "coadd-sv1-dark-1000.fits"])
    assert len(result.spectra) == 3
    assert result.rejects == []


def test_table_1d_air_wavelengths(tmp_path, rng, fast):
    truth = write_table_1d(tmp_path / "vh130075.fits", rng)
    s = read_spectrum(tmp_path / "vh130075.fits", fast=fast)
    assert s.meta["layout"] == "table-1d"
    assert s.meta["vacuum"] is False
    assert s.meta["id"] == "vh130075"
    np.testing.assert_array_equal(s.wavelength, truth["wavelength"])
    np.testing.assert_allclose(s.flux, truth["flux"], rtol=1e-7)


def test_table_1d_units(tmp_path, rng):
    truth = write_table_1d(tmp_path / "nm.fits", rng, unit="nm", scale=10.0, comment="vacuum")
    s = read_spectrum(tmp_path / "nm.fits")
    np.testing.assert_allclose(s.wavelength, truth["wavelength"], rtol=1e-12)
    assert s.meta["vacuum"] is True
    write_table_1d(tmp_path / "bad_unit.fits", rng, unit="furlong")
    with pytest.raises(FitsFormatError, match="bad_unit.fits.*furlong"):
        read_spectrum(tmp_path / "bad_unit.fits")


def test_lamost_mrs_is_refused(tmp_path, rng):
    write_lamost_mrs(tmp_path / "med-58625-TD045606N223435B01_sp16-102.fits", rng)
    with pytest.raises(FitsFormatError, match=r"med-58625.*medium-resolution"):
        read_spectrum(tmp_path / "med-58625-TD045606N223435B01_sp16-102.fits")


def test_unknown_layout_names_file_and_structure(tmp_path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(path)
    with pytest.raises(FitsFormatError, match=r"image\.fits: not a recognised.*10x10"):
        read_spectrum(path)


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize(("kind", "pattern"), [
    ("truncated", "truncated"),
    ("random", "not a (readable )?FITS file"),
    ("empty", "empty"),
    ("truncated_gz", "truncated gzip"),
    ("wrong_shape", r"shape \(2, 3900\)"),
    ("all_nan", "no finite values"),
])
def test_bad_inputs_raise_with_reason(tmp_path, rng, fast, kind, pattern):
    good = tmp_path / "good.fits"
    write_lamost_image(good, "C", rng)
    bad = write_bad_inputs(tmp_path / "bad", good, rng)
    with pytest.raises(FitsFormatError, match=pattern) as info:
        read_spectrum(bad[kind], fast=fast)
    assert bad[kind].name in str(info.value)
    result = read_spectra([good, bad[kind]], fast=fast)
    assert len(result.spectra) == 1
    assert [f for f, _ in result.rejects] == [str(bad[kind])]
    assert re.search(pattern, result.rejects[0][1])


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_spectrum(tmp_path / "nope.fits")
    result = read_spectra([tmp_path / "nope.fits"])
    assert result.spectra == []
    assert "FileNotFoundError" in result.rejects[0][1]


def test_other_sources(tmp_path, rng):
    """Path, bytes, binary file object and an open HDUList give the same spectrum."""
    path = tmp_path / "x.fits"
    write_lamost_image(path, "C", rng)
    ref = read_spectrum(path)
    with open(path, "rb") as fh:
        from_fh = read_spectrum(fh)
    from_bytes = read_spectrum(path.read_bytes())
    with fits.open(path) as hdul:
        from_hdul = read_spectrum(hdul)
    for s in (from_fh, from_bytes, from_hdul):
        np.testing.assert_array_equal(s.flux, ref.flux)
        np.testing.assert_array_equal(s.wavelength, ref.wavelength)
    with pytest.raises(TypeError, match="cannot read a spectrum"):
        read_spectrum(12345)
    with pytest.raises(TypeError, match="binary mode"):
        read_spectrum(io.StringIO("SIMPLE"))


def test_astropy_warnings_are_caught_per_file(tmp_path, rng):
    """An invalid card value makes astropy warn; the warning lands in meta, not in the caller."""
    path = tmp_path / "x.fits"
    write_lamost_image(path, "C", rng)
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"RA      = ")
    assert 0 < pos < 2880 * 3
    raw[pos:pos + 80] = b"RA      = 12.3.4 / not a number".ljust(80)
    path.write_bytes(bytes(raw))
    # pytest runs with -W error: an escaping warning would fail this test
    for fast_path in (True, False):
        s = read_spectrum(path, fast=fast_path)
        assert math.isnan(s.meta["ra"])
        assert any("RA" in w for w in s.meta["warnings"])
        assert s.meta["dec"] == pytest.approx(27.97)


def test_public_names():
    assert pyspec.read_spectrum is read_spectrum
    assert pyspec.Spectrum.__name__ == "Spectrum"
    assert pyspec.SpectrumBatch.__name__ == \
        "SpectrumBatch"


# ------------------------------------------------------------------ shipped sample (always)

def _sample_rows() -> list[dict[str, str]]:
    with open(sample_index_path(), newline="") as fh:
        return list(csv.DictReader(fh))


def test_shipped_sample_reads_and_matches_index():
    rows = {r["file"]: r for r in _sample_rows()}
    files = sample_files()
    assert len(files) == len(rows) == 59
    layouts = set()
    for path in files:
        row = rows[path.name]
        s = read_spectrum(path)
        layouts.add(s.meta["layout"])
        assert len(s) == int(row["n_pix"])
        assert s.wavelength[0] == pytest.approx(float(row["wl_min"]), abs=0.01)
        assert s.wavelength[-1] == pytest.approx(float(row["wl_max"]), abs=0.01)
        assert s.meta["class"] == (row["obj_class"] or None)
        if row["obsid"]:
            assert s.meta["id"] == row["obsid"]
    assert layouts == {"lamost-A", "lamost-B", "lamost-C", "lamost-D"}


def test_shipped_sample_fast_equals_astropy():
    from pyspec.io import _dispatch
    from pyspec.io._view import raw_view, read_bytes

    for path in sample_files():
        fast_only = _dispatch(raw_view(*read_bytes(path)))  # no astropy fallback involved
        _assert_same(fast_only, read_batch(path, fast=False))


def _assert_same(a, b) -> None:
    for key in ("wavelength", "flux", "ivar", "mask"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.ids == b.ids
    for ma, mb in zip(a.meta, b.meta, strict=True):
        assert ma.keys() == mb.keys()
        for k in ma:
            va, vb = ma[k], mb[k]
            if isinstance(va, float) and math.isnan(va):
                assert isinstance(vb, float), k
                assert math.isnan(vb), k
            else:
                assert va == vb, k


def test_damaged_files_only_raise_fits_format_error(rng, fast):
    """Random byte damage and truncation: a spectrum or FitsFormatError, nothing else.

    (A 4000-trial version of this over five layouts found astropy's VerifyError
    and overflow warnings escaping; both are now turned into FitsFormatError or
    masked pixels.)
    """
    raw = bytearray(sample_files()[10].read_bytes())
    import gzip

    raw = bytearray(gzip.decompress(bytes(raw))) if raw[:2] == b"\x1f\x8b" else raw
    outcomes = {"read": 0, "rejected": 0}
    for trial in range(40):
        b = bytearray(raw)
        if trial % 2:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            for _ in range(int(rng.integers(1, 8))):
                b[int(rng.integers(0, 2880 * 4))] = int(rng.integers(32, 127))
        try:
            read_batch(bytes(b), fast=fast)
            outcomes["read"] += 1
        except FitsFormatError:
            outcomes["rejected"] += 1
    assert outcomes["read"] > 0
    assert outcomes["rejected"] > 0


def test_loaders_accept_paths_and_hdulists(tmp_path, rng):
    from pyspec.io import loaders
    from pyspec.io.fits import identify_lamost_image, load_lamost_image

    path = tmp_path / "x.fits"
    truth = write_lamost_image(path, "C", rng)
    assert identify_lamost_image(path)
    assert [x.label for x in loaders()][0] == "lamost-mrs"  # highest priority first
    with fits.open(path) as hdul:
        batch = load_lamost_image(hdul)
    np.testing.assert_array_equal(batch.flux[0], truth["flux"])
    np.testing.assert_array_equal(load_lamost_image(str(path)).flux[0], truth["flux"])


@pytest.mark.parametrize(("layout", "release"), [("A", "LAMOST DR1 (pipeline v2.6.4)"),
                                                 ("B", "LAMOST DR2/DR3 (pipeline v2.7.5)"),
                                                 ("C", "LAMOST DR8")])
def test_lamost_data_release(tmp_path, rng, layout, release):
    write_lamost_image(tmp_path / "x.fits", layout, rng)
    assert read_spectrum(tmp_path / "x.fits").meta["data_release"] == release


def test_register_custom_loader(tmp_path, rng):
    """A user format registered with a higher priority wins; unregistering restores."""
    from pyspec.io import SpectrumBatch, register_loader, unregister_loader

    path = tmp_path / "x.fits"
    write_lamost_image(path, "C", rng)

    def identify(view):
        return view[0].header.get("OBSID") == 101005

    def load(view):
        wl = np.array([5000.0, 5001.0])
        meta = [{"id": "custom", "file": view.name, "layout": "mine"}]
        return SpectrumBatch(wl, np.ones((1, 2), np.float32), np.ones((1, 2), np.float32),
                             np.zeros((1, 2), bool), ["custom"], meta)

    register_loader("mine", identify, load, priority=1000)
    try:
        s = read_spectrum(path)
        assert s.meta["id"] == "custom"
        assert s.meta["format"] == "mine"
    finally:
        unregister_loader("mine")
    assert read_spectrum(path).meta["layout"] == "lamost-C"
    with pytest.raises(KeyError, match="mine"):
        unregister_loader("mine")


def test_fast_equals_astropy_on_every_synthetic_layout(tmp_path, rng):
    paths = [tmp_path / "a.fits", tmp_path / "b.fits.gz", tmp_path / "c.fits",
             tmp_path / "d.fits.gz", tmp_path / "spec.fits", tmp_path / "spSpec.fit",
             tmp_path / "coadd.fits", tmp_path / "table.fits"]
    write_lamost_image(paths[0], "A", rng)
    write_lamost_image(paths[1], "B", rng)
    write_lamost_image(paths[2], "C", rng)
    write_lamost_table(paths[3], rng)
    write_sdss_spec(paths[4], rng)
    write_sdss_spspec(paths[5], rng)
    write_desi_coadd(paths[6], rng)
    write_table_1d(paths[7], rng)
    from pyspec.io import _dispatch
    from pyspec.io._view import raw_view, read_bytes

    for path in paths:
        _assert_same(_dispatch(raw_view(*read_bytes(path))), read_batch(path, fast=False))


def test_read_spectra_one_path_or_directory(tmp_path, rng):
    write_lamost_image(tmp_path / "a.fits", "C", rng)
    (tmp_path / "sub").mkdir()
    write_lamost_table(tmp_path / "sub" / "b.fits.gz", rng)
    assert len(read_spectra(tmp_path / "a.fits")) == 1
    result = read_spectra(str(tmp_path))
    assert len(result) == 2
    assert result.rejects == []
