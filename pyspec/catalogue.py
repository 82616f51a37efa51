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

import datetime as _dt
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "annotate", "provenance", "write_catalogue", "read_catalogue",
           "catalogue_format"]

# name -> (unit or None, description, UCD). UCD1+ words from the IVOA list.
COLUMNS: dict[str, tuple[str | None, str, str]] = {
    "id": (None, "spectrum identifier (LAMOST obsid, SDSS plate-mjd-fiber, ...)",
           "meta.id;meta.main"),
    "file": (None, "source file of the spectrum", "meta.file"),
    "ra": ("deg", "right ascension (ICRS)", "pos.eq.ra;meta.main"),
    "dec": ("deg", "declination (ICRS)", "pos.eq.dec;meta.main"),
    "class": (None, "survey pipeline class (STAR, GALAXY, QSO, Unknown)", "src.class"),
    "subclass": (None, "survey pipeline subclass / spectral type", "src.spType"),
    "z": (None, "survey pipeline redshift", "src.redshift"),
    "z_err": (None, "uncertainty of the survey redshift", "stat.error;src.redshift"),
    "snr_u": (None, "signal-to-noise ratio in the u band", "phys.SNRatio;em.opt.U"),
    "snr_g": (None, "signal-to-noise ratio in the g band", "phys.SNRatio;em.opt.V"),
    "snr_r": (None, "signal-to-noise ratio in the r band", "phys.SNRatio;em.opt.R"),
    "snr_i": (None, "signal-to-noise ratio in the i band", "phys.SNRatio;em.opt.I"),
    "snr_z": (None, "signal-to-noise ratio in the z band", "phys.SNRatio;em.opt.I"),
    "snr": (None, "signal-to-noise ratio (r band)", "phys.SNRatio"),
    "row": (None, "row of the spectrum in the engine's store", "meta.record"),
    "rank": (None, "rank of the neighbour (1 = nearest)", "meta.number"),
    "distance": (None, "distance to the query (Hamming: bits; PQ/re-rank: squared L2)",
                 "stat.value"),
    "query_id": (None, "identifier of the query spectrum", "meta.id"),
    "n_queries": (None, "number of queries that retrieved this spectrum", "meta.number"),
    "best_distance": (None, "smallest distance to any query", "stat.value;stat.min"),
    "best_query": (None, "identifier of the nearest query", "meta.id;meta.cross"),
    "best_query_class": (None, "class of the nearest query", "src.class"),
    "best_query_subclass": (None, "subclass of the nearest query", "src.spType"),
    "template_id": (None, "identifier of the nearest template", "meta.id;meta.cross"),
    "template_distance": (None, "distance to the nearest template", "stat.value"),
    "template_class": (None, "class carried over from the nearest template", "src.class"),
    "template_subclass": (None, "subclass carried over from the nearest template", "src.spType"),
    "template_z": (None, "redshift transferred from the nearest template (RT)", "src.redshift"),
    "cluster": (None, "cluster label (BIRCH group x KMeans sub-cluster)", "meta.code.class"),
    "group": (None, "BIRCH group label", "meta.code.class"),
    "cluster_size": (None, "number of spectra in the cluster", "meta.number"),
    "centre_distance": (None, "Euclidean distance to the cluster centre in PCA space",
                        "stat.value"),
}

_VOT_META = "pyspec_meta"
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


def annotate(table: Any, units: Mapping[str, str | None] | None = None) -> Any:
    """Attach units, descriptions and UCDs of known columns (in place; returns the table).

    ``units`` overrides the unit of named columns (e.g. ``{"distance": "bit"}``);
    a column that already has a unit or description keeps it.
    """
    import astropy.units as u

    units = dict(units or {})
    for name in table.colnames:
        col = table[name]
        known = COLUMNS.get(name)
        unit = units.get(name, known[0] if known else None)
        if unit is not None and getattr(col, "unit", None) is None:
            col.unit = u.Unit(unit)
        if known is None:
            continue
        if not col.info.description:
            col.info.description = known[1]
        col.info.meta = dict(col.info.meta or {})
        col.info.meta.setdefault("ucd", known[2])
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
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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


def write_catalogue(table: Any, path: str | os.PathLike, format: str | None = None,
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
    fmt = catalogue_format(path, format)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or choose another name")
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"output directory {path.parent} does not exist")
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


def _write_fits(table: Any, path: Path) -> None:
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


def _write_votable(table: Any, path: Path) -> None:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    from astropy.table import Table

    plain = Table(table, copy=False)
    for name in plain.colnames:  # VOTable has no int8 or unsigned types beyond uint8
        kind, size = plain[name].dtype.kind, plain[name].dtype.itemsize
        if (kind == "i" and size == 1) or (kind == "u" and size > 1):
            plain[name] = plain[name].astype(np.int16 if size == 1 else np.int64)
    vot = from_table(plain)
    vtable = vot.get_first_table()
    for key, value in table.meta.items():  # one readable INFO per item ...
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        vtable.infos.append(Info(name=str(key), value=text))
    # ... and the exact block for read_catalogue
    vtable.infos.append(Info(name=_VOT_META, value=json.dumps(table.meta, sort_keys=True)))
    from astropy.units import UnitsWarning

    with warnings.catch_warnings():
        # VOUnit deprecates Angstrom (suggesting 0.1nm); it is still written and read exactly
        warnings.simplefilter("ignore", UnitsWarning)
        vot.to_xml(str(path))


def read_catalogue(path: str | os.PathLike, format: str | None = None) -> Any:
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
    for name in table.colnames:  # VOTable reads NaN as masked; keep plain NaN floats
        col = table[name]
        if getattr(col, "mask", None) is not None and col.dtype.kind == "f":
            table[name] = Column(col.filled(np.nan), name=name, unit=col.unit,
                                 description=col.info.description, meta=col.info.meta)
    infos = {info.name: info.value for info in vtable.infos}
    table.meta = json.loads(infos[_VOT_META]) if _VOT_META in infos else infos
    return table
