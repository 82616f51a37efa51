"""``pyspec verify``: check stores, engines, indexes and models against their checksums."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "check store/engine directories or index/model files against their checksums"

#: container kind tag -> (what it is, module, class) for single files
FILE_KINDS = {
    b"HX": ("Hamming index", "pyspec.index.hamming", "HammingIndex"),
    b"QX": ("PQ index", "pyspec.index.pq", "PQIndex"),
    b"GX": ("graph index", "pyspec.index.graph", "GraphIndex"),
    b"IV": ("IVF Hamming index", "pyspec.index.ivf", "IVFHammingIndex"),
    b"IQ": ("IVFPQ index", "pyspec.index.ivfpq", "IVFPQIndex"),
    b"PL": ("PIL model", "pyspec.models.pil", "PILHasher"),
    b"LS": ("LSH model", "pyspec.models.lsh", "LSHHasher"),
    b"IT": ("ITQ model", "pyspec.models.itq", "ITQHasher"),
    b"QM": ("PQ model", "pyspec.models.pq", "ProductQuantizer"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="store or engine directory, or an index/model file")


def file_kind(path: Path) -> tuple[str, type]:
    """What a pyspec index/model file holds (from its header) and the class that loads it."""
    import importlib

    from pyspec.errors import IndexFormatError

    with open(path, "rb") as fh:
        head = fh.read(8)
    kind = FILE_KINDS.get(head[6:8]) if head[:6] == b"PYSPEC" else None
    if kind is None:
        raise IndexFormatError(f"{path}: not a pyspec index or model file")
    what, module, cls = kind
    return what, getattr(importlib.import_module(module), cls)


def verify_path(path: Path) -> str:
    """Check one artefact completely; return a one-line summary or raise."""
    from pyspec.errors import IndexFormatError

    if path.is_dir():
        if (path / "engine.json").exists():
            from pyspec.engine import Engine

            counts = Engine.open(path).verify()
            return f"engine, {counts['files']} files and {counts['columns']} metadata columns"
        if (path / "manifest.json").exists() or (path / "grid.json").exists():
            from pyspec.store import SpectrumStore

            counts = SpectrumStore.open(path).verify()
            return (f"spectrum store, {counts['files']} files, {counts['parts']} parts, "
                    f"{counts['rows']} rows")
        raise IndexFormatError(f"{path}: neither a spectrum store nor an engine directory")
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    what, cls = file_kind(path)
    obj: Any = cls.load(path)  # checks every CRC
    return f"{what}, {len(obj) if hasattr(obj, '__len__') else 'fitted'} entries" \
        if what.endswith("index") else what


def run(args: argparse.Namespace) -> int:
    from pyspec.errors import PyspecError

    failed = 0
    for name in args.paths:
        try:
            summary = verify_path(Path(name))
        except (PyspecError, OSError, ValueError) as exc:
            failed += 1
            print(f"{name}: FAILED: {' '.join(str(exc).split())}")
        else:
            print(f"{name}: OK ({summary})")
    if failed:
        print(f"{failed} of {len(args.paths)} failed verification")
    return 1 if failed else 0
