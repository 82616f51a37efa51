"""Streamed model fit: statistics computed where the rows are, reduced across shards.

A streamed fit reads every training spectrum, but never in one place: each
shard (a shard store of a :class:`~pyspec.distributed.ShardedStore`, or a row
range of one store) is a task that reduces its own rows to a few small
statistics, the client adds them up and takes the next step. With
``client=None`` the shards run one after another here; with a Dask client
each is a task and the shards' results are tree-reduced on the cluster.

* :class:`~pyspec.models.pil.PILHasher`: each layer's output weights solve
  ``(H^T H + lambda I) beta = H^T X`` on Gram sums over all spectra
  (:meth:`PILHasher._layer_stats`, one pass per layer, or one for every
  layer with ``encoder="random"``); the calibration sample (a few thousand
  rows, drawn over global rows as a single fit draws them) is read here.
  The per-bit median thresholds are exact: up to 2**24 embedding values the
  shards send their embeddings (64 MiB at most) and the midpoint median is
  taken here; beyond, the histogram passes of
  :func:`pyspec.models.base.streaming_median` run per shard and their integer
  counts and extremes are added up, which is exactly what the single-process
  streaming median computes.
* :class:`~pyspec.models.pq.ProductQuantizer`: the training rows are drawn
  as :meth:`ProductQuantizer.fit` draws them, the centroids are seeded as it
  seeds them (k-means++ reads the training rows here, as a single fit holds
  them; ``init="random"`` reads only its K rows), and every Lloyd iteration
  is a map (assignment by the compiled kernels, per-centroid sums and counts
  per shard) and a reduce (new centroids here).

Given the same spectra in the same order, the model equals the one
``model.fit`` learns on the concatenated rows (in the engine's search
space): bit for bit when every part starts on a multiple of the hasher's
``chunk_rows`` (row ranges of one store are cut so; then each block's
float32 products are the same numbers and only float64 sums change order),
else to float tolerance: float32 Gram products of blocks cut elsewhere round
differently, and a layer's solve amplifies that by its condition number
(relative differences of 1e-4 in the weights and 2e-4 of the code bits on
900 test spectra). ``tests/test_distributed_fit.py`` checks both.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from pyspec._validation import as_float_matrix, check_num_threads
from pyspec.distributed.store import row_ranges
from pyspec.distributed.tasks import reduce_per_shard, run_per_shard
from pyspec.models.base import (
    _EXACT_MEDIAN_LIMIT,
    check_chunk_rows,
    check_has_pixels,
    check_n_bits,
    check_random_state,
    fold_blocks,
)
from pyspec.models.pil import PILHasher, add_layer_stats
from pyspec.models.pq import (
    ProductQuantizer,
    farthest_rows,
    kmeans_stats,
    merge_farthest,
    squared_norm,
)
from pyspec.search_checks import to_search_space

__all__ = ["fit_streamed", "STREAMED_MODELS"]

#: Model classes :func:`fit_streamed` fits across shards.
STREAMED_MODELS = ("PILHasher", "ProductQuantizer")

_PQ_BLOCK = 16384  # rows a k-means task reads at once


class _PartRows:
    """Rows ``start:stop`` of the store at ``path`` in the search space, chunk by chunk
    (what :func:`pyspec.models.base.iter_source` reads)."""

    def __init__(self, path: str, start: int, stop: int, space: str | None) -> None:
        from pyspec.store import SpectrumStore

        self.store = SpectrumStore.open(path)
        self.start, self.stop, self.space = start, stop, space

    def __len__(self) -> int:
        return self.stop - self.start

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray, None]]:
        for a in range(self.start, self.stop, chunk_size):
            b = min(a + chunk_size, self.stop)
            flux = to_search_space(np.asarray(self.store.flux[a:b]), self.space)
            yield a - self.start, flux, None

    def rows(self, local: np.ndarray | None) -> Iterator[np.ndarray]:
        """Blocks of the rows ``local`` (store rows; None: every row of the part)."""
        if local is None:
            for _, flux, _ in self.iter_chunks(_PQ_BLOCK):
                yield np.ascontiguousarray(flux, np.float32)
            return
        for a in range(0, local.size, _PQ_BLOCK):
            flux = as_float_matrix(self.store.flux[local[a:a + _PQ_BLOCK]], "store flux")
            yield to_search_space(flux, self.space)


class _SpaceView:
    """A store's rows in the search space, for the calibration sample (``flux[rows]``)."""

    def __init__(self, store: Any, space: str | None) -> None:
        self._store, self._space = store, space
        self.flux = self

    def __getitem__(self, rows: Any) -> np.ndarray:
        return to_search_space(as_float_matrix(self._store.flux[rows], "store flux"), self._space)

    def iter_chunks(self, chunk_size: int) -> Iterator:  # pragma: no cover - never streamed
        raise NotImplementedError


# ---------------------------------------------------------------------------- shard tasks

def _pil_stats(path: str, start: int, stop: int, offset: int, *, model: PILHasher,
               layers: list[int], space: str | None, nt: int | None) -> list:
    return model._layer_stats(_PartRows(path, start, stop, space), layers, nt)


def _pil_embed(path: str, start: int, stop: int, offset: int, *, model: PILHasher,
               space: str | None, nt: int | None) -> np.ndarray:
    src = _PartRows(path, start, stop, space)
    return np.concatenate([model._embed(f, nt) for _, f, _ in src.iter_chunks(model.chunk_rows)])


def _pil_fold(path: str, start: int, stop: int, offset: int, *, model: PILHasher,
              block_fn: Any, combine: Any, space: str | None, nt: int | None) -> Any:
    src = _PartRows(path, start, stop, space)
    return fold_blocks(lambda: model._embed_source(src, nt))(block_fn, combine)


def _pq_stats(path: str, start: int, stop: int, offset: int, local: np.ndarray | None, *,
              centers: np.ndarray, bounds: np.ndarray, space: str | None, nt: int) -> Any:
    parts = [kmeans_stats(x, centers, bounds, nt)
             for x in _PartRows(path, start, stop, space).rows(local)]
    return functools.reduce(operator.add, parts)


def _pq_norm(path: str, start: int, stop: int, offset: int, local: np.ndarray | None, *,
             bounds: np.ndarray, space: str | None) -> float:
    return sum(squared_norm(x, bounds) for x in _PartRows(path, start, stop, space).rows(local))


def _pq_farthest(path: str, start: int, stop: int, offset: int, local: np.ndarray | None, *,
                 centers: np.ndarray, bounds: np.ndarray, want: dict[int, int],
                 space: str | None, nt: int) -> dict:
    ids = np.arange(start, stop) if local is None else local
    out, done = None, 0
    for x in _PartRows(path, start, stop, space).rows(local):
        # tie-break ids: global rows, in the order of the training rows
        part = farthest_rows(x, centers, bounds, want, ids[done:done + len(x)] - start + offset,
                             nt)
        done += len(x)
        out = part if out is None else merge_farthest(out, part, want)
    return out


# ---------------------------------------------------------------------------- drivers

def _fit_pil(model: PILHasher, store: Any, parts: list[tuple], client: Any,
             space: str | None, nt: int | None) -> None:
    """:meth:`BaseHasher.fit` of a PILHasher, every pass over the data per shard."""
    check_n_bits(model.n_bits)
    check_chunk_rows(model.chunk_rows)
    model._check_output()
    rng = check_random_state(model.random_state)
    n, d = len(store), int(store.flux.shape[1])
    if n < 2:
        raise ValueError(f"X: need at least 2 spectra to fit, got n_samples = {n}")
    check_has_pixels(n, d)
    for attr in [a for a in vars(model) if a.endswith("_") and not a.startswith("_")]:
        delattr(model, attr)
    widths = model._fit_widths(n)
    S = model._calibration_sample(_SpaceView(store, space), n, d, rng)

    def gram_sums(layers: list[int]) -> list:
        return reduce_per_shard(client, _pil_stats, parts, add_layer_stats, model=model,
                                layers=layers, space=space, nt=nt)

    model._fit_layers(S, widths, rng, nt, gram_sums)
    model.n_features_in_ = d
    if n * int(model.n_bits) <= _EXACT_MEDIAN_LIMIT:
        embedded = run_per_shard(client, _pil_embed, parts, model=model, space=space, nt=nt)
        model.thresholds_ = model._thresholds_of(n, lambda: iter(embedded))
        return

    def fold(block_fn: Any, combine: Any) -> Any:
        return reduce_per_shard(client, _pil_fold, parts, combine, model=model,
                                block_fn=block_fn, combine=combine, space=space, nt=nt)

    # the streaming median's first histogram range comes from the first chunk, as in fit
    first = model._embed(_SpaceView(store, space)[0:model.chunk_rows], nt)
    model.thresholds_ = model._thresholds_of(n, lambda: iter(()), first, fold)


def _fit_pq(pq: ProductQuantizer, store: Any, parts: list[tuple], client: Any,
            space: str | None, nt: int) -> None:
    """:meth:`ProductQuantizer.fit`, each Lloyd iteration's statistics per shard."""
    pq._check_output()
    n, D = len(store), int(store.flux.shape[1])
    bounds, rng, rows = pq._kmeans_plan(n, D)
    view = _SpaceView(store, space)
    init_rows = pq._init_rows(n if rows is None else rows.size, rng)
    if init_rows is None:  # k-means++ reads every training row, as a single fit does
        X = np.concatenate([view[rows[a:a + _PQ_BLOCK]] if rows is not None
                            else view[a:min(a + _PQ_BLOCK, n)]
                            for a in range(0, n if rows is None else rows.size, _PQ_BLOCK)])
        centers = pq._kmeans_init(np.ascontiguousarray(X), bounds, rng, nt)
        del X
    else:
        centers = view[init_rows if rows is None else rows[init_rows]]
    tasks = []
    for path, start, stop, offset in parts:
        if rows is None:
            tasks.append((path, start, stop, offset, None))
            continue
        mine = rows[(rows >= offset) & (rows < offset + stop - start)]
        if mine.size:
            tasks.append((path, start, stop, offset, mine - offset + start))

    def stats(c: np.ndarray) -> Any:
        return reduce_per_shard(client, _pq_stats, tasks, operator.add, centers=c, bounds=bounds,
                                space=space, nt=nt)

    def farthest(c: np.ndarray, want: dict[int, int]) -> dict:
        return reduce_per_shard(client, _pq_farthest, tasks,
                                functools.partial(merge_farthest, want=want), centers=c,
                                bounds=bounds, want=want, space=space, nt=nt)

    xnorm_total = reduce_per_shard(client, _pq_norm, tasks, operator.add, bounds=bounds,
                                   space=space)
    pq._lloyd(centers, bounds, xnorm_total, stats, farthest)


def fit_streamed(model: Any, store: Any, *, client: Any = None, n_parts: int | None = None,
                 space: str | None = None, num_threads: int | None = None) -> Any:
    """Fit ``model`` on every row of ``store``, the passes over the rows run per shard.

    Parameters
    ----------
    model : PILHasher or ProductQuantizer
        Unfitted (its parameters are used; fitted state is replaced).
    store : SpectrumStore or ShardedStore
        A sharded store's shard stores are the parts; one store is cut into
        ``n_parts`` equal row ranges (default 2).
    client : distributed.Client or None
        Where the shard tasks run (None: one after another, here).
    space : "unit" or None
        The engine's search space (:func:`pyspec.search_checks.search_space`):
        rows are fitted as the engine compares them.
    num_threads : int or None
        Threads of the compiled kernels in each task.

    Returns
    -------
    The fitted model: equal (to float64 summation order) to
    ``model.fit(to_search_space(store.flux[:], space))``.
    """
    name = type(model).__name__
    if name not in STREAMED_MODELS:
        raise ValueError(f"a streamed fit takes a {' or a '.join(STREAMED_MODELS)}, got {name}; "
                         "fit it on a sample instead")
    # parts of one store start on the chunks a single fit reads (chunk_rows): each
    # chunk's float32 products are then the same numbers, and so is the model
    parts = row_ranges(store, n_parts or 2, getattr(model, "chunk_rows", 1))
    if isinstance(model, PILHasher):
        _fit_pil(model, store, parts, client, space, check_num_threads(num_threads) or None)
    else:
        _fit_pq(model, store, parts, client, space, check_num_threads(num_threads))
    return model
