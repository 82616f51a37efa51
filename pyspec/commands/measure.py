"""``pyspec measure``: line and index measurements for FITS files or a spectrum store.

Writes an ECSV catalogue with one row per input spectrum (columns of
:func:`pyspec.measure.measure`, with units and descriptions) plus ``file``
and, for a store, ``id``.  Files that cannot be read get a row with NaN
measurements and the reason in ``measure_reason``; the job carries on.

(:func:`pyspec.measure.add_measurements` is the library step behind
``pyspec search --measure``.)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspec.io import Spectrum

from pyspec.commands import add_format, add_num_threads, add_out, add_overwrite, add_quiet
from pyspec.commands._workflow import check_out, math_threads, show_progress, write_table

HELP = "measure emission lines, redshifts, BPT classes and cool-star indices"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", default=[], metavar="FITS",
                        help="spectrum files (LAMOST / SDSS FITS)")
    parser.add_argument("--store", type=Path, metavar="PATH",
                        help="measure every spectrum of a spectrum store instead of files")
    parser.add_argument("--runs", nargs="+", type=Path, metavar="RUN.ecsv",
                        help="emission-line pipeline (seed 004): merge these 'pyspec search' "
                             "outputs into unique spectra, measure them from their files, keep "
                             "those with an emission-line CL redshift and split them at "
                             "--split-kms on both the CL and the template redshift")
    parser.add_argument("--all-rows", action="store_true",
                        help="with --runs: keep spectra without emission lines too")
    parser.add_argument("--split-kms", type=float, default=500.0, metavar="KMS",
                        help="with --runs: Galactic/extragalactic split (default 500 km/s)")
    parser.add_argument("--store-flux", action="store_true",
                        help="with --store: measure the stored, resampled arrays even where "
                             "the original files are readable (by default each row is read "
                             "back from its file, so that the numbers equal those of "
                             "'pyspec measure FILES')")
    add_out(parser, "catalogue to write (.ecsv, .fits, .vot, .csv)", required=True,
            metavar="TABLE", old="--output")
    add_format(parser)
    parser.add_argument("--no-lines", action="store_true", help="skip emission lines")
    parser.add_argument("--no-indices", action="store_true", help="skip cool-star indices")
    parser.add_argument("--method", choices=("direct", "gaussian"), default="direct",
                        help="line-flux method (default: direct integration)")
    parser.add_argument("--window", type=float, default=150.0, metavar="A",
                        help="median-filter continuum window in Angstrom (default 150)")
    parser.add_argument("--quantile", type=float, default=0.9,
                        help="residual quantile threshold (default 0.9, the top tenth)")
    parser.add_argument("--nsigma", type=float, default=3.0,
                        help="threshold in noise units (default 3)")
    parser.add_argument("--confirm-nsigma", type=float, default=2.0,
                        help="guided second-pass threshold for the CL redshift "
                             "(default 2; 0 turns the second pass off)")
    parser.add_argument("--no-xcorr", action="store_true",
                        help="no template cross-correlation: CL redshifts only, indices at the "
                             "header velocity (faster)")
    parser.add_argument("--chunk-size", type=int, default=256, metavar="N",
                        help="spectra read and measured per block (default 256)")
    add_overwrite(parser, "catalogue")
    add_quiet(parser)
    add_num_threads(parser, help="threads of the BLAS and numba math (default: all cores)")


def _read_one(path: str) -> Spectrum:
    """Read one file with pyspec.io (raises PyspecError / OSError / ValueError)."""
    from pyspec.io import read_spectrum

    return read_spectrum(path)


def _measure_kwargs(args: argparse.Namespace) -> dict:
    return {"lines": not args.no_lines, "indices": not args.no_indices, "method": args.method,
            "window": args.window, "quantile": args.quantile, "nsigma": args.nsigma,
            "confirm_nsigma": args.confirm_nsigma if args.confirm_nsigma > 0 else None,
            **({"templates": False} if args.no_xcorr else {})}


def _file_rows(paths: list[str], kwargs: dict, chunk: int, bar: Any):
    """Measure files block by block; unreadable files get a reason row."""
    from astropy.table import Column, vstack

    from pyspec.errors import PyspecError
    from pyspec.measure import measure

    tables = []
    for start in range(0, len(paths), chunk):
        block = paths[start:start + chunk]
        spectra: list[Any] = []
        reasons: dict[int, str] = {}
        for i, p in enumerate(block):
            try:
                spectra.append(_read_one(p))
            except (PyspecError, OSError, ValueError, KeyError, TypeError) as exc:
                reasons[i] = f"{type(exc).__name__}: {exc}"
                spectra.append("unreadable")
        t = measure(spectra, **kwargs)
        if reasons:
            col = t["measure_reason"]
            why = [reasons.get(i, str(v)) for i, v in enumerate(col)]
            t.replace_column("measure_reason", Column(why, name=col.name,
                                                      description=col.description))
        t.add_column([str(p) for p in block], name="file", index=0)
        tables.append(t)
        bar.update(len(block))
    return vstack(tables, metadata_conflicts="silent") if tables else None


def _plain(v: Any) -> Any:
    """A table cell as a plain Python value (bytes/NumPy scalars -> str/float/int)."""
    import numpy as np

    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


class _OriginalFiles:
    """Reads a store row's spectrum back from the file it was ingested from.

    The store holds spectra resampled onto its grid (neighbouring pixels
    averaged, errors rescaled): measuring those rows gives other numbers than
    measuring the files.  Reading the original file, and picking the spectrum
    with the row's id, makes ``measure --store`` and ``measure FILES`` agree
    exactly.  The last file read is kept (rows of one file are adjacent).
    """

    def __init__(self) -> None:
        self._path: str | None = None
        self._batch: Any = None

    def spectrum(self, path: str, spec_id: Any) -> Spectrum | None:
        from pyspec.errors import PyspecError
        from pyspec.io import read_batch

        if not path:
            return None
        if path != self._path:
            self._path, self._batch = path, None
            try:
                self._batch = read_batch(path)
            except (PyspecError, OSError, ValueError, KeyError, TypeError):
                return None
        if self._batch is None:
            return None
        for i, m in enumerate(self._batch.meta):
            if len(self._batch) == 1 or str(m.get("id")) == str(spec_id):
                return self._batch.spectrum(i)
        return None


def _store_spectra(store: Any, start: int, flux: Any, ivar: Any, w: Any,
                   originals: _OriginalFiles | None) -> tuple[list, list]:
    """Spectra of one chunk (original files where readable) and where each came from."""
    import types

    meta = store.meta[start:start + flux.shape[0]]
    spectra, sources = [], []
    for j in range(flux.shape[0]):
        row = {k: _plain(meta[k][j]) for k in meta.colnames}
        s = None
        if originals is not None:
            s = originals.spectrum(str(row.get("file") or ""), row.get("id"))
        if s is None:
            # the store's grid is vacuum (preprocessing converts air grids)
            row.pop("vacuum", None)
            s = types.SimpleNamespace(wavelength=w, flux=flux[j], ivar=ivar[j], meta=row)
            sources.append("store")
        else:
            sources.append("file")
        spectra.append(s)
    return spectra, sources


def _store_rows(store: Any, kwargs: dict, chunk: int, bar: Any, from_files: bool = True):
    import numpy as np
    from astropy.table import vstack

    from pyspec.measure import measure

    w = np.asarray(store.grid.wavelength, dtype=np.float64)
    originals = _OriginalFiles() if from_files else None
    tables = []
    for start, flux, ivar in store.iter_chunks(chunk):
        spectra, sources = _store_spectra(store, start, np.asarray(flux), np.asarray(ivar), w,
                                          originals)
        t = measure(spectra, **kwargs)
        meta = store.meta[start:start + len(t)]
        for name in ("file", "id"):
            if name in meta.colnames:
                t.add_column(meta[name], name=name, index=0)
        t["measured_from"] = sources
        t["measured_from"].description = ("file: the original file the row was ingested from; "
                                          "store: the stored resampled arrays")
        tables.append(t)
        bar.update(len(t))
    return vstack(tables, metadata_conflicts="silent") if tables else None


def _pipeline_rows(args: argparse.Namespace, kwargs: dict):
    from astropy.table import Table

    from pyspec.measure.lines.pipeline import emission_line_pipeline

    missing = [p for p in args.runs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"--runs: {missing[0]} not found")
    tables = [Table.read(p, format="ascii.ecsv") for p in args.runs]
    return emission_line_pipeline(tables, [p.stem for p in args.runs], read=_read_one,
                                  split_kms=args.split_kms, emission_only=not args.all_rows,
                                  **kwargs)


def run(args: argparse.Namespace) -> int:
    with math_threads(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pyspec.catalogue import provenance

    if args.out is None:
        raise ValueError("-o/--out TABLE is required")
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if bool(args.inputs) + (args.store is not None) + bool(args.runs) != 1:
        raise ValueError("give FITS files, --store PATH or --runs RUN.ecsv ... (exactly one)")
    if args.split_kms <= 0:
        raise ValueError(f"--split-kms must be positive, got {args.split_kms}")
    check_out(args)
    kwargs = _measure_kwargs(args)
    quiet = not show_progress(args)
    recipe = None
    if args.runs:
        t = _pipeline_rows(args, kwargs)
        inputs = [str(p) for p in args.runs]
    elif args.store is not None:
        from pyspec.store import SpectrumStore

        store = SpectrumStore.open(args.store)
        recipe = getattr(store, "preprocessing", None)
        with tqdm(total=len(store.meta), disable=quiet, unit="spectra", desc="measure") as bar:
            t = _store_rows(store, kwargs, args.chunk_size, bar, from_files=not args.store_flux)
        inputs = [str(args.store)]
    else:
        missing = [p for p in args.inputs if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"input not found: {missing[0]}"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                       else ""))
        with tqdm(total=len(args.inputs), disable=quiet, unit="spectra", desc="measure") as bar:
            t = _file_rows(list(args.inputs), kwargs, args.chunk_size, bar)
        inputs = [str(p) for p in args.inputs]
    if t is None:
        raise ValueError("no spectra to measure")
    t.meta.update(provenance(command="pyspec measure", inputs=inputs, recipe=recipe,
                             pyspec_measure=dict(kwargs)))
    write_table(t, args.out, args.format)
    n_bad = int(sum(1 for r in t["measure_reason"] if r))
    log.info("wrote %d rows to %s (%d not measurable)", len(t), args.out, n_bad)
    return 0
