"""Label propagation and label spreading over a sparse k-nearest-neighbour graph.

Two transductive classifiers with scikit-learn's semi-supervised interface
(``fit(X_or_graph, y)`` with ``-1`` for unlabelled rows, ``transduction_``,
``label_distributions_``, ``predict``, ``predict_proba``):

* :class:`LabelPropagation` (Zhu & Ghahramani 2002, "Learning from labeled
  and unlabeled data with label propagation", CMU-CALD-02-107): each step
  replaces every label distribution by the weighted sum of its neighbours'
  (``F <- W F``), normalises the rows and clamps the labelled rows back to
  their one-hot labels.
* :class:`LabelSpreading` (Zhou, Bousquet, Lal, Weston & Schölkopf 2004,
  "Learning with local and global consistency", NIPS 16): with the
  normalised affinity ``S = D^-1/2 W D^-1/2`` (the negative of the normalised
  graph Laplacian off its diagonal), ``F <- alpha S F + (1 - alpha) Y``; the
  labelled rows are pulled towards, not fixed to, their labels.

The iteration, the stopping rule (sum of absolute changes below ``tol``,
checked after every step) and the final row normalisation are those of
scikit-learn's ``sklearn.semi_supervised`` models, so on the same graph both
give the same transduction. The differences are speed and scale: the graph
comes from :func:`pyspec.knn_graph` (an inverted file above 20k
spectra), and one step is a single fused pass over the CSR rows (sparse
product, normalisation, clamping and change) compiled by numba and run on
``num_threads`` threads instead of several whole-array NumPy passes.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin

from pyspec._numba_cache import CACHE
from pyspec._validation import check_num_threads
from pyspec.errors import NotFittedError

__all__ = ["LabelPropagation", "LabelSpreading", "GraphConvergenceWarning"]

try:  # numba is a declared dependency
    import numba

    _prange = numba.prange
except ImportError:  # pragma: no cover
    numba = None
    _prange = range

# Graphs with fewer label entries (nodes x classes) than this run the serial
# kernels: waking the thread pool costs more than such a step (~0.1 ms).
_PARALLEL_MIN_ENTRIES = 200_000


def _compiled(f):
    """(serial, parallel) numba versions of a step kernel (plain Python without numba)."""
    if numba is None:  # pragma: no cover
        return f, f
    # only the serial one is cached on disk: both come from one Python function
    # and numba's cache index would not tell them apart
    return (numba.njit(cache=CACHE, nogil=True)(f),
            numba.njit(cache=False, nogil=True, parallel=True)(f))


class GraphConvergenceWarning(UserWarning):
    """The iteration stopped at ``max_iter`` before the change fell below ``tol``."""


def _row_product(indptr, indices, data, f_old, f_new, i):  # pragma: no cover - compiled
    """Row ``i`` of the sparse product: ``f_new[i] = W[i] @ f_old`` (W in CSR arrays)."""
    for j in range(f_new.shape[1]):
        f_new[i, j] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        w = data[p]
        r = indices[p]
        for j in range(f_new.shape[1]):
            f_new[i, j] += w * f_old[r, j]


if numba is not None:  # compiled before the step kernels that call it
    _row_product = numba.njit(cache=CACHE, nogil=True)(_row_product)


def _propagation_step(indptr, indices, data, f_old, f_new, clamped, y_static):  # pragma: no cover
    """One Zhu-Ghahramani step; returns sum |f_new - f_old|."""
    n, c = f_old.shape
    change = np.zeros(n)
    for i in _prange(n):
        if clamped[i]:
            for j in range(c):
                f_new[i, j] = y_static[i, j]
        else:
            _row_product(indptr, indices, data, f_old, f_new, i)
            s = 0.0
            for j in range(c):
                s += f_new[i, j]
            if s != 0.0:
                for j in range(c):
                    f_new[i, j] /= s
        d = 0.0
        for j in range(c):
            d += abs(f_new[i, j] - f_old[i, j])
        change[i] = d
    return change.sum()


def _spreading_step(indptr, indices, data, f_old, f_new, alpha, y_static):  # pragma: no cover
    """One Zhou et al. step ``F <- alpha S F + (1 - alpha) Y``; returns sum |change|."""
    n, c = f_old.shape
    change = np.zeros(n)
    for i in _prange(n):
        _row_product(indptr, indices, data, f_old, f_new, i)
        d = 0.0
        for j in range(c):
            f_new[i, j] = alpha * f_new[i, j] + y_static[i, j]
            d += abs(f_new[i, j] - f_old[i, j])
        change[i] = d
    return change.sum()


_PROPAGATION_STEP = _compiled(_propagation_step)
_SPREADING_STEP = _compiled(_spreading_step)


def _as_labels(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, codes) with code -1 for unlabelled; y of length n, -1 = unlabelled."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must be 1-D with one label per sample ({n}), got shape {y.shape}")
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or Inf; use -1 for unlabelled samples")
    if y.dtype.kind in "iufb":
        unlabelled = y == -1
    else:  # strings or objects: -1 may be the int or the string
        unlabelled = np.array([str(v) == "-1" for v in y.tolist()], dtype=bool)
        y = y.astype(str)
    classes = np.unique(y[~unlabelled])
    if classes.size == 0:
        raise ValueError("y has no labelled sample (every entry is -1)")
    codes = np.full(n, -1, dtype=np.int64)
    codes[~unlabelled] = np.searchsorted(classes, y[~unlabelled])
    return classes, codes


def _check_graph(g: Any) -> sp.csr_matrix:
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"a graph must be a square sparse matrix, got shape {g.shape}")
    g = sp.csr_matrix(g, dtype=np.float64)
    if g.nnz and (not np.all(np.isfinite(g.data)) or g.data.min() < 0):
        raise ValueError("graph weights must be finite and >= 0")
    g.sort_indices()
    return g


def _harmonic_cg(w: sp.csr_matrix, labelled: np.ndarray, f: np.ndarray,
                 max_iter: int) -> tuple[np.ndarray, int]:
    """Fixed point of label propagation by conjugate gradients (Zhu et al. 2003).

    At convergence every unlabelled row is the degree-weighted mean of its
    neighbours, i.e. ``(D_uu - W_uu) F_u = W_ul Y_l``; for a symmetric graph
    that system is symmetric positive semi-definite (definite on components
    that hold a label; elsewhere the right side is zero and so is the
    solution, as with the plain iteration). Jacobi-preconditioned CG needs a
    few dozen sparse products where the iteration needs hundreds.
    """
    from scipy.sparse.linalg import LinearOperator, cg
    from threadpoolctl import threadpool_limits

    if (w != w.T).nnz:
        raise ValueError("solver='cg' needs a symmetric graph; use solver='iterate' for a "
                         "directed one")
    u = np.flatnonzero(~labelled)
    lab = np.flatnonzero(labelled)
    w_u = w[u]
    deg = np.asarray(w_u.sum(axis=1)).ravel()
    a = (sp.diags(deg) - w_u[:, u]).tocsr()
    b = np.asarray(w_u[:, lab] @ f[lab])
    inv = np.where(deg > 0, 1.0 / np.where(deg > 0, deg, 1.0), 1.0)
    m = LinearOperator(a.shape, matvec=lambda v: inv * v, dtype=np.float64)
    out = f.copy()
    steps = 0
    for j in range(f.shape[1]):
        count = [0]

        def tick(_x: np.ndarray, count: list[int] = count) -> None:
            count[0] += 1

        # one BLAS thread: the vector updates are far too small to share, and a
        # thread pool waking for each of them cost 100x the work on a busy machine
        with threadpool_limits(1, user_api="blas"):
            x, info = cg(a, b[:, j], rtol=1e-8, atol=0.0, maxiter=max_iter, M=m,
                         callback=tick)
        if info > 0:
            warnings.warn(f"conjugate gradients stopped at max_iter={max_iter} before "
                          "1e-8 relative residual", GraphConvergenceWarning, stacklevel=3)
        out[u, j] = np.maximum(x, 0.0)
        steps = max(steps, count[0])
    return out, steps


class _GraphLabelModel(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the two models (see the module docstring)."""

    _variant = ""

    def __init__(self, n_neighbors: int = 7, *, alpha: float | None = None,
                 max_iter: int = 1000, tol: float = 1e-3, graph_method: str = "auto",
                 num_threads: int | None = None, random_state: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.graph_method = graph_method
        self.num_threads = num_threads
        self.random_state = random_state

    # -- the graph ---------------------------------------------------------
    def _graph(self, X: Any) -> tuple[sp.csr_matrix, np.ndarray | None]:
        """(affinity graph, training spectra or None when X was a graph)."""
        if sp.issparse(X):
            return _check_graph(X), None
        from pyspec.knn_graph import _as_source, knn_graph

        x = _as_source(X)
        g = knn_graph(x, k=self.n_neighbors, method=self.graph_method,
                      random_state=self.random_state, num_threads=self.num_threads)
        return _check_graph(g), x

    def _operator(self, w: sp.csr_matrix) -> sp.csr_matrix:
        raise NotImplementedError

    # -- fit ---------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> _GraphLabelModel:
        """Propagate the labels of ``y`` (-1 = unlabelled) over the graph of ``X``.

        Parameters
        ----------
        X : ndarray (n, d), SpectrumStore, or scipy sparse (n, n) affinity graph
            Spectra (a kNN graph with ``n_neighbors`` is built by
            :func:`pyspec.knn_graph`) or a precomputed symmetric graph.
        y : array-like (n,)
            Labels, -1 for unlabelled samples.
        """
        max_iter = self.max_iter
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) \
                or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        if not float(self.tol) >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        threads = check_num_threads(self.num_threads)
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        classes, codes = _as_labels(y, n)  # before the graph: cheap errors first
        w, x = self._graph(X)
        op = self._operator(w)
        c = classes.size
        labelled = codes >= 0
        f = np.zeros((n, c))
        f[np.flatnonzero(labelled), codes[labelled]] = 1.0
        y_static = f.copy() if self._variant == "propagation" else f * (1.0 - self.alpha)
        indptr = op.indptr.astype(np.int64)
        indices = op.indices.astype(np.int64)
        data = op.data.astype(np.float64)
        f_new = np.empty_like(f)
        parallel = f.size >= _PARALLEL_MIN_ENTRIES and threads != 1
        prop_step = _PROPAGATION_STEP[parallel]
        spread_step = _SPREADING_STEP[parallel]
        old_threads = numba.get_num_threads() if numba is not None else 0
        if numba is not None and threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            converged = False
            if getattr(self, "solver", "iterate") == "cg":
                f, it = _harmonic_cg(op, labelled, f, max_iter)
                converged = True
            for it in range(1, 0 if converged else max_iter + 1):  # noqa: B007
                if self._variant == "propagation":
                    change = prop_step(indptr, indices, data, f, f_new, labelled,
                                               y_static)
                else:
                    change = spread_step(indptr, indices, data, f, f_new,
                                             float(self.alpha), y_static)
                f, f_new = f_new, f
                if change < self.tol:
                    converged = True
                    break
        finally:
            if numba is not None and threads:
                numba.set_num_threads(old_threads)
        if not converged:
            warnings.warn(f"{type(self).__name__} did not converge in {max_iter} steps "
                          f"(last change {change:.3g} >= tol {self.tol}); raise max_iter",
                          GraphConvergenceWarning, stacklevel=2)
        s = f.sum(axis=1, keepdims=True)
        s[s == 0] = 1.0
        f /= s
        self.classes_ = classes
        self.label_distributions_ = f
        self.transduction_ = classes[np.argmax(f, axis=1)]
        self.n_iter_ = it
        self.graph_ = w
        self.X_ = x
        self._labelled = labelled
        self.n_features_in_ = None if x is None else x.shape[1]
        return self

    # -- results -----------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "label_distributions_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit() first")

    @property
    def confidence_(self) -> np.ndarray:
        """Largest class probability of every training sample (0 on isolated nodes)."""
        self._check_fitted()
        return self.label_distributions_.max(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of new samples: the mean distribution of their neighbours.

        ``X`` is spectra (when the model was fitted on spectra: the
        ``n_neighbors`` nearest training spectra are used, as scikit-learn's
        ``kernel="knn"``) or a sparse (m, n_train) affinity matrix to the
        training samples (weighted mean).
        """
        self._check_fitted()
        if sp.issparse(X):
            a = sp.csr_matrix(X, dtype=np.float64)
            if a.shape[1] != self.label_distributions_.shape[0]:
                raise ValueError(f"affinities must have {self.label_distributions_.shape[0]} "
                                 f"columns (training samples), got {a.shape[1]}")
            p = np.asarray(a @ self.label_distributions_)
        else:
            if self.X_ is None:
                raise ValueError("this model was fitted on a graph: pass a sparse affinity "
                                 "matrix to the training samples, not spectra")
            from pyspec.knn_graph import nearest_rows

            q = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
            if q.ndim != 2 or q.shape[1] != self.X_.shape[1]:
                raise ValueError(f"expected spectra of shape (n, {self.X_.shape[1]}), got "
                                 f"{q.shape}")
            ids = nearest_rows(self.X_, q, min(self.n_neighbors, self.X_.shape[0]))
            p = self.label_distributions_[ids].sum(axis=1)
        s = p.sum(axis=1, keepdims=True)
        s[s == 0] = 1.0
        return p / s

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of new samples (see :meth:`predict_proba`)."""
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)]

    def candidates(self, target: Any, threshold: float = 0.5,
                   include_labelled: bool = False) -> np.ndarray:
        """Rows transduced to ``target`` with probability >= ``threshold``, most confident first."""
        self._check_fitted()
        if target not in set(self.classes_.tolist()):
            raise ValueError(f"target {target!r} is not a class of y ({self.classes_.tolist()})")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        col = int(np.flatnonzero(self.classes_ == target)[0])
        p = self.label_distributions_[:, col]
        keep = (self.transduction_ == target) & (p >= threshold)
        if not include_labelled:
            keep &= ~self._labelled
        rows = np.flatnonzero(keep)
        return rows[np.argsort(-p[rows], kind="stable")]


class LabelPropagation(_GraphLabelModel):
    """Label propagation with clamped labels (Zhu & Ghahramani 2002) on a kNN graph.

    Parameters
    ----------
    n_neighbors : int, default 7
        k of the graph built when ``fit`` gets spectra.
    max_iter : int, default 1000
    tol : float, default 1e-3
        Stop when the summed absolute change of the label distributions
        falls below ``tol``.
    solver : "iterate" or "cg"
        "iterate": scikit-learn's iteration, step for step. "cg": solve for
        its fixed point (the harmonic function) by preconditioned conjugate
        gradients, for symmetric graphs; the same transduction up to the
        iteration's early stop, in far fewer sparse products.
    graph_method : "auto", "exact", "hamming" or "pq"
        How :func:`pyspec.knn_graph` finds neighbours.
    num_threads : int or None
    random_state : int
        Seed of the candidate model of an approximate graph.

    Attributes
    ----------
    classes_, label_distributions_ (n, n_classes), transduction_ (n,),
    confidence_ (n,), n_iter_, graph_ (the affinity graph used)

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    >>> LabelPropagation(n_neighbors=2).fit(x, [0, -1, -1, -1, -1, 1]).transduction_.tolist()
    [0, 0, 0, 1, 1, 1]
    """

    _variant = "propagation"

    def __init__(self, n_neighbors: int = 7, *, max_iter: int = 1000, tol: float = 1e-3,
                 solver: str = "iterate", graph_method: str = "auto",
                 num_threads: int | None = None, random_state: int = 0) -> None:
        super().__init__(n_neighbors, alpha=None, max_iter=max_iter, tol=tol,
                         graph_method=graph_method, num_threads=num_threads,
                         random_state=random_state)
        self.solver = solver

    def _operator(self, w: sp.csr_matrix) -> sp.csr_matrix:
        if self.solver not in ("iterate", "cg"):
            raise ValueError(f"solver must be 'iterate' or 'cg', got {self.solver!r}")
        return w


class LabelSpreading(_GraphLabelModel):
    """Label spreading with the normalised graph Laplacian (Zhou et al. 2004).

    Parameters
    ----------
    n_neighbors : int, default 7
    alpha : float in (0, 1), default 0.2
        Weight of the neighbours against the initial labels (``1 - alpha``).
    max_iter : int, default 30
    tol : float, default 1e-3
    graph_method, num_threads, random_state
        As for :class:`LabelPropagation`.
    """

    _variant = "spreading"

    def __init__(self, n_neighbors: int = 7, *, alpha: float = 0.2, max_iter: int = 30,
                 tol: float = 1e-3, graph_method: str = "auto", num_threads: int | None = None,
                 random_state: int = 0) -> None:
        super().__init__(n_neighbors, alpha=alpha, max_iter=max_iter, tol=tol,
                         graph_method=graph_method, num_threads=num_threads,
                         random_state=random_state)

    def _operator(self, w: sp.csr_matrix) -> sp.csr_matrix:
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < float(a) < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {a!r}")
        w = w.tocsr(copy=True)
        w.setdiag(0.0)
        w.eliminate_zeros()
        # degree over columns, as scipy.sparse.csgraph.laplacian(normed=True)
        deg = np.asarray(w.sum(axis=0)).ravel()
        inv = np.where(deg > 0, 1.0 / np.sqrt(np.where(deg > 0, deg, 1.0)), 1.0)
        s = sp.diags(inv) @ w @ sp.diags(inv)
        s = s.tocsr()
        s.sort_indices()
        return s


def candidate_table(model: _GraphLabelModel, ids: Any, *, target: Any = None,
                    threshold: float = 0.5, meta: Any = None, only_candidates: bool = True):
    """The candidate catalogue of a fitted model (astropy Table).

    Columns: ``id``, the store metadata columns given in ``meta`` (file, ra,
    dec, class, subclass when present), ``label`` (transduction),
    ``confidence`` (its probability), ``p_<class>`` per class, ``labelled``
    (the label was given, not inferred) and ``candidate`` (unlabelled,
    transduced to ``target`` with probability >= ``threshold``). With
    ``only_candidates`` the table keeps the candidate rows only, most
    confident first; otherwise every row in input order.
    """
    from astropy.table import Table

    model._check_fitted()
    n = model.label_distributions_.shape[0]
    ids = np.asarray(ids).astype(str)
    if ids.shape != (n,):
        raise ValueError(f"need {n} ids, one per graph node, got {ids.shape}")
    if target is None:
        cand = np.zeros(n, bool)
    else:
        cand = np.zeros(n, bool)
        cand[model.candidates(target, threshold)] = True
    t = Table({"id": ids})
    if meta is not None:
        for c in ("file", "ra", "dec", "class", "subclass"):
            if c in meta.colnames:
                t[c] = meta[c]
    t["label"] = model.transduction_.astype(str)
    t["confidence"] = model.confidence_
    for j, c in enumerate(model.classes_):
        t[f"p_{c}"] = model.label_distributions_[:, j]
    t["labelled"] = model._labelled
    t["candidate"] = cand
    t.meta.update({"model": type(model).__name__, "target": None if target is None
                   else str(target), "threshold": float(threshold),
                   "n_labelled": int(model._labelled.sum()), "n_iter": int(model.n_iter_),
                   "n_edges": int(model.graph_.nnz // 2)})
    if only_candidates:
        col = t[f"p_{target}"] if target is not None else t["confidence"]
        rows = np.flatnonzero(cand)
        t = t[rows[np.argsort(-np.asarray(col)[rows], kind="stable")]]
    return t
