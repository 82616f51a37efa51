"""Scale-out: sharded ingest, model fit, build and search, on a Dask cluster or here.

Every job here takes ``client=``: a ``distributed.Client``, a scheduler
address (``"tcp://host:8786"``) or ``None``. With ``None`` the shards are
processed one after another in this process and nothing needs Dask; with a
client each shard is one task on the cluster. Workers read and write shard
directories by path, so on a real cluster those paths must be on a file
system every worker sees (NFS, Lustre, ...).

Layout on disk:

* a sharded store (:func:`ingest_sharded`): ``shard-NNNN/`` spectrum stores,
  ``shard-NNNN.lst`` their input files and ``sharded-store.json`` listing
  them (:class:`ShardedStore`);
* a sharded engine (:func:`build_sharded`): ``shard-NNNN/`` engine
  directories and ``sharded-engine.json`` (:class:`ShardedEngine`, which
  :meth:`pyspec.Engine.open` returns for such a directory).

Global ids are the concatenation of the shards in manifest order, and
per-shard top-k lists are merged by (distance, global id): a sharded engine
answers exactly (ids and distances) what one engine over the concatenated
spectra answers, re-ranked ones included (one principal basis for all
shards), and so does :func:`pyspec.knn_graph.knn_graph` over it. A model is
fitted on a sample in the client or streamed across the shards
(:func:`fit_model`, :func:`fit_streamed`: statistics per shard, reduced).
"""

import importlib
from typing import Any

# imported on first use, so that `pyspec --help` and the CLI flags stay cheap
_WHERE = {"build_sharded": "build", "fit_model": "build", "fit_streamed": "fit",
          "ShardedEngine": "engine",
          "ShardedIngestSummary": "ingest", "ingest_sharded": "ingest",
          "merge_ranges": "merge", "merge_topk": "merge",
          "ShardedStore": "store", "open_any_store": "store", "connect": "tasks"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pyspec.distributed' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pyspec.distributed.{_WHERE[name]}"), name)
