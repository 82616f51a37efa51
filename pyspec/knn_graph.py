"""k-nearest-neighbour graphs over spectra, for label propagation and spreading.

:func:`knn_graph` returns a symmetric ``scipy.sparse.csr_matrix`` whose row
``i`` holds the ``k`` nearest spectra of spectrum ``i`` (and, after the
symmetrisation, every spectrum that has ``i`` among its ``k`` nearest). It
uses pyspec's own engines:

* ``method="exact"``: blocked brute force, squared L2 from one float32 GEMM per
  block of rows against the rows after it (the distance matrix is
  symmetric: each tile feeds the top-k of its rows and of its columns);
  O(n^2 d / 2) time, memory of one block. The right choice up to some
  10^4-10^5 spectra.
* ``method="ivf"``: an inverted file (:mod:`pyspec.knn_ivf`): k-means cells
  in the space of 32 principal components, each cell compared exactly (one
  GEMM per pair of cells) with the ``n_probe`` cells its members lie
  nearest to; ~``n * n_probe * list_size * d`` work, linear in ``n``, with a
  graph recall of ~0.99 of the exact one (bench/RESULTS.md). The default
  above 20 000 spectra.
* ``method="hamming"``: a :class:`~pyspec.models.pil.PILHasher` is fitted on
  a sample, every spectrum is hashed to 256 bits, the compiled Hamming scan
  (:class:`~pyspec.index.hamming.HammingIndex`) returns ``n_candidates``
  candidates per spectrum, and those are re-ranked by exact L2 on the
  spectra. The popcount scan is ~50x cheaper per pair than the float
  distance, and memory is the codes (32 bytes a spectrum) plus one block.
* ``method="pq"``: the same with a :class:`~pyspec.models.pq.ProductQuantizer`
  and the ADC scan of :class:`~pyspec.index.pq.PQIndex` for the candidates.

``source`` may also be an :class:`~pyspec.Engine`, single or sharded
(:func:`engine_neighbours`): every stored spectrum is then a query of the
engine's own two-stage search (its codes select candidates, exact squared L2
in its re-rank space orders them). A sharded engine runs each block of
queries against every shard (as Dask tasks when it has a client) and merges
the shards' lists exactly by (distance, global row), so its graph is the
graph of one engine over the same spectra, edge for edge.

``source`` may be a float matrix, a :class:`~pyspec.SpectrumStore` (or its
directory): stores are read through their memory map block by block, and
when the neighbour table itself would be large (``n * k`` above
``memmap_threshold``) it is written to a temporary memory-mapped file, so
that the peak memory is the CSR result plus one block, whatever ``n``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from pyspec._numba_cache import CACHE
from pyspec._topk import _insert_sorted, _reset_topk, _row_norms
from pyspec._validation import check_num_threads

__all__ = ["knn_graph", "knn_neighbours", "engine_neighbours", "METHODS"]

METHODS = ("auto", "exact", "ivf", "hamming", "pq")
MODES = ("connectivity", "distance")
# "auto" switches from the exact scan to the inverted file above this many
# spectra: at 20k x 140 pixels the exact scan takes ~1-2 s on one core, and
# the inverted file starts to do several times less work.
_AUTO_EXACT_MAX = 20_000
# neighbour tables above this many entries live in a temporary memmap
_MEMMAP_ENTRIES = 50_000_000
_BLOCK = 1024


def _as_source(source: Any) -> np.ndarray:
    """A 2-D float32 (n, d) array or read-only memmap from an array, store or path."""
    if isinstance(source, (str, os.PathLike)):
        from pyspec.store import SpectrumStore

        source = SpectrumStore.open(Path(source))
    flux = getattr(source, "flux", source)
    if sp.issparse(flux):
        raise TypeError("knn_graph needs spectra (a dense (n, d) array or a SpectrumStore), "
                        "got a sparse matrix; pass a graph straight to the model's fit()")
    if isinstance(flux, np.memmap) and flux.dtype == np.float32 and flux.ndim == 2:
        return flux
    x = np.asarray(flux)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"expected spectra of shape (n_spectra >= 2, n_pixels), got {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"expected numeric spectra, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))[:5].tolist()
        raise ValueError(f"spectra contain NaN or Inf (rows {bad}...); clean them first")
    return x


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) < n:
        raise ValueError(f"k must be an integer in [1, n_spectra - 1] = [1, {n - 1}], got {k!r}")
    return int(k)


def _topk_rows(d, k, out_i, out_d):  # pragma: no cover - compiled
    """Per row: the k smallest entries by (value, column), one pass with a sorted buffer.

    O(n_columns) per row with tiny k: numpy's argpartition (introselect on
    every row) was 2/3 of the exact graph's time.
    """
    m, n = d.shape
    for r in _prange(m):
        bd = out_d[r]
        bi = out_i[r]
        worst = _reset_topk(bd, bi)
        for c in range(n):
            v = d[r, c]
            if v < worst:  # strict: an equal value at a later column never displaces
                _insert_sorted(bd, bi, v, c)
                worst = bd[k - 1]


def _topk_gemm(dots, norms, own, k, out_i, out_d):  # pragma: no cover - compiled
    """As :func:`_topk_rows` on ``norms[c] - 2 dots[r, c]``, skipping column ``own[r]``.

    Reading the GEMM output once, instead of scaling and shifting the whole
    block in NumPy first, halves the memory traffic of the exact scan.
    """
    m, n = dots.shape
    for r in _prange(m):
        bd = out_d[r]
        bi = out_i[r]
        worst = _reset_topk(bd, bi)
        skip = own[r]
        for c in range(n):
            v = norms[c] - 2.0 * dots[r, c]
            if v < worst and c != skip:
                _insert_sorted(bd, bi, v, c)
                worst = bd[k - 1]


def _strip_rows(dots, norms, row0, col0, best_i, best_d):  # pragma: no cover - compiled
    """Fold ``norms[col] - 2 dots[r, c]`` into rows ``row0 + r`` of the running top-k.

    ``dots`` holds rows ``row0...`` of the set against columns ``col0...``;
    ``best_d``/``best_i`` are the running (n, k) tables, sorted by (value,
    id); ids arrive in increasing order and an equal value never displaces,
    so ties keep the lower id (as in :func:`_topk_gemm`).
    """
    m, w = dots.shape
    k = best_i.shape[1]
    two = np.float32(2.0)  # float32 arithmetic throughout (a float 2.0 would widen it)
    for r in _prange(m):
        g = row0 + r
        bd = best_d[g]
        bi = best_i[g]
        row = dots[r]
        worst = bd[k - 1]
        for c in range(w):
            col = col0 + c
            v = norms[col] - two * row[c]
            if v < worst and col != g:
                _insert_sorted(bd, bi, v, col)
                worst = bd[k - 1]


def _strip_cols(dots, norms, row0, col0, first, best_i, best_d):  # pragma: no cover - compiled
    """The transposed fold: columns ``c >= first`` (spectra ``col0 + c``) gain rows ``row0 + r``.

    The distance matrix is symmetric, so one GEMM tile serves both ends of
    each pair: the rows of the strip (:func:`_strip_rows`) and the later
    spectra in its columns (here). Threads take 64-column chunks and sweep
    the strip's rows, so each reads contiguous memory and owns its rows of
    the table. (A vectorised "any below the k-th" pre-test per chunk was
    measured slower than the plain compare.)
    """
    m, w = dots.shape
    k = best_i.shape[1]
    two = np.float32(2.0)
    n_chunks = (w - first + 63) // 64
    for ch in _prange(n_chunks):
        cs = first + ch * 64
        ce = min(w, cs + 64)
        worst = np.empty(ce - cs, dtype=best_d.dtype)
        for c in range(cs, ce):
            worst[c - cs] = best_d[col0 + c, k - 1]
        for r in range(m):
            g = row0 + r
            ng = norms[g]
            row = dots[r]
            for c in range(cs, ce):
                v = ng - two * row[c]
                if v < worst[c - cs]:
                    bd = best_d[col0 + c]
                    bi = best_i[col0 + c]
                    _insert_sorted(bd, bi, v, g)
                    worst[c - cs] = bd[k - 1]


try:  # numba is a declared dependency
    import numba

    _prange = numba.prange
    _topk_rows = numba.njit(cache=CACHE, nogil=True, parallel=True)(_topk_rows)
    _topk_gemm = numba.njit(cache=CACHE, nogil=True, parallel=True)(_topk_gemm)
    _strip_rows = numba.njit(cache=CACHE, nogil=True, parallel=True)(_strip_rows)
    _strip_cols = numba.njit(cache=CACHE, nogil=True, parallel=True)(_strip_cols)
except ImportError:  # pragma: no cover
    _prange = range
    _topk_rows = _topk_gemm = _strip_rows = _strip_cols = None


def _top_k(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the k smallest entries per row, ordered by (distance, column)."""
    if _topk_rows is not None and d.dtype == np.float32 and d.flags.c_contiguous:
        idx = np.empty((d.shape[0], k), dtype=np.int64)
        val = np.empty((d.shape[0], k), dtype=np.float32)
        _topk_rows(d, k, idx, val)
        return idx, val
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, part, axis=1)
    order = np.lexsort((part, vals), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _exact_block(q: np.ndarray, x: np.ndarray, norms: np.ndarray, k: int,
                 self_start: int | None = None,
                 db_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``x`` for each query row of ``q``.

    ``self_start``: the queries are rows ``self_start...`` of ``x`` and never
    their own neighbours.
    """
    q = np.ascontiguousarray(q, dtype=np.float32)
    m, n = q.shape[0], x.shape[0]
    qn = np.einsum("ij,ij->i", q, q)
    best_i = np.empty((m, 0), dtype=np.int64)
    best_d = np.empty((m, 0), dtype=np.float32)
    rows = np.arange(m)
    for s in range(0, n, db_block):  # the set in slices: memory is one (m, db_block) block
        db = np.asarray(x[s:s + db_block], dtype=np.float32)
        own = rows + self_start - s if self_start is not None else np.full(m, -1)
        own = np.where((own >= 0) & (own < db.shape[0]), own, -1).astype(np.int64)
        dots = q @ db.T
        kk = min(k, db.shape[0])
        if _topk_gemm is not None:
            idx = np.empty((m, kk), dtype=np.int64)
            dist = np.empty((m, kk), dtype=np.float32)
            _topk_gemm(dots, np.ascontiguousarray(norms[s:s + db.shape[0]]), own, kk, idx,
                       dist)
        else:  # pragma: no cover
            d = norms[s:s + db.shape[0]][None, :] - 2.0 * dots
            d[rows[own >= 0], own[own >= 0]] = np.inf  # never one's own neighbour
            idx, dist = _top_k(d, kk)
        best_i = np.concatenate([best_i, idx + s], axis=1)
        best_d = np.concatenate([best_d, dist], axis=1)
        if best_i.shape[1] > k:
            idx, dist = _top_k(np.ascontiguousarray(best_d), k)
            best_i = np.take_along_axis(best_i, idx, axis=1)
            best_d = dist
    best_d = best_d + qn[:, None]
    best_d[best_i < 0] = np.inf
    return best_i, np.maximum(best_d, 0.0)


def _exact_all(x: np.ndarray, norms: np.ndarray, k: int, block_size: int,
               db_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows of every row of ``x``, each pair's dot product once.

    Strip ``s:e`` is multiplied only against rows ``s...`` (the upper
    triangle of the distance matrix, half the GEMM of a full scan); each
    tile then updates both the strip's rows and, transposed, the later rows
    in its columns. Memory: the (n, k) tables plus one (block_size, db_block)
    tile.
    """
    from threadpoolctl import threadpool_limits

    n = x.shape[0]
    best_i = np.full((n, k), -1, dtype=np.int64)
    best_d = np.full((n, k), np.inf, dtype=np.float32)
    # one BLAS thread: OpenBLAS's idle threads spin after each GEMM and take
    # the cores from the compiled top-k that follows (50k x 140, shared 2-core
    # machine: 13.4 s against 16.1 s with two BLAS threads)
    with threadpool_limits(1, user_api="blas"):
        for s in range(0, n, block_size):
            e = min(n, s + block_size)
            q = np.asarray(x[s:e], dtype=np.float32)
            for a in range(s, n, db_block):
                b = min(n, a + db_block)
                dots = q @ np.asarray(x[a:b], dtype=np.float32).T
                _strip_rows(dots, norms, s, a, best_i, best_d)
                if b > e:
                    _strip_cols(dots, norms, s, a, max(0, e - a), best_i, best_d)
    best_d += norms[:, None]
    best_d[best_i < 0] = np.inf
    return best_i, np.maximum(best_d, 0.0)


def nearest_rows(x: np.ndarray, queries: np.ndarray, k: int,
                 block_size: int = _BLOCK) -> np.ndarray:
    """Ids (m, k) of the exact k nearest rows of ``x`` (squared L2) for new queries."""
    norms = _row_norms(x)
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for s in range(0, queries.shape[0], block_size):
        out[s:s + block_size] = _exact_block(queries[s:s + block_size], x, norms, k)[0]
    return out


def _rerank_block(x: np.ndarray, start: int, stop: int, cand: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 re-rank of candidate ids (-1 = none; self dropped) for rows start:stop."""
    q = np.asarray(x[start:stop], dtype=np.float32)
    cand = np.where(cand == np.arange(start, stop)[:, None], -1, cand)
    safe = np.where(cand >= 0, cand, 0)
    uniq, inv = np.unique(safe, return_inverse=True)
    diff = np.asarray(x[uniq], dtype=np.float32)[inv.reshape(safe.shape)]
    diff -= q[:, None, :]  # in place: one (rows, candidates, pixels) array, not three
    d = np.einsum("mcd,mcd->mc", diff, diff)
    d[cand < 0] = np.inf
    idx, dist = _top_k(d, k)
    return np.take_along_axis(cand, idx, axis=1), dist


def _candidates_model(x: np.ndarray, method: str, n_train: int, seed: int,
                      num_threads: int | None) -> tuple[Any, Any]:
    """Fit the candidate model on a sample and index every spectrum."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    sample = np.sort(rng.choice(n, size=min(n, n_train), replace=False))
    train = np.asarray(x[sample], dtype=np.float32)
    if method == "hamming":
        from pyspec.index.hamming import HammingIndex
        from pyspec.models.pil import PILHasher

        m = train.shape[0]
        if m < 256:
            raise ValueError(f"method='hamming' needs at least 256 spectra to fit its 256-bit "
                             f"hasher, got {m}; use method='exact'")
        # the default layer widths, narrowed to the sample (PIL needs rows >= units)
        model = PILHasher(n_bits=256, hidden=(min(1024, m), min(512, m)),
                          random_state=seed).fit(train)
        index = HammingIndex(256)
        # 8192 rows at a time: the hidden layers of a block (8192 x 1024 float32,
        # 32 MiB) are the largest temporary, whatever n
        for s in range(0, n, 8192):
            index.add(model.encode(np.asarray(x[s:s + 8192], dtype=np.float32)))
        return model, index
    from pyspec.index.pq import PQIndex
    from pyspec.models.pq import ProductQuantizer

    d = x.shape[1]
    # segments of about 4-8 pixels; the quantiser needs d divisible by them
    m = max((s for s in range(1, min(d, 64) + 1) if d % s == 0 and d // s >= 4), default=1)
    model = ProductQuantizer(n_segments=m, random_state=seed).fit(train)
    index = PQIndex(model)
    for s in range(0, n, 65536):
        index.add(np.asarray(x[s:s + 65536], dtype=np.float32), num_threads=num_threads)
    return model, index


def _project(x: np.ndarray, n_components: int, n_train: int, seed: int) -> np.ndarray:
    """Rows projected on the leading principal components of a sample (float32, in memory).

    For noisy spectra most pixel-space distance is noise: a few dozen
    components keep the signal, and every later distance costs
    ``n_components`` instead of ``n_pixels`` operations.
    """
    n, d = x.shape
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
            or not 1 <= n_components <= d:
        raise ValueError(f"n_components must be an integer in [1, {d}], got {n_components!r}")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, n_train), replace=False))
    s = np.asarray(x[sample], dtype=np.float64)
    mean = s.mean(axis=0)
    s -= mean
    # eigenvectors of the (d, d) covariance: a d x d problem, not an SVD of the
    # whole sample (the SVD of 3000 x 140 took seconds on a busy machine)
    from threadpoolctl import threadpool_limits

    cov = s.T @ s
    with threadpool_limits(1, user_api="blas"):  # a small problem: threads only wait
        _, evecs = np.linalg.eigh(cov)
    basis = evecs[:, ::-1][:, :n_components].astype(np.float32)
    out = np.empty((n, n_components), dtype=np.float32)
    for a in range(0, n, 65536):
        out[a:a + 65536] = (np.asarray(x[a:a + 65536], dtype=np.float32) - mean) @ basis
    return out


def engine_neighbours(engine: Any, k: int = 10, *, n_candidates: int | None = None,
                      block_size: int = 4096, num_threads: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of every row of an engine, by the engine's own search.

    Each block of stored rows is searched (:meth:`Engine.search_prepared`:
    on a sharded engine, per shard and merged by (distance, global row)) for
    ``n_candidates`` candidates (default as in a query:
    :func:`pyspec.search_checks.default_candidates`), which are re-ranked
    by exact squared L2 in the engine's re-rank space (:meth:`Engine.rerank`);
    a row's own entry is dropped. Returns (ids int64 (n, k), squared
    distances float32 (n, k)) ordered by (distance, row), as
    :func:`knn_neighbours` does.
    """
    from pyspec.search_checks import default_candidates

    n = len(engine)
    k = _check_k(k, n)
    m = default_candidates(k + 1, n) if n_candidates is None else int(n_candidates)
    if not k + 1 <= m <= n:
        raise ValueError(f"n_candidates must be in [k + 1, n_spectra] = [{k + 1}, {n}], "
                         f"got {n_candidates!r}")
    flux = engine.store.flux
    ids = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    for s in range(0, n, max(1, int(block_size))):
        e = min(n, s + max(1, int(block_size)))
        q = np.asarray(flux[s:e], np.float32)
        cand = engine.search_prepared(q, m, num_threads=num_threads).ids
        got_i, got_d = engine.rerank(q, cand, k + 1)
        # drop the row itself wherever it ranks (another row may tie with it at 0)
        order = np.argsort(got_i == np.arange(s, e)[:, None], axis=1, kind="stable")[:, :k]
        ids[s:e] = np.take_along_axis(got_i, order, axis=1)
        dist[s:e] = np.take_along_axis(got_d, order, axis=1)
    return ids, dist


def _is_engine(source: Any) -> bool:
    return hasattr(source, "search_prepared") and hasattr(source, "rerank")


def knn_neighbours(source: Any, k: int = 10, method: str = "auto", *,
                   n_components: int | None = None, n_candidates: int | None = None,
                   n_probe: int | None = None, list_size: int | None = None,
                   n_train: int = 20_000,
                   random_state: int = 0, num_threads: int | None = None,
                   block_size: int = _BLOCK, memmap_dir: str | os.PathLike | None = None,
                   memmap_threshold: int = _MEMMAP_ENTRIES) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other spectra of every spectrum.

    Returns
    -------
    ids : int64 (n, k), ordered by (squared L2 distance, id); -1 where fewer found
    sqdist : float32 (n, k), squared L2 distance (+inf where id is -1), in the
        principal-component space when ``n_components`` is given

    Large tables (``n * k > memmap_threshold``) are memory-mapped files in
    ``memmap_dir`` (default: the system temporary folder), deleted when the
    arrays are no longer referenced on POSIX systems.

    An :class:`~pyspec.Engine` (single or sharded) as ``source`` takes
    ``method="auto"`` and gives :func:`engine_neighbours`.
    """
    if _is_engine(source):
        if method != "auto":
            raise ValueError(f"an engine's graph comes from its own search: method must be "
                             f"'auto', got {method!r}")
        return engine_neighbours(source, k, n_candidates=n_candidates, num_threads=num_threads)
    x = _as_source(source)
    n = x.shape[0]
    k = _check_k(k, n)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    threads = check_num_threads(num_threads)
    if n_components is not None:
        x = _project(x, n_components, n_train, random_state)
    if method == "auto":
        method = "exact" if n <= _AUTO_EXACT_MAX else "ivf"
    block_size = max(1, int(block_size))
    if n * k > memmap_threshold:
        folder = tempfile.mkdtemp(prefix="pyspec-knn-", dir=memmap_dir)
        ids = np.lib.format.open_memmap(os.path.join(folder, "ids.npy"), "w+", np.int64, (n, k))
        dist = np.lib.format.open_memmap(os.path.join(folder, "dist.npy"), "w+", np.float32,
                                         (n, k))
        for name in ("ids.npy", "dist.npy"):  # the open maps keep the data alive
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    else:
        ids = np.empty((n, k), dtype=np.int64)
        dist = np.empty((n, k), dtype=np.float32)
    if method == "exact":
        norms = _row_norms(x)
        if _strip_rows is not None:
            ids[:], dist[:] = _exact_all(x, norms, k, block_size)
            return ids, dist
        for s in range(0, n, block_size):  # pragma: no cover - without numba
            e = min(n, s + block_size)
            ids[s:e], dist[s:e] = _exact_block(x[s:e], x, norms, k, self_start=s)
        return ids, dist
    if method == "ivf":
        from pyspec import knn_ivf

        # the partition lives in 32 components: the projection when asked for,
        # else one made for it (the distances stay in the spectra's own space)
        coarse = x if x.shape[1] <= 32 else _project(x, 32, n_train, random_state)
        knn_ivf.ivf_neighbours(x, coarse, k, ids, dist,
                               list_size=knn_ivf.LIST_SIZE if list_size is None else list_size,
                               n_probe=knn_ivf.N_PROBE if n_probe is None else n_probe,
                               n_train=n_train, random_state=random_state,
                               memmap_dir=memmap_dir)
        return ids, dist
    n_cand = min(n, max(k + 1, int(n_candidates) if n_candidates else 4 * k + 8))
    _, index = _candidates_model(x, method, n_train, random_state, num_threads)
    for s in range(0, n, block_size):
        e = min(n, s + block_size)
        if method == "hamming":
            cand = index.search(index.codes[s:e], n_cand, num_threads=threads or None).ids
        else:
            cand = index.search(np.asarray(x[s:e], dtype=np.float32), n_cand,
                                num_threads=threads or None).ids
        ids[s:e], dist[s:e] = _rerank_block(x, s, e, cand, k)
    return ids, dist


def neighbours_to_graph(ids: np.ndarray, sqdist: np.ndarray | None = None,
                        mode: str = "connectivity", n: int | None = None, *,
                        symmetric: bool = True, include_self: bool = False) -> sp.csr_matrix:
    """CSR graph from a neighbour table.

    ``symmetric``: edge if either end lists the other (else row i holds
    exactly i's neighbours); ``include_self``: each row also links to itself
    (scikit-learn's ``kneighbors_graph(X)`` convention, with the distance-0
    self edge kept as the tiny positive float32). ``mode="connectivity"``:
    weight 1; ``"distance"``: the L2 distance of the pair.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n = ids.shape[0] if n is None else int(n)
    rows = np.repeat(np.arange(ids.shape[0], dtype=np.int64), ids.shape[1])
    cols = np.asarray(ids, dtype=np.int64).ravel()
    keep = cols >= 0
    rows, cols = rows[keep], cols[keep]
    if mode == "connectivity":
        w = np.ones(rows.size, dtype=np.float32)
    else:
        # a distance of exactly 0 would vanish from a sparse matrix: keep a tiny one
        w = np.sqrt(np.maximum(np.asarray(sqdist, dtype=np.float32).ravel()[keep], 0.0))
        w = np.maximum(w, np.finfo(np.float32).tiny)
    if include_self:
        own = np.arange(ids.shape[0], dtype=np.int64)
        rows, cols = np.concatenate([own, rows]), np.concatenate([own, cols])
        w = np.concatenate([np.full(own.size, 1.0 if mode == "connectivity"
                                    else np.finfo(np.float32).tiny, np.float32), w])
    a = sp.csr_matrix((w, (rows, cols)), shape=(n, n))
    a.sum_duplicates()
    g = a.maximum(a.T).tocsr() if symmetric else a
    g.sort_indices()
    return g


def knn_graph(source: Any, k: int = 10, method: str = "auto", *, mode: str = "connectivity",
              n_components: int | None = None, n_candidates: int | None = None,
              n_probe: int | None = None, list_size: int | None = None,
              n_train: int = 20_000, random_state: int = 0, symmetric: bool = True,
              include_self: bool = False, num_threads: int | None = None,
              block_size: int = _BLOCK,
              memmap_dir: str | os.PathLike | None = None,
              memmap_threshold: int = _MEMMAP_ENTRIES) -> sp.csr_matrix:
    """Symmetric k-nearest-neighbour graph of spectra (squared L2 on the rows).

    Parameters
    ----------
    source : ndarray (n, d), SpectrumStore, store directory or Engine
        Spectra on one grid, finite (a store's rows are); or an engine,
        single or sharded, whose own search finds the neighbours
        (:func:`engine_neighbours`; ``method`` stays "auto").
    k : int
        Neighbours per spectrum (self excluded), 1 <= k < n.
    method : "auto", "exact", "ivf", "hamming" or "pq"
        "auto" is exact up to 20 000 spectra and "ivf" above (see the
        module docstring).
    mode : "connectivity" (weights 1) or "distance" (L2 distances)
    n_components : int, optional
        First project the spectra on this many principal components of an
        ``n_train`` sample; neighbours are then found in that space. Cuts
        the cost per distance by ``n_pixels / n_components`` and, on noisy
        spectra, removes most of the noise from the distances.
    symmetric, include_self : bool
        The default is the symmetric union without self edges. With
        ``symmetric=False, include_self=True`` and ``k - 1`` neighbours the
        graph is scikit-learn's ``kernel="knn"`` one (directed, self
        included), so both libraries can be compared on one graph.
    n_candidates : int, optional
        Candidates per spectrum for "hamming"/"pq" before the exact re-rank
        (default ``4k + 8``).
    n_probe, list_size : int, optional
        For "ivf": cells compared with each cell (default 12) and the
        spectra per cell (default 1024); more probes, higher recall.
    n_train : int
        Spectra sampled to fit the hashing / quantisation / k-means model.
    random_state : int
        Seed of that sample and model.
    num_threads : int or None
        Threads for the compiled scans (None = OpenMP default).
    block_size : int
        Rows processed at once (bounds the working memory).
    memmap_dir, memmap_threshold
        Where and above how many table entries the neighbour table is
        memory-mapped.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n, n), float32
        By default symmetric without diagonal: edge (i, j) when j is among
        the k nearest of i or i among those of j.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [5.0], [6.0]])
    >>> knn_graph(x, k=1).toarray().astype(int).tolist()
    [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ids, dist = knn_neighbours(source, k, method, n_components=n_components,
                               n_candidates=n_candidates, n_probe=n_probe,
                               list_size=list_size, n_train=n_train,
                               random_state=random_state, num_threads=num_threads,
                               block_size=block_size, memmap_dir=memmap_dir,
                               memmap_threshold=memmap_threshold)
    return neighbours_to_graph(ids, dist, mode, symmetric=symmetric, include_self=include_self)
