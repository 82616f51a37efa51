"""Issue 15 figures: redshifts, velocities, broad lines and file/store identity on shared/data.

Usage (from the repository root)::

    python bench/redshift_quality.py [--data ../shared/data] [--no-store]

Measures every LAMOST and SDSS spectrum of the corpus with ``pyspec measure
FILES`` (the Ondrejov files are H-alpha cut-outs without a pipeline
redshift), compares with the survey pipeline values of ``spectra_index.csv``
and, unless ``--no-store``, ingests the same files into a store (``lamost``
grid) and checks that ``pyspec measure --store`` gives identical numbers.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

C_KMS = 299792.458


def _rows(data: Path) -> list[dict]:
    with (data / "spectra_index.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["relative_path"].startswith("ondrejov")]
    for r in rows:
        r["path"] = str(data / r["relative_path"])
    return rows


def _measure_files(paths: list[str], out: Path) -> object:
    from astropy.table import Table

    from pyspec.cli import main

    t0 = time.perf_counter()
    assert main(["measure", *paths, "-o", str(out), "--quiet", "--overwrite"]) == 0
    print(f"measure FILES: {len(paths)} spectra in {time.perf_counter() - t0:.1f} s")
    return Table.read(out, format="ascii.ecsv")


def redshift_figures(rows: list[dict], t) -> None:
    z_pipe = np.array([float(r["z"]) for r in rows])
    cls = np.array([r["obj_class"] for r in rows])
    z, method, quality = np.asarray(t["z"]), np.asarray(t["z_method"]), np.asarray(t["z_quality"])
    ex = np.isin(cls, ["GALAXY", "QSO"])
    got = ex & np.isfinite(z)
    good = got & (np.abs(z - z_pipe) < 0.001 * (1 + z_pipe))
    print(f"galaxies+quasars: {ex.sum()}; z returned {got.sum()} ({got.sum() / ex.sum():.1%}); "
          f"|dz| < 0.001(1+z) for {good.sum()} of those ({good.sum() / max(got.sum(), 1):.1%})")
    for q in ("good", "uncertain"):
        sel = got & (quality == q)
        print(f"  quality {q}: {sel.sum()} returned, {(sel & good).sum()} correct")
    print("  methods:", dict(Counter(method[ex])))
    for i in np.flatnonzero(ex & ~good):
        print(f"  miss: {rows[i]['relative_path']} z_pipe={z_pipe[i]:.5f} z={z[i]:.5f} "
              f"{method[i]} {quality[i]} S/N_r={rows[i]['snr_r']}")
    star = cls == "STAR"
    false = star & np.isfinite(z) & (np.abs(z) * C_KMS >= 500)
    print(f"stars: {star.sum()}; false extragalactic redshifts (|cz| >= 500 km/s): "
          f"{false.sum()} ({false.sum() / star.sum():.2%}); methods {dict(Counter(method[star]))}")
    dr = np.array([r["data_release"] for r in rows])
    for rel in ("LAMOST DR7", "LAMOST DR8", "(DR1, no DATA_V)"):
        sel = star & (dr == rel) & (method == "xcorr-star")
        dv = (z[sel] - z_pipe[sel]) * C_KMS
        print(f"  {rel}: {sel.sum()} stars, median |v - v_header| = "
              f"{np.median(np.abs(dv)):.1f} km/s, median v - v_header = {np.median(dv):.1f}")


def m_star_figures(rows: list[dict], t) -> None:
    """DR1 M stars: measured velocity vs header, and what it does to TiO5 / zeta."""
    sub = np.array([r["subclass"] for r in rows])
    dr = np.array([r["data_release"] for r in rows])
    sel = np.char.startswith(sub.astype(str), "M") & (dr == "(DR1, no DATA_V)")
    dv = np.asarray(t["index_velocity"])[sel] - np.array(
        [float(r["z"]) for r in rows])[sel] * C_KMS
    print(f"DR1 M stars: {sel.sum()}, measured - header velocity: median |dv| "
          f"{np.median(np.abs(dv)):.0f} km/s, max {np.max(np.abs(dv)):.0f} km/s")
    for i in np.flatnonzero(sel):
        if rows[i]["relative_path"].endswith("sp06-025.fits"):
            print(f"  sp06-025: v = {t['index_velocity'][i]:.0f} km/s, TiO5 = "
                  f"{t['tio5'][i]:.3f}, zeta = {t['zeta'][i]:.3f} ({t['zeta_flag'][i]})")


def class_figures(rows: list[dict], t) -> None:
    rel = [r["relative_path"] for r in rows]
    rm = np.array(["pyqsofit_rm017" in p for p in rel])
    bpt = np.asarray(t["bpt_class"])
    print(f"RM017 epochs: {rm.sum()}; broad_line {np.sum(np.asarray(t['broad_line'])[rm])}; "
          f"BPT classes {dict(Counter(bpt[rm]))}")
    cls = np.array([r["obj_class"] for r in rows])
    sub = np.array([r["subclass"] for r in rows])
    print("broad_line by class:", dict(Counter(cls[np.asarray(t["broad_line"], bool)])))
    flag = np.asarray(t["zeta_flag"])
    is_m = np.array([s.lstrip("dgs").startswith("M") for s in sub]) & (cls == "STAR")
    ok = flag == "ok"
    print(f"zeta given for {ok.sum()} stars: {np.sum(ok & is_m)} of the {is_m.sum()} M stars "
          f"(header subclass), {np.sum(ok & ~is_m)} others "
          f"({dict(Counter(sub[ok & ~is_m]))}); A stars with zeta: "
          f"{np.sum(ok & np.char.startswith(sub.astype(str), 'A'))}")


def store_identity(paths: list[str], t_files, workdir: Path) -> None:
    from astropy.table import Table

    from pyspec.cli import main
    from pyspec.ingest import ingest

    ingest(paths, workdir / "store", grid="lamost", progress=False)
    out = workdir / "store.ecsv"
    t0 = time.perf_counter()
    assert main(["measure", "--store", str(workdir / "store"), "-o", str(out), "--quiet"]) == 0
    print(f"measure --store: {time.perf_counter() - t0:.1f} s")
    ts = Table.read(out, format="ascii.ecsv")
    pos = {str(p): i for i, p in enumerate(t_files["file"])}
    order = [pos[str(p)] for p in ts["file"]]
    tf = t_files[order]
    n_cells = n_diff = 0
    differing = Counter()
    for name in ts.colnames:
        if name in ("file", "id", "measured_from") or name not in tf.colnames:
            continue
        a, b = np.asarray(tf[name]), np.asarray(ts[name])
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
        n_cells += same.size
        n_diff += int((~same).sum())
        if (~same).any():
            differing[name] = int((~same).sum())
    print(f"store vs files: {len(ts)} rows ({dict(Counter(ts['measured_from']))}), "
          f"{n_cells} cells compared, {n_diff} differ {dict(differing)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--no-store", action="store_true")
    args = ap.parse_args()
    rows = _rows(args.data)
    paths = [r["path"] for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = _measure_files(paths, work / "files.ecsv")
        redshift_figures(rows, t)
        class_figures(rows, t)
        m_star_figures(rows, t)
        if not args.no_store:
            store_identity(paths, t, work)


if __name__ == "__main__":
    main()
