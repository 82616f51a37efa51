"""``pyspec info [PATH]``: the build configuration, or what a store/engine/model/index is.

Without PATH: SIMD levels, OpenMP and BLAS of this build.  With PATH: the
kind of artefact, its size (spectra, bytes on disk), wavelength grid,
preprocessing recipe and, for engines, models and indexes, the model
class and parameters; read from the artefact's own headers, without
scanning its arrays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pyspec.commands.verify import FILE_KINDS, file_kind

HELP = "show the build configuration, or describe a store, engine, model or index file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="store or engine directory, or a model/index file, to describe")


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _grid_line(grid: dict[str, Any] | None) -> str:
    if not grid:
        return "unknown"
    from pyspec.preprocess import WavelengthGrid

    g = WavelengthGrid.from_dict(grid)
    w = g.wavelength
    return (f"{grid.get('name') or grid.get('kind')}: {len(g)} pixels, "
            f"{float(w[0]):.1f}-{float(w[-1]):.1f} Angstrom ({grid.get('kind')})")


def _recipe_line(recipe: dict[str, Any] | None) -> str:
    if not recipe:
        return "none recorded"
    keys = ("normalise", "continuum", "continuum_window", "wavelength_range", "mask_sky",
            "clip", "method", "to_vacuum")
    parts = [f"{k}={recipe[k]}" for k in keys if recipe.get(k) not in (None, False)]
    return f"{recipe.get('name') or 'custom'} ({', '.join(parts)})"


def describe(path: Path) -> list[tuple[str, str]]:
    """(field, value) lines describing a store, engine, model or index at ``path``."""
    from pyspec.errors import IndexFormatError

    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    size = f"{_disk_bytes(path):,d} bytes"
    if path.is_dir() and (path / "engine.json").exists():
        from pyspec.engine import Engine

        engine = Engine.open(path)
        info = engine.info
        rerank = info.get("rerank") or {}
        plan = engine.search_plan(10)
        return [("kind", f"engine ({info['kind']} index)"), ("spectra", f"{info['n_spectra']:,d}"),
                ("size", size), ("model", info["model_class"]),
                ("model parameters", json.dumps(info.get("model_params", {}), sort_keys=True)),
                ("grid", _grid_line(info.get("grid"))),
                ("preprocessing", _recipe_line(info.get("preprocessing"))),
                ("re-rank space", rerank.get("space", "flux") +
                 (f", {rerank['n_components']} components" if "n_components" in rerank else "")),
                ("search (k=10)", f"{plan.method} ({plan.reason})"),
                ("store", str(info.get("store")))]
    if path.is_dir() and (path / "sharded-engine.json").exists():
        info = json.loads((path / "sharded-engine.json").read_text())
        return [("kind", "sharded engine"), ("size", size),
                ("manifest", json.dumps(info, sort_keys=True)[:400])]
    if path.is_dir() and (path / "sharded-store.json").exists():
        from pyspec.distributed.store import open_any_store

        store = open_any_store(path)
        return [("kind", "sharded spectrum store"), ("spectra", f"{len(store):,d}"),
                ("size", size), ("grid", _grid_line(store.grid.to_dict())),
                ("preprocessing", _recipe_line(store.preprocessing))]
    if path.is_dir() and (path / "manifest.json").exists():
        from pyspec.store import SpectrumStore

        store = SpectrumStore.open(path)
        return [("kind", "spectrum store"), ("spectra", f"{len(store):,d}"),
                ("rejected inputs", f"{len(store.rejects):,d}"), ("size", size),
                ("grid", _grid_line(store.grid.to_dict())),
                ("preprocessing", _recipe_line(store.preprocessing)),
                ("metadata columns", ", ".join(store.meta_columns.colnames))]
    if path.is_file():
        what, cls = file_kind(path)
        obj = cls.load(path)
        lines = [("kind", what), ("size", size)]
        if hasattr(obj, "get_params"):
            lines.append(("model parameters", json.dumps(
                {k: v for k, v in obj.get_params().items() if _plain(v)}, sort_keys=True,
                default=str)))
        for attr, label in (("n_features_in_", "input pixels"), ("n_bits", "code bits")):
            if getattr(obj, attr, None) is not None:
                lines.append((label, str(getattr(obj, attr))))
        if what.endswith("index"):
            lines.append(("entries", f"{len(obj):,d}"))
        return lines
    kinds = ", ".join(sorted({w for w, _, _ in FILE_KINDS.values()}))
    raise IndexFormatError(f"{path}: not a spectrum store or engine directory, nor a pyspec "
                           f"file ({kinds})")


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | tuple | list)


def run(args: argparse.Namespace) -> int:
    if not args.path:
        from pyspec._config import show_config

        show_config()
        return 0
    path = Path(args.path)
    lines = describe(path)
    print(f"{path}:")
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key:<{width}}  {value}")
    return 0
