"""Query-by-example end to end (Engine.query from a FITS path) and Engine.open.

The engine is the one bench/peer_sections/query.py builds: a 256-bit PIL
hasher fitted on the shipped LAMOST sample plus simulated spectra, real codes
followed by random codes up to ``n_codes``, and a metadata table of the same
length. The query is a real LAMOST DR10 spectrum (gzip FITS).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class QueryByExample:
    params = [[10_000, 1_000_000], [1, None]]
    param_names = ["n_codes", "num_threads"]
    timeout = 600

    def setup_cache(self):
        from peer_sections.query import make_engine

        root = Path(tempfile.mkdtemp(prefix="pyspec-asv-query-"))
        paths = {}
        for n in self.params[0]:
            engine, _ = make_engine(root / f"n{n}", n, 600)
            paths[n] = str(engine.path)
        return paths

    def setup(self, paths, n_codes, num_threads):
        from peer_sections.query import _QUERY_FILE

        from pyspec.data import SAMPLE_DIR
        from pyspec.engine import Engine

        self.engine = Engine.open(paths[n_codes])
        self.path = SAMPLE_DIR / _QUERY_FILE
        self.engine.query(self.path, k=10, num_threads=num_threads)  # warm caches and JIT

    def time_query_fits(self, paths, n_codes, num_threads):
        self.engine.query(self.path, k=10, num_threads=num_threads)

    def time_open(self, paths, n_codes, num_threads):
        from pyspec.engine import Engine

        Engine.open(paths[n_codes])

    def track_self_distance(self, paths, n_codes, num_threads):
        """Hamming distance of the query's first neighbour (itself: 0)."""
        return int(self.engine.query(self.path, k=1, num_threads=num_threads)["distance"][0])

    track_self_distance.unit = "bit"
