"""Figures: what is drawn (lines, their data, labels), the files written, inputs checked."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from pyspec.plotting import plot_neighbours, plot_precision_recall


def robust_scaled(flux: np.ndarray) -> np.ndarray:
    """The documented stacking scale: 1st percentile -> 0, 99th -> 1 (finite pixels)."""
    lo, hi = np.nanpercentile(flux, [1, 99])
    return (flux - lo) / (hi - lo)


def test_plot_neighbours(tmp_path, rng, saved_figures) -> None:
    wave = np.linspace(3700, 9100, 500)
    q = np.sin(wave / 300) + 2
    nb = q + 0.1 * rng.normal(size=(4, 500))
    nb[1, 10:20] = np.nan  # masked pixels are allowed
    out = plot_neighbours(tmp_path / "n.png", wave, q, nb, [f"n{i}" for i in range(4)],
                          query_label="query", title="t")
    (fig,) = saved_figures
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 5  # the query, then the neighbours nearest first
    for line in lines:
        np.testing.assert_array_equal(line.get_xdata(), wave)
    assert lines[0].get_color() == "red"
    # each spectrum scaled, then offset one spacing below the previous; the
    # scale clips only outliers beyond [-0.2, 1.2]
    for i, (line, flux) in enumerate(zip(lines, [q, *nb], strict=True)):
        y, ref = line.get_ydata() + i, robust_scaled(flux)
        inside = (ref > -0.2) & (ref < 1.2)
        np.testing.assert_allclose(y[inside], ref[inside], atol=1e-12)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(flux))
    assert [t.get_text() for t in ax.texts] == ["query", "n0", "n1", "n2", "n3"]
    assert ax.get_title() == "t"
    assert "wavelength" in ax.get_xlabel()
    assert ax.get_xlim() == (wave[0], wave[-1])
    # the file is the figure: its size follows the figure's inches and dpi
    pixels = np.array(imread(out).shape[:2])
    assert np.all(np.abs(pixels - fig.get_size_inches()[::-1] * 110) < 1)
    with pytest.raises(ValueError, match="labels"):
        plot_neighbours(tmp_path / "x.png", wave, q, nb, ["a"])
    with pytest.raises(ValueError, match="wavelength"):
        plot_neighbours(tmp_path / "x.png", wave[:10], q, nb, ["a"] * 4)


def test_plot_precision_recall(tmp_path, saved_figures) -> None:
    r = np.linspace(0, 1, 20)
    curves = {"PIL 256": (r, 1 - 0.5 * r), "LSH 256": (r, 1 - 0.8 * r)}
    out = plot_precision_recall(tmp_path / "pr.png", curves, title="bits")
    (fig,) = saved_figures
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    for line, (recall, precision) in zip(lines, curves.values(), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), recall)
        np.testing.assert_array_equal(line.get_ydata(), precision)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(curves)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("recall", "precision", "bits")
    assert imread(out).shape[:2] == (495, 660)  # 6 x 4.5 inches at 110 dpi
    with pytest.raises(ValueError, match="equal length"):
        plot_precision_recall(tmp_path / "x.png", {"bad": (r, r[:3])})
