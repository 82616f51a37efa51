"""pyspec spread and pyspec active on a small store (labels from a CSV file)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from pyspec.cli import main
from pyspec.store import SpectrumStore


@pytest.fixture
def pool(tmp_path):
    rng = np.random.default_rng(5)
    n = 400
    lab = np.where(rng.random(n) < 0.15, "emission", "absorption")
    x = np.where(lab[:, None] == "emission", 1.0, 0.0) + rng.normal(size=(n, 140)) * 0.8
    ids = [f"sp{i:04d}" for i in range(n)]
    with SpectrumStore.create(tmp_path / "store", "halpha-140") as w:
        w.append(x.astype(np.float32), np.ones((n, 140), np.float32),
                 [{"id": i, "file": f"/data/{i}.fits"} for i in ids])
    truth = tmp_path / "truth.csv"
    Table({"id": ids, "label": lab}).write(truth, format="ascii.csv")
    seed_rows = np.concatenate([np.flatnonzero(lab == "emission")[:4],
                                np.flatnonzero(lab == "absorption")[:8]])
    seed = tmp_path / "seed.csv"
    Table({"file": [f"/data/{ids[i]}.fits" for i in seed_rows],
           "label": lab[seed_rows]}).write(seed, format="ascii.csv")
    return tmp_path, lab, ids, seed, truth


def test_spread_writes_candidates(pool):
    tmp, lab, ids, seed, _ = pool
    out = tmp / "cands.ecsv"
    assert main(["spread", "--store", str(tmp / "store"), "--labels", str(seed), "-o",
                 str(out), "--quiet"]) == 0
    t = Table.read(out)
    assert t.meta["target"] == "emission"
    assert np.all(t["candidate"])
    assert np.all(t["p_emission"] >= 0.5)
    truth = dict(zip(ids, lab, strict=True))
    assert np.mean([truth[i] == "emission" for i in t["id"]]) > 0.9
    assert main(["spread", "--store", str(tmp / "store"), "--labels", str(seed), "-o",
                 str(out), "--all", "--model", "propagation", "--solver", "cg", "--quiet",
                 "--overwrite"]) == 0
    assert len(Table.read(out)) == len(ids)


def test_spread_errors(pool, capsys):
    tmp, _, _, seed, _ = pool
    bad = tmp / "bad.csv"
    bad.write_text("id,label\nnobody,emission\n")
    assert main(["spread", "--store", str(tmp / "store"), "--labels", str(bad), "-o",
                 str(tmp / "x.ecsv")]) == 1
    assert "--labels" in capsys.readouterr().err
    assert main(["spread", "--store", str(tmp / "store"), "--labels", str(seed), "-o",
                 str(tmp / "x.ecsv"), "--alpha", "1.5"]) == 1
    assert "--alpha" in capsys.readouterr().err


def test_active_human_and_file_oracle(pool, capsys, saved_figures):
    tmp, lab, ids, seed, truth = pool
    state = str(tmp / "state")
    assert main(["active", "init", "--store", str(tmp / "store"), "--labels", str(seed),
                 "--target", "emission", "--batch-size", "8", "--check", "5",
                 "--state", state]) == 0
    assert main(["active", "next", "--state", state, "--quiet"]) == 0
    batch = tmp / "state" / "batch-000.csv"
    assert (tmp / "state" / "batch-000.png").stat().st_size > 0
    assert main(["active", "next", "--state", state]) == 1  # the batch waits for labels
    t = Table.read(batch, format="ascii.csv")
    assert set(t["purpose"]) <= {"precision", "query"}
    # the PNG sheet shows the batch: one spectrum per row of the CSV, titled by its id
    (sheet,) = saved_figures
    lines = [line for ax in sheet.axes for line in ax.get_lines()]
    titles = [text.get_text() for ax in sheet.axes for text in ax.texts]
    assert len(lines) == len(t)  # the batch of 8 and the 5 precision checks
    assert [title.split(" ")[0] for title in titles] == [str(i) for i in t["id"]]
    assert main(["active", "teach", "--state", state]) == 1  # labels not filled in yet
    assert "label" in capsys.readouterr().err
    truth_map = dict(zip(ids, lab, strict=True))
    t["label"] = [truth_map[i] for i in t["id"]]
    t.write(batch, format="ascii.csv", overwrite=True)
    assert main(["active", "teach", "--state", state]) == 0
    assert main(["active", "next", "--state", state, "--oracle", str(truth)]) == 0
    capsys.readouterr()
    assert main(["active", "status", "--state", state]) == 0
    out = capsys.readouterr().out
    assert "iteration 2" in out
    assert out.count("precision") >= 2
