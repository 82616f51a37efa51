"""Bounded-memory ``queries`` and the scale-out CLI flags (--shards, --scheduler).

The streamed selection fitted on all spectra is the in-memory selection;
fitted on a sample it still labels every spectrum and picks each cluster's
nearest member, whatever the block size and wherever the blocks run. The
CLI test talks to an in-process LocalCluster over tcp on 127.0.0.1.
"""

from __future__ import annotations

import numpy as np
import pytest
from extras import require_test_extra

from pyspec.cli import main
from pyspec.commands._workflow import select_rows
from pyspec.distributed.store import select_store_rows, store_meta_rows
from pyspec.queries import StoreRowReader, representative_queries, representative_queries_streamed
from pyspec.store import SpectrumStore

N_PIX = 140


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # KMeans/PCA on a few hundred spectra: thread start-up costs more than the work
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(11)
    n = 400
    centres = rng.normal(scale=3.0, size=(10, N_PIX))
    flux = centres[rng.integers(0, 10, n)] + rng.normal(size=(n, N_PIX))
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    meta = [{"id": f"q{i}", "class": ["STAR", "GALAXY"][i % 2], "subclass": f"M{i % 4}",
             "ra": float(i)} for i in range(n)]
    path = tmp_path_factory.mktemp("q") / "store"
    with SpectrumStore.create(path, "halpha-140", {"grid": "halpha-140"},
                              rows_per_part=128) as w:  # several metadata parts
        for a in range(0, n, 100):
            w.append(flux[a:a + 100].astype(np.float32), np.ones((min(100, n - a), N_PIX)),
                     meta[a:a + 100])
    return SpectrumStore.open(path)


def test_store_readers_equal_the_whole_table(store) -> None:
    rows = select_store_rows(store, lambda t: select_rows(t, None, ["M1", "M2"]))
    np.testing.assert_array_equal(rows, select_rows(store.meta, None, ["M1", "M2"]))
    assert select_store_rows(store, lambda t: select_rows(t, ["star"], None)).size == 200
    np.testing.assert_array_equal(select_store_rows(store, lambda t: np.arange(len(t))),
                                  np.arange(len(store)))
    pick = np.array([390, 3, 129, 128, 3])
    t = store_meta_rows(store, pick)
    for c in store.meta.colnames:
        np.testing.assert_array_equal(t[c], store.meta[c][pick])
    assert t["ra"].unit == "deg"
    reader = StoreRowReader(store, rows)
    idx = np.array([0, 1, 2, 50, 51, rows.size - 1])
    np.testing.assert_array_equal(reader(idx), store.flux[rows[idx]])


def test_streamed_on_all_spectra_is_the_in_memory_selection(store) -> None:
    flux = np.asarray(store.flux)
    a = representative_queries(flux, n_groups=4, n_subclusters=2, random_state=2)
    b = representative_queries_streamed(StoreRowReader(store, np.arange(len(store))), len(store),
                                        fit_sample=len(store), chunk_size=64, n_groups=4,
                                        n_subclusters=2, random_state=2)
    for name in ("rows", "labels", "cluster_size", "group", "centre_distance"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def _same_selection(a, b) -> None:
    for name in ("rows", "labels", "cluster_size"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # PCA scores of a block are a BLAS product: the last float32 bits depend on the block size
    np.testing.assert_allclose(a.centre_distance, b.centre_distance, rtol=1e-6)


def _sampled(store, chunk_size, assign=None):
    return representative_queries_streamed(
        StoreRowReader(store, np.arange(len(store))), len(store), fit_sample=120,
        chunk_size=chunk_size, n_groups=3, n_subclusters=2, random_state=0, assign=assign)


def test_sampled_fit_assigns_every_spectrum(store) -> None:
    sel = _sampled(store, 97)
    n_cl = sel.rows.size
    assert sel.params["fit_sample"] == 120
    assert sel.labels.shape == (len(store),)
    np.testing.assert_array_equal(np.bincount(sel.labels, minlength=n_cl), sel.cluster_size)
    np.testing.assert_array_equal(sel.labels[sel.rows], sel.cluster)
    assert np.unique(sel.rows).size == n_cl
    other = _sampled(store, 1000)  # one block instead of five: the same answer
    _same_selection(sel, other)


@pytest.fixture(scope="module")
def address():
    distributed = require_test_extra("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_queries_assigned_on_a_cluster_equal_local(store, address) -> None:
    from distributed import Client

    from pyspec.distributed.tasks import run_per_shard
    from pyspec.queries import assign_block

    reader = StoreRowReader(store, np.arange(len(store)))
    with Client(address) as client:
        sel = _sampled(store, 97, assign=lambda c, blocks: run_per_shard(
            client, assign_block, [(b,) for b in blocks], clustering=c, read_rows=reader))
    _same_selection(sel, _sampled(store, 97))


def test_cli_shards_and_scheduler_change_nothing_in_the_results(store, address, tmp_path,
                                                                 capsys) -> None:
    from pyspec.catalogue import read_catalogue

    def run(*argv):
        assert main([str(a) for a in argv]) == 0, capsys.readouterr()

    common = ["--model", "lsh", "--n-bits", "64", "--quiet"]
    run("build", store.path, "--out", tmp_path / "one", *common)
    run("build", store.path, "--out", tmp_path / "many", "--shards", "3", *common)
    run("queries", store.path, "--class", "STAR", "--groups", "3", "--subclusters", "2",
        "--fit-sample", "90", "-o", tmp_path / "q.ecsv", "--quiet")
    run("queries", store.path, "--class", "STAR", "--groups", "3", "--subclusters", "2",
        "--fit-sample", "90", "-o", tmp_path / "qd.ecsv", "--quiet", "--scheduler", address)
    q, qd = read_catalogue(tmp_path / "q.ecsv"), read_catalogue(tmp_path / "qd.ecsv")
    np.testing.assert_array_equal(q["row"], qd["row"])
    np.testing.assert_array_equal(q["id"], store.meta["id"][q["row"]])
    run("search", "--engine", tmp_path / "one", "--queries", tmp_path / "q.ecsv", "-k", "9",
        "-o", tmp_path / "c1.ecsv", "--quiet")
    run("search", "--engine", tmp_path / "many", "--queries", tmp_path / "q.ecsv", "-k", "9",
        "-o", tmp_path / "c2.ecsv", "--quiet", "--scheduler", address)
    c1, c2 = read_catalogue(tmp_path / "c1.ecsv"), read_catalogue(tmp_path / "c2.ecsv")
    for c in ("row", "id", "n_queries", "best_distance", "best_query"):
        np.testing.assert_array_equal(c1[c], c2[c])
    assert main(["search", "--engine", str(tmp_path / "one"), "--queries",
                 str(tmp_path / "q.ecsv"), "-k", "3", "-o", str(tmp_path / "x.ecsv"),
                 "--scheduler", address]) != 0
    assert "--scheduler" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path), "--out", str(tmp_path / "s"), "--shards", "2",
                 "--workers", "2"]) != 0
    assert "--dask-workers" in capsys.readouterr().err


def test_queries_on_a_sharded_store_equal_the_single_store(store, tmp_path, capsys) -> None:
    from pyspec.catalogue import read_catalogue
    from pyspec.distributed.store import ShardedStore, write_sharded_manifest

    meta = store.meta
    dirs = []
    for i, (a, b) in enumerate([(0, 150), (150, 400)]):  # the same rows, cut in two stores
        d = tmp_path / "sh" / f"shard-{i:04d}"
        rows = [{k: meta[k][r].item() for k in ("id", "class", "subclass", "ra")}
                for r in range(a, b)]
        with SpectrumStore.create(d, store.grid, store.preprocessing, rows_per_part=64) as w:
            w.append(store.flux[a:b], store.ivar[a:b], rows)
        dirs.append(d)
    write_sharded_manifest(tmp_path / "sh", dirs)
    assert len(ShardedStore.open(tmp_path / "sh")) == len(store)
    for src, out in ((store.path, "q1.ecsv"), (tmp_path / "sh", "q2.ecsv")):
        assert main(["queries", str(src), "--class", "GALAXY", "--groups", "3",
                     "--subclusters", "2", "--fit-sample", "100", "--quiet",
                     "-o", str(tmp_path / out)]) == 0, capsys.readouterr()
    q1, q2 = read_catalogue(tmp_path / "q1.ecsv"), read_catalogue(tmp_path / "q2.ecsv")
    for c in ("row", "id", "cluster_size"):
        np.testing.assert_array_equal(q1[c], q2[c])
