"""A batch for a human oracle: a table to fill in and a PNG sheet of the spectra."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["write_batch", "plot_sheet"]


def plot_sheet(path: str | os.PathLike, wavelength: np.ndarray, flux: np.ndarray,
               titles: Sequence[str], per_column: int = 20) -> Path:
    """The spectra stacked with offsets, each labelled (id, purpose, model guess); PNG.

    One axes per column of ``per_column`` spectra: a few axes draw in a
    fraction of the time of one panel per spectrum.
    """
    from pyspec.plotting import _figure, _scaled

    n = len(titles)
    n_cols = max(1, -(-n // per_column))
    fig = _figure(4.2 * n_cols, 0.45 * min(n, per_column) + 0.8)
    wl = np.asarray(wavelength, dtype=np.float64)
    for c in range(n_cols):
        ax = fig.add_subplot(1, n_cols, c + 1)
        for j, i in enumerate(range(c * per_column, min(n, (c + 1) * per_column))):
            ax.plot(wl, _scaled(flux[i]) * 0.8 - j, lw=0.6, color="k")
            ax.text(wl[0], -j + 0.82, titles[i], fontsize=5, va="bottom")
        ax.set_yticks([])
        ax.set_xlabel("wavelength (A)", fontsize=6)
        ax.tick_params(labelsize=5)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.98, bottom=0.3 / fig.get_figheight() + 0.05)
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
