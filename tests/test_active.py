"""ActiveLearner: strategies, SMOTE, oracle loop, stopping rule, save/load round trip; CLI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from pyspec.active import ActiveLearner, LabelsFileOracle
from pyspec.labels import labels_for_rows, read_labels


def _pool(rng: np.random.Generator, n: int = 600, frac: float = 0.12):
    """Two-class pool: a rare 'emission' blob and a common 'absorption' one."""
    lab = np.where(rng.random(n) < frac, "emission", "absorption")
    centre = {"emission": np.full(16, 1.2), "absorption": np.zeros(16)}
    x = np.stack([centre[v] for v in lab]) + rng.normal(size=(n, 16))
    ids = [f"s{i}" for i in range(n)]
    seed = np.concatenate([np.flatnonzero(lab == "emission")[:3],
                           np.flatnonzero(lab == "absorption")[:7]])
    y = {ids[i]: lab[i] for i in seed}
    return x.astype(np.float32), lab, ids, y


def _warm(y, ids, lab, n=40):
    """``y`` plus the labels of the first ``n`` pool spectra: past the cold start."""
    return {**y, **{ids[i]: lab[i] for i in range(n)}}


def _oracle(ids, lab):
    truth = dict(zip(ids, lab, strict=True))
    return lambda q: [truth[i] for i in q]


def _entropies(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=1)


def test_entropy_queries_most_uncertain(rng):
    x, lab, ids, y = _pool(rng)
    al = ActiveLearner(batch_size=20, target="emission", diversity="none",
                       random_state=0).fit(x, y, ids=ids)
    q = al._rows(al.query())
    free = np.flatnonzero(~al.labelled)
    ent = _entropies(al.proba_)
    assert ent[q].min() >= np.sort(ent[free])[-20] - 1e-12
    assert not al.labelled[q].any()


def test_diverse_batch_spreads_over_the_uncertain(rng):
    # the default batch: one spectrum per k-means cluster of the 10 x batch
    # most uncertain; it is drawn from them and further apart than their top
    x, lab, ids, y = _pool(rng, 900)
    y = _warm(y, ids, lab)
    al = ActiveLearner(batch_size=20, target="emission", diversity="kmeans",
                       random_state=0).fit(x, y, ids=ids)
    plain = ActiveLearner(batch_size=20, target="emission", diversity="none",
                          random_state=0).fit(x, y, ids=ids)
    q, top = al._rows(al.query()), plain._rows(plain.query())
    free = np.flatnonzero(~al.labelled)
    ent = _entropies(al.proba_)
    assert len(set(q.tolist())) == 20
    assert not al.labelled[q].any()
    assert ent[q].min() >= np.sort(ent[free])[-200] - 1e-12

    def spread(rows):
        d = np.sqrt(((x[rows, None, :] - x[None, rows, :]) ** 2).sum(-1))
        return d[np.triu_indices(len(rows), 1)].mean()

    assert spread(q) > spread(top)


def test_density_weighted_batch(rng):
    # the default weights uncertainty by relative density: the batch comes from
    # the top of entropy x density, and isolated spectra have density < 1
    from pyspec.active import _relative_density

    x, lab, ids, y = _pool(rng, 900)
    al = ActiveLearner(batch_size=20, target="emission", random_state=0).fit(
        x, _warm(y, ids, lab), ids=ids)
    assert al.diversity == "density-kmeans"
    q = al._rows(al.query())
    free = np.flatnonzero(~al.labelled)
    e = _entropies(al.proba_)
    w = (e - e[free].min() + 1e-6) * al.density_
    assert len(set(q.tolist())) == 20
    assert not al.labelled[q].any()
    assert w[q].min() >= np.sort(w[free])[-200] - 1e-9
    near = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [100.0, 100.0, np.inf]])
    np.testing.assert_allclose(_relative_density(near), [1.0, 1.0, 0.1])


def test_cold_start_batch_covers_the_pool(rng):
    # fewer labels than one batch: representatives of the pool, not the top of
    # a ranking the model cannot make yet; both blobs are asked about
    x, lab, ids, y = _pool(rng, 900)
    al = ActiveLearner(batch_size=20, target="emission", random_state=0).fit(x, y, ids=ids)
    q = al._rows(al.query())
    assert len(set(q.tolist())) == 20
    assert not al.labelled[q].any()
    assert set(lab[q]) == {"emission", "absorption"}
    free = np.flatnonzero(~al.labelled)
    ent = _entropies(al.proba_)
    assert ent[q].min() < np.sort(ent[free])[-20]  # not the top of the entropy ranking


def test_loop_stops_and_beats_random(rng):
    x, lab, ids, y = _pool(rng, 900)
    oracle = _oracle(ids, lab)
    act = ActiveLearner(batch_size=20, target="emission", diversity="none",
                        random_state=1).fit(x, y, ids=ids)
    hist = act.run(oracle, max_iterations=12)
    assert act.stopped
    assert all(h["precision"] > 0.8 for h in hist[-3:])
    # the learners' final transductions (plain and the default diverse batches)
    # are better than random batches of the same size
    rand = ActiveLearner(strategy="random", batch_size=20, target="emission",
                         random_state=1).fit(x, y, ids=ids)
    diverse = ActiveLearner(batch_size=20, target="emission", random_state=1).fit(x, y, ids=ids)
    for _ in range(len(hist)):
        rand.step(oracle)
        diverse.step(oracle)

    def accuracy(al):
        free = ~al.labelled
        return np.mean(al.predicted_[free] == lab[free])

    assert accuracy(act) >= accuracy(rand)
    assert accuracy(diverse) >= accuracy(rand)


def test_smote_adds_balancing_nodes(rng):
    x, lab, ids, y = _pool(rng)
    al = ActiveLearner(target="emission", random_state=0).fit(x, y, ids=ids)
    xs, ys = al._balanced(np.flatnonzero(al.labelled), al.labels_[al.labelled].astype(str))
    assert len(xs) == 4
    assert set(ys) == {"emission"}
    none = ActiveLearner(target="emission", balance="none", random_state=0).fit(x, y, ids=ids)
    assert len(none._balanced(np.flatnonzero(none.labelled),
                              none.labels_[none.labelled].astype(str))[0]) == 0


def test_sklearn_estimator(rng):
    x, lab, ids, y = _pool(rng)
    al = ActiveLearner(KNeighborsClassifier(3), batch_size=10, target="emission",
                       random_state=0).fit(x, y, ids=ids)
    assert al.graph_ is None
    al.step(_oracle(ids, lab))
    assert al.labelled.sum() >= 20
    assert al.proba_.shape == (600, 2)


def test_save_load_resumes_identically(rng, tmp_path):
    x, lab, ids, y = _pool(rng)
    oracle = _oracle(ids, lab)
    a = ActiveLearner(batch_size=15, target="emission", random_state=3).fit(x, y, ids=ids)
    a.step(oracle)
    a.save(tmp_path / "state")
    b = ActiveLearner.load(tmp_path / "state")
    np.testing.assert_allclose(a.proba_, b.proba_)
    assert a.query().tolist() == b.query().tolist()
    a.step(oracle)
    b.step(oracle)
    assert a.history_ == b.history_
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_labels_file_oracle_and_matching(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("file,label\ndata/a1.fits,emission\ndata/b2.fits.gz,absorption\nc3,\n")
    table = read_labels(p)
    assert table == {"data/a1.fits": "emission", "data/b2.fits.gz": "absorption"}
    o = LabelsFileOracle(p)
    assert o(["a1", "b2"]) == ["emission", "absorption"]
    with pytest.raises(KeyError, match="c3"):
        o(["c3"])
    got = labels_for_rows(table, ["x", "y", "b2"], files=["d/a1.fits", "z", "q"])
    assert got.tolist() == ["emission", "", "absorption"]


def test_errors(rng, tmp_path):
    x, lab, ids, y = _pool(rng, 100)
    with pytest.raises(ValueError, match="strategy"):
        ActiveLearner(strategy="bald")
    with pytest.raises(ValueError, match="batch_size"):
        ActiveLearner(batch_size=0)
    with pytest.raises(ValueError, match="diversity"):
        ActiveLearner(diversity="coreset")
    with pytest.raises(ValueError, match="two classes"):
        ActiveLearner().fit(x, {ids[0]: "emission"}, ids=ids)
    al = ActiveLearner(target="emission").fit(x, y, ids=ids)
    with pytest.raises(KeyError, match="not in the pool"):
        al.teach(["nope"], ["emission"])
    with pytest.raises(ValueError, match="no label"):
        al.teach([ids[50]], [""])
    with pytest.raises(FileNotFoundError, match="active init"):
        ActiveLearner.load(tmp_path)


def test_cnn_estimator_in_the_loop(rng):
    from pyspec.active.cnn import SpectrumCNN

    x, lab, ids, y = _pool(rng, 300)
    cnn = SpectrumCNN(n_filters=(4,), n_dense=16, max_epochs=5, random_state=0)
    al = ActiveLearner(cnn, batch_size=10, target="emission", random_state=0).fit(x, y, ids=ids)
    al.step(_oracle(ids, lab))
    assert al.proba_.shape == (300, 2)
    assert al.labelled.sum() >= 20
