"""Figures: PNG files are written, inputs are checked."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec.plotting import plot_neighbours, plot_precision_recall

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_neighbours(tmp_path, rng) -> None:
    wave = np.linspace(3700, 9100, 500)
    q = np.sin(wave / 300) + 2
    nb = q + 0.1 * rng.normal(size=(4, 500))
    nb[1, 10:20] = np.nan  # masked pixels are allowed
    out = plot_neighbours(tmp_path / "n.png", wave, q, nb, [f"n{i}" for i in range(4)],
                          query_label="query", title="t")
    assert out.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="labels"):
        plot_neighbours(tmp_path / "x.png", wave, q, nb, ["a"])
    with pytest.raises(ValueError, match="wavelength"):
        plot_neighbours(tmp_path / "x.png", wave[:10], q, nb, ["a"] * 4)


def test_plot_precision_recall(tmp_path) -> None:
    r = np.linspace(0, 1, 20)
    out = plot_precision_recall(tmp_path / "pr.png", {"PIL 256": (r, 1 - 0.5 * r),
                                                      "LSH 256": (r, 1 - 0.8 * r)})
    assert out.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="equal length"):
        plot_precision_recall(tmp_path / "x.png", {"bad": (r, r[:3])})
