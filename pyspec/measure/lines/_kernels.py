"""Numba kernels for the per-pixel loops of line and index measurements.

All kernels take one spectrum at a time as contiguous float64 arrays
(wavelength in Angstrom, strictly increasing) plus a boolean ``good`` array
(ivar > 0).  They are compiled once and cached on disk (``cache=True``); the
Python callers loop over a batch.  Nothing here validates input: the callers in
``pyspec.measure.lines`` and ``pyspec.measure.indices`` do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pyspec._numba_cache import CACHE
from pyspec.spectra.continuum import running_median_kernel as median_continuum  # noqa: F401


@njit(cache=CACHE)
def find_peaks(wave, resid, thresh, good, min_pixels, half_window, split_depth):
    """Emission peaks: runs of good pixels with resid > thresh, split at minima.

    Within each run, a pixel is a peak when it is the maximum of a sliding
    window of +-half_window pixels (strictly above the pixels to its left, so
    a flat top gives one peak).  Two neighbouring maxima stay separate lines
    only when the lowest residual between them is below ``split_depth`` times
    the lower maximum (otherwise the higher one represents both); separate
    lines are cut at that lowest pixel.  A peak is kept when its segment has at
    least ``min_pixels`` pixels.

    Returns
    -------
    peak, start, end : int64 arrays (pixel indices, end inclusive)
    centre : float64 array, the vertex of the parabola through the peak pixel
        and its two neighbours (the peak pixel's wavelength at segment edges).
    """
    n = wave.size
    peak = np.empty(n, np.int64)
    start = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    centre = np.empty(n)
    cand = np.empty(n, np.int64)
    k = 0
    i = 0
    while i < n:
        if not (good[i] and resid[i] > thresh[i]):
            i += 1
            continue
        a = i
        while i < n and good[i] and resid[i] > thresh[i]:
            i += 1
        b = i - 1
        nc = 0
        for p in range(a, b + 1):
            is_max = True
            for q in range(max(a, p - half_window), p):
                if resid[q] >= resid[p]:
                    is_max = False
                    break
            if is_max:
                for q in range(p + 1, min(b, p + half_window) + 1):
                    if resid[q] > resid[p]:
                        is_max = False
                        break
            if is_max:
                cand[nc] = p
                nc += 1
        # merge neighbouring maxima unless the valley between them is deep:
        # noise wiggles on a broad line stay one line, resolved lines split
        nm = 0
        for c in range(nc):
            q = cand[c]
            if nm == 0:
                cand[0] = q
                nm = 1
                continue
            p = cand[nm - 1]
            valley = resid[p]
            for r in range(p, q + 1):
                if resid[r] < valley:
                    valley = resid[r]
            if valley < split_depth * min(resid[p], resid[q]):
                cand[nm] = q
                nm += 1
            elif resid[q] > resid[p]:
                cand[nm - 1] = q
        seg_start = a
        for c in range(nm):
            p = cand[c]
            if c + 1 < nm:
                q = cand[c + 1]
                cut = p
                for r in range(p, q + 1):
                    if resid[r] < resid[cut]:
                        cut = r
                seg_end = cut
            else:
                seg_end = b
            if seg_end - seg_start + 1 >= min_pixels:
                peak[k] = p
                start[k] = seg_start
                end[k] = seg_end
                x = wave[p]
                if p - 1 >= seg_start and p + 1 <= seg_end:
                    y0 = resid[p - 1]
                    y1 = resid[p]
                    y2 = resid[p + 1]
                    den = y0 - 2.0 * y1 + y2
                    if den < 0.0:
                        d = 0.5 * (y0 - y2) / den
                        if d > 0:
                            x = wave[p] + d * (wave[p + 1] - wave[p])
                        else:
                            x = wave[p] + d * (wave[p] - wave[p - 1])
                centre[k] = x
                k += 1
            seg_start = seg_end + 1
    return peak[:k], start[:k], end[:k], centre[:k]


@njit(cache=CACHE)
def _pixel_edges(wave):
    n = wave.size
    edges = np.empty(n + 1)
    for j in range(1, n):
        edges[j] = 0.5 * (wave[j - 1] + wave[j])
    edges[0] = wave[0] - (edges[1] - wave[0])
    edges[n] = wave[n - 1] + (wave[n - 1] - edges[n - 1])
    return edges


@njit(cache=CACHE)
def band_means(wave, flux, ivar, lo, hi, min_coverage):
    """Mean flux in each band [lo[b], hi[b]] with fractional pixel overlap.

    Each pixel is weighted by the length of its overlap with the band; pixels
    with ivar <= 0 are skipped.  Returns (mean, err, coverage) where err is the
    1-sigma error of the mean propagated from ivar and coverage is the good
    fraction of the band length.  Bands with coverage below ``min_coverage``
    get NaN.
    """
    edges = _pixel_edges(wave)
    nb = lo.size
    mean = np.full(nb, np.nan)
    err = np.full(nb, np.nan)
    cover = np.zeros(nb)
    n = wave.size
    for b in range(nb):
        j0 = np.searchsorted(edges, lo[b]) - 1
        if j0 < 0:
            j0 = 0
        sw = 0.0
        swf = 0.0
        sw2v = 0.0
        for j in range(j0, n):
            if edges[j] >= hi[b]:
                break
            w = min(edges[j + 1], hi[b]) - max(edges[j], lo[b])
            if w <= 0.0 or ivar[j] <= 0.0:
                continue
            sw += w
            swf += w * flux[j]
            sw2v += w * w / ivar[j]
        cover[b] = sw / (hi[b] - lo[b])
        if sw > 0.0 and cover[b] >= min_coverage:
            mean[b] = swf / sw
            err[b] = np.sqrt(sw2v) / sw
    return mean, err, cover


@njit(cache=CACHE)
def integrate_lines(wave, resid, cont, ivar, centre, half_width, min_coverage):
    """Direct integration of the continuum-subtracted flux in windows.

    For each window [centre - half_width, centre + half_width]: flux is the
    sum of resid * pixel overlap over good pixels, scaled up by the inverse of
    the good fraction; the error follows from ivar; the continuum is the mean
    pseudo-continuum in the window.  Windows with good coverage below
    ``min_coverage`` get NaN.  Returns (flux, flux_err, continuum, coverage).
    """
    edges = _pixel_edges(wave)
    nl = centre.size
    flux = np.full(nl, np.nan)
    err = np.full(nl, np.nan)
    cmean = np.full(nl, np.nan)
    cover = np.zeros(nl)
    n = wave.size
    for b in range(nl):
        lo = centre[b] - half_width[b]
        hi = centre[b] + half_width[b]
        if lo < edges[0] or hi > edges[n]:
            continue
        j0 = np.searchsorted(edges, lo) - 1
        if j0 < 0:
            j0 = 0
        sw = 0.0
        sf = 0.0
        sv = 0.0
        sc = 0.0
        for j in range(j0, n):
            if edges[j] >= hi:
                break
            w = min(edges[j + 1], hi) - max(edges[j], lo)
            if w <= 0.0 or ivar[j] <= 0.0 or not np.isfinite(cont[j]):
                continue
            sw += w
            sf += w * resid[j]
            sv += w * w / ivar[j]
            sc += w * cont[j]
        cover[b] = sw / (hi - lo)
        if sw > 0.0 and cover[b] >= min_coverage:
            scale = (hi - lo) / sw
            flux[b] = sf * scale
            err[b] = np.sqrt(sv) * scale
            cmean[b] = sc / sw
    return flux, err, cmean, cover


@njit(cache=CACHE)
def gauss_centres(wave, resid, peak, start, end, fallback):
    """Centre of a Gaussian fitted to the pixels above half of each peak.

    Guo's (2011) weighted least squares of ln r = a + b x + c x^2 with weights
    r^2 (x relative to the peak pixel), solved by Cramer's rule on the 3x3
    normal equations.  Lines with fewer than three such pixels, a non-concave
    fit or a centre outside the line keep ``fallback``.
    """
    out = fallback.copy()
    for k in range(peak.size):
        p = peak[k]
        half = 0.5 * resid[p]
        s = np.zeros(5)
        t = np.zeros(3)
        m = 0
        for i in range(start[k], end[k] + 1):
            y = resid[i]
            if y <= half:
                continue
            x = wave[i] - wave[p]
            w = y * y
            ly = np.log(y)
            xp = 1.0
            for j in range(5):
                s[j] += w * xp
                if j < 3:
                    t[j] += w * xp * ly
                xp *= x
            m += 1
        if m < 3:
            continue
        a = np.array([[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]])
        det = np.linalg.det(a)
        if det == 0.0:
            continue
        a1 = a.copy()
        a1[:, 1] = t
        a2 = a.copy()
        a2[:, 2] = t
        b = np.linalg.det(a1) / det
        c = np.linalg.det(a2) / det
        if c < 0.0:
            mu = -b / (2.0 * c)
            if abs(mu) <= wave[end[k]] - wave[start[k]]:
                out[k] = wave[p] + mu
    return out
