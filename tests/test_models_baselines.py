"""LSH and ITQ baselines: same API as PILHasher, correct codes, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from pyspec import ITQHasher, LSHHasher, NotFittedError
from pyspec._bits import pack_bits, unpack_bits
from pyspec.evaluate import synthetic_labelled_spectra
from sources import ChunkSource


@pytest.fixture(scope="module")
def X():
    return synthetic_labelled_spectra(600, 150, n_classes=4, random_state=5)[0]


@pytest.mark.parametrize("cls", [LSHHasher, ITQHasher])
def test_api_and_persistence(tmp_path, X, cls, num_threads):
    model = cls(n_bits=64, random_state=3)
    with pytest.raises(NotFittedError):
        model.embed(X)
    assert model.fit(X, num_threads=num_threads) is model
    codes = model.encode(X, num_threads=num_threads)
    assert codes.shape == (len(X), 1) and codes.dtype == np.uint64
    np.testing.assert_array_equal(codes, pack_bits(model.embed(X) > 0))
    again = cls(n_bits=64, random_state=3).fit(X, num_threads=1)
    np.testing.assert_array_equal(again.encode(X, num_threads=1), codes)
    model.save(tmp_path / "m.pyspec")
    loaded = cls.load(tmp_path / "m.pyspec")
    assert loaded.get_params() == model.get_params() == clone(model).get_params()
    np.testing.assert_array_equal(loaded.encode(X), codes)
    with pytest.raises(ValueError, match="expected 150 pixels"):
        model.encode(X[:, :10])


def test_lsh_is_sign_of_centred_projection(X):
    model = LSHHasher(n_bits=128, random_state=0).fit(X)
    ref = (X.astype(np.float64) - X.mean(axis=0)) @ model.projection_.astype(np.float64) > 0
    bits = unpack_bits(model.encode(X), 128)
    # float32 products: only values within ~1e-6 of zero may flip.
    assert (bits != ref).mean() < 1e-3
    np.testing.assert_allclose(model.mean_, X.mean(axis=0), atol=1e-6)


def test_itq_rotation_lowers_quantisation_loss(X):
    def loss(m):
        v = (X.astype(np.float64) - m.mean_) @ m.projection_.astype(np.float64)
        return np.sum((np.where(v >= 0, 1.0, -1.0) - v / np.abs(v).mean()) ** 2)

    pca_only = ITQHasher(n_bits=32, n_iter=0, random_state=0).fit(X)
    itq = ITQHasher(n_bits=32, n_iter=50, random_state=0).fit(X)
    assert loss(itq) < loss(pca_only)
    r = itq.rotation_.astype(np.float64)
    np.testing.assert_allclose(r @ r.T, np.eye(32), atol=1e-5)
    # Principal directions: orthonormal, top variance.
    c = itq.components_.astype(np.float64)
    np.testing.assert_allclose(c.T @ c, np.eye(32), atol=1e-5)


def test_itq_streaming_matches_in_memory(X):
    big = np.concatenate([X, X[:, ::-1]], axis=1)[:, :140]  # n > d: covariance path
    mem = ITQHasher(n_bits=32, random_state=1).fit(big)
    stream = ITQHasher(n_bits=32, random_state=1)
    stream.chunk_rows = 100
    stream.fit(ChunkSource(big))
    np.testing.assert_allclose(np.abs(stream.components_.T @ mem.components_).diagonal(), 1,
                               atol=1e-3)
    agree = (unpack_bits(stream.encode(big), 32) == unpack_bits(mem.encode(big), 32)).mean()
    assert agree > 0.99


def test_itq_bad_input(X):
    with pytest.raises(ValueError, match="n_bits <= min"):
        ITQHasher(n_bits=256).fit(X[:100])
    with pytest.raises(ValueError, match="between 1 and 512"):
        LSHHasher(n_bits=0).fit(X)
    with pytest.raises(ValueError, match="at least 2"):
        LSHHasher(n_bits=32).fit(X[:1])
