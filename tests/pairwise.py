"""All-pairs (pairwise) test cases: every pair of values of every two factors, in few rows.

Kernel tests used to run the full cross-product of SIMD level, thread count and
every shape. Most of those factors are independent (the thread split does not
depend on the code width, say), so a failure caused by one value, or by the
interaction of two, is found by any set of rows in which every pair of values
occurs together. Factors that really act together in a third way (a scan body
chosen by SIMD level *and* variant, say) are passed as one factor whose values
are their full product (``product(...)``), so each of their combinations still
meets every value of the other factors.

The rows come from a deterministic greedy in-parameter-order construction
(factors widest first: their full product, then each further factor filled in
row by row with the value that covers the most missing pairs, then new rows for
pairs still missing). Same factors, same rows, on every machine and run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

__all__ = ["all_pairs", "missing_pairs", "pairwise_parametrize", "product"]


def all_pairs(factors: Mapping[str, Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows (tuples in the order of ``factors``) covering every pair of values.

    With fewer than three factors this is the full product. Raises ValueError
    for a factor without values.
    """
    values = [list(v) for v in factors.values()]
    for name, vals in zip(factors, values, strict=True):
        if not vals:
            raise ValueError(f"factor {name!r} has no values")
    if len(values) < 3:
        return list(itertools.product(*values))
    # Work on value indices, widest factor first (stable, so ties keep the given order).
    order = sorted(range(len(values)), key=lambda i: -len(values[i]))
    sizes = [len(values[i]) for i in order]
    rows: list[list[int | None]] = [list(p) for p in itertools.product(range(sizes[0]),
                                                                        range(sizes[1]))]
    for col in range(2, len(sizes)):
        _extend(rows, sizes, col)
    out = []
    for r, row in enumerate(rows):
        # A free slot (no pair needed it) takes values in turn, which spreads them.
        full = [v if v is not None else r % sizes[c] for c, v in enumerate(row)]
        by_factor = dict(zip(order, full, strict=True))
        out.append(tuple(values[i][by_factor[i]] for i in range(len(values))))
    return out


def _extend(rows: list[list[int | None]], sizes: list[int], col: int) -> None:
    """Add column ``col`` to ``rows`` so that it meets every value of columns < col."""
    missing = {(c, a, b) for c in range(col) for a in range(sizes[c]) for b in range(sizes[col])}
    used = [0] * sizes[col]
    # Horizontal growth: each row takes the value covering the most missing
    # pairs; ties go to the value used least so far, then the lowest index.
    for row in rows:
        def gain(b: int, row: list[int | None] = row) -> int:
            return sum((c, row[c], b) in missing for c in range(col) if row[c] is not None)

        best = max(range(sizes[col]), key=lambda b: (gain(b), -used[b], -b))
        row.append(best)
        used[best] += 1
        missing -= {(c, row[c], best) for c in range(col) if row[c] is not None}
    # Vertical growth: a pair still missing fills a free slot of a row that
    # already has its value in `col`, or starts a new row.
    for c, a, b in sorted(missing):
        for row in rows:
            if row[col] == b and row[c] is None:
                row[c] = a
                break
        else:
            new: list[int | None] = [None] * (col + 1)
            new[c], new[col] = a, b
            rows.append(new)


def missing_pairs(rows: Sequence[Sequence[Any]],
                  factors: Mapping[str, Sequence[Any]]) -> list[tuple[str, Any, str, Any]]:
    """(name_i, value_i, name_j, value_j) for each pair of values no row holds together."""
    names = list(factors)
    values = [list(v) for v in factors.values()]
    out = []
    for i, j in itertools.combinations(range(len(names)), 2):
        seen = [(row[i], row[j]) for row in rows]
        for a, b in itertools.product(values[i], values[j]):
            if (a, b) not in seen:
                out.append((names[i], a, names[j], b))
    return out


def product(*factors: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Full product of factors that interact: pass it as one factor of ``all_pairs``."""
    return list(itertools.product(*factors))


def _case_id(value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(_case_id(v) for v in value)
    if isinstance(value, type):
        return value.__name__
    return str(value)


def pairwise_parametrize(extra: Sequence[tuple[Any, ...]] = (), **factors: Sequence[Any]
                         ) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize`` over ``all_pairs(factors)`` plus the ``extra`` rows.

    The argument names are the factor names; ``extra`` rows (same order) add
    cases a pairwise cover would not force, e.g. one path that needs three
    values together. Rows repeated by ``extra`` are dropped.
    """
    rows = all_pairs(factors)
    for row in extra:
        if len(row) != len(factors):
            raise ValueError(f"extra row {row!r} does not have {len(factors)} values")
        if row not in rows:
            rows.append(tuple(row))
    return pytest.mark.parametrize(list(factors), rows,
                                   ids=["-".join(_case_id(v) for v in row) for row in rows])
