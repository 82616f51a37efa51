"""Retrieval quality of binary hashes: precision/recall by Hamming ranking.

For each query spectrum all other spectra are ranked by Hamming distance
between codes with :class:`pyspec.HammingIndex` (ties broken by ascending
index, the engine's (distance, id) order); a retrieved spectrum is a true
positive when it has the query's label.
As the cut-off (number retrieved) grows, precision = TP / (TP + FP) (called
"accuracy" in the M-type star search paper) falls and recall = TP / (spectra
sharing the query's label) rises; both are averaged over the queries. Queries
whose label occurs only once have no relevant spectra and are skipped.

:func:`evaluate_hashers` runs this for several hashers and code lengths on a
held-out query split (queries never seen by the fit), with exact L2 on the same
input as the ceiling row, and returns an astropy Table (write it as ECSV);
:func:`evaluate_store` does the same on the labelled spectra of a store in
bounded memory (one metadata column read, the spectra streamed block by
block), with the table the in-memory evaluation gives;
:func:`plot_precision_recall` draws the curves like the paper's Figure 8.
:func:`euclidean_recall` measures how many exact Euclidean neighbours the
Hamming ranking recovers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from pyspec._validation import as_float_matrix
from pyspec.store_rows import RowSource, StoreRowReader, store_meta_column

# Queries per block of the distance matrix: at most 256, and at most 2**22
# distances (16 MiB int32, 32 MiB for the argsort) per block.
_QUERY_BLOCK = 256


def _block(n: int) -> int:
    return max(1, min(_QUERY_BLOCK, (1 << 22) // max(n, 1)))

HASHERS = ("pil", "lsh", "itq")


def _check_codes(codes: object, name: str = "codes") -> np.ndarray:
    arr = np.asarray(codes)
    if arr.dtype != np.uint64 or arr.ndim != 2:
        raise TypeError(f"{name}: expected uint64 codes of shape (n, n_words), got "
                        f"{arr.dtype} {arr.shape}; use a hasher's encode()")
    return np.ascontiguousarray(arr)


def _index(codes: np.ndarray):
    """pyspec.HammingIndex over ``codes`` with ids 0..n-1."""
    from pyspec.index.hamming import HammingIndex

    index = HammingIndex(n_bits=64 * codes.shape[1])
    index.add(codes)
    return index


def _rank_others(index, codes: np.ndarray, qb: np.ndarray, k: int,
                 num_threads: int | None = None) -> np.ndarray:
    """First ``k`` other spectra of each query in qb, by (Hamming distance, index).

    Ranked by the Hamming engine (``HammingIndex.search`` with k + 1, which
    orders by (distance, id)); the query itself is dropped.
    """
    ids = index.search(codes[qb], k + 1, num_threads=num_threads).ids
    keep = ids != qb[:, None]
    # Every row holds the query once (distance 0), unless k + 1 cut it off
    # behind k other codes at distance 0: then drop the last column instead.
    missing = keep.all(axis=1)
    keep[missing, -1] = False
    return ids[keep].reshape(len(qb), k)


def default_cutoffs(n: int, n_points: int = 40) -> np.ndarray:
    """Geometric grid of cut-offs from 1 to n (int64, unique)."""
    if n < 1:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.geomspace(1, n, n_points).round().astype(np.int64))


def _pick_queries(n: int, n_queries: int | None, random_state: int | None) -> np.ndarray:
    if n_queries is None or n_queries >= n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=int(n_queries), replace=False))


def precision_recall(codes: np.ndarray, labels: Sequence, cutoffs: np.ndarray | None = None,
                     n_queries: int | None = 1000, random_state: int | None = 0
                     ) -> dict[str, np.ndarray]:
    """Mean precision and recall of Hamming ranking at each cut-off.

    Parameters
    ----------
    codes : ndarray of shape (n, n_words), uint64
    labels : sequence of length n
        Class of each spectrum (any hashable values; compared for equality).
    cutoffs : array of int, optional
        Numbers of retrieved spectra (default :func:`default_cutoffs`).
    n_queries : int or None
        Queries drawn at random (None: every spectrum is a query).
    random_state : int or None
        Seed of the query draw.

    Returns
    -------
    dict with ``cutoff`` int64 (m,), ``precision``, ``recall`` float64 (m,),
    ``n_queries`` int (queries with at least one relevant spectrum).
    """
    codes = _check_codes(codes)
    n = codes.shape[0]
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(f"labels: expected {n} labels (one per spectrum), got shape {lab.shape}")
    if n < 2:
        raise ValueError("need at least 2 spectra to evaluate retrieval")
    _, lab_idx = np.unique(lab, return_inverse=True)
    counts = np.bincount(lab_idx)
    cut = default_cutoffs(n - 1) if cutoffs is None else np.asarray(cutoffs, dtype=np.int64)
    if cut.size == 0 or cut.min() < 1 or cut.max() > n - 1:
        raise ValueError(f"cutoffs must lie in [1, {n - 1}]")
    queries = _pick_queries(n, n_queries, random_state)
    queries = queries[counts[lab_idx[queries]] > 1]
    if queries.size == 0:
        raise ValueError("no query has another spectrum with the same label; check the labels")
    prec = np.zeros(cut.size)
    rec = np.zeros(cut.size)
    index = _index(codes)
    step = _block(n)
    for s in range(0, queries.size, step):
        qb = queries[s:s + step]
        order = _rank_others(index, codes, qb, n - 1)
        hits = lab_idx[order] == lab_idx[qb][:, None]
        tp = np.cumsum(hits, axis=1)[:, cut - 1]
        prec += (tp / cut).sum(axis=0)
        rec += (tp / (counts[lab_idx[qb]] - 1)[:, None]).sum(axis=0)
    return {"cutoff": cut, "precision": prec / queries.size, "recall": rec / queries.size,
            "n_queries": int(queries.size)}


def euclidean_recall(codes: np.ndarray, X: np.ndarray, k: int = 10, n_candidates: int = 100,
                     n_queries: int | None = 200, random_state: int | None = 0) -> float:
    """Fraction of the exact Euclidean k nearest neighbours found among the
    ``n_candidates`` nearest by Hamming distance (query itself excluded),
    averaged over queries."""
    codes = _check_codes(codes)
    X = as_float_matrix(X, "X", allow_1d=False).astype(np.float64)
    n = X.shape[0]
    if codes.shape[0] != n:
        raise ValueError(f"codes ({codes.shape[0]}) and X ({n}) must have the same rows")
    if not 1 <= k <= n_candidates <= n - 1:
        raise ValueError(f"need 1 <= k <= n_candidates <= n - 1, got k={k}, "
                         f"n_candidates={n_candidates}, n={n}")
    queries = _pick_queries(n, n_queries, random_state)
    sq = np.einsum("ij,ij->i", X, X)
    index = _index(codes)
    found = 0
    step = _block(n)
    for s in range(0, queries.size, step):
        qb = queries[s:s + step]
        d2 = sq[qb, None] - 2.0 * X[qb] @ X.T + sq[None, :]
        d2[np.arange(qb.size), qb] = np.inf
        exact = np.argsort(d2, axis=1, kind="stable")[:, :k]
        cand = _rank_others(index, codes, qb, n_candidates)
        found += sum(np.intersect1d(e, c).size for e, c in zip(exact, cand))
    return found / (queries.size * k)


def make_hasher(name: str, n_bits: int, random_state: int | None = 0, **params: object):
    """A fresh hasher by short name ("pil", "lsh", "itq"): a backend with binary codes."""
    from pyspec.backends import backend_names, get_backend

    hashers = [b for b in backend_names() if get_backend(b).has_codes]
    if name not in hashers:
        raise ValueError(f"unknown hasher {name!r}; choose from {sorted(hashers)}")
    return get_backend(name).make_model(n_bits=n_bits, random_state=random_state, **params)


def holdout_split(n: int, n_queries: int | None, holdout: float,
                  random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(queries, database) row indices: a random held-out query set of
    ``min(n_queries, holdout * n)`` rows; the model is fitted on the rest."""
    if not 0.0 < float(holdout) < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    n_q = max(1, int(round(float(holdout) * n)))
    if n_queries is not None:
        n_q = min(n_q, int(n_queries))
    if n - n_q < 2:
        raise ValueError(f"need at least 2 spectra outside the {n_q} held-out queries")
    rng = np.random.default_rng(random_state)
    queries = np.sort(rng.choice(n, size=n_q, replace=False))
    return queries, np.setdiff1d(np.arange(n), queries)


def ranked_true_positives(order: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray,
                          cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True positives at ``cut`` (int64, (m, cut.size)) of database rankings ``order``
    (nq, n_db) and the relevant database entries of each query (m,), for the m queries
    that have one."""
    relevant = (db_labels[None, :] == query_labels[:, None]).sum(axis=1)
    use = relevant > 0
    hits = db_labels[order[use]] == query_labels[use, None]
    return np.cumsum(hits, axis=1)[:, cut - 1], relevant[use]


# Distances held at once by the exact-L2 ranking (128 MiB of float64): the queries are ranked
# in passes of as many as fit, each pass reading the database block by block.
_EXACT_DISTANCES = 1 << 24


def _exact_rankings(Xq: np.ndarray, database: RowSource, step: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(qb, order)``: database rows of held-out queries ``qb`` (blocks of ``step``)
    by (squared L2, row).

    Each pass computes the distances of up to ``_EXACT_DISTANCES / n_db``
    queries to every database row, converting one database block to float64
    at a time, so memory does not grow with the database.
    """
    n_db = len(database)
    per_pass = max(1, min(Xq.shape[0], _EXACT_DISTANCES // n_db))
    rows = max(64, (1 << 21) // max(Xq.shape[1], 1))  # 16 MiB float64 database blocks
    q64 = Xq.astype(np.float64)
    sq_q = np.einsum("ij,ij->i", q64, q64)
    for a in range(0, Xq.shape[0], per_pass):
        b = min(a + per_pass, Xq.shape[0])
        d2 = np.empty((b - a, n_db))
        for start, block, _ in database.iter_chunks(rows):
            db = block.astype(np.float64)
            d2[:, start:start + db.shape[0]] = (sq_q[a:b, None] - 2.0 * q64[a:b] @ db.T
                                                + np.einsum("ij,ij->i", db, db))
        for s in range(a, b, step):
            yield np.arange(s, min(s + step, b)), np.argsort(d2[s - a:s - a + step], axis=1,
                                                             kind="stable")


def _hamming_rankings(index, q_codes: np.ndarray, n_db: int, step: int,
                      num_threads: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(qb, order)``: database rows of held-out queries ``qb`` by (Hamming distance, row)."""
    for s in range(0, q_codes.shape[0], step):
        qb = np.arange(s, min(s + step, q_codes.shape[0]))
        yield qb, index.search(q_codes[qb], n_db, num_threads=num_threads).ids


def evaluate_hashers(X: np.ndarray, labels: Sequence, hashers: Sequence[str] = HASHERS,
                     code_lengths: Sequence[int] = (32, 64, 128, 256),
                     n_queries: int | None = 1000, random_state: int | None = 0,
                     hasher_params: dict[str, dict] | None = None, cutoffs: np.ndarray | None = None,
                     num_threads: int | None = None,
                     progress: Callable[[str], None] | None = None, holdout: float = 0.2,
                     exact: bool = True, fit_sample: int | None = None):
    """Fit every hasher at every code length and measure held-out precision/recall.

    A random ``holdout`` fraction of the spectra (at most ``n_queries``) are
    the queries; the hashers are fitted on the others (labels unused), or on
    ``fit_sample`` of them drawn at random, and the others form the database
    the queries are ranked against (by Hamming distance, ties by row).
    ``exact`` adds the ceiling row "exact-l2" (n_bits 0): the same queries
    ranked by exact Euclidean distance on the same input, what any code of
    these spectra can at best approach. :func:`evaluate_store` does the same
    on a store without loading it.

    Returns
    -------
    astropy.table.Table
        Columns hasher, n_bits, cutoff, precision, recall, fit_time (s); meta
        holds n_spectra, n_pixels, n_queries, n_database, label counts and
        parameters.
    """
    X = as_float_matrix(X, "X", allow_1d=False)
    lab = np.asarray(labels)
    if lab.shape != (X.shape[0],):
        raise ValueError(f"labels: expected {X.shape[0]} labels, got shape {lab.shape}")
    values, lab_idx, counts = np.unique(lab, return_inverse=True, return_counts=True)
    return _evaluate(X.__getitem__, X.shape, lab_idx, values, counts, hashers, code_lengths,
                     n_queries=n_queries, random_state=random_state,
                     hasher_params=hasher_params, cutoffs=cutoffs, num_threads=num_threads,
                     progress=progress, holdout=holdout, exact=exact, fit_sample=fit_sample)


def evaluate_store(store: Any, label_column: str = "subclass", hashers: Sequence[str] = HASHERS,
                   code_lengths: Sequence[int] = (32, 64, 128, 256), *,
                   label_mode: str = "full", min_class_size: int = 2,
                   progress: Callable[[str], None] | None = None, **kwargs: Any):
    """:func:`evaluate_hashers` on the labelled spectra of a store, in bounded memory.

    The labels are the store's metadata column ``label_column`` (stripped
    text; ``label_mode="first-letter"`` keeps its first letter, upper case,
    e.g. G2V -> G); spectra without a label ("", "--", "None", "nan") and
    those of labels with fewer than ``min_class_size`` members are left out.
    Only that column is read, and the spectra are read block by block (fit,
    encode and the exact ranking), so memory does not grow with the store;
    the table is the one :func:`evaluate_hashers` gives for the same spectra
    and labels in memory. ``store``: a SpectrumStore, a sharded store or a
    path; ``kwargs`` as for :func:`evaluate_hashers`.
    """
    from pyspec.distributed.store import open_any_store

    if not hasattr(store, "flux"):
        store = open_any_store(store)
    if label_mode not in ("full", "first-letter"):
        raise ValueError(f"label_mode must be 'full' or 'first-letter', got {label_mode!r}")
    try:
        column = store_meta_column(store, label_column)
    except KeyError as exc:
        raise ValueError(f"{store.path}: {exc.args[0]}; choose another label column") from None
    # one label text per distinct stored value, not one Python string per spectrum
    raw, inverse = np.unique(column, return_inverse=True)
    del column
    text = np.array([str(v).strip() for v in raw], dtype=str)
    if label_mode == "first-letter":
        text = np.array([t[:1].upper() for t in text], dtype=str)
    values, code = np.unique(text, return_inverse=True)
    lab = code[inverse]
    missing = np.flatnonzero(np.isin(values, ["", "--", "None", "nan"]))
    counts = np.bincount(lab, minlength=values.size)
    small = (counts < int(min_class_size)) & ~np.isin(np.arange(values.size), missing)
    if small.any() and progress is not None:
        progress(f"dropping {int(counts[small].sum())} spectra of labels with < "
                 f"{min_class_size} members")
    keep = ~np.isin(np.arange(values.size), missing) & ~small
    rows = np.flatnonzero(keep[lab])
    used, lab_idx, n_of = np.unique(lab[rows], return_inverse=True, return_counts=True)
    if rows.size < 3:
        raise ValueError(f"{store.path}: only {rows.size} spectra have a {label_column!r} label "
                         f"shared with at least {min_class_size - 1} other")
    n_pixels = int(store.flux.shape[1])
    if progress is not None:
        progress(f"{rows.size} spectra x {n_pixels} pixels, {used.size} labels")
    return _evaluate(StoreRowReader(store, rows), (rows.size, n_pixels), lab_idx,
                     values[used], n_of, hashers, code_lengths, progress=progress, **kwargs)


def _fit_input(database: RowSource, fit_sample: int | None,
               random_state: int | None) -> np.ndarray | RowSource:
    """What the hashers fit on: all database rows (streamed) or ``fit_sample`` random ones."""
    n_db = len(database)
    if fit_sample is None or fit_sample >= n_db:
        return database
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n_db, size=int(fit_sample), replace=False))
    return database.read_rows(database.positions[sample])


def _evaluate(read_rows: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int],
              lab_idx: np.ndarray, values: np.ndarray, counts: np.ndarray,
              hashers: Sequence[str], code_lengths: Sequence[int], *,
              n_queries: int | None = 1000, random_state: int | None = 0,
              hasher_params: dict[str, dict] | None = None, cutoffs: np.ndarray | None = None,
              num_threads: int | None = None, progress: Callable[[str], None] | None = None,
              holdout: float = 0.2, exact: bool = True, fit_sample: int | None = None):
    """The evaluation over spectra ``read_rows(rows)`` (float32, ascending rows) with label
    codes ``lab_idx`` (into ``values``, whose members number ``counts``)."""
    from astropy.table import Table

    if fit_sample is not None and (isinstance(fit_sample, bool) or int(fit_sample) < 2):
        raise ValueError(f"fit_sample must be an int >= 2 or None, got {fit_sample!r}")
    n, n_pixels = int(shape[0]), int(shape[1])
    queries, database = holdout_split(n, n_queries, holdout, random_state)
    n_db = database.size
    cut = default_cutoffs(n_db) if cutoffs is None else np.asarray(cutoffs, dtype=np.int64)
    if cut.size == 0 or cut.min() < 1 or cut.max() > n_db:
        raise ValueError(f"cutoffs must lie in [1, {n_db}] (the database size)")
    q_lab, db_lab = lab_idx[queries], lab_idx[database]
    hasher_params = hasher_params or {}
    rows = {k: [] for k in ("hasher", "n_bits", "cutoff", "precision", "recall", "fit_time")}
    step = _block(n_db)

    def add(name: str, nb: int, rankings: Iterator[tuple[np.ndarray, np.ndarray]],
            fit_time: float) -> None:
        # per-query counts, averaged at the end: the means do not depend on the query blocks
        tps, rels = zip(*(ranked_true_positives(order, q_lab[qb], db_lab, cut)
                          for qb, order in rankings), strict=True)
        tp, relevant = np.concatenate(tps), np.concatenate(rels)
        used = tp.shape[0]
        if used == 0:
            raise ValueError("no held-out query has a database spectrum with its label")
        prec, rec = (tp / cut).sum(axis=0), (tp / relevant[:, None]).sum(axis=0)
        rows["hasher"] += [name] * cut.size
        rows["n_bits"] += [nb] * cut.size
        rows["cutoff"] += list(cut)
        rows["precision"] += list(prec / used)
        rows["recall"] += list(rec / used)
        rows["fit_time"] += [fit_time] * cut.size
        if progress is not None:
            i = min(int(np.searchsorted(cut, 10)), cut.size - 1)
            progress(f"{name} {nb} bits: fit {fit_time:.2f} s, precision@{cut[i]} "
                     f"{prec[i] / used:.3f}")
        n_used[0] = used

    n_used = [0]
    Xq = read_rows(queries)
    db = RowSource(read_rows, database)
    if exact:
        add("exact-l2", 0, _exact_rankings(Xq, db, step), 0.0)
    n_fit = n_db if fit_sample is None else min(n_db, int(fit_sample))
    for name in hashers:
        for nb in code_lengths:
            params = dict(hasher_params.get(name, {}))
            if name == "pil" and "hidden" not in params:
                params["hidden"] = default_pil_hidden(n_fit, nb)
            model = make_hasher(name, int(nb), random_state, **params)
            t0 = time.perf_counter()
            model.fit(_fit_input(db, fit_sample, random_state), num_threads=num_threads)
            db_codes = model.encode(db, num_threads=num_threads)
            fit_time = time.perf_counter() - t0
            q_codes = model.encode(Xq, num_threads=num_threads)
            add(name, int(nb), _hamming_rankings(_index(db_codes), q_codes, n_db, step,
                                                 num_threads), fit_time)
    table = Table(rows)
    table["fit_time"].unit = "s"
    table.meta.update({"n_spectra": n, "n_pixels": n_pixels,
                       "n_queries": n_used[0], "n_database": int(n_db), "holdout": holdout,
                       "random_state": random_state, "fit_sample": fit_sample,
                       "labels": {str(v): int(c) for v, c in zip(values, counts,
                                                                  strict=True)},
                       "hasher_params": {k: {p: (list(v) if isinstance(v, tuple) else v)
                                             for p, v in d.items()}
                                         for k, d in hasher_params.items()}})
    return table


def default_pil_hidden(n_spectra: int, n_bits: int) -> tuple[int, int]:
    """PILHasher's ``hidden="auto"`` widths (see :func:`pyspec.models.pil.auto_hidden`)."""
    from pyspec.models.pil import auto_hidden

    return auto_hidden(n_spectra, n_bits)


def plot_precision_recall(table, path: str, title: str | None = None) -> None:
    """Precision against recall, one curve per (hasher, n_bits), written as PNG
    (drawn by :func:`pyspec.plotting.plot_precision_recall`)."""
    from matplotlib import colormaps

    from pyspec.plotting import plot_precision_recall as draw

    dashes = {"pil": "-", "itq": "--", "lsh": ":"}
    bits = sorted(set(int(b) for b in table["n_bits"]))
    colours = dict(zip(bits, colormaps["viridis"](np.linspace(0.0, 0.85, len(bits))), strict=True))
    curves, styles = {}, {}
    for name in dict.fromkeys(str(h) for h in table["hasher"]):
        for nb in bits:
            sel = (table["hasher"] == name) & (table["n_bits"] == nb)
            if np.any(sel):
                label = f"{name.upper()} {nb} bits"
                curves[label] = (np.asarray(table["recall"][sel]),
                                 np.asarray(table["precision"][sel]))
                styles[label] = {"linestyle": dashes.get(name, "-."), "color": colours[nb],
                                 "marker": None}
    draw(path, curves, title=title, styles=styles)


def synthetic_labelled_spectra(n: int, n_pixels: int = 1000, n_classes: int = 5,
                               noise: float = 0.02, random_state: int | None = 0
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Structured labelled test spectra: class templates with shifts and noise.

    Each class has a smooth continuum slope and a set of Gaussian absorption
    lines; each spectrum draws a redshift-like shift of its lines, a
    continuum tilt, line-depth scatter and Gaussian noise, then is scaled to
    unit L2 norm. Returns float32 (n, n_pixels) flux and int64 (n,) labels.
    """
    rng = np.random.default_rng(random_state)
    x = np.linspace(0.0, 1.0, n_pixels)
    labels = rng.integers(0, n_classes, size=n)
    slopes = rng.uniform(-1.0, 1.0, n_classes)
    centres = [rng.uniform(0.05, 0.95, 12) for _ in range(n_classes)]
    depths = [rng.uniform(0.1, 0.6, 12) for _ in range(n_classes)]
    widths = [rng.uniform(0.002, 0.01, 12) for _ in range(n_classes)]
    flux = np.empty((n, n_pixels), dtype=np.float64)
    for i in range(n):
        c = labels[i]
        shift = rng.normal(0.0, 0.004)
        f = 1.0 + (slopes[c] + rng.normal(0.0, 0.2)) * (x - 0.5)
        for mu, dep, w in zip(centres[c], depths[c], widths[c]):
            f -= dep * rng.uniform(0.7, 1.3) * np.exp(-0.5 * ((x - mu - shift) / w) ** 2)
        flux[i] = f + rng.normal(0.0, noise, n_pixels)
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    return flux.astype(np.float32), labels.astype(np.int64)
