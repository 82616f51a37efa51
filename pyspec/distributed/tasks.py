"""Running one task per shard: on a Dask cluster when a client is given, here otherwise."""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def connect(client: Any = None) -> Any:
    """``None`` -> ``None`` (run here); a scheduler address -> a new Client; a Client -> itself.

    Raises
    ------
    ImportError
        An address was given but ``distributed`` is not installed
        (``pip install "pyspec-search[dask]"``).
    """
    if client is None:
        return None
    if isinstance(client, str):
        try:
            from distributed import Client
        except ModuleNotFoundError:
            raise ImportError("a Dask scheduler needs the 'dask' extra: "
                              'pip install "pyspec-search[dask]"') from None
        return Client(client)
    if not hasattr(client, "submit") or not hasattr(client, "gather"):
        raise TypeError(f"client must be a distributed.Client, a scheduler address or None, "
                        f"got {type(client).__name__}")
    return client


def n_workers(client: Any) -> int:
    """Workers of the cluster (1 without a client)."""
    if client is None:
        return 1
    return max(1, len(client.scheduler_info().get("workers", {})))


def run_per_shard(client: Any, fn: Callable[..., Any], shard_args: Sequence[tuple],
                  **shared: Any) -> list[Any]:
    """``[fn(*args, **shared) for args in shard_args]``, as cluster tasks when ``client`` is set.

    ``shared`` values (a model, a query block) go to the cluster once
    (``scatter(broadcast=True)``) and every task gets the same copy, instead
    of one copy pickled into each task.
    """
    if client is None:
        return [fn(*args, **shared) for args in shard_args]
    shared_futures = {k: client.scatter(v, broadcast=True, hash=False) for k, v in shared.items()}
    futures = [client.submit(fn, *args, **shared_futures, pure=False) for args in shard_args]
    try:
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()


def reduce_per_shard(client: Any, fn: Callable[..., Any], shard_args: Sequence[tuple],
                     merge: Callable[[Any, Any], Any], **shared: Any) -> Any:
    """``functools.reduce(merge, [fn(*args, **shared) for args in shard_args])``.

    With a client the shard results never travel to the client one by one:
    ``merge`` runs as cluster tasks over pairs of neighbouring results, then
    pairs of those (a tree of depth log2(shards)), and only the total comes
    back. ``merge`` must be associative (sums, minima, merged top lists);
    ``shared`` values go to the cluster once, as in :func:`run_per_shard`.
    """
    if not shard_args:
        raise ValueError("nothing to reduce: no shards")
    if client is None:
        return functools.reduce(merge, (fn(*args, **shared) for args in shard_args))
    # a one-element list: scatter sends a list's items apart, and the value must stay whole
    shared_futures = {k: client.scatter([v], broadcast=True, hash=False)[0]
                      for k, v in shared.items()}
    level = [client.submit(fn, *args, **shared_futures, pure=False) for args in shard_args]
    made = list(level)
    while len(level) > 1:
        pairs = [client.submit(merge, level[i], level[i + 1], pure=False)
                 for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(pairs) * 2:]
        made += pairs
    try:
        return level[0].result()
    finally:
        for f in made + list(shared_futures.values()):
            f.release()


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scheduler ADDRESS`` / ``--dask`` / ``--dask-workers N`` on a subcommand."""
    group = parser.add_argument_group("scale-out (needs pip install 'pyspec-search[dask]')")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run the shards on this Dask scheduler (e.g. tcp://head:8786); "
                            "paths must be on a file system every worker sees")
    where.add_argument("--dask", action="store_true",
                       help="run the shards on a Dask cluster of local worker processes")
    group.add_argument("--dask-workers", type=int, default=None, metavar="N",
                       help="workers of the --dask local cluster (default: one per core)")


@contextlib.contextmanager
def cluster_client(args: argparse.Namespace) -> Iterator[Any]:
    """The Client the flags ask for, or None (no flag: nothing changes); closed on exit.

    ``--scheduler`` connects to a running cluster (left running); ``--dask``
    starts a cluster of local worker processes on 127.0.0.1 for the command.
    """
    workers = getattr(args, "dask_workers", None)
    if workers is not None and workers < 1:
        raise ValueError(f"--dask-workers must be >= 1, got {workers}")
    if not uses_cluster(args):
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ImportError("--scheduler and --dask need the 'dask' extra: "
                          'pip install "pyspec-search[dask]"') from None
    if getattr(args, "scheduler", None):
        with Client(args.scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      protocol="tcp://", host="127.0.0.1",
                      # a free port: the default (8787) may be taken by another cluster
                      dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        yield client


def uses_cluster(args: argparse.Namespace) -> bool:
    """True when any of the scale-out flags was given."""
    return bool(getattr(args, "scheduler", None) or getattr(args, "dask", False)
                or getattr(args, "dask_workers", None) is not None)
