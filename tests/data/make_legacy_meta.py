"""Write the frozen legacy-layout fixture (``tests/data/legacy_meta/``) with pyspec main ca91938.

Stores and engines written before the one metadata format (issue 20) keep their metadata in
``parts/part-NNNNNN.npz`` and ``meta/colNNN.npy``; ``tests/test_meta_legacy.py`` checks that
this pyspec still opens, verifies and answers them as the old code did. Regenerate (only with
the old code) by::

    OLD/.venv/bin/python tests/data/make_legacy_meta.py OUT   # OLD: a checkout of ca91938

which writes ``OUT/store``, ``OUT/engine`` and ``OUT/expected.json`` (what the old code read
back: metadata tables, rejects, a search and its metadata rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def rows(start: int, stop: int) -> list[dict]:
    out = []
    for i in range(start, stop):
        row = {"id": f"s{i}", "file": f"dir/f{i}.fits", "z": 0.01 * i, "ra": 10.0 + i,
               "dec": -5.0 + i, "class": "STAR" if i % 2 else "GALAXY",
               "subclass": "é-type" if i == 3 else "", "vacuum": None if i % 3 else True,
               "content_hash": f"h{i}"}
        if i >= 4:  # extra columns that appear only in later parts
            row["n_int"] = i
            row["flag"] = bool(i % 2)
            row["note"] = "x" * (i - 3) if i % 2 else 1.5 * i
        out.append(row)
    return out


def table_record(table) -> list:
    """[name, dtype, unit, values] of every column, in order (NaN written as "nan")."""
    return [[name, table[name].dtype.str, None if table[name].unit is None
             else str(table[name].unit),
             [v if not isinstance(v, float) or np.isfinite(v) else repr(v)
              for v in table[name].tolist()]] for name in table.colnames]


def main(out: Path) -> None:
    from pyspec.engine import Engine
    from pyspec.models.lsh import LSHHasher
    from pyspec.preprocess import Preprocessor, WavelengthGrid
    from pyspec.store import SpectrumStore

    rng = np.random.default_rng(20)
    grid = WavelengthGrid.preset("halpha-140")
    n = 10
    flux = rng.normal(size=(n, 140)).astype(np.float32)
    ivar = rng.uniform(0.5, 2.0, size=(n, 140)).astype(np.float32)
    with SpectrumStore.create(out / "store", grid, Preprocessor(grid).to_dict(),
                              rows_per_part=4) as w:
        w.append(flux[:4], ivar[:4], rows(0, 4))
        w.reject("bad0.fits", "truncated file")
        w.flush()
        w.reject("bad1.fits", "no flux")  # a part of rejects only
        w.flush()
        w.append(flux[4:], ivar[4:], rows(4, n))
    store = SpectrumStore.open(out / "store")
    model = LSHHasher(n_bits=64, random_state=0).fit(flux)
    engine = Engine.build(store, model, out=out / "engine")
    res = engine.search_prepared(flux[[1, 6]], 4, num_threads=1)
    meta_rows = engine.meta_rows(np.array([7, 0, 3]))
    expected = {"store_meta": table_record(store.meta), "rejects": table_record(store.rejects),
                "engine_meta": table_record(engine.meta), "search_ids": res.ids.tolist(),
                "search_distances": res.distances.tolist(),
                "engine_meta_rows": table_record(meta_rows),
                "query_rows": [1, 6]}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
