"""Result catalogues: astropy Tables with units, descriptions, UCDs and provenance.

Every table pyspec writes (neighbour lists, candidate catalogues, template
matches, representative query sets) goes through :func:`write_catalogue`,
which picks the format from the file name:

``.ecsv`` (default, lossless)
    units, column descriptions, UCDs and the full provenance block survive
    a round trip exactly.
``.fits`` / ``.fit`` / ``.fits.gz``
    a binary table; units in ``TUNITn``, descriptions and UCDs in
    ``TCOMMn``/``TUCDn`` cards and the provenance as JSON in a long-string
    ``PYSPMETA`` card, all restored by :func:`read_catalogue`.
``.vot`` / ``.votable`` / ``.xml``
    VOTable 1.4 with ``unit``, ``ucd`` and ``DESCRIPTION`` on every field
    (what TOPCAT and Aladin use to recognise positions, ids and redshifts)
    and the provenance as ``INFO`` elements.
``.csv``
    plain comma-separated values for spreadsheets; units and provenance are
    not kept (use ECSV when they matter).

Known column names (``id``, ``ra``, ``dec``, ``z``, ``snr_r``, ``distance``,
...) get their unit, description and UCD from :data:`COLUMNS` via
:func:`annotate`; other columns keep whatever they carry.
"""

from __future__ import annotations

import json
import os
import time as _time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["COLUMNS", "annotate", "provenance", "write_catalogue", "read_catalogue",
           "catalogue_format", "check_catalogue_path"]

# name -> (unit or None, description, UCD). UCD1+ words from the IVOA controlled
# vocabulary (tests check each against astropy's copy of the list).
COLUMNS: dict[str, tuple[str | None, str, str]] = {
    "id": (None, "spectrum identifier (LAMOST obsid, SDSS plate-mjd-fiber, ...)",
           "meta.id;meta.main"),
    "file": (None, "source file of the spectrum", "meta.ref.url"),
    "ra": ("deg", "right ascension (ICRS)", "pos.eq.ra;meta.main"),
    "dec": ("deg", "declination (ICRS)", "pos.eq.dec;meta.main"),
    "class": (None, "survey pipeline class (STAR, GALAXY, QSO, Unknown)", "src.class"),
    "subclass": (None, "survey pipeline subclass / spectral type", "src.spType"),
    "z": (None, "survey pipeline redshift", "src.redshift"),
    "z_err": (None, "uncertainty of the survey redshift", "stat.error;src.redshift"),
    # SDSS band centres: u 355 nm (U), g 477 nm (B), r 623 nm (R), i 763 nm and z 913 nm (I)
    "snr_u": (None, "signal-to-noise ratio in the u band", "stat.snr;em.opt.U"),
    "snr_g": (None, "signal-to-noise ratio in the g band", "stat.snr;em.opt.B"),
    "snr_r": (None, "signal-to-noise ratio in the r band", "stat.snr;em.opt.R"),
    "snr_i": (None, "signal-to-noise ratio in the i band", "stat.snr;em.opt.I"),
    "snr_z": (None, "signal-to-noise ratio in the z band", "stat.snr;em.opt.I"),
    "snr": (None, "signal-to-noise ratio (r band)", "stat.snr"),
    "data_release": (None, "survey data release of the spectrum", "meta.dataset"),
    "pipeline": (None, "survey pipeline version that reduced the spectrum", "meta.version"),
    "layout": (None, "FITS layout the spectrum was read from", "meta.code"),
    "format": (None, "file format reader that read the spectrum", "meta.code"),
    "vacuum": (None, "True when the file's wavelengths are in vacuum (False: air)", "meta.code"),
    "object": (None, "object name from the FITS header", "meta.id"),
    "row": (None, "row of the spectrum in the engine's store", "meta.record"),
    "target_row": (None, "row of the target spectrum in its store", "meta.record"),
    "rank": (None, "rank of the neighbour (1 = nearest)", "meta.number"),
    "distance": (None, "distance to the query (Hamming: bits; PQ/re-rank: squared L2)",
                 "stat.value"),
    "query_id": (None, "identifier of the query spectrum", "meta.id.cross"),
    "query_index": (None, "position of the query among the inputs (0 = first)",
                    "meta.number"),
    "query_file": (None, "file of the query spectrum", "meta.ref.url"),
    "n_queries": (None, "number of queries that retrieved this spectrum", "meta.number"),
    "best_distance": (None, "smallest distance to any query", "stat.value;stat.min"),
    "best_query": (None, "identifier of the nearest query", "meta.id.cross"),
    "best_query_class": (None, "class of the nearest query", "src.class"),
    "best_query_subclass": (None, "subclass of the nearest query", "src.spType"),
    "template_id": (None, "identifier of the nearest template", "meta.id.cross"),
    "template_row": (None, "row of the nearest template in the engine's store",
                     "meta.record"),
    "template_distance": (None, "distance to the nearest template", "stat.value"),
    "template_class": (None, "class carried over from the nearest template", "src.class"),
    "template_subclass": (None, "subclass carried over from the nearest template", "src.spType"),
    "template_z": (None, "redshift transferred from the nearest template (RT)", "src.redshift"),
    "cluster": (None, "cluster label (BIRCH group x KMeans sub-cluster)", "meta.code.class"),
    "group": (None, "BIRCH group label", "meta.code.class"),
    "cluster_size": (None, "number of spectra in the cluster", "meta.number"),
    "centre_distance": (None, "Euclidean distance to the cluster centre in PCA space",
                        "stat.value"),
    # pyspec evaluate: one row per model, code length and cut-off
    "hasher": (None, "model that ranked the database (exact-l2: the ceiling row)",
               "meta.code"),
    "n_bits": ("bit", "code length (0 for the exact-L2 row)", "meta.number"),
    "cutoff": (None, "number of retrieved spectra per query", "meta.number"),
    "precision": (None, "mean fraction of the retrieved spectra sharing the query's label",
                  "stat.value"),
    "recall": (None, "mean fraction of the query's label class retrieved", "stat.value"),
    "fit_time": ("s", "time to fit the model", "time.interval"),
    # pyspec spread: label spreading candidates
    "label": (None, "label given or spread to the spectrum", "src.class"),
    "labelled": (None, "True where the label was given (not spread)", "meta.code"),
    "given": (None, "True where the label was given (not spread)", "meta.code"),
    "confidence": (None, "probability of the spread label", "stat.probability"),
    "candidate": (None, "True where the target class is the label with at least the "
                  "threshold probability", "meta.code"),
    "measured_from": (None, "file: the original file the row was ingested from; store: the "
                      "stored resampled arrays", "meta.code"),
    "measure_reason": (None, "why the spectrum could not be measured (empty when measured)",
                       "meta.code.error"),
}

# UCDs of columns not listed above, by name pattern (first match wins). The measurement
# columns of pyspec.measure carry their own descriptions; these give them UCDs.
_TEXT_UCD_RULES: tuple[tuple[str, str], ...] = (  # text columns: notes, codes, names
    (r"reason", "meta.note"),
    (r"(^|_)(class|bpt)(_|$)", "src.class"),
    (r"(^|_)template", "meta.id.cross"),
    (r"(^|_)(id|obsid)(_|$)", "meta.id"),
)
_NUMBER_UCD_RULES: tuple[tuple[str, str], ...] = (
    (r"(^|_)(err|error)(_|$)", "stat.error"),
    (r"(^|_)(p|prob|proba|probability)(_|$)", "stat.probability"),
    (r"(^|_)snr(_|$)", "stat.snr"),
    (r"(^|_)ew(_|$)", "spect.line.eqWidth"),
    (r"(^|_)fwhm(_|$)", "spect.line.width"),
    (r"(^|_)flux(_|$)", "phys.flux;em.line"),
    (r"_r_td$", "stat.correlation"),
    (r"(^|_)(rv|velocity|vel)(_|$)|_kms$", "spect.dopplerVeloc.opt"),
    (r"(^|_)z(_|$)", "src.redshift"),
    (r"^n_|(^|_)count(_|$)", "meta.number"),
    (r"^(tio|cah|cao|zeta)", "spect.index"),
    (r"(^|_)r?chi2(_|$)", "stat.fit.chi2"),
)


def _fallback_description(name: str) -> str:
    """A description for a column of no known name (``p_<class>`` from label spreading)."""
    if name.startswith("p_"):
        return f"probability of the class {name[2:]}"
    return f"{name} (pyspec column)"


def _guess_ucd(name: str, dtype: np.dtype) -> str:
    """A valid UCD1+ for a column of no known name: by its kind, then its name."""
    import re

    if dtype.kind == "b":
        return "meta.code"
    text = dtype.kind in "USO"
    for pattern, ucd in _TEXT_UCD_RULES if text else _NUMBER_UCD_RULES:
        if re.search(pattern, name.lower()):
            return ucd
    return "meta.code" if text else "stat.value"


_VOT_META = "pyspec_meta"
_VO_ANGSTROM = "0.1nm"  # how VOTables carry Angstrom (read back as Angstrom)
_FORMATS = {".ecsv": "ecsv", ".fits": "fits", ".fit": "fits", ".fts": "fits",
            ".vot": "votable", ".votable": "votable", ".xml": "votable", ".csv": "csv"}


def catalogue_format(path: str | os.PathLike, format: str | None = None) -> str:
    """Resolve the catalogue format: explicit ``format`` or the file name suffix.

    Raises
    ------
    ValueError
        For an unknown format or suffix.
    """
    if format is not None:
        fmt = format.lower()
        if fmt not in set(_FORMATS.values()):
            raise ValueError(f"unknown catalogue format {format!r}; "
                             "choose ecsv, fits, votable or csv")
        return fmt
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    if suffix not in _FORMATS:
        raise ValueError(f"cannot tell the catalogue format of {str(path)!r} from its suffix; "
                         "use .ecsv, .fits, .vot or .csv (or pass format=)")
    return _FORMATS[suffix]


def check_catalogue_path(path: str | os.PathLike, format: str | None = None, *,
                         overwrite: bool = True) -> str:
    """Check an output catalogue path before any work; return its format.

    Raises
    ------
    ValueError
        For an unknown format or suffix.
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        When the folder of ``path`` does not exist.
    """
    fmt = catalogue_format(path, format)
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"output directory {p.parent} does not exist")
    return fmt


def annotate(table: Table, units: Mapping[str, str | None] | None = None) -> Table:
    """Attach units, descriptions and UCDs to every column (in place; returns the table).

    Known names (:data:`COLUMNS`) get their unit, description and UCD; other
    columns get a UCD by name pattern and, when they have none, a description
    naming the column. ``units`` overrides the unit of named columns (e.g.
    ``{"distance": "bit"}``); a column that already has a unit, description
    or UCD keeps it.
    """
    import astropy.units as u

    units = dict(units or {})
    for name in table.colnames:
        col = table[name]
        known = COLUMNS.get(name)
        unit = units.get(name, known[0] if known else None)
        if unit is not None and getattr(col, "unit", None) is None:
            col.unit = u.Unit(unit)
        if not col.info.description:
            col.info.description = known[1] if known else _fallback_description(name)
        col.info.meta = dict(col.info.meta or {})
        col.info.meta.setdefault("ucd", known[2] if known
                                 else _guess_ucd(name, np.asarray(col).dtype))
    return table


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def provenance(*, command: str | None = None, engine: Mapping[str, Any] | None = None,
               model: Mapping[str, Any] | None = None, inputs: Iterable[Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    """Provenance block for a catalogue's ``meta``.

    Returns a JSON-serialisable dict with the pyspec version, the UTC creation
    time (ISO 8601), the selected SIMD level, the command, engine and model
    parameters, the input files and any ``extra`` items.
    """
    from pyspec import __version__

    try:
        from pyspec._config import config

        simd = config().get("simd_selected")
    except Exception:  # the compiled module may be absent in a source tree
        simd = None
    block = {
        "pyspec_version": __version__,
        "created_utc": utc_now_iso(),
        "simd_level": simd,
    }
    if command is not None:
        block["command"] = command
    if engine is not None:
        block["engine"] = engine
    if model is not None:
        block["model"] = model
    if inputs is not None:
        block["inputs"] = [str(p) for p in inputs]
    block.update(extra)
    return _jsonable(block)


def restamp(block: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """A fresh copy of a :func:`provenance` block, created now, with ``extra`` items.

    For callers that stamp many results with the same block (one per query):
    building it once and restamping costs a few microseconds instead of the
    full block's. Nested dicts and lists are copied, so a result's ``meta``
    never shares mutable state with the block or with another result.
    """
    out = _copy_plain(block)
    out["created_utc"] = utc_now_iso()
    out.update(_jsonable(extra))
    return out


def _copy_plain(value: Any) -> Any:
    """Copy of JSON-like data (dicts, lists, scalars); cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _copy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_plain(v) for v in value]
    return value


_utc_stamp: tuple[int, str] = (-1, "")  # (whole second, its ISO text): one strftime per second


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 to the second (``2026-12-07T04:05:06Z``)."""
    global _utc_stamp
    now = int(_time.time())
    second, text = _utc_stamp  # one tuple: threads see a consistent pair
    if second != now:
        text = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(now))
        _utc_stamp = (now, text)
    return text


def write_catalogue(table: Table, path: str | os.PathLike, format: str | None = None,
                    overwrite: bool = True) -> Path:
    """Write ``table`` (astropy Table) to ``path`` in ECSV, FITS, VOTable or CSV.

    Parameters
    ----------
    table : astropy.table.Table
        Catalogue; known columns are annotated (see :func:`annotate`).
    path : path-like
        Output file; the suffix selects the format unless ``format`` is given.
    format : {"ecsv", "fits", "votable", "csv"}, optional
    overwrite : bool
        Replace an existing file (default True).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    try:
        fmt = check_catalogue_path(path, format, overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another name"
                              ) from None
    table = annotate(table.copy(copy_data=False))
    table.meta = _jsonable(dict(table.meta))
    if fmt == "ecsv":
        table.write(path, format="ascii.ecsv", overwrite=True)
    elif fmt == "csv":
        plain = table.copy(copy_data=False)
        plain.meta = {}
        plain.write(path, format="ascii.csv", overwrite=True)
    elif fmt == "fits":
        _write_fits(table, path)
    else:
        _write_votable(table, path)
    return path


def _write_fits(table: Table, path: Path) -> None:
    from astropy.io import fits
    from astropy.table import Table

    plain = Table(table, copy=True)
    plain.meta = {}
    utf8 = []
    for name in plain.colnames:  # FITS strings are ASCII: store others as UTF-8 bytes
        col = plain[name]
        if col.dtype.kind == "i" and col.dtype.itemsize == 1:  # FITS has no signed bytes
            plain[name] = col.astype(np.int16)
        if col.dtype.kind == "U" and any(not str(v).isascii() for v in col):
            plain[name] = np.char.encode(np.asarray(col), "utf-8")
            utf8.append(name)
    hdu = fits.table_to_hdu(plain)
    for i, name in enumerate(table.colnames, start=1):
        col = table[name]
        if col.info.description:
            hdu.header[f"TCOMM{i}"] = col.info.description
        ucd = (col.info.meta or {}).get("ucd")
        if ucd:
            hdu.header[f"TUCD{i}"] = ucd
    if utf8:
        hdu.header["PYSPUTF8"] = (json.dumps(utf8), "columns holding UTF-8 bytes")
    hdu.header["PYSPVERS"] = (str(table.meta.get("pyspec_version", "")), "pyspec version")
    hdu.header["DATE"] = (str(table.meta.get("created_utc", "")), "UTC creation time")
    hdu.header["PYSPMETA"] = (json.dumps(table.meta, sort_keys=True), "pyspec provenance (JSON)")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)


def _write_votable(table: Table, path: Path) -> None:
    import astropy.units as u
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import Table

    plain = Table(table, copy=False)
    for name in plain.colnames:  # VOTable has no int8 or unsigned types beyond uint8
        kind, size = plain[name].dtype.kind, plain[name].dtype.itemsize
        if (kind == "i" and size == 1) or (kind == "u" and size > 1):
            plain[name] = plain[name].astype(np.int16 if size == 1 else np.int64)
        if plain[name].unit == u.AA:  # VOUnit deprecates Angstrom; 0.1nm is the same unit
            plain[name] = plain[name].copy()
            plain[name].unit = _VO_ANGSTROM
    vot = from_table(plain)
    vtable = vot.get_first_table()
    positions = [f for f in vtable.fields if f.name in ("ra", "dec")]
    if positions:  # positions refer to their frame (what TOPCAT and Aladin look for)
        from astropy.io.votable.tree import CooSys

        vot.resources[0].coordinate_systems.append(
            CooSys(ID="icrs", system="ICRS", epoch="J2000"))
        for field in positions:
            field.ref = "icrs"
    for key, value in table.meta.items():  # one readable INFO per item ...
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        vtable.infos.append(Info(name=str(key), value=text))
    # ... and the exact block for read_catalogue
    vtable.infos.append(Info(name=_VOT_META, value=json.dumps(table.meta, sort_keys=True)))
    vot.to_xml(str(path))


def read_catalogue(path: str | os.PathLike, format: str | None = None) -> Table:
    """Read a catalogue written by :func:`write_catalogue` (units, descriptions, meta restored)."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such catalogue: {path}")
    fmt = catalogue_format(path, format)
    if fmt == "ecsv":
        return Table.read(path, format="ascii.ecsv")
    if fmt == "csv":
        return Table.read(path, format="ascii.csv")
    if fmt == "fits":
        from astropy.io import fits
        from astropy.table import Column

        with fits.open(path) as hdus:
            header = hdus[1].header
            table = Table.read(hdus[1], mask_invalid=False, character_as_bytes=True)
            utf8 = set(json.loads(header.get("PYSPUTF8", "[]")))
            for name in table.colnames:
                if table[name].dtype.kind == "S":
                    values = np.char.decode(np.asarray(table[name]),
                                            "utf-8" if name in utf8 else "ascii")
                    table.replace_column(name, Column(values, name=name,
                                                      unit=table[name].unit))
            for i, name in enumerate(table.colnames, start=1):
                if f"TCOMM{i}" in header:
                    table[name].info.description = header[f"TCOMM{i}"]
                if f"TUCD{i}" in header:
                    table[name].info.meta = {"ucd": header[f"TUCD{i}"]}
            meta = header.get("PYSPMETA")
        table.meta = json.loads(meta) if meta else dict(table.meta)
        return table
    from astropy.io.votable import parse
    from astropy.table import Column
    from astropy.units import UnitsWarning

    with warnings.catch_warnings():
        # VOUnit deprecates some astropy units (e.g. Angstrom); they still parse exactly
        warnings.simplefilter("ignore", UnitsWarning)
        with open(path, "rb") as fh:
            vot = parse(fh)
    vtable = vot.get_first_table()
    table = vtable.to_table(use_names_over_ids=True)
    import astropy.units as u

    for name in table.colnames:  # VOTable reads NaN as masked; keep plain NaN floats
        col = table[name]
        if col.unit is not None and col.unit == u.Unit(_VO_ANGSTROM):
            col.unit = u.AA
        if getattr(col, "mask", None) is not None and col.dtype.kind == "f":
            table[name] = Column(col.filled(np.nan), name=name, unit=col.unit,
                                 description=col.info.description, meta=col.info.meta)
    infos = {info.name: info.value for info in vtable.infos}
    table.meta = json.loads(infos[_VOT_META]) if _VOT_META in infos else infos
    return table
