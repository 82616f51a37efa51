"""Search quality on the real LAMOST corpus (issue 14): are the neighbours the right ones?

Two questions an astronomer asks of a similarity search, answered on
``../shared/data``:

* repeats: ``lamost/ccf_repeats_dr8`` holds 99 stars observed 2-5 times
  (groups from the file's CCF table); recall@1/5/10 = the fraction of
  those 220 spectra with another epoch of the same star among their first
  1/5/10 neighbours (the spectrum itself excluded);
* labels: for every LAMOST star with an MK subclass, precision@10 of the
  type letter (O..M) and of the full subclass among its 10 nearest other
  labelled stars (other epochs of the same star excluded: they would
  flatter every method alike).

Rows: exact L2 under each preprocessing recipe (the presets and one-step
ablations of the default), an ivar-weighted exact distance, the default engine
(``pyspec ingest`` + ``pyspec build`` defaults: similarity recipe, PIL-256,
two-stage search re-ranked in the space of the store's principal
components), each model's codes alone and re-ranked, and the re-rank
space's variants (the spectra themselves, other numbers of components). There is no
peer library here: the reference is exact L2.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "quality"


def _recipes() -> dict[str, object]:
    """The recipes compared by exact L2: the presets and one-step ablations of the default."""
    from pyspec.preprocess import Preprocessor

    base = Preprocessor.preset("similarity").to_dict()
    variant = lambda **kw: Preprocessor.from_dict({**base, "name": None, **kw})  # noqa: E731
    return {
        "similarity": Preprocessor.preset("similarity"),
        "similarity without the 4000-8800 A range": variant(wavelength_range=None),
        "similarity without the sky mask": variant(mask_sky=False),
        "similarity with a plain 150 A running median": variant(continuum="median",
                                                                continuum_window=150.0),
        "l2 (former default)": Preprocessor.preset("l2"),
        "minmax (seed 000)": Preprocessor.preset("minmax"),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quality-data", default=None, metavar="DIR",
                        help="the shared corpus (default: ../shared/data next to the repo)")


def _data_dir(args: argparse.Namespace) -> Path:
    if args.quality_data:
        return Path(args.quality_data)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _groups(data: Path) -> dict[str, int]:
    table = data / "lamost" / "ccf_repeats_dr8" / "20220313_snrg_30_Grpeddata_CCF_test.csv"
    with open(table, newline="") as fh:
        return {os.path.basename(r["combined_file"]): int(float(r["GroupID"]))
                for r in csv.DictReader(fh)}


def _labels(meta, groups: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    files = [os.path.basename(str(f)) for f in meta["file"]]
    group = np.array([groups.get(f, -1) if "ccf_repeats" in str(p) else -1
                      for f, p in zip(files, meta["file"], strict=True)])
    sub = np.array([str(s).strip() for s in meta["subclass"]])
    star = np.array([str(c) == "STAR" for c in meta["class"]]) & \
        np.array([len(s) > 0 and s[0] in "OBAFGKM" for s in sub])
    return group, sub, star


def _scores(order_fn, n: int, group: np.ndarray, sub: np.ndarray, star: np.ndarray
            ) -> dict[str, float]:
    """order_fn(rows, k) -> (len(rows), >= k) neighbour rows (self may be included)."""
    rep = np.flatnonzero(group >= 0)
    nb = order_fn(rep, 11)
    out = {}
    for k in (1, 5, 10):
        hits = [np.any(group[[r for r in row if r != q][:k]] == group[q])
                for q, row in zip(rep, nb, strict=True)]
        out[f"repeat_R@{k}"] = float(np.mean(hits))
    q = np.flatnonzero(star)
    nb = order_fn(q, min(n, 100))
    letter_p, sub_p = [], []
    for i, row in zip(q, nb, strict=True):
        same = (group[row] == group[i]) & (group[i] >= 0)
        keep = [r for r, s in zip(row, same, strict=True)
                if r != i and r >= 0 and star[r] and not s][:10]
        letter_p.append(np.mean([sub[r][0] == sub[i][0] for r in keep]))
        sub_p.append(np.mean([sub[r] == sub[i] for r in keep]))
    out["letter_P@10"] = float(np.mean(letter_p))
    out["subclass_P@10"] = float(np.mean(sub_p))
    return out


def _exact(flux: np.ndarray):
    x = flux.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)

    def order(rows: np.ndarray, k: int) -> np.ndarray:
        d = sq[rows, None] - 2.0 * x[rows] @ x.T + sq[None, :]
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    return order


def _chi2(flux: np.ndarray, ivar: np.ndarray, floor: float):
    """Ranking by sum (x - y)^2 / (var_x + var_y + floor^2) over pixels with ivar > 0 in both."""
    x = flux.astype(np.float64)
    var = np.where(ivar > 0, 1.0 / np.maximum(ivar, 1e-30), np.inf)

    def order(rows: np.ndarray, k: int) -> np.ndarray:
        out = np.empty((rows.size, k), np.int64)
        for j, r in enumerate(rows):
            w = 1.0 / (var[r] + var + floor ** 2)  # 0 where either pixel is masked
            d = (w * (x[r] - x) ** 2).sum(axis=1)
            out[j] = np.argsort(d, kind="stable")[:k]
        return out
    return order


def _engine_order(engine, flux: np.ndarray, rerank: int):
    def order(rows: np.ndarray, k: int) -> np.ndarray:
        q = np.ascontiguousarray(flux[rows])
        if rerank:
            res = engine.search_prepared(q, max(rerank, k))
            return engine.rerank(q, res.ids, k)[0]
        return engine.search_prepared(q, k).ids
    return order


def run(args: argparse.Namespace) -> list[dict]:
    from pyspec.engine import Engine, make_model
    from pyspec.ingest import ingest
    from pyspec.search_checks import default_candidates
    from pyspec.store import SpectrumStore

    data = _data_dir(args)
    index = data / "spectra_index.csv"
    if not index.is_file():
        return [{"case": f"no corpus at {data}", "note": "skipped"}]
    with open(index, newline="") as fh:
        paths = [str(data / r["relative_path"]) for r in csv.DictReader(fh)
                 if r["relative_path"].startswith("lamost/")]
    if args.quick:
        paths = [p for p in paths if "ccf_repeats" in p][:60]
    groups = _groups(data)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (recipe, pre) in enumerate(_recipes().items()):
            if args.quick and i > 1:
                break
            t0 = time.perf_counter()
            ingest(paths, Path(tmp) / f"r{i}", preprocessor=pre, progress=False)
            ingest_s = time.perf_counter() - t0
            store = SpectrumStore.open(Path(tmp) / f"r{i}")
            flux = np.asarray(store.flux, np.float32)
            group, sub, star = _labels(store.meta, groups)
            rows.append({"case": f"exact L2, {recipe}", "n": len(store),
                         **_scores(_exact(flux), len(flux), group, sub, star),
                         "ingest_s": ingest_s})
            if i != 0:
                continue
            # exact L2 after projection on the store's first p principal components: a
            # denoised distance (a measurement for a future re-rank space, not the default)
            centred = flux.astype(np.float64) - flux.mean(axis=0)
            basis = np.linalg.svd(centred, full_matrices=False)[2]
            for p in (16, 32, 64, 128) if not args.quick else (16,):
                z = (centred @ basis[:p].T).astype(np.float32)
                rows.append({"case": f"exact L2 on the first {p} principal components, "
                                     "similarity", "n": len(store),
                             **_scores(_exact(z), len(z), group, sub, star)})
            ivar = np.asarray(store.ivar, np.float32)
            rows.append({"case": "exact chi2 (ivar-weighted, 0.03 floor), similarity",
                         "n": len(store),
                         **_scores(_chi2(flux, ivar, 0.03), len(flux), group, sub, star)})
            bits = 256 if len(store) >= 256 else 32  # ITQ needs n_bits <= n (--quick)
            m = default_candidates(10, len(store))
            for name in ("pil", "lsh") if args.quick else ("pil", "lsh", "itq"):
                t0 = time.perf_counter()
                engine = Engine.build(store, make_model(name, n_bits=bits, random_state=0),
                                      out=Path(tmp) / f"engine-{name}")
                build_s = time.perf_counter() - t0
                c = engine.info["rerank"]["n_components"]
                label = f"default engine (pil-{bits}, two-stage, pca-{c} re-rank)" \
                    if name == "pil" else f"{name}-{bits} two-stage, pca-{c} re-rank"
                rows.append({"case": label, "n": len(store),
                             **_scores(_engine_order(engine, flux, m), len(flux), group, sub,
                                       star), "build_s": build_s})
                rows.append({"case": f"{name}-{bits} codes only", "n": len(store),
                             **_scores(_engine_order(engine, flux, 0), len(flux), group, sub,
                                       star)})
                rows.append({"case": f"{name}-{bits} codes + pca-{c} re-rank of all spectra",
                             "n": len(store), **_scores(_engine_order(engine, flux, len(flux)),
                                                        len(flux), group, sub, star)})
            # the re-rank space's variants on the default model: the spectra themselves (the
            # first version of issue 14) and other numbers of principal components
            variants = {"flux re-rank": {"rerank_space": "flux"}} if args.quick else {
                "flux re-rank": {"rerank_space": "flux"},
                **{f"pca-{c} re-rank": {"n_components": c} for c in (8, 16, 64)}}
            for label, kw in variants.items():
                engine = Engine.build(store, make_model("pil", n_bits=bits, random_state=0),
                                      out=Path(tmp) / f"engine-pil-{label}", **kw)
                rows.append({"case": f"pil-{bits} two-stage, {label}", "n": len(store),
                             **_scores(_engine_order(engine, flux, m), len(flux), group, sub,
                                       star)})
    return rows
