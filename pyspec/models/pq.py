"""Product quantiser: per-segment k-means codebooks, encoding and decoding.

A spectrum of ``D`` pixels is cut into ``n_segments`` contiguous wavelength
segments. When ``D`` is not divisible by ``n_segments`` the first
``D % n_segments`` segments are one pixel longer than the others (the rule of
:func:`numpy.array_split`), so segment lengths differ by at most one pixel.
Each segment gets its own k-means codebook of ``n_centroids`` centroids and a
spectrum is stored as the index of the nearest centroid in every segment.

The heavy loops (k-means++ seeding, assignment, centroid sums, encoding,
distance tables) run in :mod:`pyspec._core`; validation and the k-means
control flow live here.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, NamedTuple

import numpy as np
from sklearn.utils.validation import _check_feature_names_in

from pyspec import _core
from pyspec._fileformat import read_container, write_container
from pyspec._validation import as_float_matrix, check_num_threads, describe
from pyspec.errors import IndexFormatError
from pyspec.models.base import (
    SpectrumTransformer,
    check_has_pixels,
    check_random_state,
    reject_unsupported,
)

__all__ = ["ProductQuantizer", "segment_bounds"]

_KIND = b"QM"
_CHUNK = 16384  # rows per encode call: bounds temporaries for huge memmaps
_MAX_CENTROIDS = 65536
_OUTPUTS = ("codes", "reconstruction")


def segment_bounds(n_features: int, n_segments: int) -> np.ndarray:
    """Pixel boundaries of the contiguous segments, int64 of shape (n_segments + 1,).

    Segment ``m`` covers pixels ``bounds[m]:bounds[m+1]``; the first
    ``n_features % n_segments`` segments are one pixel longer.

    Examples
    --------
    >>> segment_bounds(10, 4).tolist()
    [0, 3, 6, 8, 10]
    """
    if n_segments < 1 or n_segments > n_features:
        raise ValueError(f"n_segments must be in [1, {n_features}] for {n_features} pixels, "
                         f"got {n_segments}")
    base, extra = divmod(n_features, n_segments)
    lengths = np.full(n_segments, base, dtype=np.int64)
    lengths[:extra] += 1
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def int8_bound_copy(codebook: np.ndarray, bounds: np.ndarray, kp: int | None = None,
                    ) -> tuple | None:
    """The kernels' 8-bit bound copy (cq, bmean, bscale, berr, rows) of a codebook.

    Built in C++ (``_core.pq_bound_copy``): each pixel is centred on the
    midpoint of its centroids' range (``bmean``) and each segment divided by a
    power of two ``bscale >= max |c - bmean| / 127``, then rounded to int8 in
    the kernels' blocked layout; ``berr`` bounds each centroid's rounding
    error (the norm of the difference, in scaled units, rounded up); ``rows``
    is the codebook itself. See :meth:`ProductQuantizer._bound_copy` and
    csrc/pq.hpp, "Bound tables". None when a segment's scale falls outside
    [2^-40, 2^40]. ``kp`` (the padded centroid count) is implied by the
    codebook and accepted for compatibility.
    """
    codebook = np.ascontiguousarray(codebook, dtype=np.float32)
    copy = _core.pq_bound_copy(codebook, np.ascontiguousarray(bounds, dtype=np.int64))
    if copy is not None and kp is not None and len(copy[3]) != kp * (len(bounds) - 1):
        raise ValueError(f"kp={kp} does not match the codebook's {codebook.shape[0]} centroids")
    return copy


def _check_int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


class KMeansStats(NamedTuple):
    """One Lloyd step's statistics over some training rows (see :func:`kmeans_stats`)."""

    sums: np.ndarray       # float64 (K, D): per centroid, the sum of its rows' segments
    counts: np.ndarray     # int64 (M, K): rows assigned to each centroid of each segment
    best_total: float      # sum of the rows' ||c||^2 - 2 x.c scores to their centroids

    def __add__(self, other: tuple) -> KMeansStats:  # type: ignore[override]
        return KMeansStats(self.sums + other[0], self.counts + other[1],
                           self.best_total + other[2])


def _assign(X: np.ndarray, centers: np.ndarray, bounds: np.ndarray,
            nt: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, per-segment best scores) of rows X against ``centers`` (compiled kernels)."""
    pq = ProductQuantizer(n_segments=len(bounds) - 1, n_centroids=centers.shape[0])
    pq._set_codebook(centers, bounds)
    return pq._encode_raw(X, True, nt)


def kmeans_stats(X: np.ndarray, centers: np.ndarray, bounds: np.ndarray,
                 nt: int = 0) -> KMeansStats:
    """Assignment of rows X (float32, C-contiguous) to ``centers`` and the sums a Lloyd
    step needs. Statistics of disjoint row sets add up (``a + b``) to those of their
    union, so shards compute them apart and a client reduces them. (The inertia adds
    the rows' squared norms, which do not change between steps: :func:`squared_norm`.)"""
    codes, best = _assign(X, centers, bounds, nt)
    sums, counts = _core.pq_accumulate(X, codes, bounds, centers.shape[0], num_threads=nt)
    return KMeansStats(sums, counts, float(best.sum(dtype=np.float64)))


def squared_norm(X: np.ndarray, bounds: np.ndarray) -> float:
    """Sum of the squared values of rows X (float64, summed segment by segment)."""
    return float(ProductQuantizer._segment_sq_norms(X, bounds).sum())


def farthest_rows(X: np.ndarray, centers: np.ndarray, bounds: np.ndarray, want: dict[int, int],
                  row_ids: np.ndarray | None = None, nt: int = 0) -> dict[int, tuple]:
    """Per segment m of ``want``, the ``want[m]`` rows of X farthest from their own centroid
    there (ties: lower id): (distances, ids, their segment values). ``row_ids``: increasing
    ids of X's rows (default 0, 1, ...).

    Empty clusters take these rows (:meth:`ProductQuantizer._update`); the
    candidates of several parts merge with :func:`merge_farthest`.
    """
    _, best = _assign(X, centers, bounds, nt)
    xnorm = ProductQuantizer._segment_sq_norms(X, bounds)
    out = {}
    for m, e in want.items():
        dist = xnorm[:, m] + best[:, m]
        order = np.lexsort((np.arange(dist.size), -dist))[:e]
        s, t = int(bounds[m]), int(bounds[m + 1])
        ids = order.astype(np.int64) if row_ids is None else np.asarray(row_ids)[order]
        out[m] = (dist[order], ids, X[order, s:t])
    return out


def merge_farthest(a: dict[int, tuple], b: dict[int, tuple], want: dict[int, int]
                   ) -> dict[int, tuple]:
    """The :func:`farthest_rows` of two parts' candidates together."""
    out = {}
    for m, e in want.items():
        d = np.concatenate([a[m][0], b[m][0]])
        rows = np.concatenate([a[m][1], b[m][1]])
        vals = np.concatenate([a[m][2], b[m][2]])
        order = np.lexsort((rows, -d))[:e]
        out[m] = (d[order], rows[order], vals[order])
    return out


class ProductQuantizer(SpectrumTransformer):
    """Product quantiser over contiguous wavelength segments.

    Parameters
    ----------
    n_segments : int
        Number of contiguous segments M (1 <= M <= n_pixels). Uneven splits:
        the first ``n_pixels % M`` segments are one pixel longer.
    n_centroids : int
        Centroids per segment K (1 .. 65536). Codes are uint8 when K <= 256,
        uint16 otherwise.
    random_state : None, int, numpy Generator or RandomState
        Seeds the training subsample and the k-means++ seeding (the policy
        of every pyspec model, :func:`pyspec.models.base.check_random_state`).
        Training is deterministic for a given int, whatever the thread count.
    n_iter : int
        Maximum Lloyd iterations after seeding (faiss uses 25 as well).
    tol : float
        Stop when the relative decrease of the total quantisation error
        between two iterations is at most ``tol`` (with 0, stop only when the
        error stops decreasing).
    init : {"k-means++", "random"}
        Seeding: k-means++ (D^2 sampling, per segment, in C++) or K distinct
        random training rows (faiss's choice; faster, worse on rare shapes).
    max_points_per_centroid : int or None
        Train on at most ``K * max_points_per_centroid`` randomly chosen rows
        (faiss's default is 256); None uses every row.
    output : {"codes", "reconstruction"}, default "codes"
        What :meth:`transform` returns: :meth:`encode`'s codes or the
        :meth:`decode`-d spectra.

    Attributes
    ----------
    codebook_ : ndarray of shape (n_centroids, n_features_in_), float32
        Row ``j`` holds centroid ``j`` of every segment side by side:
        segment ``m``'s centroid ``j`` is ``codebook_[j, bounds[m]:bounds[m+1]]``.
    segment_bounds_ : ndarray of shape (n_segments + 1,), int64
    n_features_in_ : int
    inertia_ : float
        Total squared quantisation error of the training rows at the last
        assignment, from the kernels' ||c||^2 - 2 x.c scores (float32: absolute
        error about 1e-7 * sum ||x||^2).
    n_iter_ : int
        Lloyd iterations run.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 40)).astype(np.float32)
    >>> pq = ProductQuantizer(n_segments=4, n_centroids=16, random_state=0).fit(X)
    >>> codes = pq.encode(X)
    >>> codes.dtype, codes.shape
    (dtype('uint8'), (500, 4))
    >>> pq.decode(codes).shape
    (500, 40)
    """

    _FITTED_ATTR = "codebook_"
    _OUTPUTS = _OUTPUTS
    _FLOAT_OUTPUT = "reconstruction"  # codes are uint8/uint16 whatever the input

    def __init__(self, n_segments: int = 25, n_centroids: int = 256, *,
                 random_state: Any = None, n_iter: int = 25, tol: float = 1e-4,
                 init: str = "k-means++", max_points_per_centroid: int | None = 256,
                 output: str = "codes") -> None:
        self.n_segments = n_segments
        self.n_centroids = n_centroids
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.init = init
        self.max_points_per_centroid = max_points_per_centroid
        self.output = output

    # ---- helpers ---------------------------------------------------------

    @property
    def code_dtype(self) -> np.dtype:
        """uint8 when n_centroids <= 256, else uint16."""
        return np.dtype(np.uint8 if self.n_centroids <= 256 else np.uint16)

    def _set_codebook(self, codebook: np.ndarray, bounds: np.ndarray) -> None:
        """Store centroids; the kernels' blocked, padded layout is built in C++."""
        self.codebook_ = np.ascontiguousarray(codebook, dtype=np.float32)
        self.segment_bounds_ = np.ascontiguousarray(bounds, dtype=np.int64)
        self.n_features_in_ = self.codebook_.shape[1]
        self._ctb, self._cnorm = _core.pq_layout(self.codebook_, self.segment_bounds_)
        self._bounds_copy: tuple | None | bool = False  # False: not built yet

    def _bound_copy(self) -> tuple | None:
        """8-bit copy of the codebook for single-query searches, or None.

        With thousands of centroids the codebook (32 MB at 2500 pixels x 3200
        centroids) is read from memory for every query's distance table. The
        kernels then build lower bounds of the table from this copy (a
        quarter of the bytes, :func:`int8_bound_copy`), prune with them, and
        compute exact entries from ``codebook_`` only for the spectra that
        survive, so results are unchanged (csrc/pq.hpp, "Bound tables").
        Built on first use (it costs n_centroids x n_features bytes); None
        when the codebook is small enough to stay in cache, or its values
        cannot be scaled.
        """
        if self._bounds_copy is False:
            M = len(self.segment_bounds_) - 1
            kp = len(self._cnorm) // M
            pays = _core.pq_bound_copy_pays(kp, self.n_features_in_)
            self._bounds_copy = (_core.pq_bound_copy(self.codebook_, self.segment_bounds_)
                                 if pays else None)
        return self._bounds_copy

    def _kernel_args(self) -> tuple:
        return self._ctb, self._cnorm, self.segment_bounds_, self.codebook_.shape[0]

    def _encode_raw(self, X: np.ndarray, with_best: bool, nt: int):
        fn = _core.pq_encode if self.codebook_.shape[0] <= 256 else _core.pq_encode16
        return fn(X, *self._kernel_args(), with_best=with_best, num_threads=nt)

    @staticmethod
    def _segment_sq_norms(X: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], len(bounds) - 1), dtype=np.float64)
        for r in range(0, X.shape[0], _CHUNK):
            sq = np.square(X[r:r + _CHUNK], dtype=np.float64)
            out[r:r + _CHUNK] = np.add.reduceat(sq, bounds[:-1], axis=1)
        return out

    # ---- estimator API ---------------------------------------------------

    def fit(self, X: Any, y: object = None, num_threads: int | None = None) -> ProductQuantizer:
        """Learn one k-means codebook per segment.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_pixels), float32
            Preprocessed training spectra (other real dtypes are converted to
            float32). NaN/Inf rows are rejected.
        y : ignored
        num_threads : int or None
            Threads for the kernels (None = OpenMP default).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad hyper-parameters, NaN/Inf in X, or fewer training spectra than
            ``n_centroids``.
        TypeError
            Non-numeric X or hyper-parameters of the wrong type.
        """
        nt = check_num_threads(num_threads)
        self._check_output()
        X = reject_unsupported(X)
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (n_spectra, n_pixels), got {describe(X)}")
        X = as_float_matrix(X, "X")
        bounds, rng, rows = self._kmeans_plan(*X.shape)
        if rows is not None:
            X = np.ascontiguousarray(X[rows])
        centers = self._kmeans_init(X, bounds, rng, nt)
        self._lloyd(centers, bounds, squared_norm(X, bounds),
                    lambda c: kmeans_stats(X, c, bounds, nt),
                    lambda c, want: farthest_rows(X, c, bounds, want, None, nt))
        return self

    def _kmeans_plan(self, n: int, D: int) -> tuple[np.ndarray, np.random.Generator,
                                                    np.ndarray | None]:
        """Checked parameters for n training spectra of D pixels: (segment bounds, the
        random generator, the sorted rows k-means trains on or None for all rows)."""
        check_has_pixels(n, D)
        M = _check_int(self.n_segments, "n_segments", 1, max(D, 1))
        K = _check_int(self.n_centroids, "n_centroids", 1, _MAX_CENTROIDS)
        _check_int(self.n_iter, "n_iter", 0, 1 << 30)
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a real number >= 0, got {self.tol!r}")
        if self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++' or 'random', got {self.init!r}")
        if n < K:
            raise ValueError(
                f"n_centroids={K} is more than the {n} training spectra (n_samples = {n}): "
                "k-means needs at least "
                f"one spectrum per centroid; train on at least {K} spectra or lower n_centroids")
        bounds = segment_bounds(D, M)
        rng = check_random_state(self.random_state)
        mppc = self.max_points_per_centroid
        rows = None
        if mppc is not None:
            mppc = _check_int(mppc, "max_points_per_centroid", 1, 1 << 40)
            if n > K * mppc:
                rows = np.sort(rng.choice(n, size=K * mppc, replace=False))
        return bounds, rng, rows

    def _init_rows(self, n_train: int, rng: np.random.Generator) -> np.ndarray | None:
        """Training rows (0..n_train-1) that seed the centroids for init="random" (drawn
        from ``rng``); None for k-means++, which reads every training row."""
        if self.init == "k-means++":
            return None
        return np.sort(rng.choice(n_train, size=int(self.n_centroids), replace=False))

    def _kmeans_init(self, X: np.ndarray, bounds: np.ndarray, rng: np.random.Generator,
                     nt: int) -> np.ndarray:
        """Initial centroids from the training rows X: k-means++ per segment (C++) or the
        rows :meth:`_init_rows` draws."""
        rows = self._init_rows(X.shape[0], rng)
        if rows is not None:
            return np.ascontiguousarray(X[rows])
        seeds = rng.integers(0, 2**63 - 1, size=len(bounds) - 1, dtype=np.int64).astype(np.uint64)
        return _core.pq_kmeanspp(X, bounds, int(self.n_centroids), seeds, num_threads=nt)

    def _lloyd(self, centers: np.ndarray, bounds: np.ndarray, xnorm_total: float,
               stats: Any, farthest: Any) -> None:
        """Lloyd iterations from ``centers``; sets the codebook, ``inertia_`` and ``n_iter_``.

        ``xnorm_total``: :func:`squared_norm` of every training row.

        ``stats(centers)`` is :func:`kmeans_stats` summed over every training row
        and ``farthest(centers, want)`` :func:`farthest_rows` merged over them
        (only called when a cluster is empty): :meth:`fit` computes both over
        its array, a streamed fit (:mod:`pyspec.distributed.fit`) per shard,
        reduced. Same statistics, same centroids (up to the order of float64
        additions).
        """
        prev = None
        inertia = np.inf
        it = 0
        for it in range(1, int(self.n_iter) + 1):  # noqa: B007 (it is read after the loop)
            part = stats(centers)
            inertia = max(xnorm_total + part.best_total, 0.0)
            centers = self._update(centers, part.sums, part.counts, bounds, farthest)
            if prev is not None and prev - inertia <= self.tol * prev:
                break
            prev = inertia
        self._set_codebook(centers, bounds)
        if int(self.n_iter) == 0:
            inertia = max(xnorm_total + stats(centers).best_total, 0.0)
        self.inertia_ = inertia
        self.n_iter_ = it

    @staticmethod
    def _update(centers: np.ndarray, sums: np.ndarray, counts: np.ndarray, bounds: np.ndarray,
                farthest: Any) -> np.ndarray:
        """New centroids = cluster means; an empty cluster takes the training
        row farthest from its own centroid in that segment (ties: lower row)."""
        new = centers.copy()
        want = {}
        for m in range(len(bounds) - 1):
            s, e = int(bounds[m]), int(bounds[m + 1])
            cnt = counts[m]
            full = cnt > 0
            new[full, s:e] = (sums[full, s:e] / cnt[full, None]).astype(np.float32)
            if not full.all():
                want[m] = int(np.count_nonzero(~full))
        if want:
            rows = farthest(centers, want)
            for m, values in rows.items():
                s, e = int(bounds[m]), int(bounds[m + 1])
                new[np.flatnonzero(counts[m] == 0), s:e] = values[2]
        return new

    def transform(self, X: Any, num_threads: int | None = None) -> np.ndarray:
        """Codes (``output="codes"``, :meth:`encode`) or reconstructed spectra
        (``output="reconstruction"``, ``decode(encode(X))``) of spectra X."""
        self._check_fitted()
        codes = self.encode(X, num_threads)
        return codes if self._check_output() == "codes" else self.decode(codes)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``productquantizer_segment<m>`` per code column, or the input's
        names (``x0``.. when fitted without names) for reconstructions."""
        self._check_fitted()
        names = _check_feature_names_in(self, input_features, generate_names=True)
        if self._check_output() == "reconstruction":
            return np.asarray(names, dtype=object)
        return np.asarray([f"productquantizer_segment{m}"
                           for m in range(len(self.segment_bounds_) - 1)], dtype=object)

    def encode(self, X: Any, num_threads: int | None = None) -> np.ndarray:
        """Codes of the nearest centroid in every segment.

        Parameters
        ----------
        X : array-like of shape (n_spectra, n_features_in_), float32
        num_threads : int or None

        Returns
        -------
        codes : ndarray of shape (n_spectra, n_segments), uint8 (K <= 256) or uint16
        """
        self._check_fitted()
        nt = check_num_threads(num_threads)
        X = reject_unsupported(X)
        self._check_n_features(X)
        if X.ndim == 1:
            X = X[np.newaxis, :]
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (n_spectra, n_pixels), got shape {X.shape}")
        out = np.empty((X.shape[0], len(self.segment_bounds_) - 1), dtype=self.code_dtype)
        for r in range(0, X.shape[0], _CHUNK):
            chunk = as_float_matrix(X[r:r + _CHUNK], "X", n_features=self.n_features_in_)
            out[r:r + chunk.shape[0]] = self._encode_raw(chunk, False, nt)
        return out

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstruct spectra from codes.

        Parameters
        ----------
        codes : array-like of shape (n_spectra, n_segments), integer, values < n_centroids

        Returns
        -------
        ndarray of shape (n_spectra, n_features_in_), float32
        """
        self._check_fitted()
        codes = self.check_codes(codes)
        out = np.empty((codes.shape[0], self.n_features_in_), dtype=np.float32)
        b = self.segment_bounds_
        for m in range(len(b) - 1):
            out[:, b[m]:b[m + 1]] = self.codebook_[codes[:, m], b[m]:b[m + 1]]
        return out

    def check_codes(self, codes: Any) -> np.ndarray:
        """Validate codes (shape, integer dtype, range) and return them C-contiguous
        in :attr:`code_dtype` (the one deliberate conversion)."""
        self._check_fitted()
        arr = np.asarray(codes)
        M = len(self.segment_bounds_) - 1
        if arr.dtype.kind not in "iu":
            raise TypeError(f"codes: expected an integer array (n, {M}), got {describe(arr)}; "
                            "use ProductQuantizer.encode to make codes from spectra")
        if arr.ndim == 1:
            arr = arr[np.newaxis, :]
        if arr.ndim != 2 or arr.shape[1] != M:
            raise ValueError(f"codes: expected shape (n, {M}) for {M} segments, got {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.codebook_.shape[0]):
            raise ValueError(f"codes: values must be in [0, {self.codebook_.shape[0] - 1}], got "
                             f"[{arr.min()}, {arr.max()}]")
        return np.ascontiguousarray(arr, dtype=self.code_dtype)

    def distance_tables(self, queries: Any, num_threads: int | None = None) -> np.ndarray:
        """Squared L2 distance of every query segment to every centroid.

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_features_in_), float32

        Returns
        -------
        ndarray of shape (n_queries, n_segments, n_centroids), float32
            ``tables[q, m, j] = ||queries[q, segment m] - centroid j of segment m||^2``.
        """
        self._check_fitted()
        nt = check_num_threads(num_threads)
        Q = as_float_matrix(queries, "queries", n_features=self.n_features_in_)
        return _core.pq_tables(Q, *self._kernel_args(), num_threads=nt)

    # ---- persistence -----------------------------------------------------

    def _meta(self) -> dict:
        params = self.get_params()
        rs = params.pop("random_state")
        params["random_state"] = rs if rs is None or isinstance(rs, int) else None
        return {"params": params, "inertia": float(self.inertia_), "n_iter": int(self.n_iter_)}

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted quantiser to ``path`` (pyspec container, kind b"QM")."""
        self._check_fitted()
        write_container(path, _KIND, {"codebook": self.codebook_,
                                      "bounds": self.segment_bounds_}, self._meta())

    @classmethod
    def _from_parts(cls, arrays: dict, meta: dict, source: str) -> ProductQuantizer:
        try:
            params = dict(meta["params"])
            codebook = arrays["codebook"]
            bounds = arrays["bounds"]
            pq = cls(**params)
            K, D = codebook.shape
            M = int(params["n_segments"])
            ok = (codebook.dtype == np.float32 and bounds.dtype == np.int64
                  and K == int(params["n_centroids"]) and 1 <= K <= _MAX_CENTROIDS
                  and np.array_equal(bounds, segment_bounds(D, M))
                  and np.isfinite(codebook).all())
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{source}: not a valid product quantiser ({exc})") from None
        if not ok:
            raise IndexFormatError(f"{source}: product quantiser arrays are inconsistent "
                                   "(corrupted file?)")
        pq._set_codebook(np.array(codebook), np.array(bounds))
        pq.inertia_ = float(meta.get("inertia", np.nan))
        pq.n_iter_ = int(meta.get("n_iter", 0))
        return pq

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProductQuantizer:
        """Read a quantiser written by :meth:`save`.

        Raises
        ------
        IndexFormatError
            The file is truncated, corrupted or holds another kind of object.
        """
        arrays, meta = read_container(path, _KIND)
        return cls._from_parts(arrays, meta, str(path))
