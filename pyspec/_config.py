"""Build and run-time configuration: ``show_config`` and SIMD-level control."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pyspec import _core

SIMD_LEVELS = ("scalar", "avx2", "avx512")


def available_simd_levels() -> list[str]:
    """SIMD levels this build and CPU can run, lowest first."""
    best = min(
        SIMD_LEVELS.index(_core.compiled_simd_level()),
        SIMD_LEVELS.index(_core.detected_simd_level()),
    )
    return list(SIMD_LEVELS[: best + 1])


def config() -> dict[str, object]:
    """Build and run-time settings as a dict (what :func:`show_config` prints)."""
    from pyspec import __version__

    return {
        "version": __version__,
        "compiler": _core.compiler,
        "simd_compiled": _core.compiled_simd_level(),
        "simd_detected": _core.detected_simd_level(),
        "simd_selected": _core.selected_simd_level(),
        "simd_hamming": _core.hamming_simd_level(),
        "pq_scan": "gather" if _core.pq_scan_variant() == 1 else "interleaved",
        "simd_env_cap": os.environ.get("PYSPEC_SIMD", ""),
        "openmp": bool(_core.openmp),
        "threads": _core.max_threads(),
        "linalg_backend": _core.linalg_backend(),
    }


def show_config() -> str:
    """Print and return version, SIMD levels, OpenMP status and thread count."""
    cfg = config()
    lines = [
        f"pyspec {cfg['version']}",
        f"  compiler:       {cfg['compiler']}",
        f"  SIMD compiled:  {cfg['simd_compiled']}",
        f"  SIMD detected:  {cfg['simd_detected']}",
        f"  SIMD selected:  {cfg['simd_selected']}"
        + (f" (capped by PYSPEC_SIMD={cfg['simd_env_cap']})" if cfg["simd_env_cap"] else ""),
        f"  SIMD Hamming:   {cfg['simd_hamming']}",
        f"  PQ scan:        {cfg['pq_scan']}",
        f"  OpenMP:         {'on' if cfg['openmp'] else 'off (serial build)'}",
        f"  threads:        {cfg['threads']}",
        f"  linalg backend: {cfg['linalg_backend']}",
    ]
    text = "\n".join(lines)
    print(text)
    return text


@contextlib.contextmanager
def simd_level(level: str) -> Iterator[None]:
    """Run kernels at ``level`` inside the block (for tests and comparisons)."""
    if level not in SIMD_LEVELS:
        raise ValueError(f"unknown SIMD level {level!r}; expected one of {SIMD_LEVELS}")
    previous = _core.selected_simd_level()
    _core.set_simd_level(level)
    try:
        yield
    finally:
        _core.set_simd_level(previous)
