"""Sharded ingest (pyspec.distributed.ingest_sharded): accounting, resume, a worker killed.

The killed-worker test runs a LocalCluster of 2 worker processes on
127.0.0.1; one worker exits (``os._exit``, as under the OOM killer) in the
middle of its shard, its nanny starts a fresh one, the scheduler runs the
task again and the shard resumes from its last committed part.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from extras import require_test_extra
from io_builders import write_bad_inputs, write_lamost_image

from pyspec.data import sample_files
from pyspec.distributed import ShardedStore, build_sharded, ingest_sharded, open_any_store
from pyspec.engine import Engine
from pyspec.errors import IndexFormatError
from pyspec.ingest import ingest
from pyspec.models.pil import PILHasher


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """40 real sample files and the six bad inputs."""
    rng = np.random.default_rng(3)
    src = tmp_path_factory.mktemp("in")
    (src / "real").mkdir()
    for f in sample_files()[:40]:
        shutil.copy(f, src / "real" / f.name)
    good = src / "good.fits"
    write_lamost_image(good, "C", rng)
    write_bad_inputs(src / "bad", good, rng)
    good.unlink()
    return src


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "store"
    summary = ingest([inputs], out)
    return summary, open_any_store(out)


def _by_file(store):
    meta = store.meta
    order = np.lexsort((np.asarray(meta["id"], str), np.asarray(meta["file"], str)))
    return meta[order], np.asarray(store.flux[order])


def _assert_same_contents(sharded, reference) -> None:
    """The same spectra (metadata and flux) and the same rejects, in any order."""
    a_meta, a_flux = _by_file(sharded)
    b_meta, b_flux = _by_file(reference)
    for col in ("file", "id", "class", "ra"):
        np.testing.assert_array_equal(a_meta[col], b_meta[col])
    np.testing.assert_array_equal(a_flux, b_flux)
    assert sorted(sharded.rejects["file"]) == sorted(reference.rejects["file"])


def test_sharded_ingest_equals_one_ingest(inputs, reference, tmp_path) -> None:
    ref_summary, ref = reference
    summary = ingest_sharded([inputs], tmp_path / "sh", n_shards=3)
    store = ShardedStore.open(tmp_path / "sh")
    assert len(store.shards) == 3
    assert summary.seen == summary.accepted + summary.rejected == ref_summary.seen
    assert summary.accepted == len(store) == len(ref)
    assert summary.rejected == summary.n_rejected_total == len(store.rejects) == len(ref.rejects)
    _assert_same_contents(store, ref)
    # a second run resumes every shard: all inputs skipped, nothing added
    again = ingest_sharded([inputs], tmp_path / "sh", n_shards=5)
    assert again.seen == 0
    assert again.skipped == ref_summary.files
    assert len(ShardedStore.open(tmp_path / "sh")) == len(ref)
    with pytest.raises(ValueError, match="other input files"):
        ingest_sharded([inputs / "real"], tmp_path / "sh")


def test_engine_over_shard_stores_equals_one_engine(inputs, tmp_path) -> None:
    ingest_sharded([inputs / "real"], tmp_path / "sh", n_shards=2)
    store = ShardedStore.open(tmp_path / "sh")
    hasher = PILHasher(n_bits=32, hidden=(24,), random_state=0).fit(store)  # streams the shards
    one = Engine.build(store, hasher, out=tmp_path / "one")
    many = build_sharded(store, hasher, tmp_path / "many")
    assert [len(s) for s in many.shards] == [len(s) for s in store.shards]
    q = np.asarray(store.flux[np.array([0, 5, len(store) - 1])])
    a, b = many.search_prepared(q, 9), one.search_prepared(q, 9)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)
    t = many.query_batch(q, k=3, rerank=6)
    np.testing.assert_array_equal(t["row"][t["rank"] == 1], [0, 5, len(store) - 1])


def test_an_interrupted_sharded_store_does_not_open(inputs, tmp_path) -> None:
    ingest_sharded([inputs / "real"], tmp_path / "sh", n_shards=2)
    (tmp_path / "sh" / "sharded-store.json").unlink()  # as while a resumed run is under way
    with pytest.raises(IndexFormatError, match="interrupted"):
        open_any_store(tmp_path / "sh")


def _die_mid_shard(marker: str, after: int) -> None:
    """Make this worker process exit in its ``after+1``-th file task (one worker, once)."""
    import pyspec.ingest as ingest_module

    real = ingest_module.process_files
    calls = [0]

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # another worker already died
            else:
                os._exit(1)
        return real(*args, **kwargs)

    ingest_module.process_files = dying


def test_worker_killed_mid_ingest_resumes_with_nothing_lost_or_doubled(inputs, reference,
                                                                        tmp_path) -> None:
    distributed = require_test_extra("distributed")
    _, ref = reference
    marker = str(tmp_path / "died")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(_die_mid_shard, marker, 2)
        summary = ingest_sharded([inputs], tmp_path / "sh", n_shards=2, client=client,
                                 chunk_size=2, files_per_task=2)
    assert os.path.exists(marker)  # a worker did die
    store = ShardedStore.open(tmp_path / "sh")
    files = list(store.meta["file"])
    assert len(files) == len(set(files)) == len(ref)  # nothing doubled, nothing lost
    assert summary.n_spectra_total + summary.n_rejected_total == len(ref) + len(ref.rejects)
    _assert_same_contents(store, ref)


def test_cli_sharded_ingest_then_build(inputs, reference, tmp_path, capsys) -> None:
    from pyspec.cli import main

    _, ref = reference
    assert main(["ingest", str(inputs), "--out", str(tmp_path / "st"), "--shards", "3",
                 "--quiet"]) == 0
    out = capsys.readouterr()
    assert f"{len(ref)} accepted + {len(ref.rejects)} rejected" in out.out
    assert "truncated" in out.err  # the merged rejects are listed
    assert main(["build", str(tmp_path / "st"), "--out", str(tmp_path / "e"), "--model", "lsh",
                 "--n-bits", "64", "--quiet"]) == 0
    eng = Engine.open(tmp_path / "e")
    assert len(eng.shards) == 3
    assert len(eng) == len(ref)


def test_copies_in_different_partitions_are_stored_once(tmp_path) -> None:
    """Byte-identical files are kept in one shard, so its ingest drops the copies."""
    src = tmp_path / "in"
    src.mkdir()
    files = sample_files()[:6]
    for f in files:
        shutil.copy(f, src / f.name)
    for i in range(3):  # copies of the first file sort after every original
        shutil.copy(files[0], src / f"zz-copy{i}-{files[0].name}")
    ref = ingest([src], tmp_path / "one")
    summary = ingest_sharded([src], tmp_path / "sh", n_shards=3)
    store = ShardedStore.open(tmp_path / "sh")
    assert ref.duplicates == 3
    assert summary.accepted == len(store) == ref.accepted
    assert sorted(store.rejects["file"]) == sorted(open_any_store(tmp_path / "one").rejects["file"])
    assert sum(1 for r in store.rejects["reason"] if "duplicate" in str(r)) == 3
