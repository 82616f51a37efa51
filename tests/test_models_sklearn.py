"""The scikit-learn contract of every pyspec model: estimator checks, the one
random_state policy, constructor-only parameters, transform outputs, and
array and store fits giving the same codes."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted
from sources import ChunkSource

import pyspec
from pyspec import ITQHasher, LSHHasher, PILHasher, ProductQuantizer
from pyspec._bits import unpack_bits
from pyspec.evaluate import synthetic_labelled_spectra

# Small settings: the checks fit on 1 to 30 rows of 1 to 10 features.
CHECKED = [PILHasher(n_bits=8, random_state=0), LSHHasher(n_bits=8, random_state=0),
           ITQHasher(n_bits=1, n_iter=5, random_state=0),
           ProductQuantizer(n_segments=1, n_centroids=2, random_state=0)]


def _expected_failures(estimator: object) -> dict[str, str]:
    """The inherent limits of each model, declared with their reason."""
    return {"check_fit2d_predict1d": "a 1-D array is one spectrum: transform (and encode, "
                                     "embed) accept a single spectrum so that one query "
                                     "needs no reshaping"}


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failures, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def labelled():
    X, y = synthetic_labelled_spectra(600, 300, n_classes=4, noise=0.05, random_state=3)
    return X.astype(np.float32), y


# fast settings for the other tests (explicit small layers, few ITQ iterations)
_FAST = {PILHasher: {"hidden": (64,)}, ITQHasher: {"n_iter": 10}, LSHHasher: {}}


def _models(n_bits: int = 32):
    return [PILHasher(n_bits=n_bits, hidden=(64,)), LSHHasher(n_bits=n_bits),
            ITQHasher(n_bits=n_bits, n_iter=10),
            ProductQuantizer(n_segments=4, n_centroids=8, n_iter=5)]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_random_state_policy(model, labelled):
    X, _ = labelled

    def fitted(rs):
        m = clone(model).set_params(random_state=rs).fit(X[:200])
        return m.encode(X[:50])

    same_int = fitted(3)
    np.testing.assert_array_equal(fitted(3), same_int)
    # a RandomState or Generator in the same state gives the same model; it is consumed
    np.testing.assert_array_equal(fitted(np.random.RandomState(3)),
                                  fitted(np.random.RandomState(3)))
    np.testing.assert_array_equal(fitted(np.random.default_rng(3)),
                                  fitted(np.random.default_rng(3)))
    shared = np.random.RandomState(5)
    assert not np.array_equal(fitted(shared), fitted(shared))
    for bad in ("3", 1.5, True):
        with pytest.raises(TypeError, match="random_state"):
            fitted(bad)
    with pytest.raises(ValueError, match="random_state"):
        fitted(-1)


@pytest.mark.parametrize("cls", [PILHasher, LSHHasher, ITQHasher])
def test_chunk_rows_is_a_parameter_kept_by_clone_and_save(cls, labelled, tmp_path):
    X, _ = labelled
    model = cls(n_bits=32, chunk_rows=100, random_state=0, **_FAST[cls])
    assert model.get_params()["chunk_rows"] == 100
    assert clone(model).chunk_rows == 100
    model.fit(X)
    model.save(tmp_path / "m.pyspec")
    loaded = cls.load(tmp_path / "m.pyspec")
    assert loaded.chunk_rows == 100
    assert loaded.output == "bits"
    np.testing.assert_array_equal(loaded.encode(X), model.encode(X))
    with pytest.raises(ValueError, match="chunk_rows"):
        cls(n_bits=32, chunk_rows=0).fit(X)


@pytest.mark.parametrize("cls", [PILHasher, LSHHasher, ITQHasher])
def test_transform_outputs(cls, labelled):
    X, _ = labelled
    base = cls(n_bits=96, random_state=0, **_FAST[cls]).fit(X)
    codes = base.encode(X)
    assert codes.dtype == np.uint64
    assert codes.shape == (len(X), 2)
    bits = base.transform(X)
    assert bits.dtype == np.uint8
    assert bits.shape == (len(X), 96)
    np.testing.assert_array_equal(bits, unpack_bits(codes, 96).astype(np.uint8))
    np.testing.assert_array_equal(bits, (base.embed(X) > base.thresholds_).astype(np.uint8))
    names = base.get_feature_names_out()
    assert names.tolist()[:2] == [f"{cls.__name__.lower()}_bit0", f"{cls.__name__.lower()}_bit1"]
    packed = clone(base).set_params(output="packed").fit(X)
    np.testing.assert_array_equal(packed.transform(X), codes)
    assert len(packed.get_feature_names_out()) == 2
    emb = clone(base).set_params(output="embedding").fit(X)
    np.testing.assert_array_equal(emb.transform(X), base.embed(X))
    assert len(emb.get_feature_names_out()) == 96
    with pytest.raises(ValueError, match="output must be one of"):
        clone(base).set_params(output="words").fit(X)


def test_product_quantizer_transform(labelled):
    X, _ = labelled
    pq = ProductQuantizer(n_segments=4, n_centroids=8, random_state=0).fit(X)
    np.testing.assert_array_equal(pq.transform(X), pq.encode(X))
    assert pq.get_feature_names_out().tolist() == [f"productquantizer_segment{m}"
                                                   for m in range(4)]
    rec = clone(pq).set_params(output="reconstruction").fit(X)
    np.testing.assert_array_equal(rec.transform(X), pq.decode(pq.encode(X)))
    assert len(rec.get_feature_names_out()) == X.shape[1]


def test_hamming_knn_classifier_on_bits_scores_like_the_engine(labelled):
    """Default output: 0/1 bits, on which scikit-learn's Hamming metric is the
    code distance; the engine's packed words are not (a word's value is no bit count)."""
    X, y = labelled
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    pipe = make_pipeline(PILHasher(n_bits=64, random_state=0),
                         KNeighborsClassifier(5, metric="hamming")).fit(Xa, ya)
    score = pipe.score(Xb, yb)
    # the same vote from pyspec's own Hamming index over the packed codes
    hasher = pipe[0]
    index = pyspec.HammingIndex(64)
    index.add(hasher.encode(Xa))
    votes = ya[index.search(hasher.encode(Xb), 5).ids]
    majority = np.array([np.bincount(v, minlength=y.max() + 1).argmax() for v in votes])
    assert score > 0.8
    assert abs(score - np.mean(majority == yb)) < 0.05


def test_not_fitted_error_is_scikit_learns():
    assert issubclass(pyspec.NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(pyspec.NotFittedError, pyspec.PyspecError)
    for model in _models():
        with pytest.raises(sklearn.exceptions.NotFittedError):
            model.transform(np.zeros((2, 300), np.float32))
        with pytest.raises(sklearn.exceptions.NotFittedError):
            check_is_fitted(model)


@pytest.mark.parametrize("n_spectra", [200, 500], ids=["n<d", "n>d"])
@pytest.mark.parametrize("cls", [ITQHasher, PILHasher, LSHHasher])
def test_store_and_array_fits_give_identical_codes(cls, n_spectra, labelled):
    X = labelled[0][:n_spectra]  # 300 pixels: fewer spectra than pixels, then more
    kw = {"n_bits": 64, "chunk_rows": 64, "random_state": 7, **_FAST[cls]}
    from_array = cls(**kw).fit(X)
    from_store = cls(**kw).fit(ChunkSource(X))
    np.testing.assert_array_equal(from_store.encode(X), from_array.encode(X))
    np.testing.assert_array_equal(from_store.thresholds_, from_array.thresholds_)
    np.testing.assert_array_equal(from_store.encode(ChunkSource(X)), from_array.encode(X))
