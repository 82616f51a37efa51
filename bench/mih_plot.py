"""Recall@10 vs queries per second from the table that ``peers.py mih`` prints.

    python bench/peers.py mih ... > mih.log
    python bench/mih_plot.py mih.log [more.log ...]   # -> bench/figures/mih_recall_qps.png

Exact methods (pyspec MIH, auto, scan; faiss IndexBinaryFlat) have recall 1;
faiss IndexBinaryMultiHash's recall@10 is the one the section measured.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

METHODS = {"mih_ms": "pyspec MIH", "auto_ms": "pyspec auto", "scan_ms": "pyspec scan",
           "faiss_flat_ms": "faiss BinaryFlat", "faiss_multihash_ms": "faiss BinaryMultiHash"}


def rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    start = lines.index("## mih")
    table = [line for line in lines[start + 1:] if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in table[2:]]


def main(paths: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = dict(zip(METHODS, ("C0", "C1", "C2", "C3", "C4"), strict=True))
    markers = iter("osD^v<>ph*")
    for path in map(Path, paths):
        for row in rows(path):
            found = re.match(r"(\d+) codes, (single query|batch (\d+))", row["case"])
            if not found:
                continue
            n_queries = int(found.group(3) or 1)
            marker = next(markers)
            ax.scatter([], [], marker=marker, color="grey",
                       label=f"{int(found.group(1)) / 1e6:g}M codes, {found.group(2)}")
            for column in METHODS:
                if not row.get(column):
                    continue
                qps = n_queries / (float(row[column]) / 1e3)
                recall = float(row["multihash_recall@10"]) if "multihash" in column else 1.0
                ax.scatter(qps, recall, marker=marker, s=45, color=colours[column])
    for column, name in METHODS.items():
        ax.scatter([], [], marker="s", color=colours[column], label=name)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("queries per second (1 thread)")
    ax.set_ylabel("recall@10 of the exact Hamming ranking")
    ax.set_title("Exact Hamming k=10 on PIL codes of simulated spectra")
    ax.set_ylim(0.7, 1.05)
    out = Path(__file__).resolve().parent / "figures" / "mih_recall_qps.png"
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
