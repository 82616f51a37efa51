"""asv benchmarks for product quantisation: training, encoding, ADC search,
index build memory and recall@10 (structured synthetic spectra)."""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from peer_sections.pq import SpectraStream  # noqa: E402

from pyspec import PQIndex, ProductQuantizer  # noqa: E402

D = 2500


def _stream() -> SpectraStream:
    return SpectraStream(D, seed=0)


class PQTrain:
    """k-means++ seeding + 10 Lloyd iterations on 4000 training spectra."""

    params = ([25, 250], [256, 3200], [1, 2])
    param_names = ["n_segments", "n_centroids", "num_threads"]
    timeout = 600

    def setup(self, n_segments: int, n_centroids: int, num_threads: int) -> None:
        self.X = _stream().chunk(1, 4000 if n_centroids <= 256 else 3300)

    def time_fit(self, n_segments: int, n_centroids: int, num_threads: int) -> None:
        ProductQuantizer(n_segments, n_centroids, random_state=0, n_iter=10, tol=0.0).fit(
            self.X, num_threads=num_threads)


class PQEncode:
    """Encoding 5000 spectra (nearest centroid per segment)."""

    params = ([25, 1250], [256, 3200], [1, 2])
    param_names = ["n_segments", "n_centroids", "num_threads"]
    timeout = 600

    def setup_cache(self) -> dict:
        X = _stream().chunk(1, 3300)
        return {(m, k): ProductQuantizer(m, k, random_state=0, n_iter=1).fit(X)
                for m in self.params[0] for k in self.params[1]}

    def setup(self, models: dict, n_segments: int, n_centroids: int, num_threads: int) -> None:
        self.pq = models[n_segments, n_centroids]
        self.X = _stream().chunk(5, 5000)

    def time_encode(self, models: dict, n_segments: int, n_centroids: int,
                    num_threads: int) -> None:
        self.pq.encode(self.X, num_threads=num_threads)


class PQSearch:
    """ADC k=10 search over random codes (scan time does not depend on the
    code values): one query and a batch of 100. The largest case, 1250
    segments x 3200 centroids at 200,000 rows, holds 1 GB of codes (with the
    scan layout) and takes about 20 s per batch; tables are built per query
    (16 MB each), never for the whole batch at once."""

    params = ([20_000, 200_000], [25, 1250], [256, 3200], [1, 2])
    param_names = ["n", "n_segments", "n_centroids", "num_threads"]
    timeout = 600

    def setup_cache(self) -> dict:
        X = _stream().chunk(1, 3300)
        return {(m, k): ProductQuantizer(m, k, random_state=0, n_iter=1).fit(X)
                for m in self.params[1] for k in self.params[2]}

    def setup(self, models: dict, n: int, n_segments: int, n_centroids: int,
              num_threads: int) -> None:
        pq = models[n_segments, n_centroids]
        rng = np.random.default_rng(0)
        self.index = PQIndex(pq)
        self.index.add(rng.integers(0, n_centroids, size=(n, n_segments)).astype(pq.code_dtype))
        self.Q = _stream().chunk(2, 100)

    def time_search_one(self, models, n, n_segments, n_centroids, num_threads) -> None:
        self.index.search(self.Q[:1], 10, num_threads=num_threads)

    def time_search_batch100(self, models, n, n_segments, n_centroids, num_threads) -> None:
        self.index.search(self.Q, 10, num_threads=num_threads)


class PQIndexBuild:
    """Peak memory of encoding and adding 20,000 spectra (D=2500)."""

    params = ([25, 250],)
    param_names = ["n_segments"]
    timeout = 600

    def setup_cache(self) -> dict:
        X = _stream().chunk(1, 3000)
        return {m: ProductQuantizer(m, 256, random_state=0, n_iter=2).fit(X)
                for m in self.params[0]}

    def setup(self, models: dict, n_segments: int) -> None:
        self.pq = models[n_segments]
        self.X = _stream().chunk(6, 20_000)

    def peakmem_reference(self, models: dict, n_segments: int) -> None:
        pass

    def peakmem_build(self, models: dict, n_segments: int) -> None:
        index = PQIndex(self.pq)
        index.add(self.X)


class PQRecall:
    """recall@10 of ADC search (and with exact re-ranking of 100 candidates)
    against exact search, 20,000 structured spectra, 100 queries."""

    params = ([25, 250], [256])
    param_names = ["n_segments", "n_centroids"]
    timeout = 600

    def setup_cache(self) -> dict:
        stream = _stream()
        X = stream.chunk(6, 20_000)
        Q = stream.chunk(2, 100)
        d = (Q * Q).sum(1)[:, None] + (X * X).sum(1)[None, :] - 2.0 * (Q @ X.T)
        truth = np.argsort(d, axis=1)[:, :10]
        out = {}
        for m in self.params[0]:
            for k in self.params[1]:
                pq = ProductQuantizer(m, k, random_state=0, n_iter=10).fit(X[:5000])
                index = PQIndex(pq)
                index.add(X)
                index.attach_vectors(X)
                out[m, k] = (index.search(Q, 10).ids, index.search(Q, 10, rerank=100).ids)
        return {"truth": truth, "found": out}

    @staticmethod
    def _recall(found: np.ndarray, truth: np.ndarray) -> float:
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))

    def track_recall_at_10(self, cache: dict, n_segments: int, n_centroids: int) -> float:
        return self._recall(cache["found"][n_segments, n_centroids][0], cache["truth"])

    track_recall_at_10.unit = "recall"

    def track_recall_at_10_rerank100(self, cache: dict, n_segments: int,
                                     n_centroids: int) -> float:
        return self._recall(cache["found"][n_segments, n_centroids][1], cache["truth"])

    track_recall_at_10_rerank100.unit = "recall"
