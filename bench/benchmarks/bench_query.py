"""Query-by-example end to end (Engine.query from a FITS path) and Engine.open.

The engine is the one bench/peer_sections/query.py builds: a 256-bit PIL
hasher fitted on the shipped LAMOST sample plus simulated spectra, real codes
followed by random codes up to ``n_codes``, and a metadata table of the same
length. The query is a real LAMOST DR10 spectrum (gzip FITS). Engines are
built once per size and kept in the temporary directory between runs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_CACHE = Path(tempfile.gettempdir()) / "pyspec-asv-query"


def _cache_key() -> str:
    """One cache per checkout and source state: engines of another checkout or of an
    older pyspec (other preprocessing settings, other file versions) are never reused."""
    import hashlib

    import pyspec

    root = Path(pyspec.__file__).resolve().parent
    h = hashlib.sha256(str(root).encode())
    for name in ("engine.py", "preprocess.py", "store.py", "_integrity.py"):
        f = root / name
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _engine_path(n_codes: int) -> Path:
    from peer_sections.query import make_engine

    from pyspec.engine import Engine
    from pyspec.errors import PyspecError

    work = _CACHE / _cache_key() / f"n{n_codes}"
    try:
        Engine.open(work / "engine")
    except (OSError, PyspecError, ValueError):  # missing, stale or damaged: build anew
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        make_engine(work, n_codes, 600)
    return work / "engine"


class QueryByExample:
    params = [[10_000, 1_000_000], [1, None]]
    param_names = ["n_codes", "num_threads"]
    timeout = 600

    def setup(self, n_codes, num_threads):
        from peer_sections.query import _QUERY_FILE

        from pyspec.data import SAMPLE_DIR
        from pyspec.engine import Engine

        self.engine_path = _engine_path(n_codes)
        self.engine = Engine.open(self.engine_path)
        self.path = SAMPLE_DIR / _QUERY_FILE
        # rerank=0: the index holds random codes beyond the store's rows (see make_engine),
        # so only the code stage can be timed here; peers.py query times the re-rank stage
        self.engine.query(self.path, k=10, num_threads=num_threads, rerank=0)  # warm caches

    def time_query_fits(self, n_codes, num_threads):
        self.engine.query(self.path, k=10, num_threads=num_threads, rerank=0)

    def time_open(self, n_codes, num_threads):
        from pyspec.engine import Engine

        Engine.open(self.engine_path)

    def track_self_distance(self, n_codes, num_threads):
        """Hamming distance of the query's first neighbour (itself: 0)."""
        return int(self.engine.query(self.path, k=1, num_threads=num_threads,
                                     rerank=0)["distance"][0])

    track_self_distance.unit = "bit"


class CatalogueSearch:
    """Catalogue search: 200 queries, each keeping its nearest 10%, merged (M-star workflow)."""

    params = [[10_000, 300_000]]
    param_names = ["n_codes"]
    timeout = 900

    def setup(self, n_codes):
        import numpy as np

        from pyspec.engine import Engine
        from pyspec.store import SpectrumStore

        path = _engine_path(n_codes)
        self.engine = Engine.open(path)
        store = SpectrumStore.open(path.parent / "store")
        self.queries = np.asarray(store.flux[:200])

    def time_fraction_10pct(self, n_codes):
        from pyspec.workflows import catalogue_search

        catalogue_search(self.engine, self.queries, fraction=0.1)

    def track_candidates(self, n_codes):
        from pyspec.workflows import catalogue_search

        return len(catalogue_search(self.engine, self.queries, fraction=0.1))

    track_candidates.unit = "spectra"
