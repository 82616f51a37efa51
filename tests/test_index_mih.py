"""HammingIndex(method=...): identical results for "scan", "mih", "ivf" and "auto".

The scan is itself checked against the NumPy reference
(tests/kernels/test_hamming.py), so here every method must equal it exactly.
"auto" builds inverted lists from IVF_MIN_CODES (65,536) codes on, so the
indexes here hold 70,000 codes: clustered ones (near-duplicate spectra: a
few hundred centres with 0-6 flipped bits, where MIH and the lists read few
codes) and uniform ones (no structure: the k-th neighbour of 256-bit codes
is ~90 bits away, every band of the lists is the whole list and MIH would
probe more than a scan reads).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pyspec import HammingIndex, _core
from pyspec._fileformat import read_container, write_container
from pyspec.errors import IndexFormatError
from pyspec.index._ivf_method import IVF_MIN_CODES

N = 70_000


def _flip(rng: np.random.Generator, codes: np.ndarray, max_flips: int) -> np.ndarray:
    out = codes.copy()
    for _ in range(max_flips):
        rows = np.flatnonzero(rng.random(len(out)) < 0.5)
        bit = rng.integers(0, 256, size=rows.size)
        out[rows, bit // 64] ^= np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
    return out


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    centres = rng.integers(0, 2**64, size=(300, 4), dtype=np.uint64)
    codes = _flip(rng, centres[rng.integers(0, 300, size=N)], 6)
    queries = _flip(rng, centres[rng.integers(0, 300, size=40)], 4)
    return np.ascontiguousarray(codes), np.ascontiguousarray(queries)


@pytest.fixture(scope="module")
def uniform() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    return (rng.integers(0, 2**64, size=(N, 4), dtype=np.uint64),
            rng.integers(0, 2**64, size=(5, 4), dtype=np.uint64))


def _filled(codes: np.ndarray, method: str, ids: np.ndarray | None = None) -> HammingIndex:
    index = HammingIndex(256, method=method)
    index.add(codes, ids)
    return index


def _assert_same(a, b) -> None:
    for field in ("lims", "ids", "distances") if hasattr(a, "lims") else ("ids", "distances"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("data", ["clustered", "uniform"])
def test_every_method_returns_the_scan_result(request, data):
    codes, queries = request.getfixturevalue(data)
    ids = np.random.default_rng(1).permutation(N).astype(np.int64) // 3  # tied ids too
    scan = _filled(codes, "scan", ids)
    for method in ("mih", "auto", "ivf"):
        index = _filled(codes, method, ids)
        for k in (1, 10, 100):
            for threads in (1, 2):
                _assert_same(index.search(queries, k, num_threads=threads),
                             scan.search(queries, k))
        for radius in (0, 5, 12):
            _assert_same(index.range_search(queries, radius), scan.range_search(queries, radius))


def test_auto_plan_follows_the_code_distribution(clustered, uniform):
    near = _filled(clustered[0], "auto")
    assert near._mih_tables is None  # "auto" weighs the lists, not MIH
    plan = near.plan(k=10)
    assert plan.method == "ivf"
    assert plan.ivf_work < plan.scan_work / 2
    in_batch = near.plan(k=10, n_queries=1000)  # the scan shares its passes: a third per query
    assert in_batch.scan_work == round(N / 3)
    assert in_batch.ivf_work < plan.ivf_work  # a batch streams the bands list-major
    assert in_batch.method == "ivf"
    assert near.plan(radius=3).method == "scan"  # the lists serve k-NN only
    far = _filled(uniform[0], "auto")
    assert far.plan(k=10).method == "scan"
    assert far.plan(k=10).ivf_work > N / 2
    assert far.plan(k=10, n_queries=1000).method == "scan"
    small = _filled(clustered[0][:1000], "auto")
    assert small.plan(k=10).method == "scan"
    assert small._lists is None
    assert _filled(clustered[0][:1000], "mih").plan(k=10).method == "mih"
    assert _filled(clustered[0][:1000], "ivf").plan(k=10).method == "ivf"
    assert _filled(clustered[0], "scan").plan(radius=3).method == "scan"
    with pytest.raises(ValueError, match="exactly one"):
        near.plan()


def test_tables_follow_adds(clustered):
    codes, queries = clustered
    index = HammingIndex(256, method="mih")
    for chunk in np.array_split(codes, 7):
        index.add(np.ascontiguousarray(chunk))
        _assert_same(index.search(queries, 10), _filled(index.codes.copy(), "scan").search(
            queries, 10))
    assert index._mih_tables.n_codes == len(index) == N


def test_save_load_keeps_tables_memory_mapped(tmp_path, clustered):
    codes, queries = clustered
    index = _filled(codes, "mih")
    expected = index.search(queries, 10)
    path = tmp_path / "index.bin"
    index.save(path)
    order = index._mih_tables.bit_order
    # the learned order is a permutation, and not the identity on clustered codes
    np.testing.assert_array_equal(np.sort(order), np.arange(256))
    assert (order != np.arange(256)).any()
    for mmap in (False, True):
        loaded = HammingIndex.load(path, mmap=mmap)
        assert loaded.method == "mih"
        assert loaded._mih_tables is not None
        assert isinstance(loaded._mih_tables.rows, np.memmap) == mmap
        np.testing.assert_array_equal(loaded._mih_tables.bit_order, order)
        assert loaded.plan(k=10).method == "mih"
        _assert_same(loaded.search(queries, 10), expected)
    loaded.add(codes[:10])  # copies out of the map, then searches the new codes too
    _assert_same(loaded.search(queries, 10),
                 _filled(np.concatenate([codes, codes[:10]]), "scan").search(queries, 10))
    scan_path = tmp_path / "scan.bin"
    _filled(codes[:100], "scan").save(scan_path)
    arrays, meta = read_container(scan_path, b"HX")
    assert set(arrays) == {"codes", "ids"}
    assert meta["method"] == "scan"


def test_corrupted_or_foreign_tables_are_rejected(tmp_path, clustered):
    index = _filled(clustered[0][:2000], "mih")
    index.save(tmp_path / "good.bin")
    arrays, meta = read_container(tmp_path / "good.bin", b"HX")
    cases = {
        "rows": dict(arrays, mih_rows=np.full_like(arrays["mih_rows"], 2000)),
        "offsets": dict(arrays, mih_offsets=arrays["mih_offsets"][::-1].copy()),
        "widths": dict(arrays, mih_widths=arrays["mih_widths"] + 1),
        "incomplete": {k: v for k, v in arrays.items() if k != "mih_rows"},
        "order_repeats": dict(arrays, mih_bit_order=np.zeros(256, np.int32)),
        "order_outside": dict(arrays, mih_bit_order=arrays["mih_bit_order"] + 1),
        "order_short": dict(arrays, mih_bit_order=arrays["mih_bit_order"][:-1].copy()),
        "order_dtype": dict(arrays, mih_bit_order=arrays["mih_bit_order"].astype(np.int64)),
    }
    for name, bad in cases.items():
        write_container(tmp_path / f"{name}.bin", b"HX", bad, meta)
        with pytest.raises(IndexFormatError, match="bit order" if "order" in name else None):
            HammingIndex.load(tmp_path / f"{name}.bin")
    write_container(tmp_path / "method.bin", b"HX", arrays, dict(meta, method="fast"))
    with pytest.raises(IndexFormatError, match="method"):
        HammingIndex.load(tmp_path / "method.bin")


def test_method_is_validated_and_pickled(clustered):
    with pytest.raises(ValueError, match="method must be one of"):
        HammingIndex(256, method="MIH")
    with pytest.raises(ValueError, match="method must be one of"):
        HammingIndex(256, method=None)
    index = _filled(clustered[0][:500], "mih")
    again = pickle.loads(pickle.dumps(index))
    assert again.method == "mih"
    assert "method='mih'" in repr(again)
    _assert_same(again.search(clustered[1], 5), index.search(clustered[1], 5))
    assert IVF_MIN_CODES > 500


def test_engine_reports_the_plan_of_its_index(clustered):
    from pyspec.backends import get_backend
    from pyspec.engine import Engine

    engine = object.__new__(Engine)  # the hook reads only the backend, the index and the size
    engine.backend, engine.index = get_backend("pil"), _filled(clustered[0], "auto")
    engine.info = {"n_spectra": len(engine.index)}
    assert engine.search_plan(10) == engine.index.plan(k=10)
    assert engine.search_plan(10).method == "ivf"
    engine.backend, engine.info = get_backend("pq"), {"n_spectra": 7}
    assert engine.search_plan(10).method == "scan"


def test_index_written_before_mih_loads_as_a_scan_index(tmp_path, clustered):
    codes, queries = clustered
    old = _filled(codes, "scan")
    old.save(tmp_path / "old.bin")
    arrays, meta = read_container(tmp_path / "old.bin", b"HX")
    del meta["method"]  # as written before multi-index hashing existed
    write_container(tmp_path / "old.bin", b"HX", arrays, meta)
    loaded = HammingIndex.load(tmp_path / "old.bin", mmap=True)
    assert loaded.method == "scan"  # the default: no tables are built for it
    _assert_same(loaded.search(queries, 10), old.search(queries, 10))
    loaded.add(codes[:5])
    assert loaded._mih_tables is None
    assert loaded.plan(k=10).method == "scan"


@pytest.mark.parametrize("method", ["auto", "ivf"])
def test_index_saved_without_lists_scans_until_the_next_add(tmp_path, clustered, method):
    # As session 8 wrote "auto" indexes: MIH tables, no inverted lists (an "ivf"
    # file without them can only be crafted; it must not fail at search time).
    codes, queries = clustered
    old = _filled(codes, method)
    old.save(tmp_path / "old.bin")
    arrays, meta = read_container(tmp_path / "old.bin", b"HX")
    arrays = {k: v for k, v in arrays.items() if not k.startswith("ivf_")}
    del meta["lists"]
    mih_path = tmp_path / "mih.bin"
    _filled(codes, "mih").save(mih_path)
    arrays.update({k: v for k, v in read_container(mih_path, b"HX")[0].items()
                   if k.startswith("mih_")})
    write_container(tmp_path / "old.bin", b"HX", arrays, meta)
    loaded = HammingIndex.load(tmp_path / "old.bin", mmap=True)
    assert loaded.method == method
    assert loaded.plan(k=10).method == "scan"
    assert "no inverted lists" in loaded.plan(k=10).reason
    assert loaded._mih_tables is None
    assert loaded._lists is None
    _assert_same(loaded.search(queries, 10), old.search(queries, 10))
    loaded.add(codes[:5])
    assert loaded._lists is not None
    assert loaded.plan(k=10).method == "ivf"
    _assert_same(loaded.search(queries, 10),
                 _filled(np.concatenate([codes, codes[:5]]), "scan").search(queries, 10))


def test_tables_written_before_the_learned_bit_order_still_load(tmp_path, clustered):
    # Session-6 files: contiguous substrings, no mih_bit_order array.
    codes, queries = clustered
    index = _filled(codes, "mih")
    index.save(tmp_path / "new.bin")
    arrays, meta = read_container(tmp_path / "new.bin", b"HX")
    del arrays["mih_bit_order"]
    arrays["mih_offsets"], arrays["mih_rows"] = _core.mih_build(codes, arrays["mih_widths"])
    write_container(tmp_path / "old.bin", b"HX", arrays, meta)
    for mmap in (False, True):
        loaded = HammingIndex.load(tmp_path / "old.bin", mmap=mmap)
        assert loaded._mih_tables.bit_order is None
        for k in (1, 10):
            _assert_same(loaded.search(queries, k), index.search(queries, k))
        _assert_same(loaded.range_search(queries, 5), index.range_search(queries, 5))
    loaded.save(tmp_path / "again.bin")  # still written without an order
    assert "mih_bit_order" not in read_container(tmp_path / "again.bin", b"HX")[0]
