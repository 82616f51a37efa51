"""The safe container format: round trips, truncation, bit flips, crafted headers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pyspec._fileformat import read_container, write_container
from pyspec.errors import IndexFormatError


@pytest.fixture
def saved(tmp_path, rng):
    arrays = {
        "codes": rng.integers(0, 2**63, size=(50, 4), dtype=np.uint64),
        "ids": np.arange(50, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    path = tmp_path / "x.pys"
    write_container(path, b"TT", arrays, {"n_bits": 256, "note": "ok"})
    return path, arrays


@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip(saved, mmap):
    path, arrays = saved
    got, meta = read_container(path, b"TT", mmap=mmap)
    assert meta == {"n_bits": 256, "note": "ok"}
    for name, arr in arrays.items():
        np.testing.assert_array_equal(got[name], arr)
        assert got[name].dtype == arr.dtype


def test_wrong_kind_and_not_ours(saved, tmp_path):
    path, _ = saved
    with pytest.raises(IndexFormatError, match="expected 'HM'"):
        read_container(path, b"HM")
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not an index at all" * 4)
    with pytest.raises(IndexFormatError, match="magic"):
        read_container(junk, b"TT")


def test_truncated_at_many_offsets(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut"
    for n in sorted(set(np.linspace(0, len(data) - 1, 60).astype(int)) | {0, 1, 23, 24}):
        cut.write_bytes(data[:n])
        with pytest.raises(IndexFormatError):
            read_container(cut, b"TT")


def test_random_bit_flips_are_detected(saved, tmp_path, rng):
    path, _ = saved
    data = bytearray(path.read_bytes())
    flipped = tmp_path / "flip"
    for pos in rng.integers(0, len(data), size=80):
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << int(rng.integers(0, 8))
        flipped.write_bytes(bytes(corrupt))
        try:
            arrays, _ = read_container(flipped, b"TT")
        except IndexFormatError:
            continue
        # A flip in alignment padding is harmless: the content must be intact.
        _, original = saved
        for name, arr in original.items():
            np.testing.assert_array_equal(arrays[name], arr)


def test_crafted_huge_sizes_rejected_before_allocation(saved, tmp_path):
    path, _ = saved
    data = bytearray(path.read_bytes())
    # Claim a 2**60-element first array and fix the header CRC so only the
    # size check can catch it.
    entry = 24
    struct.pack_into("<Q", data, entry + 40, 2**60)
    n_arrays, meta_len = struct.unpack_from("<IQ", data, 12)
    header_end = 24 + 88 * n_arrays + meta_len
    import zlib

    struct.pack_into("<I", data, header_end, zlib.crc32(bytes(data[:header_end])))
    crafted = tmp_path / "crafted"
    crafted.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="sizes do not match"):
        read_container(crafted, b"TT")


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "x.pys"
    write_container(path, b"TT", {"a": np.arange(3)}, {})
    with pytest.raises(TypeError):
        write_container(path, b"TT", {"a": np.array(["str"])}, {})
    got, _ = read_container(path, b"TT")
    np.testing.assert_array_equal(got["a"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pys"]
