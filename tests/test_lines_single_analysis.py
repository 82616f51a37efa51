"""best_redshift and line_fluxes(z=None) analyse each spectrum once, with the same results
as the earlier two-pass code (which the references below repeat)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lines_data import SimpleSpectrum, gaussian_lines, load_sample

import pyspec.measure.lines._core as core
import pyspec.measure.lines._fluxes as fluxes
from pyspec.measure.lines import best_redshift, line_fluxes
from pyspec.measure.lines._input import as_prepared
from pyspec.measure.lines.auto import _analysed, combine

_REST = {"Hb": 4862.68, "OIII_4959": 4960.30, "OIII_5007": 5008.24, "Ha": 6564.61,
         "NII_6583": 6585.27}


def _with_lines(s: SimpleSpectrum, z: float, names: tuple[str, ...]) -> SimpleSpectrum:
    level = float(np.nanmedian(s.flux))
    strength = {n: (20.0 if n == "OIII_4959" else 60.0) * level for n in names}  # 1:2.98
    add = gaussian_lines(s.wavelength, z, strength, 120.0, _REST)
    return SimpleSpectrum(s.wavelength, s.flux + add, s.ivar, s.mask, dict(s.meta))


@pytest.fixture(scope="module")
def spectra():
    """Stars as they are (CL fails), with four lines (CL succeeds) and with the [O III]
    doublet alone (CL fails, the doublet search decides)."""
    stars = load_sample("STAR", limit=4)
    return [*stars[:2], _with_lines(stars[2], 0.05, tuple(_REST)),
            _with_lines(stars[3], 0.12, ("OIII_4959", "OIII_5007"))]


def _count_analyses(monkeypatch) -> list[int]:
    calls = [0]
    real = core._analyse

    def counted(item, window):
        calls[0] += 1
        return real(item, window)

    monkeypatch.setattr(core, "_analyse", counted)
    monkeypatch.setattr(fluxes, "_analyse", counted)
    return calls


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def test_best_redshift_analyses_once_and_answers_as_before(spectra, monkeypatch) -> None:
    items, _ = as_prepared(spectra)
    reference = []
    for it, cl in zip(items, core.redshift(spectra), strict=True):  # the two-pass code
        reference.append(combine(cl, it, False, (-0.01, 1.5), 0.001,
                                 None if cl.ok else _analysed(it), 2.0))
    assert [r.method for r in reference][2:] == ["CL", "OIII-doublet"]  # both paths run
    calls = _count_analyses(monkeypatch)
    got = best_redshift(spectra, templates=False)
    assert calls[0] == len(spectra)
    for g, r in zip(got, reference, strict=True):
        assert g == r or all(_same(x, y) for x, y in zip(vars(g).values(), vars(r).values(),
                                                             strict=True))


def test_line_fluxes_without_z_analyse_once_and_answer_as_before(spectra, monkeypatch) -> None:
    items, _ = as_prepared(spectra)
    zs = []
    for it in items:  # the two-pass code: a redshift search, then a fresh analysis
        a = core._analyse(it, 150.0)
        core._detect(a, 0.9, 3.0, 2, 2, 40)
        r = core._redshift_one(a, 0.001, 3, (-0.01, 1.5))
        zs.append(r.z if r.ok else fluxes.header_z(it.meta))
    reference = line_fluxes(spectra, np.array(zs))
    calls = _count_analyses(monkeypatch)
    got = line_fluxes(spectra)
    assert calls[0] == len(spectra)
    assert got.colnames == reference.colnames
    for name in got.colnames:
        if got[name].dtype.kind == "f":
            np.testing.assert_array_equal(got[name], reference[name], err_msg=name)
        else:
            assert got[name].tolist() == reference[name].tolist(), name
