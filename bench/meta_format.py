"""Issue 20: the one metadata format (column sets) against the old one (.npz parts, meta/colNNN).

Writes a store and an engine with the code under test and with pyspec main
ca91938 (its own interpreter, ``--old-python``), in the same run, and
measures for each:

- ``ingest_s``: writing the store (the shipped sample: read, preprocess and
  store its spectra plus simulated ones, as ``pyspec demo`` does; simulated:
  rows appended in 4096-row chunks as ``pyspec ingest`` does);
- ``build_s``: ``Engine.build`` with a fitted 64-bit LSH model (re-rank space
  "flux", so the metadata is a visible share of the time);
- in a fresh process: ``store_open_rows_s`` (open the store, read the metadata
  of 10 rows), ``store_open_table_s`` (open, read the whole table),
  ``engine_open_query_s`` (open the engine, first query with its metadata);
- disk: bytes of the store's metadata parts and of the engine's ``meta/``.

The new code also opens the old artefacts (``legacy`` rows: the legacy reader).
Usage::

    python bench/meta_format.py --old-python /work/main/.venv/bin/python --n 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def _rows(a: int, b: int, rng: np.random.Generator) -> list[dict]:
    """Metadata as ``pyspec ingest`` writes it for survey files (ids, paths, hashes, S/N)."""
    classes = np.array(["STAR", "GALAXY", "QSO", "Unknown"])
    out = []
    for i in range(a, b):
        out.append({
            "id": f"sim-{i:08d}", "file": f"/archive/lamost/dr9/spec-{55800 + i % 977}-"
            f"F{i % 9999:04d}_sp{i % 16:02d}-{i % 250:03d}.fits.gz",
            "ra": float(rng.uniform(0, 360)), "dec": float(rng.uniform(-10, 60)),
            "class": str(classes[i % 4]), "subclass": f"K{i % 7}" if i % 4 == 0 else "",
            "z": float(rng.uniform(0, 0.3)), "z_err": float(rng.uniform(0, 1e-3)),
            **{f"snr_{b_}": float(rng.uniform(1, 90)) for b_ in "ugriz"},
            "data_release": "DR9", "vacuum": True, "layout": "lamost",
            "content_hash": f"{(i * 2654435761) % (1 << 64):016x}" * 4,
            "n_interpolated": int(i % 5), "coverage": 1.0, "format": "lamost-lrs"})
    return out


def ingest(out: Path, kind: str, n: int) -> dict:
    from pyspec.preprocess import Preprocessor, WavelengthGrid
    from pyspec.store import SpectrumStore

    t0 = time.perf_counter()
    if kind == "sample":
        from pyspec.data.sample_store import build_sample_store

        build_sample_store(out / "store", n, seed=0)
    else:
        grid = WavelengthGrid.preset("halpha-140")
        rng = np.random.default_rng(20)
        with SpectrumStore.create(out / "store", grid, Preprocessor(grid).to_dict()) as w:
            for a in range(0, n, 4096):
                b = min(n, a + 4096)
                flux = rng.normal(size=(b - a, 140)).astype(np.float32)
                w.append(flux, np.ones_like(flux), _rows(a, b, rng))
            w.reject("broken.fits", "truncated file")
    ingest_s = time.perf_counter() - t0
    from pyspec.engine import Engine
    from pyspec.models.lsh import LSHHasher

    store = SpectrumStore.open(out / "store")
    model = LSHHasher(n_bits=64, random_state=0).fit(np.asarray(store.flux[:2000]))
    t0 = time.perf_counter()
    Engine.build(store, model, out=out / "engine", rerank_space="flux")
    return {"ingest_s": ingest_s, "build_s": time.perf_counter() - t0}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def open_and_query(out: Path) -> dict:
    """Times of a fresh process's first reads (imports done before the clock starts)."""
    import astropy.table  # noqa: F401  (imported lazily by the readers)
    import astropy.units  # noqa: F401

    import pyspec.catalogue  # noqa: F401
    from pyspec.engine import Engine
    from pyspec.store import SpectrumStore

    rows = np.array([7, 3, 1, 0, 5, 2, 9, 4, 6, 8]) * 997 % 50
    t0 = time.perf_counter()
    store = SpectrumStore.open(out / "store")
    picked = store.meta_rows(rows) if hasattr(store, "meta_rows") else store.meta[rows]
    store_rows_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = SpectrumStore.open(out / "store").meta
    store_table_s = time.perf_counter() - t0
    probe = np.asarray(store.flux[10:11])
    t0 = time.perf_counter()
    engine = Engine.open(out / "engine")
    result = engine.query(probe[0], k=10, prepared=True)
    engine_s = time.perf_counter() - t0
    return {"store_open_rows_s": store_rows_s, "store_open_table_s": store_table_s,
            "engine_open_query_s": engine_s, "n_rows": len(table),
            "ids": [str(v) for v in picked["id"]], "neighbours": [str(v) for v in result["id"]],
            "store_version": store.manifest["version"], "engine_version": engine.info["version"],
            "store_meta_bytes": _size(out / "store" / "parts"),
            "engine_meta_bytes": _size(out / "engine" / "meta"),
            "store_bytes": _size(out / "store"), "engine_bytes": _size(out / "engine")}


def _run(python: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([python, str(HERE), *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), check=False, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-python", required=False, help="interpreter with pyspec main ca91938")
    ap.add_argument("--n", type=int, default=100_000, help="rows of the simulated store")
    ap.add_argument("--n-sample-simulated", type=int, default=700,
                    help="simulated spectra added to the shipped sample (as pyspec demo)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", nargs=3, metavar=("STEP", "KIND", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        step, kind, out = args.worker
        n = args.n if kind == "sim" else args.n_sample_simulated
        res = ingest(Path(out), kind, n) if step == "ingest" else open_and_query(Path(out))
        print(json.dumps(res))
        return
    pythons = {"new": sys.executable}
    if args.old_python:
        pythons["old"] = args.old_python
    results: dict = {}
    root = Path(tempfile.mkdtemp(prefix="meta-format-"))
    try:
        for kind in ("sample", "sim"):
            for rep in range(args.repeats):
                for label, python in pythons.items():  # alternate old and new
                    out = root / f"{kind}-{label}-{rep}"
                    out.mkdir()
                    row = _run(python, "--n", str(args.n), "--n-sample-simulated",
                               str(args.n_sample_simulated), "--worker", "ingest", kind, str(out))
                    row.update(_run(python, "--worker", "open", kind, str(out)))
                    results.setdefault((kind, label), []).append(row)
                    if label == "old":  # the new code reading the old files: the legacy reader
                        legacy = _run(sys.executable, "--worker", "open", kind, str(out))
                        assert legacy["ids"] == row["ids"], (legacy["ids"], row["ids"])
                        assert legacy["neighbours"] == row["neighbours"]
                        results.setdefault((kind, "legacy"), []).append(legacy)
                    if rep:
                        shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = ("ingest_s", "build_s", "store_open_rows_s", "store_open_table_s",
            "engine_open_query_s", "store_meta_bytes", "engine_meta_bytes")
    print("| store | format | rows | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for (kind, label), rows in results.items():
        cells = []
        for key in keys:
            vals = [r[key] for r in rows if key in r]
            if not vals:
                cells.append("-")
            elif key.endswith("bytes"):
                cells.append(f"{int(np.median(vals)):,}")
            else:
                cells.append(f"{np.median(vals):.3f}")
        print(f"| {kind} | {label} (store v{rows[0]['store_version']}, engine "
              f"v{rows[0]['engine_version']}) | {rows[0]['n_rows']:,} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
