"""Run pyspec and its peers (faiss, nanopq, hnswlib, astropy/numpy) side by side.

Same data, same process, same machine: the printed ratios (peer time /
pyspec time, >1 means pyspec is faster) are what bench/RESULTS.md quotes.

    python bench/peers.py                 # every section at its default size
    python bench/peers.py hamming --quick # one section, small sizes
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_sections  # noqa: E402


def sections() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(peer_sections.__path__):
        module = importlib.import_module(f"peer_sections.{info.name}")
        found[module.NAME] = module
    return found


def print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(dict.fromkeys(k for row in rows for k in row))
    def fmt(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    print(f"\n## {title}\n")
    print("| " + " | ".join(c.ljust(widths[c]) for c in cols) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in cols) + "|")
    for r in rows:
        print("| " + " | ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in cols) + " |")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    available = sections()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", nargs="*", help=f"sections to run (default: all of {sorted(available)})")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    for module in available.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    unknown = set(args.section) - set(available)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {sorted(available)}")
    import pyspec

    pyspec.show_config()
    for name in args.section or sorted(available):
        print_table(name, available[name].run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
