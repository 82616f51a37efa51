"""Multi-index hashing tables behind ``HammingIndex(method="mih")``.

Multi-index hashing (Norouzi, Punjani & Fleet 2012) cuts each code into
``m`` substrings and keeps one hash table per substring; an exact search
probes the keys near the query's substrings and verifies the rows found on
the full code (see ``csrc/mih.hpp``). The compiled kernels return exactly
the linear scan's result, ties included; this module chooses the substring
widths, builds and checks the tables.

MIH is used only when asked for: on codes of real-like spectra it read
0.43-0.67 of the codes per query at 10-40M (bench/RESULTS.md, issue 21),
so ``method="auto"`` weighs the exact inverted lists against the scan
instead (:mod:`pyspec.index._plan`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from pyspec import _core

# Substring widths: log2(n) bits balances bucket size (~1 row per bucket
# for uniform codes) against probes per radius (Norouzi et al., section 4);
# rounded up, because codes of similar spectra crowd their buckets: at 10M
# codes 11 tables of 23-24 bits verify ~20% fewer codes per query than 12
# of 21-22 (bench/RESULTS.md, issue 21, session 7), for tables ~1.5x as big.
# 24 bits caps a table's offsets at 64 MiB.
_MIN_WIDTH, _MAX_WIDTH, _MAX_TABLES = 8, 24, 64
# Random pairs of codes the bit order is learned from: substrings of ~20
# bits of clustered codes collide for ~0.5% of pairs, i.e. still ~600 pairs
# at the last bits; learning costs ~0.5 s, a few % of a 10M-code build.
_ORDER_PAIRS = 1 << 17
def choose_widths(n_bits: int, n_codes: int) -> np.ndarray:
    """Substring widths (int32, summing to ``n_bits``) for ``n_codes`` codes."""
    target = math.ceil(math.log2(max(n_codes, 2)))
    width = min(max(target, _MIN_WIDTH, -(-n_bits // _MAX_TABLES)), _MAX_WIDTH, n_bits)
    m = -(-n_bits // width)
    widths = np.full(m, n_bits // m, dtype=np.int32)
    widths[: n_bits % m] += 1
    return widths


def learn_bit_order(codes: np.ndarray, n_bits: int, widths: np.ndarray) -> np.ndarray:
    """A permutation of the ``n_bits`` bits (int32) grouping them into substrings.

    Substring ``t`` of the tables is made of the bits
    ``order[sum(widths[:t]):sum(widths[:t + 1])]``. Any partition keeps MIH
    exact; what it changes is how crowded the buckets are. A query drawn
    like the codes meets, in table ``t``, about ``n * P(two codes agree on
    substring t)`` codes, so each substring is grown greedily (one bit per
    table in turn) with the free bit that keeps this collision rate lowest,
    measured on a fixed sample of random pairs of codes. Codes of similar
    spectra have strongly correlated bits (bench/RESULTS.md, issue 21: mean
    |correlation| 0.49), and neighbouring bits of the hasher tend to agree
    together, so this spreads them much better than bit ranges.
    """
    n = codes.shape[0]
    if n < 2:
        return np.arange(n_bits, dtype=np.int32)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, n, size=(2, _ORDER_PAIRS))
    keep = first != second
    differ = np.asarray(codes[np.sort(first[keep])]) ^ np.asarray(codes[np.sort(second[keep])])
    # agree[p, b] = 1 where pair p has the same bit b (rows drawn sorted:
    # pairs stay random, reads of a memory map stay sequential)
    agree = 1 - np.unpackbits(np.ascontiguousarray(differ).view(np.uint8), axis=1,
                              bitorder="little")[:, :n_bits]
    free = np.ones(n_bits, dtype=bool)
    members: list[list[int]] = [[] for _ in widths]
    # alive[t]: the pairs that agree on every bit of substring t so far
    alive = [np.arange(agree.shape[0]) for _ in widths]
    for _ in range(int(widths.max())):
        for t, width in enumerate(widths):
            if len(members[t]) == width:
                continue
            together = agree[alive[t]].sum(axis=0, dtype=np.int64)
            together[~free] = np.iinfo(np.int64).max
            bit = int(np.argmin(together))
            members[t].append(bit)
            free[bit] = False
            alive[t] = alive[t][agree[alive[t], bit] == 1]
    return np.concatenate([np.asarray(m, dtype=np.int32) for m in members])


class MihTables(NamedTuple):
    """Tables over the first ``n_codes`` rows of an index (layout: csrc/mih.hpp).

    widths : int32 (m,); offsets : uint32 (sum(2**widths + 1),);
    rows : uint32 (m, n_codes); bit_order : int32 (n_bits,), the bits of
    the substrings, or None for contiguous bit ranges (files written before
    the order was learned).
    """

    widths: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    bit_order: np.ndarray | None = None

    @property
    def n_codes(self) -> int:
        return int(self.rows.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"mih_widths": self.widths, "mih_offsets": self.offsets, "mih_rows": self.rows}
        if self.bit_order is not None:
            out["mih_bit_order"] = self.bit_order
        return out

    def knn(self, queries: np.ndarray, codes: np.ndarray, ids: np.ndarray, k: int,
            pad_distance: int, max_work: int, num_threads: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``_core.mih_knn`` over these tables -> (ids, distances, work)."""
        return _core.mih_knn(queries, codes, ids, self.widths, self.offsets, self.rows, k,
                             pad_distance, max_work, num_threads, bit_order=self.bit_order)

    def range_search(self, queries: np.ndarray, codes: np.ndarray, ids: np.ndarray, radius: int,
              max_work: int, num_threads: int,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``_core.mih_range`` over these tables -> (offsets, ids, distances, work)."""
        return _core.mih_range(queries, codes, ids, self.widths, self.offsets, self.rows,
                               radius, max_work, num_threads, bit_order=self.bit_order)


def build_tables(codes: np.ndarray, n_bits: int, num_threads: int = 0) -> MihTables:
    """Tables for ``codes`` (uint64, C-contiguous): widths from :func:`choose_widths`,
    bit order from :func:`learn_bit_order`."""
    widths = choose_widths(n_bits, codes.shape[0])
    order = learn_bit_order(codes, n_bits, widths)
    offsets, rows = _core.mih_build(codes, widths, num_threads, bit_order=order)
    return MihTables(widths, offsets, rows, order)


def tables_from_arrays(arrays: dict[str, np.ndarray], n_bits: int,
                       n_codes: int) -> MihTables | str | None:
    """Tables read from a file; None when absent, an error message when invalid."""
    names = ("mih_widths", "mih_offsets", "mih_rows")
    present = [name in arrays for name in names]
    if not any(present):
        return None
    if not all(present):
        return "incomplete multi-index hashing tables"
    widths, offsets, rows = (arrays[name] for name in names)
    if (widths.dtype != np.int32 or widths.ndim != 1 or not 1 <= widths.size <= _MAX_TABLES
            or (widths < 1).any() or (widths > _MAX_WIDTH).any()
            or int(widths.sum()) != n_bits):
        return f"invalid multi-index hashing widths {widths!r} for {n_bits}-bit codes"
    expected = int((2 ** widths.astype(np.int64) + 1).sum())
    if (offsets.dtype != np.uint32 or offsets.shape != (expected,) or rows.dtype != np.uint32
            or rows.shape != (widths.size, n_codes)):
        return "multi-index hashing tables do not match the codes"
    order = arrays.get("mih_bit_order")
    if order is not None and (order.dtype != np.int32 or order.shape != (n_bits,)
                              or not np.array_equal(np.sort(order), np.arange(n_bits))):
        return "multi-index hashing bit order is not a permutation of the code's bits"
    if not _core.mih_check_tables(widths, n_codes, offsets, rows):
        return "multi-index hashing tables are corrupted (offsets or rows out of range)"
    return MihTables(widths, offsets, rows, None if order is None else np.asarray(order))
