"""Sharded encode and build: fit (or take) one model, encode every shard as its own engine.

The model is fitted once, here, and sent to the cluster once; each task then
encodes one shard with :meth:`pyspec.Engine.build` and writes
``shard-NNNN/``. The manifest is written last and the whole directory
appears by one rename, so an interrupted build leaves no engine behind.
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
    ShardedStore,
    open_any_store,
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
_SHARED_INFO = ("kind", "model_class", "n_bits", "n_pixels", "grid", "preprocessing",
                "meta_columns")


def _build_shard(store_path: str, start: int, stop: int, out: str, *, model: Any,
                 chunk_size: int, num_threads: int | None) -> dict[str, Any]:
    """One task: encode rows ``start:stop`` of the store at ``store_path`` into ``out``."""
    from pyspec.store import SpectrumStore

    store = SpectrumStore.open(store_path)
    if start == 0 and stop == len(store):
        view: Any = store
    else:
        view = _RowRange(store, start, stop)
    # the sharded engine re-ranks on the stored spectra; a per-shard PCA basis would
    # never be read
    eng = Engine.build(view, model, out=out, chunk_size=chunk_size, num_threads=num_threads,
                       overwrite=True, rerank_space="flux")
    # the facts the manifest copies, so that the caller need not open a shard engine
    return {"n_spectra": len(eng), "encode_s": eng.info["timings_s"]["encode"],
            "info": {key: eng.info[key] for key in _SHARED_INFO}}


def _shard_plan(store: Any, n_shards: int) -> list[tuple[str, int, int]]:
    """(store path, first row, end row) of each shard: the shard stores of a sharded store,
    else ``n_shards`` equal row ranges of one store."""
    if isinstance(store, ShardedStore):
        return [(str(s.path), 0, len(s)) for s in store.shards]
    bounds = np.linspace(0, len(store), n_shards + 1).round().astype(int)
    return [(str(store.path), int(a), int(b))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def fit_model(model: Any, store: Any, fit_sample: int | None = None,
              random_state: int | None = 0) -> Any:
    """Fit ``model`` (unless fitted) on ``fit_sample`` random rows of ``store``, or on all of it.

    The sample is drawn over global rows exactly as :meth:`Engine.build`
    draws it, so a sharded build fits the same model as a single build over
    the same spectra. Without a sample a hasher streams through every shard
    chunk by chunk (bounded memory); a product quantiser reads all rows.
    """
    if _is_fitted(model):
        return model
    from pyspec.search_checks import search_space

    space = search_space(getattr(store, "preprocessing", None))
    fit_on_store(backend_of(model), model, store, fit_sample, random_state, space)
    return model


def build_sharded(store: Any, model: Any = "pil", out: str | os.PathLike = "engine", *,
                  n_shards: int | None = None, client: Any = None, fit_sample: int | None = None,
                  chunk_size: int = 8192, num_threads: int | None = None,
                  overwrite: bool = False, random_state: int | None = 0) -> ShardedEngine:
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
    if isinstance(model, str):
        model = make_model(model)
    t0 = time.perf_counter()
    model = fit_model(model, store, fit_sample, random_state)
    fit_s = time.perf_counter() - t0
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and n_in != len(store.grid):
        raise ValueError(f"the model was fitted on {n_in} pixels but the store's grid has "
                         f"{len(store.grid)}")

    plan = _shard_plan(store, int(n_shards))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = [f"shard-{i:04d}" for i in range(len(plan))]
        t0 = time.perf_counter()
        tasks = [(p, a, b, str(tmp / name)) for (p, a, b), name in zip(plan, names, strict=True)]
        done = run_per_shard(client, _build_shard, tasks, model=model,
                             chunk_size=int(chunk_size), num_threads=num_threads)
        encode_s = time.perf_counter() - t0
        entries = [{"path": name, "n_spectra": int(d["n_spectra"]), "store_row_offset": a,
                    "encode_s": d["encode_s"]}
                   for name, (_, a, _), d in zip(names, plan, done, strict=True)]
        from pyspec.catalogue import provenance

        info = dict(done[0]["info"])
        info.update({
            "format": SHARDED_ENGINE_FORMAT, "version": VERSION,
            "model_params": _safe_params(model),
            "n_spectra": int(sum(e["n_spectra"] for e in entries)),
            "store": str(Path(store.path).resolve()),
            "shards": entries,
            "timings_s": {"fit": round(fit_s, 3), "encode": round(encode_s, 3)},
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
