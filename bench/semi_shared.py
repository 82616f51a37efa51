"""Seed 002 on the shared corpus: CCD700 -> LAMOST adaptation and label spreading.

1. Pair correlation: the 22 Ondrejov CCD700 / LAMOST DR1 spectra of the same
   stars (ondrejov/bt_spectraldl_xmatch_labels.csv), prepared with the
   "ccd700-lamost" preset (blur at the CCD700 pixels to R = 1800, air ->
   vacuum, linear continuum, 140 points over 6519-6732 A, [-1, 1]) against
   two older ways (blur of 5 output pixels after resampling; no blur).
2. Transfer: one graph over every adapted spectrum (22 + 3 Ondrejov, 23
   LAMOST cross-match, 179 LearningLAMOST DR1 stars as unlabelled
   background). The Ondrejov labels (absorption / emission / double-peak;
   alpha Lyr absorption and gamma Cas emission by their file names) are
   spread to the LAMOST spectra; each LAMOST counterpart is scored against
   its Ondrejov partner's label. Then the other way round.

    python bench/semi_shared.py
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> int:
    from pyspec.io import read_spectrum
    from pyspec.knn_graph import knn_graph
    from pyspec.preprocess import Preprocessor, adapt_spectra
    from pyspec.semi_supervised import LabelPropagation, LabelSpreading

    with open(ROOT / "ondrejov/bt_spectraldl_xmatch_labels.csv") as fh:
        pairs = list(csv.DictReader(fh))
    ond = [read_spectrum(ROOT / r["ondrejov_file"]) for r in pairs]
    lam = [read_spectrum(ROOT / r["lamost_match_file"]) for r in pairs]
    labels = np.array([r["label_name"] for r in pairs])
    values, counts = np.unique(labels, return_counts=True)
    print(f"pairs: {len(pairs)} ({dict(zip(values.tolist(), counts.tolist(), strict=True))})")

    lam_prep = adapt_spectra(lam, source=False)
    ways = {"preset ccd700-lamost (blur at source pixels)": adapt_spectra(ond)}
    for name, degrade in (("blur 5 output pixels after resampling", {"sigma_pix": 5.0}),
                          ("no blur", None)):
        ways[name] = Preprocessor("halpha-140", normalise="minmax-sym", continuum="poly",
                                  continuum_degree=1, degrade=degrade).apply(ond)
    for name, prep in ways.items():
        corr = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(prep.flux, lam_prep.flux,
                                                                  strict=True)])
        by = {v: np.median(corr[labels == v]) for v in np.unique(labels)}
        print(f"| {name} | {np.median(corr):.3f} | {corr.min():.3f} | "
              + " | ".join(f"{v} {m:.2f}" for v, m in by.items()) + " |")

    misc = [read_spectrum(ROOT / "ondrejov/bt_spectraldl_misc" / f) for f in
            ("alpha-lyr-absorption.fits", "gamma-cas-emission.fits")]
    xmatch_dir = ROOT / "lamost/bt_spectraldl_xmatch_dr1"
    partner = {r["lamost_match_file"].rsplit("/", 1)[-1] for r in pairs}
    extra = [read_spectrum(p) for p in sorted(xmatch_dir.glob("*.fits"))
             if p.name not in partner]
    background = [read_spectrum(p) for p in sorted((ROOT / "lamost/learninglamost_dr1")
                                                   .glob("*.fits"))]
    o = adapt_spectra(ond + misc)
    b = adapt_spectra(lam + extra + background, source=False)
    x = np.concatenate([o.flux[o.ok], b.flux[b.ok]])
    n_o = int(o.ok.sum())
    o_lab = np.concatenate([labels, ["absorption", "emission"]])[o.ok]
    n_pairs = len(pairs)
    assert b.ok[:n_pairs].all(), "a LAMOST counterpart was rejected"
    print(f"graph nodes: {n_o} Ondrejov + {int(b.ok.sum())} LAMOST "
          f"({int((~b.ok).sum())} LAMOST rejected by the preparation)")
    for k in (3, 5, 7):
        g = knn_graph(x, k=k)
        for model in (LabelSpreading(k, alpha=0.2), LabelSpreading(k, alpha=0.8),
                      LabelPropagation(k)):
            y = np.full(len(x), "-1", dtype=object)
            y[:n_o] = o_lab
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(g, y)
            pred = model.transduction_[n_o:n_o + n_pairs]
            ok = pred == labels
            # the other way: LAMOST counterparts labelled, Ondrejov transduced
            y2 = np.full(len(x), "-1", dtype=object)
            y2[n_o:n_o + n_pairs] = labels
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(g, y2)
            back = model.transduction_[:n_pairs] == labels
            em = labels != "absorption"
            alpha = f", alpha {model.alpha}" if model.alpha is not None else ""
            print(f"| k={k} {type(model).__name__}{alpha} | Ondrejov -> LAMOST "
                  f"{ok.sum()}/{n_pairs} (emission/double-peak {ok[em].sum()}/{em.sum()}) | "
                  f"LAMOST -> Ondrejov {back.sum()}/{n_pairs} "
                  f"(emission/double-peak {back[em].sum()}/{em.sum()}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
