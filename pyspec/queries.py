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
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyspec._validation import as_float_matrix

__all__ = ["PRESETS", "QuerySelection", "representative_queries"]

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


def _birch_groups(scores: np.ndarray, n_groups: int, threshold: float | str) -> np.ndarray:
    """BIRCH labels with ``n_groups`` global clusters.

    With ``threshold="auto"`` the CF-tree radius starts at a tenth of the
    data's RMS spread and is halved until the tree has at least ``n_groups``
    leaf sub-clusters, so the global step never runs short of sub-clusters.
    """
    from sklearn.cluster import Birch

    spread = float(np.sqrt(np.mean(np.sum((scores - scores.mean(0)) ** 2, axis=1))))
    t = 0.1 * spread if threshold == "auto" else float(threshold)
    if not t > 0:
        t = 1e-6
    for _ in range(30):
        birch = Birch(threshold=t, n_clusters=None, branching_factor=50).fit(scores)
        if len(birch.subcluster_centers_) >= n_groups or threshold != "auto":
            break
        t /= 2.0
    n_sub = len(birch.subcluster_centers_)
    if n_sub < n_groups:
        raise ValueError(f"BIRCH found only {n_sub} sub-clusters for {n_groups} groups at "
                         f"threshold {t:g}; lower the threshold or the number of groups")
    birch.set_params(n_clusters=n_groups)
    birch.partial_fit()  # global step only, over the existing CF tree
    return np.asarray(birch.predict(scores), np.int64)


def _n_distinct(x: np.ndarray) -> int:
    """Number of distinct spectra (exact duplicates counted once)."""
    return int(np.unique(x, axis=0).shape[0])


def _kmeans(points: np.ndarray, n_clusters: int, random_state: Any,
            n_distinct: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    n_clusters = max(1, min(n_clusters, n_distinct))
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=random_state).fit(points)
    return np.asarray(km.labels_, np.int64), km.cluster_centers_


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
    from sklearn.decomposition import PCA

    if method not in ("birch-kmeans", "kmeans"):
        raise ValueError(f"method must be 'birch-kmeans' or 'kmeans', got {method!r}")
    for name, value in (("n_groups", n_groups), ("n_subclusters", n_subclusters),
                        ("n_clusters", n_clusters), ("n_components", n_components)):
        if isinstance(value, bool) or int(value) < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value}")
    x = as_float_matrix(flux, "flux")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 spectra to choose representatives, got {n}")
    n_comp = int(min(n_components, n, x.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance components
        scores = PCA(n_components=n_comp, random_state=random_state).fit_transform(x)
    scores = np.ascontiguousarray(scores, np.float64)

    labels = np.empty(n, np.int64)
    groups_of_cluster: list[int] = []
    centres: list[np.ndarray] = []
    if method == "kmeans":
        lab, cen = _kmeans(scores, int(n_clusters), random_state, _n_distinct(x))
        labels[:] = lab
        groups_of_cluster = list(range(cen.shape[0]))
        centres = list(cen)
        used = {"n_clusters": int(cen.shape[0])}
    else:
        n_grp = int(min(n_groups, _n_distinct(x)))
        groups = _birch_groups(scores, n_grp, birch_threshold)
        next_label = 0
        for g in np.unique(groups):
            members = np.flatnonzero(groups == g)
            lab, cen = _kmeans(scores[members], int(n_subclusters), random_state,
                               _n_distinct(x[members]))
            labels[members] = lab + next_label
            groups_of_cluster.extend([int(g)] * cen.shape[0])
            centres.extend(cen)
            next_label += cen.shape[0]
        used = {"n_groups": int(np.unique(groups).size), "n_subclusters": int(n_subclusters)}

    n_cl = len(centres)
    rows = np.empty(n_cl, np.int64)
    size = np.empty(n_cl, np.int64)
    cdist = np.empty(n_cl, np.float64)
    for c in range(n_cl):
        members = np.flatnonzero(labels == c)
        d = np.linalg.norm(scores[members] - centres[c], axis=1)
        best = int(np.argmin(d))  # ties: the lowest row
        rows[c], size[c], cdist[c] = members[best], members.size, d[best]
    params = {"method": method, "n_components": n_comp, "random_state": random_state,
              "n_spectra": int(n), "n_selected": int(n_cl), **used}
    return QuerySelection(rows=rows, cluster=np.arange(n_cl, dtype=np.int64),
                          group=np.asarray(groups_of_cluster, np.int64), cluster_size=size,
                          centre_distance=cdist, labels=labels, params=params)
