"""Build configuration and SIMD-level control."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pyspec


def test_show_config_reports_levels(capsys):
    text = pyspec.show_config()
    assert "SIMD selected" in text and "OpenMP" in text
    assert capsys.readouterr().out.strip() == text


def test_simd_level_context_restores():
    before = pyspec._config.config()["simd_selected"]
    with pyspec.simd_level("scalar"):
        assert pyspec._config.config()["simd_selected"] == "scalar"
    assert pyspec._config.config()["simd_selected"] == before


def test_unknown_level_rejected():
    with pytest.raises(ValueError, match="unknown SIMD level"):
        with pyspec.simd_level("sse9"):
            pass


@pytest.mark.parametrize("cap", ["scalar", "avx2"])
def test_env_cap(cap, tmp_path):
    # cwd away from the checkout, so the installed package (with _core) is imported
    out = subprocess.run(
        [sys.executable, "-c", "from pyspec import _core; print(_core.selected_simd_level())"],
        env={"PYSPEC_SIMD": cap, "PATH": ""}, cwd=tmp_path, capture_output=True, text=True,
        check=True,
    ).stdout.strip()
    levels = pyspec.available_simd_levels()
    expected = cap if cap in levels else levels[-1]
    assert out == expected
