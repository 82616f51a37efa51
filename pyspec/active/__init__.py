"""Active learning of spectrum classes with an oracle (seed 003).

:class:`ActiveLearner` keeps a pool of spectra, the labels taught so far and
a classifier. Each iteration

1. refits the classifier on the labelled spectra, balanced by SMOTE
   (Chawla et al. 2002, via imbalanced-learn) so a rare class such as
   emission-line stars is not drowned;
2. estimates the precision of the current candidate list (unlabelled
   spectra predicted as the ``target`` class) from a random sample of
   ``precision_sample`` (30) candidates checked by the oracle;
3. queries a batch of ``batch_size`` (100) unlabelled spectra by
   uncertainty sampling (``strategy="entropy"``: highest entropy of the
   predicted class distribution; ``"margin"``, ``"least-confident"``, or
   ``"random"`` for the non-active baseline), made representative and
   diverse by default (``diversity="density-kmeans"``): uncertainty is
   weighted by the spectrum's relative density in the pool (median over
   the pool of the mean distance to the k nearest neighbours, divided by
   its own: "information density", Settles & Craven 2008), so that noisy
   outliers, ambiguous but unlike anything else, do not fill the batch;
   the ``10 * batch_size`` best are cut into ``batch_size`` clusters by
   k-means weighted by that score and the spectrum nearest each centre is
   asked (Zhdanov 2019, "Diverse mini-batch active learning",
   arXiv:1901.05954), so the batch does not teach one thing a hundred
   times; while fewer spectra are labelled than one batch (cold start),
   the batch is the density-weighted k-means representatives of the pool;
4. is taught the oracle's labels for the batch and the precision sample.

It stops once the estimated precision exceeds ``precision_goal`` (0.8) in
``patience`` (3) consecutive iterations. The whole state (pool or its store
path, labels, history, random generator, estimator) is saved by
:meth:`ActiveLearner.save` and resumed by :meth:`ActiveLearner.load`.

The default classifier is :class:`pyspec.LabelSpreading` on the pool's kNN
graph, built once: the unlabelled pool then shapes the decision as well.
SMOTE's synthetic spectra join that graph as extra labelled nodes linked to
their ``n_neighbors`` nearest pool spectra. Any scikit-learn classifier with
``predict_proba`` (for example :class:`pyspec.active.cnn.SpectrumCNN`) works
too; it is fitted on the balanced labelled set only.

Oracles: a labels file (:class:`LabelsFileOracle`), any callable
``labels = oracle(ids)``, or a person through ``pyspec active next/teach``.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from pyspec.labels import file_stem as _stem
from pyspec.labels import read_labels

__all__ = ["ActiveLearner", "LabelsFileOracle", "STRATEGIES", "read_labels"]

STRATEGIES = ("entropy", "margin", "least-confident", "random")
BALANCES = ("smote", "none")
DIVERSITIES = ("density-kmeans", "kmeans", "none")
# uncertain spectra per batch slot that the diverse selection clusters
_DIVERSITY_PREFILTER = 10
# pool spectra sampled per batch slot for a cold-start batch
_COLD_SAMPLE = 50
_STATE_VERSION = 1
_UNLABELLED = ""


class LabelsFileOracle:
    """An oracle that answers from a labels table (a simulated expert).

    Ids not in the table raise ``KeyError`` (the table must cover the pool).
    """

    def __init__(self, labels: str | os.PathLike | dict[str, str]) -> None:
        table = labels if isinstance(labels, dict) else read_labels(labels)
        self.labels = {**{_stem(k): v for k, v in table.items()}, **table}
        self.n_asked = 0

    def __call__(self, ids: Sequence[str]) -> list[str]:
        out = []
        for i in ids:
            key = str(i) if str(i) in self.labels else _stem(str(i))
            if key not in self.labels:
                raise KeyError(f"the labels file has no label for {i!r}")
            out.append(self.labels[key])
        self.n_asked += len(out)
        return out


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)


class ActiveLearner:
    """Pool-based active learning with uncertainty sampling (see the module docstring).

    Parameters
    ----------
    estimator : classifier or None
        None: :class:`pyspec.LabelSpreading` over the pool's kNN graph.
    strategy : "entropy", "margin", "least-confident" or "random"
    batch_size : int, default 100
    diversity : "density-kmeans", "kmeans" or "none"
        "kmeans": the batch is the spectra nearest the centres of
        ``batch_size`` uncertainty-weighted k-means clusters of the
        ``10 * batch_size`` most uncertain ones; "density-kmeans" (default):
        the same with uncertainty times relative density; "none": the top
        of the uncertainty ranking. Ignored for ``strategy="random"``.
    balance : "smote" or "none"
    target : label, optional
        Class whose candidate precision is estimated (e.g. "emission");
        without it no precision is measured and the stopping rule is off.
    precision_sample : int, default 30
    precision_goal : float, default 0.8
    patience : int, default 3
        Consecutive iterations above the goal that stop the loop.
    n_neighbors : int, default 7
        k of the pool graph (and of SMOTE's synthetic nodes' links).
    random_state : int or None
    """

    def __init__(self, estimator: Any = None, strategy: str = "entropy", batch_size: int = 100,
                 balance: str = "smote", *, target: Any = None, precision_sample: int = 30,
                 precision_goal: float = 0.8, patience: int = 3, n_neighbors: int = 7,
                 diversity: str = "density-kmeans", random_state: int | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if diversity not in DIVERSITIES:
            raise ValueError(f"diversity must be one of {DIVERSITIES}, got {diversity!r}")
        if balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
        for name, v in (("batch_size", batch_size), ("precision_sample", precision_sample),
                        ("patience", patience), ("n_neighbors", n_neighbors)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not 0.0 <= float(precision_goal) <= 1.0:
            raise ValueError(f"precision_goal must be in [0, 1], got {precision_goal}")
        self.estimator = estimator
        self.strategy = strategy
        self.batch_size = int(batch_size)
        self.balance = balance
        self.target = None if target is None else str(target)
        self.precision_sample = int(precision_sample)
        self.precision_goal = float(precision_goal)
        self.patience = int(patience)
        self.n_neighbors = int(n_neighbors)
        self.diversity = diversity
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        self.history_: list[dict[str, Any]] = []
        self.pending_: dict[str, list[str]] = {}
        self._pool_path: str | None = None

    # ------------------------------------------------------------------ pool
    def fit(self, X: Any, y: Any = None, ids: Sequence[Any] | None = None) -> ActiveLearner:
        """Set the pool and the first labels, and train.

        Parameters
        ----------
        X : ndarray (n, d), SpectrumStore or store directory
        y : sequence (n,) of labels with -1 / None / "" for unlabelled, or
            ``{id: label}``; at least one labelled spectrum of two classes
        ids : sequence (n,), optional
            Spectrum ids; default the store's ``id`` column or ``0..n-1``.
        """
        from pyspec.knn_graph import _as_source

        if isinstance(X, (str, os.PathLike)) or hasattr(X, "meta"):
            from pyspec.store import SpectrumStore

            store = X if hasattr(X, "meta") else SpectrumStore.open(X)
            self._pool_path = str(Path(store.path).resolve())
            if ids is None:
                ids = [str(v) for v in store.meta["id"]]
            X = store.flux
        self.X_ = _as_source(X)
        n = self.X_.shape[0]
        self.ids_ = np.array([str(i) for i in (range(n) if ids is None else ids)], dtype=object)
        if len(self.ids_) != n or len(set(self.ids_.tolist())) != n:
            raise ValueError(f"ids must be {n} unique values, one per spectrum")
        self._row = {v: i for i, v in enumerate(self.ids_.tolist())}
        self.labels_ = np.full(n, _UNLABELLED, dtype=object)
        if isinstance(y, dict):
            rows = self._rows(list(y), allow_missing=True)
            for r, k in zip(rows, y, strict=True):
                if r >= 0:
                    self.labels_[r] = str(y[k])
        elif y is not None:
            y = list(y)
            if len(y) != n:
                raise ValueError(f"y must have one entry per spectrum ({n}), got {len(y)}")
            for i, v in enumerate(y):
                if v is not None and str(v) not in ("-1", ""):
                    self.labels_[i] = str(v)
        from pyspec.knn_graph import knn_neighbours, neighbours_to_graph

        nb, sqdist = knn_neighbours(self.X_, self.n_neighbors)
        self.density_ = _relative_density(sqdist)
        self.graph_ = None
        if self.estimator is None or _is_graph_model(self.estimator):
            self.graph_ = neighbours_to_graph(nb, sqdist)
        self._refit()
        return self

    def _rows(self, ids: Sequence[Any], allow_missing: bool = False) -> np.ndarray:
        rows = np.array([self._row.get(str(i), self._row.get(_stem(str(i)), -1)) for i in ids],
                        dtype=np.int64)
        if not allow_missing and np.any(rows < 0):
            bad = [str(i) for i, r in zip(ids, rows, strict=True) if r < 0][:5]
            raise KeyError(f"ids not in the pool: {bad}")
        return rows

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of labelled pool rows."""
        return self.labels_ != _UNLABELLED

    # ------------------------------------------------------------------ model
    def _balanced(self, rows: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(synthetic spectra, their labels) that SMOTE adds to balance the classes."""
        x = np.asarray(self.X_[rows], dtype=np.float32)
        counts = np.unique(y, return_counts=True)[1]
        if self.balance == "none" or counts.size < 2 or counts.min() < 2 \
                or counts.min() == counts.max():
            return np.empty((0, x.shape[1]), np.float32), np.empty(0, dtype=y.dtype)
        from imblearn.over_sampling import SMOTE

        # a seed from the state, not the generator: a resumed learner refits identically
        seed = (int(self.random_state or 0) * 1_000_003 + len(rows)) % 2**31
        xs, ys = SMOTE(k_neighbors=int(min(5, counts.min() - 1)),
                       random_state=seed).fit_resample(x, y)
        return np.asarray(xs[len(rows):], np.float32), np.asarray(ys[len(rows):])

    def _refit(self) -> None:
        rows = np.flatnonzero(self.labelled)
        y = self.labels_[rows].astype(str)
        if np.unique(y).size < 2:
            raise ValueError(f"need labelled spectra of at least two classes, got "
                             f"{np.unique(y).tolist()}")
        xs, ys = self._balanced(rows, y)
        if self.graph_ is not None:
            model = _default_model(self.n_neighbors) if self.estimator is None \
                else copy.deepcopy(self.estimator)
            n = self.X_.shape[0]
            g = self.graph_
            if len(xs):
                from pyspec.knn_graph import nearest_rows

                nb = nearest_rows(self.X_, xs, self.n_neighbors)
                b = sp.csr_matrix((np.ones(nb.size, np.float32),
                                   (np.repeat(np.arange(len(xs)), nb.shape[1]), nb.ravel())),
                                  shape=(len(xs), n))
                g = sp.bmat([[g, b.T], [b, None]], format="csr")
            full = np.concatenate([np.where(self.labelled, self.labels_, "-1").astype(str),
                                   ys.astype(str)])
            import warnings

            from pyspec.semi_supervised import GraphConvergenceWarning

            with warnings.catch_warnings():  # a fixed step budget is fine here
                warnings.simplefilter("ignore", GraphConvergenceWarning)
                model.fit(g, full)
            proba = model.label_distributions_[:n]
        else:
            from sklearn.base import clone

            model = clone(self.estimator)
            xl = np.concatenate([np.asarray(self.X_[rows], np.float32), xs])
            model.fit(xl, np.concatenate([y, ys.astype(str)]))
            proba = np.concatenate([model.predict_proba(np.asarray(self.X_[s:s + 65536],
                                                                   np.float32))
                                    for s in range(0, self.X_.shape[0], 65536)])
        self.model_ = model
        self.classes_ = np.asarray(model.classes_).astype(str)
        self.proba_ = proba
        self.predicted_ = self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------------ the loop
    def query(self, n: int | None = None) -> np.ndarray:
        """Ids of the next batch: the ``n`` (batch_size) most uncertain unlabelled spectra."""
        n = self.batch_size if n is None else int(n)
        free = np.flatnonzero(~self.labelled)
        if free.size == 0:
            return np.empty(0, dtype=object)
        n = min(n, free.size)
        if self.strategy == "random":
            pick = self._rng.choice(free, size=n, replace=False)
        elif self.diversity != "none" and self.labelled.sum() < n < free.size:
            # cold start: with fewer labels than one batch the model's uncertainty
            # says little; ask representatives of the pool (density-weighted
            # k-means over a sample of it) instead. (Asking the most uncertain
            # member of each cluster instead was tried and did worse.)
            sample = self._rng.choice(free, size=min(free.size, _COLD_SAMPLE * n),
                                      replace=False)
            w = self.density_[sample] if self.diversity == "density-kmeans" \
                else np.ones(sample.size)
            pick = sample[self._diverse(sample, w, n)]
        else:
            score = self._uncertainty(self.proba_[free])
            if self.diversity == "density-kmeans":
                score = (score - score.min() + 1e-6) * self.density_[free]
            # ties (e.g. equal entropy) broken at random, not by pool order
            order = np.lexsort((self._rng.random(free.size), -score))
            if self.diversity != "none" and free.size > n > 1:
                top = order[:_DIVERSITY_PREFILTER * n]
                pick = free[top[self._diverse(free[top], score[top], n)]]
            else:
                pick = free[order[:n]]
        return self.ids_[pick]

    def _uncertainty(self, p: np.ndarray) -> np.ndarray:
        """The strategy's uncertainty of class distributions ``p`` (higher = less sure)."""
        if self.strategy == "entropy":
            return _entropy(p)
        if self.strategy == "margin":
            top = np.sort(p, axis=1)
            return -(top[:, -1] - (top[:, -2] if p.shape[1] > 1 else 0.0))
        return -p.max(axis=1)

    def _diverse(self, rows: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
        """Positions in ``rows`` of ``n`` spread-out uncertain spectra (one per k-means cluster).

        The clusters are weighted by uncertainty, so they settle where the
        uncertain spectra are densest; the representative of each is the
        member nearest its centre (a typical spectrum of that kind, not an
        outlier). A cluster left empty gives its slot to the first of
        ``rows`` (the most uncertain, when they are ranked) not yet picked.
        """
        from sklearn.cluster import KMeans

        x = np.asarray(self.X_[np.sort(rows)], dtype=np.float32)[np.argsort(np.argsort(rows))]
        w = score - score.min() + 1e-6  # margin / confidence scores are negative
        seed = int(self._rng.integers(2**31))
        km = KMeans(n_clusters=n, n_init=1, max_iter=50, random_state=seed)
        labels = km.fit_predict(x, sample_weight=w)
        d = np.einsum("ij,ij->i", x - km.cluster_centers_[labels],
                      x - km.cluster_centers_[labels])
        by_cluster = np.lexsort((d, labels))  # nearest first within each cluster
        first = by_cluster[np.r_[True, labels[by_cluster][1:] != labels[by_cluster][:-1]]]
        if first.size < n:
            rest = np.setdiff1d(np.arange(rows.size), first)[:n - first.size]  # in rank order
            first = np.concatenate([first, rest])
        return first

    def candidates(self) -> np.ndarray:
        """Ids of unlabelled spectra predicted as ``target``, most probable first."""
        if self.target is None:
            raise ValueError("no target class was set (ActiveLearner(target=...))")
        free = ~self.labelled & (self.predicted_ == self.target)
        rows = np.flatnonzero(free)
        if self.target in self.classes_:
            col = int(np.flatnonzero(self.classes_ == self.target)[0])
            rows = rows[np.argsort(-self.proba_[rows, col], kind="stable")]
        return self.ids_[rows]

    def precision_ids(self) -> np.ndarray:
        """A random sample of ``precision_sample`` candidates for the oracle to check."""
        cand = self.candidates()
        n = min(self.precision_sample, cand.size)
        return self._rng.choice(cand, size=n, replace=False) if n else cand

    def record_precision(self, ids: Sequence[Any], labels: Sequence[Any]) -> float:
        """Precision of the current candidates from the oracle's labels of a sample."""
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
        prec = float(np.mean([str(v) == self.target for v in labels])) if len(labels) \
            else float("nan")
        self.history_.append({"iteration": len(self.history_), "n_labelled":
                              int(self.labelled.sum()), "n_candidates":
                              int(self.candidates().size), "n_checked": len(labels),
                              "precision": prec})
        return prec

    def teach(self, ids: Sequence[Any], labels: Sequence[Any]) -> ActiveLearner:
        """Add the oracle's labels for ``ids`` and retrain."""
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
        rows = self._rows(ids)
        for r, v in zip(rows, labels, strict=True):
            if v is None or str(v).strip() in ("", "-1"):
                raise ValueError(f"no label given for {self.ids_[r]!r}")
            self.labels_[r] = str(v).strip()
        self.pending_ = {}
        self._refit()
        return self

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids to ask next: (the random precision sample, the query batch without them)."""
        check = self.precision_ids() if self.target is not None else np.empty(0, object)
        batch = self.query()
        return check, batch[~np.isin(batch, check)]

    def step(self, oracle: Callable[[Sequence[str]], Sequence[Any]]) -> dict[str, Any]:
        """One iteration with an oracle: precision sample, batch, labels, retrain."""
        check, batch = self.next_batch()
        asked = np.concatenate([check, batch]).tolist()
        answers = list(oracle(asked)) if asked else []
        if len(answers) != len(asked):
            raise ValueError(f"the oracle answered {len(answers)} labels for {len(asked)} ids")
        if self.target is not None:
            self.record_precision(check.tolist(), answers[:len(check)])
        if asked:
            self.teach(asked, answers)
        return self.history_[-1] if self.history_ else {}

    @property
    def stopped(self) -> bool:
        """Precision above the goal in the last ``patience`` iterations."""
        p = [h["precision"] for h in self.history_[-self.patience:]]
        return len(p) == self.patience and all(v > self.precision_goal for v in p)

    def run(self, oracle: Callable[[Sequence[str]], Sequence[Any]],
            max_iterations: int = 50) -> list[dict[str, Any]]:
        """Iterate until the stopping rule fires, the pool is exhausted or ``max_iterations``."""
        for _ in range(int(max_iterations)):
            if self.stopped or self.labelled.all():
                break
            self.step(oracle)
        return self.history_

    # ------------------------------------------------------------------ state
    def save(self, path: str | os.PathLike) -> None:
        """Write the whole state into directory ``path`` (resumable with :meth:`load`)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {"format": "pyspec-active", "version": _STATE_VERSION,
                 "params": {k: getattr(self, k) for k in (
                     "strategy", "batch_size", "balance", "target", "precision_sample",
                     "precision_goal", "patience", "n_neighbors", "diversity",
                     "random_state")},
                 "history": self.history_, "pending": self.pending_,
                 "rng": self._rng.bit_generator.state, "pool_path": self._pool_path}
        arrays = {"ids": self.ids_.astype(str), "labels": self.labels_.astype(str),
                  "density": self.density_}
        if self._pool_path is None:
            arrays["X"] = np.asarray(self.X_)
        np.savez(path / "arrays.npz", **arrays)
        if self.graph_ is not None:
            sp.save_npz(path / "graph.npz", self.graph_)
        with open(path / "estimator.pkl", "wb") as fh:
            pickle.dump(self.estimator, fh)
        tmp = path / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, default=_json_default))
        os.replace(tmp, path / "state.json")  # the state file is written last, atomically

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActiveLearner:
        """Resume a learner written by :meth:`save` (refits the classifier)."""
        from pyspec.errors import IndexFormatError

        path = Path(path)
        try:
            state = json.loads((path / "state.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no active-learning state in {path} (state.json); "
                                    "start one with 'pyspec active init'") from None
        if state.get("format") != "pyspec-active" or state.get("version") != _STATE_VERSION:
            raise IndexFormatError(f"{path}: not a version-{_STATE_VERSION} active-learning "
                                   "state")
        with open(path / "estimator.pkl", "rb") as fh:
            estimator = pickle.load(fh)  # noqa: S301 (our own file)
        self = cls(estimator, **state["params"])
        self._rng.bit_generator.state = state["rng"]
        self.history_ = state["history"]
        self.pending_ = state["pending"]
        self._pool_path = state["pool_path"]
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            ids, labels = z["ids"].astype(object), z["labels"].astype(object)
            density = z["density"] if "density" in z.files else None
            if self._pool_path is None:
                x = z["X"]
            else:
                from pyspec.store import SpectrumStore

                x = SpectrumStore.open(self._pool_path).flux
        from pyspec.knn_graph import _as_source

        self.X_ = _as_source(x)
        self.ids_ = ids
        self._row = {v: i for i, v in enumerate(ids.tolist())}
        self.labels_ = labels
        if density is None:  # a state saved before densities were kept
            from pyspec.knn_graph import knn_neighbours

            density = _relative_density(knn_neighbours(self.X_, self.n_neighbors)[1])
        self.density_ = density
        self.graph_ = sp.load_npz(path / "graph.npz").tocsr() \
            if (path / "graph.npz").exists() else None
        self._refit()
        return self


def _relative_density(sqdist: np.ndarray) -> np.ndarray:
    """Per spectrum: the pool's median mean-distance to the k nearest, over its own.

    Above 1 in crowded parts of the pool, below 1 for outliers (e.g. the
    noisiest spectra); rows without neighbours get the median's 1.
    """
    d = np.sqrt(np.where(np.isfinite(sqdist), sqdist, np.nan))
    mean = np.nanmean(np.where(np.isnan(d).all(axis=1, keepdims=True), 1.0, d), axis=1)
    ref = np.median(mean)
    return np.where(mean > 0, ref / np.where(mean > 0, mean, 1.0), 1.0).astype(np.float64)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot save {type(v).__name__} in the state")


def _is_graph_model(est: Any) -> bool:
    from pyspec.semi_supervised import LabelPropagation, LabelSpreading

    return isinstance(est, (LabelPropagation, LabelSpreading))


def _default_model(n_neighbors: int) -> Any:
    from pyspec.semi_supervised import LabelSpreading

    return LabelSpreading(n_neighbors=n_neighbors)
