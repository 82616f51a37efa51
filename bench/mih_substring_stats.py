"""Why multi-index hashing is slow on PIL codes of simulated spectra: substring statistics.

For the first ``n`` cached codes (bench/simulated_codes.py) and the 1,000
cached queries: the balance of each bit, the mean |correlation| between bits,
the mean entropy of 16-bit substrings, and the level-0 MIH candidates per
query (codes sharing a query's substring, summed over the 16 tables, as a
fraction of n), for contiguous substrings and for substrings of greedily
decorrelated bits (each bit joins the open substring it is least correlated
with).

    nice python bench/mih_substring_stats.py 100000
"""

from __future__ import annotations

import sys

import numpy as np
from simulated_codes import simulated_codes

N_TABLES = 16


def level0_candidates(bits: np.ndarray, qbits: np.ndarray, groups: list) -> tuple[float, float]:
    total, entropy = 0, []
    for g in groups:
        weights = 1 << np.arange(len(g))
        keys, qkeys = bits[:, g] @ weights, qbits[:, g] @ weights
        counts = np.bincount(keys, minlength=1 << len(g))
        total += counts[qkeys].sum()
        p = counts[counts > 0] / len(keys)
        entropy.append(-(p * np.log2(p)).sum())
    return total / len(qbits) / len(bits), float(np.mean(entropy))


def main(n: int) -> None:
    codes, queries = simulated_codes(n)
    bits = np.unpackbits(np.ascontiguousarray(codes).view(np.uint8), axis=1,
                         bitorder="little").astype(np.int64)
    qbits = np.unpackbits(queries.view(np.uint8), axis=1, bitorder="little").astype(np.int64)
    p = bits.mean(axis=0)
    corr = np.abs(np.corrcoef(bits[:20000].T.astype(float)))
    np.fill_diagonal(corr, 0)
    print(f"bit frequency {p.min():.3f}..{p.max():.3f}, mean |corr| {corr.sum() / (256 * 255):.3f}")
    width = 256 // N_TABLES
    contiguous = [list(range(t * width, (t + 1) * width)) for t in range(N_TABLES)]
    greedy: list[list[int]] = [[] for _ in range(N_TABLES)]
    for b in range(256):
        open_ = [t for t in range(N_TABLES) if len(greedy[t]) < width]
        greedy[min(open_, key=lambda t: corr[b, greedy[t]].sum())].append(b)
    for name, groups in (("contiguous", contiguous), ("greedy decorrelated", greedy)):
        cand, ent = level0_candidates(bits, qbits, groups)
        print(f"{name}: level-0 candidates {cand:.3f} n per query, "
              f"substring entropy {ent:.1f} of {width} bits")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
