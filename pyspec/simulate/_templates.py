"""Real template spectra for the simulator: selection, cleaning, rest frame, cache.

Templates are real survey spectra (the sample shipped in ``pyspec/data/sample``
and, when present, the ``shared/data`` corpus). Each is cleaned once: masked
and non-finite pixels are interpolated from their good neighbours, the
wavelengths are moved to the rest frame with the header redshift, the flux is
resampled onto one common log10 wavelength grid and divided by its median.
The cleaned library is cached in memory and on disk (``.npz`` keyed by the
input files, their sizes and times, and the cleaning version).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Common rest-frame grid: log10(lambda) from 3.0 (1000 A, QSO templates at
# z ~ 2 reach down there) to 4.0 (10,000 A) in LAMOST's own step of 1e-4
# (69 km/s per pixel).
REST_LOG_START = 3.0
REST_DLOG = 1e-4
REST_NPIX = 10001
CLEANING_VERSION = 1

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
_INVALID_Z = -9000.0  # LAMOST writes -9999 when it has no redshift


def shared_data_dir() -> Path | None:
    """The ``shared/data`` corpus if present (``PYSPEC_SHARED_DATA`` or next to the checkout)."""
    env = os.environ.get("PYSPEC_SHARED_DATA")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parents[2]
    candidates += [root.parent / "shared" / "data", root.parent.parent / "shared" / "data"]
    for c in candidates:
        if (c / "spectra_index.csv").is_file():
            return c
    return None


def cache_dir() -> Path:
    env = os.environ.get("PYSPEC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "pyspec"


@dataclass
class TemplateLibrary:
    """Cleaned rest-frame templates on the common log10 grid.

    Attributes
    ----------
    flux : ndarray of shape (n_templates, REST_NPIX), float32
        Median-normalised rest-frame flux (0 outside each template's coverage).
    lo, hi : ndarray of shape (n_templates,), int64
        First and last valid pixel of each template.
    ids, files, classes, subclasses : list of str
        Template id (file stem), source file, class (STAR, GALAXY, QSO) and subclass.
    z : ndarray of shape (n_templates,), float64
        Header redshift the template was moved from.
    snr : ndarray of shape (n_templates,), float64
        Header S/N in r.
    """

    flux: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    ids: list
    files: list
    classes: list
    subclasses: list
    z: np.ndarray
    snr: np.ndarray

    log_start: float = REST_LOG_START
    dlog: float = REST_DLOG

    def __len__(self) -> int:
        return self.flux.shape[0]

    @property
    def rest_wavelength(self) -> np.ndarray:
        return 10.0 ** (self.log_start + self.dlog * np.arange(self.flux.shape[1]))

    def subset(self, keep: np.ndarray) -> TemplateLibrary:
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return TemplateLibrary(self.flux[idx], self.lo[idx], self.hi[idx], pick(self.ids),
                               pick(self.files), pick(self.classes), pick(self.subclasses),
                               self.z[idx], self.snr[idx], self.log_start, self.dlog)

    @classmethod
    def from_arrays(cls, wavelengths, fluxes, masks=None, *, z=None, ids=None, classes=None,
                    subclasses=None, snr=None, files=None) -> TemplateLibrary:
        """Clean spectra given as arrays (observed frame) into a library.

        wavelengths, fluxes : sequences of 1-D arrays (Angstrom; any flux unit);
        masks : sequences of bool arrays, True = bad pixel (optional);
        z : header redshifts used to move to the rest frame (default 0).
        """
        n = len(fluxes)
        if len(wavelengths) != n or (masks is not None and len(masks) != n):
            raise ValueError("wavelengths, fluxes and masks must have one entry per template")
        z = np.zeros(n) if z is None else np.asarray(z, dtype=float)
        out = np.zeros((n, REST_NPIX), np.float32)
        lo = np.zeros(n, np.int64)
        hi = np.zeros(n, np.int64)
        ok = np.ones(n, bool)
        for i in range(n):
            m = None if masks is None else masks[i]
            res = clean_one(np.asarray(wavelengths[i], float), np.asarray(fluxes[i], float),
                            None if m is None else np.asarray(m, bool), float(z[i]))
            if res is None:
                ok[i] = False
                continue
            out[i], lo[i], hi[i] = res
        ids = list(ids) if ids is not None else [f"t{i}" for i in range(n)]
        lib = cls(out, lo, hi, ids, list(files) if files is not None else [""] * n,
                  list(classes) if classes is not None else ["STAR"] * n,
                  list(subclasses) if subclasses is not None else [""] * n, z,
                  np.asarray(snr, float) if snr is not None else np.full(n, np.nan))
        if not ok.all():
            log.warning("%d template(s) had too few good pixels and were dropped", (~ok).sum())
        return lib.subset(ok)


def clean_one(wave: np.ndarray, flux: np.ndarray, mask: np.ndarray | None, z: float):
    """Interpolate bad pixels, move to rest frame, resample to the common grid, normalise.

    Returns ``(flux (REST_NPIX,) float32, lo, hi)`` or None when fewer than half
    the pixels are usable. End runs of bad pixels are cut, not extrapolated.
    """
    good = np.isfinite(flux) & np.isfinite(wave) & (wave > 0)
    if mask is not None:
        good &= ~mask
    # LAMOST pads the ends with exact zeros
    good &= flux != 0.0
    if good.sum() < max(50, wave.size // 2):
        return None
    idx = np.flatnonzero(good)
    first, last = idx[0], idx[-1]
    w = wave[first:last + 1]
    f = np.interp(w, wave[good], flux[good])
    if not np.isfinite(z) or z <= _INVALID_Z or z <= -0.5:
        z = 0.0
    log_rest = np.log10(w) - np.log10(1.0 + z)
    grid = REST_LOG_START + REST_DLOG * np.arange(REST_NPIX)
    lo = int(np.ceil((log_rest[0] - REST_LOG_START) / REST_DLOG))
    hi = int(np.floor((log_rest[-1] - REST_LOG_START) / REST_DLOG))
    lo, hi = max(lo, 0), min(hi, REST_NPIX - 1)
    if hi - lo < 50:
        return None
    out = np.zeros(REST_NPIX, np.float32)
    out[lo:hi + 1] = np.interp(grid[lo:hi + 1], log_rest, f)
    med = np.median(out[lo:hi + 1])
    if not np.isfinite(med) or med <= 0:
        return None
    out[lo:hi + 1] /= med
    return out, lo, hi


# ---------------------------------------------------------------- reading real files

def _index_rows(directory: Path) -> list[dict]:
    """Rows of sample_index.csv / spectra_index.csv with an absolute ``path``."""
    for name, key in (("sample_index.csv", "file"), ("spectra_index.csv", "relative_path")):
        p = directory / name
        if p.is_file():
            with p.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            for r in rows:
                r["path"] = str(directory / r[key])
            return rows
    raise FileNotFoundError(f"no sample_index.csv or spectra_index.csv in {directory}")


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def select_files(sources, classes=("STAR", "GALAXY", "QSO"), min_snr=10.0) -> list[dict]:
    """Index rows of usable LAMOST/SDSS templates: wanted class and header S/N >= min_snr."""
    rows = []
    for src in sources:
        for r in _index_rows(Path(src)):
            layout = r.get("layout", "")
            if not (layout.startswith("LAMOST") or layout.startswith("SDSS")):
                continue  # e.g. Ondrejov echelle cut-outs around H-alpha only
            if r.get("obj_class") not in classes:
                continue
            if not _float(r.get("snr_r")) >= min_snr:
                continue
            rows.append(r)
    return rows


def _cache_key(rows: list[dict]) -> str:
    h = hashlib.sha256(f"v{CLEANING_VERSION} {REST_LOG_START} {REST_DLOG} {REST_NPIX}".encode())
    for r in rows:
        st = Path(r["path"]).stat()
        h.update(f"{r['path']}|{st.st_size}|{st.st_mtime_ns}|{r.get('z')}\n".encode())
    return h.hexdigest()[:20]


_MEMORY_CACHE: dict[str, TemplateLibrary] = {}


def load_library(sources=None, classes=("STAR", "GALAXY", "QSO"), min_snr=10.0,
                 use_cache=True) -> TemplateLibrary:
    """Read, clean and cache the template library.

    Parameters
    ----------
    sources : list of directories or None
        Directories holding ``sample_index.csv`` or ``spectra_index.csv``;
        default: the shipped sample plus the shared corpus when present.
    classes : tuple of str
        Classes to keep (header CLASS).
    min_snr : float
        Minimum header S/N in r of a template (noisier ones would carry their
        own noise into every simulated spectrum).
    use_cache : bool
        Use and write the memory and disk caches.
    """
    if sources is None:
        sources = [SAMPLE_DIR]
        shared = shared_data_dir()
        if shared is not None:
            sources.append(shared)
    rows = select_files(sources, tuple(classes), float(min_snr))
    if not rows:
        raise ValueError(f"no template spectra of classes {list(classes)} with S/N >= {min_snr} "
                         f"in {[str(s) for s in sources]}")
    key = _cache_key(rows)
    if use_cache and key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    path = cache_dir() / f"templates-{key}.npz"
    lib = None
    if use_cache and path.is_file():
        try:
            lib = _load_npz(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable template cache %s: %s", path, exc)
    if lib is None:
        lib = _read_and_clean(rows)
        if use_cache:
            try:
                _save_npz(path, lib)
            except OSError as exc:
                log.warning("could not write template cache %s: %s", path, exc)
    if use_cache:
        _MEMORY_CACHE[key] = lib
    return lib


def _read_and_clean(rows: list[dict]) -> TemplateLibrary:
    from pyspec.io import read_spectrum

    waves, fluxes, masks, keep = [], [], [], []
    seen = set()
    for r in rows:
        # the shared corpus holds the shipped sample again (uncompressed), and some
        # objects in two layouts: one template per file stem
        name = Path(r["path"]).name.split(".fits")[0]
        if name in seen:
            continue
        seen.add(name)
        try:
            s = read_spectrum(r["path"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("template %s skipped: %s", r["path"], exc)
            continue
        waves.append(s.wavelength)
        fluxes.append(s.flux)
        masks.append(np.asarray(s.mask, bool) | ~(np.asarray(s.ivar) > 0))
        keep.append(r)
    return TemplateLibrary.from_arrays(
        waves, fluxes, masks, z=[_float(r.get("z")) for r in keep],
        ids=[Path(r["path"]).name.split(".fits")[0] for r in keep],
        classes=[r["obj_class"] for r in keep], subclasses=[r.get("subclass", "") for r in keep],
        snr=[_float(r.get("snr_r")) for r in keep], files=[r["path"] for r in keep])


def _save_npz(path: Path, lib: TemplateLibrary) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, flux=lib.flux, lo=lib.lo, hi=lib.hi, ids=np.array(lib.ids, dtype=str),
             files=np.array(lib.files, dtype=str), classes=np.array(lib.classes, dtype=str),
             subclasses=np.array(lib.subclasses, dtype=str), z=lib.z, snr=lib.snr)
    os.replace(tmp, path)


def _load_npz(path: Path) -> TemplateLibrary:
    with np.load(path, allow_pickle=False) as d:
        return TemplateLibrary(d["flux"], d["lo"], d["hi"], d["ids"].tolist(),
                               d["files"].tolist(), d["classes"].tolist(),
                               d["subclasses"].tolist(), d["z"], d["snr"])
