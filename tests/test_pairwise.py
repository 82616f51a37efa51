"""The all-pairs generator the kernel tests are parametrised with (tests/pairwise.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pairwise import all_pairs, missing_pairs, pairwise_parametrize, product


def random_factors(rng: np.random.Generator, n_factors: int) -> dict[str, list[int]]:
    return {f"f{i}": list(range(int(rng.integers(1, 7)))) for i in range(n_factors)}


@pytest.mark.parametrize("n_factors", [3, 4, 5, 7, 10])
def test_every_pair_is_covered(rng: np.random.Generator, n_factors: int) -> None:
    for _ in range(20):
        factors = random_factors(rng, n_factors)
        rows = all_pairs(factors)
        assert missing_pairs(rows, factors) == []
        assert all(len(r) == n_factors for r in rows)
        for r in rows:  # every value comes from its own factor
            assert all(v in vals for v, vals in zip(r, factors.values(), strict=True))


def test_known_sizes_are_near_the_lower_bound() -> None:
    # Lower bound: the product of the two widest factors. The greedy reaches it
    # for 3 binary factors (4 rows, the optimum) and stays close otherwise.
    assert len(all_pairs({"a": [0, 1], "b": [0, 1], "c": [0, 1]})) == 4
    rows = all_pairs({f"f{i}": range(3) for i in range(4)})
    assert 9 <= len(rows) <= 12  # the optimum is 9 (an orthogonal array)
    wide = {"level": range(3), "bits": range(7), "queries": range(3), "threads": range(3)}
    assert 21 <= len(all_pairs(wide)) <= 25
    assert len(all_pairs(wide)) < math.prod(len(v) for v in wide.values()) / 5


def test_few_factors_give_the_full_product() -> None:
    assert all_pairs({"a": [1, 2], "b": "xyz"}) == list(itertools.product([1, 2], "xyz"))
    assert all_pairs({"a": [1, 2, 3]}) == [(1,), (2,), (3,)]
    assert all_pairs({}) == [()]


def test_deterministic_and_in_the_given_factor_order() -> None:
    factors = {"small": ["s0", "s1"], "wide": list(range(5)), "mid": ["m0", "m1", "m2"]}
    rows = all_pairs(factors)
    assert rows == all_pairs(dict(factors))
    assert {r[0] for r in rows} == {"s0", "s1"}
    assert {r[2] for r in rows} == {"m0", "m1", "m2"}


def test_product_factor_keeps_every_combination_with_each_other_value() -> None:
    # (level, variant) act together: each of their 6 combinations meets every shape.
    factors = {"kernel": product(["scalar", "avx2", "avx512"], [0, 1]), "shape": range(4),
               "threads": [1, 2, 4]}
    rows = all_pairs(factors)
    assert missing_pairs(rows, factors) == []
    assert {(r[0], r[1]) for r in rows} == set(itertools.product(factors["kernel"], range(4)))


def test_missing_pairs_names_what_is_missing() -> None:
    factors = {"a": [0, 1], "b": [0, 1], "c": [0]}
    assert missing_pairs([(0, 0, 0), (1, 1, 0)], factors) == [("a", 0, "b", 1), ("a", 1, "b", 0)]


def test_empty_factor_is_an_error() -> None:
    with pytest.raises(ValueError, match="'b' has no values"):
        all_pairs({"a": [1], "b": [], "c": [2]})


def test_parametrize_adds_extra_rows_once() -> None:
    mark = pairwise_parametrize(extra=[(1, "x", True), (2, "y", False)], a=[1, 2], b="xy",
                                c=[True, False])
    names, rows = mark.args
    assert names == ["a", "b", "c"]
    assert len(rows) == len(set(rows))
    assert (2, "y", False) in rows
    assert (1, "x", True) in rows
    assert mark.kwargs["ids"][0] == "-".join(map(str, rows[0]))
    with pytest.raises(ValueError, match="3 values"):
        pairwise_parametrize(extra=[(1, "x")], a=[1], b="x", c=[True])
