"""Cross-correlation redshifts and radial velocities against real template spectra.

Absorption-line galaxies and stars have no emission lines for a CL redshift;
their redshift (a star's radial velocity ``v = c z``) comes from the
cross-correlation with template spectra (Tonry & Davis 1979, AJ 84, 1511).

Templates are real survey spectra: by default the LAMOST sample shipped with
pyspec (``pyspec/data/sample``, MIT/Apache/BSD licensed, see its
``SOURCES.md``), moved to the rest frame with their pipeline redshift
(:mod:`pyspec.simulate._templates`).  DR1 (pipeline v2.6.4) files are left
out of the defaults: their header velocities are off by ~100 km/s for M stars
and would carry that offset into every velocity.  Any other library built with
:meth:`TemplateLibrary.from_arrays` can be passed instead.

Method
------
Spectrum and templates are put on one log10 wavelength grid (step 1e-4,
69 km/s, LAMOST's and SDSS's own sampling), divided by a running median over
``_FLATTEN_PIXELS`` pixels (~0.02 dex, ~300 A) and clipped, so that the
correlation sees lines and bands, not the continuum shape or a cosmic ray.
Masked pixels, the sky regions of :mod:`pyspec.measure.lines._sky` and pixels beyond
a template's coverage carry zero weight; the correlation at each lag is
normalised over the overlapping pixels only (masked normalised
cross-correlation by FFT).  Stellar templates are tried at |v| <
``star_vmax`` km/s, galaxy and quasar templates over ``z_range``; the
highest normalised peak wins, and a galaxy must beat the best star by
``_GALAXY_MARGIN`` (stars must never become galaxies on a chance peak).  The
peak position comes from a parabola through the three highest lags, its
error from the Tonry & Davis formula ``3/8 w / (1 + r)`` with ``w`` the peak's
FWHM and ``r`` the peak height over the rms antisymmetric part of the
correlation.  A galaxy template must overlap at least half of the
spectrum's usable pixels at the lag.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.measure.lines import _kernels
from pyspec.measure.lines._sky import sky_mask

__all__ = ["XcorrResult", "XcorrTemplates", "default_templates", "xcorr_redshift"]

C_KMS = 299792.458
_DLOG = 1e-4
_LOG0 = 3.0
_NPIX = 10001
# the absolute log grid and its sky/telluric pixels, built once (not per spectrum)
_GRID = _LOG0 + _DLOG * np.arange(_NPIX)
_GRID_SKY = sky_mask(10.0 ** _GRID, telluric=True)
_FLATTEN_PIXELS = 201
_CLIP = (-1.0, 0.6)
_MIN_OVERLAP = 400
_GALAXY_MARGIN = 0.05
_MIN_GALAXY_OVERLAP = 0.5  # of the spectrum's usable pixels


@dataclass(frozen=True)
class XcorrResult:
    """Cross-correlation redshift of one spectrum.

    Attributes
    ----------
    z, z_err : float
        Redshift (for a star ``v / c``) and its Tonry & Davis error; NaN when
        no template overlaps enough.
    peak : float
        Normalised correlation at the peak (1 = identical shape).
    r_td : float
        Tonry & Davis r: peak height over sqrt(2) x rms antisymmetric part.
    template, template_class, template_subclass : str
        Best template (file stem), its class (STAR / GALAXY / QSO) and subclass.
    reason : str or None
        Why z is NaN.
    """

    z: float
    z_err: float
    peak: float = np.nan
    r_td: float = np.nan
    template: str = ""
    template_class: str = ""
    template_subclass: str = ""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.z))

    @property
    def velocity(self) -> float:
        """``c z`` in km/s."""
        return float(self.z * C_KMS)


def _flatten(flux: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """flux / running median - 1, clipped; 0 where weight is 0."""
    idx = np.arange(flux.size, dtype=np.float64)
    good = weight > 0
    cont = _kernels.median_continuum(idx, np.where(good, flux, 0.0), good,
                                     0.5 * _FLATTEN_PIXELS)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(good & (cont > 0), flux / cont - 1.0, 0.0)
    return np.clip(np.nan_to_num(f), *_CLIP)


@dataclass
class XcorrTemplates:
    """Flattened templates on the rest log grid, with their Fourier transforms."""

    flat: np.ndarray
    weight: np.ndarray
    ids: list
    classes: list
    subclasses: list

    def __post_init__(self) -> None:
        # crop to the pixels any template covers: the FFTs then span the
        # templates' ~4000 pixels instead of the whole 10001-pixel grid
        cover = np.flatnonzero(self.weight.any(axis=0))
        self.t0 = int(cover[0]) if cover.size else 0
        t1 = int(cover[-1]) + 1 if cover.size else 1
        # single precision halves the FFT time; sums of ~4000 terms of O(1)
        # keep r to ~1e-6, far below the peak differences that matter
        self._tw = (self.flat * self.weight)[:, self.t0:t1].astype(np.float32)
        self._t2w = (self.flat**2 * self.weight)[:, self.t0:t1].astype(np.float32)
        self._w = self.weight[:, self.t0:t1].astype(np.float32)
        self._ffts: dict[int, tuple] = {}

    def _template_ffts(self, nfft: int) -> tuple:
        from scipy import fft

        if nfft not in self._ffts:
            self._ffts[nfft] = tuple(fft.rfft(a, nfft, axis=1)
                                     for a in (self._tw, self._t2w, self._w))
        return self._ffts[nfft]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_library(cls, lib: Any) -> XcorrTemplates:
        """From a :class:`pyspec.simulate._templates.TemplateLibrary` (rest frame)."""
        n = len(lib)
        flat = np.zeros((n, _NPIX))
        weight = np.zeros((n, _NPIX))
        rest = lib.rest_wavelength
        if lib.flux.shape[1] != _NPIX or lib.log_start != _LOG0 or lib.dlog != _DLOG:
            raise ValueError("template library must be on the rest grid log10 = 3.0 + 1e-4 i")
        for i in range(n):
            w = np.zeros(_NPIX)
            w[lib.lo[i]:lib.hi[i] + 1] = 1.0
            # the templates' own sky residuals sit at rest / (1 + z_template)
            w[sky_mask(rest * (1.0 + lib.z[i]), telluric=True)] = 0.0
            weight[i] = w
            flat[i] = _flatten(lib.flux[i].astype(np.float64), w)
        return cls(flat, weight, list(lib.ids), list(lib.classes), list(lib.subclasses))

    def correlate(self, flat: np.ndarray, weight: np.ndarray):
        """Normalised correlation and overlap for every template and lag.

        Returns (r, overlap, k0): arrays of shape (n_templates, n_lags) whose
        column j holds lag k = k0 + j (observed pixel = rest pixel + k).
        """
        from scipy import fft

        cover = np.flatnonzero(weight > 0)
        s0, s1 = int(cover[0]), int(cover[-1]) + 1
        tlen, slen = self._w.shape[1], s1 - s0
        # spectrum lengths rounded up to 512 pixels: a few FFT sizes serve all
        nfft = fft.next_fast_len(tlen + 512 * -(-slen // 512))
        f_t, f_t2, f_w = self._template_ffts(nfft)
        fl, wt = flat[s0:s1].astype(np.float32), weight[s0:s1].astype(np.float32)
        fs = np.conj(fft.rfft(fl * wt, nfft))
        fs2 = np.conj(fft.rfft(fl * fl * wt, nfft))
        fw = np.conj(fft.rfft(wt, nfft))

        def corr(a, b):
            # c[m] = sum_i s(i) t(i + m), m = -(slen-1) .. tlen-1; lag k = s0 - t0 - m
            c = fft.irfft(a[None, :] * b, nfft, axis=-1)
            c = np.concatenate([c[:, nfft - slen + 1:], c[:, :tlen]], axis=-1)
            return c[:, ::-1]

        num, ss, tt, ov = corr(fs, f_t), corr(fs2, f_w), corr(fw, f_t2), corr(fw, f_w)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (num / np.sqrt(np.maximum(ss, 0) * np.maximum(tt, 0))).astype(np.float64)
        ov = ov.astype(np.float64)
        r[~np.isfinite(r) | (ov < _MIN_OVERLAP)] = np.nan
        return r, ov, s0 - self.t0 - (tlen - 1)


_DEFAULT: dict[str, XcorrTemplates] = {}


def _sample_rows_without_dr1(sample_dir: Path) -> set:
    with (sample_dir / "sample_index.csv").open(newline="") as fh:
        return {r["file"].split(".fits")[0] for r in csv.DictReader(fh)
                if r.get("pipeline") == "v2.6.4"}


def default_templates() -> XcorrTemplates:
    """The shipped sample's stars and galaxies (S/N >= 10, DR1 left out), cached."""
    if "sample" not in _DEFAULT:
        from pyspec.simulate._templates import SAMPLE_DIR, load_library

        lib = load_library([SAMPLE_DIR], classes=("STAR", "GALAXY", "QSO"), min_snr=10.0)
        dr1 = _sample_rows_without_dr1(SAMPLE_DIR)
        lib = lib.subset(np.array([i not in dr1 for i in lib.ids], bool))
        _DEFAULT["sample"] = XcorrTemplates.from_library(lib)
    return _DEFAULT["sample"]


def _on_grid(wavelength, flux, good):
    """Spectrum on the absolute log grid (index j: log10 w = 3.0 + 1e-4 j)."""
    lw = np.log10(wavelength)
    grid = _GRID
    inside = (grid >= lw[0]) & (grid <= lw[-1])
    f = np.zeros(_NPIX)
    w = np.zeros(_NPIX)
    if good.sum() < 2:
        return f, w
    f[inside] = np.interp(grid[inside], lw[good], flux[good])
    # a grid pixel is usable when both bracketing input pixels are good
    j = np.clip(np.searchsorted(lw, grid[inside]), 1, lw.size - 1)
    w[inside] = (good[j] & good[j - 1]).astype(np.float64)
    w[_GRID_SKY] = 0.0
    return f, w


def _peak(r_row: np.ndarray, lo: int, hi: int):
    """Sub-pixel lag, height, FWHM (pixels) and Tonry-Davis r of the peak in [lo, hi]."""
    seg = r_row[lo:hi + 1]
    if not np.isfinite(seg).any():
        return None
    p = int(np.nanargmax(seg)) + lo
    if p in (lo, hi):
        return None  # the maximum at the edge of the search range is no peak
    h = r_row[p]
    d = 0.0
    if lo < p < hi and np.isfinite(r_row[p - 1]) and np.isfinite(r_row[p + 1]):
        y0, y1, y2 = r_row[p - 1], h, r_row[p + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            d = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    # FWHM: walk down to half height on either side
    half = 0.5 * h
    a = p
    while a > 0 and np.isfinite(r_row[a - 1]) and r_row[a - 1] > half:
        a -= 1
    b = p
    while b < r_row.size - 1 and np.isfinite(r_row[b + 1]) and r_row[b + 1] > half:
        b += 1
    fwhm = float(max(b - a + 1, 1))
    # antisymmetric part about the peak, over +-10 FWHM
    m = int(min(10 * fwhm, 600))
    k = np.arange(1, m + 1)
    left, right = p - k, p + k
    ok = (left >= 0) & (right < r_row.size)
    left, right = left[ok], right[ok]
    anti = 0.5 * (r_row[right] - r_row[left])
    anti = anti[np.isfinite(anti)]
    sa = float(np.sqrt(np.mean(anti**2))) if anti.size > 10 else np.nan
    r_td = h / (np.sqrt(2.0) * sa) if sa > 0 else np.nan
    return p + d, float(h), fwhm, float(r_td)


def _lag_range(z_lo: float, z_hi: float) -> tuple[int, int]:
    return (int(np.floor(np.log10(1.0 + z_lo) / _DLOG)),
            int(np.ceil(np.log10(1.0 + z_hi) / _DLOG)))


def xcorr_redshift(wavelength: np.ndarray, flux: np.ndarray, good: np.ndarray, *,
                   templates: XcorrTemplates | None = None,
                   z_range: tuple[float, float] = (-0.005, 1.0), star_vmax: float = 1000.0,
                   classes: tuple[str, ...] = ("STAR", "GALAXY", "QSO"),
                   exclude: str | None = None) -> XcorrResult:
    """Cross-correlation redshift of one spectrum (vacuum Angstrom, good = ivar > 0).

    Parameters
    ----------
    templates : XcorrTemplates or None
        Default: :func:`default_templates`.
    z_range : (float, float)
        Redshifts tried for galaxy and quasar templates.
    star_vmax : float
        Stellar templates are tried at |v| < star_vmax km/s.
    classes : tuple of str
        Template classes to try (e.g. ``("STAR",)`` for a radial velocity).
    exclude : str or None
        A template id to skip (a spectrum is never its own template).
    """
    t = templates if templates is not None else default_templates()
    f, w = _on_grid(np.asarray(wavelength, float), np.asarray(flux, float),
                    np.asarray(good, bool))
    if w.sum() < _MIN_OVERLAP:
        return XcorrResult(np.nan, np.nan, reason="too few usable pixels on the template grid")
    r, ov, k0 = t.correlate(_flatten(f, w), w)
    # a galaxy template shifted far enough overlaps only a spectrum's red end,
    # where a few telluric or sky residuals can correlate by chance
    is_star = np.array([c == "STAR" for c in t.classes])
    r[~is_star] = np.where(ov[~is_star] >= _MIN_GALAXY_OVERLAP * w.sum(), r[~is_star], np.nan)
    zero = -k0  # column of lag 0
    star_lag = int(np.ceil(np.log10(1.0 + star_vmax / C_KMS) / _DLOG))
    glo, ghi = _lag_range(*z_range)
    best: dict[str, tuple] = {}
    for i, cls_ in enumerate(t.classes):
        if cls_ not in classes or t.ids[i] == exclude:
            continue
        lo, hi = (-star_lag, star_lag) if cls_ == "STAR" else (glo, ghi)
        lo, hi = max(zero + lo, 0), min(zero + hi, r.shape[1] - 1)
        if hi - lo < 3:
            continue
        pk = _peak(r[i], lo, hi)
        if pk is None:
            continue
        kind = "STAR" if cls_ == "STAR" else "EXTRAGALACTIC"
        if kind not in best or pk[1] > best[kind][1][1]:
            best[kind] = (i, pk)
    if not best:
        return XcorrResult(np.nan, np.nan, reason="no template overlaps the spectrum")
    pick = best.get("STAR")
    gal = best.get("EXTRAGALACTIC")
    if pick is None or (gal is not None and gal[1][1] > pick[1][1] + _GALAXY_MARGIN):
        pick = gal
    i, (lag, h, fwhm, r_td) = pick
    lag -= zero
    z = 10.0 ** (lag * _DLOG) - 1.0
    sig_pix = 0.375 * fwhm / (1.0 + r_td) if np.isfinite(r_td) else np.nan
    z_err = float(np.log(10.0) * _DLOG * (1.0 + z) * sig_pix)
    return XcorrResult(float(z), z_err, h, r_td, t.ids[i], t.classes[i], t.subclasses[i])
