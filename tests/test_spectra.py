"""The spectrum base layer: one air/vacuum conversion, one masked running median,
one input adapter (pyspec.spectra)."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.spectra import (
    ArraySpectrum,
    Spectrum,
    SpectrumBatch,
    air_to_vacuum,
    as_spectra,
    running_median,
    to_rest_frame,
    vacuum_to_air,
)

# (air, vacuum) Angstrom of strong nebular lines as commonly tabulated, rounded to
# 0.01 A (vacuum: the SDSS line list, as in pyspec.lines.REST_LINES)
PUBLISHED = [(4861.33, 4862.68), (5006.84, 5008.24), (6300.30, 6302.05), (6562.80, 6564.61),
             (6583.45, 6585.27), (6716.44, 6718.29), (6730.82, 6732.67)]


@pytest.mark.parametrize(("air", "vac"), PUBLISHED)
def test_air_vacuum_match_published_wavelengths(air, vac) -> None:
    assert abs(float(air_to_vacuum(air)) - vac) < 0.01
    assert abs(float(vacuum_to_air(vac)) - air) < 0.01


def test_air_vacuum_round_trip_and_the_2000_angstrom_convention() -> None:
    w = np.linspace(2000.0, 11000.0, 9001)
    np.testing.assert_allclose(vacuum_to_air(air_to_vacuum(w)), w, rtol=0, atol=1e-8)
    # the shift grows with wavelength: ~0.55 A at 2000 A, ~2.7 A at 9000 A
    shift = air_to_vacuum(w) - w
    assert np.all(np.diff(shift) > 0)
    assert 0.5 < shift[0] < 0.7
    below = np.array([1215.67, 1549.48, 1999.99])
    np.testing.assert_array_equal(air_to_vacuum(below), below)
    np.testing.assert_array_equal(vacuum_to_air(below), below)


def test_one_implementation_behind_every_public_name() -> None:
    import pyspec.lines
    import pyspec.preprocess

    for mod in (pyspec.preprocess, pyspec.lines):
        assert mod.air_to_vacuum is air_to_vacuum
        assert mod.vacuum_to_air is vacuum_to_air
    assert pyspec.preprocess.to_rest_frame is to_rest_frame
    from pyspec.lines import _kernels
    from pyspec.spectra.continuum import running_median_kernel

    assert _kernels.median_continuum is running_median_kernel


def test_running_median_is_the_masked_median_of_the_window() -> None:
    rng = np.random.default_rng(2)
    w = np.geomspace(3800.0, 9000.0, 700)
    f = rng.normal(1.0, 0.2, (3, w.size))
    good = rng.random((3, w.size)) > 0.3
    good[1, 200:320] = False  # a gap wider than the window
    f[2, 50] = np.nan  # not finite: never used even when "good"
    got = running_median(f, w, 40.0, good)
    for r in range(3):
        use = good[r] & np.isfinite(f[r])
        for i in range(0, w.size, 7):
            sel = use & (np.abs(w - w[i]) <= 20.0)
            want = np.median(f[r, sel]) if sel.any() else np.nan
            np.testing.assert_equal(got[r, i], want)
    assert np.isnan(got[1, 260])
    np.testing.assert_array_equal(running_median(f[0], w, 40.0, good[0]), got[0])


def _spectrum(n: int = 50, i: int = 0) -> Spectrum:
    w = np.linspace(4000.0, 5000.0, n)
    return Spectrum(w, np.full(n, 1.0 + i, np.float32), np.ones(n, np.float32),
                    np.zeros(n, bool), {"id": f"s{i}"})


def test_adapter_accepts_every_documented_form() -> None:
    s = _spectrum()
    one = as_spectra(s)
    assert one.single
    assert one.spectra == [s]
    assert one.names == ["s0"]
    w = s.wavelength
    triple = as_spectra((w, s.flux, s.ivar))
    assert triple.single
    assert isinstance(triple.spectra[0], ArraySpectrum)
    batch = as_spectra((w, np.ones((3, w.size)), np.ones((3, w.size))))
    assert not batch.single
    assert len(batch.spectra) == 3
    sb = SpectrumBatch(w, np.ones((2, w.size), np.float32), np.ones((2, w.size), np.float32),
                       np.zeros((2, w.size), bool), ["a", "b"], [{"id": "a"}, {"id": "b"}])
    got = as_spectra(sb)
    assert got.names == ["a", "b"]
    assert [x.meta["id"] for x in got.spectra] == ["a", "b"]
    rows = as_spectra(np.array([[1.0, np.nan, 2.0]]), grid=np.array([1.0, 2.0, 3.0]))
    assert rows.spectra[0].mask.tolist() == [False, True, False]
    assert rows.spectra[0].ivar.tolist() == [1.0, 0.0, 1.0]
    mixed = as_spectra([s, (w, s.flux, s.ivar), "nope"], strict=False)
    assert mixed.spectra[2] is None
    assert mixed.errors == [None, None, "not a spectrum: str"]


def test_adapter_errors_are_typed_and_name_the_problem() -> None:
    with pytest.raises(TypeError, match="expected a Spectrum"):
        as_spectra(42)
    with pytest.raises(TypeError, match="an item of the list is a str"):
        as_spectra([_spectrum(), "nope"])
    w = np.linspace(4000.0, 5000.0, 10)
    with pytest.raises(ValueError, match="shared wavelength grid has 10 pixels"):
        as_spectra((w, np.ones((2, 11)), np.ones((2, 11))))
    with pytest.raises(ValueError, match="array queries must be flux on the engine's grid"):
        as_spectra(np.ones((2, 4)), grid=np.arange(1.0, 4.0))


@pytest.mark.parametrize("module", ["pyspec.spectra.wavelength", "pyspec.spectra.continuum"])
def test_docstring_examples_run(module) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
