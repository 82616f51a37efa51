"""IVFHammingIndex.search(exact=True): the linear scan's result through ring-sorted lists.

The reference is the NumPy brute force of tests/reference.py (all distances,
then (distance, id) order), so ties and padding are compared too.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import hamming_knn_ref
from test_index_ivf import clustered_codes

import pyspec
from pyspec import _core
from pyspec._fileformat import read_container, write_container
from pyspec.errors import IndexFormatError
from pyspec.index.ivf import IVFHammingIndex


def uniform_codes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**63, size=(n, 4), dtype=np.uint64) * 2 + 1


def assert_exact(index: IVFHammingIndex, codes: np.ndarray, ids: np.ndarray,
                 queries: np.ndarray, k: int, threads: int = 1) -> None:
    got = index.search(queries, k, num_threads=threads, exact=True)
    ref_ids, ref_dist = hamming_knn_ref(np.atleast_2d(queries), codes, ids, k,
                                        index.pad_distance)
    np.testing.assert_array_equal(got.distances, ref_dist)
    np.testing.assert_array_equal(got.ids, ref_ids)


@pytest.fixture(scope="module")
def clustered():
    both = clustered_codes(6_040)  # queries from the same clusters
    codes, queries = both[:6_000], both[6_000:]
    ids = np.random.default_rng(3).permutation(20_000)[:6_000].astype(np.int64)
    # stored codes as queries too: exact duplicates and ties at every distance
    return codes, ids, np.concatenate([queries, codes[:20]])


@pytest.mark.parametrize("kind", ["clustered", "uniform"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_exact_equals_brute_force(clustered, kind, threads):
    if kind == "clustered":
        codes, ids, queries = clustered
    else:
        codes, queries = uniform_codes(3_000), uniform_codes(30, seed=1)
        ids = np.arange(3_000, dtype=np.int64)[::-1].copy()
    index = IVFHammingIndex(256)
    index.add(codes, ids)
    for k in (1, 10, 77):
        assert_exact(index, codes, ids, queries, k, threads)


@pytest.mark.parametrize("kind", ["clustered", "uniform"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batches_go_list_major_and_stay_exact(clustered, kind, threads, simd_level):
    """Batches of 32+ queries take the list-major path (groups of up to 256 queries,
    a group of one at 257); small lists make a query's first visits run past its
    nearest list until its top-k is full. Equal to brute force and to the results
    of the same queries searched one at a time (the per-query path), at every SIMD
    level of the block kernels."""
    if kind == "clustered":
        codes, ids, _ = clustered
        queries = np.concatenate([clustered_codes(6_300)[6_000:], codes[:20]])
    else:
        codes, queries = uniform_codes(3_000), uniform_codes(300, seed=2)
        queries[::7] = codes[::70][: queries[::7].shape[0]]  # duplicates: ties at 0
        ids = np.arange(3_000, dtype=np.int64)[::-1].copy()
    index = IVFHammingIndex(256, n_lists=400)  # ~7-15 codes per list
    index.add(codes, ids)
    for n_queries in (32, 33, 257):
        batch = np.ascontiguousarray(queries[:n_queries])
        for k in (1, 10, 77):
            assert_exact(index, codes, ids, batch, k, threads)
    one_by_one = [index.search(q, 10, num_threads=1, exact=True) for q in queries[:40]]
    together = index.search(np.ascontiguousarray(queries[:40]), 10, num_threads=threads,
                            exact=True)
    np.testing.assert_array_equal(np.vstack([r.ids for r in one_by_one]), together.ids)
    np.testing.assert_array_equal(np.vstack([r.distances for r in one_by_one]),
                                  together.distances)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_single_query_split_over_threads(threads):
    """A single query with more threads than queries shares its lists out (enough
    lists that the kernel does not fall back to one thread)."""
    both = clustered_codes(9_003, n_centres=200, spread=0.3, seed=2)
    codes, queries = both[:9_000], both[9_000:]
    ids = np.arange(9_000, dtype=np.int64)
    index = IVFHammingIndex(256, n_lists=4_500, n_train=9_000)
    index.add(codes, ids)
    for q in (queries[:1], queries[1:3], codes[5:6]):
        assert_exact(index, codes, ids, q, 10, threads)
    assert_exact(index, codes, ids, queries[0], 10, threads)  # 1-D query


def test_k_above_n_and_empty_lists(clustered):
    codes, ids, queries = clustered
    index = IVFHammingIndex(256, n_lists=40)
    index.add(codes[:500], ids[:500])
    assert_exact(index, codes[:500], ids[:500], queries[:5], 600)  # padded rows
    # empty whole lists
    list_of_row = np.repeat(np.arange(40), index.list_sizes)
    dropped = index.ids[np.isin(list_of_row, [0, 3, 17])].copy()
    assert index.remove_ids(dropped) == len(dropped) > 0
    assert (index.list_sizes[[0, 3, 17]] == 0).all()
    keep = ~np.isin(ids[:500], dropped)
    assert_exact(index, codes[:500][keep], ids[:500][keep], queries, 10)
    trained_only = IVFHammingIndex(256, n_lists=8).train(codes[:100])
    res = trained_only.search(queries[:2], 3, exact=True)
    assert (res.ids == -1).all()
    assert (res.distances == 257).all()


def test_add_and_remove_keep_rings(clustered):
    codes, ids, queries = clustered
    index = IVFHammingIndex(256, n_lists=60)
    index.add(codes[:2_000], ids[:2_000])
    index.add(codes[2_000:], ids[2_000:])
    assert_exact(index, codes, ids, queries, 10)
    one = IVFHammingIndex(256, n_lists=60)
    one.train(codes[:2_000])
    one.add(codes, ids)
    np.testing.assert_array_equal(one.rings, index.rings)
    np.testing.assert_array_equal(one.ids, index.ids)  # same layout as one add
    drop = ids[::3]
    assert index.remove_ids(drop) == len(drop)
    keep = ~np.isin(ids, drop)
    assert_exact(index, codes[keep], ids[keep], queries, 10, threads=2)
    # every row sits in its ring: distance to its list's centroid = ring number
    stride = 257
    keys = np.repeat(np.arange(index.rings.size - 1), np.diff(index.rings))
    dist = np.bitwise_count(index.codes ^ index.centroids[keys // stride]).sum(axis=1)
    np.testing.assert_array_equal(dist, keys % stride)


def test_save_load_and_version_1_files(tmp_path, clustered):
    codes, ids, queries = clustered
    index = IVFHammingIndex(256, n_lists=50)
    index.add(codes, ids)
    before = index.search(queries, 10, exact=True)
    path = tmp_path / "ivf.pyspec"
    index.save(path)
    for mmap in (False, True):
        back = IVFHammingIndex.load(path, mmap=mmap)
        np.testing.assert_array_equal(back.rings, index.rings)
        got = back.search(queries, 10, exact=True)
        np.testing.assert_array_equal(got.ids, before.ids)
        np.testing.assert_array_equal(got.distances, before.distances)
    # a file of layout version 1 (no rings, lists in insertion order) is re-sorted
    arrays, meta = read_container(path, b"IV")
    arrays = {k: np.array(v) for k, v in arrays.items() if k != "rings"}
    for lo, hi in zip(arrays["offsets"][:-1], arrays["offsets"][1:], strict=True):
        arrays["codes"][lo:hi] = arrays["codes"][lo:hi][::-1]  # any order inside a list
        arrays["ids"][lo:hi] = arrays["ids"][lo:hi][::-1]
    old = tmp_path / "v1.pyspec"
    write_container(old, b"IV", arrays, {k: v for k, v in meta.items() if k != "layout_version"})
    loaded = IVFHammingIndex.load(old, mmap=True)
    np.testing.assert_array_equal(loaded.rings, index.rings)
    got = loaded.search(queries, 10, exact=True)
    np.testing.assert_array_equal(got.ids, before.ids)
    loaded.save(tmp_path / "again.pyspec")
    assert read_container(tmp_path / "again.pyspec", b"IV")[1]["layout_version"] == 2
    write_container(tmp_path / "v3.pyspec", b"IV", arrays, dict(meta, layout_version=3))
    with pytest.raises(IndexFormatError, match="layout version"):
        IVFHammingIndex.load(tmp_path / "v3.pyspec")


def test_corrupt_ring_offsets_raise_typed_error(tmp_path, clustered):
    codes, ids, _ = clustered
    index = IVFHammingIndex(256, n_lists=30)
    index.add(codes[:3_000], ids[:3_000])
    path = tmp_path / "ivf.pyspec"
    index.save(path)
    arrays, meta = read_container(path, b"IV")
    rings = np.array(arrays["rings"])
    # a ring boundary inside a list, after a ring of >= 2 rows
    inner = [i for i in np.flatnonzero(np.diff(rings) > 1) + 1 if i % 257][3]
    shifted = rings.copy()
    shifted[inner] -= 1  # still non-decreasing, but a row changes ring
    backwards = rings.copy()
    backwards[inner] = rings[inner + 1] + 1
    off_list = rings.copy()
    off_list[257] += 1  # the end of list 0 disagrees with the offsets
    cases = {"wrong distance": shifted, "non-decreasing": backwards,
             "offsets": off_list, "int64": rings[:-1].copy(), "int64 ": rings.astype(np.int32)}
    for i, (match, bad) in enumerate(cases.items()):
        crafted = tmp_path / f"crafted{i}.pyspec"
        write_container(crafted, b"IV", dict(arrays, rings=bad), meta)
        with pytest.raises(IndexFormatError, match=match.strip()):
            IVFHammingIndex.load(crafted)
    missing = {k: v for k, v in arrays.items() if k != "rings"}
    write_container(tmp_path / "missing.pyspec", b"IV", missing, meta)
    with pytest.raises(IndexFormatError, match="ring"):
        IVFHammingIndex.load(tmp_path / "missing.pyspec")
    # the kernel itself refuses runs outside their list (memory safety)
    q = np.ascontiguousarray(codes[:2])
    c, x, i, offsets, _, (radii, base, rel) = index._view
    good = (offsets, radii, base, rel)
    bad_cases = {"ring offsets out of order": (offsets, radii, base,
                                               np.full_like(rel, len(x) + 5)),
                 "disagree with radii": (offsets, np.full_like(radii, 2), base, rel),
                 "ring_base must have shape": (offsets, radii, base[:-1], rel),
                 "run from 0": (offsets, radii, base, rel[:-1]),
                 "offsets": (offsets[::-1].copy(), radii, base, rel),
                 "radii out of range": (offsets, np.full_like(radii, 300), base, rel)}
    for match, args in bad_cases.items():
        with pytest.raises(ValueError, match=match):
            _core.ivf_hamming_knn_exact(q, c, x, i, *args, 256, 10, 257, 1)
    _core.ivf_hamming_knn_exact(q, c, x, i, *good, 256, 10, 257, 1)


def test_exact_arguments_and_rerank(clustered):
    codes, ids, queries = clustered
    index = IVFHammingIndex(256, n_lists=20)
    index.add(codes[:1_000])
    with pytest.raises(ValueError, match="nprobe"):
        index.search(queries, 5, nprobe=3, exact=True)
    with pytest.raises(TypeError, match="exact"):
        index.search(queries, 5, exact="yes")
    # exact candidates re-ranked by float vectors = brute-force re-rank of the scan's
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1_000, 8)).astype(np.float32)
    qv = rng.normal(size=(len(queries), 8))
    got = index.search(queries, 5, rerank=20, vectors=vectors, query_vectors=qv, exact=True)
    flat = pyspec.HammingIndex(256)
    flat.add(codes[:1_000])
    short = flat.search(queries, 20).ids
    d = ((vectors[short].astype(np.float64) - qv[:, None, :]) ** 2).sum(-1).astype(np.float32)
    order = np.lexsort((short, d), axis=1)[:, :5]
    np.testing.assert_array_equal(got.ids, np.take_along_axis(short, order, axis=1))
