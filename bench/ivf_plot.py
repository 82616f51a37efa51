"""Recall@10 against queries per second from the tables ``peers.py ivf`` prints.

    python bench/peers.py ivf --ivf-n 10000000 > ivf10M.log
    python bench/peers.py ivf --ivf-n 1000000 --ivf-hnsw-n 1000000 --ivf-plot '' > ivf1M.log
    python bench/ivf_plot.py ivf10M.log ivf1M.log   # -> bench/figures/ivf_recall_qps.png

One row of panels per log (single queries, batch), one curve per method
(its ``nprobe`` or ``ef`` sweep); the flat scan is the point at recall 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FIGURE = Path(__file__).resolve().parent / "figures" / "ivf_recall_qps.png"


def read_table(path: Path) -> tuple[str, list[dict]]:
    """(label, rows) of the ``## ivf`` table of one log; numbers as floats."""
    lines = path.read_text().splitlines()
    table = [line for line in lines[lines.index("## ivf") + 1:] if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = []
    for line in table[2:]:
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for key in ("recall@10", "single_qps", "batch_qps"):
            try:
                row[key] = float(row[key])
            except ValueError:
                pass
        rows.append(row)
    build = next(r["method"] for r in rows if "build" in r["method"])
    n = int(re.search(r"(\d+) codes", build).group(1))
    return f"{n / 1e6:g}M codes", rows


def plot(runs: list[tuple[str, list[dict]]], threads: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 4.2 * len(runs)), squeeze=False)
    names = list(dict.fromkeys(r["method"] for _, rows in runs for r in rows
                               if "build" not in r["method"]))
    style = {m: (f"C{i}", "os^Dv<>"[i % 7]) for i, m in enumerate(names)}
    for (label, rows), pair in zip(runs, axes, strict=True):
        for ax, column, case in ((pair[0], "single_qps", "single queries"),
                                 (pair[1], "batch_qps", "batch of 1,000 queries")):
            for method in dict.fromkeys(r["method"] for r in rows if "build" not in r["method"]):
                # in sweep order (nprobe or ef ascending): on a loaded machine QPS
                # is noisy, recall is not
                pts = [(r[column], r["recall@10"]) for r in rows if r["method"] == method]
                colour, marker = style[method]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colour,
                        label=method, linestyle="-" if len(pts) > 1 else "none")
            ax.axhline(0.95, color="grey", linewidth=0.6, linestyle=":")
            ax.set_xscale("log")
            ax.set_xlabel(f"queries per second ({threads} thread{'s' if threads > 1 else ''})")
            ax.set_title(f"{label}, {case}")
        pair[0].set_ylabel("recall@10 of the exact Hamming ranking")
        pair[1].legend(fontsize=7, loc="lower left")
    fig.suptitle("IVF over 256-bit PIL codes of simulated spectra, k = 10")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"  wrote {path}", flush=True)


if __name__ == "__main__":
    plot([read_table(Path(p)) for p in sys.argv[1:]], 1, FIGURE)
