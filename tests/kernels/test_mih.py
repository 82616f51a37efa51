"""Multi-index hashing kernels (pyspec._core.mih_*) against the NumPy reference, exactly.

MIH must return exactly what the linear scan returns (same distances, same
ids, ties by id), at 1, 2 and 4 threads. The data is clustered like codes of
similar spectra: a few centres, each row a centre with 0-40 bits flipped, so
neighbour distances range from 0 (duplicates, many ties; ids are shuffled)
to far, and buckets are crowded. Widths cover word-crossing substrings,
unequal widths and single-table layouts; bit orders cover the identity, a
random permutation (substrings gather bits from every word) and the order
learned from the codes (pyspec.index._mih.learn_bit_order).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import hamming_knn_ref, hamming_range_ref, mih_tables_ref

from pyspec import _core
from pyspec.index._mih import choose_widths, learn_bit_order

_CACHE: dict[tuple, dict] = {}


def _mask_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    if n_bits % 64:
        codes[:, -1] &= np.uint64((1 << (n_bits % 64)) - 1)
    return codes


def clustered_codes(rng: np.random.Generator, n: int, n_bits: int) -> np.ndarray:
    n_words = (n_bits + 63) // 64
    centres = _mask_bits(rng.integers(0, 2**64, size=(12, n_words), dtype=np.uint64), n_bits)
    codes = centres[rng.integers(0, len(centres), size=n)].copy()
    flips = rng.integers(0, 41, size=n)
    for i in np.flatnonzero(flips):
        bit = rng.choice(n_bits, size=min(flips[i], n_bits), replace=False)
        one = np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
        np.bitwise_xor.at(codes[i], bit // 64, one)
    return np.ascontiguousarray(codes)


def make_case(n_bits: int, widths: tuple[int, ...] | None = None, n: int = 3000,
              order: str | None = None) -> dict:
    key = (n_bits, widths, n, order)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(77 + n_bits + n)
    codes = clustered_codes(rng, n, n_bits)
    ids = (rng.permutation(n) * 5 + 3).astype(np.int64)
    n_words = codes.shape[1]
    near = codes[rng.integers(0, n, size=7)].copy()
    fresh = clustered_codes(rng, 7, n_bits)
    far = _mask_bits(rng.integers(0, 2**64, size=(3, n_words), dtype=np.uint64), n_bits)
    queries = np.ascontiguousarray(np.concatenate([near, fresh, far]))
    w = choose_widths(n_bits, n) if widths is None else np.asarray(widths, dtype=np.int32)
    bit_order = None
    if order == "learned":
        bit_order = learn_bit_order(codes, n_bits, w)
    elif order == "random":
        bit_order = rng.permutation(n_bits).astype(np.int32)
    offsets, rows = _core.mih_build(codes, w, 2, bit_order=bit_order)
    case = {"codes": codes, "ids": ids, "queries": queries, "widths": w, "offsets": offsets,
            "rows": rows, "n_bits": n_bits, "bit_order": bit_order}
    _CACHE[key] = case
    return case


# (n_bits, widths): automatic widths at several code lengths, then explicit
# layouts: substrings crossing word boundaries (15-bit substrings start at
# 60, 120, 180, 240), unequal widths up to the widest (24), one table over a
# whole short code.
LAYOUTS = [(32, None, None), (64, None, None), (200, None, None), (256, None, None),
           (512, None, None), (256, (15,) * 17 + (1,), None),
           (128, (7, 24, 20, 20, 20, 20, 17), None), (20, (20,), None),
           (256, None, "learned"), (200, None, "random"),
           (128, (7, 24, 20, 20, 20, 20, 17), "random")]


def tables(case: dict) -> tuple:
    return case["widths"], case["offsets"], case["rows"]


@pytest.mark.parametrize(("n_bits", "widths", "order"), LAYOUTS)
def test_build_equals_reference(n_bits, widths, order):
    case = make_case(n_bits, widths, order=order)
    assert int(case["widths"].sum()) == n_bits
    ref_offsets, ref_rows = mih_tables_ref(case["codes"], case["widths"], case["bit_order"])
    np.testing.assert_array_equal(case["offsets"], ref_offsets)
    np.testing.assert_array_equal(case["rows"], ref_rows)
    assert _core.mih_check_tables(*tables(case)[:1], len(case["codes"]), *tables(case)[1:])


@pytest.mark.parametrize(("n_bits", "widths", "order"), LAYOUTS)
def test_knn_equals_reference(num_threads, n_bits, widths, order):
    case = make_case(n_bits, widths, order=order)
    for k in (1, 10, 64):
        ref_ids, ref_d = hamming_knn_ref(case["queries"], case["codes"], case["ids"], k,
                                         n_bits + 1)
        ids, d, work = _core.mih_knn(case["queries"], case["codes"], case["ids"], *tables(case),
                                     k, n_bits + 1, 0, num_threads,
                                     bit_order=case["bit_order"])
        np.testing.assert_array_equal(d, ref_d, err_msg=f"k={k}")
        np.testing.assert_array_equal(ids, ref_ids, err_msg=f"k={k}")
        assert (work > 0).all()  # no budget: every query answered by MIH


@pytest.mark.parametrize(("n_bits", "widths", "order"), LAYOUTS)
def test_range_equals_reference(num_threads, n_bits, widths, order):
    case = make_case(n_bits, widths, order=order)
    for radius in (0, 3, n_bits // 8, n_bits // 3):
        ref = hamming_range_ref(case["queries"], case["codes"], case["ids"], radius)
        off, ids, d, _ = _core.mih_range(case["queries"], case["codes"], case["ids"],
                                         *tables(case), radius, 0, num_threads,
                                         bit_order=case["bit_order"])
        np.testing.assert_array_equal(off, ref[0], err_msg=f"radius={radius}")
        np.testing.assert_array_equal(d, ref[2], err_msg=f"radius={radius}")
        np.testing.assert_array_equal(ids, ref[1], err_msg=f"radius={radius}")


def test_work_budget_falls_back_to_the_scan_with_the_same_result(num_threads):
    case = make_case(256)
    k, pad = 10, 257
    ref_ids, ref_d = hamming_knn_ref(case["queries"], case["codes"], case["ids"], k, pad)
    _, _, free_work = _core.mih_knn(case["queries"], case["codes"], case["ids"], *tables(case),
                                    k, pad, 0, 1)
    # A budget between the cheapest and the dearest query: some fall back.
    budget = int(np.median(free_work))
    ids, d, work = _core.mih_knn(case["queries"], case["codes"], case["ids"], *tables(case), k,
                                 pad, budget, num_threads)
    np.testing.assert_array_equal(d, ref_d)
    np.testing.assert_array_equal(ids, ref_ids)
    fell = work < 0
    assert fell.any()
    assert (~fell).any()
    np.testing.assert_array_equal(fell, free_work > budget)
    radius = 40
    ref = hamming_range_ref(case["queries"], case["codes"], case["ids"], radius)
    *got, rwork = _core.mih_range(case["queries"], case["codes"], case["ids"], *tables(case),
                                  radius, 1, num_threads)
    assert (rwork < 0).all()
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g, r)


def test_k_above_database_size_and_empty_inputs():
    case = make_case(64, n=40)
    codes, ids = case["codes"], case["ids"]
    ref_ids, ref_d = hamming_knn_ref(case["queries"], codes, ids, 50, 65)
    got_ids, got_d, _ = _core.mih_knn(case["queries"], codes, ids, *tables(case), 50, 65, 0, 2)
    np.testing.assert_array_equal(got_d, ref_d)
    np.testing.assert_array_equal(got_ids, ref_ids)
    got_ids, got_d, work = _core.mih_knn(case["queries"], codes, ids, *tables(case), 0, 65)
    assert got_ids.shape == (len(case["queries"]), 0)
    assert (work == 0).all()
    empty = np.empty((0, 1), np.uint64)
    w = choose_widths(64, 0)
    off, rows = _core.mih_build(empty, w)
    assert rows.shape == (len(w), 0)
    assert not off.any()
    got_ids, got_d, _ = _core.mih_knn(case["queries"], empty, np.empty(0, np.int64), w, off,
                                      rows, 3, 65)
    assert (got_ids == -1).all()
    assert (got_d == 65).all()
    roff, rids, _, _ = _core.mih_range(case["queries"], empty, np.empty(0, np.int64), w, off,
                                       rows, 64)
    assert not roff.any()
    assert rids.size == 0


def test_check_tables_rejects_out_of_range_entries():
    case = make_case(64, n=40)
    w, off, rows = tables(case)
    n = len(case["codes"])
    bad_rows = rows.copy()
    bad_rows[1, 5] = n
    assert not _core.mih_check_tables(w, n, off, bad_rows)
    bad_off = off.copy()
    bad_off[3] = n + 7  # not monotone, past the end
    assert not _core.mih_check_tables(w, n, bad_off, rows)
    assert not _core.mih_check_tables(w, n + 1, off, np.zeros((len(w), n + 1), np.uint32))


def test_wrong_arrays_straight_to_core(rng):
    case = make_case(64, n=40)
    codes, ids = case["codes"], case["ids"]
    w, off, rows = tables(case)
    with pytest.raises(TypeError):
        _core.mih_knn(codes, codes, ids, w.astype(np.int64), off, rows, 3, 65)
    with pytest.raises(TypeError):
        _core.mih_knn(codes, codes, ids, w, off.astype(np.int64), rows, 3, 65)
    with pytest.raises(ValueError, match="rows"):
        _core.mih_knn(codes, codes, ids, w, off, rows[:, :-1].copy(), 3, 65)
    with pytest.raises(ValueError, match="offsets"):
        _core.mih_knn(codes, codes, ids, w, off[:-1].copy(), rows, 3, 65)
    with pytest.raises(ValueError, match="widths"):
        _core.mih_build(codes, np.array([25, 25, 14], np.int32))
    with pytest.raises(ValueError, match="code length"):
        _core.mih_build(codes, np.array([24, 24, 24], np.int32))
    with pytest.raises(ValueError, match="k must be"):
        _core.mih_knn(codes, codes, ids, w, off, rows, -1, 65)


def test_learned_bit_order_is_a_permutation_that_spreads_correlated_bits():
    # Codes whose bits come in identical pairs (bit 2i+1 = bit 2i): contiguous
    # 8-bit substrings hold 4 bits of information each; the learned order
    # puts one bit of each pair in a table, so its buckets are far emptier.
    rng = np.random.default_rng(5)
    half = rng.integers(0, 2, size=(4000, 64), dtype=np.uint8)
    bits = np.repeat(half, 2, axis=1)
    codes = np.packbits(bits, axis=1, bitorder="little").view(np.uint64)
    widths = np.full(16, 8, dtype=np.int32)
    order = learn_bit_order(codes, 128, widths)
    np.testing.assert_array_equal(np.sort(order), np.arange(128))

    def collisions(bit_order):
        offsets, _ = _core.mih_build(np.ascontiguousarray(codes), widths, 1, bit_order=bit_order)
        counts = np.diff(offsets.astype(np.int64).reshape(16, 257), axis=1)
        return float((counts.astype(np.float64) ** 2).sum())

    assert collisions(order) < 0.2 * collisions(None)


def test_bad_bit_order_is_a_typed_error():
    case = make_case(64, n=40)
    codes, ids = case["codes"], case["ids"]
    w, off, rows = tables(case)
    repeated = np.arange(64, dtype=np.int32)
    repeated[5] = 4
    outside = np.arange(64, dtype=np.int32)
    outside[0] = 64
    for bad, match in ((repeated, "repeats"), (outside, "bit position"),
                       (np.arange(63, dtype=np.int32), "shape")):
        with pytest.raises(ValueError, match=match):
            _core.mih_build(codes, w, bit_order=bad)
        with pytest.raises(ValueError, match=match):
            _core.mih_knn(codes, codes, ids, w, off, rows, 3, 65, bit_order=bad)
        with pytest.raises(ValueError, match=match):
            _core.mih_range(codes, codes, ids, w, off, rows, 3, bit_order=bad)
    with pytest.raises(TypeError):
        _core.mih_build(codes, w, bit_order=np.arange(64, dtype=np.int64))
