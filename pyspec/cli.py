"""``pyspec`` command-line entry point: parsing and dispatch only.

Each sub-command lives in ``pyspec/commands/<name>.py`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Every failure ends with one line, ``pyspec CMD: error: Type: message``,
and exit code 1 (2 for usage errors, 130 for Ctrl-C), never a traceback;
``pyspec -v CMD ...`` (or ``pyspec CMD -v ...``) shows the traceback instead.
The options shared by the sub-commands are defined once, in
:mod:`pyspec.commands`.
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
    "verify": "pyspec.commands.verify",
    "spread": "pyspec.commands.spread",
    "active": "pyspec.commands.active",
    "info": "pyspec.commands.info",
    "demo": "pyspec.commands.demo",
}

# Exit codes: 1 = bad input or failed job, 2 = usage error (argparse).
EXIT_USER_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    from pyspec import __version__
    from pyspec.commands import add_verbose

    parser = argparse.ArgumentParser(prog="pyspec", description="Fast similarity search for spectra.")
    parser.add_argument("--version", action="version", version=f"pyspec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details, and show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        add_verbose(p)  # -v after the sub-command too
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"pyspec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  every failure: one line, exit code 1
        if args.verbose:
            raise
        print(error_line(args.command, exc), file=sys.stderr)
        return EXIT_USER_ERROR


def error_line(command: str, exc: BaseException) -> str:
    """``pyspec CMD: error: Type: message`` on one line (the type says what failed)."""
    from pyspec.errors import PyspecError

    message = " ".join(str(exc).split()) or "(no message)"
    hint = ""
    if not isinstance(exc, PyspecError | OSError | ValueError | TypeError | KeyError):
        hint = " (unexpected; run `pyspec -v ...` for the traceback)"
    return f"pyspec {command}: error: {type(exc).__name__}: {message}{hint}"


if __name__ == "__main__":
    sys.exit(main())
