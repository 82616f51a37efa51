"""Indexes over codes: Hamming (binary), PQ (quantised), graph (HNSW), IVF (inverted lists)."""

from pyspec.index.ivf import IVFHammingIndex  # noqa: F401  (also pyspec.IVFHammingIndex)
from pyspec.index.ivfpq import IVFPQIndex  # noqa: F401  (also pyspec.IVFPQIndex)
