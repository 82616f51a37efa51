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


# ----------------------------------------------------------------------------- streamed store

def _labelled_store(path, n=240, rows_per_part=64):
    """A store of synthetic labelled spectra: subclass labels with blanks and a singleton,
    written in several metadata parts. Returns (flux, subclass labels)."""
    from pyspec import store as store_mod
    from pyspec.preprocess import WavelengthGrid

    X, y = synthetic_labelled_spectra(n, 140, n_classes=3, noise=0.05, random_state=5)
    names = np.array(["G2V", "K5 ", "M0"], dtype=object)[y]
    names[[3, 50, 51]] = ""  # unlabelled: left out
    names[7] = "A0"  # a label with one member: left out
    with store_mod.SpectrumStore.create(path, WavelengthGrid.preset("halpha-140"),
                                        rows_per_part=rows_per_part) as w:
        w.append(X, np.ones_like(X), [{"id": str(i), "subclass": s}
                                      for i, s in enumerate(names)])
    return X, names.astype(str)


def _assert_same_table(a, b):
    assert a.colnames == b.colnames
    for c in a.colnames:
        if c != "fit_time":  # seconds, the one column that is measured
            np.testing.assert_array_equal(a[c], b[c])
    for key in ("n_spectra", "n_pixels", "n_queries", "n_database", "labels", "fit_sample"):
        assert a.meta[key] == b.meta[key], key


@pytest.mark.parametrize("fit_sample", [None, 90])
def test_evaluate_store_is_the_in_memory_evaluation(tmp_path, fit_sample):
    from pyspec.evaluate import evaluate_store

    X, names = _labelled_store(tmp_path / "store")
    keep = ~np.isin(names, ["", "A0"])
    kwargs = dict(n_queries=40, hasher_params={"pil": {"hidden": (48, 32)}},
                  fit_sample=fit_sample)
    streamed = evaluate_store(tmp_path / "store", "subclass", ["pil", "lsh"], [32], **kwargs)
    in_memory = evaluate_hashers(X[keep], np.char.strip(names[keep]), ["pil", "lsh"], [32],
                                 **kwargs)
    _assert_same_table(streamed, in_memory)
    assert streamed.meta["n_spectra"] == keep.sum()
    # first letters: G, K, M (the singleton A0 is now alone as "A" and still left out)
    letters = evaluate_store(tmp_path / "store", "subclass", ["lsh"], [32],
                             label_mode="first-letter", n_queries=40)
    assert letters.meta["labels"] == {k: int(v) for k, v in zip(*np.unique(
        np.char.strip(names[keep]).astype("<U1"), return_counts=True), strict=True)}


def test_exact_ranking_in_passes_is_the_one_pass_ranking(tmp_path, monkeypatch):
    import pyspec.evaluate as ev

    X, y = synthetic_labelled_spectra(300, 60, n_classes=4, noise=0.1, random_state=6)
    one = evaluate_hashers(X, y, [], [], n_queries=60)
    monkeypatch.setattr(ev, "_EXACT_DISTANCES", 1000)  # 4 queries per pass, 15 passes
    many = evaluate_hashers(X, y, [], [], n_queries=60)
    _assert_same_table(one, many)
    # and it is the brute-force ranking by (squared L2, row)
    queries, database = ev.holdout_split(300, 60, 0.2, 0)
    d2 = ((X[queries, None, :].astype(np.float64) - X[database]) ** 2).sum(-1)
    order = np.lexsort((np.broadcast_to(np.arange(database.size), d2.shape), d2), axis=1)
    hits = y[database][order] == y[queries][:, None]
    cut = np.asarray(one["cutoff"])
    tp = np.cumsum(hits, axis=1)[:, cut - 1]
    np.testing.assert_allclose(one["precision"], (tp / cut).mean(axis=0))


def test_evaluate_store_on_a_sharded_store(tmp_path):
    from pyspec.distributed.store import write_sharded_manifest
    from pyspec.evaluate import evaluate_store
    from pyspec.store import SpectrumStore

    _labelled_store(tmp_path / "one")
    one = SpectrumStore.open(tmp_path / "one")
    meta = one.meta
    dirs = []
    for i, (a, b) in enumerate([(0, 100), (100, len(one))]):  # the same rows in two stores
        d = tmp_path / "sh" / f"shard-{i:04d}"
        with SpectrumStore.create(d, one.grid, one.preprocessing, rows_per_part=64) as w:
            w.append(one.flux[a:b], one.ivar[a:b],
                     [{"id": meta["id"][r], "subclass": meta["subclass"][r]}
                      for r in range(a, b)])
        dirs.append(d)
    write_sharded_manifest(tmp_path / "sh", dirs)
    args = (["lsh"], [64])
    _assert_same_table(evaluate_store(tmp_path / "sh", "subclass", *args, n_queries=30),
                       evaluate_store(one, "subclass", *args, n_queries=30))
    with pytest.raises(ValueError, match="no metadata column 'nope'"):
        evaluate_store(one, "nope", *args)


def test_evaluate_command_store_equals_flux_input(tmp_path, capsys):
    X, names = _labelled_store(tmp_path / "store")
    keep = ~np.isin(names, ["", "A0"])
    np.save(tmp_path / "flux.npy", X[keep])
    np.save(tmp_path / "labels.npy", np.char.strip(names[keep]))
    common = ["--hashers", "lsh,pil", "--n-bits", "32", "--hidden", "40,32", "--n-queries",
              "30", "--fit-sample", "100", "--quiet"]
    assert main(["evaluate", "--store", str(tmp_path / "store"), *common,
                 "--out", str(tmp_path / "s.ecsv")]) == 0
    assert main(["evaluate", "--flux", str(tmp_path / "flux.npy"), "--labels",
                 str(tmp_path / "labels.npy"), *common, "--out", str(tmp_path / "f.ecsv")]) == 0
    _assert_same_table(Table.read(tmp_path / "s.ecsv"), Table.read(tmp_path / "f.ecsv"))
    assert main(["evaluate", "--store", str(tmp_path / "store"), *common, "--fit-sample", "1",
                 "--out", str(tmp_path / "x.ecsv")]) == 1
    assert "--fit-sample" in capsys.readouterr().err
