"""Multi-layer pseudo-inverse-learning (ML-PIL) hashing of spectra.

Each layer is a PIL autoencoder (Guo & Lyu 2004, "A pseudoinverse learning
algorithm for feedforward neural networks with stacked generalization
applications to software reliability growth data", Neurocomputing 56;
Wang, Guo & Xin 2017, "A pseudoinverse incremental algorithm for fast
training deep neural networks with application to spectra pattern
recognition" / PILAE): input weights ``W`` (random orthogonal, or the
truncated pseudo-inverse of the layer input as in PILAE and Xu & Guo 2018),
hidden output ``H = g(X W + b)``, and output weights from the regularised
pseudo-inverse ``beta = (H^T H + lambda I)^-1 H^T X``, with no gradient
descent. The next layer's input is either this layer's hidden output
(``encoder="random"``: the input weights stay the encoder) or, as in the
PILAE/ELM-autoencoder literature, ``g(X beta^T + c)`` (``encoder="beta"``:
the learned decoder, transposed, becomes the encoder). The last layer has
``n_bits`` units; each is thresholded at its median over the training set
(every bit is 1 for half the spectra) and the bits are packed into the
Hamming engine's uint64 layout.

Scaling: before a layer is used, each unit's pre-activation is centred and
the layer's weights are scaled by one common factor so the pre-activations
have a standard deviation of 0.25 overall on a calibration sample of the training spectra
(``n_calibration`` rows): the sigmoid works near its linear range whatever
the flux normalisation, and the units keep their relative weights.

Streaming: ``fit`` accepts an array or a SpectrumStore (``iter_chunks``). The
Gram sums ``H^T H`` and ``H^T X`` are accumulated chunk by chunk by the
compiled kernels (:mod:`pyspec.linalg`), so memory is bounded by the chunk
size and the layer widths, never by the number of spectra. Passes over the
data: one for all layers with ``encoder="random"`` (the systems are solved
together in one batched call), one per layer with ``encoder="beta"``, plus
two for the median thresholds (two-level histograms, see
:func:`pyspec.models.base.streaming_median`); an in-memory array uses exact
``np.median``. The passes go through two hooks, so they can also run where
the spectra are: :meth:`PILHasher._layer_stats` gives a block of spectra's
Gram sums (partial sums add up, :func:`add_layer_stats`) and
:meth:`PILHasher._fit_layers` solves the layers from summed statistics;
:mod:`pyspec.distributed.fit` computes them per shard on a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from pyspec import linalg
from pyspec._validation import as_float_matrix
from pyspec.models.base import BaseHasher, check_n_bits, is_chunked_source, iter_source

_INITS = ("orthogonal", "pinv")
_ENCODERS = ("random", "beta")


def auto_hidden(n_spectra: int, n_bits: int) -> tuple[int, int]:
    """Hidden widths for ``hidden="auto"``: (1024, 512), shrunk to half the
    number of training spectra (never below ``n_bits``) for small sets."""
    cap = max(int(n_bits), int(n_spectra) // 2)
    return (max(n_bits, min(1024, cap)), max(n_bits, min(512, cap)))


def _orthogonal(rng: np.random.Generator, d: int, p: int) -> np.ndarray:
    """(d, p) matrix with orthonormal columns (p <= d) or rows (p > d)."""
    a = rng.standard_normal((max(d, p), min(d, p)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # unique factor: deterministic for a given draw
    return q if p <= d else q.T


def _truncated_pinv(S: np.ndarray, p: int, rng: np.random.Generator) -> np.ndarray:
    """Input-space factor of the rank-p truncated pseudo-inverse of S (m, d).

    With S = U diag(s) V^T, the truncated pseudo-inverse is
    V_p diag(1/s_p) U_p^T; its input-space factor W = V_p diag(1/s_p) maps
    S to U_p (PILAE's encoder). Directions beyond the numerical rank are
    filled with random orthogonal columns.
    """
    _, s, vt = np.linalg.svd(S.astype(np.float64), full_matrices=False)
    r = int(np.sum(s > s[0] * 1e-6)) if s.size and s[0] > 0 else 0
    k = min(p, r)
    W = np.empty((S.shape[1], p))
    W[:, :k] = vt[:k].T / s[:k]
    if k < p:
        W[:, k:] = _orthogonal(rng, S.shape[1], p - k) if p - k <= S.shape[1] else \
            rng.standard_normal((S.shape[1], p - k)) / np.sqrt(S.shape[1])
    return W


# Standard deviation of every layer's pre-activations on the calibration
# sample. 0.25 keeps the sigmoid close to its linear range (slope 0.25 at 0):
# on the real spectra precision@10 rose from 0.54 (std 1) to 0.62, and on
# simulated spectra the Euclidean 10-NN recall from 0.91 to 0.94
# (bench/RESULTS.md, "ML-PIL hashing"); std 2 was worse on both.
_PREACTIVATION_STD = 0.25


def _standardise(S: np.ndarray, W: np.ndarray, nt: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Centre each unit and scale the whole layer to _PREACTIVATION_STD.

    One scale for the layer (the RMS of the centred pre-activations), not one
    per unit, keeps the units' relative variances: per-unit scaling whitens,
    lifting noise directions to the weight of the signal.
    """
    W = np.ascontiguousarray(W, dtype=np.float32)
    Z = linalg.dense_forward(S, W, None, "identity", nt).astype(np.float64)
    mu = Z.mean(axis=0)
    sd = float(np.sqrt(np.mean((Z - mu) ** 2))) / _PREACTIVATION_STD
    if not sd > 1e-30:
        sd = 1.0
    return (W / sd).astype(np.float32), (-mu / sd).astype(np.float32)


def add_layer_stats(a: list[linalg.GramAccumulator], b: list[linalg.GramAccumulator]
                    ) -> list[linalg.GramAccumulator]:
    """The sum of two parts' :meth:`PILHasher._layer_stats` (new accumulators: a cluster may
    still hold the parts)."""
    out = []
    for x, y in zip(a, b, strict=True):
        total = copy.copy(x)
        total.gram, total.cross = x.gram + y.gram, x.cross + y.cross
        total.n_samples = x.n_samples + y.n_samples
        out.append(total)
    return out


class PILHasher(BaseHasher):
    """Stacked PIL autoencoders producing balanced binary codes.

    Parameters
    ----------
    n_bits : int, default 256
        Code length (usually 32, 64, 128 or 256; 1 to 512): width of
        the last hidden layer.
    hidden : tuple of int or "auto", default "auto"
        Widths of the hidden layers before the code layer. "auto" scales
        them with the number of training spectra n (see :func:`auto_hidden`):
        (1024, 512) from 2048 spectra up, ``max(n_bits, n // 2)`` below,
        so a few dozen spectra can be hashed as well as millions (the
        ridge term keeps the pseudo-inverse defined when a layer is wider
        than the training set). Explicit widths need at least as many
        spectra as units.
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
    ridge : float, default 1e-3
        lambda relative to the mean diagonal of ``H^T H`` (scale-free):
        ``lambda = ridge * trace(H^T H) / L``.
    init : {"orthogonal", "pinv"}, default "orthogonal"
        Input weights of each autoencoder: random orthogonal, or the
        truncated pseudo-inverse of the layer's input (calibration sample).
    encoder : {"beta", "random"}, default "beta"
        What feeds the next layer: ``g(X beta^T + c)`` (the learned decoder
        transposed) or the hidden output ``g(X W + b)`` itself. "beta" is the
        default because it ranks real spectra better (bench/RESULTS.md,
        "ML-PIL hashing").
    n_calibration : int, default 4096
        Training rows used to standardise pre-activations and for the
        pseudo-inverse initialisation.
    random_state : None, int, numpy Generator or RandomState
        Seeds the weights and the calibration sample.
    output : {"bits", "packed", "embedding"}, default "bits"
        What :meth:`transform` returns: 0/1 uint8 bits (n, n_bits), the
        packed uint64 codes of :meth:`encode`, or the float32 embedding.
    chunk_rows : int, default 8192
        Rows per block when iterating over a store or a large array.

    Attributes
    ----------
    input_weights_, input_biases_ : list of ndarray, float32
        Autoencoder input weights (d_l, p_l) and biases (p_l,) per layer.
    decoders_ : list of ndarray, float32
        Output weights beta (p_l, d_l) per layer.
    encoder_weights_, encoder_biases_ : list of ndarray, float32
        The weights the forward pass (``embed``/``transform``) uses.
    thresholds_ : ndarray of shape (n_bits,), float32
        Median of each code unit over the training spectra.
    solve_info_ : list of dict
        How each layer's system was solved (method, rank, cond, lambda).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from pyspec import PILHasher
    >>> X = np.random.default_rng(0).random((600, 100), dtype=np.float32)
    >>> hasher = PILHasher(n_bits=64, hidden=(128, 96), random_state=0).fit(X)
    >>> bits = hasher.transform(X)            # 0/1 bits for scikit-learn pipelines
    >>> bits.shape, bits.dtype
    ((600, 64), dtype('uint8'))
    >>> codes = hasher.encode(X)              # packed words for pyspec.HammingIndex
    >>> codes.shape, codes.dtype
    ((600, 1), dtype('uint64'))
    """

    _KIND = b"PL"

    def __init__(self, n_bits: int = 256, hidden: tuple[int, ...] | str = "auto",
                 activation: str = "sigmoid", ridge: float = 1e-3, init: str = "orthogonal",
                 encoder: str = "beta", n_calibration: int = 4096,
                 random_state: object = None, output: str = "bits",
                 chunk_rows: int = 8192) -> None:
        self.n_bits = n_bits
        self.hidden = hidden
        self.activation = activation
        self.ridge = ridge
        self.init = init
        self.encoder = encoder
        self.n_calibration = n_calibration
        self.random_state = random_state
        self.output = output
        self.chunk_rows = chunk_rows

    # ------------------------------------------------------------ validation
    def _widths(self, n: int | None = None) -> list[int]:
        if isinstance(self.hidden, str):
            if self.hidden != "auto":
                raise ValueError(f"hidden must be 'auto' or a tuple of positive ints, got "
                                 f"{self.hidden!r}")
            n_bits = check_n_bits(self.n_bits)
            hidden = auto_hidden(n_bits if n is None else n, n_bits)
            return list(hidden) + [n_bits]
        hidden = () if self.hidden is None else tuple(self.hidden)
        for h in hidden:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
                raise ValueError(f"hidden must be a tuple of positive ints, got {self.hidden!r}")
        return [int(h) for h in hidden] + [check_n_bits(self.n_bits)]

    def _check_params(self) -> None:
        if self.activation not in ("sigmoid", "tanh", "relu"):
            raise ValueError(f"activation must be 'sigmoid', 'tanh' or 'relu', got {self.activation!r}")
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if self.encoder not in _ENCODERS:
            raise ValueError(f"encoder must be one of {_ENCODERS}, got {self.encoder!r}")
        if not (np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge!r}")
        if int(self.n_calibration) < 2:
            raise ValueError(f"n_calibration must be >= 2, got {self.n_calibration!r}")

    # ------------------------------------------------------------ fitting
    def _calibration_sample(self, X: object, n: int, d: int, rng: np.random.Generator) -> np.ndarray:
        m = min(n, int(self.n_calibration))
        idx = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        if not is_chunked_source(X):
            return as_float_matrix(np.asarray(X)[idx], "X", n_features=d, allow_1d=False)
        flux = getattr(X, "flux", None)
        if flux is not None:
            return as_float_matrix(flux[idx], "X", n_features=d, allow_1d=False)
        rows = []
        for start, chunk in iter_source(X, self.chunk_rows, d):
            sel = idx[(idx >= start) & (idx < start + len(chunk))] - start
            rows.append(chunk[sel])
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)

    def _init_weights(self, S: np.ndarray, p: int, rng: np.random.Generator,
                      nt: int | None) -> tuple[np.ndarray, np.ndarray]:
        d = S.shape[1]
        W = _orthogonal(rng, d, p) if self.init == "orthogonal" else _truncated_pinv(S, p, rng)
        return _standardise(S, W, nt)

    def _forward(self, X: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]],
                 nt: int | None) -> np.ndarray:
        for W, b in layers:
            X = linalg.dense_forward(X, W, b, self.activation, nt)
        return X

    def _fit(self, X: object, n: int, d: int, rng: np.random.Generator, nt: int | None) -> None:
        widths = self._fit_widths(n)
        S = self._calibration_sample(X, n, d, rng)
        self._fit_layers(S, widths, rng, nt, lambda layers: self._layer_stats(X, layers, nt))

    def _fit_widths(self, n: int) -> list[int]:
        """Checked parameters and layer widths (hidden layers, then the code layer) for n
        training spectra; sets ``hidden_widths_``."""
        self._check_params()
        widths = self._widths(n)
        self.hidden_widths_ = widths[:-1]
        if not isinstance(self.hidden, str) and n < max(widths):
            raise ValueError(
                f"X: {n} spectra are fewer than the widest hidden layer ({max(widths)} units); "
                f"each layer needs at least as many spectra as units: pass more spectra or "
                f"smaller hidden widths or n_bits, or hidden='auto' (the default)")
        return widths

    def _fit_layers(self, S: np.ndarray, widths: list[int], rng: np.random.Generator,
                    nt: int | None,
                    gram_sums: Callable[[list[int]], list[linalg.GramAccumulator]]) -> None:
        """Fit every layer from the calibration sample ``S`` and Gram sums over all spectra.

        ``gram_sums(layers)`` returns :meth:`_layer_stats` of those layers summed
        over every training spectrum, for the model as fitted so far: one pass
        over the data per call. :meth:`_fit` computes them here, chunk by chunk;
        a streamed fit (:mod:`pyspec.distributed.fit`) sums each shard's on a
        cluster. Either way the sums, hence the model, are the same (up to the
        order of float64 additions).
        """
        self.input_weights_, self.input_biases_ = [], []
        self.encoder_weights_, self.encoder_biases_ = [], []
        self.decoders_, self.solve_info_ = [], []
        if self.encoder == "random":
            # All input weights are known up front: one pass, one batched solve.
            Sl = S
            for p in widths:
                W, b = self._init_weights(Sl, p, rng, nt)
                self.input_weights_.append(W)
                self.input_biases_.append(b)
                Sl = linalg.dense_forward(Sl, W, b, self.activation, nt)
            self._solve(gram_sums(list(range(len(widths)))), nt)
            self.encoder_weights_ = list(self.input_weights_)
            self.encoder_biases_ = list(self.input_biases_)
            return
        Sl = S
        for layer, p in enumerate(widths):
            W, b = self._init_weights(Sl, p, rng, nt)
            self.input_weights_.append(W)
            self.input_biases_.append(b)
            beta = self._solve(gram_sums([layer]), nt)[0]
            E, c = _standardise(Sl, beta.T, nt)
            self.encoder_weights_.append(E)
            self.encoder_biases_.append(c)
            Sl = linalg.dense_forward(Sl, E, c, self.activation, nt)

    def _layer_stats(self, X: object, layers: list[int], nt: int | None
                     ) -> list[linalg.GramAccumulator]:
        """Partial statistics of autoencoder ``layers`` over the spectra X (array or store).

        One :class:`~pyspec.linalg.GramAccumulator` per layer: ``H^T H`` and
        ``H^T X_l`` summed over X's rows, where ``X_l`` is the layer's input and
        ``H = g(X_l W + b)``. The input weights of ``layers`` and the encoders of
        the layers before them must be set. Sums over disjoint parts of the
        training set add up (:func:`add_layer_stats`) to the sums over all of
        it, which is what lets shards compute them apart. ``layers`` is every
        layer (``encoder="random"``: each feeds the next through its input
        weights) or one layer (``encoder="beta"``).
        """
        if self.encoder == "beta" and len(layers) != 1:
            raise ValueError("encoder='beta' fits one layer per pass")
        first = layers[0]
        d = self.input_weights_[0].shape[0]
        accs = [linalg.GramAccumulator(self.input_weights_[i].shape[1],
                                       self.input_weights_[i].shape[0], nt) for i in layers]
        enc = list(zip(self.encoder_weights_, self.encoder_biases_, strict=True))[:first]
        for _, chunk in iter_source(X, self.chunk_rows, d):
            x = self._forward(chunk, enc, nt)
            for acc, i in zip(accs, layers, strict=True):
                h = linalg.dense_forward(x, self.input_weights_[i], self.input_biases_[i],
                                         self.activation, nt)
                acc.add(h, x)
                x = h
        return accs

    def _solve(self, accs: list[linalg.GramAccumulator], nt: int | None) -> list[np.ndarray]:
        lams = [float(self.ridge) * max(float(np.trace(a.gram)) / a.gram.shape[0], 1e-300)
                for a in accs]
        sol = linalg.ridge_solve([a.gram for a in accs], [a.cross for a in accs],
                                 np.array(lams), num_threads=nt)
        betas = [np.ascontiguousarray(b, dtype=np.float32) for b in sol.beta]
        for i, beta in enumerate(betas):
            self.decoders_.append(beta)
            self.solve_info_.append({"method": "cholesky" if sol.method[i] == 0 else "eigen",
                                     "rank": int(sol.rank[i]), "cond": float(sol.cond[i]),
                                     "lambda": lams[i]})
        return betas

    # ------------------------------------------------------------ use
    def _embed(self, X: np.ndarray, nt: int | None) -> np.ndarray:
        return self._forward(X, list(zip(self.encoder_weights_, self.encoder_biases_)), nt)

    def layer_inputs(self, X: np.ndarray, layer: int, num_threads: int | None = None) -> np.ndarray:
        """Input of autoencoder ``layer`` (0-based) for spectra X, float32 (n, d_layer)."""
        X = self._check_X(X)
        if not 0 <= layer < len(self.decoders_):
            raise ValueError(f"layer must be in [0, {len(self.decoders_)}), got {layer}")
        enc = list(zip(self.encoder_weights_, self.encoder_biases_))[:layer]
        return self._forward(X, enc, num_threads)

    def reconstruction_error(self, X: np.ndarray, layer: int = 0, decoder: np.ndarray | None = None,
                             num_threads: int | None = None) -> float:
        """Relative squared error ``||H beta - X_l||^2 / ||X_l||^2`` of one autoencoder.

        ``decoder`` replaces the learned beta (p_l, d_l), e.g. to compare with
        random output weights.
        """
        x = self.layer_inputs(X, layer, num_threads)
        h = linalg.dense_forward(x, self.input_weights_[layer], self.input_biases_[layer],
                                 self.activation, num_threads)
        beta = self.decoders_[layer] if decoder is None else np.asarray(decoder, dtype=np.float32)
        if beta.shape != self.decoders_[layer].shape:
            raise ValueError(f"decoder: expected shape {self.decoders_[layer].shape}, got {beta.shape}")
        r = h.astype(np.float64) @ beta - x
        return float(np.sum(r * r) / max(np.sum(x.astype(np.float64) ** 2), 1e-300))

    # ------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {}
        for i in range(len(self.decoders_)):
            arrays[f"in_w{i}"] = self.input_weights_[i]
            arrays[f"in_b{i}"] = self.input_biases_[i]
            arrays[f"enc_w{i}"] = self.encoder_weights_[i]
            arrays[f"enc_b{i}"] = self.encoder_biases_[i]
            arrays[f"dec{i}"] = self.decoders_[i]
        return arrays, {"n_layers": len(self.decoders_), "solve_info": self.solve_info_}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        n = int(meta["n_layers"])
        get = lambda key: np.ascontiguousarray(arrays[key], dtype=np.float32)  # noqa: E731
        self.input_weights_ = [get(f"in_w{i}") for i in range(n)]
        self.input_biases_ = [get(f"in_b{i}") for i in range(n)]
        self.encoder_weights_ = [get(f"enc_w{i}") for i in range(n)]
        self.encoder_biases_ = [get(f"enc_b{i}") for i in range(n)]
        self.decoders_ = [get(f"dec{i}") for i in range(n)]
        self.solve_info_ = list(meta.get("solve_info", []))
        self.hidden_widths_ = [int(w.shape[1]) for w in self.encoder_weights_[:-1]]
