"""Representative queries: PCA + BIRCH + KMeans selection properties."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from sklearn.decomposition import PCA

from pyspec.queries import PRESETS, representative_queries


@pytest.fixture
def blobs(rng):
    centres = rng.normal(scale=4.0, size=(12, 120))
    labels = np.repeat(np.arange(12), 60)
    flux = (centres[labels] + rng.normal(size=(labels.size, 120))).astype(np.float32)
    return flux, labels


def _check_selection(sel, flux, n_components=50):
    n = flux.shape[0]
    assert sel.labels.shape == (n,)
    n_cl = sel.rows.size
    assert set(np.unique(sel.labels)) == set(range(n_cl))  # every spectrum in one cluster
    assert np.unique(sel.rows).size == n_cl  # distinct representatives
    np.testing.assert_array_equal(sel.labels[sel.rows], sel.cluster)  # each in its cluster
    np.testing.assert_array_equal(np.bincount(sel.labels, minlength=n_cl), sel.cluster_size)
    # the representative is the member nearest the cluster mean in PCA space
    # (KMeans centres are the member means at convergence)
    scores = PCA(n_components=min(n_components, *flux.shape), random_state=0).fit_transform(flux)
    for c in range(n_cl):
        members = np.flatnonzero(sel.labels == c)
        d = np.linalg.norm(scores[members] - scores[members].mean(0), axis=1)
        assert members[np.argmin(d)] == sel.rows[c]
        assert sel.centre_distance[c] == pytest.approx(d.min(), rel=1e-6, abs=1e-9)


def test_birch_kmeans(blobs) -> None:
    flux, truth = blobs
    sel = representative_queries(flux, n_groups=12, n_subclusters=4, random_state=0)
    assert sel.rows.size == 48
    assert sel.params["n_groups"] == 12
    _check_selection(sel, flux)
    # sub-clusters stay inside one BIRCH group; with well separated blobs a
    # BIRCH group is one true blob, so each group's queries share a true label
    for g in np.unique(sel.group):
        clusters = sel.cluster[sel.group == g]
        assert 1 <= clusters.size <= 4
        members = np.isin(sel.labels, clusters)
        assert np.unique(truth[members]).size == 1
    # and every true blob is covered by the query set
    assert set(truth[sel.rows]) == set(range(12))


def test_kmeans_method_and_presets(blobs) -> None:
    flux, _ = blobs
    sel = representative_queries(flux, **PRESETS["giant"], random_state=0)
    assert sel.rows.size == 80 and sel.params["n_clusters"] == 80
    _check_selection(sel, flux)
    np.testing.assert_array_equal(sel.group, sel.cluster)
    assert PRESETS["dwarf"] == {"method": "birch-kmeans", "n_groups": 50, "n_subclusters": 20}


def test_deterministic_and_table(blobs) -> None:
    flux, _ = blobs
    a = representative_queries(flux, n_groups=5, n_subclusters=3, random_state=3)
    b = representative_queries(flux, n_groups=5, n_subclusters=3, random_state=3)
    np.testing.assert_array_equal(a.rows, b.rows)
    meta = Table({"id": np.array([f"s{i}" for i in range(len(flux))])})
    table = a.to_table(meta)
    assert list(table["id"]) == [f"s{r}" for r in a.rows]
    assert table.meta["queries"]["method"] == "birch-kmeans"


def test_small_input_is_clipped(rng) -> None:
    flux = rng.normal(size=(30, 40)).astype(np.float32)
    sel = representative_queries(flux, n_groups=50, n_subclusters=20)
    assert sel.rows.size <= 30
    _check_selection(sel, flux)
    dup = np.repeat(flux[:3], 5, axis=0)  # only 3 distinct spectra
    sel = representative_queries(dup, method="kmeans", n_clusters=10)
    assert sel.rows.size == 3


def test_bad_input(rng) -> None:
    flux = rng.normal(size=(20, 10)).astype(np.float32)
    with pytest.raises(ValueError, match="method"):
        representative_queries(flux, method="dbscan")
    with pytest.raises(ValueError, match="n_groups"):
        representative_queries(flux, n_groups=0)
    with pytest.raises(ValueError, match="at least 2"):
        representative_queries(flux[:1])
    bad = flux.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        representative_queries(bad)


def test_auto_birch_threshold_caps_the_sub_clusters(monkeypatch):
    # noise without structure: at a tenth of the spread nearly every point is its own
    # sub-cluster, and the global (quadratic) step would take them all
    import pyspec.queries as q

    scores = np.random.default_rng(3).normal(size=(800, 6))
    birch, groups = q._birch_groups(scores, 4, "auto")
    assert len(birch.subcluster_centers_) > 100
    monkeypatch.setattr(q, "_MAX_SUBCLUSTERS", 100)
    birch, groups = q._birch_groups(scores, 4, "auto")
    assert 4 <= len(birch.subcluster_centers_) <= 100
    assert np.unique(groups).size == 4
    # an explicit threshold is taken as given
    birch, _ = q._birch_groups(scores, 4, 0.1)
    assert len(birch.subcluster_centers_) > 100
