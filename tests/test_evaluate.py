"""precision/recall evaluation and the ``pyspec evaluate`` / ``pyspec train`` commands."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from reference import hamming_distances_ref

from pyspec import PILHasher
from pyspec._bits import pack_bits
from pyspec.cli import main
from pyspec.evaluate import (
    euclidean_recall,
    evaluate_hashers,
    plot_precision_recall,
    precision_recall,
    synthetic_labelled_spectra,
)


def brute_precision_recall(codes, labels, k):
    n = len(labels)
    d = hamming_distances_ref(codes, codes)
    prec, rec = [], []
    for q in range(n):
        relevant = (labels == labels[q]).sum() - 1
        if relevant == 0:
            continue
        order = sorted((int(d[q, j]), j) for j in range(n) if j != q)[:k]
        tp = sum(labels[j] == labels[q] for _, j in order)
        prec.append(tp / k)
        rec.append(tp / relevant)
    return np.mean(prec), np.mean(rec)


def test_precision_recall_matches_brute_force(rng):
    codes = pack_bits(rng.random((60, 64)) < 0.5)
    labels = rng.integers(0, 4, 60)
    labels[0] = 9  # a singleton label: skipped as a query
    pr = precision_recall(codes, labels, cutoffs=[1, 5, 20, 59], n_queries=None)
    assert pr["n_queries"] == 59
    for i, k in enumerate([1, 5, 20, 59]):
        p, r = brute_precision_recall(codes, labels, k)
        assert pr["precision"][i] == pytest.approx(p)
        assert pr["recall"][i] == pytest.approx(r)
    assert pr["recall"][-1] == pytest.approx(1.0)


def test_perfectly_separated_codes():
    # Two labels whose codes differ in every bit: the first 9 retrieved are
    # always the other members of the query's class.
    codes = np.zeros((20, 1), dtype=np.uint64)
    codes[10:] = np.uint64(2**64 - 1)
    labels = np.repeat(["A", "B"], 10)
    pr = precision_recall(codes, labels, cutoffs=[9, 19], n_queries=None)
    np.testing.assert_allclose(pr["precision"], [1.0, 9 / 19])
    np.testing.assert_allclose(pr["recall"], [1.0, 1.0])


def test_precision_recall_bad_input():
    codes = np.zeros((5, 1), dtype=np.uint64)
    with pytest.raises(ValueError, match="5 labels"):
        precision_recall(codes, [1, 2])
    with pytest.raises(ValueError, match="no query"):
        precision_recall(codes, [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="cutoffs"):
        precision_recall(codes, [1, 1, 2, 2, 2], cutoffs=[10])


def test_euclidean_recall_perfect_for_exact_codes(rng):
    # Codes that are a thermometer encoding of a 1-D coordinate: Hamming
    # distance is proportional to Euclidean distance, so recall is 1.
    x = np.sort(rng.random(50)).astype(np.float32)
    levels = (x[:, None] * 64 > np.arange(64)[None, :])
    X = np.stack([x, np.zeros_like(x)], axis=1)
    assert euclidean_recall(pack_bits(levels), X, k=3, n_candidates=6, n_queries=None) > 0.95


def test_evaluate_hashers_table_and_plot(tmp_path, saved_figures):
    X, y = synthetic_labelled_spectra(400, 150, n_classes=4, noise=0.1, random_state=0)
    table = evaluate_hashers(X, y, ["pil", "lsh"], [32, 64], n_queries=100,
                             hasher_params={"pil": {"hidden": (128, 96)}})
    # held-out queries; exact L2 on the same input is the ceiling row (n_bits 0)
    assert set(table["hasher"]) == {"exact-l2", "pil", "lsh"}
    assert set(table["n_bits"]) == {0, 32, 64}
    assert np.all((table["precision"] >= 0) & (table["precision"] <= 1))
    sel = (table["hasher"] == "pil") & (table["n_bits"] == 64)
    assert np.all(np.diff(table["recall"][sel]) >= 0)  # recall grows with the cut-off
    assert table.meta["n_queries"] == 80 and table.meta["n_database"] == 320  # holdout 0.2
    png = tmp_path / "pr.png"
    plot_precision_recall(table, str(png))
    assert png.stat().st_size > 0
    (ax,) = saved_figures[0].axes
    curves = {line.get_label(): line for line in ax.get_lines()}
    assert set(curves) == {"EXACT-L2 0 bits", "PIL 32 bits", "PIL 64 bits", "LSH 32 bits",
                           "LSH 64 bits"}
    for name, n_bits in [("exact-l2", 0), ("pil", 32), ("pil", 64), ("lsh", 32), ("lsh", 64)]:
        sel = (table["hasher"] == name) & (table["n_bits"] == n_bits)
        line = curves[f"{name.upper()} {n_bits} bits"]
        np.testing.assert_array_equal(line.get_xdata(), table["recall"][sel])
        np.testing.assert_array_equal(line.get_ydata(), table["precision"][sel])


def test_evaluate_command_npy(tmp_path, capsys, saved_figures):
    X, y = synthetic_labelled_spectra(300, 120, n_classes=3, random_state=1)
    np.save(tmp_path / "flux.npy", X)
    (tmp_path / "labels.txt").write_text("\n".join(str(v) for v in y) + "\n")
    out, png = tmp_path / "t.ecsv", tmp_path / "t.png"
    rc = main(["evaluate", "--flux", str(tmp_path / "flux.npy"), "--labels",
               str(tmp_path / "labels.txt"), "--n-bits", "32", "--hashers", "lsh,pil",
               "--hidden", "64,64", "--n-queries", "50", "--out", str(out),
               "--plot", str(png), "--quiet"])
    assert rc == 0
    table = Table.read(out, format="ascii.ecsv")
    assert set(table["hasher"]) == {"exact-l2", "lsh", "pil"}
    assert png.exists()
    (ax,) = saved_figures[0].axes  # --plot draws the written table's curves
    assert sorted(line.get_label() for line in ax.get_lines()) == [
        "EXACT-L2 0 bits", "LSH 32 bits", "PIL 32 bits"]
    assert main(["evaluate", "--flux", str(tmp_path / "flux.npy"), "--labels",
                 str(tmp_path / "labels.txt"), "--hashers", "pca", "--out", str(out)]) == 1
    assert "unknown" in capsys.readouterr().err
    (tmp_path / "short.txt").write_text("1\n2\n")
    assert main(["evaluate", "--flux", str(tmp_path / "flux.npy"), "--labels",
                 str(tmp_path / "short.txt"), "--out", str(out), "--overwrite"]) == 1
    assert "300 labels" in capsys.readouterr().err


def test_train_command(tmp_path, capsys):
    X, _ = synthetic_labelled_spectra(300, 120, random_state=2)
    np.save(tmp_path / "flux.npy", X)
    out = tmp_path / "m.pyspec"
    assert main(["train", str(tmp_path / "flux.npy"), "--out", str(out), "--n-bits", "32",
                 "--hidden", "64,48", "--quiet"]) == 0
    model = PILHasher.load(out)
    assert model.hidden == (64, 48) and model.n_bits == 32
    ref = PILHasher(n_bits=32, hidden=(64, 48), random_state=0).fit(X)
    np.testing.assert_array_equal(model.transform(X), ref.transform(X))
    assert main(["train", str(tmp_path / "nope.npy"), "--out", str(out), "--overwrite"]) == 1
    assert main(["train", str(tmp_path / "flux.npy"), "--out", str(out), "--model", "lsh",
                 "--hidden", "3", "--overwrite"]) == 1
    assert main(["train", str(tmp_path / "flux.npy"), "--out", str(out)]) == 1  # exists


@pytest.mark.shared_data
def test_evaluate_real_spectra(shared_data, tmp_path):
    import csv

    with open(shared_data / "spectra_index.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["subclass"][:1] in ("A", "F", "G", "K")]
    subset = tmp_path / "index.csv"
    with open(subset, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[::2][:200])
    out = tmp_path / "real.ecsv"
    assert main(["evaluate", "--fits-index", str(subset), "--data-dir", str(shared_data),
                 "--label-mode", "first-letter", "--hashers", "pil,lsh", "--n-bits", "64",
                 "--out", str(out), "--quiet"]) == 0
    table = Table.read(out, format="ascii.ecsv")
    counts = np.array(list(table.meta["labels"].values()), dtype=float)
    n = counts.sum()
    base = float((counts * (counts - 1)).sum() / (n * (n - 1)))  # random ranking
    for name in ("pil", "lsh"):
        sel = (table["hasher"] == name) & (table["cutoff"] == 10)
        # Measured on this subset: PIL 0.6, LSH 0.6, base rate 0.3.
        assert float(table["precision"][sel][0]) > base + 0.1


def test_evaluate_command_store(tmp_path):
    from pyspec import store as store_mod
    from pyspec.preprocess import WavelengthGrid

    X, y = synthetic_labelled_spectra(200, 140, n_classes=3, random_state=4)
    path = tmp_path / "store"
    names = np.array(["G2V", "K5", "M0"])[y]
    with store_mod.SpectrumStore.create(path, WavelengthGrid.preset("halpha-140")) as w:
        w.append(X, np.ones_like(X), [{"id": str(i), "subclass": s} for i, s in enumerate(names)])
    out = tmp_path / "s.ecsv"
    assert main(["evaluate", "--store", str(path), "--label-mode", "first-letter", "--hashers",
                 "lsh", "--n-bits", "32", "--out", str(out), "--quiet"]) == 0
    table = Table.read(out, format="ascii.ecsv")
    assert table.meta["labels"] == {k: int(v) for k, v in zip(*np.unique(
        np.array(["G", "K", "M"])[y], return_counts=True))}
    assert main(["evaluate", "--store", str(path), "--label-column", "nope",
                 "--out", str(out)]) == 1
