"""Active learning against random batches with a simulated oracle (seed 003's finding in kind).

Pool: simulated stars (pyspec.simulate, real LAMOST templates, "lamost" S/N
mix) on the "halpha-140" grid with the seed-002 preparation (linear
continuum, min-max to [-1, 1]); 10 % carry Be-like H-alpha emission of
amplitude 1-3 x the continuum (single or double peaked): label "emission",
else "absorption". The oracle is the simulation's labels file.

For each seed both learners start from the same 50 random labels; each
iteration checks 30 random candidates (estimated precision), queries a batch
of 100 (entropy vs random) and is taught both. Also reported: the true
precision of the whole candidate list (known here, not in a survey), as
mean and standard deviation over the seeds per iteration. Strategies:
"entropy" (the default: entropy weighted by relative density, made diverse
by k-means), "entropy-kmeans" (diverse, no density), "entropy-plain" (the
top of the entropy ranking), "random".

    python bench/active_sim.py --n 20000 --seeds 5 --iterations 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer_sections.semi import prepared_stars  # noqa: E402

FIGURE = Path(__file__).resolve().parent / "figures" / "active_precision.png"


def one_run(x, truth, ids, strategy, seed, args):
    from pyspec.active import ActiveLearner, LabelsFileOracle

    rng = np.random.default_rng(seed)
    start = rng.choice(len(ids), args.initial, replace=False)
    oracle = LabelsFileOracle(dict(zip(ids, truth, strict=True)))
    # "entropy" = the default (density-weighted, diverse), "entropy-kmeans" =
    # diverse without density, "entropy-plain" = the top of the ranking
    name, diversity = strategy, "density-kmeans"
    for suffix, value in (("-kmeans", "kmeans"), ("-plain", "none")):
        if strategy.endswith(suffix):
            name, diversity = strategy[:-len(suffix)], value
    al = ActiveLearner(strategy=name, batch_size=args.batch, target="emission",
                       diversity=diversity, random_state=seed).fit(
        x, {ids[i]: truth[i] for i in start}, ids=ids)
    true_prec = []
    for _ in range(args.iterations):
        cand = al._rows(al.candidates())
        true_prec.append(float(np.mean(truth[cand] == "emission")) if cand.size else np.nan)
        al.step(oracle)
        if al.stopped and args.stop:
            break
    est = [h["precision"] for h in al.history_]
    stop_at = next((i for i in range(len(est)) if i >= 2 and all(
        v > 0.8 for v in est[i - 2:i + 1])), None)
    return {"estimated": est, "true": true_prec, "stopped_at": stop_at,
            "n_asked": oracle.n_asked}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--initial", type=int, default=50)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--stop", action="store_true", help="stop at the rule (default: run on)")
    p.add_argument("--strategies", nargs="+", default=["entropy", "random"],
                   help="learners compared (entropy, entropy-plain, margin, random, ...)")
    p.add_argument("--plot", default=str(FIGURE))
    args = p.parse_args()
    x, truth = prepared_stars(args.n, seed=3, line_amplitude=(1.0, 3.0))
    ids = [f"sim{i}" for i in range(args.n)]
    print(f"pool {args.n}: {int(np.sum(truth == 'emission'))} emission")
    runs = {s: [] for s in args.strategies}
    for seed in range(args.seeds):
        for strategy in runs:
            t0 = time.perf_counter()
            r = one_run(x, truth, ids, strategy, seed, args)
            runs[strategy].append(r)
            print(f"seed {seed} {strategy:8s} {time.perf_counter() - t0:6.1f} s  stop at "
                  f"{r['stopped_at']}  est {np.round(r['estimated'], 2).tolist()}  true "
                  f"{np.round(r['true'], 2).tolist()}", flush=True)
    summary = {}
    for s, rs in runs.items():
        summary[s] = {k: np.nanmean([r[k] for r in rs], axis=0).round(3).tolist()
                      for k in ("estimated", "true")}
        summary[s]["true_std"] = np.nanstd([r["true"] for r in rs], axis=0).round(3).tolist()
        summary[s]["stopped_at"] = [r["stopped_at"] for r in rs]
    print(json.dumps(summary))
    print("| iteration | " + " | ".join(str(i) for i in range(args.iterations)) + " |")
    for s in runs:
        m, sd = summary[s]["true"], summary[s]["true_std"]
        print(f"| {s}, true precision | " + " | ".join(f"{a:.3f} +- {b:.3f}"
                                                     for a, b in zip(m, sd, strict=True)) + " |")
    r = np.array([x["true"] for x in runs["random"]]) if "random" in runs else None
    for s in (s for s in runs if s != "random" and r is not None):
        e = np.array([x["true"] for x in runs[s]])
        print(f"true precision, {s} > random at every iteration (mean over seeds):",
              bool(np.all(np.nanmean(e, 0)[1:] > np.nanmean(r, 0)[1:])),
              "; seed by seed:", int(np.sum(e[:, 1:] > r[:, 1:])), "of", e[:, 1:].size)
    if args.plot:
        from pyspec.plotting import _figure

        fig = _figure(7, 4)
        ax = fig.add_subplot(1, 1, 1)
        for s, colour in zip(runs, ("C0", "C3", "C2", "C1")[:len(runs)], strict=True):
            for r_ in runs[s]:
                ax.plot(r_["estimated"], color=colour, lw=0.5, alpha=0.4, ls=":")
            m, sd = np.array(summary[s]["true"]), np.array(summary[s]["true_std"])
            ax.plot(m, color=colour, lw=2, label=f"{s}: true precision (mean, +-1 sd)")
            ax.fill_between(np.arange(m.size), m - sd, m + sd, color=colour, alpha=0.15)
            ax.plot(summary[s]["estimated"], color=colour, lw=1, ls="--",
                    label=f"{s}: estimated from 30 (mean)")
        ax.axhline(0.8, color="k", lw=0.5)
        ax.set_xlabel("iteration (batch of 100 + 30 checks)")
        ax.set_ylabel("precision of 'emission' candidates")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
