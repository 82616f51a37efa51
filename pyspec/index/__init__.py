"""Indexes over codes: Hamming (binary), PQ (quantised), graph (HNSW)."""
