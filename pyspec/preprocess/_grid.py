"""Wavelength grids: :class:`WavelengthGrid`, its presets, pixel edges."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pyspec.spectra import (  # noqa: F401  (air_to_vacuum, vacuum_to_air: public here too)
    air_to_vacuum,
    as_spectra,
    to_rest_frame,
    vacuum_to_air,
)

# ---------------------------------------------------------------- grids

class WavelengthGrid:
    """A strictly increasing wavelength grid in Angstrom.

    Parameters
    ----------
    wavelength : array-like of shape (n_pixels,)
        Pixel centres in Angstrom, finite, positive, strictly increasing.
    name : str, optional
        Preset or user label, carried into stores and catalogues.

    Examples
    --------
    >>> g = WavelengthGrid.linear(3900, 8900, 2.0)
    >>> len(g), float(g.wavelength[0]), float(g.wavelength[-1])
    (2501, 3900.0, 8900.0)
    >>> WavelengthGrid.from_dict(g.to_dict()) == g
    True
    """

    #: name -> (constructor, arguments); see :meth:`preset`.
    PRESETS: dict[str, tuple[str, tuple[float, ...]]] = {
        # LAMOST LRS coverage on LAMOST's own pixels: log10(w) = COEFF0 + COEFF1 i
        # with COEFF0 = 3.5682, COEFF1 = 1e-4 in every LAMOST LRS header, so the
        # grid starts a whole number of pixels (12) below 3.5682 (3690 A sat
        # 0.74 pixel off and every ingest averaged neighbouring pixels)
        "lamost": ("log_linear", (10.0 ** 3.567, 9100.0, 1e-4)),
        # 3900-8900 A at 1 A and 2 A (the product-quantisation set-ups)
        "pq-1A": ("linear", (3900.0, 8900.0, 1.0)),
        "pq-2A": ("linear", (3900.0, 8900.0, 2.0)),
        # 140 points over 6519-6732 A (the Ondrejov H-alpha data set)
        "halpha-140": ("linspace", (6519.0, 6732.0, 140)),
        # wider H-alpha window at 1 A
        "halpha-wide": ("linear", (6250.0, 6750.0, 1.0)),
    }

    def __init__(self, wavelength: Any, name: str | None = None, *,
                 _spec: dict[str, Any] | None = None) -> None:
        wl = np.array(wavelength, dtype=np.float64)
        if wl.ndim != 1 or wl.size < 2:
            raise ValueError(f"wavelength grid must be 1-D with at least 2 points, got shape "
                             f"{wl.shape}")
        if not np.all(np.isfinite(wl)) or wl[0] <= 0:
            raise ValueError("wavelength grid must be finite and positive (Angstrom)")
        if not np.all(np.diff(wl) > 0):
            raise ValueError("wavelength grid must be strictly increasing")
        wl.setflags(write=False)
        self._wavelength = wl
        self.name = name
        self._edges: np.ndarray | None = None
        self._spec = _spec or {"kind": "explicit", "wavelength": wl.tolist()}

    @property
    def wavelength(self) -> np.ndarray:
        """Pixel centres, float64 (n_pixels,), Angstrom (read-only)."""
        return self._wavelength

    @property
    def kind(self) -> str:
        """"linear", "log-linear", "linspace" or "explicit"."""
        return str(self._spec["kind"])

    def __len__(self) -> int:
        return int(self._wavelength.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WavelengthGrid):
            return NotImplemented
        return len(self) == len(other) and bool(np.array_equal(self._wavelength,
                                                               other._wavelength))

    def __hash__(self) -> int:
        return hash((len(self), float(self._wavelength[0]), float(self._wavelength[-1])))

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (f"WavelengthGrid({label}{self.kind}, {len(self)} pixels, "
                f"{self._wavelength[0]:.2f}-{self._wavelength[-1]:.2f} A)")

    @classmethod
    def linear(cls, start: float, stop: float, step: float,
               name: str | None = None) -> WavelengthGrid:
        """Grid ``start, start+step, ...`` up to ``stop`` (included when on the grid)."""
        start, stop, step = float(start), float(stop), float(step)
        if not (step > 0 and stop > start > 0):
            raise ValueError(f"need 0 < start < stop and step > 0, got {start}, {stop}, {step}")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        wl = start + step * np.arange(n, dtype=np.float64)
        return cls(wl, name, _spec={"kind": "linear", "start": start, "stop": stop,
                                    "step": step})

    @classmethod
    def log_linear(cls, start: float, stop: float, dlog10: float,
                   name: str | None = None) -> WavelengthGrid:
        """Grid with constant step ``dlog10`` in log10(wavelength) from ``start`` to ``stop``."""
        start, stop, dlog10 = float(start), float(stop), float(dlog10)
        if not (dlog10 > 0 and stop > start > 0):
            raise ValueError(f"need 0 < start < stop and dlog10 > 0, got {start}, {stop}, "
                             f"{dlog10}")
        l0 = math.log10(start)
        n = int(math.floor((math.log10(stop) - l0) / dlog10 + 1e-9)) + 1
        wl = 10.0 ** (l0 + dlog10 * np.arange(n, dtype=np.float64))
        return cls(wl, name, _spec={"kind": "log-linear", "start": start, "stop": stop,
                                    "dlog10": dlog10})

    @classmethod
    def linspace(cls, start: float, stop: float, n: int,
                 name: str | None = None) -> WavelengthGrid:
        """``n`` evenly spaced points from ``start`` to ``stop`` inclusive."""
        n = int(n)
        wl = np.linspace(float(start), float(stop), n)
        return cls(wl, name, _spec={"kind": "linspace", "start": float(start),
                                    "stop": float(stop), "n": n})

    @classmethod
    def preset(cls, name: str) -> WavelengthGrid:
        """A named grid: "lamost", "pq-1A", "pq-2A", "halpha-140" or "halpha-wide"."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown grid preset {name!r}; choose from {sorted(cls.PRESETS)}")
        ctor, args = cls.PRESETS[name]
        return getattr(cls, ctor)(*args, name=name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` rebuilds an equal grid."""
        return {**self._spec, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WavelengthGrid:
        d = dict(d)
        kind = d.pop("kind", None)
        name = d.pop("name", None)
        if kind == "linear":
            return cls.linear(d["start"], d["stop"], d["step"], name=name)
        if kind == "log-linear":
            return cls.log_linear(d["start"], d["stop"], d["dlog10"], name=name)
        if kind == "linspace":
            return cls.linspace(d["start"], d["stop"], d["n"], name=name)
        if kind == "explicit":
            return cls(d["wavelength"], name)
        raise ValueError(f"unknown wavelength grid kind {kind!r}")

    def edges(self) -> np.ndarray:
        """Pixel boundaries, float64 (n_pixels + 1,): midpoints, ends mirrored (read-only)."""
        if self._edges is None:  # the grid is immutable: computed once per grid
            self._edges = pixel_edges(self._wavelength)
            self._edges.setflags(write=False)
        return self._edges

    @property
    def dlog10(self) -> float | None:
        """Constant log10 step of a log-linear grid, else None."""
        if self.kind == "log-linear":
            return float(self._spec["dlog10"])
        d = np.diff(np.log10(self._wavelength))
        return float(d.mean()) if np.allclose(d, d.mean(), rtol=1e-6, atol=0) else None


def as_grid(grid: WavelengthGrid | str | dict | Any) -> WavelengthGrid:
    """A WavelengthGrid from a grid, preset name, dict or wavelength array."""
    if isinstance(grid, WavelengthGrid):
        return grid
    if isinstance(grid, str):
        return WavelengthGrid.preset(grid)
    if isinstance(grid, dict):
        return WavelengthGrid.from_dict(grid)
    return WavelengthGrid(grid)


def pixel_edges(wavelength: np.ndarray) -> np.ndarray:
    """Boundaries of pixels centred on ``wavelength`` (midpoints; ends mirrored)."""
    wl = np.asarray(wavelength, dtype=np.float64)
    edges = np.empty(wl.size + 1)
    edges[1:-1] = 0.5 * (wl[1:] + wl[:-1])
    edges[0] = wl[0] - (edges[1] - wl[0])
    edges[-1] = wl[-1] + (wl[-1] - edges[-2])
    return edges
