"""The fast read path's shortcuts give the bytes and arrays of the plain forms they replace.

gzip inflation (zlib-ng when installed) must equal :func:`gzip.decompress`,
member by member, and keep its checks; a binary-table column is a strided view
that must equal the field of a one-field structured view (the form used
before, kept here as the reference) for every column type the parser reads.
"""

from __future__ import annotations

import gzip
import importlib.util

import numpy as np
import pytest

import pyspec.io._view as view
from pyspec.data import sample_files
from pyspec.errors import FitsFormatError
from pyspec.io._rawfits import _TFORM_DTYPE, RawFits


def test_gunzip_equals_gzip_decompress_on_real_and_multi_member_files(rng):
    real = sample_files()[3].read_bytes()
    assert real[:2] == b"\x1f\x8b"
    assert view._gunzip(real, "x") == gzip.decompress(real)
    parts = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in (0, 1, 5000, 70000)]
    members = b"".join(gzip.compress(p, compresslevel=lvl)
                       for p, lvl in zip(parts, (1, 6, 9, 0), strict=True))
    padded = members + b"\0" * 17  # zero padding after the last member
    assert view._gunzip(padded, "x") == b"".join(parts)


def test_gunzip_keeps_its_checks():
    raw = gzip.compress(b"SIMPLE  =" * 1000)
    with pytest.raises(FitsFormatError, match="truncated gzip"):
        view._gunzip(raw[:40], "x")
    with pytest.raises(FitsFormatError, match="trailing garbage"):
        view._gunzip(raw + b"garbage", "x")
    broken = bytearray(raw)
    broken[-8] ^= 0xFF  # CRC of the content
    with pytest.raises(FitsFormatError, match="corrupt gzip"):
        view._gunzip(bytes(broken), "x")


@pytest.mark.skipif(importlib.util.find_spec("zlib_ng") is None, reason="zlib-ng not installed")
def test_gunzip_uses_zlib_ng_when_installed():
    assert view._inflate.__name__ == "zlib_ng.zlib_ng"


def _card(key: str, value: object) -> bytes:
    text = f"{key:<8}= {value!s:>20}" if not isinstance(value, str) else \
        f"{key:<8}= '{value:<8}'"
    return text.ljust(80).encode()


def _table_fits(columns: list[tuple[str, str, np.ndarray]], nrows: int) -> bytes:
    """A FITS file with an empty primary HDU and one binary table of ``columns``
    (name, TFORM, values of shape (nrows, ...) in the big-endian column dtype)."""
    def header(cards: list[bytes]) -> bytes:
        text = b"".join(cards) + b"END".ljust(80)
        return text + b" " * (-len(text) % 2880)

    primary = header([_card("SIMPLE", "T"), _card("BITPIX", 8), _card("NAXIS", 0)])
    rowlen = sum(v[0].nbytes for _, _, v in columns)
    cards = [_card("XTENSION", "BINTABLE"), _card("BITPIX", 8), _card("NAXIS", 2),
             _card("NAXIS1", rowlen), _card("NAXIS2", nrows), _card("PCOUNT", 0),
             _card("GCOUNT", 1), _card("TFIELDS", len(columns))]
    for k, (name, tform, _) in enumerate(columns, start=1):
        cards += [_card(f"TTYPE{k}", name), _card(f"TFORM{k}", tform)]
    rows = b"".join(b"".join(v[r].tobytes() for _, _, v in columns) for r in range(nrows))
    return primary + header(cards) + rows + b"\0" * (-len(rows) % 2880)


def _structured_field(hdu, fmt, off, nrows, rowlen) -> np.ndarray:
    """The column as the parser read it before: the field of a one-field structured view."""
    one = np.dtype({"names": ["v"], "formats": [fmt], "offsets": [off], "itemsize": rowlen})
    return np.frombuffer(hdu._buf, dtype=one, count=nrows, offset=hdu._offset)["v"]


@pytest.mark.parametrize("nrows", [1, 3])
@pytest.mark.parametrize("as_bytearray", [False, True])
def test_column_view_equals_the_structured_field(rng, nrows, as_bytearray):
    columns = []
    for code, dt in _TFORM_DTYPE.items():
        for repeat in (1, 4):
            vals = rng.integers(-100, 100, (nrows, repeat)).astype(np.dtype(dt))
            tform = f"{repeat}{code}" if repeat != 1 else code
            columns.append((f"c{code}{repeat}", tform, vals))
    strings = np.array([[f"s{r:03d}x"] for r in range(nrows)], dtype="S6")
    columns.append(("text", "6A", strings))
    data = _table_fits(columns, nrows)
    fits = RawFits(bytearray(data) if as_bytearray else data)
    hdu = fits[1]
    rowlen = hdu.header["NAXIS1"]
    layout = hdu._layout()
    assert [c[0] for c in layout] == [c[0] for c in columns]
    for (name, fmt, off), (_, _, vals) in zip(layout, columns, strict=True):
        got = hdu._column_view(fmt, off, nrows, rowlen)
        ref = _structured_field(hdu, fmt, off, nrows, rowlen)
        assert got.dtype == ref.dtype, name
        assert got.shape == ref.shape, name
        assert got.strides == ref.strides, name
        assert got.flags.writeable == ref.flags.writeable, name
        np.testing.assert_array_equal(got, ref)
        expect = vals.reshape(ref.shape) if vals.dtype.kind != "S" else vals[:, 0]
        np.testing.assert_array_equal(hdu.column(name), expect)
