"""CLI sub-commands, one module each (see pyspec.cli), and the options they share.

Every sub-command spells a shared concept the same way (the README's table
"Common options"): ``-o/--out``, ``--seed``, ``--n-bits``, ``--hidden``,
``-q/--quiet``, ``--num-threads``, ``--format``, ``--overwrite`` and
``-v/--verbose``.  Former spellings (``--output``, ``--random-state``,
``--bits``, ``--pil-hidden``, ``--workers``) are hidden aliases that still
work and print a one-line deprecation note.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


class _DeprecatedAlias(argparse.Action):
    """Store like the new option, after a one-line note on stderr naming it."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "",
                 **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"pyspec: note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def add_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str,
              **kwargs: Any) -> None:
    """A hidden, deprecated spelling ``old`` of the option ``new`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose``; on a sub-command it leaves the main parser's value unless given."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress details, and show the traceback of an error")


def add_num_threads(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """The common ``--num-threads`` option (default: all cores / OMP_NUM_THREADS)."""
    parser.add_argument("--num-threads", type=int, default=None, metavar="N",
                        help=help or "threads for compiled kernels (default: all cores)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress bars and no summary lines."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no summary lines")


def add_out(parser: argparse.ArgumentParser, help: str, *, required: bool = False,
            default: str | None = None, metavar: str = "PATH", old: str | None = None) -> None:
    """``-o/--out``; ``old`` is a former spelling kept as a deprecated alias."""
    parser.add_argument("-o", "--out", required=required and old is None, default=default,
                        metavar=metavar, help=help)
    if old:
        add_alias(parser, old, "--out", "out")


def add_overwrite(parser: argparse.ArgumentParser, what: str = "output") -> None:
    """``--overwrite``: replace an existing output (without it, such a run is refused)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace an existing {what} (refused without this flag)")


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """``--seed`` (``--random-state`` is a deprecated alias)."""
    parser.add_argument("--seed", type=int, default=default, metavar="N",
                        help=f"random seed (default {default})")
    add_alias(parser, "--random-state", "--seed", "seed", type=int)


def add_n_bits(parser: argparse.ArgumentParser, default: Any = 256, type: Any = int,
               help: str | None = None) -> None:
    """``--n-bits`` (``--bits`` is a deprecated alias)."""
    parser.add_argument("--n-bits", type=type, default=default, metavar="BITS",
                        help=help or f"code length (default {default})")
    add_alias(parser, "--bits", "--n-bits", "n_bits", type=type)


def hidden_widths(text: str) -> tuple[int, ...]:
    """``--hidden 1024,512`` -> (1024, 512)."""
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1024,512, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths like 1024,512, got {text!r}")
    return widths


def add_hidden(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--hidden W1,W2`` PIL widths (``--pil-hidden`` is a deprecated alias)."""
    parser.add_argument("--hidden", type=hidden_widths, default=None, metavar="W1,W2",
                        help=help or "PIL hidden layer widths before the code layer, "
                                     "e.g. 1024,512 (default: scaled with the training set)")
    add_alias(parser, "--pil-hidden", "--hidden", "hidden", type=hidden_widths)


def add_format(parser: argparse.ArgumentParser) -> None:
    """``--format``: the catalogue format (default: from the --out suffix)."""
    parser.add_argument("--format", choices=["ecsv", "fits", "votable", "csv"], default=None,
                        help="catalogue format (default: from the --out suffix; .ecsv is "
                             "lossless, .fits, .vot/.xml, .csv)")
