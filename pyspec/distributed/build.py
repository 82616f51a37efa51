"""Sharded encode and build: fit (or take) one model, encode every shard as its own engine.

The model and the re-rank space's principal basis are fitted once, and sent
to the cluster once (``scatter(broadcast=True)``); each task then encodes one
shard with :meth:`pyspec.Engine.build` and writes ``shard-NNNN/``. The model
is fitted on a sample in the client, or streamed across the shards
(``fit="streamed"``, :mod:`pyspec.distributed.fit`). The manifest is written
last and the whole directory appears by one rename, so an interrupted build
leaves no engine behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.backends import backend_of
from pyspec.distributed.engine import SHARDED_ENGINE_FILE, SHARDED_ENGINE_FORMAT, ShardedEngine
from pyspec.distributed.store import (
    VERSION,
    open_any_store,
    row_ranges,
    store_meta_rows,
    write_json_atomic,
)
from pyspec.distributed.tasks import connect, n_workers, run_per_shard
from pyspec.engine import Engine, _is_fitted, _safe_params, fit_on_store, make_model


class _RowRange:
    """Rows ``start:stop`` of a store, seen as a store by :meth:`Engine.build`."""

    def __init__(self, store: Any, start: int, stop: int) -> None:
        self.path = store.path
        self.grid = store.grid
        self.preprocessing = store.preprocessing
        self.flux = store.flux[start:stop]
        self.whole_store = store  # what the shard engine's store fingerprint describes
        self._store, self._start, self._stop = store, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    @property
    def meta(self) -> Any:
        # only this range's metadata parts: a shard task never holds the whole table
        return store_meta_rows(self._store, np.arange(self._start, self._stop))


# engine.json entries every shard shares, copied into the manifest
_SHARED_INFO = ("kind", "model_class", "n_bits", "n_pixels", "grid", "preprocessing")


def _build_shard(store_path: str, start: int, stop: int, out: str, *, model: Any,
                 chunk_size: int, num_threads: int | None, basis: Any) -> dict[str, Any]:
    """One task: encode rows ``start:stop`` of the store at ``store_path`` into ``out``."""
    from pyspec.store import SpectrumStore

    store = SpectrumStore.open(store_path)
    if start == 0 and stop == len(store):
        view: Any = store
    else:
        view = _RowRange(store, start, stop)
    # every shard projects on the one basis fitted over the whole store (the re-ranked
    # distances are then those of a single engine); without one, re-rank on the spectra
    eng = Engine.build(view, model, out=out, chunk_size=chunk_size, num_threads=num_threads,
                       overwrite=True, rerank_space="flux" if basis is None else "pca",
                       rerank_basis=basis)
    # the facts the manifest copies, so that the caller need not open a shard engine
    info = {key: eng.info[key] for key in _SHARED_INFO}
    if basis is not None:
        info["rerank"] = eng.info["rerank"]
    return {"n_spectra": len(eng), "encode_s": eng.info["timings_s"]["encode"], "info": info}


FITS = ("sample", "streamed")


def fit_model(model: Any, store: Any, fit_sample: int | None = None,
              random_state: int | None = 0, *, client: Any = None, streamed: bool = False,
              n_parts: int | None = None, num_threads: int | None = None) -> Any:
    """Fit ``model`` (unless fitted) on ``store`` as one engine over it would be fitted.

    ``streamed=False``: here, on ``fit_sample`` random rows (drawn over
    global rows exactly as :meth:`Engine.build` draws them) or on all of them
    (a hasher streams chunk by chunk; a product quantiser reads all rows).
    ``streamed=True``: every pass over the rows runs per shard on ``client``
    (the shard stores of a sharded store, else ``n_parts`` row ranges) and
    only statistics are reduced here (:func:`pyspec.distributed.fit.fit_streamed`;
    PILHasher and ProductQuantizer). Both give the model of a single
    :meth:`Engine.build` over the same spectra (streamed: up to the order of
    float64 sums).
    """
    if _is_fitted(model):
        return model
    from pyspec.search_checks import search_space

    space = search_space(getattr(store, "preprocessing", None))
    if not streamed:
        fit_on_store(backend_of(model), model, store, fit_sample, random_state, space)
        return model
    if fit_sample is not None:
        raise ValueError("a streamed fit reads every spectrum: pass fit_sample=None, or fit "
                         "on a sample without streamed")
    from pyspec.distributed.fit import fit_streamed

    return fit_streamed(model, store, client=connect(client),
                        n_parts=n_parts or max(2, n_workers(connect(client))), space=space,
                        num_threads=num_threads)


def _fit_basis(store: Any, rerank_space: str, n_components: int | None, chunk_size: int,
               random_state: int | None) -> Any:
    """The principal basis of the re-rank space, fitted once over the whole store exactly as
    :meth:`Engine.build` fits it (None for ``rerank_space="flux"``)."""
    from pyspec.rerank_space import (
        PCA_COMPONENTS,
        RERANK_SPACES,
        fit_principal_basis,
        n_pca_components,
    )
    from pyspec.search_checks import search_space, to_search_space

    if rerank_space not in RERANK_SPACES:
        raise ValueError(f"rerank_space must be one of {RERANK_SPACES}, got {rerank_space!r}")
    if n_components is not None and (isinstance(n_components, bool) or int(n_components) < 1):
        raise ValueError(f"n_components must be an int >= 1, got {n_components!r}")
    if rerank_space == "flux":
        return None
    space = search_space(getattr(store, "preprocessing", None))
    c = n_pca_components(len(store), len(store.grid), n_components or PCA_COMPONENTS)
    return fit_principal_basis(store.flux, c, chunk_size=chunk_size, random_state=random_state,
                               transform=lambda x: to_search_space(x, space))


def build_sharded(store: Any, model: Any = "pil", out: str | os.PathLike = "engine", *,
                  n_shards: int | None = None, client: Any = None, fit_sample: int | None = None,
                  chunk_size: int = 8192, num_threads: int | None = None,
                  overwrite: bool = False, random_state: int | None = 0, fit: str = "sample",
                  rerank_space: str = "pca", n_components: int | None = None) -> ShardedEngine:
    """Build a sharded engine (one engine directory per shard plus ``sharded-engine.json``).

    Parameters
    ----------
    store : SpectrumStore, ShardedStore or path
        A sharded store gives one shard per shard store; one store is cut
        into ``n_shards`` equal row ranges.
    model : model instance or "pil"/"lsh"/"itq"/"pq"
        Fitted or not (see :func:`fit_model`; ``fit_sample`` and
        ``random_state`` as in :meth:`Engine.build`).
    n_shards : int, optional
        Shards of a single store (default: the client's workers, or 2).
    client : distributed.Client, scheduler address or None
        Where the shards are encoded (None: one after another, here).
    chunk_size, num_threads :
        As in :meth:`Engine.build`, per shard.
    fit : {"sample", "streamed"}
        How an unfitted model is fitted (:func:`fit_model`): here on
        ``fit_sample`` rows or all of them ("sample"), or streamed across the
        shards on ``client`` ("streamed").
    rerank_space, n_components :
        As in :meth:`Engine.build`: the "pca" basis is fitted once over the
        whole store (the same basis a single build fits) and every shard
        projects its rows on it, so re-ranked results equal a single engine's.

    Returns
    -------
    ShardedEngine
        Opened from ``out``, searching on ``client``.
    """
    client = connect(client)
    if not hasattr(store, "flux"):
        store = open_any_store(store)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass overwrite")
    if n_shards is None:
        n_shards = max(2, n_workers(client))
    if isinstance(n_shards, bool) or int(n_shards) < 1:
        raise ValueError(f"n_shards must be an int >= 1, got {n_shards}")
    if len(store) == 0:
        raise ValueError(f"store {getattr(store, 'path', '')} holds no spectra")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if isinstance(model, str):
        model = make_model(model)
    plan = row_ranges(store, int(n_shards))
    t0 = time.perf_counter()
    model = fit_model(model, store, fit_sample, random_state, client=client,
                      streamed=fit == "streamed", n_parts=len(plan), num_threads=num_threads)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    basis = _fit_basis(store, rerank_space, n_components, int(chunk_size), random_state)
    pca_s = time.perf_counter() - t0
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and n_in != len(store.grid):
        raise ValueError(f"the model was fitted on {n_in} pixels but the store's grid has "
                         f"{len(store.grid)}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = [f"shard-{i:04d}" for i in range(len(plan))]
        t0 = time.perf_counter()
        tasks = [(p, a, b, str(tmp / name))
                 for (p, a, b, _), name in zip(plan, names, strict=True)]
        # the model and the basis go to the cluster once, every task shares them
        done = run_per_shard(client, _build_shard, tasks, model=model, basis=basis,
                             chunk_size=int(chunk_size), num_threads=num_threads)
        encode_s = time.perf_counter() - t0
        entries = [{"path": name, "n_spectra": int(d["n_spectra"]), "store_row_offset": a,
                    "encode_s": d["encode_s"]}
                   for name, (_, a, _, _), d in zip(names, plan, done, strict=True)]
        from pyspec.catalogue import provenance

        info = dict(done[0]["info"])
        info.update({
            "format": SHARDED_ENGINE_FORMAT, "version": VERSION,
            "model_params": _safe_params(model),
            "n_spectra": int(sum(e["n_spectra"] for e in entries)),
            "store": str(Path(store.path).resolve()),
            "shards": entries,
            "timings_s": {"fit": round(fit_s, 3), "pca": round(pca_s, 3),
                          "encode": round(encode_s, 3)},
            "fit": fit,
            "provenance": provenance(command="build_sharded"),
        })
        write_json_atomic(tmp / SHARDED_ENGINE_FILE, info)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShardedEngine.open(out, client=client)
