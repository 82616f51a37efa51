"""Checks that keep a search from answering silently wrong.

* every store and engine names its preprocessing recipe; spectra prepared
  differently (or by an unknown recipe) are refused, not compared,
* an engine remembers a fingerprint of the store it was built from and
  refuses to re-rank against a store that changed since,
* a build warns when the codes collapse (many spectra share one code: the
  model cannot tell them apart, so a code-only search returns ties).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.errors import PreprocessingError, StoreChangedError

#: A build warns when the distinct codes are fewer than this fraction of the spectra.
COLLAPSE_FRACTION = 0.5


def recipe_of(preprocessing: dict[str, Any] | None, what: str) -> Any:
    """The :class:`~pyspec.preprocess.Preprocessor` recorded as ``preprocessing``.

    Raises
    ------
    PreprocessingError
        Nothing recorded, or settings this pyspec cannot rebuild.
    """
    from pyspec.preprocess import Preprocessor

    if not preprocessing:
        raise PreprocessingError(
            f"{what} records no preprocessing, so queries cannot be prepared like its "
            "spectra; re-create it with `pyspec ingest` or `pyspec simulate` (or build with "
            "--allow-unknown-preprocessing and query only with its own stored rows)")
    try:
        return Preprocessor.from_dict(preprocessing)
    except (TypeError, ValueError, KeyError) as exc:
        raise PreprocessingError(f"{what} records preprocessing this pyspec does not know "
                                 f"({type(exc).__name__}: {exc})") from None


def describe(preprocessing: dict[str, Any] | None) -> str:
    """Short label of a recorded recipe (its preset name, or its main settings)."""
    if not preprocessing:
        return "unknown"
    if preprocessing.get("name"):
        return str(preprocessing["name"])
    return (f"normalise={preprocessing.get('normalise')}, "
            f"continuum={preprocessing.get('continuum')}")


def check_same_preprocessing(mine: dict[str, Any] | None, other: dict[str, Any] | None,
                             what: str, engine: str) -> None:
    """Raise PreprocessingError unless ``other`` prepared spectra exactly like ``mine``."""
    ours = recipe_of(mine, f"engine {engine}")
    theirs = recipe_of(other, what)
    if not ours.same_as(theirs):
        raise PreprocessingError(
            f"{what} was prepared with preprocessing '{describe(other)}' but the engine "
            f"{engine} with '{describe(mine)}'; distances between them mean nothing: "
            "re-ingest one of them with the other's --preprocessing")


def store_fingerprint(store: Any) -> dict[str, Any]:
    """What identifies the state of a store: its size and a hash of its manifest.

    A view of some rows of a store (a shard's rows, ``whole_store`` set) is
    identified by the store it views: a shard engine later opens that store.
    """
    store = getattr(store, "whole_store", store)
    path = getattr(store, "path", None)
    digest = None
    if path is not None and (Path(path) / "manifest.json").is_file():
        digest = hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()
    return {"n_spectra": int(len(store)), "manifest_sha256": digest}


def check_store_unchanged(recorded: dict[str, Any] | None, store: Any, engine: str) -> None:
    """Raise StoreChangedError when ``store`` is not in the state the engine was built on."""
    if not recorded:
        return  # an engine written before fingerprints were recorded
    now = store_fingerprint(store)
    if now["n_spectra"] != recorded.get("n_spectra") or (
            recorded.get("manifest_sha256") and now["manifest_sha256"]
            and now["manifest_sha256"] != recorded["manifest_sha256"]):
        raise StoreChangedError(
            f"the store {store.path} changed after the engine {engine} was built "
            f"({recorded.get('n_spectra')} spectra then, {now['n_spectra']} now): its codes "
            "no longer describe the store; rebuild the engine with `pyspec build --overwrite`")


def code_keys(codes: np.ndarray) -> np.ndarray:
    """One 64-bit key per code row (a mixing hash), for counting distinct codes cheaply."""
    words = np.atleast_2d(np.asarray(codes)).astype(np.uint64, copy=False)
    key = np.zeros(words.shape[0], np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            key = (key ^ words[:, j]) * np.uint64(0x9E3779B97F4A7C15)
            key ^= key >> np.uint64(29)
    return key


def warn_if_collapsed(n_distinct: int, n: int, what: str) -> None:
    """Warn (UserWarning) when far fewer distinct codes than spectra were produced."""
    if n >= 2 and n_distinct < COLLAPSE_FRACTION * n:
        warnings.warn(
            f"{what}: only {n_distinct:,d} distinct codes for {n:,d} spectra; the model "
            "cannot tell most spectra apart (unnormalised or constant flux? a recipe the "
            "model does not suit?); searches fall back on exact re-ranking",
            UserWarning, stacklevel=3)


def default_candidates(k: int, n: int) -> int:
    """Candidates the codes select for exact re-ranking: 10 k, at least 100, at most n."""
    return int(min(max(10 * k, 100), n))


def search_space(preprocessing: dict[str, Any] | None) -> str | None:
    """How rows are compared: "unit" (each row scaled to unit L2 norm) or None (as stored).

    The f / sum(f^2) recipe (seed 004) leaves each row with norm 1 / ||f||,
    so any Euclidean distance between such rows is dominated by brightness
    (measured in issue 14: a galaxy's nearest neighbour under PQ was a galaxy
    51% of the time, 78% after L2 normalisation). Rows prepared that way are
    compared by direction: scaled to unit norm, which makes the distances
    exactly those of the "l2" recipe while the store keeps the published form.
    """
    if preprocessing and preprocessing.get("normalise") == "sumsq":
        return "unit"
    return None


def to_search_space(x: np.ndarray, space: str | None) -> np.ndarray:
    """``x`` (n, n_pixels) float32 in the search space ``space`` (see :func:`search_space`)."""
    if space is None:
        return x
    norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]
    # divided straight into float32 (no (n, n_pixels) float64 temporary; same values)
    out = np.empty(x.shape, np.float32)
    np.divide(x, np.where(norm > 0, norm, 1.0), out=out, casting="same_kind")
    return out
