"""Kernel dispatch settings: PYSPEC_SIMD and PYSPEC_PQ_SCAN are validated
(typed ConfigurationError naming the valid values), the PQ scan variant
follows a static rule with an environment and a run-time override, and the
Hamming family drops to AVX2 where AVX-512 lacks VPOPCNTDQ."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pyspec
from pyspec import _core
from pyspec.errors import ConfigurationError, PyspecError

_PROBE = """
import sys
from pyspec import _core
from pyspec.errors import ConfigurationError
try:
    print({expr})
except ConfigurationError as e:
    print("ConfigurationError:", e)
"""


def run_probe(expr: str, **env: str) -> str:
    """Evaluates `expr` in a fresh interpreter with `env` (cwd away from the
    checkout, so the installed package with _core is imported)."""
    return subprocess.run(
        [sys.executable, "-c", _PROBE.format(expr=expr)], env={"PATH": "", **env},
        cwd="/", capture_output=True, text=True, check=True,
    ).stdout.strip()


@pytest.mark.parametrize("expr", [
    "_core.selected_simd_level()",
    "_core.hamming_distances(__import__('numpy').zeros((1, 1), 'u8'), "
    "__import__('numpy').zeros((2, 1), 'u8'))",
])
def test_invalid_simd_env_is_a_typed_error(expr: str) -> None:
    out = run_probe(expr, PYSPEC_SIMD="avx9000")
    assert out.startswith("ConfigurationError:")
    assert "PYSPEC_SIMD='avx9000'" in out
    assert "scalar, avx2 or avx512" in out


def test_configuration_error_is_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ConfigurationError, PyspecError)


@pytest.mark.skipif(pyspec.available_simd_levels() == ["scalar"], reason="no SIMD level here")
@pytest.mark.parametrize(("env", "expected"), [({}, "0"), ({"PYSPEC_PQ_SCAN": "interleaved"}, "0"),
                                               ({"PYSPEC_PQ_SCAN": "gather"}, "1")])
def test_pq_scan_variant_static_rule_and_env_override(env: dict, expected: str) -> None:
    # Same answer in every process: no timing decides it.
    for _ in range(2):
        assert run_probe("_core.pq_scan_variant()", **env) == expected


def test_invalid_pq_scan_env_is_a_typed_error() -> None:
    out = run_probe("_core.pq_scan_variant()", PYSPEC_PQ_SCAN="fast")
    assert out.startswith("ConfigurationError:")
    assert "'interleaved' or 'gather'" in out


@pytest.mark.skipif(pyspec.available_simd_levels() == ["scalar"], reason="no SIMD level here")
def test_set_scan_variant_overrides_env_until_reset() -> None:
    out = run_probe("[_core.pq_set_scan_variant(0), _core.pq_scan_variant(), "
                    "_core.pq_set_scan_variant(-1), _core.pq_scan_variant()][1::2]",
                    PYSPEC_PQ_SCAN="gather")
    assert out == "[0, 1]"


def test_scan_variant_is_interleaved_at_scalar_level() -> None:
    with pyspec.simd_level("scalar"):
        _core.pq_set_scan_variant(1)
        try:
            assert _core.pq_scan_variant() == 0
        finally:
            _core.pq_set_scan_variant(-1)


@pytest.mark.parametrize("level", pyspec.available_simd_levels())
def test_hamming_level_follows_the_selected_level(level: str) -> None:
    with pyspec.simd_level(level):
        got = _core.hamming_simd_level()
    # AVX-512 Hamming kernels need VPOPCNTDQ; without it the family runs AVX2.
    assert got == level or (level == "avx512" and got == "avx2")


def test_pq_variants_agree_with_reference(rng: np.random.Generator) -> None:
    """The static rule only picks a speed: both variants give the same floats,
    which are the segment-order float32 sums."""
    M, K, n = 6, 40, 300
    tables = rng.random((2, M, K), dtype=np.float32)
    codes = rng.integers(0, K, size=(n, M), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    ref = np.zeros((2, n), np.float32)
    for m in range(M):
        ref += tables[:, m, codes[:, m]]
    want = np.sort(ref, axis=1)[:, :7]
    for variant in (0, 1):
        _core.pq_set_scan_variant(variant)
        try:
            _, dist = _core.pq_search_tables(tables, codes, ids, 7)
        finally:
            _core.pq_set_scan_variant(-1)
        np.testing.assert_array_equal(dist, want)
