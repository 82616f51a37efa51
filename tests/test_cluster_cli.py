"""The scale-out flags of the CLI: ``--scheduler ADDRESS`` and ``--dask`` on ``ingest``,
``build``, ``search`` and ``queries`` change where the shards run, never the results.

Each command runs once here (in-process, or by the flags' local cluster) and
once on a LocalCluster of 2 workers on 127.0.0.1 (in-process workers over tcp;
``--dask`` starts its own worker processes).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from extras import require_test_extra

from pyspec.catalogue import read_catalogue
from pyspec.cli import main
from pyspec.data import sample_files
from pyspec.distributed.store import ShardedStore
from pyspec.engine import Engine

distributed = require_test_extra("distributed")


@pytest.fixture(scope="module")
def address():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
    src = tmp_path_factory.mktemp("fits")
    for f in sample_files()[:24]:
        shutil.copy(f, src / f.name)
    return src


def _run(capsys, *argv) -> None:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr()


def _contents(path):
    """(file names, flux) of a sharded store, ordered by file."""
    store = ShardedStore.open(path)
    files = np.asarray(store.meta["file"], str)
    order = np.argsort(files, kind="stable")
    return files[order], np.asarray(store.flux[order])


def test_ingest_build_search_queries_on_a_scheduler_equal_local(address, fits_dir, tmp_path,
                                                                capsys) -> None:
    sched = ["--scheduler", address]
    _run(capsys, "ingest", fits_dir, "--out", tmp_path / "s1", "--shards", "3", "--quiet")
    _run(capsys, "ingest", fits_dir, "--out", tmp_path / "s2", "--shards", "3", "--quiet",
         *sched)
    a, b = _contents(tmp_path / "s1"), _contents(tmp_path / "s2")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[0]) == len(set(a[0])) > 0

    build = ["--model", "lsh", "--n-bits", "64", "--quiet"]
    _run(capsys, "build", tmp_path / "s1", "--out", tmp_path / "e1", *build)
    _run(capsys, "build", tmp_path / "s1", "--out", tmp_path / "e2", *build, *sched)
    e1, e2 = Engine.open(tmp_path / "e1"), Engine.open(tmp_path / "e2")
    assert len(e1.shards) == len(e2.shards) == 3
    q = np.asarray(e1.store.flux[np.arange(0, len(e1), 7)])
    r1, r2 = e1.search_prepared(q, 5), e2.search_prepared(q, 5)
    np.testing.assert_array_equal(r1.ids, r2.ids)
    np.testing.assert_array_equal(r1.distances, r2.distances)

    query = ["--fit-sample", "12", "--groups", "2", "--subclusters", "2", "--quiet"]
    _run(capsys, "queries", tmp_path / "s1", "-o", tmp_path / "q1.ecsv", *query)
    _run(capsys, "queries", tmp_path / "s1", "-o", tmp_path / "q2.ecsv", *query, *sched)
    q1, q2 = read_catalogue(tmp_path / "q1.ecsv"), read_catalogue(tmp_path / "q2.ecsv")
    np.testing.assert_array_equal(q1["row"], q2["row"])

    search = ["--queries", tmp_path / "q1.ecsv", "-k", "4", "--quiet"]
    _run(capsys, "search", "--engine", tmp_path / "e1", "-o", tmp_path / "c1.ecsv", *search)
    _run(capsys, "search", "--engine", tmp_path / "e2", "-o", tmp_path / "c2.ecsv", *search,
         *sched)
    c1, c2 = read_catalogue(tmp_path / "c1.ecsv"), read_catalogue(tmp_path / "c2.ecsv")
    for c in ("row", "n_queries", "best_distance", "best_query"):
        np.testing.assert_array_equal(c1[c], c2[c])


def test_dask_flag_runs_a_local_cluster(fits_dir, tmp_path, capsys) -> None:
    # --dask: the command starts (and stops) its own cluster of worker processes
    _run(capsys, "ingest", fits_dir, "--out", tmp_path / "s1", "--shards", "2", "--quiet")
    _run(capsys, "ingest", fits_dir, "--out", tmp_path / "s2", "--shards", "2", "--quiet",
         "--dask", "--dask-workers", "2")
    a, b = _contents(tmp_path / "s1"), _contents(tmp_path / "s2")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert main(["build", str(tmp_path / "s1"), "--out", str(tmp_path / "e"), "--dask",
                 "--dask-workers", "0"]) != 0
    assert "--dask-workers" in capsys.readouterr().err
