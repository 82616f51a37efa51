"""HammingIndex(method="ivf"): the exact inverted lists kept beside the codes.

Every search must return exactly what the scan returns (the scan is checked
against NumPy in tests/kernels/test_hamming.py), through adds (lists
retrained when the codes double, tails assigned at the next search),
removals, filters, saving and loading; corrupt lists in a file are a typed
error. "auto" and the cost model are covered in tests/test_index_mih.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pyspec import HammingIndex
from pyspec._fileformat import read_container, write_container
from pyspec.errors import IndexFormatError

N = 12_000


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """Codes of 150 centres with ~10 of 256 bits flipped (neighbours 0-25 bits away)."""
    rng = np.random.default_rng(11)
    centres = rng.integers(0, 2**64, size=(150, 4), dtype=np.uint64)

    def near(count: int) -> np.ndarray:
        out = centres[rng.integers(0, 150, size=count)].copy()
        flips = rng.random((count, 256)) < 0.04
        masks = np.packbits(flips, axis=1, bitorder="little").view(np.uint64)
        return np.ascontiguousarray(out ^ masks)

    return near(N), near(30)


def _pair(codes: np.ndarray, ids: np.ndarray | None = None) -> tuple[HammingIndex, HammingIndex]:
    ivf, scan = HammingIndex(256, method="ivf"), HammingIndex(256)
    ivf.add(codes, ids)
    scan.add(codes, ids)
    return ivf, scan


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_ivf_equals_the_scan_with_ties_padding_and_threads(clustered):
    codes, queries = clustered
    ids = np.random.default_rng(2).permutation(N).astype(np.int64) // 2  # tied ids
    ivf, scan = _pair(codes, ids)
    assert ivf.plan(k=10).method == "ivf"
    for k in (1, 10, 57):
        for threads in (1, 2, 3):
            _same(ivf.search(queries, k, num_threads=threads), scan.search(queries, k))
    _same(ivf.search(codes[:40], 5), scan.search(codes[:40], 5))  # stored codes: distance 0
    for n in (1, 2, 7, 300):  # tiny indexes, k beyond n padded
        small_ivf, small_scan = _pair(np.ascontiguousarray(codes[:n]))
        _same(small_ivf.search(queries, 9), small_scan.search(queries, 9))


def test_lists_follow_adds_and_removals(clustered):
    codes, queries = clustered
    index, reference = HammingIndex(256, method="ivf"), HammingIndex(256)
    for chunk in np.array_split(codes, 9):
        index.add(np.ascontiguousarray(chunk))
        reference.add(np.ascontiguousarray(chunk))
        # retrained only when the codes doubled: training size <= n < 2x it
        assert index._lists_trained <= len(index) < 2 * index._lists_trained
        _same(index.search(queries, 10), reference.search(queries, 10))
        assert len(index._lists) == len(index)  # the tail was assigned by the search
    drop = np.arange(0, N, 3)
    assert index.remove_ids(drop) == reference.remove_ids(drop) == drop.size
    assert len(index._lists) == len(index) == N - drop.size
    _same(index.search(queries, 10), reference.search(queries, 10))
    allowed = np.arange(1, N, 5)
    _same(index.search(queries, 10, filter=allowed), reference.search(queries, 10, filter=allowed))
    _same(index.range_search(queries, 30), reference.range_search(queries, 30))
    assert index.plan(radius=30).method == "scan"


def test_save_load_keeps_the_lists_memory_mapped(tmp_path, clustered):
    codes, queries = clustered
    index, scan = _pair(codes)
    index.add(codes[:100])  # a tail not yet assigned: saving assigns it
    scan.add(codes[:100])
    path = tmp_path / "index.bin"
    index.save(path)
    arrays, meta = read_container(path, b"HX")
    assert {"ivf_codes", "ivf_ids", "ivf_rings", "ivf_centroids"} <= set(arrays)
    assert meta["lists"]["n_codes"] == len(scan)
    for mmap in (False, True):
        loaded = HammingIndex.load(path, mmap=mmap)
        assert loaded.method == "ivf"
        assert loaded._lists is not None
        assert isinstance(loaded._lists._view[1], np.memmap) == mmap  # its codes
        _same(loaded.search(queries, 10), scan.search(queries, 10))
    loaded.add(codes[:7])
    scan.add(codes[:7])
    _same(loaded.search(queries, 10), scan.search(queries, 10))
    again = pickle.loads(pickle.dumps(loaded))
    _same(again.search(queries, 10), scan.search(queries, 10))
    usage = index.memory_usage()
    estimate = HammingIndex.estimate_memory(len(index), method="ivf")
    assert 0.8 * estimate <= usage <= 1.5 * estimate


def test_corrupt_lists_in_a_file_are_a_typed_error(tmp_path, clustered):
    codes, _ = clustered
    index, _ = _pair(np.ascontiguousarray(codes[:3000]))
    index.save(tmp_path / "good.bin")
    arrays, meta = read_container(tmp_path / "good.bin", b"HX")
    rings = arrays["ivf_rings"].copy()
    rings[5:] = rings[5:][::-1]  # not monotone
    short = dict(meta, lists=dict(meta["lists"], n_codes=2999))
    cases = {
        "rings": (dict(arrays, ivf_rings=rings), meta),
        "codes": (dict(arrays, ivf_codes=arrays["ivf_codes"][::-1].copy()), meta),
        "count": (dict(arrays, ivf_codes=arrays["ivf_codes"][:-1].copy(),
                       ivf_ids=arrays["ivf_ids"][:-1].copy()), short),
        "meta": (arrays, dict(meta, lists="not a mapping")),
    }
    for name, (bad_arrays, bad_meta) in cases.items():
        write_container(tmp_path / f"{name}.bin", b"HX", bad_arrays, bad_meta)
        with pytest.raises(IndexFormatError, match="inverted lists"):
            HammingIndex.load(tmp_path / f"{name}.bin")
