"""Opening a source (path, file object, bytes or HDUList) as a :class:`FitsView`.

The view is what every format loader sees. ``mode="raw"`` parses the file
with :mod:`pyspec.io._rawfits`; ``mode="astropy"`` wraps an
:class:`astropy.io.fits.HDUList`. The dispatcher in :mod:`pyspec.io` tries
the raw view first and falls back to astropy for anything the raw parser
does not support.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
import zlib
from typing import Any

try:
    # zlib-ng inflates the same bytes about 1.7x faster than the system zlib (a LAMOST
    # gzip file: 0.17 ms instead of 0.28 ms, a tenth of one query's latency); same API
    from zlib_ng import zlib_ng as _inflate
except ImportError:  # a source tree without the dependency: the standard library
    _inflate = zlib  # type: ignore[assignment]

import numpy as np

from pyspec.errors import FitsFormatError
from pyspec.io._rawfits import RawFits

_GZIP_MAGIC = b"\x1f\x8b"
#: Largest spectrum file read, compressed or inflated (a LAMOST or SDSS
#: spectrum is well under 50 MB; multi-spectrum DESI files may need more: set
#: the environment variable PYSPEC_MAX_INPUT_MB). Reads and gzip inflation
#: stop at this size, so a crafted file cannot exhaust memory.
MAX_INPUT_BYTES = int(float(os.environ.get("PYSPEC_MAX_INPUT_MB", "64")) * (1 << 20))
_INFLATE_BLOCK = 1 << 20


def _too_large(name: str, what: str) -> FitsFormatError:
    return FitsFormatError(f"{name}: {what} is larger than {MAX_INPUT_BYTES >> 20} MB, more than "
                           "a spectrum file holds (set PYSPEC_MAX_INPUT_MB to allow more)")


def _read_stream(source: Any, name: str) -> bytes:
    """All bytes of a binary file object, in blocks, stopping past MAX_INPUT_BYTES."""
    blocks = []
    total = 0
    while True:
        block = source.read(_INFLATE_BLOCK)
        if not isinstance(block, bytes):
            raise TypeError(f"{name}: file object must be opened in binary mode")
        if not block:
            return b"".join(blocks)
        total += len(block)
        if total > MAX_INPUT_BYTES:
            raise _too_large(name, "the stream")
        blocks.append(block)


def read_file(path: str | os.PathLike) -> bytes:
    """The raw (not inflated) bytes of a spectrum file, bounded; regular files only."""
    return _read_regular_file(path, os.fspath(path))


def _read_regular_file(path: Any, name: str) -> bytes:
    """Content of a regular file of at most MAX_INPUT_BYTES.

    Opened non-blocking and checked with fstat before reading, so a FIFO, a
    device (e.g. a symlink to /dev/zero) or a socket is refused at once
    instead of blocking or streaming forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise IsADirectoryError(f"{name}: is a directory, not a FITS file") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{name}: is a directory, not a FITS file")
        if not stat.S_ISREG(st.st_mode):
            raise FitsFormatError(f"{name}: not a regular file (a FIFO, device or socket)")
        if st.st_size > MAX_INPUT_BYTES:
            raise _too_large(name, "the file")
        raw = _read_fd(fd, st.st_size + 1)  # one byte more: a file that grew is caught below
    finally:
        os.close(fd)
    if len(raw) > MAX_INPUT_BYTES:
        raise _too_large(name, "the file")
    return raw


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fd`` (until end of file): os.read directly, without the
    buffered file object (~10 us less per spectrum); a short read is continued."""
    chunks = []
    while limit > 0:
        block = os.read(fd, limit)
        if not block:
            break
        chunks.append(block)
        limit -= len(block)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def source_name(source: Any) -> str:
    """A printable name for a source (its path when it has one)."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    filename = getattr(source, "filename", None)
    if callable(filename):
        fn = filename()
        if fn:
            return str(fn)
    return f"<{type(source).__name__}>"


def read_bytes(source: Any) -> tuple[bytes, str]:
    """Whole (decompressed) content of a path or binary file object, and its name."""
    name = source_name(source)
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        name = "<bytes>"
    elif isinstance(source, str | os.PathLike):
        raw = _read_regular_file(source, name)
    elif hasattr(source, "read"):
        raw = _read_stream(source, name)
    else:
        raise TypeError(f"cannot read a spectrum from {type(source).__name__}; pass a path, "
                        "a binary file object, bytes or an astropy HDUList")
    depth = 0
    while raw[:2] == _GZIP_MAGIC and depth < 3:
        # nested gzip occurs in the wild (an already-gzipped file gzipped again)
        depth += 1
        raw = _gunzip(raw, name)
    return raw, name


def _gunzip(raw: bytes, name: str) -> bytearray:
    """Inflate all gzip members of ``raw`` (zlib with gzip framing: CRC and size checked).

    Same checks as :func:`gzip.decompress`, about 1.5x faster on small files
    because the member loop stays in C.
    """
    out = bytearray()
    data = raw
    while data:
        d = _inflate.decompressobj(16 + _inflate.MAX_WBITS)
        try:
            # inflate in bounded steps: a gzip bomb stops at MAX_INPUT_BYTES
            block = d.decompress(data, _INFLATE_BLOCK)
            while True:
                out += block
                if len(out) > MAX_INPUT_BYTES:
                    raise _too_large(name, "the inflated gzip content")
                if d.eof or not d.unconsumed_tail:
                    break
                block = d.decompress(d.unconsumed_tail, _INFLATE_BLOCK)
            out += d.flush()
        except (zlib.error, _inflate.error) as exc:
            raise FitsFormatError(f"{name}: corrupt gzip file ({exc})") from None
        if len(out) > MAX_INPUT_BYTES:
            raise _too_large(name, "the inflated gzip content")
        if not d.eof:
            raise FitsFormatError(f"{name}: truncated gzip file (compressed stream ends "
                                  "before its end-of-stream marker)")
        data = d.unused_data.lstrip(b"\0")  # members may be followed by zero padding
        if data and data[:2] != _GZIP_MAGIC:
            raise FitsFormatError(f"{name}: corrupt gzip file (trailing garbage after the "
                                  "compressed stream)")
    return out  # a bytearray: no second copy of up to MAX_INPUT_BYTES


class AstropyHDU:
    """Adapter giving an astropy HDU the interface of :class:`pyspec.io._rawfits.RawHDU`."""

    __slots__ = ("_hdu", "header", "index")

    def __init__(self, hdu: Any, index: int) -> None:
        self._hdu = hdu
        self.header = _AstropyHeader(hdu.header)
        self.index = index

    @property
    def kind(self) -> str:
        from astropy.io import fits

        hdu = self._hdu
        if isinstance(hdu, fits.BinTableHDU):
            return "bintable"
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU):
            return "image" if hdu.header.get("NAXIS", 0) else "empty"
        return "other"

    @property
    def name(self) -> str:
        name = self._hdu.header.get("EXTNAME", "")
        if not isinstance(name, str) or not name:
            return "PRIMARY" if self.index == 0 else ""
        return name.upper()

    def image(self) -> np.ndarray:
        data = self._hdu.data
        if data is None:
            return np.empty((0,))
        return np.asarray(data)

    @property
    def colnames(self) -> list[str]:
        if self.kind != "bintable":
            return []
        return list(self._hdu.columns.names)

    def column(self, name: str) -> np.ndarray:
        for n in self._hdu.columns.names:
            if n.lower() == name.lower():
                return np.asarray(self._hdu.data[n])
        raise KeyError(name)


class _AstropyHeader:
    """astropy Header seen through the RawHeader interface (get, [], in, comment)."""

    __slots__ = ("_h",)

    def __init__(self, header: Any) -> None:
        self._h = header

    def __contains__(self, key: str) -> bool:
        return key in self._h

    def __getitem__(self, key: str) -> object:
        return self._h[key]

    def get(self, key: str, default: object = None) -> object:
        from astropy.io.fits.verify import VerifyError

        try:
            return self._h.get(key, default)
        except VerifyError as exc:
            # an unparsable card: report it through the per-file warning capture
            warnings.warn(f"card {key} is unparsable and was ignored ({exc})", stacklevel=2)
            return default

    def comment(self, key: str) -> str:
        try:
            return str(self._h.comments[key])
        except KeyError:
            return ""

    def keys(self) -> list[str]:
        return list(self._h.keys())


class FitsView:
    """The HDUs of one FITS file plus its name, for the format loaders.

    ``view[i]`` is the i-th HDU, ``view.has(i)`` whether it exists,
    ``view.find(extname)`` the first HDU with that EXTNAME (or None).
    """

    def __init__(self, hdus: Any, name: str, mode: str) -> None:
        self._hdus = hdus
        self.name = name
        self.mode = mode

    def __getitem__(self, i: int) -> Any:
        return self._hdus[i]

    def __len__(self) -> int:
        return len(self._hdus)

    def has(self, i: int) -> bool:
        return self._hdus.has(i)

    def find(self, extname: str) -> Any:
        extname = extname.upper()
        i = 0
        while self.has(i):
            if self[i].name == extname:
                return self[i]
            i += 1
        return None


class _AstropyHDUs:
    def __init__(self, hdul: Any) -> None:
        self._hdul = hdul
        self._cache: dict[int, AstropyHDU] = {}

    def __getitem__(self, i: int) -> AstropyHDU:
        if i not in self._cache:
            self._cache[i] = AstropyHDU(self._hdul[i], i)
        return self._cache[i]

    def __len__(self) -> int:
        return len(self._hdul)

    def has(self, i: int) -> bool:
        try:
            self._hdul[i]
        except IndexError:
            return False
        return True


def raw_view(data: bytes, name: str) -> FitsView:
    """A view on a FITS file in memory through the fast parser."""
    return FitsView(RawFits(data), name, "raw")


def astropy_view(hdul: Any, name: str) -> FitsView:
    """A view on an open astropy HDUList."""
    return FitsView(_AstropyHDUs(hdul), name, "astropy")


def open_astropy(data: bytes) -> Any:
    """Open in-memory FITS bytes with astropy (caller closes, catches warnings)."""
    from astropy.io import fits

    return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True)


def as_view(source: Any) -> FitsView:
    """A FitsView from a view, an open HDUList, a path, bytes or a binary file object.

    Paths, bytes and file objects are read whole (nothing is left open) and
    parsed by the fast parser; :func:`pyspec.io.read_batch` is the entry point
    that also falls back to astropy.
    """
    if isinstance(source, FitsView):
        return source
    if hasattr(source, "fileinfo") and hasattr(source, "info"):
        return astropy_view(source, source_name(source))
    from pyspec.io._rawfits import RawCorrupt

    data, name = read_bytes(source)
    try:
        return raw_view(data, name)
    except RawCorrupt as exc:
        raise FitsFormatError(f"{name}: {exc}") from None


def accepts_source(func: Any) -> Any:
    """Let an ``identify``/``load`` function take any source :func:`as_view` accepts."""
    import functools

    @functools.wraps(func)
    def wrapper(source: Any) -> Any:
        return func(as_view(source))

    return wrapper
