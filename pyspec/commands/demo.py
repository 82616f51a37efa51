"""``pyspec demo``: the whole pipeline on the real LAMOST sample shipped with pyspec.

Steps (each prints one line; outputs land in ``--out``, default ./pyspec-demo):

1. ingest the 59 shipped spectra (pyspec/data/sample) into a spectrum store
   on the LAMOST grid (3690-9100 A, log-linear), L2-normalised;
2. augment the store with simulated spectra drawn from those same spectra as
   templates (pyspec.simulate: shifts, continuum tilts, emission lines, survey
   noise). The demo's 256-bit PIL hasher has hidden layers of 512, 384 and
   256 units, and its pseudo-inverse solves need more spectra than hidden
   units (59 are far too few); the simulated
   spectra are labelled ``class = SIM-<template class>`` and ids ``sim-N``.
   Without pyspec.simulate the demo adds noisy copies of the real spectra
   (noise drawn from each spectrum's own inverse variance) instead;
3. train a 256-bit PIL hasher and build a search engine over the store;
4. query-by-example with one real spectrum: neighbour table (ECSV) and the
   top-10 figure (PNG);
5. a small catalogue search: representative queries among the real stars
   (PCA + BIRCH + KMeans), each keeping its nearest 10% of the archive,
   merged into a candidate catalogue (ECSV).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.commands import add_num_threads
from pyspec.commands._workflow import add_quiet, say, show_progress

HELP = "run the whole pipeline on the shipped LAMOST sample (ingest, train, build, query, search)"

_GRID = "lamost"
# Hidden layers of the demo's PIL hasher (then the 256-bit code layer): narrower than the
# library default (1024, 512) so that a few hundred spectra suffice and training stays quick.
_HIDDEN = (512, 384)
_QUERY_FILE = "spec-57278-EG224429N215706B01_sp01-001.fits.gz"  # LAMOST DR10 K7 star, S/N 172


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "-o", default="pyspec-demo",
                        help="output directory (default ./pyspec-demo; re-running replaces it)")
    parser.add_argument("--n-simulated", type=int, default=700,
                        help="simulated spectra added to the 59 real ones (default 700)")
    parser.add_argument("--n-bits", type=int, default=256, help="code length (default 256)")
    parser.add_argument("-k", type=int, default=10, help="neighbours in the query (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_num_threads(parser)
    add_quiet(parser)


def _meta_row(meta: dict[str, Any]) -> dict[str, Any]:
    return dict(meta)


def _simulated(grid: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[dict], str]:
    """Raw simulated spectra on ``grid`` (flux, ivar, metadata rows, description)."""
    if n == 0:
        return np.empty((0, 0)), np.empty((0, 0)), [], "none"
    try:
        from pyspec.simulate import Simulator, load_library
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("pyspec.simulate"):
            raise
        return np.empty((0, 0)), np.empty((0, 0)), [], "none"
    from pyspec.data import SAMPLE_DIR

    sim = Simulator(grid=grid, seed=seed, templates=load_library(sources=[SAMPLE_DIR]))
    batch = sim.generate(0, n)
    labels = batch.labels
    rows = []
    for i in range(n):
        cls = str(labels["class"][i]) if "class" in labels.colnames else "SIM"
        z = float(labels["z"][i]) if "z" in labels.colnames else float("nan")
        snr = float(labels["snr_r"][i]) if "snr_r" in labels.colnames else float("nan")
        rows.append({"id": f"sim-{i:05d}", "file": "simulated", "class": f"SIM-{cls}",
                     "subclass": str(labels["subclass"][i]) if "subclass" in labels.colnames
                     else "", "z": z, "snr_r": snr, "ra": float("nan"), "dec": float("nan")})
    return batch.flux, batch.ivar, rows, "pyspec.simulate (templates: the shipped sample)"


def _as_spectra(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                rows: list[dict]) -> list[Any]:
    from pyspec.io import Spectrum

    out = []
    for f, iv, m in zip(flux, ivar, rows, strict=True):
        iv = np.asarray(iv, np.float32)
        out.append(Spectrum(wavelength=wavelength, flux=np.asarray(f, np.float32), ivar=iv,
                            mask=~(iv > 0), meta={**m, "vacuum": True}))
    return out


def _noisy_copies(prepared_flux: np.ndarray, prepared_ivar: np.ndarray, metas: list[dict],
                  n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """Fallback augmentation in prepared space: copies with noise from their own ivar."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, prepared_flux.shape[0], n)
    sigma = np.where(prepared_ivar[pick] > 0, 1.0 / np.sqrt(np.maximum(prepared_ivar[pick],
                                                                         1e-30)), 0.0)
    scale = rng.uniform(1.0, 4.0, (n, 1))
    flux = prepared_flux[pick] + (scale * sigma * rng.standard_normal(sigma.shape))
    flux /= np.linalg.norm(flux, axis=1, keepdims=True)
    rows = [{"id": f"sim-{i:05d}", "file": "augmented", "class": f"SIM-{metas[p].get('class')}",
             "subclass": metas[p].get("subclass") or "", "z": metas[p].get("z"),
             "ra": float("nan"), "dec": float("nan")} for i, p in enumerate(pick)]
    return flux.astype(np.float32), rows


def build_sample_store(store_dir: Path, n_simulated: int, seed: int = 0
                       ) -> tuple[Any, int, int, str]:
    """Store of the shipped real spectra (first rows) plus ``n_simulated`` simulated ones.

    Returns (store, n_real, n_rejected, how the extra spectra were made).
    """
    from pyspec.data import sample_files
    from pyspec.io import read_spectra
    from pyspec.preprocess import DEFAULT_PREPROCESSING, Preprocessor
    from pyspec.store import SpectrumStore

    files = sample_files()
    prep = Preprocessor.from_dict({**Preprocessor.preset(DEFAULT_PREPROCESSING).to_dict(),
                                   "grid": Preprocessor(_GRID).grid.to_dict()})
    read = read_spectra(files)
    batch = prep.apply(read.spectra)
    ok = np.asarray(batch.ok)
    real_meta = [_meta_row(s.meta) for s, good in zip(read.spectra, ok, strict=True) if good]
    rejects = list(read.rejects) + [(str(s.meta.get("file")), str(r))
                                    for s, good, r in zip(read.spectra, ok, batch.reasons,
                                                          strict=True) if not good]
    n_real = int(ok.sum())

    # 2. simulated spectra from the same templates (or noisy copies)
    sim_flux, sim_ivar, sim_rows, how = _simulated(prep.grid, n_simulated, seed)
    if n_simulated and how != "none":
        sim_batch = prep.apply(_as_spectra(prep.grid.wavelength, sim_flux, sim_ivar, sim_rows))
        good = np.asarray(sim_batch.ok)
        extra_flux, extra_ivar = sim_batch.flux[good], sim_batch.ivar[good]
        extra_rows = [r for r, g in zip(sim_rows, good, strict=True) if g]
    elif n_simulated:
        how = "noisy copies of the real spectra (pyspec.simulate not available)"
        extra_flux, extra_rows = _noisy_copies(batch.flux[ok], batch.ivar[ok], real_meta,
                                               n_simulated, seed)
        extra_ivar = np.ones_like(extra_flux)
    else:
        extra_flux = np.empty((0, len(prep.grid)), np.float32)
        extra_ivar, extra_rows = extra_flux.copy(), []

    with SpectrumStore.create(store_dir, prep.grid, preprocessing=prep.to_dict()) as writer:
        writer.append(batch.flux[ok], batch.ivar[ok], real_meta)
        if extra_rows:
            writer.append(extra_flux, extra_ivar, extra_rows)
        for name, reason in rejects:
            writer.reject(name, reason)
    return SpectrumStore.open(store_dir), n_real, len(rejects), how


def run(args: argparse.Namespace) -> int:
    from pyspec.catalogue import provenance, write_catalogue
    from pyspec.data import sample_files
    from pyspec.engine import Engine
    from pyspec.models.pil import PILHasher
    from pyspec.queries import representative_queries
    from pyspec.workflows import catalogue_search

    if args.n_simulated < 0:
        raise ValueError(f"--n-simulated must be >= 0, got {args.n_simulated}")
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store_dir, engine_dir = out / "store", out / "engine"
    for old in (store_dir, engine_dir):
        if old.exists():
            shutil.rmtree(old)

    # 1-2. ingest the real sample, add simulated spectra
    files = sample_files()
    store, n_real, n_rejected, how = build_sample_store(store_dir, args.n_simulated, args.seed)
    n_extra = len(store) - n_real
    say(args, f"[1/5] store {store_dir}: {n_real} real LAMOST spectra ({n_rejected} rejected) "
              f"+ {n_extra} simulated on the {_GRID} grid ({len(store.grid)} pixels)")
    if n_extra:
        say(args, f"      simulated with {how}: a 256-bit PIL hasher needs more training "
                  "spectra than hidden units")

    # 3. train and build
    t0 = time.perf_counter()
    hasher = PILHasher(n_bits=args.n_bits, hidden=_HIDDEN, random_state=args.seed)
    hasher.fit(np.asarray(store.flux))
    fit_s = time.perf_counter() - t0
    engine = Engine.build(store, hasher, out=engine_dir, num_threads=args.num_threads,
                          progress=show_progress(args))
    say(args, f"[2/5] trained a {args.n_bits}-bit PIL hasher (hidden layers "
              f"{'-'.join(map(str, _HIDDEN))}-{args.n_bits}) on {len(store)} spectra in "
              f"{fit_s:.2f} s")
    say(args, f"[3/5] engine {engine_dir}: {len(engine)} codes")

    # 4. query-by-example with one real spectrum
    query_path = next((f for f in files if f.name == _QUERY_FILE), files[0])
    table = engine.query(query_path, k=args.k, num_threads=args.num_threads)
    table.meta["inputs"] = [str(query_path)]
    q_table = write_catalogue(table, out / "query.ecsv")
    q_png = engine.plot_query(table, out / "query.png")
    first = table[0]
    say(args, f"[4/5] query {query_path.name}: nearest {first['id']} ({first['class']} "
              f"{first['subclass']}) at distance {first['distance']}; "
              f"{len(table)} neighbours -> {q_table}, figure -> {q_png}")

    # 5. representative queries among the real stars -> catalogue search
    meta = store.meta
    is_real_star = np.flatnonzero((np.asarray(meta["class"], str) == "STAR")
                                  & (np.arange(len(store)) < n_real))
    sel = representative_queries(np.asarray(store.flux[is_real_star]), n_groups=4,
                                 n_subclusters=2, n_components=10, random_state=args.seed)
    queries = sel.to_table(meta[is_real_star])
    queries["row"] = is_real_star[sel.rows]
    queries.meta["store"] = str(store_dir.resolve())
    queries.meta.update(provenance(command="pyspec demo (queries)", inputs=[str(store_dir)]))
    qs_path = write_catalogue(queries, out / "queries.ecsv")
    qflux = np.asarray(store.flux[np.asarray(queries["row"])])
    cands = catalogue_search(engine, qflux, np.asarray(queries["id"], str), fraction=0.1,
                             num_threads=args.num_threads, progress=show_progress(args),
                             query_meta=queries)
    cands.meta.update(provenance(command="pyspec demo (search)", inputs=[str(qs_path)],
                                 engine={"path": str(engine_dir.resolve())}))
    c_path = write_catalogue(cands, out / "candidates.ecsv")
    say(args, f"[5/5] {len(queries)} representative star queries (PCA+BIRCH+KMeans) -> "
              f"{len(cands)} candidates (top 10% each, merged) -> {c_path}")
    # issue 18 steps: label spreading and active learning on the same store
    from pyspec.commands._demo_semi import demo_active_learning, demo_label_spreading

    demo_label_spreading(args, store, out)
    demo_active_learning(args, store, out)
    say(args, f"done in {time.perf_counter() - t_start:.1f} s; outputs in {out.resolve()}")
    return 0
