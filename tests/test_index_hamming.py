"""pyspec.HammingIndex: public API, bad input, persistence and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from reference import hamming_knn_ref, hamming_range_ref

import pyspec
from pyspec.index.hamming import as_codes, hamming_distances


@pytest.fixture
def codes(rng):
    # 300 rows drawn from 60 distinct codes: plenty of tied distances.
    distinct = rng.integers(0, 2**64, size=(60, 4), dtype=np.uint64)
    return np.ascontiguousarray(distinct[rng.integers(0, 60, size=300)])


@pytest.fixture
def index(codes):
    ix = pyspec.HammingIndex(256)
    ix.add(codes[:120])
    ix.add(codes[120:])  # second add continues the default ids
    return ix


def test_search_matches_reference(index, codes, num_threads):
    queries = codes[::17].copy()
    res = index.search(queries, k=7, num_threads=num_threads)
    ref_ids, ref_d = hamming_knn_ref(queries, codes, np.arange(300), 7, 257)
    np.testing.assert_array_equal(res.ids, ref_ids)
    np.testing.assert_array_equal(res.distances, ref_d)
    assert isinstance(res, pyspec.SearchResult)
    assert res.ids.dtype == np.int64 and res.distances.dtype == np.int32


def test_single_query_1d_and_default_threads(index, codes):
    res = index.search(codes[5], k=3)
    assert res.ids.shape == (1, 3)
    assert res.distances[0, 0] == 0


def test_custom_ids_break_ties(codes, rng):
    ids = rng.permutation(300).astype(np.int32) + 1000  # converted to int64 on add
    ix = pyspec.HammingIndex()
    ix.add(codes, ids)
    assert ix.ids.dtype == np.int64
    res = ix.search(codes[:4], k=12)
    ref_ids, ref_d = hamming_knn_ref(codes[:4], codes, ids.astype(np.int64), 12, 257)
    np.testing.assert_array_equal(res.ids, ref_ids)
    np.testing.assert_array_equal(res.distances, ref_d)


def test_range_search_matches_reference(index, codes):
    queries = codes[:9].copy()
    got = index.range_search(queries, radius=120)
    ref = hamming_range_ref(queries, codes, np.arange(300), 120)
    for a, b in zip((got.lims, got.ids, got.distances), ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(got) == 9
    ids, dist = got.hits(0)
    assert (dist <= 120).all() and (np.diff(dist) >= 0).all()


def test_k_above_size_k_zero_and_empty_index(index, codes):
    res = index.search(codes[:2], k=305)
    assert res.ids.shape == (2, 305)
    assert (res.ids[:, 300:] == -1).all() and (res.distances[:, 300:] == 257).all()
    assert sorted(res.ids[0, :300]) == list(range(300))
    res = index.search(codes[:2], k=0)
    assert res.ids.shape == (2, 0) and res.distances.shape == (2, 0)
    empty = pyspec.HammingIndex()
    assert len(empty) == 0
    res = empty.search(codes[:3], k=4)
    assert (res.ids == -1).all() and (res.distances == 257).all()
    assert empty.range_search(codes[:3], 10).offsets.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("n_bits", [32, 64, 128, 512])
def test_other_widths(n_bits, rng):
    n_words = (n_bits + 63) // 64
    bits = rng.random((200, n_bits)) < 0.5
    codes = as_codes(bits, n_bits)
    assert codes.shape == (200, n_words)
    ix = pyspec.HammingIndex(n_bits)
    ix.add(codes)
    res = ix.search(codes[:5], k=4)
    ref_ids, ref_d = hamming_knn_ref(codes[:5], codes, np.arange(200), 4, n_bits + 1)
    np.testing.assert_array_equal(res.ids, ref_ids)
    np.testing.assert_array_equal(res.distances, ref_d)
    # distances agree with counting differing bits directly
    np.testing.assert_array_equal(
        hamming_distances(codes[:5], codes, n_bits), (bits[:5, None] != bits[None]).sum(-1))


def test_32_bit_codes_must_leave_upper_half_zero(rng):
    ix = pyspec.HammingIndex(32)
    codes = rng.integers(0, 2**32, size=(10, 1), dtype=np.uint64)
    ix.add(codes)
    codes[3, 0] |= np.uint64(1 << 40)
    with pytest.raises(ValueError, match="bits set above bit 31"):
        ix.add(codes)


def test_bad_input_messages(index, codes):
    with pytest.raises(TypeError, match=r"expected uint64 codes of shape \(n, 4\).*got uint8 "
                                        r"\(300, 32\).*as_codes"):
        index.search(codes.view(np.uint8), 3)
    with pytest.raises(TypeError, match="bool.*pack_bits"):
        index.add(np.zeros((3, 256), dtype=bool))
    with pytest.raises(TypeError, match="int64"):
        index.add(codes.astype(np.int64))
    with pytest.raises(ValueError, match=r"got uint64 \(300, 2\)"):
        index.search(codes[:, :2].copy(), 3)
    with pytest.raises(ValueError, match="non-contiguous"):
        index.search(codes[::2], 3)
    with pytest.raises(ValueError, match="non-contiguous"):
        index.add(np.asfortranarray(codes[:10]))
    with pytest.raises(TypeError, match="got list"):
        index.search(codes.tolist(), 3)
    with pytest.raises(ValueError, match="k must be >= 0"):
        index.search(codes, -1)
    with pytest.raises(TypeError, match="k must be an int"):
        index.search(codes, 2.5)
    with pytest.raises(ValueError, match="num_threads"):
        index.search(codes, 3, num_threads=0)
    with pytest.raises(ValueError, match="radius"):
        index.range_search(codes, -1)
    with pytest.raises(ValueError, match=r"ids: expected shape \(300,\)"):
        index.add(codes, ids=np.arange(5))
    with pytest.raises(ValueError, match="n_bits"):
        pyspec.HammingIndex(1000)
    with pytest.raises(TypeError, match="n_bits"):
        pyspec.HammingIndex(256.0)
    assert len(index) == 300  # failed adds changed nothing


def test_as_codes_accepts_bits_bytes_and_strided_words(codes):
    bits = pyspec._bits.unpack_bits(codes, 256)
    np.testing.assert_array_equal(as_codes(bits, 256), codes)
    np.testing.assert_array_equal(as_codes(bits.astype(np.uint8), 256), codes)
    np.testing.assert_array_equal(as_codes(codes.view(np.uint8), 256), codes)
    np.testing.assert_array_equal(as_codes(np.asfortranarray(codes), 256), codes)
    with pytest.raises(TypeError):
        as_codes(codes.astype(np.float64), 256)


def test_grows_amortised_and_views_are_read_only(rng):
    ix = pyspec.HammingIndex(64)
    chunks = [rng.integers(0, 2**64, size=(n, 1), dtype=np.uint64) for n in (1, 7, 1500, 3)]
    for c in chunks:
        ix.add(c)
    np.testing.assert_array_equal(ix.codes, np.concatenate(chunks))
    np.testing.assert_array_equal(ix.ids, np.arange(1511))
    with pytest.raises(ValueError, match="read-only"):
        ix.codes[0, 0] = 1


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(index, codes, tmp_path, mmap):
    path = tmp_path / "codes.hx"
    index.save(path)
    loaded = pyspec.HammingIndex.load(path, mmap=mmap)
    assert len(loaded) == 300 and loaded.n_bits == 256
    np.testing.assert_array_equal(loaded.codes, index.codes)
    np.testing.assert_array_equal(loaded.ids, index.ids)
    a, b = loaded.search(codes[:6], 5), index.search(codes[:6], 5)
    np.testing.assert_array_equal(a.ids, b.ids)
    loaded.add(codes[:2])  # a memory-mapped index copies before growing
    assert len(loaded) == 302 and loaded.ids[-1] == 301


def test_pickle_round_trip(index, codes):
    clone = pickle.loads(pickle.dumps(index))
    assert len(clone) == 300 and clone.n_bits == 256
    np.testing.assert_array_equal(clone.codes, index.codes)
    np.testing.assert_array_equal(clone.search(codes[:4], 5).ids, index.search(codes[:4], 5).ids)


def test_load_rejects_other_kinds(tmp_path):
    from pyspec._fileformat import write_container

    path = tmp_path / "other"
    write_container(path, b"QX", {"codes": np.zeros((2, 4), np.uint64)}, {})
    with pytest.raises(pyspec.IndexFormatError, match="expected 'HX'"):
        pyspec.HammingIndex.load(path)
    # right kind, inconsistent content
    write_container(path, b"HX", {"codes": np.zeros((2, 4), np.uint64),
                                  "ids": np.arange(3, dtype=np.int64)},
                    {"n_bits": 256, "n_codes": 2})
    with pytest.raises(pyspec.IndexFormatError, match="ids must be"):
        pyspec.HammingIndex.load(path)
    write_container(path, b"HX", {"codes": np.zeros((2, 4), np.uint64),
                                  "ids": np.arange(2, dtype=np.int64)},
                    {"n_bits": "256", "n_codes": 2})
    with pytest.raises(pyspec.IndexFormatError, match="n_bits"):
        pyspec.HammingIndex.load(path)


def test_truncated_files_raise_index_format_error(index, tmp_path):
    path = tmp_path / "codes.hx"
    index.save(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.hx"
    for n in sorted(set(np.linspace(0, len(data) - 1, 80).astype(int)) | {0, 8, 23, 24}):
        cut.write_bytes(data[:n])
        for mmap in (False, True):
            with pytest.raises(pyspec.IndexFormatError):
                pyspec.HammingIndex.load(cut, mmap=mmap)


def test_bit_flips_raise_or_leave_content_intact(index, codes, tmp_path, rng):
    path = tmp_path / "codes.hx"
    index.save(path)
    data = path.read_bytes()
    flipped = tmp_path / "flip.hx"
    detected = 0
    for pos in rng.integers(0, len(data), size=150):
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << int(rng.integers(0, 8))
        flipped.write_bytes(bytes(corrupt))
        try:
            loaded = pyspec.HammingIndex.load(flipped)
        except pyspec.IndexFormatError:
            detected += 1
            continue
        # Only a flip in alignment padding can pass; the index must be intact.
        np.testing.assert_array_equal(loaded.codes, index.codes)
        np.testing.assert_array_equal(loaded.ids, index.ids)
    assert detected > 100  # padding is a small part of the file
