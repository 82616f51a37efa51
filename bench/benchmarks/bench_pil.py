"""asv: PILHasher fit/transform time, fit peak memory and code quality."""

from __future__ import annotations

import numpy as np

from pyspec import LSHHasher, PILHasher
from pyspec.evaluate import euclidean_recall, precision_recall, synthetic_labelled_spectra


class PILFit:
    params = ([5_000, 20_000], [64, 256], [1, 2])
    param_names = ["n", "n_bits", "num_threads"]
    timeout = 600

    def setup(self, n, n_bits, num_threads):
        self.X, _ = synthetic_labelled_spectra(n, 1000, n_classes=8, noise=0.05, random_state=0)

    def time_fit(self, n, n_bits, num_threads):
        PILHasher(n_bits=n_bits, hidden=(512, 384), random_state=0).fit(
            self.X, num_threads=num_threads)

    def peakmem_fit(self, n, n_bits, num_threads):
        PILHasher(n_bits=n_bits, hidden=(512, 384), random_state=0).fit(
            self.X, num_threads=num_threads)

    def peakmem_reference(self, n, n_bits, num_threads):
        pass


class PILTransform:
    params = ([1, 2],)
    param_names = ["num_threads"]

    def setup_cache(self):
        X, _ = synthetic_labelled_spectra(5_000, 1000, n_classes=8, noise=0.05, random_state=0)
        return PILHasher(n_bits=256, hidden=(512, 384), random_state=0).fit(X), X

    def time_transform(self, cache, num_threads):
        model, X = cache
        model.encode(X, num_threads=num_threads)


class HashQuality:
    """Hash quality (higher is better): Euclidean 10-NN recall among the 100
    Hamming-nearest, and class precision of the 10 Hamming-nearest."""

    params = ([32, 64, 128, 256], ["pil", "lsh"])
    param_names = ["n_bits", "hasher"]
    unit = "recall"
    timeout = 300

    def setup(self, n_bits, hasher):
        self.X, self.y = synthetic_labelled_spectra(3000, 800, n_classes=8, noise=0.05,
                                                    random_state=1)

    def _codes(self, n_bits, hasher):
        model = (PILHasher(n_bits=n_bits, hidden=(512, 384), random_state=0) if hasher == "pil"
                 else LSHHasher(n_bits=n_bits, random_state=0))
        return model.fit(self.X).encode(self.X)

    def track_precision_at_10(self, n_bits, hasher):
        """Fraction of the 10 Hamming-nearest spectra with the query's class."""
        pr = precision_recall(self._codes(n_bits, hasher), self.y, cutoffs=np.array([10]),
                              n_queries=300)
        return float(pr["precision"][0])

    def track_recall_10_at_100(self, n_bits, hasher):
        return euclidean_recall(self._codes(n_bits, hasher), self.X, k=10, n_candidates=100,
                                n_queries=300)
