"""Representative query sets: PCA, then BIRCH groups, then KMeans inside each group.

The M-star study (LAMOST "Unknown" search) chose its queries from the
labelled M spectra this way: reduce the spectra with PCA, split them into
BIRCH groups, cluster each group again with KMeans and take one spectrum per
sub-cluster, so that the query set covers the whole variety of the class
rather than its most common type. It used 50 BIRCH groups x 20 KMeans
sub-clusters (1,000 queries) for the dwarfs and 80 KMeans clusters for the
giants; both are available as presets (:data:`PRESETS`).

The representative of a cluster is the member spectrum nearest the cluster
centre in PCA space (a real spectrum, never a synthetic mean).

Memory: the models (PCA, BIRCH, KMeans) are fitted on at most ``fit_sample``
spectra, then every spectrum is assigned to its cluster block by block
(:func:`representative_queries_streamed`), so memory is bounded by the sample
and the block size, not by the number of spectra. A selection no larger than
the sample is clustered whole, exactly as :func:`representative_queries` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyspec._validation import as_float_matrix
from pyspec.store_rows import StoreRowReader  # the rows reader `pyspec queries` streams through

__all__ = ["PRESETS", "QuerySelection", "StoreRowReader", "representative_queries",
           "representative_queries_streamed"]

_WORKING_MEMORY_MB = 32

# BIRCH sub-clusters the global (agglomerative, quadratic) step may take with
# birch_threshold="auto": 4096**2 float64 distances = 128 MiB
_MAX_SUBCLUSTERS = 4096

PRESETS: dict[str, dict[str, Any]] = {
    # 50 BIRCH groups x 20 KMeans sub-clusters (M dwarfs in the M-star study)
    "dwarf": {"method": "birch-kmeans", "n_groups": 50, "n_subclusters": 20},
    # 80 KMeans clusters (M giants in the M-star study)
    "giant": {"method": "kmeans", "n_clusters": 80},
}


@dataclass
class QuerySelection:
    """Result of :func:`representative_queries`.

    Attributes
    ----------
    rows : ndarray of shape (n_selected,), int64
        Row of each representative in the input matrix, ordered by cluster.
    cluster : ndarray of shape (n_selected,), int64
        Cluster label of each representative (0 .. n_selected-1).
    group : ndarray of shape (n_selected,), int64
        BIRCH group of each representative (equal to ``cluster`` for "kmeans").
    cluster_size : ndarray of shape (n_selected,), int64
        Members of each cluster.
    centre_distance : ndarray of shape (n_selected,), float64
        Distance of the representative to its cluster centre in PCA space.
    labels : ndarray of shape (n_spectra,), int64
        Cluster of every input spectrum.
    params : dict
        The parameters used (after clipping to the data size).
    """

    rows: np.ndarray
    cluster: np.ndarray
    group: np.ndarray
    cluster_size: np.ndarray
    centre_distance: np.ndarray
    labels: np.ndarray
    params: dict[str, Any]

    def to_table(self, meta: Any = None) -> Any:
        """Astropy Table of the representatives, with the input metadata rows if given."""
        from astropy.table import Table

        table = Table(meta[self.rows], copy=True) if meta is not None else Table()
        table["row"] = self.rows
        table["group"] = self.group
        table["cluster"] = self.cluster
        table["cluster_size"] = self.cluster_size
        table["centre_distance"] = self.centre_distance
        table.meta["queries"] = dict(self.params)
        return table


def _birch_groups(scores: np.ndarray, n_groups: int, threshold: float | str
                  ) -> tuple[Any, np.ndarray]:
    """BIRCH labels with ``n_groups`` global clusters.

    With ``threshold="auto"`` the CF-tree radius starts at a tenth of the
    data's RMS spread and is searched (halved, doubled, then bisected) until
    the tree has at least ``n_groups`` and at most ``_MAX_SUBCLUSTERS`` leaf
    sub-clusters: the global step never runs short of sub-clusters, and its
    agglomerative clustering, quadratic in them, stays within ~128 MiB
    whatever the sample (noisy spectra can leave nearly one sub-cluster per
    spectrum at a tenth of the spread: 16 GB for 50,000 of them).
    """
    from sklearn.cluster import Birch

    spread = float(np.sqrt(np.mean(np.sum((scores - scores.mean(0)) ** 2, axis=1))))
    t = 0.1 * spread if threshold == "auto" else float(threshold)
    if not t > 0:
        t = 1e-6
    most = max(_MAX_SUBCLUSTERS, 2 * n_groups)
    too_many, too_few = 0.0, np.inf  # thresholds known to give too many / too few
    for _ in range(30):
        birch = Birch(threshold=t, n_clusters=None, branching_factor=50).fit(scores)
        n_sub = len(birch.subcluster_centers_)
        if threshold != "auto" or n_groups <= n_sub <= most:
            break
        if n_sub < n_groups:
            too_few = t
        else:
            too_many = t
        t = (t / 2.0 if too_many == 0.0 else t * 2.0 if too_few == np.inf
             else float(np.sqrt(too_many * too_few)))
    if n_sub < n_groups:
        raise ValueError(f"BIRCH found only {n_sub} sub-clusters for {n_groups} groups at "
                         f"threshold {t:g}; lower the threshold or the number of groups")
    birch.set_params(n_clusters=n_groups)
    birch.partial_fit()  # global step only, over the existing CF tree
    return birch, np.asarray(birch.predict(scores), np.int64)


def _n_distinct(x: np.ndarray) -> int:
    """Number of distinct spectra (exact duplicates counted once)."""
    return int(np.unique(x, axis=0).shape[0])


def _kmeans(points: np.ndarray, n_clusters: int, random_state: Any, n_distinct: int) -> Any:
    from sklearn.cluster import KMeans

    n_clusters = max(1, min(n_clusters, n_distinct))
    return KMeans(n_clusters=n_clusters, n_init=3, random_state=random_state).fit(points)


def _check_params(method: str, **counts: Any) -> None:
    if method not in ("birch-kmeans", "kmeans"):
        raise ValueError(f"method must be 'birch-kmeans' or 'kmeans', got {method!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value}")


class _Clustering:
    """PCA + (BIRCH groups +) KMeans fitted on some spectra; assigns any spectra to a cluster.

    Cluster labels are numbered group by group (the KMeans clusters of group
    0, then of group 1, ...), as in the M-star study.
    """

    def __init__(self, x: np.ndarray, method: str, n_groups: int, n_subclusters: int,
                 n_clusters: int, n_components: int, birch_threshold: float | str,
                 random_state: int | None) -> None:
        from sklearn.decomposition import PCA

        n = x.shape[0]
        n_comp = int(min(n_components, n, x.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance components
            pca = PCA(n_components=n_comp, random_state=random_state)
            # fit_transform's scores (U S) are not bit-equal to transform's (X V): keep them for
            # assigning the fitted spectra themselves, so a whole-data fit is the classic method
            scores = np.ascontiguousarray(pca.fit_transform(x), np.float64)
        self.pca = pca
        self.fit_scores = scores
        self.birch: Any = None
        self.kmeans: dict[int, Any] = {}  # group -> KMeans of the group's sub-clusters
        self.first_label: dict[int, int] = {}
        self.group_of_cluster: list[int] = []
        if method == "kmeans":
            groups = np.zeros(n, np.int64)
            counts = {0: int(n_clusters)}
            self.used = {}
        else:
            n_grp = int(min(n_groups, _n_distinct(x)))
            self.birch, groups = _birch_groups(scores, n_grp, birch_threshold)
            counts = {int(g): int(n_subclusters) for g in np.unique(groups)}
            self.used = {"n_groups": len(counts), "n_subclusters": int(n_subclusters)}
        for g, k in counts.items():
            members = np.flatnonzero(groups == g)
            km = _kmeans(scores[members], k, random_state, _n_distinct(x[members]))
            self.kmeans[g] = km
            self.first_label[g] = len(self.group_of_cluster)
            self.group_of_cluster.extend([g] * km.cluster_centers_.shape[0])
        if method == "kmeans":
            self.used = {"n_clusters": len(self.group_of_cluster)}
            self.group_of_cluster = list(range(len(self.group_of_cluster)))
        self.n_components = n_comp

    @property
    def n_clusters(self) -> int:
        return len(self.group_of_cluster)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.pca.transform(x), np.float64)

    def assign(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster label, distance to the cluster centre) of each spectrum's PCA scores."""
        n = scores.shape[0]
        groups = np.zeros(n, np.int64) if self.birch is None else \
            np.asarray(self.birch.predict(scores), np.int64)
        labels = np.empty(n, np.int64)
        dist = np.empty(n, np.float64)
        for g in np.unique(groups):
            sel = np.flatnonzero(groups == g)
            km = self.kmeans[int(g)]
            sub = np.asarray(km.predict(scores[sel]), np.int64)
            labels[sel] = sub + self.first_label[int(g)]
            dist[sel] = np.linalg.norm(scores[sel] - km.cluster_centers_[sub], axis=1)
        return labels, dist


class _Representatives:
    """Running per-cluster nearest member to the centre; ties go to the lowest row."""

    def __init__(self, n_clusters: int) -> None:
        self.rows = np.full(n_clusters, -1, np.int64)
        self.dist = np.full(n_clusters, np.inf)
        self.size = np.zeros(n_clusters, np.int64)

    def _take(self, clusters: np.ndarray, rows: np.ndarray, dist: np.ndarray) -> None:
        """Keep (row, dist) for each cluster where it beats the current one by (dist, row)."""
        cur_d, cur_r = self.dist[clusters], self.rows[clusters]
        better = (dist < cur_d) | ((dist == cur_d) & ((cur_r < 0) | (rows < cur_r)))
        self.rows[clusters[better]], self.dist[clusters[better]] = rows[better], dist[better]

    def update(self, rows: np.ndarray, labels: np.ndarray, dist: np.ndarray) -> None:
        """Add spectra ``rows`` with their cluster ``labels`` and centre distances."""
        self.size += np.bincount(labels, minlength=self.size.size)
        order = np.lexsort((rows, dist, labels))  # per cluster: nearest, then lowest row
        first = np.ones(order.size, bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        best = order[first]
        self._take(labels[best], rows[best], dist[best])

    def merge(self, other: _Representatives) -> None:
        """Combine with the representatives of other spectra."""
        self.size += other.size
        c = np.flatnonzero(other.rows >= 0)
        self._take(c, other.rows[c], other.dist[c])


def _selection(clustering: _Clustering, reps: _Representatives, labels: np.ndarray,
               params: dict[str, Any]) -> QuerySelection:
    n_cl = clustering.n_clusters
    return QuerySelection(rows=reps.rows, cluster=np.arange(n_cl, dtype=np.int64),
                          group=np.asarray(clustering.group_of_cluster, np.int64),
                          cluster_size=reps.size, centre_distance=reps.dist, labels=labels,
                          params=params)


def representative_queries(flux: Any, *, method: str = "birch-kmeans", n_groups: int = 50,
                           n_subclusters: int = 20, n_clusters: int = 80,
                           n_components: int = 50, birch_threshold: float | str = "auto",
                           random_state: int | None = 0) -> QuerySelection:
    """Pick representative query spectra by PCA + BIRCH + KMeans (or PCA + KMeans).

    Parameters
    ----------
    flux : ndarray of shape (n_spectra, n_pixels), float32
        Prepared spectra of one labelled class (e.g. a store's ``flux``).
    method : {"birch-kmeans", "kmeans"}
        "birch-kmeans": ``n_groups`` BIRCH groups, each split by KMeans into
        ``n_subclusters`` (M dwarfs: 50 x 20). "kmeans": ``n_clusters``
        KMeans clusters (M giants: 80). See :data:`PRESETS`.
    n_components : int
        PCA components (clipped to the data size).
    birch_threshold : float or "auto"
        BIRCH CF-tree radius in PCA units ("auto": see ``_birch_groups``).
    random_state : int or None
        Seed for PCA and KMeans.

    Returns
    -------
    QuerySelection
        The representatives (one per cluster) and every spectrum's cluster.
        Counts larger than the data allow are clipped (a group of 5 spectra
        gives at most 5 sub-clusters).
    """
    x = as_float_matrix(flux, "flux")
    return representative_queries_streamed(
        lambda rows: x[rows], x.shape[0], method=method, n_groups=n_groups,
        n_subclusters=n_subclusters, n_clusters=n_clusters, n_components=n_components,
        birch_threshold=birch_threshold, random_state=random_state, fit_sample=x.shape[0])


def representative_queries_streamed(
        read_rows: Callable[[np.ndarray], np.ndarray], n: int, *, fit_sample: int = 50_000,
        chunk_size: int = 8192, method: str = "birch-kmeans", n_groups: int = 50,
        n_subclusters: int = 20, n_clusters: int = 80, n_components: int = 50,
        birch_threshold: float | str = "auto", random_state: int | None = 0,
        assign: Callable[..., Any] | None = None) -> QuerySelection:
    """:func:`representative_queries` over spectra read block by block (bounded memory).

    Parameters
    ----------
    read_rows : callable
        ``read_rows(rows)`` -> float32 ``(len(rows), n_pixels)`` prepared flux
        of the given (ascending) rows ``0 <= row < n``.
    n : int
        Number of spectra.
    fit_sample : int
        The models are fitted on at most this many spectra (drawn at random
        with ``random_state`` when ``n`` is larger; all of them otherwise, which
        is :func:`representative_queries` exactly).
    chunk_size : int
        Spectra assigned per block.
    assign : callable, optional
        ``assign(clustering, blocks)`` -> ``[assign_block(b, clustering, read_rows)
        for b in blocks]``, computed elsewhere (e.g. as Dask tasks).
    method, n_groups, n_subclusters, n_clusters, n_components, birch_threshold, random_state :
        As for :func:`representative_queries`.
    """
    _check_params(method, n_groups=n_groups, n_subclusters=n_subclusters,
                  n_clusters=n_clusters, n_components=n_components, fit_sample=fit_sample,
                  chunk_size=chunk_size)
    n = int(n)
    if n < 2:
        raise ValueError(f"need at least 2 spectra to choose representatives, got {n}")
    if n > fit_sample:
        rng = np.random.default_rng(random_state)
        sample = np.sort(rng.choice(n, size=int(fit_sample), replace=False))
    else:
        sample = np.arange(n)
    # sklearn's pairwise steps (BIRCH predict against every CF sub-cluster) take up to
    # `working_memory` (default 1 GB) per block; keep them to a few tens of MB
    from sklearn import config_context

    with config_context(working_memory=_WORKING_MEMORY_MB):
        return _streamed(read_rows, n, sample, chunk_size, method, n_groups, n_subclusters,
                         n_clusters, n_components, birch_threshold, random_state, assign)


def _streamed(read_rows: Callable[[np.ndarray], np.ndarray], n: int, sample: np.ndarray,
              chunk_size: int, method: str, n_groups: int, n_subclusters: int,
              n_clusters: int, n_components: int, birch_threshold: float | str,
              random_state: int | None, assign: Callable[..., Any] | None) -> QuerySelection:
    x = as_float_matrix(read_rows(sample), "flux")
    clustering = _Clustering(x, method, n_groups, n_subclusters, n_clusters, n_components,
                             birch_threshold, random_state)
    del x
    if sample.size == n:  # everything was fitted: assign by the fitted scores
        labels, dist = clustering.assign(clustering.fit_scores)
        part = _Representatives(clustering.n_clusters)
        part.update(sample, labels, dist)
        parts = [(labels, part)]
    else:
        clustering.fit_scores = None  # not needed to assign blocks (and not shipped to workers)
        blocks = [np.arange(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
        if assign is None:
            parts = [assign_block(b, clustering, read_rows) for b in blocks]
        else:
            parts = assign(clustering, blocks)
    reps = _Representatives(clustering.n_clusters)
    for _, part in parts:
        reps.merge(part)
    labels = np.concatenate([lab for lab, _ in parts])
    params = {"method": method, "n_components": clustering.n_components,
              "random_state": random_state, "n_spectra": n,
              "n_selected": clustering.n_clusters, "fit_sample": int(sample.size),
              **clustering.used}
    return _selection(clustering, reps, labels, params)


def assign_block(rows: np.ndarray, clustering: _Clustering,
                 read_rows: Callable[[np.ndarray], np.ndarray]
                 ) -> tuple[np.ndarray, _Representatives]:
    """Labels of ``rows`` and their per-cluster nearest members."""
    labels, dist = clustering.assign(clustering.scores(as_float_matrix(read_rows(rows), "flux")))
    reps = _Representatives(clustering.n_clusters)
    reps.update(rows, labels, dist)
    return labels, reps
