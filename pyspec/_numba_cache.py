"""Where numba may cache compiled kernels (``cache=True``), decided before numba loads.

numba caches next to the source (``__pycache__``) or in the user's cache
directory; when neither can be written (a read-only site-packages and a
read-only or missing ``$HOME``, e.g. a service account) it refuses to define
a ``cache=True`` function at all, and importing :mod:`pyspec.measure.lines` would
fail. :data:`CACHE` says whether caching is possible; when only the default
places are read-only, ``NUMBA_CACHE_DIR`` is pointed at a private directory
under the system temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _choose() -> bool:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return _writable(Path(os.environ["NUMBA_CACHE_DIR"]))
    here = Path(__file__).resolve().parent
    if all(_writable(here / sub / "__pycache__") for sub in ("measure/lines", "simulate")):
        return True
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "numba"
    if _writable(user):
        return True
    fallback = Path(tempfile.gettempdir()) / f"pyspec-numba-cache-{os.getuid()}"
    try:
        fallback.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return False
    if fallback.is_symlink() or fallback.stat().st_uid != os.getuid() or not _writable(fallback):
        return False  # not ours: compile without a disk cache instead
    os.environ["NUMBA_CACHE_DIR"] = str(fallback)
    numba = sys.modules.get("numba")
    if numba is not None:  # numba read its configuration already
        numba.config.CACHE_DIR = str(fallback)
    return True


#: Pass as ``cache=`` to ``numba.njit``.
CACHE = _choose()
