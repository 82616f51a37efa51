"""The simulator: parameter blocks, templates with lines, noise and bad pixels -> spectra.

Public through :mod:`pyspec.simulate`; the writers (:mod:`pyspec.simulate._writers`)
import from here, not from the package, so the package can import the writers.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from pyspec.simulate import _kernels
from pyspec.simulate._templates import TemplateLibrary, load_library

BLOCK = 1024  # spectra per parameter block (fixed: part of the seed -> output mapping)
C_KMS = _kernels.C_KMS

# Vacuum rest wavelengths (Angstrom) of the injected lines, as used by SDSS/LAMOST
# (LAMOST wavelengths are in vacuum).
LINES = {
    "Halpha": 6564.61,
    "Hbeta": 4862.68,
    "[OIII]4960": 4960.295,
    "[OIII]5008": 5008.240,
    "[NII]6550": 6549.86,
    "[NII]6585": 6585.27,
    "[SII]6718": 6718.29,
    "[SII]6733": 6732.67,
    "[OII]3727": 3727.092,
    "[OII]3730": 3729.875,
}
LINE_NAMES = list(LINES)
_GALAXY_LINES = LINE_NAMES  # all of them, H-alpha included
# kernel slots: 0 = H-alpha (single, or blue peak), 1 = H-alpha red peak, 2.. = other lines
_SLOT_NAMES = ["Halpha", "Halpha"] + LINE_NAMES[1:]
_SLOT_REST = np.array([LINES[n] for n in _SLOT_NAMES])
_N_SLOTS = len(_SLOT_NAMES)
MAX_BAD_RUNS = 4
LAMOST_RESOLUTION = 1800.0  # LAMOST low-resolution R at 5500 A (Cui et al. 2012, RAA 12, 1197)


# ------------------------------------------------------------------ S/N distribution

@dataclass(frozen=True)
class SNRDistribution:
    """Log-normal S/N per pixel (r band), clipped to ``[low, high]``.

    ``ln(snr) ~ Normal(ln(median), sigma)``. A ``sigma`` of 0 gives a fixed S/N.
    """

    median: float
    sigma: float = 0.0
    low: float = 0.3
    high: float = 1000.0

    PRESETS = {
        # whole-survey mix: LAMOST stars reach S/N 60 in the median but the
        # catalogue as a whole sits near 20 with a long faint tail
        "lamost": (20.0, 1.0),
        # "Unknown" spectra: S/N median about 3 (5 such spectra in shared/data:
        # 1.9-18, median 3.2); with sigma 0.8, 87 % fall below S/N 10
        "unknown": (3.5, 0.8),
        "high": (50.0, 0.4),
    }

    def __post_init__(self) -> None:
        if not (self.median > 0 and math.isfinite(self.median)):
            raise ValueError(f"S/N median must be a positive number, got {self.median}")
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ValueError(f"S/N log-sigma must be >= 0, got {self.sigma}")
        if not (0 < self.low <= self.median <= self.high):
            raise ValueError(f"need 0 < low <= median <= high, got {self.low}, {self.median}, "
                             f"{self.high}")

    @classmethod
    def coerce(cls, value) -> SNRDistribution:
        """Accept a preset name, a fixed number, a (median, sigma) pair or an instance."""
        if isinstance(value, SNRDistribution):
            return value
        if isinstance(value, str):
            if value not in cls.PRESETS:
                raise ValueError(f"unknown S/N preset {value!r}; choose from "
                                 f"{sorted(cls.PRESETS)} or give (median, sigma)")
            return cls(*cls.PRESETS[value])
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return cls(float(value), 0.0)
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return cls(float(value[0]), float(value[1]))
        raise TypeError(f"snr must be a preset name, a number, (median, sigma) or an "
                        f"SNRDistribution, got {value!r}")

    def sample(self, normal: np.ndarray) -> np.ndarray:
        """S/N values from standard normal deviates (so the draw order never changes)."""
        return np.clip(self.median * np.exp(self.sigma * normal), self.low, self.high)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Distribution function (with the clipping) for goodness-of-fit checks."""
        from scipy.stats import norm

        x = np.asarray(x, float)
        if self.sigma == 0:
            c = (x >= self.median).astype(float)
        else:
            c = norm.cdf((np.log(np.maximum(x, 1e-300)) - math.log(self.median)) / self.sigma)
        return np.where(x < self.low, 0.0, np.where(x >= self.high, 1.0, c))


# ------------------------------------------------------------------ batch container

@dataclass
class SimulatedBatch:
    """Simulated spectra of one chunk.

    Attributes
    ----------
    wavelength : ndarray of shape (n_pixels,), float64 (Angstrom, vacuum)
    flux : ndarray of shape (n_spectra, n_pixels), float32
    ivar : ndarray of shape (n_spectra, n_pixels), float32; 0 = masked pixel
    labels : astropy.table.Table, one row per spectrum (see :meth:`Simulator.labels`)
    """

    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    labels: object

    def __len__(self) -> int:
        return self.flux.shape[0]

    @property
    def mask(self) -> np.ndarray:
        return self.ivar <= 0


def _grid_wavelength(grid) -> tuple[np.ndarray, object]:
    """(wavelength float64, grid object or None) from a preset name, grid or array."""
    if grid is None:
        grid = "lamost"
    if isinstance(grid, str):
        from pyspec.preprocess import WavelengthGrid

        grid = WavelengthGrid.preset(grid)
    wl = getattr(grid, "wavelength", grid)
    wl = np.asarray(wl, dtype=np.float64)
    if wl.ndim != 1 or wl.size < 2:
        raise ValueError(f"grid must be a 1-D wavelength array of >= 2 pixels, got shape "
                         f"{wl.shape}")
    if not (np.all(np.isfinite(wl)) and np.all(wl > 0) and np.all(np.diff(wl) > 0)):
        raise ValueError("grid wavelengths must be finite, positive and strictly increasing")
    return wl, (None if isinstance(grid, np.ndarray) else grid)


def measure_snr(flux: np.ndarray, ivar: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
    """Median ``flux * sqrt(ivar)`` over unmasked r-band pixels (5600-6800 A) of each spectrum.

    Falls back to all unmasked pixels when the grid has fewer than 20 pixels
    in the r band. This is the S/N the simulator targets. Returns float64 (n,);
    NaN for a spectrum without usable pixels.
    """
    flux = np.asarray(flux, np.float64)
    ivar = np.asarray(ivar, np.float64)
    ref = _ref_pixels(np.asarray(wavelength, float))
    v = np.where(ivar[:, ref] > 0, flux[:, ref] * np.sqrt(np.maximum(ivar[:, ref], 0)), np.nan)
    out = np.full(flux.shape[0], np.nan)
    ok = np.isfinite(v).any(axis=1)
    out[ok] = np.nanmedian(v[ok], axis=1)
    return out


def _ref_pixels(wl: np.ndarray) -> np.ndarray:
    ref = (wl >= 5600.0) & (wl <= 6800.0)
    return ref if ref.sum() >= 20 else np.ones(wl.size, bool)


# ------------------------------------------------------------------ the simulator

class Simulator:
    """Draws labelled, realistic spectra on a wavelength grid from real templates.

    Parameters
    ----------
    grid : str, WavelengthGrid or ndarray of shape (n_pixels,), default "lamost"
        Output grid (preset name, grid object or wavelengths in Angstrom).
    seed : int
        Seed; the output is a pure function of the seed and the settings.
    templates : TemplateLibrary or None
        Default: :func:`load_library` (shipped sample + shared corpus when present).
    snr : str, float, (median, sigma) or SNRDistribution, default "lamost"
        Distribution of the target S/N per pixel (see :func:`measure_snr`).
    class_weights : dict or None
        Probability of each template class (default STAR 0.85, GALAXY 0.1,
        QSO 0.05, renormalised over the classes present).
    rv_sigma : float
        Standard deviation of stellar radial velocities, km/s (default 50).
    z_spread : float
        Galaxies and quasars get ``z ~ U(z0 - z_spread, z0 + z_spread)`` around
        the template's own redshift ``z0`` (never below 0).
    p_be : float
        Probability that a star gets H-alpha emission; ``p_double`` of those
        are double-peaked (separation ``U(150, 500)`` km/s).
    p_galaxy_lines : float
        Probability that a galaxy gets the emission-line set injected.
    line_amplitude : (float, float)
        Range (log-uniform) of the H-alpha peak height in units of the
        template's median flux; other galaxy lines follow physical ratios.
    line_sigma : (float, float)
        Range (uniform) of intrinsic line widths, km/s.
    tilt_sigma : (float, float)
        Standard deviations of the tilt slope and curvature.
    bad_run_rate : float
        Mean number of bad-pixel runs per spectrum (Poisson, at most 4).
    p_pad, max_pad : float, int
        Probability of zero padding at each end, and its maximum length (pixels).
    resolution : float
        Resolving power used to broaden the injected lines (default LAMOST 1800).
    num_threads : int or None
        Threads for the numba kernels (None: numba's default).
    """

    def __init__(self, grid=None, seed: int = 0, templates: TemplateLibrary | None = None,
                 snr="lamost", class_weights: dict | None = None, rv_sigma: float = 50.0,
                 z_spread: float = 0.05, p_be: float = 0.05, p_double: float = 0.5,
                 p_galaxy_lines: float = 0.5, line_amplitude=(0.2, 3.0),
                 line_sigma=(40.0, 200.0), tilt_sigma=(0.5, 0.5), bad_run_rate: float = 0.7,
                 p_pad: float = 0.2, max_pad: int = 60, resolution: float = LAMOST_RESOLUTION,
                 num_threads: int | None = None):
        from pyspec._validation import check_num_threads

        self.wavelength, self.grid = _grid_wavelength(grid)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = int(seed)
        self.templates = load_library() if templates is None else templates
        if len(self.templates) == 0:
            raise ValueError("the template library is empty")
        self.snr = SNRDistribution.coerce(snr)
        for name, p in (("p_be", p_be), ("p_double", p_double),
                        ("p_galaxy_lines", p_galaxy_lines), ("p_pad", p_pad)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name, v in (("rv_sigma", rv_sigma), ("z_spread", z_spread),
                        ("bad_run_rate", bad_run_rate)):
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be >= 0, got {v}")
        lo, hi = line_amplitude
        if not 0 < lo <= hi:
            raise ValueError(f"line_amplitude must be (low, high) with 0 < low <= high, got "
                             f"{line_amplitude}")
        if not 0 <= line_sigma[0] <= line_sigma[1]:
            raise ValueError(f"line_sigma must be (low, high) km/s, got {line_sigma}")
        if not resolution > 0:
            raise ValueError(f"resolution must be > 0, got {resolution}")
        if isinstance(max_pad, bool) or not isinstance(max_pad, numbers.Integral) or max_pad < 1:
            raise ValueError(f"max_pad must be an int >= 1, got {max_pad!r}")
        self.rv_sigma, self.z_spread = float(rv_sigma), float(z_spread)
        self.p_be, self.p_double, self.p_galaxy_lines = float(p_be), float(p_double), float(
            p_galaxy_lines)
        self.line_amplitude = (float(lo), float(hi))
        self.line_sigma = (float(line_sigma[0]), float(line_sigma[1]))
        self.tilt_sigma = (float(tilt_sigma[0]), float(tilt_sigma[1]))
        self.bad_run_rate, self.p_pad, self.max_pad = float(bad_run_rate), float(p_pad), int(
            max_pad)
        self.resolution = float(resolution)
        self.num_threads = check_num_threads(num_threads)
        self._class_probs = self._template_probs(class_weights)
        self._block_cache: dict[int, dict] = {}

    # -- template choice
    def _template_probs(self, class_weights: dict | None) -> np.ndarray:
        weights = {"STAR": 0.85, "GALAXY": 0.10, "QSO": 0.05} if class_weights is None else dict(
            class_weights)
        classes = np.array(self.templates.classes)
        p = np.zeros(len(classes))
        for cls, w in weights.items():
            if w < 0:
                raise ValueError(f"class weight of {cls} must be >= 0, got {w}")
            members = classes == cls
            if members.any():
                p[members] = w / members.sum()
        if p.sum() <= 0:
            raise ValueError(f"no templates of the weighted classes {sorted(weights)}; the "
                             f"library has {sorted(set(classes))}")
        return np.cumsum(p / p.sum())

    # -- parameters
    def _draw_block(self, block: int) -> dict:
        """Parameters of spectra ``block*BLOCK .. (block+1)*BLOCK - 1`` (grid independent)."""
        cached = self._block_cache.get(block)
        if cached is not None:
            return cached
        rng = np.random.default_rng([self.seed, block, 0x51])
        n = BLOCK
        lib = self.templates
        # every draw is made whatever the settings, in a fixed order, so that
        # changing one setting (say p_be = 0) leaves all other parameters alone
        u_tmpl = rng.random(n)
        n_rv = rng.standard_normal(n)
        u_z = rng.random(n)
        n_slope, n_curv = rng.standard_normal(n), rng.standard_normal(n)
        n_scale = rng.standard_normal(n)
        n_snr = rng.standard_normal(n)
        u_sky = rng.random(n)
        u_line = rng.random(n)
        u_double = rng.random(n)
        u_amp = rng.random(n)
        u_sig = rng.random(n)
        u_sep = rng.random(n)
        u_vr = rng.random(n)
        u_ratio = rng.random((n, 8))
        runs = np.minimum(rng.poisson(self.bad_run_rate, n), MAX_BAD_RUNS)
        run_start = rng.random((n, MAX_BAD_RUNS))
        run_len = np.minimum(rng.geometric(1 / 8, (n, MAX_BAD_RUNS)), 64)
        run_level = rng.uniform(-1.0, 4.0, (n, MAX_BAD_RUNS))
        u_pad = rng.random((n, 2))
        pad_len = rng.integers(1, self.max_pad + 1, (n, 2))
        sky_ra, sky_dec = rng.random(n), rng.random(n)

        t = np.minimum(np.searchsorted(self._class_probs, u_tmpl, side="right"), len(lib) - 1)
        cls = np.array(lib.classes)[t]
        stellar = cls == "STAR"
        # stars: radial velocity (relativistic Doppler); others: redshift near z0
        rv = np.where(stellar, self.rv_sigma * n_rv, np.nan)
        beta = np.where(stellar, rv, 0.0) / C_KMS
        z_star = np.sqrt((1 + beta) / (1 - beta)) - 1
        z0 = np.where(np.isfinite(lib.z[t]) & (lib.z[t] > -0.5), lib.z[t], 0.0)
        z_lo = np.maximum(z0 - self.z_spread, 0.0)
        z_gal = z_lo + u_z * (z0 + self.z_spread - z_lo)
        z = np.where(stellar, z_star, z_gal)

        amp = np.zeros((n, _N_SLOTS))
        sig = np.zeros((n, _N_SLOTS))
        lam = np.tile(_SLOT_REST, (n, 1))
        profile = np.zeros(n, np.int8)  # 0 none, 1 single, 2 double
        sep = np.full(n, np.nan)
        a_lo, a_hi = self.line_amplitude
        a_ha = a_lo * (a_hi / a_lo) ** u_amp
        width = self.line_sigma[0] + u_sig * (self.line_sigma[1] - self.line_sigma[0])
        # Be stars: H-alpha, single or double peaked (two components at +-sep/2,
        # blue/red peak ratio V/R in 0.7-1.3)
        be = stellar & (u_line < self.p_be)
        double = be & (u_double < self.p_double)
        profile[be] = 1
        profile[double] = 2
        sep[double] = 150.0 + 350.0 * u_sep[double]
        vr = 0.7 + 0.6 * u_vr
        amp[be, 0] = a_ha[be]
        amp[double, 0] = a_ha[double] * np.minimum(vr[double], 1.0)
        amp[double, 1] = a_ha[double] * np.minimum(1.0 / vr[double], 1.0)
        lam[double, 0] *= 1 - sep[double] / 2 / C_KMS
        lam[double, 1] *= 1 + sep[double] / 2 / C_KMS
        sig[be, 0] = width[be]
        sig[be, 1] = width[be]
        # galaxies: the line set with physical ratios. Peak ratios equal flux
        # ratios as all lines share one velocity width. H-alpha/H-beta = 2.86
        # (case B, Osterbrock & Ferland 2006) times a dust factor; [O III]
        # 5008/4960 = 2.98 and [N II] 6585/6550 = 3.05 (Storey & Zeippen 2000).
        gal = (cls == "GALAXY") & (u_line < self.p_galaxy_lines)
        hb = a_ha / 2.86 * (0.5 + 0.5 * u_ratio[:, 0])
        o3 = hb * 0.3 * (10 / 0.3) ** u_ratio[:, 1]
        n2 = a_ha * (0.1 + 0.9 * u_ratio[:, 2])
        s2a = a_ha * (0.1 + 0.3 * u_ratio[:, 3])
        s2b = s2a * (0.7 + 0.7 * u_ratio[:, 4])
        o2a = hb * (0.5 + 2.5 * u_ratio[:, 5])
        o2b = o2a * (0.8 + 0.7 * u_ratio[:, 6])
        gal_amps = {"Halpha": a_ha, "Hbeta": hb, "[OIII]5008": o3, "[OIII]4960": o3 / 2.98,
                    "[NII]6585": n2, "[NII]6550": n2 / 3.05, "[SII]6718": s2a, "[SII]6733": s2b,
                    "[OII]3727": o2a, "[OII]3730": o2b}
        for name, a in gal_amps.items():
            slot = 0 if name == "Halpha" else _SLOT_NAMES.index(name, 2)
            amp[gal, slot] = a[gal]
            sig[gal, slot] = width[gal]
        profile[gal] = 1

        bad = np.arange(MAX_BAD_RUNS)[None, :] < runs[:, None]
        pad = u_pad < self.p_pad
        params = {
            "template": t, "z": z, "rv": rv, "stellar": stellar,
            "slope": self.tilt_sigma[0] * n_slope, "curv": self.tilt_sigma[1] * n_curv,
            "scale": np.exp(math.log(100.0) + 1.0 * n_scale),
            "snr": self.snr.sample(n_snr), "sky": 0.05 + 0.95 * u_sky,
            "line_lam": lam, "line_amp": amp, "line_sig": sig, "profile": profile, "sep": sep,
            "run_start": run_start, "run_len": np.where(bad, run_len, 0), "run_level": run_level,
            "pad_blue": np.where(pad[:, 0], pad_len[:, 0], 0),
            "pad_red": np.where(pad[:, 1], pad_len[:, 1], 0),
            "ra": 360.0 * sky_ra, "dec": np.degrees(np.arcsin(2.0 * sky_dec - 1.0)),
        }
        if len(self._block_cache) > 8:
            self._block_cache.clear()
        self._block_cache[block] = params
        return params

    def parameters(self, start: int, stop: int) -> dict:
        """Per-spectrum parameters of spectra ``start .. stop - 1`` (dict of arrays)."""
        start, stop = _check_range(start, stop)
        if stop == start:
            return {k: v[:0] for k, v in self._draw_block(0).items()} | {
                "index": np.zeros(0, np.int64)}
        parts = []
        for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            p = self._draw_block(b)
            lo, hi = max(start - b * BLOCK, 0), min(stop - b * BLOCK, BLOCK)
            parts.append({k: v[lo:hi] for k, v in p.items()})
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        out["index"] = np.arange(start, stop, dtype=np.int64)
        return out

    # -- rendering
    def render(self, params: dict, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Flux and ivar (float32, (n, n_pixels)) of the spectra described by ``params``.

        With ``noise=False`` the flux is the noise-free model (masks and padding
        still applied) and ivar the one the noisy spectrum would have.
        """
        import numba

        lib = self.templates
        wl = self.wavelength
        n, npix = len(params["index"]), wl.size
        flux = np.empty((n, npix), np.float32)
        covered = np.empty((n, npix), bool)
        old = numba.get_num_threads()
        if self.num_threads:
            numba.set_num_threads(min(self.num_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            _kernels.render(lib.flux, lib.lo, lib.hi, lib.log_start, lib.dlog, np.log10(wl),
                            params["template"].astype(np.int64), np.log10(1.0 + params["z"]),
                            params["scale"], params["slope"], params["curv"],
                            math.log10(6000.0), params["line_lam"], params["line_amp"],
                            params["line_sig"], self.resolution, flux, covered)
            ivar = np.empty((n, npix), np.float32)
            _kernels.add_noise(flux, covered, _ref_pixels(wl), np.asarray(params["sky"], float),
                               np.asarray(params["snr"], float), np.uint64(self.seed),
                               int(params["index"][0]) if n else 0, bool(noise), ivar)
        finally:
            numba.set_num_threads(old)
        # bad columns: ivar 0, flux at an arbitrary level per run
        run_start = np.floor(params["run_start"] * npix).astype(np.int64)
        for r in range(MAX_BAD_RUNS):
            length = params["run_len"][:, r]
            rows = np.flatnonzero(length > 0)
            for i in rows:
                s = run_start[i, r]
                e = min(s + length[i], npix)
                flux[i, s:e] = np.float32(params["run_level"][i, r] * params["scale"][i])
                ivar[i, s:e] = 0.0
        # end padding: exact zeros
        for i in np.flatnonzero(params["pad_blue"] > 0):
            flux[i, :params["pad_blue"][i]] = 0.0
            ivar[i, :params["pad_blue"][i]] = 0.0
        for i in np.flatnonzero(params["pad_red"] > 0):
            flux[i, npix - params["pad_red"][i]:] = 0.0
            ivar[i, npix - params["pad_red"][i]:] = 0.0
        return flux, ivar

    def labels(self, params: dict, ivar: np.ndarray | None = None):
        """Astropy Table of labels: one row per spectrum.

        Columns: id (global index), template, file (template file), class,
        subclass, shift_kind ("v" for stars, "z" otherwise), rv (km/s, NaN for
        "z"), z (total redshift, stars included), snr_r (target S/N),
        tilt_slope, tilt_curv, flux_scale, lines (comma-separated names of the
        injected lines, "" if none), halpha_profile (none/single/double),
        halpha_sep (km/s), line_sigma (km/s), amp_<line> (peak height of each
        line in template-median units, 0 if absent), n_bad_runs, pad_blue,
        pad_red, n_masked (pixels with ivar 0, when ``ivar`` is given), ra, dec.
        """
        from astropy import units as u
        from astropy.table import Table

        lib = self.templates
        t = params["template"]
        amp = params["line_amp"]
        per_line = {name: amp[:, 0] if name == "Halpha" else amp[:, _SLOT_NAMES.index(name, 2)]
                    for name in LINE_NAMES}
        per_line["Halpha"] = np.maximum(amp[:, 0], amp[:, 1])
        names_arr = np.array(LINE_NAMES)
        has = np.stack([per_line[nm] > 0 for nm in LINE_NAMES], axis=1)
        line_str = [",".join(names_arr[row]) for row in has]
        ids = np.array(lib.ids)[t]
        tab = Table()
        tab["id"] = params["index"]
        tab["template"] = ids
        tab["file"] = np.array([f"sim-{i}" for i in params["index"]]) if len(t) else np.zeros(
            0, str)
        tab["ra"] = params["ra"] * u.deg
        tab["dec"] = params["dec"] * u.deg
        tab["class"] = np.array(lib.classes)[t]
        tab["subclass"] = np.array(lib.subclasses)[t]
        tab["shift_kind"] = np.where(params["stellar"], "v", "z")
        tab["rv"] = params["rv"] * (u.km / u.s)
        tab["z"] = params["z"]
        tab["snr_r"] = params["snr"]
        tab["tilt_slope"] = params["slope"]
        tab["tilt_curv"] = params["curv"]
        tab["flux_scale"] = params["scale"]
        tab["lines"] = np.array(line_str, dtype=str) if len(t) else np.zeros(0, str)
        tab["halpha_profile"] = np.array(["none", "single", "double"])[params["profile"]]
        tab["halpha_sep"] = params["sep"] * (u.km / u.s)
        tab["line_sigma"] = params["line_sig"].max(axis=1) * (u.km / u.s)
        for name in LINE_NAMES:
            tab[f"amp_{name}"] = per_line[name]
        tab["n_bad_runs"] = (params["run_len"] > 0).sum(axis=1)
        tab["pad_blue"] = params["pad_blue"]
        tab["pad_red"] = params["pad_red"]
        if ivar is not None:
            tab["n_masked"] = (ivar <= 0).sum(axis=1)
        return tab

    def generate(self, start: int, stop: int, noise: bool = True) -> SimulatedBatch:
        """Spectra ``start .. stop - 1`` with their labels."""
        params = self.parameters(start, stop)
        flux, ivar = self.render(params, noise=noise)
        return SimulatedBatch(self.wavelength, flux, ivar, self.labels(params, ivar))

    def iter_chunks(self, n: int, chunk_size: int = 4096, start: int = 0):
        """Yield :class:`SimulatedBatch` chunks covering spectra ``start .. start + n - 1``."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or (
                chunk_size < 1):
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        start, stop = _check_range(start, start + n)
        for s in range(start, stop, chunk_size):
            yield self.generate(s, min(s + chunk_size, stop))


def _check_range(start, stop) -> tuple[int, int]:
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if stop < start:
        raise ValueError(f"stop ({stop}) must be >= start ({start})")
    return int(start), int(stop)


# ------------------------------------------------------------------ convenience and writers

def simulate_spectra(n: int, grid=None, seed: int = 0, **kwargs) -> SimulatedBatch:
    """``n`` labelled spectra in one batch (see :class:`Simulator` for ``kwargs``)."""
    return Simulator(grid=grid, seed=seed, **kwargs).generate(0, n)
