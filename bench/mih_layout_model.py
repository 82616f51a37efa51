"""MIH's work per query for several substring layouts, from exact counts (issue 21).

For each query the exact 10th-neighbour distance d10 is computed by a full
scan; MIH (csrc/mih.hpp) then visits (level r, table t) steps s = m r + t
for s = 0..d10, verifying every code whose substring t differs from the
query's in exactly r bits and probing C(width, r) buckets. The work is
priced as in csrc/mih.hpp (24 units per candidate, 16 per probe, a scan =
n units), so ``work/n`` < 1 means MIH reads less than the scan. Layouts:
12 tables of 21-22 bits (contiguous and learned order), 11 of 23-24
(learned, the tables built at 10M codes), and 8 of 32 bits (learned), which
direct-address tables cannot hold (widths <= 24): what wider, hashed
tables would gain. Also prints how many codes lie within d10, d10 + 4, 16,
24 and 32 bits of the queries.

    PYSPEC_MIH_CACHE=/work/cache/pyspec-mih nice python bench/mih_layout_model.py 12

(argument: number of queries; ~40 s per query at 10M codes on a loaded core).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

LAYOUTS = [(12, False), (12, True), (11, True), (8, True)]


def _masks(n_tables: int, learned: bool, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyspec.index._mih import learn_bit_order

    widths = np.full(n_tables, 256 // n_tables, np.int32)
    widths[: 256 % n_tables] += 1
    order = learn_bit_order(codes, 256, widths) if learned else np.arange(256)
    masks = np.zeros((n_tables, 4), np.uint64)
    start = 0
    for t, width in enumerate(widths):
        for bit in order[start:start + width]:
            masks[t, bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
        start += width
    return widths, masks


def main(n_queries: int) -> None:
    from simulated_codes import simulated_codes

    codes, queries = simulated_codes(10_000_000, log=False)
    codes = np.ascontiguousarray(codes)
    n = codes.shape[0]
    layouts = {key: _masks(*key, codes) for key in LAYOUTS}
    work: dict[tuple[int, bool], list[int]] = {key: [] for key in LAYOUTS}
    near = []
    for query in queries[:n_queries]:
        differ = codes ^ query
        d = np.bitwise_count(differ).sum(axis=1, dtype=np.int16)
        d10 = int(np.partition(d, 9)[9])
        near.append([int((d <= r).sum()) for r in (d10, d10 + 4, 16, 24, 32)])
        for key, (widths, masks) in layouts.items():
            m = len(widths)
            sub: list[np.ndarray | None] = [None] * m
            total = 0
            for s in range(d10 + 1):
                t, r = s % m, s // m
                if sub[t] is None:
                    sub[t] = np.bitwise_count(differ & masks[t]).sum(axis=1, dtype=np.int16)
                total += int((sub[t] == r).sum()) * 24 + 16 * math.comb(int(widths[t]), r)
            work[key].append(total)
    near_a = np.array(near)
    print(f"{n} codes, {n_queries} queries; codes within d10, d10+4, 16, 24, 32 bits "
          "(median / p90):")
    for j, name in enumerate(["d10", "d10+4", "16", "24", "32"]):
        print(f"  {name}: {np.median(near_a[:, j]):.3g} / {np.percentile(near_a[:, j], 90):.3g}")
    for (m, learned), spent in work.items():
        w = np.array(spent) / n
        print(f"m={m} widths {256 // m}-{-(-256 // m)} {'learned' if learned else 'contiguous'}: "
              f"work/n median {np.median(w):.3f} p90 {np.percentile(w, 90):.3f} "
              f"mean {w.mean():.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
