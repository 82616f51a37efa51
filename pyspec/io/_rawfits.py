"""Fast FITS access: header cards and data blocks read directly with NumPy.

This module is the fast path of :mod:`pyspec.io`. It parses the 2880-byte
header blocks of a FITS file held in memory (``gzip`` files are inflated with
:mod:`zlib` with gzip framing first) and exposes each HDU's data as a zero-copy
NumPy view. It handles only the plain cases that survey spectra use:

* images with ``BITPIX`` -32, -64, 8, 16, 32 or 64 and no ``BSCALE``/``BZERO``
  scaling;
* binary tables whose columns are fixed-width ``L``, ``B``, ``I``, ``J``,
  ``K``, ``E``, ``D`` or ``A`` fields (optionally vectors; no variable-length
  arrays), ``TSCAL``/``TZERO`` applied per column as astropy does.

Anything else raises :class:`RawUnsupported`, and the caller falls back to
astropy. Structural damage (a truncated file, a missing ``END`` card, data
running past the end of the file) raises :class:`RawCorrupt` with a readable
reason. Both paths present the same :class:`pyspec.io._view` interface, so
every format loader is written once and runs on either path.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

BLOCK = 2880
CARD = 80

_BITPIX_DTYPE = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_TFORM_RE = re.compile(r"(\d*)([A-Z])")
_TFORM_DTYPE = {"L": "i1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


_MISSING = object()


class RawUnsupported(Exception):
    """The file uses a FITS feature the fast path does not implement."""


class RawCorrupt(Exception):
    """The file is structurally broken (truncated, no END card, ...)."""


def _parse_value(text: str) -> tuple[object, str]:
    """Value and comment of the part of a card after ``= ``."""
    s = text.lstrip()
    if s.startswith("'"):
        # string: '' is an escaped quote; the closing quote ends it
        out = []
        i = 1
        while True:
            j = s.find("'", i)
            if j < 0:
                raise RawUnsupported("unterminated string value")
            out.append(s[i:j])
            if s[j + 1:j + 2] == "'":
                out.append("'")
                i = j + 2
                continue
            rest = s[j + 1:]
            break
        value = "".join(out).rstrip()
        k = rest.find("/")
        comment = rest[k + 1:].strip() if k >= 0 else ""
        return value, comment
    k = s.find("/")
    if k >= 0:
        raw, comment = s[:k].strip(), s[k + 1:].strip()
    else:
        raw, comment = s.strip(), ""
    if raw == "":
        return None, comment
    if raw == "T":
        return True, comment
    if raw == "F":
        return False, comment
    if raw.lstrip("+-").isdigit():
        return int(raw), comment
    try:
        return float(raw.replace("D", "E").replace("d", "e")), comment
    except ValueError:
        raise RawUnsupported(f"value {raw!r} is not a plain number, string or logical") from None


class RawHeader:
    """Keyword -> value mapping of one header (first occurrence wins, like astropy).

    Offers the small part of :class:`astropy.io.fits.Header` that the format
    loaders use: ``in``, ``[]``, ``get`` and ``comment(key)``. The header text
    is kept as is; a keyword is located with one ``str.find`` at card
    boundaries and its value parsed on first access, so a loader pays only for
    the few dozen cards it reads.
    """

    __slots__ = ("_text", "_parsed", "_index")

    def __init__(self, text: bytes = b"") -> None:
        self._text = text
        self._parsed: dict[str, tuple[object, str] | None] = {}
        self._index: dict[bytes, int] | None = None

    def _item(self, key: str) -> tuple[object, str] | None:
        item = self._parsed.get(key, _MISSING)
        if item is not _MISSING:
            return item  # type: ignore[return-value]
        index = self._index
        if index is None:
            # "KEYWORD = " (first 10 bytes of each card) -> card offset, built in C
            # (astype truncates every 80-byte card); reversed so that the first
            # occurrence of a keyword wins, as in astropy
            heads = np.frombuffer(self._text, dtype="S80").astype("S10").tolist()
            n = len(heads)
            index = dict(zip(heads[::-1], range((n - 1) * CARD, -1, -CARD), strict=True))
            self._index = index
        pos = index.get((key + "        "[len(key):] + "= ").encode()) if len(key) <= 8 \
            else None
        item = None if pos is None else _parse_value(self._text[pos + 10:pos + CARD].decode())
        self._parsed[key] = item
        return item

    def __contains__(self, key: str) -> bool:
        return self._item(key.upper()) is not None

    def __getitem__(self, key: str) -> object:
        item = self._item(key.upper())
        if item is None:
            raise KeyError(key)
        return item[0]

    def get(self, key: str, default: object = None) -> object:
        item = self._item(key.upper())
        return default if item is None else item[0]

    def comment(self, key: str) -> str:
        item = self._item(key.upper())
        return "" if item is None else item[1]

    def keys(self) -> list[str]:
        text = self._text.decode("ascii")
        out: list[str] = []
        for i in range(0, len(text), CARD):
            key = text[i:i + 8].rstrip()
            if text[i + 8:i + 10] == "= " and key not in ("COMMENT", "HISTORY", "") \
                    and key not in out:
                out.append(key)
        return out


_END_CARD = b"END" + b" " * 77



def parse_header(buf: bytes | memoryview, start: int) -> tuple[RawHeader, int]:
    """Parse one header starting at byte ``start``; return it and the data offset."""
    n = len(buf)
    pos = start
    end = -1
    while end < 0:
        if pos + BLOCK > n:
            if pos == start:
                raise RawCorrupt(f"file ends inside a header at byte {pos} (truncated file?)")
            raise RawCorrupt(f"header starting at byte {start} has no END card before the end "
                             "of the file (truncated file?)")
        block = bytes(buf[pos:pos + BLOCK])
        k = block.find(_END_CARD)
        while k >= 0 and k % CARD:
            k = block.find(_END_CARD, k + 1)
        pos += BLOCK
        if k >= 0:
            end = pos - BLOCK + k
    text = bytes(buf[start:end])
    if not text.isascii():
        raise RawCorrupt(f"header at byte {start} contains non-ASCII bytes "
                         "(not a FITS file, or corrupted)")
    k = text.find(b"CONTINUE")
    while k >= 0 and k % CARD:
        k = text.find(b"CONTINUE", k + 1)
    if k >= 0:
        raise RawUnsupported("long-string CONTINUE cards")
    header = RawHeader(text)
    return header, pos


def _data_size(h: RawHeader) -> int:
    naxis = h.get("NAXIS", 0)
    if not isinstance(naxis, int) or naxis < 0 or naxis > 999:
        raise RawCorrupt(f"NAXIS = {naxis!r} is not a valid axis count")
    if naxis == 0:
        return 0
    bitpix = h.get("BITPIX")
    if bitpix not in _BITPIX_DTYPE:
        raise RawCorrupt(f"BITPIX = {bitpix!r} is not a FITS pixel type")
    size = 1
    for k in range(1, naxis + 1):
        v = h.get(f"NAXIS{k}")
        if not isinstance(v, int) or v < 0:
            raise RawCorrupt(f"NAXIS{k} = {v!r} is not a valid axis length")
        size *= v
    pcount = h.get("PCOUNT", 0) or 0
    gcount = h.get("GCOUNT", 1) or 1
    return abs(bitpix) // 8 * gcount * (pcount + size)


class RawHDU:
    """One HDU of a :class:`RawFits`: parsed header plus lazy data views."""

    __slots__ = ("header", "_buf", "_offset", "_size", "index", "_table", "_cols")

    def __init__(self, header: RawHeader, buf: memoryview, offset: int, size: int,
                 index: int) -> None:
        self.header = header
        self._buf = buf
        self._offset = offset
        self._size = size
        self.index = index
        self._table: np.ndarray | None = None
        self._cols: list[tuple[str, Any, int]] | None = None

    @property
    def kind(self) -> str:
        """``"image"`` (NAXIS > 0), ``"empty"``, ``"bintable"`` or ``"other"``."""
        xt = self.header.get("XTENSION", None) if self.index > 0 else None
        if xt is None or xt == "IMAGE":
            return "image" if self.header.get("NAXIS", 0) else "empty"
        if xt == "BINTABLE":
            return "bintable"
        return "other"

    @property
    def name(self) -> str:
        name = self.header.get("EXTNAME", "")
        if not isinstance(name, str) or not name:
            return "PRIMARY" if self.index == 0 else ""
        return name.upper()

    def image(self) -> np.ndarray:
        """The image as a (big-endian) NumPy view, axes in C order (NAXISn..NAXIS1)."""
        h = self.header
        if "BSCALE" in h and h["BSCALE"] != 1 or "BZERO" in h and h["BZERO"] != 0:
            raise RawUnsupported("scaled image (BSCALE/BZERO)")
        if h.get("GROUPS", False):
            raise RawUnsupported("random-groups image")
        naxis = h.get("NAXIS", 0)
        shape = tuple(h[f"NAXIS{k}"] for k in range(naxis, 0, -1))
        dtype = np.dtype(_BITPIX_DTYPE[h["BITPIX"]])
        count = int(np.prod(shape)) if shape else 0
        return np.frombuffer(self._buf, dtype=dtype, count=count,
                             offset=self._offset).reshape(shape)

    def _layout(self) -> list[tuple[str, Any, int]]:
        """(name, numpy format, byte offset) of every table column, computed once."""
        if self._cols is not None:
            return self._cols
        h = self.header
        nfields = h.get("TFIELDS", 0)
        if not isinstance(nfields, int) or nfields < 0:
            raise RawCorrupt(f"TFIELDS = {nfields!r} is not a column count")
        cols = []
        off = 0
        for k in range(1, nfields + 1):
            tform = str(h.get(f"TFORM{k}", "")).strip().upper()
            m = _TFORM_RE.match(tform)
            if m is None:
                raise RawUnsupported(f"table column format {tform!r}")
            repeat = int(m.group(1)) if m.group(1) else 1
            code = m.group(2)
            if code == "A":
                fmt: Any = f"S{repeat}" if repeat else "S1"
                width = repeat
            elif code in _TFORM_DTYPE:
                base = np.dtype(_TFORM_DTYPE[code])
                fmt = (base, (repeat,)) if repeat != 1 else base
                width = base.itemsize * repeat
            else:
                raise RawUnsupported(f"table column format {tform!r}")
            cols.append((str(h.get(f"TTYPE{k}", f"col{k}")), fmt, off))
            off += width
        if off != h.get("NAXIS1"):
            raise RawCorrupt(f"table row width {h.get('NAXIS1')} does not match its "
                             f"columns ({off} bytes)")
        lower = [c[0].lower() for c in cols]
        if len(set(lower)) != len(lower):
            raise RawUnsupported("duplicate column names")
        self._cols = cols
        return cols

    def table(self) -> np.ndarray:
        """The binary table as a structured (big-endian) NumPy view (built once)."""
        if self._table is None:
            cols = self._layout()
            dtype = np.dtype({"names": [c[0] for c in cols], "formats": [c[1] for c in cols],
                              "offsets": [c[2] for c in cols],
                              "itemsize": self.header.get("NAXIS1")})
            self._table = np.frombuffer(self._buf, dtype=dtype,
                                        count=self.header.get("NAXIS2", 0), offset=self._offset)
        return self._table

    @property
    def colnames(self) -> list[str]:
        """Column names of a binary table (empty for other HDUs)."""
        if self.kind != "bintable":
            return []
        return [c[0] for c in self._layout()]

    def _column_view(self, fmt: Any, off: int, nrows: int, rowlen: int) -> np.ndarray:
        """Zero-copy strided view of one column: (nrows,) or (nrows, repeat).

        The same array as the field of a one-field structured view, without
        building a structured dtype per column (a few microseconds each, per file).
        """
        if isinstance(fmt, tuple):
            base, (repeat,) = fmt
            shape: tuple[int, ...] = (nrows, repeat)
            strides: tuple[int, ...] = (rowlen, base.itemsize)
        else:
            base = np.dtype(fmt)
            shape, strides = (nrows,), (rowlen,)
        return np.ndarray(shape, dtype=base, buffer=self._buf, offset=self._offset + off,
                          strides=strides)

    def column(self, name: str) -> np.ndarray:
        """One column (case-insensitive name), shape (n_rows,) or (n_rows, repeat).

        ``TSCAL``/``TZERO`` are applied as astropy does: the unsigned-integer
        convention (TZERO = 2**(bits-1)) gives an unsigned array, any other
        scaling a float64 array.
        """
        nrows = self.header.get("NAXIS2", 0)
        rowlen = self.header.get("NAXIS1")
        for k, (n, fmt, off) in enumerate(self._layout(), start=1):
            if n.lower() == name.lower():
                col = self._column_view(fmt, off, nrows, rowlen)
                h = self.header
                if f"TSCAL{k}" not in h and f"TZERO{k}" not in h:
                    return col
                tscal = h.get(f"TSCAL{k}", 1)
                tzero = h.get(f"TZERO{k}", 0)
                if col.dtype.kind == "S":
                    return col
                if col.dtype.kind == "i" and tscal == 1 and \
                        tzero == 2 ** (8 * col.dtype.itemsize - 1):
                    udt = np.dtype(f">u{col.dtype.itemsize}")
                    return col.view(udt) ^ udt.type(tzero)
                if col.dtype.kind == "u" and tscal == 1 and tzero == -128:
                    return col.view("i1") ^ np.int8(-128)
                return col.astype(np.float64) * tscal + tzero
        raise KeyError(name)


class RawFits:
    """A FITS file in memory, HDUs parsed lazily in order.

    Parameters
    ----------
    data : bytes
        The whole (already decompressed) file.
    """

    def __init__(self, data: bytes) -> None:
        if len(data) == 0:
            raise RawCorrupt("the file is empty (0 bytes)")
        if not data.startswith(b"SIMPLE  ="):
            raise RawCorrupt("not a FITS file (does not start with a SIMPLE card)")
        self._buf = memoryview(data)
        self._hdus: list[RawHDU] = []
        self._next = 0
        self._done = False

    def _parse_next(self) -> bool:
        if self._done:
            return False
        n = len(self._buf)
        if self._next >= n:
            self._done = True
            return False
        if self._hdus and n - self._next < BLOCK:
            # trailing padding shorter than a block: tolerated like astropy
            self._done = True
            return False
        if self._hdus and bytes(self._buf[self._next:self._next + 8]) != b"XTENSION":
            # trailing bytes that are not an extension: astropy ignores them too
            self._done = True
            return False
        header, data_offset = parse_header(self._buf, self._next)
        size = _data_size(header)
        if data_offset + size > n:
            raise RawCorrupt(f"HDU {len(self._hdus)} needs {size} data bytes but the file "
                             f"ends {n - data_offset} bytes after its header (truncated file?)")
        self._hdus.append(RawHDU(header, self._buf, data_offset, size, len(self._hdus)))
        self._next = data_offset + (size + BLOCK - 1) // BLOCK * BLOCK
        return True

    def __getitem__(self, i: int) -> RawHDU:
        while len(self._hdus) <= i and self._parse_next():
            pass
        return self._hdus[i]

    def __len__(self) -> int:
        while self._parse_next():
            pass
        return len(self._hdus)

    def has(self, i: int) -> bool:
        """Whether HDU ``i`` exists (parses up to it)."""
        while len(self._hdus) <= i and self._parse_next():
            pass
        return len(self._hdus) > i
