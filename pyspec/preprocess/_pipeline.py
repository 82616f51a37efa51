"""The pipeline: :class:`Preprocessor`, its named recipes, :class:`PreparedBatch`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyspec.preprocess._common import (
    CONTINUA,
    METHODS,
    NORMALISATIONS,
)
from pyspec.preprocess._continuum import (
    _cached_blocks,
    _clipped_median,
    _divide_clip_mask,
    _fill_masked,
    _good_pixels,
    continuum_median,
    continuum_poly,
    normalise,
    wavelength_mask,
)
from pyspec.preprocess._grid import WavelengthGrid, as_grid
from pyspec.preprocess._resample import Resampled, degrade_resolution, kernel_sigma, resample
from pyspec.spectra import (  # noqa: F401  (air_to_vacuum, vacuum_to_air: public here too)
    air_to_vacuum,
    as_spectra,
    to_rest_frame,
    vacuum_to_air,
)

# ---------------------------------------------------------------- the pipeline

@dataclasses.dataclass
class PreparedBatch:
    """Spectra prepared by :meth:`Preprocessor.apply`.

    Attributes
    ----------
    flux, ivar : ndarray of shape (n_spectra, n_pixels), float32
        Rows where ``ok`` is False are zero.
    ok : ndarray of shape (n_spectra,), bool
    reasons : list of (str or None)
        Why each rejected spectrum was rejected (None when ok).
    n_interpolated : ndarray of shape (n_spectra,), int32
        Grid pixels filled from masked input pixels.
    coverage : ndarray of shape (n_spectra,), float32
        Fraction of the grid the spectrum covers.
    """

    flux: np.ndarray
    ivar: np.ndarray
    ok: np.ndarray
    reasons: list[str | None]
    n_interpolated: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return int(self.flux.shape[0])


#: Named preprocessing recipes (:meth:`Preprocessor.preset`).
#:
#: "similarity" (the default of ``pyspec ingest``) is chosen for nearest-
#: neighbour search by measurements on the real LAMOST corpus (bench/RESULTS.md,
#: issue 14): dividing by a robust continuum removes what flux calibration,
#: extinction and fibre throughput change between epochs of one star (the
#: continuum shape, which dominated L2 distances), keeping the lines; the
#: detector ends below 4000 A and above 8800 A (low throughput, sky residuals;
#: 16% of the pixels but most of the distance between two epochs) and strong
#: sky/telluric features are flattened; values are clipped to [0, 2] so a
#: cosmic ray cannot dominate a distance. Its 500 A window spans the broadest
#: stellar features (Balmer wings, TiO bands) so the continuum does not follow them.
#: The published set-ups stay available: "minmax" (seed 000, ML-PIL on M
#: stars), "l2" (pyspec's former default), "sumsq" (seed 004, f / sum f^2 on
#: 3900-8900 A at 2 A), "halpha" (seeds 002/003, 140 points over 6519-6732 A,
#: min-max to [-1, 1]).
PREPROCESSING_PRESETS: dict[str, dict[str, Any]] = {
    "similarity": {"grid": "lamost", "normalise": "none", "continuum": "median-clipped",
                   "continuum_window": 500.0, "wavelength_range": (4000.0, 8800.0),
                   "mask_sky": True, "clip": (0.0, 2.0)},
    "minmax": {"grid": "lamost", "normalise": "minmax"},
    "l2": {"grid": "lamost", "normalise": "l2"},
    "sumsq": {"grid": "pq-2A", "normalise": "sumsq"},
    "halpha": {"grid": "halpha-140", "normalise": "minmax-sym"},
}
DEFAULT_PREPROCESSING = "similarity"


class Preprocessor:
    """Fixed preprocessing recipe: spectra of any layout -> rows on one grid.

    Steps, in order: air -> vacuum (``to_vacuum`` and the spectrum's
    ``meta["vacuum"]`` is False), rest frame (``rest_frame``, uses
    ``meta["z"]``), resampling (``method``), Gaussian degradation
    (``degrade``), continuum division (``continuum``), normalisation.

    Parameters
    ----------
    grid : WavelengthGrid, preset name or dict
    normalise : "l2", "minmax", "minmax-sym", "sumsq" or "none"
    continuum : None, "median" or "poly"
    continuum_window : float
        Running-median window in Angstrom.
    continuum_degree : int
        Chebyshev degree for ``"poly"``.
    method : "rebin" or "interp"
    rest_frame : bool
    to_vacuum : bool
        Convert air-wavelength spectra to vacuum before resampling.
    degrade : dict, optional
        Keyword arguments for :func:`degrade_resolution` (sigma_pix,
        fwhm_pix or resolving_power [+ current_resolving_power]).
    min_coverage : float
        Reject spectra covering less than this fraction of the grid.
    max_masked_fraction : float
        Reject spectra where more than this fraction of the covered grid is
        interpolated over masked pixels.
    wavelength_range : (float, float), optional
        Use only grid pixels in this range (Angstrom); the others are
        flattened (see :meth:`_clip_and_mask`).
    mask_sky : bool
        Flatten the :data:`SKY_LINES` features too.
    clip : (float, float), optional
        Clip values to this range after the continuum division.
    name : str, optional
        Preset name, recorded with the settings.

    Examples
    --------
    >>> p = Preprocessor("pq-2A", normalise="l2")
    >>> Preprocessor.from_dict(p.to_dict()).to_dict() == p.to_dict()
    True
    """

    def __init__(self, grid: WavelengthGrid | str | dict = "lamost", normalise: str = "l2",
                 continuum: str | None = None, *, continuum_window: float = 150.0,
                 continuum_degree: int = 3, method: str = "rebin", rest_frame: bool = False,
                 to_vacuum: bool = True, degrade: dict[str, float] | None = None,
                 min_coverage: float = 0.8, max_masked_fraction: float = 0.6,
                 wavelength_range: Sequence[float] | None = None, mask_sky: bool = False,
                 clip: Sequence[float] | None = None, name: str | None = None) -> None:
        self.grid = as_grid(grid)
        self.name = None if name is None else str(name)
        if wavelength_range is not None:
            lo, hi = (float(v) for v in wavelength_range)
            if not hi > lo:
                raise ValueError(f"wavelength_range must be (low, high) with low < high, got "
                                 f"{wavelength_range!r}")
            wavelength_range = (lo, hi)
        if clip is not None:
            lo, hi = (float(v) for v in clip)
            if not hi > lo:
                raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")
            clip = (lo, hi)
        self.wavelength_range = wavelength_range
        self.mask_sky = bool(mask_sky)
        self.clip = clip
        self._masked = wavelength_mask(self.grid.wavelength, wavelength_range, self.mask_sky)
        self._sky = wavelength_mask(self.grid.wavelength, None, self.mask_sky)
        self._blocks: tuple[int, int, np.ndarray, np.ndarray] | None = None
        if self._masked.all():
            raise ValueError(f"wavelength_range {wavelength_range} leaves no pixel of the grid")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
        if continuum not in CONTINUA:
            raise ValueError(f"continuum must be one of {CONTINUA}, got {continuum!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        for label, v in (("min_coverage", min_coverage),
                         ("max_masked_fraction", max_masked_fraction)):
            if not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {v!r}")
        if not float(continuum_window) > 0:
            raise ValueError(f"continuum_window must be > 0 Angstrom, got {continuum_window}")
        self.normalise = normalise
        self.continuum = continuum
        self.continuum_window = float(continuum_window)
        self.continuum_degree = int(continuum_degree)
        self.method = method
        self.rest_frame = bool(rest_frame)
        self.to_vacuum = bool(to_vacuum)
        self.degrade = None if degrade is None else {k: float(v) for k, v in degrade.items()}
        if self.degrade is not None:
            kernel_sigma(dlog10=self.grid.dlog10, **self.degrade)  # validate now
        self.min_coverage = float(min_coverage)
        self.max_masked_fraction = float(max_masked_fraction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (including the grid)."""
        return {"version": 1, "grid": self.grid.to_dict(), "normalise": self.normalise,
                "continuum": self.continuum, "continuum_window": self.continuum_window,
                "continuum_degree": self.continuum_degree, "method": self.method,
                "rest_frame": self.rest_frame, "to_vacuum": self.to_vacuum,
                "degrade": self.degrade, "min_coverage": self.min_coverage,
                "max_masked_fraction": self.max_masked_fraction,
                "wavelength_range": None if self.wavelength_range is None else
                list(self.wavelength_range),
                "mask_sky": self.mask_sky,
                "clip": None if self.clip is None else list(self.clip), "name": self.name}

    @classmethod
    def preset(cls, name: str) -> Preprocessor:
        """A named recipe from :data:`PREPROCESSING_PRESETS` ("similarity" is the default)."""
        if name not in PREPROCESSING_PRESETS:
            raise ValueError(f"unknown preprocessing preset {name!r}; choose from "
                             f"{sorted(PREPROCESSING_PRESETS)}")
        return cls(**PREPROCESSING_PRESETS[name], name=name)

    def same_as(self, other: Preprocessor | dict[str, Any] | None) -> bool:
        """True when ``other`` prepares spectra exactly like this recipe (the name aside)."""
        if other is None:
            return False
        if isinstance(other, dict):
            other = Preprocessor.from_dict(other)
        a, b = self.to_dict(), other.to_dict()
        a.pop("name"), b.pop("name")
        return a == b

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        d = dict(d)
        version = d.pop("version", 1)
        if version != 1:
            raise ValueError(f"unsupported preprocessing version {version}")
        grid = d.pop("grid")
        return cls(grid, **d)

    def __repr__(self) -> str:
        if self.name:
            return f"Preprocessor.preset({self.name!r})"
        return (f"Preprocessor({self.grid!r}, normalise={self.normalise!r}, "
                f"continuum={self.continuum!r}, method={self.method!r})")

    @property
    def n_pixels(self) -> int:
        return len(self.grid)

    def apply(self, spectra: Any) -> PreparedBatch:
        """Prepare spectra for the archive or for a query.

        Parameters
        ----------
        spectra : Spectrum, SpectrumBatch, ReadResult or sequence of Spectrum

        Returns
        -------
        PreparedBatch
            float32 rows on :attr:`grid`; rejected spectra have ``ok`` False
            and a reason.
        """
        items = _as_spectra(spectra)
        n, m = len(items), len(self.grid)
        flux = np.zeros((n, m), dtype=np.float64)
        ivar = np.zeros((n, m), dtype=np.float64)
        ok = np.zeros(n, dtype=bool)
        reasons: list[str | None] = [None] * n
        n_interp = np.zeros(n, dtype=np.int32)
        coverage = np.zeros(n, dtype=np.float32)
        g = self.grid.wavelength
        for i, s in enumerate(items):
            try:
                r = self._resample_one(s)
            except (ValueError, ArithmeticError) as exc:
                reasons[i] = str(exc)
                continue
            coverage[i] = r.coverage
            n_interp[i] = r.n_interpolated
            if r.coverage < self.min_coverage:
                lo, hi = r.good_range
                reasons[i] = (f"covers {100 * r.coverage:.0f}% of the grid "
                              f"{g[0]:.0f}-{g[-1]:.0f} A (good pixels span {lo:.0f}-{hi:.0f} A)"
                              f"; need {100 * self.min_coverage:.0f}%")
                continue
            n_cov = int(r.covered.sum())
            if n_cov and r.n_interpolated / n_cov > self.max_masked_fraction:
                reasons[i] = (f"{100 * r.n_interpolated / n_cov:.0f}% of the covered grid is "
                              f"interpolated over masked pixels; limit "
                              f"{100 * self.max_masked_fraction:.0f}%")
                continue
            flux[i], ivar[i], ok[i] = r.flux, r.ivar, True
        sel = np.flatnonzero(ok)
        if sel.size:
            f, iv, good, why = self._finish(flux[sel], ivar[sel])
            flux[sel], ivar[sel] = f, iv
            for j in np.flatnonzero(~good):
                ok[sel[j]] = False
                reasons[sel[j]] = why[j]
        flux[~ok] = 0.0
        ivar[~ok] = 0.0
        return PreparedBatch(flux.astype(np.float32), ivar.astype(np.float32), ok, reasons,
                             n_interp, coverage)

    def _finish(self, f: np.ndarray, iv: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
        """Steps after resampling (degrade, continuum, clip and mask, normalise) on rows
        of the grid; returns (flux, ivar, ok, reasons)."""
        ok = np.ones(f.shape[0], bool)
        reasons: list[str | None] = [None] * f.shape[0]
        if self.degrade is not None:
            f = degrade_resolution(f, dlog10=self.grid.dlog10, **self.degrade)
        if self.continuum is not None:
            cont = self._continuum_of(f, iv)
            f, iv, frac_weak = _divide_clip_mask(f, iv, cont, self._masked, self.clip)
            for j in np.flatnonzero(frac_weak > 0.05):
                ok[j] = False
                reasons[j] = (f"continuum is not positive on {100 * frac_weak[j]:.0f}% "
                                   "of the grid (limit 5%)")
        else:
            f, iv = self._clip_and_mask(f, iv)
        if self.normalise == "none" and self.continuum is not None:
            good_norm = np.ones(f.shape[0], bool)  # the continuum step made new arrays already
        else:
            f, iv, good_norm = normalise(f, self.normalise, iv)
        for j in np.flatnonzero(~good_norm & ok):
            ok[j] = False
            reasons[j] = f"cannot normalise ({self.normalise}): constant or zero flux"
        finite = np.all(np.isfinite(f), axis=1) & np.all(np.isfinite(iv), axis=1)
        for j in np.flatnonzero(~finite & ok):
            ok[j] = False
            reasons[j] = "non-finite values after preprocessing"
        return f, iv, ok, reasons

    def _continuum_of(self, f: np.ndarray, iv: np.ndarray) -> np.ndarray:
        g = self.grid.wavelength
        if self.continuum == "median":
            # masked pixels (ivar 0: interpolated over, or outside the spectrum's range)
            # stay out of the median; where a whole window is masked the continuum is
            # carried over from the nearest estimates, as resampling does for the flux
            cont = continuum_median(f, g, self.continuum_window, good=_good_pixels(f, iv, None))
            for row, known in zip(cont, np.isfinite(cont), strict=True):
                if known.any() and not known.all():
                    row[~known] = np.interp(g[~known], g[known], row[known])
            return cont
        if self.continuum == "median-clipped":
            # sky lines stay out of the estimate; the trimmed ends stay in, so
            # the continuum near the range limits is not extrapolated
            if self._blocks is None:  # depends on the grid only: the process-wide cache,
                # so the short-lived Preprocessor of each ingest task does not rebuild it
                self._blocks = _cached_blocks(g.tobytes(), float(self.continuum_window))
            return _clipped_median(f, _good_pixels(f, iv, self._sky), self._blocks, 3, 2.0)
        return continuum_poly(f, g, iv, degree=self.continuum_degree)

    def apply_on_grid(self, flux: Any, ivar: Any) -> PreparedBatch:
        """Prepare spectra that are already on :attr:`grid` (e.g. simulated ones).

        Pixels with ``ivar <= 0`` or non-finite values are bridged by linear
        interpolation (as :func:`resample` does), then the steps after
        resampling run exactly as in :meth:`apply`.
        """
        f = np.array(flux, dtype=np.float64, ndmin=2)
        iv = np.array(ivar, dtype=np.float64, ndmin=2)
        if f.shape != iv.shape or f.shape[1] != len(self.grid):
            raise ValueError(f"flux {f.shape} and ivar {iv.shape} must be (n, {len(self.grid)})")
        g = self.grid.wavelength
        bad = ~np.isfinite(f) | ~np.isfinite(iv) | ~(iv > 0)
        iv = np.where(bad, 0.0, iv)
        n_interp = bad.sum(axis=1).astype(np.int32)
        usable = ~bad.all(axis=1)
        for i in np.flatnonzero(bad.any(axis=1) & usable):
            f[i] = _fill_masked(f[i], ~bad[i], g)
        f[~usable] = 0.0
        f, iv, ok, reasons = self._finish(f, iv)
        for i in np.flatnonzero(~usable):
            ok[i], reasons[i] = False, "no good pixels (all masked, non-finite or ivar <= 0)"
        f[~ok], iv[~ok] = 0.0, 0.0
        return PreparedBatch(f.astype(np.float32), iv.astype(np.float32), ok, reasons, n_interp,
                             (~bad).mean(axis=1).astype(np.float32))

    def _clip_and_mask(self, f: np.ndarray, iv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clip values to ``clip`` and flatten masked pixels (recipes without a continuum;
        the continuum recipes do this inside :func:`_divide_clip_mask`).

        Masked pixels (outside ``wavelength_range``, sky lines) take the row
        mean and ivar 0, so they add nothing to any distance between spectra
        prepared alike. Clipping bounds what one cosmic ray or bad sky
        subtraction can add to a distance.
        """
        if self.clip is not None:
            f = np.clip(f, *self.clip)
        if self._masked.any():
            fill = f[:, ~self._masked].mean(axis=1, keepdims=True)
            f = np.where(self._masked, fill, f)
            iv = np.where(self._masked, 0.0, iv)
        return f, iv

    def _resample_one(self, s: Any) -> Resampled:
        wl = np.asarray(s.wavelength, dtype=np.float64)
        meta = getattr(s, "meta", {}) or {}
        if self.to_vacuum and meta.get("vacuum") is False:
            wl = air_to_vacuum(wl)
        if self.rest_frame:
            z = meta.get("z")
            if z is None or not math.isfinite(float(z)):
                raise ValueError("rest_frame=True but the spectrum has no redshift")
            wl = to_rest_frame(wl, float(z))
        return resample(wl, s.flux, s.ivar, getattr(s, "mask", None), self.grid, self.method)


def _as_spectra(spectra: Any) -> Sequence[Any]:
    return as_spectra(spectra).spectra
