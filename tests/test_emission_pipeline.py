"""Seed 004 end to end: merged runs, emission-line pre-selection, 500 km/s split (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from pyspec.lines.pipeline import merge_runs, velocity_split

SAMPLE = Path(__file__).resolve().parents[1] / "pyspec" / "data" / "sample"
EMISSION = ["spec-58575-HD103621N361936B01_sp03-066", "spec-58575-HD103621N361936B01_sp03-170"]
STAR = "spec-58575-HD103621N361936B01_sp03-026"


def test_merge_keeps_one_row_per_spectrum_from_its_best_run():
    a = Table({"id": ["x", "y", "z"], "best_distance": [5.0, 1.0, 3.0], "run_val": [1, 2, 3]})
    b = Table({"id": ["y", "z", "w"], "best_distance": [2.0, 0.5, 4.0], "run_val": [4, 5, 6]})
    c = Table({"id": ["z"], "best_distance": [0.5], "run_val": [7]})
    m = merge_runs([a, b, c], ["A", "B", "C"])
    assert m["id"].tolist() == ["w", "x", "y", "z"]
    assert m["n_runs"].tolist() == [1, 1, 2, 3]
    assert m["runs"].tolist() == ["B", "A", "A,B", "A,B,C"]
    # y: best in A (1.0 < 2.0); z: tie 0.5 in B and C -> the earlier run B
    assert m["run_val"].tolist() == [6, 1, 2, 5]
    with pytest.raises(ValueError, match="'id' or 'file'"):
        merge_runs([Table({"q": [1]})])
    with pytest.raises(ValueError, match="at least one"):
        merge_runs([])


def test_velocity_split_uses_both_redshifts():
    c = 299792.458
    got = velocity_split([100 / c, 900 / c, 100 / c, 900 / c, np.nan, np.nan],
                         [-200 / c, 600 / c, 800 / c, 300 / c, 100 / c, np.nan])
    assert got.tolist() == ["galactic", "extragalactic", "disagree", "disagree",
                            "galactic (RT only)", "unknown"]


def test_cli_runs_pipeline(tmp_path):
    from pyspec.cli import main

    files = {s: str(SAMPLE / f"{s}.fits.gz") for s in [*EMISSION, STAR]}
    # run 1 finds both galaxies and the star; run 2 finds the first galaxy again,
    # closer, with a template redshift near zero (a wrong template match)
    r1 = Table({"id": list(files), "file": list(files.values()),
                "template_z": [0.1308, 0.1523, 0.0], "template_distance": [3.0, 3.0, 1.0]})
    r2 = Table({"id": [EMISSION[0]], "file": [files[EMISSION[0]]], "template_z": [0.0001],
                "template_distance": [1.0]})
    paths = []
    for i, t in enumerate((r1, r2)):
        p = tmp_path / f"run{i}.ecsv"
        t.write(p, format="ascii.ecsv")
        paths.append(str(p))
    out = tmp_path / "out.ecsv"
    assert main(["measure", "--runs", *paths, "-o", str(out), "--quiet"]) == 0
    t = Table.read(out, format="ascii.ecsv")
    assert sorted(t["id"]) == sorted(EMISSION)  # unique, star dropped
    row = {r["id"]: r for r in t}
    assert row[EMISSION[0]]["n_runs"] == 2 and row[EMISSION[0]]["runs"] == "run0,run1"
    assert row[EMISSION[0]]["velocity_split"] == "disagree"  # best template said z ~ 0
    assert row[EMISSION[1]]["velocity_split"] == "extragalactic"
    assert row[EMISSION[1]]["z_confirmed"]
    out2 = tmp_path / "all.ecsv"
    assert main(["measure", "--runs", *paths, "--all-rows", "-o", str(out2), "--quiet"]) == 0
    t2 = Table.read(out2, format="ascii.ecsv")
    assert len(t2) == 3 and (~np.asarray(t2["emission_line"])).sum() == 1


@pytest.mark.parametrize("module", ["pyspec.lines.pipeline", "pyspec.lines.auto",
                                    "pyspec.lines.xcorr", "pyspec.lines.broad"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
