"""Integrity and atomicity helpers for every file pyspec writes outside its container format.

The binary indexes and models use :mod:`pyspec._fileformat` (sizes checked,
CRC32 per array). Stores and engines are directories of JSON, ``.npy``,
``.npz`` and raw matrix files; this module gives them the same guarantees:

* **checksums** -- JSON documents carry a ``"checksum"`` of their own
  canonical content (:func:`dumps_checked` / :func:`loads_checked`); other
  files are recorded as ``{"size", "crc32"}`` (:func:`file_record`) in the
  JSON that describes them and checked with :func:`check_file`;
* **bounded reads** -- nothing is read or allocated before its size has been
  compared with a limit and with the real file size (:func:`read_limited`,
  :func:`read_npz`);
* **atomic, permission-correct writes** -- temporary names come from
  :func:`tempfile.mkstemp`/:func:`tempfile.mkdtemp` (``O_EXCL``: never a
  predictable name, never following a planted symlink), get the permissions
  the umask asks for (``mkstemp`` would leave 0600), are fsync'ed and renamed
  over the target (:func:`atomic_write`, :func:`replace_dir`).
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pyspec.errors import IndexFormatError

#: JSON descriptions (engine.json, manifest.json, grid.json, ...) are small;
#: anything larger is corrupt or crafted.
MAX_JSON_BYTES = 64 << 20
#: Members of one store part (metadata of at most a few 100k rows).
MAX_PART_BYTES = 1 << 30
_MAX_ZIP_MEMBERS = 1024
_CHUNK = 8 << 20
_CHECKSUM_KEY = "checksum"


# ----------------------------------------------------------------------------- permissions

def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # portable fallback (briefly sets the umask)
    os.umask(old)
    return old


def apply_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file made by mkstemp/mkdtemp the mode a plain open/mkdir would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ----------------------------------------------------------------------------- writing

def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in directory ``path`` durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through an unpredictable temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def make_temp_dir(parent: str | os.PathLike, name: str) -> Path:
    """A fresh directory next to ``parent/name`` to build a replacement in.

    The name carries the creating process id so that :func:`clean_stale_temp_dirs`
    can remove what a killed build left behind without touching a live one.
    """
    parent = Path(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent))
    apply_umask(tmp, directory=True)
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_dirs(parent: str | os.PathLike, name: str) -> list[Path]:
    """Remove ``.name.tmp-PID-*`` / ``.name.old-PID-*`` directories of dead processes."""
    removed = []
    parent = Path(parent)
    if not parent.is_dir():
        return removed
    for kind in ("tmp", "old"):
        for p in parent.glob(f".{name}.{kind}-*-*"):
            try:
                pid = int(p.name[len(f".{name}.{kind}-"):].split("-", 1)[0])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Put the complete directory ``tmp`` at ``out``, replacing what is there.

    The old ``out`` stays in place until the new one is complete and is
    swapped out in one atomic step where the OS allows (Linux
    ``renameat2(RENAME_EXCHANGE)``), so a reader or a kill at any moment sees
    either the old or the new directory. Elsewhere the old directory is first
    renamed aside (a short window without ``out``) and then deleted.
    """
    tmp, out = Path(tmp), Path(out)
    if not out.exists() and not out.is_symlink():
        os.rename(tmp, out)
    elif out.is_dir() and not out.is_symlink() and _exchange(tmp, out):
        shutil.rmtree(tmp)  # now holds the old directory
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.rename(out, aside / "old")
        os.rename(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(out.parent)


# ----------------------------------------------------------------------------- checksums

def _crc_text(crc: int) -> str:
    return f"crc32:{crc & 0xFFFFFFFF:08x}"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True).encode("ascii")


def dumps_checked(obj: dict[str, Any], indent: int | None = 1) -> bytes:
    """JSON text of ``obj`` plus a ``"checksum"`` of its canonical form."""
    body = {k: v for k, v in obj.items() if k != _CHECKSUM_KEY}
    out = dict(body, **{_CHECKSUM_KEY: _crc_text(zlib.crc32(_canonical(body)))})
    return (json.dumps(out, indent=indent, sort_keys=True) + "\n").encode("utf-8")


def read_limited(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """Whole content of a regular file of at most ``limit`` bytes (else IndexFormatError)."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IndexFormatError(f"{path}: {what} is not a regular file")
        if st.st_size > limit:
            raise IndexFormatError(f"{path}: {what} is {st.st_size} bytes, more than the "
                                   f"{limit} a valid one can have (corrupted or not ours)")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(st.st_size + 1)  # not limit + 1: read() allocates what it may get
    finally:
        os.close(fd)
    if len(data) > limit:
        raise IndexFormatError(f"{path}: {what} grew past {limit} bytes while read")
    return data


def loads_checked(path: str | os.PathLike, data: bytes | None = None, *,
                  legacy_versions: tuple[int, ...] = (), what: str = "JSON file"
                  ) -> dict[str, Any]:
    """Parse a JSON object written by :func:`dumps_checked` and verify its checksum.

    A document whose ``"version"`` is in ``legacy_versions`` (written before
    checksums existed) may lack the checksum; a present checksum is always
    verified.
    """
    if data is None:
        data = read_limited(path, MAX_JSON_BYTES, what)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise IndexFormatError(f"{path}: {what} must hold a JSON object, found "
                               f"{type(obj).__name__}")
    stored = obj.pop(_CHECKSUM_KEY, None)
    if stored is None:
        version = obj.get("version")
        if isinstance(version, bool) or version not in legacy_versions:
            raise IndexFormatError(f"{path}: {what} has no checksum (corrupted)")
        return obj
    if stored != _crc_text(zlib.crc32(_canonical(obj))):
        raise IndexFormatError(f"{path}: {what} checksum mismatch (file corrupted)")
    return obj


def file_crc32(path: str | os.PathLike, limit: int | None = None) -> tuple[int, int]:
    """(size, CRC32) of a regular file, read in chunks."""
    crc = 0
    size = 0
    with open(path, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise IndexFormatError(f"{path}: not a regular file")
        while True:
            block = fh.read(_CHUNK)
            if not block:
                break
            size += len(block)
            if limit is not None and size > limit:
                raise IndexFormatError(f"{path}: larger than the {limit} bytes recorded")
            crc = zlib.crc32(block, crc)
    return size, crc


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size", "crc32"}`` of a file, to be stored in a checked JSON document."""
    size, crc = file_crc32(path)
    return {"size": size, "crc32": _crc_text(crc)}


def check_record(record: Any, where: str) -> tuple[int, str]:
    """Validate a ``{"size", "crc32"}`` record read from JSON."""
    if (not isinstance(record, dict) or isinstance(record.get("size"), bool)
            or not isinstance(record.get("size"), int) or record["size"] < 0
            or not isinstance(record.get("crc32"), str)):
        raise IndexFormatError(f"{where}: invalid checksum record {record!r}")
    return record["size"], record["crc32"]


def check_file(path: str | os.PathLike, record: Any) -> None:
    """Raise IndexFormatError unless ``path`` has the recorded size and CRC32."""
    size, crc = check_record(record, str(path))
    try:
        actual = os.stat(path).st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: missing (listed with a checksum)") from None
    if actual != size:
        raise IndexFormatError(f"{path}: {actual} bytes, {size} recorded (truncated or "
                               "corrupted)")
    if _crc_text(file_crc32(path, limit=size)[1]) != crc:
        raise IndexFormatError(f"{path}: checksum mismatch (file corrupted)")


def crc_text(crc: int) -> str:
    """The text form of a CRC32 stored in pyspec's JSON documents."""
    return _crc_text(crc)


# ----------------------------------------------------------------------------- npz parts

def _npy_from_bytes(raw: bytes, where: str) -> np.ndarray:
    """Parse one .npy member with every size checked before anything is allocated."""
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or fortran or dtype.kind not in "biufU":
        raise ValueError(f"unexpected array dtype {dtype}")
    count = 1
    for s in shape:
        count *= int(s)
    offset = fh.tell()
    if count * dtype.itemsize != len(raw) - offset:
        raise ValueError(f"array of shape {shape} {dtype} does not match its "
                         f"{len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def read_npz(path: str | os.PathLike, limit: int = MAX_PART_BYTES) -> dict[str, np.ndarray]:
    """Arrays of an uncompressed ``.npz`` (``np.savez``), bounded and CRC-checked.

    Only stored (uncompressed) members are accepted, so no member can inflate
    beyond the file's own size; every member's zip CRC32 is verified.
    """
    path = Path(path)
    try:
        data = read_limited(path, limit, "store part")
        out: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_ZIP_MEMBERS:
                raise ValueError(f"{len(infos)} members")
            for info in infos:
                if (info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size
                        or info.file_size > len(data) or not info.filename.endswith(".npy")):
                    raise ValueError(f"member {info.filename!r} is compressed or oversized")
                name = info.filename[:-4]
                if name in out:
                    raise ValueError(f"duplicate member {info.filename!r}")
                out[name] = _npy_from_bytes(zf.read(info), str(path))
        return out
    except IndexFormatError:
        raise
    except Exception as exc:  # noqa: BLE001  zipfile and numpy's header parser fail in many ways
        raise IndexFormatError(f"{path}: unreadable store part ({type(exc).__name__}: "
                               f"{exc})") from None


# ----------------------------------------------------------------------------- descriptions

#: Largest wavelength grid a store or engine description may ask for (the
#: survey grids have a few thousand pixels); checked before anything is built.
MAX_GRID_PIXELS = 1 << 20


def _finite_number(d: dict[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise ValueError(f"grid field {key!r} must be a finite number, got {v!r}")
    return float(v)


def grid_from_dict(d: Any, where: str) -> Any:
    """A :class:`~pyspec.preprocess.WavelengthGrid` from a stored description, sizes first.

    The pixel count implied by the description is computed and bounded by
    :data:`MAX_GRID_PIXELS` before any array is allocated.
    """
    from pyspec.preprocess import WavelengthGrid

    try:
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        kind = d.get("kind")
        if kind in ("linear", "log-linear"):
            start, stop = _finite_number(d, "start"), _finite_number(d, "stop")
            step = _finite_number(d, "step" if kind == "linear" else "dlog10")
            if not (step > 0 and stop > start > 0):
                raise ValueError("need 0 < start < stop and a positive step")
            span = stop - start if kind == "linear" else np.log10(stop) - np.log10(start)
            n = span / step + 1
        elif kind == "linspace":
            n = d.get("n")
            if isinstance(n, bool) or not isinstance(n, int):
                raise ValueError(f"grid field 'n' must be an int, got {n!r}")
            _finite_number(d, "start"), _finite_number(d, "stop")
        elif kind == "explicit":
            wl = d.get("wavelength")
            if not isinstance(wl, list):
                raise ValueError("grid field 'wavelength' must be a list")
            n = len(wl)
        else:
            raise ValueError(f"unknown wavelength grid kind {kind!r}")
        if not 2 <= n <= MAX_GRID_PIXELS:
            raise ValueError(f"the grid would have {n:.0f} pixels (allowed 2..{MAX_GRID_PIXELS})")
        name = d.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError("grid field 'name' must be a string")
        return WavelengthGrid.from_dict(d)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise IndexFormatError(f"{where}: invalid wavelength grid ({exc})") from None
