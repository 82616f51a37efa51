"""Label tables for the semi-supervised and active-learning tools.

A labels table is CSV or ECSV with an id column (``id``, ``file`` or
``ondrejov_file``) and a label column (``label``, or ``label_name``). Ids
match store rows by their ``id`` or ``file`` column, as written or by file
stem (``a/b/x.fits.gz`` -> ``x``), so a list of file paths can label a store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_labels", "file_stem", "labels_for_rows"]

_ID_COLUMNS = ("id", "file", "ondrejov_file")
_LABEL_COLUMNS = ("label", "label_name")


def file_stem(s: str) -> str:
    """``a/b/x.fits.gz`` -> ``x`` (other strings unchanged)."""
    name = str(s).replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".gz", ".fits", ".fit"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def read_labels(path: str | os.PathLike, id_column: str | None = None,
                label_column: str | None = None) -> dict[str, str]:
    """``{id: label}`` from a labels table; empty, ``--`` and ``-1`` labels are skipped."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labels file {path}")
    fmt = "ascii.ecsv" if path.suffix == ".ecsv" else "ascii.csv"
    try:
        t = Table.read(path, format=fmt)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise ValueError(f"{path}: not a readable {fmt[6:].upper()} table ({exc})") from None
    idc = id_column or next((c for c in _ID_COLUMNS if c in t.colnames), None)
    labc = label_column or next((c for c in _LABEL_COLUMNS if c in t.colnames), None)
    if idc not in t.colnames or labc not in t.colnames:
        raise ValueError(f"{path}: need an id column ({' or '.join(_ID_COLUMNS)}) and a label "
                         f"column ({' or '.join(_LABEL_COLUMNS)}); found {t.colnames}")
    out = {}
    for i, lab in zip(t[idc], t[labc], strict=True):
        if np.ma.is_masked(lab) or str(lab).strip() in ("", "--", "-1"):
            continue
        out[str(i)] = str(lab).strip()
    return out


def labels_for_rows(labels: dict[str, str], ids: Sequence[Any],
                    files: Sequence[Any] | None = None) -> np.ndarray:
    """Label of each row (``""`` when unlabelled), matching ids, files and stems."""
    lookup = {**{file_stem(k): v for k, v in labels.items()}, **labels}
    out = np.full(len(ids), "", dtype=object)
    for r, i in enumerate(ids):
        keys = [str(i), file_stem(str(i))]
        if files is not None:
            keys += [str(files[r]), file_stem(str(files[r]))]
        for key in keys:
            if key in lookup:
                out[r] = lookup[key]
                break
    return out
