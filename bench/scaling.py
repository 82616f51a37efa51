"""Scaling run: cost per spectrum of each pyspec stage vs database size and threads.

    python bench/scaling.py                      # sizes 1e4, 1e5, 1e6; threads 1, 2, ...
    python bench/scaling.py --quick              # small sizes (a minute)
    python bench/scaling.py --sizes 1e5 1e6 1e7 --max-float-n 1000000 --threads 1 8 16

Every stage that exists in the installed pyspec is timed at each database
size and thread count; a stage whose module is absent is skipped with a
message, one that fails is reported and the run goes on. Data are realistic
simulated spectra (``pyspec.simulate``; the simulator itself is timed up to
``--max-sim-n``). Stages on float spectra (preprocessing, PIL fit, encode, PQ, graph) run up to ``--max-float-n``
spectra, FITS ingestion (``pyspec.ingest`` with 1, 2, ... worker processes
on simulated LAMOST files) up to ``--max-files``; the code
scans go further, on codes of the simulated spectra (PIL codes, or 256-bit
sign random projections while the PIL hasher is absent) repeated with random bit
flips (so the scan cost, which does not depend on the code values, is what
is measured). Thread counts: 1, 2, 4, 8, 16 up to the cores present
(preprocessing has no thread option and runs at 1).

The table (ECSV and markdown) gives seconds, microseconds per spectrum (for
the batch searches: per query and database spectrum; the single-query scan
is timed per query) and,
for the scans, the bytes of codes scanned per second next to a NumPy
single-thread memory read bandwidth measured in the same run. The PNG plots
cost per spectrum against size, one line per thread count: flat lines mean
the cost per spectrum does not grow with the database.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from timing import best_time

HERE = Path(__file__).resolve().parent


def _threads_default() -> list[int]:
    cores = os.cpu_count() or 1
    return [t for t in (1, 2, 4, 8, 16) if t <= cores] or [1]


def _kw_threads(fn, num_threads: int) -> dict:
    """Pass num_threads only to callables that take it."""
    try:
        return {"num_threads": num_threads} if "num_threads" in inspect.signature(fn).parameters \
            else {}
    except (TypeError, ValueError):
        return {}


def read_bandwidth(n_bytes: int = 512 * 2**20) -> float:
    """NumPy single-thread read bandwidth (bytes/s): sum of a uint64 array."""
    a = np.ones(n_bytes // 8, np.uint64)
    a.sum()
    return n_bytes / best_time(a.sum, repeat=3)


class SkipStage(RuntimeError):
    """A stage whose prerequisite stage is absent at this size."""


class Context:
    """Data shared between stages, built lazily and grown as sizes increase."""

    def __init__(self, args):
        self.args = args
        self.rng = np.random.default_rng(0)
        self._x = None
        self.hasher = None
        self.codes = None
        self.embed = None
        self.pq = None

    def spectra(self, n: int) -> np.ndarray:
        """(n, n_pixels) float32 simulated, cleaned spectra (masked pixels filled, L2 norm)."""
        if self._x is None or self._x.shape[0] < n:
            from pyspec.simulate import Simulator

            sim = Simulator(grid=np.geomspace(3900.0, 8900.0, self.args.n_pixels), seed=0)
            x = np.empty((n, self.args.n_pixels), np.float32)
            for s in range(0, n, 8192):
                b = sim.generate(s, min(s + 8192, n))
                f = b.flux.copy()
                f[b.ivar <= 0] = 0.0  # a crude fill; preprocessing proper is its own stage
                norm = np.linalg.norm(f, axis=1, keepdims=True)
                x[s:s + len(b)] = f / np.where(norm > 0, norm, 1)
            self._x = x
        return self._x[:n]

    def base_codes(self) -> np.ndarray:
        """PIL codes when the encode stage ran, else 256-bit sign random projections."""
        if self.codes is not None:
            self.code_kind = "pil"
            return self.codes
        if getattr(self, "_srp", None) is None:
            from pyspec._bits import pack_bits

            x = self.spectra(min(self.args.max_float_n, 10_000))
            planes = np.random.default_rng(2).standard_normal((x.shape[1], 256))
            self._srp = pack_bits(x @ planes.astype(np.float32) > 0)
        self.code_kind = "srp256"
        return self._srp

    def tiled_codes(self, n: int) -> np.ndarray:
        """Codes of the simulated spectra repeated up to n rows, each bit flipped with p = 1/16.

        The flips are the AND of four random words, drawn in blocks, so 10^7
        codes need no more than the codes themselves.
        """
        base = self.base_codes()
        reps = -(-n // base.shape[0])
        out = np.tile(base, (reps, 1))[:n].copy()
        block = 1 << 18
        for s in range(0, n, block):
            shape = (min(block, n - s), base.shape[1])
            words = [self.rng.integers(0, 2**64, size=shape, dtype=np.uint64) for _ in range(4)]
            out[s:s + shape[0]] ^= words[0] & words[1] & words[2] & words[3]
        return out


# ------------------------------------------------------------------ stages
# Each stage: (name, module needed, function(ctx, n, threads) -> seconds, kind)
# kind "float": n limited by --max-float-n; "codes": any n.

def st_simulate(ctx, n, t):
    from pyspec.simulate import Simulator

    sim = Simulator(grid=np.geomspace(3900.0, 8900.0, ctx.args.n_pixels), seed=1,
                    num_threads=t)
    sim.generate(0, 16)
    return best_time(lambda: [None for _ in sim.iter_chunks(n, 8192)], repeat=1)


def st_preprocess(ctx, n, t):
    """Preprocessor.apply (resample to pq-2A, fill, normalise) on Spectrum objects."""
    from pyspec.io import Spectrum
    from pyspec.preprocess import Preprocessor
    from pyspec.simulate import Simulator
    from pyspec.simulate._writers import lamost_native_wavelength

    wl = lamost_native_wavelength()
    sim = Simulator(grid=wl, seed=2)
    spectra = []
    for b in sim.iter_chunks(n, 8192):
        spectra += [Spectrum(wl, b.flux[i], b.ivar[i], b.ivar[i] <= 0, {"id": str(i)})
                    for i in range(len(b))]
    prep = Preprocessor(grid="pq-2A")
    return best_time(lambda: prep.apply(spectra), repeat=1)


def st_ingest(ctx, n, t):
    """``pyspec.ingest`` of simulated LAMOST FITS files (layouts C and D), ``t`` workers."""
    import shutil
    import tempfile

    from pyspec.ingest import ingest
    from pyspec.simulate import write_fits

    if ctx.args.max_files < n:
        raise SkipStage(f"more than --max-files {ctx.args.max_files} files")
    root = Path(tempfile.mkdtemp(prefix="pyspec-scaling-"))
    try:
        write_fits(root / "fits", n, seed=3)
        count = [0]

        def once():
            count[0] += 1
            ingest([root / "fits"], root / f"store{count[0]}", grid="pq-2A", workers=t,
                   progress=False)

        return best_time(once, repeat=1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def st_pil_fit(ctx, n, t):
    from pyspec import PILHasher

    x = ctx.spectra(n)
    h = PILHasher(n_bits=256, random_state=0)
    secs = best_time(lambda: h.fit(x, **_kw_threads(h.fit, t)), repeat=1)
    if ctx.hasher is None or n >= ctx.fit_n:
        ctx.hasher, ctx.fit_n = h, n
    return secs


def st_encode(ctx, n, t):
    x = ctx.spectra(n)
    h = ctx.hasher
    if h is None:
        raise SkipStage("needs pil_fit")
    out = {}
    secs = best_time(lambda: out.setdefault("c", h.encode(x, **_kw_threads(h.encode, t))), repeat=1)
    ctx.codes = out["c"]
    if hasattr(h, "embed"):
        ctx.embed = h.embed(x[: ctx.args.max_graph_n])
    return secs


def _hamming(ctx, n):
    from pyspec import HammingIndex

    cached = getattr(ctx, "_hamming_cache", None)
    if cached is None or cached[0] != n:
        codes = ctx.tiled_codes(n)
        index = HammingIndex(n_bits=256)
        index.add(codes)
        ctx._hamming_cache = cached = (n, index, codes)
    return cached[1], cached[2]


def st_hamming_build(ctx, n, t):
    from pyspec import HammingIndex

    codes = ctx.tiled_codes(n)
    return best_time(lambda: HammingIndex(n_bits=256).add(codes), repeat=1)


def st_hamming_scan_1q(ctx, n, t):
    """One query at a time: the scan streams every code once -> bandwidth bound."""
    index, codes = _hamming(ctx, n)
    q = codes[:10]
    index.search(q[:1], 10, num_threads=t)
    secs = best_time(lambda: [index.search(q[i:i + 1], 10, num_threads=t) for i in range(10)], repeat=1)
    return secs / 10


def st_hamming_batch(ctx, n, t):
    index, codes = _hamming(ctx, n)
    q = codes[:ctx.args.queries]
    return best_time(lambda: index.search(q, 10, num_threads=t), repeat=1)


def st_pq_train(ctx, n, t):
    from pyspec import ProductQuantizer

    x = ctx.spectra(n)
    pq = ProductQuantizer(n_segments=ctx.args.pq_segments, n_centroids=256, random_state=0)
    secs = best_time(lambda: pq.fit(x, **_kw_threads(pq.fit, t)), repeat=1)
    ctx.pq = pq
    return secs


def st_pq_encode(ctx, n, t):
    if ctx.pq is None:
        raise SkipStage("needs pq_train")
    x = ctx.spectra(n)
    return best_time(lambda: ctx.pq.encode(x, **_kw_threads(ctx.pq.encode, t)), repeat=1)


def st_pq_search(ctx, n, t):
    from pyspec import PQIndex

    if ctx.pq is None:
        raise SkipStage("needs pq_train")
    x = ctx.spectra(n)
    index = PQIndex(ctx.pq)
    index.add(x)
    q = x[:ctx.args.queries]
    return best_time(lambda: index.search(q, 10, num_threads=t), repeat=1)


def _embedding(ctx, n):
    """PIL embedding when the hasher exists, else a 64-d Gaussian random projection."""
    if ctx.embed is not None and ctx.embed.shape[0] >= n:
        return ctx.embed[:n], "pil"
    cached = getattr(ctx, "_proj_cache", None)
    if cached is None or cached[0] != n:
        x = ctx.spectra(n)
        proj = np.random.default_rng(1).standard_normal((x.shape[1], 64)).astype(np.float32)
        ctx._proj_cache = cached = (n, np.ascontiguousarray(x @ proj))
    return cached[1], "randproj64"


def st_graph_build(ctx, n, t):
    from pyspec import GraphIndex

    e, kind = _embedding(ctx, n)
    ctx.embed_kind = kind

    def build():
        g = GraphIndex(dim=e.shape[1])
        g.add(e, num_threads=t)
        ctx.graph = g

    return best_time(build, repeat=1)


def st_graph_search(ctx, n, t):
    g = getattr(ctx, "graph", None)
    if g is None or len(g) != n:
        raise SkipStage("needs graph_build at this size")
    q = _embedding(ctx, n)[0][:ctx.args.queries]
    return best_time(lambda: g.search(q, 10, num_threads=t), repeat=1)


STAGES = [
    ("simulate", "pyspec.simulate", st_simulate, "sim"),
    ("preprocess", "pyspec.preprocess", st_preprocess, "float"),
    ("ingest", "pyspec.ingest", st_ingest, "files"),
    ("pil_fit", "pyspec.models.pil", st_pil_fit, "float"),
    ("encode", "pyspec.models.pil", st_encode, "float"),
    ("hamming_build", "pyspec.index.hamming", st_hamming_build, "codes"),
    ("hamming_scan_1q", "pyspec.index.hamming", st_hamming_scan_1q, "codes"),
    ("hamming_batch", "pyspec.index.hamming", st_hamming_batch, "codes"),
    ("pq_train", "pyspec.models.pq", st_pq_train, "float"),
    ("pq_encode", "pyspec.models.pq", st_pq_encode, "float"),
    ("pq_search", "pyspec.index.pq", st_pq_search, "float"),
    ("graph_build", "pyspec.index.graph", st_graph_build, "graph"),
    ("graph_search", "pyspec.index.graph", st_graph_search, "graph"),
]


_BATCH_QUERY_STAGES = ("hamming_batch", "pq_search", "graph_search")


def available_stages(wanted: list[str] | None) -> list[tuple]:
    import importlib

    out = []
    for stage in STAGES:
        name, module = stage[0], stage[1]
        if wanted and name not in wanted:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            print(f"skip {name}: {module} not available ({exc})", flush=True)
            continue
        out.append(stage)
    return out


def run(args) -> list[dict]:
    ctx = Context(args)
    rows = []
    stages = available_stages(args.stages)
    bw = read_bandwidth()
    print(f"NumPy single-thread read bandwidth: {bw / 1e9:.1f} GB/s", flush=True)
    for n in sorted(args.sizes):
        for name, _module, fn, kind in stages:
            limit = {"float": args.max_float_n, "graph": args.max_graph_n,
                     "files": args.max_files, "sim": args.max_sim_n}.get(kind)
            if limit is not None and n > limit:
                continue
            serial = name == "preprocess" or (name == "pil_fit" and args.fit_one_thread)
            threads = [1] if serial else args.threads
            for t in threads:
                try:
                    secs = fn(ctx, n, t)
                except SkipStage as exc:
                    print(f"skip {name} n={n}: {exc}", flush=True)
                    continue
                except Exception as exc:  # noqa: BLE001 - report and continue
                    print(f"{name} n={n} threads={t} FAILED: {type(exc).__name__}: {exc}",
                          flush=True)
                    if args.verbose:
                        traceback.print_exc()
                    continue
                # searches: cost per query per database spectrum
                per = n * (args.queries if name in _BATCH_QUERY_STAGES else 1)
                row = {"stage": name, "n": n, "threads": t, "seconds": secs,
                       "us_per_spectrum": secs / per * 1e6}
                if name == "hamming_scan_1q":
                    row["scan_GB_s"] = n * 32 / secs / 1e9
                    row["numpy_read_GB_s"] = bw / 1e9
                if name.startswith("graph"):
                    row["embedding"] = getattr(ctx, "embed_kind", "")
                if name.startswith("hamming"):
                    row["embedding"] = getattr(ctx, "code_kind", "")
                if name in _BATCH_QUERY_STAGES:
                    row["queries_per_s"] = args.queries / secs
                rows.append(row)
                print(f"{name:16s} n={n:>9,d} threads={t:>2d} {secs:9.4f} s "
                      f"{row['us_per_spectrum']:10.3f} us/spectrum"
                      + (f"  scan {row['scan_GB_s']:.2f} GB/s" if "scan_GB_s" in row else ""),
                      flush=True)
    return rows


def write_outputs(rows: list[dict], out: Path, args) -> None:
    from astropy.table import Table

    import pyspec

    out.parent.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = Table(rows=[[r.get(c, np.nan) for c in cols] for r in rows], names=cols) if rows \
        else Table()
    table.meta.update({"pyspec": pyspec.__version__, "command": " ".join(sys.argv),
                       "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                      time.gmtime())})
    table.write(out.with_suffix(".ecsv"), overwrite=True)
    with open(out.with_suffix(".md"), "w") as fh:
        fh.write("| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|\n")
        for r in rows:
            fh.write("| " + " | ".join(
                f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                for c in cols) + " |\n")
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        stages = list(dict.fromkeys(r["stage"] for r in rows))
        ncol = 3
        nrow = -(-len(stages) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
        for ax, stage in zip(axes.flat, stages, strict=False):
            for t in sorted({r["threads"] for r in rows if r["stage"] == stage}):
                sel = [r for r in rows if r["stage"] == stage and r["threads"] == t]
                ax.loglog([r["n"] for r in sel], [r["us_per_spectrum"] for r in sel], "o-",
                          label=f"{t} thread{'s' if t > 1 else ''}")
            if stage == "hamming_scan_1q":
                bw = rows[[r["stage"] for r in rows].index(stage)]["numpy_read_GB_s"]
                ax.axhline(32 / (bw * 1e9) * 1e6, color="k", ls=":",
                           label="NumPy read bandwidth")
            ax.set_title(stage)
            ax.set_xlabel("database size (spectra)")
            ax.set_ylabel("us per spectrum")
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(stages):]:
            ax.set_visible(False)
        fig.suptitle(f"pyspec scaling ({os.cpu_count()} cores)")
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=110)
    print(f"wrote {out.with_suffix('.ecsv')}, .md and .png", flush=True)


def _size(text: str) -> int:
    return int(float(text))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_size, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--threads", type=int, nargs="+", default=_threads_default())
    p.add_argument("--stages", nargs="+", default=None, help=f"subset of {[s[0] for s in STAGES]}")
    p.add_argument("--n-pixels", type=int, default=2500)
    p.add_argument("--max-float-n", type=_size, default=100_000,
                   help="largest size for stages on float spectra (memory: n x n_pixels x 4 B)")
    p.add_argument("--max-graph-n", type=_size, default=100_000)
    p.add_argument("--max-sim-n", type=_size, default=1_000_000,
                   help="largest size for the simulator stage (chunked, bounded memory)")
    p.add_argument("--max-files", type=_size, default=2000,
                   help="largest size for the FITS ingestion stage (files are written first)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--pq-segments", type=int, default=50)
    p.add_argument("--fit-one-thread", action="store_true", help="PIL fit at 1 thread only")
    p.add_argument("--quick", action="store_true", help="sizes 1000 3000 10000, small spectra")
    p.add_argument("--out", type=Path, default=HERE / "results" / "scaling")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [1000, 3000, 10_000]
        args.n_pixels = min(args.n_pixels, 500)
        args.max_float_n = min(args.max_float_n, 10_000)
        args.max_graph_n = min(args.max_graph_n, 10_000)
        args.max_files = min(args.max_files, 1000)
        args.pq_segments = min(args.pq_segments, 25)
    import pyspec

    pyspec.show_config()
    rows = run(args)
    write_outputs(rows, args.out, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
