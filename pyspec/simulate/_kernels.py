"""Numba kernels of the simulator: template resampling with shift, tilt and lines; noise.

Everything here works on plain arrays so that the public layer
(:mod:`pyspec.simulate`) stays a thin adapter. The noise generator is
counter based: the normal deviate of pixel ``j`` of spectrum ``i`` is a pure
function of ``(seed, i, j)``, so the output does not depend on how a run is
cut into chunks or threads.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from pyspec._numba_cache import CACHE

C_KMS = 299792.458  # speed of light, km/s

# splitmix64 constants (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
# generators"): golden-ratio increment and the two multipliers of the finaliser.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@numba.njit(inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _MUL1
    z = (z ^ (z >> _S27)) * _MUL2
    return z ^ (z >> _S31)


@numba.njit(parallel=True, cache=CACHE)
def render(tmpl, tmpl_lo, tmpl_hi, log_start, dlog, loglam, t_idx, log1pz,
           scale, slope, curv, log_pivot, line_lam, line_amp, line_sig_kms,
           resolution, out, covered):
    """Noise-free spectra: shifted template x tilt + Gaussian emission lines.

    tmpl : (T, P) float32 rest-frame templates on a log10 grid (log_start, dlog);
        valid pixels tmpl_lo[t] .. tmpl_hi[t] inclusive.
    loglam : (npix,) float64 log10 of the output wavelengths (Angstrom).
    t_idx : (n,) int64 template per spectrum; log1pz : (n,) float64 log10(1 + z).
    scale, slope, curv : (n,) float64 flux scale and tilt, the continuum being
        multiplied by ``exp(slope * x + curv * x**2)`` with ``x = ln(lambda / pivot)``.
    line_lam : (n, L) rest wavelengths of the injected line components (Angstrom),
    line_amp : (n, L) peak heights in units of the template's median flux
        (0 = absent), line_sig_kms : (n, L) intrinsic Gaussian widths (km/s).
    resolution : spectral resolving power R, adds sigma = lambda / (2.355 R).
    out : (n, npix) float32 written; covered : (n, npix) bool, False where the
        shifted template does not reach (flux 0 there).
    """
    n, npix = out.shape
    n_lines = line_lam.shape[1]
    ln10 = math.log(10.0)
    for i in numba.prange(n):
        t = t_idx[i]
        lo = tmpl_lo[t]
        hi = tmpl_hi[t]
        for j in range(npix):
            pos = (loglam[j] - log1pz[i] - log_start) / dlog
            k = int(math.floor(pos))
            if k < lo or k + 1 > hi:
                out[i, j] = 0.0
                covered[i, j] = False
                continue
            w = pos - k
            f = (1.0 - w) * tmpl[t, k] + w * tmpl[t, k + 1]
            x = (loglam[j] - log_pivot) * ln10
            out[i, j] = np.float32(scale[i] * f * math.exp(slope[i] * x + curv[i] * x * x))
            covered[i, j] = True
        z1 = 10.0 ** log1pz[i]
        for m in range(n_lines):
            amp = line_amp[i, m]
            if amp == 0.0:
                continue
            centre = line_lam[i, m] * z1
            sig_v = centre * line_sig_kms[i, m] / C_KMS
            sig_i = centre / (2.3548200450309493 * resolution)
            sig = math.sqrt(sig_v * sig_v + sig_i * sig_i)
            # only pixels within 6 sigma: beyond, exp(-18) < 2e-8 of the peak
            lo_l = math.log10(max(centre - 6.0 * sig, 1.0))
            hi_l = math.log10(centre + 6.0 * sig)
            for j in range(npix):
                if loglam[j] < lo_l or loglam[j] > hi_l or not covered[i, j]:
                    continue
                d = (10.0 ** loglam[j] - centre) / sig
                out[i, j] += np.float32(scale[i] * amp * math.exp(-0.5 * d * d))



@numba.njit(inline="always")
def _normal_pair(row_key, pair):
    """Two independent N(0, 1) deviates for pixel pair ``pair`` of a row (Box-Muller)."""
    h1 = _mix64(row_key + np.uint64(pair + 1) * _GOLDEN)
    h2 = _mix64(h1 ^ _MUL2)
    u1 = (float(h1 >> _S11) + 0.5) * _TWO_M53
    u2 = float(h2 >> _S11) * _TWO_M53
    r = math.sqrt(-2.0 * math.log(u1))
    return r * math.cos(2.0 * math.pi * u2), r * math.sin(2.0 * math.pi * u2)


@numba.njit(parallel=True, cache=CACHE)
def add_noise(flux, covered, ref, sky, snr, seed, row0, noise, ivar):
    """Noise model, noise and inverse variance, in place.

    flux : (n, npix) float32 noise-free model, replaced by the noisy spectrum
    (when ``noise``) and set to 0 where not ``covered`` ((n, npix) bool).
    The noise sigma is ``c * sqrt(max(f, 0) + sky * m)``: ``m`` is the median
    model flux over (a subsample of at most ~256) covered pixels, the sky
    level being a fraction ``sky`` of it, and ``c`` makes the median of
    ``f / sigma`` over all covered reference pixels (``ref``, (npix,) bool;
    all covered pixels if none is covered) equal ``snr``. sky, snr : (n,) float64.
    ivar : (n, npix) float32 output,
    ``1 / sigma**2`` on covered pixels, else 0.
    The deviate of pixel j of row i is a pure function of (seed, row0 + i, j):
    pairs of pixels (2p, 2p + 1) share one Box-Muller draw keyed by (row, p).
    """
    n, npix = flux.shape
    key = _mix64(np.uint64(seed) + _GOLDEN)
    for i in numba.prange(n):
        vals = np.empty(npix, np.float64)
        k = 0
        for j in range(npix):
            if covered[i, j]:
                vals[k] = flux[i, j]
                k += 1
        if k == 0:
            for j in range(npix):
                flux[i, j] = 0.0
                ivar[i, j] = 0.0
            continue
        # the sky level only needs a rough continuum level: a median over at
        # most ~256 evenly spaced covered pixels (the medians dominated the cost)
        step = max(1, k // 256)
        m = np.median(vals[:k:step])
        floor = sky[i] * max(m, 1e-30)
        r = 0
        for j in range(npix):
            if covered[i, j] and ref[j]:
                vals[r] = flux[i, j] / math.sqrt(max(flux[i, j], 0.0) + floor)
                r += 1
        if r == 0:
            for j in range(npix):
                if covered[i, j]:
                    vals[r] = flux[i, j] / math.sqrt(max(flux[i, j], 0.0) + floor)
                    r += 1
        c = max(np.median(vals[:r]), 1e-30) / snr[i]
        row_key = _mix64(key ^ (np.uint64(row0 + i) * _MUL1))
        z1 = 0.0
        for j in range(npix):
            if j % 2 == 0:
                z0, z1 = _normal_pair(row_key, j // 2)
            else:
                z0 = z1
            if not covered[i, j]:
                flux[i, j] = 0.0
                ivar[i, j] = 0.0
                continue
            sigma = c * math.sqrt(max(flux[i, j], 0.0) + floor)
            ivar[i, j] = np.float32(1.0 / (sigma * sigma))
            if noise:
                flux[i, j] = np.float32(flux[i, j] + sigma * z0)
