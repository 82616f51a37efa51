"""Query-by-example latency: one FITS spectrum against 1,000,000 indexed 256-bit codes.

pyspec: ``Engine.query(path, k=10, rerank=0)`` end to end (pyspec.read_spectrum,
the store's Preprocessor, PILHasher.transform, HammingIndex.search, metadata
rows into an astropy Table), and the same four steps timed one by one.

Three comparisons, all against peers built from "the usual parts": astropy
``fits.open`` + column reads, NumPy encoding (the same fitted PIL network's
matrices: ``sigmoid(X W + b)`` per layer, threshold, ``np.packbits``) and faiss
``IndexBinaryFlat`` over the same codes, at 1 thread (its best setting for a
single query, see run()). They differ in the engine and in how the peer
prepares the query:

1. Default engine (the default "similarity" recipe: robust masked continuum,
   division, clipping, masked ends and sky lines) vs the *plain* peer (mask
   bad pixels, ``np.interp`` onto the grid, L2 normalisation). The rows named
   after the steps; the peer does less work than pyspec here (no continuum).
2. "like-for-like peer (continuum)": the same default engine vs a peer that
   prepares the spectrum the way the default recipe does, in NumPy/SciPy
   (``scipy.ndimage.median_filter`` over the recipe's 500 A window on the
   flux with bad pixels interpolated over, division, clipping to the recipe's
   range, the recipe's masked pixels set to 1): the same work on both sides.
3. "first-wave config (l2 engine)": an engine whose store was prepared with
   the ``l2`` preset (the first wave's default) vs the plain peer: the
   configuration of the first wave's 2.44x, which must not regress by more
   than 10%.

pyspec is timed at its default and at 1 thread (``--query-threads``); "default"
means ``num_threads=None``: all cores (or ``OMP_NUM_THREADS``) for the forward
pass and the scan. Both sides return the 10 nearest codes.

Each engine: a 256-bit PIL hasher (hidden 512-384-256, as in the demo) fitted
on the shipped LAMOST sample plus simulated spectra (``pyspec demo``'s store,
prepared by the engine's recipe); the index holds those spectra's codes
followed, up to ``--query-n``, by ``--query-fill`` codes, with a metadata
table of the same length:

* "simulated" (default): codes of fresh simulated spectra (real templates of
  the sample and ``shared/data``, shifts, noise, lines, bad pixels; seed 202)
  prepared by the engine's recipe and encoded by its hasher, i.e. an archive
  of real-like spectra. The index is ``HammingIndex(method="auto")`` as
  ``Engine.build`` makes it, so its cost model picks the exact inverted
  lists (same answers as the scan) when they pay; the plan is reported.
  The codes are cached under ``$PYSPEC_QUERY_CACHE`` (default
  /tmp/pyspec-query; 1M took ~6 min per recipe on this 2-core machine).
* "random": uniformly random bits, the first wave's setting, on which the
  cost model keeps the scan (no structure to prune with).

The
query is a real LAMOST DR10 file from the sample (gzip FITS, COADD
binary-table layout). p50 and p99 over ``--query-reps`` repetitions after a
warm-up; the pipelines run in separate loops (no idle thread pool spinning
against the other's queries) that alternate in 4 blocks, so that a change of
machine load reaches all of them alike. ``ratio`` = peer time / pyspec time
(> 1: pyspec faster). The "encode" step is ``Engine.encode_prepared`` (what
``query`` runs: one thread for a single spectrum unless ``num_threads`` is
given). The "CPU time" rows give ``time.process_time`` per query, which on a
loaded machine stays near the work done while wall time also counts waiting
for a core.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "query"
_QUERY_FILE = "spec-57278-EG224429N215706B01_sp01-001.fits.gz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("query")
    g.add_argument("--query-n", type=int, default=1_000_000, help="indexed codes (default 1M)")
    g.add_argument("--query-reps", type=int, default=200, help="timed repetitions (default 200)")
    g.add_argument("--query-threads", type=int, nargs="+", default=[0, 1],
                   help="pyspec thread counts to time (0 = num_threads=None, the default)")
    g.add_argument("--query-simulated", type=int, default=700,
                   help="simulated spectra added to the sample to fit the hasher")
    g.add_argument("--query-fill", choices=("simulated", "random"), default="simulated",
                   help="codes filling the index beyond the store's (default: simulated "
                        "spectra through the engine's recipe and hasher)")


def _pct(times: list[float]) -> tuple[float, float]:
    a = np.asarray(times) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _sample_store(store_dir: Path, n_simulated: int, seed: int, preprocessing: str | None):
    """The demo's sample store, prepared with ``preprocessing`` (None: the default recipe)."""
    from pyspec.data.sample_store import build_sample_store

    if preprocessing is None:
        return build_sample_store(store_dir, n_simulated, seed)[0]
    if "preprocessing" in inspect.signature(build_sample_store).parameters:
        return build_sample_store(store_dir, n_simulated, seed, preprocessing=preprocessing)[0]
    else:  # a tree before the preprocessing= keyword (A/B runs against main ca91938)
        import pyspec.preprocess

        saved = pyspec.preprocess.DEFAULT_PREPROCESSING
        pyspec.preprocess.DEFAULT_PREPROCESSING = preprocessing
        try:
            return build_sample_store(store_dir, n_simulated, seed)[0]
        finally:
            pyspec.preprocess.DEFAULT_PREPROCESSING = saved


_FILL_SEED = 202
_FILL_CHUNK = 8192


def simulated_fill(hasher, store, n: int, log: bool = False) -> np.ndarray:
    """Codes (uint64 (n, 4)) of ``n`` simulated spectra prepared by ``store``'s recipe and
    encoded by ``hasher``, cached on disk by a digest of both (spectrum i depends only
    on the seed and i, so a bigger cached set's first rows are the same)."""
    import hashlib
    import json
    import os

    from pyspec.simulate import Simulator

    prep = store.preprocessor
    key = hashlib.sha1(json.dumps(store.preprocessing, sort_keys=True, default=str).encode())
    for a in (*hasher.encoder_weights_, *hasher.encoder_biases_, hasher.thresholds_):
        key.update(np.ascontiguousarray(a).tobytes())
    cache = Path(os.environ.get("PYSPEC_QUERY_CACHE", "/tmp/pyspec-query"))
    cache.mkdir(parents=True, exist_ok=True)
    tag = f"{_FILL_SEED}-{key.hexdigest()[:16]}"
    for found in sorted(cache.glob(f"fill-*-{tag}.npy")):
        if int(found.name.split("-")[1]) >= n:
            return np.load(found, mmap_mode="r")[:n]
    path = cache / f"fill-{n}-{tag}.npy"
    tmp = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint64, shape=(n, 4))
    sim = Simulator(grid=prep.grid, seed=_FILL_SEED)
    t0 = time.perf_counter()
    for s in range(0, n, _FILL_CHUNK):
        batch = sim.generate(s, min(n, s + _FILL_CHUNK))
        out[s:s + len(batch.flux)] = hasher.encode(prep.apply_on_grid(batch.flux, batch.ivar).flux)
        if log:
            done = s + len(batch.flux)
            print(f"  fill {done}/{n}, {done / (time.perf_counter() - t0):.0f} spectra/s",
                  flush=True)
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def make_engine(workdir: Path, n_codes: int, n_simulated: int, seed: int = 0,
                preprocessing: str | None = None, fill: str = "random"):
    """An engine directory with ``n_codes`` codes (the store's first, then ``fill``: codes
    of simulated spectra or random bits), its store prepared with the ``preprocessing``
    preset (default: the default recipe)."""
    from astropy.table import Table

    from pyspec.engine import Engine
    from pyspec.index.hamming import HammingIndex
    from pyspec.models.pil import PILHasher

    store = _sample_store(workdir / "store", n_simulated, seed, preprocessing)
    hasher = PILHasher(n_bits=256, hidden=(512, 384), random_state=seed).fit(
        np.asarray(store.flux))
    real = hasher.encode(np.asarray(store.flux))
    n_codes = max(n_codes, real.shape[0])
    codes = np.empty((n_codes, 4), np.uint64)
    codes[:real.shape[0]] = real
    extra = n_codes - real.shape[0]
    if fill == "simulated":
        codes[real.shape[0]:] = simulated_fill(hasher, store, extra)
    else:
        rng = np.random.default_rng(seed)
        codes[real.shape[0]:] = rng.integers(0, np.iinfo(np.uint64).max, (extra, 4),
                                             dtype=np.uint64, endpoint=True)
    index = HammingIndex(n_bits=256, method="auto")  # as Engine.build makes it
    index.add(codes)
    meta = Table(store.meta, copy=True)
    extra = n_codes - len(meta)
    if extra:
        filler = Table({name: np.repeat(meta[name][-1:], extra) for name in meta.colnames})
        filler["id"] = np.array([f"synthetic-{i:07d}" for i in range(extra)])
        from astropy.table import vstack

        meta = vstack([meta, filler])
    engine = Engine.write(workdir / "engine", hasher, index, meta, store.grid,
                          preprocessing=store.preprocessing, store_path=store.path)
    return Engine.open(engine.path), codes


def _peer_encoder(hasher):
    weights = [np.asarray(w, np.float32) for w in hasher.encoder_weights_]
    biases = [np.asarray(b, np.float32) for b in hasher.encoder_biases_]
    thresholds = np.asarray(hasher.thresholds_, np.float32)
    act = hasher.activation

    def encode(x: np.ndarray) -> np.ndarray:
        for w, b in zip(weights, biases, strict=True):
            z = x @ w + b
            if act == "sigmoid":
                x = 1.0 / (1.0 + np.exp(-z))
            elif act == "tanh":
                x = np.tanh(z)
            else:
                x = np.maximum(z, 0)
        return np.packbits(x > thresholds, axis=1, bitorder="little")

    return encode


def _peer_read(path: Path):
    from astropy.io import fits

    with fits.open(path) as hdus:
        hdus[0].header  # noqa: B018 (read the header as a pipeline would)
        data = hdus[1].data
        wave = np.array(data["WAVELENGTH"][0], np.float64)
        flux = np.array(data["FLUX"][0], np.float64)
        ivar = np.array(data["IVAR"][0], np.float64)
    return wave, flux, ivar


def _peer_prep(wave, flux, ivar, grid):
    good = (ivar > 0) & np.isfinite(flux)
    f = np.interp(grid, wave[good], flux[good])
    return (f / np.linalg.norm(f)).astype(np.float32)[None, :]


def _time_rerank(engine, path: Path, reps: int) -> list[float]:
    """Seconds of ``Engine.rerank`` of one prepared query over 100 random stored rows.

    The benchmark's index holds random codes beyond the store's rows, so the
    candidates are drawn from the store; the cost depends on the number of
    candidates, not on the number of indexed codes (with the store's pages
    in memory; cold, each candidate is one random read of a 16 KB row).
    """
    from pyspec.search_checks import default_candidates
    from pyspec.store import SpectrumStore

    flux, _, _ = engine.prepare(path)
    # the engine indexes more codes than its store holds rows (see make_engine), which
    # Engine.store refuses; the re-rank reads the store directly
    engine._store = SpectrumStore.open(engine.info["store"])
    n_store = len(engine._store)
    rng = np.random.default_rng(0)
    m = default_candidates(10, n_store)
    times = []
    for _ in range(reps + 1):
        cand = rng.choice(n_store, size=m, replace=False)[None, :]
        t0 = time.perf_counter()
        engine.rerank(flux, cand, 10)
        times.append(time.perf_counter() - t0)
    return times[1:]


def _peer_prep_continuum(masked: np.ndarray, window_px: int, clip: tuple[float, float]):
    """The like-for-like peer's preparation: the default recipe's steps in NumPy/SciPy.

    Bad pixels out (``np.interp`` over the good ones onto the grid), a running
    median of the same window (``scipy.ndimage.median_filter``), division, clipping
    to the recipe's range and the recipe's masked pixels (outside 4000-8800 A, sky
    lines) set to the continuum level, as the default "similarity" recipe does.
    """
    from scipy.ndimage import median_filter

    def prep(wave, flux, ivar, grid):
        good = (ivar > 0) & np.isfinite(flux)
        f = np.interp(grid, wave[good], flux[good])
        cont = median_filter(f, size=window_px, mode="nearest")
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.clip(f / cont, *clip)
        x[masked | ~np.isfinite(x)] = 1.0
        return x.astype(np.float32)[None, :]

    return prep


class _Case:
    """One engine and the peer pipelines timed against it (same model, same codes)."""

    def __init__(self, engine, codes, peer_preps: dict) -> None:
        import faiss

        self.engine = engine
        self.encode_np = _peer_encoder(engine.model)
        self.fidx = faiss.IndexBinaryFlat(256)
        self.fidx.add(codes.view(np.uint8).reshape(codes.shape[0], 32))
        self.peer_preps = peer_preps


_STEPS = ("read", "preprocess", "encode", "search", "end_to_end")


def _time_pyspec(engine, path: Path, threads: int, reps: int, steps: dict, cpu: list) -> None:
    """``reps`` end-to-end queries, then ``reps`` step-by-step ones, appended to the lists."""
    from pyspec.io import read_spectrum

    nt = threads or None
    engine.query(path, k=10, num_threads=nt, rerank=0)
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        engine.query(path, k=10, num_threads=nt, rerank=0)
        steps["end_to_end"].append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    for _ in range(reps):
        t0 = time.perf_counter()
        spec = read_spectrum(path)
        t1 = time.perf_counter()
        flux = engine.preprocessor.apply(spec).flux
        t2 = time.perf_counter()
        code = engine.encode_prepared(flux, num_threads=nt)
        t3 = time.perf_counter()
        engine.index.search(code, 10, num_threads=nt)
        t4 = time.perf_counter()
        for name, dt in zip(_STEPS[:4], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[name].append(dt)


def _time_peer(case: _Case, prep, path: Path, reps: int, steps: dict, cpu: list) -> None:
    grid = case.engine.grid.wavelength
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        w, f, iv = _peer_read(path)
        t1 = time.perf_counter()
        x = prep(w, f, iv, grid)
        t2 = time.perf_counter()
        q = case.encode_np(x)
        t3 = time.perf_counter()
        case.fidx.search(q, 10)
        t4 = time.perf_counter()
        for name, dt in zip(_STEPS[:4], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[name].append(dt)
        steps["end_to_end"].append(t4 - t0)
        cpu.append(time.process_time() - c0)


def _ratio_row(case: str, ours: list[float], peer: list[float]) -> dict:
    p50, p99 = _pct(ours)
    q50, q99 = _pct(peer)
    return {"case": case, "pyspec_p50_ms": p50, "pyspec_p99_ms": p99, "peer_p50_ms": q50,
            "peer_p99_ms": q99, "ratio_p50": q50 / p50 if p50 > 0 else float("nan")}


def run(args: argparse.Namespace) -> list[dict]:
    import faiss

    from pyspec.data import SAMPLE_DIR
    from pyspec.preprocess import wavelength_mask

    n = 20_000 if args.quick else args.query_n
    reps = 20 if args.quick else args.query_reps
    n_sim = 600 if args.quick else args.query_simulated
    rounds = max(1, min(4, reps // 10))
    path = SAMPLE_DIR / _QUERY_FILE
    # faiss parallelises a binary flat search over queries, so one query runs on one
    # thread anyway; a second OpenMP pool only adds spin-wait contention with
    # OpenBLAS (measured here: 1.4 ms p50 at 1 thread, up to 300 ms p90 at 2)
    faiss.omp_set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="pyspec-bench-query-") as tmp:
        t0 = time.perf_counter()
        engine, codes = make_engine(Path(tmp) / "default", n, n_sim, fill=args.query_fill)
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine = type(engine).open(engine.path)
        open_s = time.perf_counter() - t0
        l2_engine, l2_codes = make_engine(Path(tmp) / "l2", n, n_sim, preprocessing="l2",
                                          fill=args.query_fill)
        plans = {name: e.search_plan(10) for name, e in (("default", engine),
                                                           ("l2", l2_engine))}
        grid = engine.grid.wavelength
        prep = engine.preprocessor
        masked = wavelength_mask(grid, prep.wavelength_range, prep.mask_sky)
        window_px = int(round(prep.continuum_window / float(np.median(np.diff(grid))))) | 1
        cases = {"default": _Case(engine, codes, {"plain": _peer_prep,
                                                  "continuum": _peer_prep_continuum(
                                                      masked, window_px, prep.clip)}),
                 "l2": _Case(l2_engine, l2_codes, {"plain": _peer_prep})}

        # warm-up and agreement check (same neighbour distances from both pipelines)
        ours = engine.query(path, k=10, rerank=0)
        w, f, iv = _peer_read(path)
        fd, _ = cases["default"].fidx.search(
            cases["default"].encode_np(_peer_prep(w, f, iv, grid)), 10)

        def fresh() -> dict:
            return {k: [] for k in _STEPS}

        ours_t = {(c, th): fresh() for c in cases for th in args.query_threads}
        ours_cpu = {key: [] for key in ours_t}
        peer_t = {(c, p): fresh() for c in cases for p in cases[c].peer_preps}
        peer_cpu = {key: [] for key in peer_t}
        # separate loops (not interleaved query by query) so that one pipeline's idle
        # OpenMP/BLAS threads do not spin against the other's measurements; the loops
        # alternate in ``rounds`` blocks so that a change of machine load between
        # blocks reaches every pipeline alike
        for _ in range(rounds):
            for c, case in cases.items():
                for th in args.query_threads:
                    _time_pyspec(case.engine, path, th, reps // rounds, ours_t[c, th],
                                 ours_cpu[c, th])
                for p, peer_prep in case.peer_preps.items():
                    _time_peer(case, peer_prep, path, reps // rounds, peer_t[c, p],
                               peer_cpu[c, p])

        rerank_s = _time_rerank(engine, path, reps)

    rows = []
    plain = peer_t["default", "plain"]
    for th in args.query_threads:
        label = th or "default"
        for name in _STEPS:
            rows.append(_ratio_row(f"{name}, {n:,d} codes, pyspec threads={label}",
                                   ours_t["default", th][name], plain[name]))
        # CPU time (all threads of the process) of the end-to-end query: on a loaded
        # machine wall time also counts waiting for a core, CPU time does not
        rows.append(_ratio_row(f"end_to_end CPU time, pyspec threads={label}",
                               ours_cpu["default", th], peer_cpu["default", "plain"]))
    # like for like: the peer prepares the query as the default recipe does
    cont = peer_t["default", "continuum"]
    rows.append(_ratio_row("like-for-like peer (continuum): preprocess",
                           ours_t["default", args.query_threads[0]]["preprocess"],
                           cont["preprocess"]))
    for th in args.query_threads:
        label = th or "default"
        rows.append(_ratio_row(f"like-for-like peer (continuum): end_to_end, pyspec "
                               f"threads={label}", ours_t["default", th]["end_to_end"],
                               cont["end_to_end"]))
        rows.append(_ratio_row(f"like-for-like peer (continuum): end_to_end CPU time, "
                               f"pyspec threads={label}", ours_cpu["default", th],
                               peer_cpu["default", "continuum"]))
    # the first wave's configuration: an engine on the "l2" recipe vs the plain peer
    for th in args.query_threads:
        label = th or "default"
        rows.append(_ratio_row(f"first-wave config (l2 engine): end_to_end, pyspec "
                               f"threads={label}", ours_t["l2", th]["end_to_end"],
                               peer_t["l2", "plain"]["end_to_end"]))
        rows.append(_ratio_row(f"first-wave config (l2 engine): end_to_end CPU time, "
                               f"pyspec threads={label}", ours_cpu["l2", th],
                               peer_cpu["l2", "plain"]))
    # the peer's simpler preprocessing (np.interp, no flux-conserving rebin) gives
    # a slightly different code, so its nearest code need not be the query's own
    rows.append({"case": "first neighbour distance (pyspec / peer)",
                 "pyspec_p50_ms": float(ours["distance"][0]), "peer_p50_ms": float(fd[0, 0])})
    # the second stage of the default two-stage search: exact L2 over the candidates the
    # codes selected (100 for k=10), read from the store (memory-mapped, warm page cache)
    r50, r99 = _pct(rerank_s)
    rows.append({"case": "re-rank stage: exact L2 of 100 stored candidates (k=10)",
                 "pyspec_p50_ms": r50, "pyspec_p99_ms": r99})
    for th in args.query_threads:
        p50, p99 = _pct(ours_t["default", th]["end_to_end"])
        rows.append({"case": f"two-stage end_to_end = codes + re-rank, pyspec threads="
                             f"{th or 'default'}", "pyspec_p50_ms": p50 + r50,
                     "pyspec_p99_ms": p99 + r99})
    for name, plan in plans.items():
        rows.append({"case": f"search plan ({name} engine, {args.query_fill} fill): "
                             f"{plan.method}: {plan.reason}"})
    rows.append({"case": f"setup s / Engine.open ms ({n:,d})", "pyspec_p50_ms": setup_s,
                 "pyspec_p99_ms": open_s * 1e3})
    return rows
