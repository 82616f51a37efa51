"""LabelPropagation / LabelSpreading: same transduction as scikit-learn on the same graph."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import semi_supervised as sk

import pyspec
from pyspec.errors import NotFittedError
from pyspec.knn_graph import knn_graph
from pyspec.semi_supervised import GraphConvergenceWarning, LabelPropagation, LabelSpreading


def _problem(rng: np.random.Generator, n: int = 900, n_labelled: int = 40):
    centres = rng.normal(size=(3, 20)) * 2.2
    lab = rng.integers(0, 3, n)
    x = (centres[lab] + rng.normal(size=(n, 20))).astype(np.float32)
    y = np.full(n, -1)
    sel = rng.choice(n, n_labelled, replace=False)
    y[sel] = lab[sel]
    return x, y, lab


def _sklearn(cls, graph, y, **kw):
    n = graph.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning at max_iter
        return cls(kernel=lambda a, b: graph, **kw).fit(np.zeros((n, 1)), y)


@pytest.mark.parametrize(("ours", "theirs", "kw"), [
    (LabelPropagation, sk.LabelPropagation, {"max_iter": 1000}),
    (LabelSpreading, sk.LabelSpreading, {"alpha": 0.2, "max_iter": 30}),
    (LabelSpreading, sk.LabelSpreading, {"alpha": 0.8, "max_iter": 100}),
])
def test_same_transduction_as_sklearn_on_same_graph(rng, ours, theirs, kw):
    x, y, _ = _problem(rng)
    g = knn_graph(x, k=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphConvergenceWarning)
        a = ours(**kw).fit(g, y)
    b = _sklearn(theirs, g, y, **kw)
    assert np.mean(a.transduction_ == b.transduction_) >= 0.99
    np.testing.assert_allclose(a.label_distributions_, b.label_distributions_, atol=1e-9)
    assert a.n_iter_ == b.n_iter_ or a.n_iter_ == kw["max_iter"]


@pytest.mark.parametrize(("ours", "theirs", "kw"), [
    (LabelPropagation, sk.LabelPropagation, {"max_iter": 1000}),
    (LabelSpreading, sk.LabelSpreading, {"alpha": 0.2, "max_iter": 30}),
])
def test_sklearn_knn_kernel_from_features(rng, ours, theirs, kw):
    # scikit-learn's kernel="knn" graph is directed with each sample its own
    # first neighbour; knn_graph builds that graph with these options
    x, y, lab = _problem(rng)
    g = knn_graph(x, k=6, symmetric=False, include_self=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ours(**kw).fit(g, y)
        b = theirs(kernel="knn", n_neighbors=7, **kw).fit(x, y)
    assert np.mean(a.transduction_ == b.transduction_) >= 0.99
    assert np.mean(a.transduction_ == lab) > 0.9


def test_thread_counts_give_same_result(rng):
    x, y, _ = _problem(rng, 400)
    g = knn_graph(x, k=5)
    a = LabelPropagation(num_threads=1).fit(g, y)
    b = LabelPropagation(num_threads=2).fit(g, y)
    np.testing.assert_allclose(a.label_distributions_, b.label_distributions_, atol=1e-12)


def test_propagation_clamps_labels_and_rows_sum_to_one(rng):
    x, y, _ = _problem(rng, 300)
    m = LabelPropagation(n_neighbors=5).fit(x, y)
    lab = y >= 0
    np.testing.assert_array_equal(m.transduction_[lab], y[lab])
    np.testing.assert_allclose(m.label_distributions_.sum(axis=1), 1.0)
    assert np.all(m.confidence_ <= 1.0)
    assert np.all(m.confidence_[lab] == 1.0)


def test_string_labels_and_predict_new_points(rng):
    x, y, lab = _problem(rng, 400)
    names = np.array(["absorption", "emission", "double-peak"], dtype=object)
    ys = np.where(y >= 0, names[np.maximum(y, 0)], -1).astype(object)
    m = pyspec.LabelSpreading(n_neighbors=7).fit(x, ys)
    assert set(m.classes_) == set(names)
    pred = m.predict(x[:50] + 0.01)
    assert np.mean(pred == names[lab[:50]]) > 0.9
    p = m.predict_proba(x[:5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # against a sparse affinity to the training samples
    p2 = m.predict_proba(sp.csr_matrix(m.graph_[:5]))
    assert p2.shape == (5, 3)


def test_candidates_ordered_and_thresholded(rng):
    x, y, _ = _problem(rng, 300)
    m = LabelSpreading(n_neighbors=5).fit(x, y)
    rows = m.candidates(1, threshold=0.6)
    p = m.label_distributions_[rows, 1]
    assert np.all(p >= 0.6)
    assert np.all(np.diff(p) <= 0)
    assert np.all(y[rows] == -1)
    with pytest.raises(ValueError, match="not a class"):
        m.candidates(7)


def test_convergence_warning_is_typed(rng):
    x, y, _ = _problem(rng, 200)
    with pytest.warns(GraphConvergenceWarning):
        LabelPropagation(max_iter=1, tol=0.0).fit(x, y)


def test_errors(rng):
    x, y, _ = _problem(rng, 50, 5)
    with pytest.raises(NotFittedError):
        LabelSpreading().predict(x)
    with pytest.raises(ValueError, match="no labelled"):
        LabelSpreading().fit(x, np.full(50, -1))
    with pytest.raises(ValueError, match="one label per sample"):
        LabelSpreading().fit(x, y[:10])
    with pytest.raises(ValueError, match="alpha"):
        LabelSpreading(alpha=1.0).fit(x, y)
    with pytest.raises(ValueError, match="square"):
        LabelSpreading().fit(sp.csr_matrix((5, 6)), np.zeros(5))
    with pytest.raises(ValueError, match="max_iter"):
        LabelPropagation(max_iter=0).fit(x, y)
    m = LabelSpreading().fit(knn_graph(x, k=3), y)
    with pytest.raises(ValueError, match="fitted on a graph"):
        m.predict(x)


def test_cg_solver_reaches_the_iteration_fixed_point(rng):
    x, y, _ = _problem(rng, 900, 30)
    g = knn_graph(x, k=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GraphConvergenceWarning)
        it = LabelPropagation(max_iter=5000, tol=1e-9).fit(g, y)
    cg = LabelPropagation(solver="cg").fit(g, y)
    np.testing.assert_allclose(cg.label_distributions_, it.label_distributions_, atol=1e-5)
    b = _sklearn(sk.LabelPropagation, g, y, max_iter=1000)
    assert np.mean(cg.transduction_ == b.transduction_) >= 0.99
    with pytest.raises(ValueError, match="symmetric"):
        LabelPropagation(solver="cg").fit(knn_graph(x, k=3, symmetric=False), y)
    with pytest.raises(ValueError, match="solver"):
        LabelPropagation(solver="lu").fit(g, y)
