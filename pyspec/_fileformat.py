"""pyspec's own binary container for indexes and models (never pickle).

Layout (little-endian)::

    offset 0   magic      8 bytes  b"PYSPEC" + 2-byte kind tag  (e.g. b"HM")
           8   version    u32      container format version
          12   n_arrays   u32
          16   meta_len   u64      bytes of UTF-8 JSON metadata
          24   table      n_arrays x 88-byte entries:
                          name[32] ascii, dtype code u8, ndim u8, pad[6],
                          shape[4] u64, offset u64, nbytes u64
          ..   meta       JSON
          ..   header_crc u32      CRC32 of bytes [0, here)
          ..   arrays     each 64-byte aligned (mmap-friendly)
         end   data_crcs  n_arrays x u32, then b"PYSEND\\0\\0"

Every size and offset is checked against the real file size before anything
is allocated, so a truncated, bit-flipped or crafted file raises
:class:`~pyspec.errors.IndexFormatError` instead of crashing or allocating
absurd memory. Writes go to a temporary file in the same directory, are
fsync'ed and renamed over the target (atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import stat
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pyspec._integrity import apply_umask
from pyspec.errors import IndexFormatError

FORMAT_VERSION = 1
_MAGIC_PREFIX = b"PYSPEC"
_TRAILER = b"PYSEND\0\0"
_HEAD = struct.Struct("<8sIIQ")
_ENTRY = struct.Struct("<32sBB6x4QQQ")
_ALIGN = 64
_MAX_ARRAYS = 64
_MAX_META = 16 << 20  # metadata is small JSON; anything larger is corrupt
_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32,
           np.int64, np.float32, np.float64, np.bool_]
_DTYPE_CODE = {np.dtype(t): i for i, t in enumerate(_DTYPES)}
_CHUNK = 16 << 20


def _crc(data: Any, crc: int = 0) -> int:
    view = memoryview(data).cast("B")
    for start in range(0, len(view), _CHUNK):
        crc = zlib.crc32(view[start:start + _CHUNK], crc)
    return crc


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def write_container(path: str | os.PathLike, kind: bytes, arrays: dict[str, np.ndarray],
                    meta: dict[str, Any]) -> None:
    """Atomically write ``arrays`` and JSON-serialisable ``meta`` to ``path``."""
    if len(kind) != 2:
        raise ValueError("kind must be a 2-byte tag")
    if len(arrays) > _MAX_ARRAYS:
        raise ValueError(f"at most {_MAX_ARRAYS} arrays per container")
    prepared = []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dtype not in _DTYPE_CODE:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} cannot be stored")
        if arr.ndim > 4:
            raise ValueError(f"array {name!r}: at most 4 dimensions")
        encoded = name.encode("ascii")
        if len(encoded) > 32:
            raise ValueError(f"array name {name!r} longer than 32 bytes")
        prepared.append((encoded, np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))))
    meta_bytes = json.dumps(meta, sort_keys=True).encode("utf-8")

    header_len = _HEAD.size + _ENTRY.size * len(prepared) + len(meta_bytes) + 4
    offset = header_len + _pad(header_len)
    entries = []
    for encoded, arr in prepared:
        shape = list(arr.shape) + [0] * (4 - arr.ndim)
        entries.append(_ENTRY.pack(encoded, _DTYPE_CODE[arr.dtype.newbyteorder("=")],
                                   arr.ndim, *shape, offset, arr.nbytes))
        offset += arr.nbytes + _pad(arr.nbytes)
    header = _HEAD.pack(_MAGIC_PREFIX + kind, FORMAT_VERSION, len(prepared), len(meta_bytes))
    header += b"".join(entries) + meta_bytes
    header += struct.pack("<I", zlib.crc32(header))

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + b"\0" * _pad(len(header)))
            crcs = []
            for _, arr in prepared:
                f.write(memoryview(arr).cast("B") if arr.nbytes else b"")
                f.write(b"\0" * _pad(arr.nbytes))
                crcs.append(_crc(arr) if arr.nbytes else 0)
            f.write(struct.pack(f"<{len(crcs)}I", *crcs) + _TRAILER)
            f.flush()
            os.fsync(f.fileno())
        apply_umask(tmp)  # mkstemp made it 0600; others may need to read a shared index
        os.replace(tmp, path)
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    with _suppress_oserror():  # make the rename itself durable
        dir_fd = os.open(path.parent or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)  # type: ignore[arg-type]


def read_container(path: str | os.PathLike, kind: bytes, mmap: bool = False,
                   verify: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a container written by :func:`write_container`.

    With ``mmap=True`` arrays are read-only memory maps of the file. With
    ``verify=True`` (default) every array's CRC32 is checked, which reads the
    whole file once; pass ``verify=False`` to open huge memory-mapped indexes
    instantly (the header is always checked).
    """
    path = Path(path)
    name = str(path)
    st = path.stat()  # FileNotFoundError propagates as is
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise IndexFormatError(f"{name}: not a regular file")
    file_size = st.st_size

    def bad(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{name}: {msg}")

    with open(path, "rb") as f:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise bad(f"file is {file_size} bytes, too short for a pyspec header")
        magic, version, n_arrays, meta_len = _HEAD.unpack(head)
        if magic[:6] != _MAGIC_PREFIX:
            raise bad("not a pyspec file (bad magic bytes)")
        if magic[6:] != kind:
            raise bad(f"holds a {magic[6:].decode('ascii', 'replace')!r} object, "
                      f"expected {kind.decode()!r}")
        if version != FORMAT_VERSION:
            raise bad(f"format version {version} is not supported (this pyspec reads {FORMAT_VERSION})")
        if n_arrays > _MAX_ARRAYS or meta_len > _MAX_META:
            raise bad("header sizes are implausible (corrupted header)")
        rest_len = _ENTRY.size * n_arrays + meta_len + 4
        if _HEAD.size + rest_len + len(_TRAILER) + 4 * n_arrays > file_size:
            raise bad("file is truncated (header extends past the end)")
        rest = f.read(rest_len)
        if len(rest) != rest_len:
            raise bad("file is truncated inside the header")
        header = head + rest[:-4]
        (stored_crc,) = struct.unpack("<I", rest[-4:])
        if zlib.crc32(header) != stored_crc:
            raise bad("header checksum mismatch (file corrupted)")
        meta_bytes = rest[_ENTRY.size * n_arrays: _ENTRY.size * n_arrays + meta_len]
        try:
            meta = json.loads(meta_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad(f"metadata is not valid JSON ({exc})") from None

        tail_len = 4 * n_arrays + len(_TRAILER)
        f.seek(file_size - tail_len)
        tail = f.read(tail_len)
        if tail[-len(_TRAILER):] != _TRAILER:
            raise bad("file is truncated (end marker missing)")
        crcs = struct.unpack(f"<{n_arrays}I", tail[:-len(_TRAILER)])
        data_end = file_size - tail_len

        specs = []
        for i in range(n_arrays):
            raw = _ENTRY.unpack_from(rest, i * _ENTRY.size)
            aname = raw[0].rstrip(b"\0").decode("ascii", "replace")
            code, ndim = raw[1], raw[2]
            shape = tuple(int(s) for s in raw[3:3 + ndim])
            offset, nbytes = raw[7], raw[8]
            if code >= len(_DTYPES) or ndim > 4:
                raise bad(f"array {aname!r} has an invalid dtype or rank")
            dtype = np.dtype(_DTYPES[code]).newbyteorder("<")
            count = 1
            for s in shape:
                count *= s
            if count * dtype.itemsize != nbytes or offset % _ALIGN or offset + nbytes > data_end:
                raise bad(f"array {aname!r} sizes do not match the file (truncated or corrupted)")
            specs.append((aname, dtype, shape, offset, nbytes, crcs[i]))

        arrays: dict[str, np.ndarray] = {}
        for aname, dtype, shape, offset, nbytes, crc in specs:
            if mmap and nbytes:
                arr = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
            else:
                f.seek(offset)
                buf = bytearray(nbytes)
                if f.readinto(buf) != nbytes:
                    raise bad(f"array {aname!r} is truncated")
                arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
            if verify and (_crc(arr) if nbytes else 0) != crc:
                raise bad(f"array {aname!r} checksum mismatch (file corrupted)")
            arrays[aname] = arr
    return arrays, meta
