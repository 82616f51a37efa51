"""The emission-line galaxy study end to end: merge runs, pre-select, split at 500 km/s.

The study ran the similarity search several times (different query sets and
models, twelve runs), merged the candidate lists into unique spectra, kept
those with emission lines, measured their line-combination (CL) redshift and
compared it with the redshift transferred from the nearest template (RT,
``pyspec search --targets``), splitting Galactic from extragalactic objects at
500 km/s on *both* redshifts.  The steps:

:func:`merge_runs`
    Candidate tables of several ``pyspec search`` runs (ECSV written by
    ``--queries`` or ``--targets``) -> one row per unique spectrum (by
    ``id``, else ``file``), with ``n_runs``, the runs that found it and its
    best distance; for each spectrum the row of the run where it was closest
    is kept (so its ``template_z`` comes from its best template match).
:func:`preselect_emission`
    Rows of a :func:`pyspec.measure.measure` table with an emission-line CL
    redshift (``min_lines`` lines, 3 as in the study).
:func:`velocity_split`
    ``galactic`` when both |c z_CL| and |c z_RT| are below 500 km/s,
    ``extragalactic`` when both are above, ``disagree`` when they fall on
    different sides, and the side of the one redshift present when the other
    is missing (``galactic (CL only)`` ...); ``unknown`` without either.
:func:`emission_line_pipeline`
    All of it: merge, measure the unique spectra (read from their files),
    pre-select, split, and add the study's confirmation ``|z_CL - z_RT| <
    0.001``.

``pyspec measure --runs RUN.ecsv ...`` runs :func:`emission_line_pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pyspec.classify import C_KMS

__all__ = ["merge_runs", "preselect_emission", "velocity_split", "emission_line_pipeline"]

_DISTANCE_COLUMNS = ("best_distance", "template_distance")


def _key_column(table: Any) -> str:
    for name in ("id", "file"):
        if name in table.colnames:
            return name
    raise ValueError("a run table needs an 'id' or 'file' column to merge on (pyspec search "
                     "writes both)")


def _distance(table: Any) -> np.ndarray:
    for name in _DISTANCE_COLUMNS:
        if name in table.colnames:
            d = np.asarray(table[name], np.float64)
            return np.where(d < 0, np.inf, d)  # -1 marks "no template" in Hamming tables
    return np.zeros(len(table))


def merge_runs(tables: Sequence[Any], names: Sequence[str] | None = None):
    """Unique spectra over several search runs.

    Parameters
    ----------
    tables : sequence of astropy.table.Table
        Outputs of ``pyspec search`` (candidate catalogues or template matches).
    names : sequence of str, optional
        Run labels (default ``run0``, ``run1`` ...).

    Returns
    -------
    astropy.table.Table
        One row per unique ``id`` (or ``file``): the columns of the run where
        the spectrum had its smallest distance (``best_distance`` or
        ``template_distance``; ties: the earlier run), plus ``n_runs`` and
        ``runs`` (comma-separated labels of every run that found it), sorted
        by key.

    Raises
    ------
    ValueError
        No tables, tables without an id/file column, or a label count mismatch.
    """
    from astropy.table import Table, vstack

    if not tables:
        raise ValueError("merge_runs needs at least one run table")
    names = [f"run{i}" for i in range(len(tables))] if names is None else list(names)
    if len(names) != len(tables):
        raise ValueError(f"{len(names)} run names for {len(tables)} tables")
    key = _key_column(tables[0])
    parts = []
    for i, t in enumerate(tables):
        if key not in t.colnames:
            raise ValueError(f"run {names[i]} has no {key!r} column (the first run has)")
        t = Table(t, copy=True)
        t["_run"] = i
        t["_dist"] = _distance(t)
        parts.append(t)
    allrows = vstack(parts, join_type="outer", metadata_conflicts="silent")
    keys = np.array([str(k) for k in allrows[key]])
    # best row per key: sort by (key, distance, run) and keep the first of each key
    order = np.lexsort((np.asarray(allrows["_run"]), np.asarray(allrows["_dist"]), keys))
    keys_sorted = keys[order]
    first = np.ones(order.size, bool)
    first[1:] = keys_sorted[1:] != keys_sorted[:-1]
    out = allrows[order[first]]
    runs_of: dict[str, set] = {}
    for k, r in zip(keys, np.asarray(allrows["_run"]), strict=True):
        runs_of.setdefault(k, set()).add(int(r))
    uniq = keys_sorted[first]
    out["n_runs"] = np.array([len(runs_of[k]) for k in uniq], np.int32)
    out["runs"] = [",".join(names[r] for r in sorted(runs_of[k])) for k in uniq]
    out["n_runs"].description = "number of runs that found this spectrum"
    out["runs"].description = "labels of the runs that found it"
    out.remove_columns(["_run", "_dist"])
    out.meta["merged_runs"] = {"runs": names, "key": key, "n_rows_in": int(len(allrows)),
                               "n_unique": int(len(out))}
    return out


def preselect_emission(measured: Any, min_lines: int = 3) -> np.ndarray:
    """Boolean mask of rows with an emission-line CL redshift from >= min_lines lines."""
    n = np.asarray(measured["n_lines_cl"], np.int64)
    z = np.asarray(measured["z_cl"], np.float64)
    return np.isfinite(z) & (n >= int(min_lines))


def velocity_split(z_cl: Any, z_rt: Any, split_kms: float = 500.0) -> np.ndarray:
    """The study's 500 km/s split on both redshifts (see the module docstring).

    Examples
    --------
    >>> velocity_split([0.0001, 0.05, 0.0001, float("nan")], [0.0002, 0.05, 0.05, 0.05]).tolist()
    ['galactic', 'extragalactic', 'disagree', 'extragalactic (RT only)']
    """
    a = np.asarray(z_cl, np.float64) * C_KMS
    b = np.asarray(z_rt, np.float64) * C_KMS
    a, b = np.broadcast_arrays(a, b)
    out = np.full(a.shape, "unknown", dtype="<U24")

    def side(v):
        return np.where(np.abs(v) < split_kms, "galactic", "extragalactic")

    both = np.isfinite(a) & np.isfinite(b)
    sa, sb = side(np.nan_to_num(a)), side(np.nan_to_num(b))
    out[both] = np.where(sa[both] == sb[both], sa[both], "disagree")
    only_a = np.isfinite(a) & ~np.isfinite(b)
    only_b = ~np.isfinite(a) & np.isfinite(b)
    out[only_a] = np.char.add(sa[only_a], " (CL only)")
    out[only_b] = np.char.add(sb[only_b], " (RT only)")
    return out


def emission_line_pipeline(runs: Sequence[Any], names: Sequence[str] | None = None, *,
                           read: Any = None, min_lines: int = 3, split_kms: float = 500.0,
                           emission_only: bool = True, **measure_kwargs: Any):
    """Merge runs, measure the unique spectra, keep emission-line ones, split at 500 km/s.

    Parameters
    ----------
    runs : sequence of astropy.table.Table
        ``pyspec search`` outputs; their ``file`` column locates the spectra.
    names : run labels (see :func:`merge_runs`).
    read : callable or None
        ``read(path)`` -> spectrum; default :func:`pyspec.io.read_spectrum`.
        A file that cannot be read gives a row with ``measure_reason``.
    min_lines : int
        Emission lines required by the pre-selection.
    split_kms : float
        Velocity split (500 km/s in the study).
    emission_only : bool
        Keep only the pre-selected rows (False: keep all, with the
        ``emission_line`` flag).
    **measure_kwargs
        Passed to :func:`pyspec.measure.measure`.

    Returns
    -------
    astropy.table.Table
        The merged run columns, the measurement columns (prefixed ``m_``
        where a name is taken), ``emission_line``, ``z_rt`` (the run's
        ``template_z`` when present), ``z_confirmed`` and ``velocity_split``.
    """
    from pyspec.measure import add_measurements

    if "file" not in runs[0].colnames:
        raise ValueError("the run tables need a 'file' column to read the spectra from")
    merged = merge_runs(runs, names)
    if read is None:
        from pyspec.io import read_spectrum as read
    spectra: list[Any] = []
    for path in merged["file"]:
        try:
            spectra.append(read(str(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            spectra.append(f"unreadable: {type(exc).__name__}: {exc}")
    z_rt = (np.asarray(merged["template_z"], np.float64) if "template_z" in merged.colnames
            else np.full(len(merged), np.nan))
    table = add_measurements(merged, spectra, template_z=z_rt, **measure_kwargs)
    zcol = "m_z_cl" if "m_z_cl" in table.colnames else "z_cl"
    ncol = "m_n_lines_cl" if "m_n_lines_cl" in table.colnames else "n_lines_cl"
    keep = preselect_emission({"z_cl": table[zcol], "n_lines_cl": table[ncol]}, min_lines)
    table["emission_line"] = keep
    table["emission_line"].description = f"CL redshift from >= {min_lines} emission lines"
    table["velocity_split"] = velocity_split(table[zcol], z_rt, split_kms)
    table["velocity_split"].description = (f"|c z| vs {split_kms:g} km/s on both z_cl and the "
                                           "template redshift z_rt")
    table.meta["emission_line_pipeline"] = {"min_lines": int(min_lines),
                                            "split_kms": float(split_kms),
                                            "n_unique": int(len(table)),
                                            "n_emission": int(keep.sum())}
    return table[keep] if emission_only else table
