"""``pyspec`` command-line entry point: parsing and dispatch only.

Each sub-command lives in ``pyspec/commands/<name>.py`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
User errors (missing files, bad formats, bad values) end with a one-line
message and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> module; the order is the order shown in --help.
COMMANDS = {
    "ingest": "pyspec.commands.ingest",
    "simulate": "pyspec.commands.simulate",
    "train": "pyspec.commands.train",
    "build": "pyspec.commands.build",
    "query": "pyspec.commands.query",
    "queries": "pyspec.commands.queries",
    "search": "pyspec.commands.search",
    "measure": "pyspec.commands.measure",
    "evaluate": "pyspec.commands.evaluate",
    "spread": "pyspec.commands.spread",
    "active": "pyspec.commands.active",
    "info": "pyspec.commands.info",
    "demo": "pyspec.commands.demo",
}

# Exit codes: 1 = bad input or failed job, 2 = usage error (argparse).
EXIT_USER_ERROR = 1


def _available() -> dict[str, object]:
    modules = {}
    for name, module in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency, not an absent command
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    from pyspec import __version__

    parser = argparse.ArgumentParser(prog="pyspec", description="Fast similarity search for spectra.")
    parser.add_argument("--version", action="version", version=f"pyspec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from pyspec.errors import PyspecError

    try:
        return int(args._run(args) or 0)
    except (PyspecError, OSError, ValueError, TypeError, KeyError) as exc:
        if args.verbose:
            raise
        print(f"pyspec {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"pyspec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
