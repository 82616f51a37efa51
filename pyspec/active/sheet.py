"""A batch for a human oracle: a table to fill in and a PNG sheet of the spectra."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_batch", "plot_sheet"]


def plot_sheet(path: str | os.PathLike, wavelength: np.ndarray, flux: np.ndarray,
               titles: Sequence[str], n_columns: int = 5) -> Path:
    """One small panel per spectrum (id and model guess in the title), PNG."""
    from pyspec.plotting import _figure

    n = len(titles)
    rows = max(1, -(-n // n_columns))
    fig = _figure(2.6 * n_columns, 1.7 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, n_columns, i + 1)
        ax.plot(wavelength, flux[i], lw=0.7, color="k")
        ax.set_title(titles[i], fontsize=6)
        ax.tick_params(labelsize=5)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path


def write_batch(stem: str | os.PathLike, ids: Sequence[str], purpose: Sequence[str],
                predicted: Sequence[str], p_target: np.ndarray, wavelength: np.ndarray,
                flux: np.ndarray) -> tuple[Path, Path]:
    """``stem.csv`` (id, purpose, predicted, p_target, label = empty) and ``stem.png``."""
    from astropy.table import Table

    stem = Path(stem)
    t = Table({"id": np.asarray(ids, dtype=str), "purpose": np.asarray(purpose, dtype=str),
               "predicted": np.asarray(predicted, dtype=str),
               "p_target": np.round(np.asarray(p_target, dtype=np.float64), 4),
               "label": np.full(len(ids), "", dtype="U32")})
    csv_path = stem.with_suffix(".csv")
    t.write(csv_path, format="ascii.csv", overwrite=True)
    titles = [f"{i} ({pu}, guess {pr})" for i, pu, pr in zip(ids, purpose, predicted,
                                                               strict=True)]
    png = plot_sheet(stem.with_suffix(".png"), wavelength, flux, titles)
    return csv_path, png
