"""File discovery: directories, list files and paths -> FITS file paths.

Used by :func:`pyspec.io.read_spectra` for a single path and by
:func:`pyspec.ingest.ingest` for its sources.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

#: File name endings taken for FITS files when a directory is searched.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
#: File name endings of lists of paths (one a line, ``#`` comments).
LIST_SUFFIXES = (".txt", ".lst", ".list")


def iter_sources(sources: Iterable[str | os.PathLike],
                 on_error: Callable[[str, str], None] | None = None) -> Iterator[str]:
    """Expand directories and list files into file paths (sorted within each directory).

    Parameters
    ----------
    sources : paths of files, directories or ``.txt``/``.lst`` lists
    on_error : callable(path, reason), optional
        Called for each directory that cannot be listed (default: raise the
        OSError).

    Raises
    ------
    FileNotFoundError
        A source that does not exist.
    """
    def walk_error(exc: OSError) -> None:
        if on_error is None:
            raise exc
        on_error(str(exc.filename), f"directory cannot be read ({type(exc).__name__}: "
                                    f"{exc.strerror or exc})")

    for src in sources:
        path = Path(src)
        if path.is_dir():
            for root, dirs, files in os.walk(path, onerror=walk_error):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(FITS_SUFFIXES):
                        yield os.path.join(root, name)
        elif path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
            base = path.parent
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        p = Path(line)
                        yield str(p if p.is_absolute() else base / p)
        elif path.exists():
            yield str(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
