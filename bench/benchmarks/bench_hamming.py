"""asv benchmarks for the Hamming engine (pyspec.HammingIndex)."""

from __future__ import annotations

import numpy as np

import pyspec

from .common import clustered_codes


class HammingSearch:
    """Exact k-NN over 256-bit structured codes; num_threads=1 is the tracked figure."""

    params = ([100_000, 1_000_000], [1, 10, 100], [1, 2], [1, 100])
    param_names = ["n_codes", "k", "num_threads", "batch"]
    timeout = 120

    def setup(self, n_codes: int, k: int, num_threads: int, batch: int) -> None:
        self.index = pyspec.HammingIndex(256)
        self.index.add(clustered_codes(n_codes))
        self.queries = np.ascontiguousarray(clustered_codes(batch, sample_seed=7))

    def time_search(self, n_codes: int, k: int, num_threads: int, batch: int) -> None:
        self.index.search(self.queries, k, num_threads=num_threads)


class HammingWidths:
    """One query against 1M codes of each width (64..512 bits)."""

    params = ([64, 128, 256, 512], [1, 2])
    param_names = ["n_bits", "num_threads"]
    timeout = 120

    def setup(self, n_bits: int, num_threads: int) -> None:
        self.index = pyspec.HammingIndex(n_bits)
        self.index.add(clustered_codes(1_000_000, n_bits=n_bits))
        self.query = np.ascontiguousarray(clustered_codes(1, n_bits=n_bits, sample_seed=7))

    def time_search(self, n_bits: int, num_threads: int) -> None:
        self.index.search(self.query, 10, num_threads=num_threads)


class HammingRangeSearch:
    """Range search (the M-star style 'everything within r bits') over 1M codes."""

    params = ([100_000, 1_000_000], [16, 48], [1, 2])
    param_names = ["n_codes", "radius", "num_threads"]
    timeout = 120

    def setup(self, n_codes: int, radius: int, num_threads: int) -> None:
        self.index = pyspec.HammingIndex(256)
        self.index.add(clustered_codes(n_codes))
        self.queries = np.ascontiguousarray(clustered_codes(100, sample_seed=7))

    def time_range_search(self, n_codes: int, radius: int, num_threads: int) -> None:
        self.index.range_search(self.queries, radius, num_threads=num_threads)


class HammingBuild:
    """Index construction: add codes in one call or in 10 chunks (amortised growth)."""

    params = [100_000, 1_000_000]
    param_names = ["n_codes"]
    timeout = 120

    def setup(self, n_codes: int) -> None:
        self.codes = clustered_codes(n_codes)
        self.chunks = np.array_split(np.ascontiguousarray(self.codes), 10)

    def time_add(self, n_codes: int) -> None:
        pyspec.HammingIndex(256).add(self.codes)

    def time_add_chunked(self, n_codes: int) -> None:
        index = pyspec.HammingIndex(256)
        for chunk in self.chunks:
            index.add(chunk)

    def peakmem_reference(self, n_codes: int) -> None:
        pass

    def peakmem_add_chunked(self, n_codes: int) -> None:
        index = pyspec.HammingIndex(256)
        for chunk in self.chunks:
            index.add(chunk)
