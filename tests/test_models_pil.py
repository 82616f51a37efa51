"""PILHasher: balanced bits, determinism, reconstruction, neighbour recall, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from pyspec import IndexFormatError, LSHHasher, NotFittedError, PILHasher
from pyspec._bits import pack_bits, unpack_bits
from pyspec.evaluate import euclidean_recall, synthetic_labelled_spectra
from sources import ChunkSource

HIDDEN = (128, 96)


@pytest.fixture(scope="module")
def spectra():
    X, y = synthetic_labelled_spectra(900, 200, n_classes=6, noise=0.05, random_state=3)
    return X, y


@pytest.fixture(scope="module")
def fitted(spectra):
    return PILHasher(n_bits=64, hidden=HIDDEN, random_state=7).fit(spectra[0])


def test_fit_returns_self_and_codes_layout(spectra):
    X, _ = spectra
    model = PILHasher(n_bits=64, hidden=HIDDEN, random_state=0)
    assert model.fit(X) is model
    codes = model.encode(X)
    assert codes.dtype == np.uint64 and codes.shape == (len(X), 1)
    emb = model.embed(X)
    assert emb.dtype == np.float32 and emb.shape == (len(X), 64)
    np.testing.assert_array_equal(codes, pack_bits(emb > model.thresholds_))
    assert model.n_features_in_ == X.shape[1] and model.n_bits == 64
    assert [w.shape for w in model.encoder_weights_] == [(200, 128), (128, 96), (96, 64)]
    assert [b.shape for b in model.decoders_] == [(128, 200), (96, 128), (64, 96)]


@pytest.mark.parametrize("n_bits", [32, 128, 256])
def test_code_lengths(spectra, n_bits):
    X, _ = spectra
    codes = PILHasher(n_bits=n_bits, hidden=(n_bits,), random_state=0).fit(X[:400]).encode(X[:400])
    assert codes.shape == (400, (n_bits + 63) // 64)
    bits = unpack_bits(codes, ((n_bits + 63) // 64) * 64)
    assert not bits[:, n_bits:].any()  # 32-bit codes: upper half of the word is zero


@pytest.mark.parametrize(("init", "encoder"), [("orthogonal", "beta"), ("orthogonal", "random"),
                                               ("pinv", "beta"), ("pinv", "random")])
def test_every_bit_balanced(spectra, init, encoder):
    X, _ = spectra
    train, test = X[:700], X[700:]
    model = PILHasher(n_bits=64, hidden=HIDDEN, init=init, encoder=encoder, random_state=1)
    frac = unpack_bits(model.fit(train).encode(train), 64).mean(axis=0)
    # Exact medians: half the training spectra, up to float32 ties at the
    # median (measured: at most one spectrum off, with pinv + beta).
    assert np.all(np.abs(frac - 0.5) <= 2 / len(train))
    # Held-out spectra of the same population: 0.5 within sampling error.
    # 4.5 sigma of a binomial with n=200 is 0.16 (p ~ 1e-5 per bit, so no
    # false alarm over 4 x 64 bits); measured worst bit 0.09 (orthogonal) and
    # 0.145 (pinv + random: whitened features fit the calibration sample).
    frac_test = unpack_bits(model.encode(test), 64).mean(axis=0)
    assert np.all(np.abs(frac_test - 0.5) < 4.5 * np.sqrt(0.25 / len(test)))


def test_same_seed_same_codes_any_thread_count(spectra, fitted, num_threads):
    X, _ = spectra
    model = PILHasher(n_bits=64, hidden=HIDDEN, random_state=7).fit(X, num_threads=num_threads)
    np.testing.assert_array_equal(model.encode(X, num_threads=num_threads), fitted.encode(X))
    other = PILHasher(n_bits=64, hidden=HIDDEN, random_state=8).fit(X)
    assert not np.array_equal(other.encode(X), fitted.encode(X))


def test_reconstruction_beats_random_output_weights(spectra, fitted):
    X, _ = spectra
    rng = np.random.default_rng(0)
    for layer, beta in enumerate(fitted.decoders_):
        learned = fitted.reconstruction_error(X, layer)
        # Random output weights of the same size and scale, and the best
        # random weights rescaled by least squares, both do far worse.
        rand = rng.standard_normal(beta.shape).astype(np.float32) * beta.std()
        assert learned < 0.5 * fitted.reconstruction_error(X, layer, decoder=rand)
        assert learned < 0.5 * fitted.reconstruction_error(X, layer, decoder=np.zeros_like(beta))
    # Measured: each layer reconstructs its input to ~0.15 % (relative
    # squared error) against > 100 % with random output weights.
    assert fitted.reconstruction_error(X, 0) < 0.02


def test_hamming_neighbours_beat_lsh(spectra):
    X, _ = spectra
    pil = PILHasher(n_bits=64, hidden=HIDDEN, random_state=0).fit(X).encode(X)
    lsh = LSHHasher(n_bits=64, random_state=0).fit(X).encode(X)
    r_pil = euclidean_recall(pil, X, k=10, n_candidates=50, n_queries=200)
    r_lsh = euclidean_recall(lsh, X, k=10, n_candidates=50, n_queries=200)
    # Measured 0.92 (PIL) vs 0.79 (LSH) at 64 bits on these spectra.
    assert r_pil > r_lsh + 0.07
    assert r_pil > 0.85


def test_save_load_round_trip(tmp_path, spectra, fitted):
    X, _ = spectra
    path = tmp_path / "pil.pyspec"
    fitted.save(path)
    loaded = PILHasher.load(path)
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.encode(X), fitted.encode(X))
    np.testing.assert_array_equal(loaded.thresholds_, fitted.thresholds_)
    assert loaded.solve_info_ == fitted.solve_info_
    with pytest.raises(IndexFormatError, match="expected 'LS'"):
        LSHHasher.load(path)


def test_get_params_round_trip_and_clone(fitted):
    params = fitted.get_params()
    assert params["hidden"] == HIDDEN and params["n_bits"] == 64
    twin = PILHasher(**params)
    assert twin.get_params() == params
    assert clone(fitted).get_params() == params
    assert not hasattr(clone(fitted), "thresholds_")
    twin.set_params(ridge=0.5)
    assert twin.ridge == 0.5


def test_refit_equals_fresh_fit(spectra):
    X, _ = spectra
    other = X[::-1][:700] * 2.0
    model = PILHasher(n_bits=32, hidden=HIDDEN, random_state=4).fit(other).fit(X)
    fresh = PILHasher(n_bits=32, hidden=HIDDEN, random_state=4).fit(X)
    np.testing.assert_array_equal(model.encode(X), fresh.encode(X))


@pytest.mark.parametrize("encoder", ["beta", "random"])
def test_streaming_fit_matches_in_memory(spectra, encoder):
    X, _ = spectra
    mem = PILHasher(n_bits=64, hidden=HIDDEN, encoder=encoder, random_state=2)
    mem.fit(X)
    stream = PILHasher(n_bits=64, hidden=HIDDEN, encoder=encoder, random_state=2)
    stream.chunk_rows = 257  # many chunks, not aligned with the kernels' blocks
    stream.fit(ChunkSource(X))
    # Same calibration rows, Gram sums equal up to float32 block rounding and
    # thresholds from the two-level histogram: almost every bit agrees
    # (measured 99.95 %), and every bit is still balanced to +-1 spectrum.
    a = unpack_bits(mem.encode(X), 64)
    b = unpack_bits(stream.encode(X), 64)
    assert (a == b).mean() > 0.99
    assert np.all(np.abs(b.sum(axis=0) - len(X) / 2) <= 1)
    codes = stream.fit(ChunkSource(X)).encode(ChunkSource(X))
    np.testing.assert_array_equal(codes, stream.encode(X))


def test_bad_input(spectra):
    X, _ = spectra
    bad = X[:300].copy()
    bad[17, 5] = np.nan
    bad[42, 0] = np.inf
    with pytest.raises(ValueError, match=r"rows 17, 42.*preprocess"):
        PILHasher(n_bits=32, hidden=(64,)).fit(bad)
    with pytest.raises(ValueError, match=r"rows 17, 42"):
        PILHasher(n_bits=32, hidden=(64,)).fit(ChunkSource(bad))
    with pytest.raises(ValueError, match="fewer than the widest hidden layer"):
        PILHasher(n_bits=32, hidden=(512,)).fit(X[:100])
    model = PILHasher(n_bits=32, hidden=(64,), random_state=0)
    with pytest.raises(NotFittedError, match="fit"):
        model.encode(X)
    with pytest.raises(NotFittedError):
        model.save("never-written.pyspec")
    model.fit(X)
    with pytest.raises(ValueError, match="expected 200 pixels"):
        model.encode(X[:, :150])
    with pytest.raises(ValueError, match="NaN"):
        model.encode(bad)
    with pytest.raises(ValueError, match="between 1 and 512"):
        PILHasher(n_bits=600).fit(X)
    with pytest.raises(ValueError, match="init"):
        PILHasher(n_bits=32, hidden=(64,), init="xavier").fit(X)
    with pytest.raises(ValueError, match="encoder"):
        PILHasher(n_bits=32, hidden=(64,), encoder="tied").fit(X)
    with pytest.raises(ValueError, match="ridge"):
        PILHasher(n_bits=32, hidden=(64,), ridge=-1).fit(X)
    with pytest.raises(TypeError, match="real numeric"):
        PILHasher(n_bits=32).fit(np.array([["a"]]))


def test_fit_from_spectrum_store(tmp_path):
    from pyspec import store as store_mod
    from pyspec.cli import main
    from pyspec.preprocess import WavelengthGrid

    X, _ = synthetic_labelled_spectra(600, 140, n_classes=4, noise=0.05, random_state=9)
    path = tmp_path / "store"
    with store_mod.SpectrumStore.create(path, WavelengthGrid.preset("halpha-140")) as w:
        w.append(X[:250], np.ones_like(X[:250]), [{"id": str(i)} for i in range(250)])
        w.append(X[250:], np.ones_like(X[250:]), [{"id": str(i)} for i in range(250, 600)])
    store = store_mod.SpectrumStore.open(path)
    model = PILHasher(n_bits=32, hidden=(96, 64), random_state=0)
    model.chunk_rows = 128
    codes = model.fit(store).encode(store)
    ref = PILHasher(n_bits=32, hidden=(96, 64), random_state=0).fit(X)
    # Same calibration rows (read through the store's memmap), Gram sums that
    # differ only by float32 block rounding, histogram medians: measured
    # > 99.9 % of bits equal.
    assert (unpack_bits(codes, 32) == unpack_bits(ref.encode(X), 32)).mean() > 0.99
    out = tmp_path / "m.pyspec"
    assert main(["train", str(path), "--out", str(out), "--bits", "32", "--hidden", "96,64",
                 "--quiet"]) == 0
    assert PILHasher.load(out).n_features_in_ == 140


def test_memory_mapped_input_streams(tmp_path, spectra, monkeypatch):
    import pyspec.models.base as base

    X, _ = spectra
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    # Memory maps (and arrays above the in-memory limit) go through the
    # chunked path: histogram medians, balanced to +-1 spectrum.
    model = PILHasher(n_bits=32, hidden=(64,), random_state=0)
    codes = model.fit(mm).encode(mm)
    assert np.all(np.abs(unpack_bits(codes, 32).sum(axis=0) - len(X) / 2) <= 1)
    monkeypatch.setattr(base, "_IN_MEMORY_LIMIT", 1000)
    big = PILHasher(n_bits=32, hidden=(64,), random_state=0).fit(np.array(X))
    np.testing.assert_array_equal(big.thresholds_, model.thresholds_)
    bad = np.array(X)
    bad[500, 3] = np.nan
    with pytest.raises(ValueError, match="rows 500"):
        PILHasher(n_bits=32, hidden=(64,)).fit(bad)


@pytest.mark.parametrize("source", ["array", "stream"])
def test_each_spectrum_codes_the_same_alone_as_in_a_batch(spectra, source):
    # An odd count puts the plain median exactly on one training spectrum's
    # value; thresholds must sit between values so that last-ulp differences
    # between a batched and a single-row forward pass cannot flip that bit.
    X = spectra[0][:301]
    data = X if source == "array" else ChunkSource(X)
    hasher = PILHasher(n_bits=64, hidden=HIDDEN, random_state=7).fit(data)
    emb = hasher.embed(X)
    assert np.abs(emb - hasher.thresholds_).min() > 0
    batch = hasher.encode(X)
    for i in range(0, 301, 10):
        np.testing.assert_array_equal(hasher.encode(X[i:i + 1])[0], batch[i])
