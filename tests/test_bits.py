"""Bit packing layout used by every hasher and the Hamming engine."""

from __future__ import annotations

import numpy as np
import pytest

from pyspec._bits import pack_bits, unpack_bits


@pytest.mark.parametrize("n_bits", [32, 64, 100, 128, 256, 512])
def test_round_trip_and_layout(rng, n_bits):
    bits = rng.random((17, n_bits)) < 0.5
    codes = pack_bits(bits)
    assert codes.dtype == np.uint64 and codes.shape == (17, (n_bits + 63) // 64)
    np.testing.assert_array_equal(unpack_bits(codes, n_bits), bits)
    # bit j -> word j // 64, position j % 64
    j = n_bits - 1
    expected = (codes[:, j // 64] >> np.uint64(j % 64)) & np.uint64(1)
    np.testing.assert_array_equal(expected.astype(bool), bits[:, j])


def test_popcount_matches_bit_count(rng):
    bits = rng.random((5, 256)) < 0.3
    np.testing.assert_array_equal(np.bitwise_count(pack_bits(bits)).sum(axis=1), bits.sum(axis=1))
