"""Data shipped with pyspec: a small real LAMOST sample (see sample/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


def sample_files() -> list[Path]:
    """Paths of the shipped real spectra, sorted by name."""
    return sorted(SAMPLE_DIR.glob("*.fits.gz"))


def sample_index_path() -> Path:
    """CSV describing each shipped file (class, subclass, z, S/N, pixels, range)."""
    return SAMPLE_DIR / "sample_index.csv"
