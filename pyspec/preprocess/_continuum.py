"""Continua (running median, robust clipped median, polynomial), the fused
division step, wavelength masks and normalisation."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pyspec.preprocess._common import (
    NORMALISATIONS,
    _njit,
)
from pyspec.spectra import (  # noqa: F401  (air_to_vacuum, vacuum_to_air: public here too)
    air_to_vacuum,
    as_spectra,
    to_rest_frame,
    vacuum_to_air,
)
from pyspec.spectra.continuum import running_median

# ---------------------------------------------------------------- continuum and normalisation

def continuum_median(flux: Any, wavelength: Any, window: float = 150.0,
                     good: Any | None = None) -> np.ndarray:
    """Running-median continuum over ``window`` Angstrom of the good pixels (last axis =
    pixels): :func:`pyspec.spectra.running_median`, the one implementation shared with
    the line measurements. ``good`` defaults to the finite pixels."""
    return running_median(flux, wavelength, window, good)


def _fill_masked(row: np.ndarray, good: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """``row`` with pixels not ``good`` replaced by linear interpolation over good ones."""
    if good.all() or not good.any():
        return row
    out = row.copy()
    out[~good] = np.interp(wl[~good], wl[good], row[good])
    return out


@_njit
def _median_small(v, c):
    """Median of ``v[:c]`` (c >= 1), sorting it in place by insertion (no allocation):
    the blocks and windows of the continuum hold a few tens of values."""
    for i in range(1, c):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x
    return 0.5 * (v[(c - 1) // 2] + v[c // 2])


@_njit
def _median_select(v, c):
    """Median of ``v[:c]`` (c >= 1, finite values).

    numba's np.median (an introselect on a copy) is exact like any selection
    and, unlike a plain median-of-three quickselect, never degrades on the
    nearly ordered deviations of the later clipping passes (3x faster here).
    """
    return np.median(v[:c])


@_njit
def _kept_median(sv, si, start, count, keep):
    """Median of the kept values of one block whose good values are ``sv[start:start +
    count]`` sorted ascending (pixel numbers in ``si``): the same value as sorting the
    kept values and averaging the two middle ones, without sorting again each pass."""
    c = 0
    for q in range(start, start + count):
        if keep[si[q]]:
            c += 1
    if c == 0:
        return np.nan
    lo_rank = (c - 1) // 2
    hi_rank = c // 2
    a = 0.0
    rank = 0
    for q in range(start, start + count):
        if keep[si[q]]:
            if rank == lo_rank:
                a = sv[q]
            if rank == hi_rank:
                return 0.5 * (a + sv[q])
            rank += 1
    return np.nan  # not reached


@_njit
def _running_median(ext, n_blocks, h, half, win, smooth):
    """``smooth[b]`` = median of ``ext[h + b - half : h + b + half + 1]`` (indices
    clamped to ``ext``). With ``h == half`` no index is clamped and the sorted window
    slides (one value out, one in) instead of being sorted again for every block
    (finite values only: the removed value is found by equality)."""
    width = 2 * half + 1
    n_ext = n_blocks + 2 * h
    sliding = h == half
    for i in range(n_ext):
        if not np.isfinite(ext[i]):  # a NaN would never be found in the window again
            sliding = False
    if not sliding:
        for b in range(n_blocks):
            for w in range(-half, half + 1):
                idx = min(max(h + b + w, 0), n_ext - 1)
                win[w + half] = ext[idx]
            smooth[b] = _median_small(win, width)
        return
    for w in range(width):
        win[w] = ext[w]
    smooth[0] = _median_small(win, width)  # sorts win
    for b in range(1, n_blocks):
        out_v = ext[b - 1]
        in_v = ext[b - 1 + width]
        k = 0
        while win[k] != out_v:
            k += 1
        # drop win[k], then insert in_v keeping win sorted
        if in_v >= out_v:
            while k + 1 < width and win[k + 1] < in_v:
                win[k] = win[k + 1]
                k += 1
        else:
            while k > 0 and win[k - 1] > in_v:
                win[k] = win[k - 1]
                k -= 1
        win[k] = in_v
        smooth[b] = 0.5 * (win[half] + win[half])


@_njit
def _clipped_continuum_kernel(f, good, right, t, per_block, n_blocks, half, n_iter, clip, out):
    """Row by row: block medians of the kept pixels, a running median of 2 half + 1
    blocks (point-reflected at the ends), linear interpolation back to the pixels,
    then ``n_iter`` passes dropping pixels more than ``clip`` robust sigmas below.

    Every buffer is allocated once per call (a query is one row: allocations and
    sorting copies cost more than the arithmetic). The good values of each block
    are sorted once per row; each pass reads the medians of the kept ones off
    that order."""
    n_rows, n_pix = f.shape
    keep = np.empty(n_pix, np.bool_)
    m = np.empty(n_blocks)
    h = min(half, n_blocks - 1)
    ext = np.empty(n_blocks + 2 * h)
    win = np.empty(2 * half + 1)
    smooth = np.empty(n_blocks)
    sv = np.empty(n_pix)  # good values of each block, sorted
    si = np.empty(n_pix, np.int64)  # their pixel numbers
    counts = np.empty(n_blocks, np.int64)
    rel = np.empty(n_pix)  # f / continuum - 1 of each good pixel (NaN elsewhere)
    ratio = np.empty(n_pix)
    for r in range(n_rows):
        for j in range(n_pix):
            keep[j] = good[r, j]
        for b in range(n_blocks):
            lo = b * per_block
            hi = min(lo + per_block, n_pix)
            c = 0
            for j in range(lo, hi):
                if good[r, j]:
                    x = f[r, j]
                    q = lo + c - 1
                    while q >= lo and sv[q] > x:
                        sv[q + 1] = sv[q]
                        si[q + 1] = si[q]
                        q -= 1
                    sv[q + 1] = x
                    si[q + 1] = j
                    c += 1
            counts[b] = c
        for it in range(n_iter + 1):
            for b in range(n_blocks):
                m[b] = _kept_median(sv, si, b * per_block, counts[b], keep)
            # blocks with no kept pixel: linear between the nearest finite ones
            last = -1
            for b in range(n_blocks):
                if not np.isnan(m[b]):
                    if last == -1:
                        for q in range(b):
                            m[q] = m[b]
                    elif b - last > 1:
                        for q in range(last + 1, b):
                            m[q] = m[last] + (m[b] - m[last]) * (q - last) / (b - last)
                    last = b
            if last == -1:
                for b in range(n_blocks):
                    m[b] = 0.0
            else:
                for q in range(last + 1, n_blocks):
                    m[q] = m[last]
            for i in range(h):
                ext[i] = 2.0 * m[0] - m[h - i]
                ext[h + n_blocks + i] = 2.0 * m[n_blocks - 1] - m[n_blocks - 2 - i]
            for b in range(n_blocks):
                ext[h + b] = m[b]
            _running_median(ext, n_blocks, h, half, win, smooth)
            for j in range(n_pix):
                out[r, j] = smooth[right[j] - 1] * (1.0 - t[j]) + smooth[right[j]] * t[j]
            if it == n_iter:
                break
            c = 0
            for j in range(n_pix):
                rel[j] = np.nan
                if good[r, j]:
                    v = f[r, j] / out[r, j] - 1.0
                    if np.isfinite(v):
                        rel[j] = v
                        ratio[c] = v
                        c += 1
            if c < 3:
                break
            centre = _median_select(ratio, c)
            # the deviations in pixel order again: the selection left ``ratio``
            # partitioned around its median, an order that makes a quickselect slow
            c = 0
            for j in range(n_pix):
                if np.isfinite(rel[j]):
                    ratio[c] = abs(rel[j] - centre)
                    c += 1
            sd = max(1.4826 * _median_select(ratio, c), 0.01)
            n_keep = 0
            for j in range(n_pix):
                # NaN (not good, or a non-finite ratio) compares False: not kept
                keep[j] = rel[j] > -clip * sd
                if keep[j]:
                    n_keep += 1
            if n_keep < 3:
                for j in range(n_pix):
                    keep[j] = good[r, j]


def _continuum_blocks(wl: np.ndarray, window: float
                      ) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(pixels per block, blocks, right block of each pixel, interpolation weight) of a grid.

    Depends on the grid only: a :class:`Preprocessor` computes it once, and
    :func:`continuum_clipped_median` caches it (it cost as much as the continuum itself)."""
    wl = np.asarray(wl, dtype=np.float64)
    n_pix = wl.size
    per_block = max(1, int(round(float(window) / float(np.median(np.diff(wl))) / 16.0)))
    n_blocks = -(-n_pix // per_block)
    pad = n_blocks * per_block - n_pix
    centres = np.nanmean(np.concatenate([wl, np.full(pad, np.nan)]).reshape(n_blocks, per_block),
                         axis=1)
    right = np.clip(np.searchsorted(centres, wl), 1, max(n_blocks - 1, 1)).astype(np.int64)
    if n_blocks > 1:
        t = np.clip((wl - centres[right - 1]) / (centres[right] - centres[right - 1]), 0.0, 1.0)
    else:  # one block: a constant continuum
        right[:] = 0
        t = np.zeros(n_pix)
    right.flags.writeable = False
    t.flags.writeable = False
    return per_block, n_blocks, right, t


@functools.lru_cache(maxsize=16)
def _cached_blocks(wl_bytes: bytes, window: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    return _continuum_blocks(np.frombuffer(wl_bytes, np.float64), window)


def _good_pixels(f: np.ndarray, ivar: Any | None, exclude: Any | None) -> np.ndarray:
    """Pixels the robust continuum may use: finite flux, ``ivar > 0``, not ``exclude``."""
    good = np.isfinite(f)
    if ivar is not None:
        good &= np.asarray(ivar) > 0
    if exclude is not None:
        good &= ~np.asarray(exclude, dtype=bool)
    return good


def _clipped_median(f: np.ndarray, good: np.ndarray,
                    blocks: tuple[int, int, np.ndarray, np.ndarray], n_iter: int,
                    clip: float) -> np.ndarray:
    """The robust continuum of the 2-D rows ``f`` given the grid's ``blocks``."""
    per_block, n_blocks, right, t = blocks
    f = np.ascontiguousarray(f, dtype=np.float64)
    out = np.empty_like(f)
    _clipped_continuum_kernel(f, good, right, t, per_block, n_blocks, 8,
                              int(n_iter), float(clip), out)
    return out


def continuum_clipped_median(flux: Any, wavelength: Any, ivar: Any | None = None,
                             window: float = 500.0, n_iter: int = 3,
                             clip: float = 2.0, exclude: Any | None = None) -> np.ndarray:
    """Robust running-median continuum (last axis = pixels).

    A plain running median sits inside wide absorption (Balmer wings of hot
    stars, molecular bands of cool ones), so dividing by it erases part of the
    very features that tell spectra apart. Here the median uses good pixels
    only (``ivar > 0`` and not ``exclude``), and each of ``n_iter`` passes
    drops pixels more than ``clip`` robust standard deviations (1.4826 MAD of
    the ratio, at least 1%) *below* the previous continuum, so the estimate
    follows the line-free upper part of the spectrum. ``window`` is in
    Angstrom (converted with the grid's median pixel width).

    The continuum varies on scales of the window, not of a pixel, so it is
    estimated on blocks of 1/16 of the window: each pass takes the median of
    the kept pixels of every block, a running median of 17 blocks over them
    (point-reflected at the grid ends, so a sloped continuum stays straight
    there), and interpolates linearly between block centres. Compiled (numba),
    ~0.25 ms (CPU) per spectrum of 3920 pixels with the default 3 passes.
    """
    f = np.ascontiguousarray(np.atleast_2d(np.asarray(flux, dtype=np.float64)))
    wl = np.ascontiguousarray(wavelength, dtype=np.float64)
    blocks = _cached_blocks(wl.tobytes(), float(window))
    out = _clipped_median(f, _good_pixels(f, ivar, exclude), blocks, n_iter, clip)
    return out.reshape(np.shape(flux))


@_njit
def _divide_clip_mask_kernel(f, iv, cont, masked, has_clip, lo, hi, out_f, out_iv, frac_weak):
    """Row by row, in one pass over the pixels: the level of the continuum (median
    of |cont|, NaN ignored), continuum division with weak pixels (continuum not
    finite or <= 1e-3 level) set to 1 and ivar 0, clipping to [lo, hi], masked
    pixels to 1 and ivar 0. Written to give exactly the values of the NumPy steps
    it replaces (:meth:`Preprocessor._divide_clip_mask_numpy`)."""
    n_rows, n_pix = f.shape
    mag = np.empty(n_pix)
    n_free = 0
    for j in range(n_pix):
        if not masked[j]:
            n_free += 1
    for r in range(n_rows):
        c = 0
        for j in range(n_pix):
            a = abs(cont[r, j])
            if not np.isnan(a):
                mag[c] = a
                c += 1
        level = np.median(mag[:c]) if c > 0 else np.nan
        thresh = 1e-3 * level
        n_weak = 0
        for j in range(n_pix):
            cj = cont[r, j]
            weak = not (np.isfinite(cj) and cj > thresh)
            if weak:
                v = 1.0
                w = 0.0
                if not masked[j]:
                    n_weak += 1
            else:
                v = f[r, j] / cj
                w = iv[r, j] * (cj * cj)
            if has_clip:  # NumPy's clip: max then min, NaN kept, -0.0 > 0.0 is False
                if not np.isnan(v):
                    v = v if v > lo else lo
                    v = v if v < hi else hi
            if masked[j]:
                v = 1.0
                w = 0.0
            out_f[r, j] = v
            out_iv[r, j] = w
        frac_weak[r] = n_weak / n_free


def _divide_clip_mask(f: np.ndarray, iv: np.ndarray, cont: np.ndarray, masked: np.ndarray,
                      clip: tuple[float, float] | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide rows by their continuum, clip, flatten masked pixels (see the kernel);
    returns (flux, ivar, fraction of unmasked pixels with a weak continuum)."""
    f = np.ascontiguousarray(f, dtype=np.float64)
    iv = np.ascontiguousarray(iv, dtype=np.float64)
    cont = np.ascontiguousarray(cont, dtype=np.float64)
    out_f = np.empty_like(f)
    out_iv = np.empty_like(f)
    frac = np.empty(f.shape[0])
    lo, hi = clip if clip is not None else (0.0, 0.0)
    _divide_clip_mask_kernel(f, iv, cont, masked, clip is not None, float(lo), float(hi),
                             out_f, out_iv, frac)
    return out_f, out_iv, frac


def _divide_clip_mask_numpy(f: np.ndarray, iv: np.ndarray, cont: np.ndarray,
                            masked: np.ndarray, clip: tuple[float, float] | None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy steps :func:`_divide_clip_mask` fuses (kept as its test reference).

    A continuum at or below 1e-3 of the spectrum's median continuum (noisy
    blue ends) cannot be divided by: those pixels become 1 (continuum level)
    with ivar 0; the caller rejects spectra with more than 5 % of them.
    """
    mag = np.abs(cont)
    level = np.median(mag, axis=1, keepdims=True) if np.isfinite(mag).all() else \
        np.nanmedian(mag, axis=1, keepdims=True)
    weak = ~np.isfinite(cont) | ~(cont > 1e-3 * level)
    frac_weak = weak[:, ~masked].mean(axis=1)  # masked pixels do not count
    safe = np.where(weak, 1.0, cont)
    f = np.where(weak, 1.0, f / safe)
    iv = np.where(weak, 0.0, iv * safe ** 2)
    if clip is not None:
        f = np.clip(f, *clip)
    if masked.any():
        f = np.where(masked, 1.0, f)
        iv = np.where(masked, 0.0, iv)
    return f, iv, frac_weak


#: Strong night-sky and telluric features (vacuum Angstrom): [O I] 5577, Na D
#: (sky lamps and interstellar/stellar blends make it unreliable between epochs),
#: [O I] 6300/6364, telluric O2 B and A bands. Masked by ``mask_sky``.
SKY_LINES: tuple[tuple[float, float], ...] = (
    (5574.0, 5584.0), (5886.0, 5900.0), (6296.0, 6308.0), (6360.0, 6370.0),
    (6862.0, 6890.0), (7590.0, 7700.0))


def wavelength_mask(wavelength: Any, wavelength_range: tuple[float, float] | None = None,
                    mask_sky: bool = False) -> np.ndarray:
    """Boolean mask (True = do not use) of grid pixels outside ``wavelength_range``
    or, with ``mask_sky``, on the :data:`SKY_LINES` features."""
    wl = np.asarray(wavelength, dtype=np.float64)
    masked = np.zeros(wl.shape, bool)
    if wavelength_range is not None:
        lo, hi = wavelength_range
        masked |= (wl < lo) | (wl > hi)
    if mask_sky:
        for lo, hi in SKY_LINES:
            masked |= (wl >= lo) & (wl <= hi)
    return masked


def continuum_poly(flux: Any, wavelength: Any, weights: Any | None = None, degree: int = 3,
                   n_iter: int = 3, clip: float = 3.0) -> np.ndarray:
    """Sigma-clipped weighted Chebyshev fit of ``degree`` (last axis = pixels).

    Each pass drops pixels more than ``clip`` standard deviations from the
    previous fit. Batched: one least-squares solve per spectrum via the
    normal equations.
    """
    f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    wl = np.asarray(wavelength, dtype=np.float64)
    x = (2.0 * wl - (wl[0] + wl[-1])) / (wl[-1] - wl[0])
    v = np.polynomial.chebyshev.chebvander(x, int(degree))  # (npix, d+1)
    w = np.ones_like(f) if weights is None else \
        np.broadcast_to(np.asarray(weights, dtype=np.float64), f.shape).copy()
    w = (w > 0).astype(np.float64)
    fit = np.zeros_like(f)
    for _ in range(max(1, int(n_iter))):
        a = np.einsum("pk,np,pl->nkl", v, w, v)
        b = np.einsum("pk,np->nk", v, w * f)
        a += np.eye(v.shape[1]) * 1e-12 * np.trace(a, axis1=1, axis2=2)[:, None, None]
        coef = np.linalg.solve(a, b[..., None])[..., 0]
        fit = coef @ v.T
        resid = f - fit
        sd = np.sqrt(np.sum(w * resid ** 2, axis=1) / np.maximum(w.sum(axis=1) - 1, 1))
        w = w * (np.abs(resid) <= clip * sd[:, None])
    return fit.reshape(np.shape(flux))


def normalise(flux: Any, method: str = "l2", ivar: Any | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Normalise each spectrum (last axis = pixels).

    Methods: "minmax" -> [0, 1]; "minmax-sym" -> [-1, 1]; "l2" -> unit
    Euclidean norm; "sumsq" -> f / sum(f**2); "none".

    Returns
    -------
    flux : float64, same shape
    ivar : rescaled consistently (or None when not given)
    ok : bool array, False where the spectrum is degenerate (constant or
        zero) and cannot be normalised
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {method!r}")
    f = np.asarray(flux, dtype=np.float64)
    iv = None if ivar is None else np.asarray(ivar, dtype=np.float64)
    if method == "none":
        return f.copy(), None if iv is None else iv.copy(), np.ones(f.shape[:-1], dtype=bool)
    if method in ("minmax", "minmax-sym"):
        lo = f.min(axis=-1, keepdims=True)
        span = f.max(axis=-1, keepdims=True) - lo
        ok = span[..., 0] > 0
        span = np.where(span > 0, span, 1.0)
        scale = span if method == "minmax" else span / 2.0
        out = (f - lo) / scale
        if method == "minmax-sym":
            out -= 1.0
    else:
        ss = np.sum(f * f, axis=-1, keepdims=True)
        ok = ss[..., 0] > 0
        scale = np.sqrt(ss) if method == "l2" else ss
        scale = np.where(scale > 0, scale, 1.0)
        out = f / scale
    return out, None if iv is None else iv * scale ** 2, ok
