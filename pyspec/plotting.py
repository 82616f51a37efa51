"""Figures: the papers' top-k neighbour plot and precision-recall curves (matplotlib, Agg).

Nothing here opens a window: figures are drawn on the Agg canvas and saved
as PNG (or any format matplotlib knows from the suffix).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_neighbours", "plot_precision_recall"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _scaled(flux: np.ndarray) -> np.ndarray:
    """Flux scaled to [0, 1] (robust 1-99 percentile range) for stacking."""
    f = np.asarray(flux, np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        return np.zeros_like(f)
    lo, hi = np.percentile(f[finite], [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((np.where(finite, f, np.nan) - lo) / (hi - lo), -0.2, 1.2)


def plot_neighbours(path: str | os.PathLike, wavelength: np.ndarray, query_flux: np.ndarray,
                    neighbour_flux: np.ndarray, labels: Sequence[str], *,
                    query_label: str = "query", title: str | None = None,
                    spacing: float = 1.0) -> Path:
    """Draw the query (red, top) and its neighbours offset below it in order of distance.

    Parameters
    ----------
    path : path-like
        Output image (PNG by suffix).
    wavelength : ndarray of shape (n_pixels,), float64, Angstrom
    query_flux : ndarray of shape (n_pixels,)
    neighbour_flux : ndarray of shape (k, n_pixels)
        Neighbours in order of distance (nearest first).
    labels : sequence of k str
        Text beside each neighbour (id, class, distance).
    query_label : str
        Text beside the query.
    spacing : float
        Vertical offset between spectra, in units of one scaled spectrum.

    Returns
    -------
    pathlib.Path
    """
    wavelength = np.asarray(wavelength, np.float64)
    neighbour_flux = np.atleast_2d(np.asarray(neighbour_flux))
    k = neighbour_flux.shape[0] if neighbour_flux.size else 0
    if len(labels) != k:
        raise ValueError(f"got {len(labels)} labels for {k} neighbours")
    if np.asarray(query_flux).shape != wavelength.shape or (k and neighbour_flux.shape[1] !=
                                                             wavelength.size):
        raise ValueError("query and neighbour fluxes must have one value per wavelength")
    fig = _figure(10.0, 1.2 + 0.75 * (k + 1))
    ax = fig.add_subplot(1, 1, 1)
    x_text = wavelength[-1] + 0.01 * (wavelength[-1] - wavelength[0])
    ax.plot(wavelength, _scaled(query_flux), color="red", lw=0.8)
    ax.text(x_text, 0.5, query_label, color="red", va="center", fontsize=8)
    for i in range(k):
        offset = -(i + 1) * spacing
        ax.plot(wavelength, _scaled(neighbour_flux[i]) + offset, color="black", lw=0.6)
        ax.text(x_text, offset + 0.5, labels[i], va="center", fontsize=8)
    ax.set_xlabel("wavelength [Angstrom]")
    ax.set_ylabel("scaled flux + offset")
    ax.set_yticks([])
    ax.set_xlim(wavelength[0], wavelength[-1])
    ax.set_ylim(-(k + 0.6) * spacing, 1.5)
    if title:
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.72, top=0.95 if not title else 0.92,
                        bottom=0.6 / (1.2 + 0.75 * (k + 1)) + 0.05)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_precision_recall(path: str | os.PathLike,
                          curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                          title: str | None = None,
                          styles: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Precision-recall curves, one line per method (e.g. hasher and code length).

    Parameters
    ----------
    path : path-like
        Output image.
    curves : mapping label -> (recall, precision)
        Each a 1-D array of equal length in [0, 1] (e.g. at growing cut-offs).
    title : str, optional
    styles : mapping label -> matplotlib line keywords, optional
        E.g. ``{"linestyle": "--", "color": "C1"}`` for one curve.

    Returns
    -------
    pathlib.Path
    """
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for label, (recall, precision) in curves.items():
        recall = np.asarray(recall, np.float64)
        precision = np.asarray(precision, np.float64)
        if recall.shape != precision.shape or recall.ndim != 1:
            raise ValueError(f"curve {label!r}: recall and precision must be 1-D of equal length")
        style = {"marker": ".", "ms": 3, "lw": 1, **(styles or {}).get(label, {})}
        ax.plot(recall, precision, label=str(label), **style)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
