"""Packing of binary codes into the Hamming engine's uint64 layout.

Bit ``j`` of a code lives in word ``j // 64`` at bit position ``j % 64``
(least significant first). Codes of 32 bits use one word whose upper half is
zero. This equals ``np.packbits(bits, bitorder="little")`` viewed as
little-endian uint64.
"""

from __future__ import annotations

import numpy as np


def n_words(n_bits: int) -> int:
    """Number of uint64 words that hold ``n_bits`` bits."""
    return (int(n_bits) + 63) // 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array of shape (n, n_bits) into uint64 of shape (n, n_words)."""
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"expected bits of shape (n, n_bits), got {bits.shape}")
    n, nb = bits.shape
    padded = np.zeros((n, n_words(nb) * 64), dtype=np.uint8)
    padded[:, :nb] = bits != 0
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint64 (n, n_words) -> bool (n, n_bits)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    as_bytes = codes.astype("<u8", copy=False).view(np.uint8).reshape(codes.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n_bits].astype(bool)
