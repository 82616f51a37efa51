"""Corruption fuzzing in CI: every file type pyspec writes, fixed seed, a few hundred trials.

The long run (50,000 trials in a child process that also catches crashes and
hangs) is ``python tests/fuzz/harness.py --trials 50000``; figures in
bench/RESULTS.md, issue 16.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz.harness import (
    LOADERS,
    build_artefacts,
    corrupt,
    run_inprocess,
    run_trial,
    table,
)

N_TRIALS = 500  # ~5 s on one core; 50 per artefact kind


def test_no_silent_or_untyped_failure_over_every_file_type(tmp_path):
    report = run_inprocess(tmp_path, N_TRIALS, seed=16)
    counts = report["counts"]
    assert len(counts) == 10  # store, 2 engines, 4 models, 3 indexes
    for name, c in counts.items():
        assert c.get("wrong", 0) == 0, (name, table(report), report["examples"])
        assert c.get("untyped", 0) == 0, (name, table(report), report["examples"])
        assert c.get("rejected", 0) > 0.5 * sum(c.get(o, 0) for o in ("identical", "rejected"))
        for kind in ("truncate", "bitflip", "crafted"):
            assert c.get(f"corruption:{kind}", 0) > 0, (name, kind)


def test_corruptions_are_deterministic():
    data = bytes(range(256)) * 4
    first = [corrupt(data, "x.bin", np.random.default_rng(s)) for s in range(20)]
    again = [corrupt(data, "x.bin", np.random.default_rng(s)) for s in range(20)]
    assert first == again
    assert all(d != data for _, d in first)


def test_harness_sees_a_silent_wrong_load(tmp_path, monkeypatch):
    """Without the matrix checksums, bit flips in flux.f32 load silently: the harness must
    report them as wrong (it can fail)."""
    import pyspec.store as store_module

    artefacts = build_artefacts(tmp_path)
    reference = LOADERS["store"](artefacts["store"])
    monkeypatch.setattr(store_module.SpectrumStore, "verify", lambda self: None)
    monkeypatch.setattr(store_module.SpectrumStore, "_check_block", lambda self, i, c: None)
    outcomes = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        kind, _ = corrupt(b"x" * 100, "flux.f32", rng)
        if kind == "bitflip":
            outcomes.add(run_trial("store", artefacts["store"] / "flux.f32", artefacts["store"],
                                   seed, reference)[1])
    assert "wrong" in outcomes


@pytest.mark.slow
def test_isolated_runner_counts_every_trial():
    from fuzz.harness import run_isolated

    report = run_isolated(60, seed=3)
    assert sum(sum(v for k, v in c.items() if not k.startswith("corruption:"))
               for c in report["counts"].values()) == 60
