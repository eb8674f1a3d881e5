"""The one file format hm2bp keeps state in: an np.savez archive of plain arrays plus its JSON
metadata as the uint8 array ``__meta__``. Run checkpoints (hm2bp.train) and saved networks
(Network.save) are both this container.

Written atomically (hm2bp.safe_io: a temporary fsynced and renamed, so a crash leaves the old
file or the new one). Read without pickle and without trusting any size field: members must be
stored uncompressed as np.savez stores them, every npy header must announce exactly the bytes
present, object arrays are refused, and the file may be no larger than the memory left.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import safe_io
from .limits import available_bytes

__all__ = ["MAX_META_BYTES", "META_KEY", "max_bytes", "read", "read_meta", "read_npz", "write"]

META_KEY = "__meta__"
MAX_META_BYTES = 1 << 20

Path = str | os.PathLike[str]


def write(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, what: str,
          kept: str | None = None) -> None:
    """One file: the arrays plus meta as JSON in the uint8 array __meta__ (atomic)."""
    blob = np.frombuffer(json.dumps(meta, indent=1).encode(), dtype=np.uint8)
    safe_io.atomic_write(path, lambda fh: np.savez(fh, **arrays, **{META_KEY: blob}), what=what, kept=kept)


def _read_npy(name: str, raw: bytes) -> np.ndarray:
    """An .npy member, with its header checked against the bytes that are really there."""
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported npy version {version}")
    if dtype.hasobject or dtype.itemsize == 0:
        raise ValueError(f"array {name!r} has dtype {dtype}, not a plain numeric array")
    count = int(np.prod(shape, dtype=object))
    data = raw[fh.tell():]
    if count * dtype.itemsize != len(data):
        raise ValueError(f"array {name!r}: header announces {shape} {dtype} "
                         f"({count * dtype.itemsize} bytes), the file holds {len(data)}")
    arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape,
                                                                order="F" if fortran else "C")
    return arr.copy()


def max_bytes() -> int:
    # A state file is read whole: never more than the memory left (and at most 64 GiB).
    free = available_bytes()
    return min(64 * safe_io.GiB, free // 2 if free else 64 * safe_io.GiB)


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, np.ndarray]:
    """(name, array) of one member, refused unless stored as np.savez stores it."""
    if not info.filename.endswith(".npy"):
        raise ValueError(f"unexpected member {info.filename!r}")
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise ValueError(f"member {info.filename!r} is not stored as np.savez stores it")
    name = info.filename[:-4]
    return name, _read_npy(name, zf.read(info))


def read_npz(path: Path, *, what: str, error: type[Exception]) -> dict[str, np.ndarray]:
    """All arrays of an np.savez file (see the module doc). A file that is not a regular one
    or too large raises `error`; damaged contents raise ValueError or zipfile's errors."""
    arrays: dict[str, np.ndarray] = {}
    with safe_io.open_regular(path, max_bytes(), what=what, error=error) as fh, zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            name, array = _member(zf, info)
            if name in arrays:
                raise ValueError(f"array {name!r} stored twice")
            arrays[name] = array
    return arrays


def _meta(blob: np.ndarray) -> Any:
    if blob.dtype != np.uint8 or blob.ndim != 1 or blob.size > MAX_META_BYTES:
        raise ValueError(f"{META_KEY} is not a JSON text")
    return json.loads(blob.tobytes().decode())


@contextlib.contextmanager
def _damage_as(error: type[Exception], path: Path, what: str) -> Iterator[None]:
    """Any sign of damage inside the block as one `error` naming the file."""
    try:
        yield
    except error:
        raise
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile,
            zipfile.LargeZipFile, NotImplementedError, OverflowError, RecursionError) as exc:
        # zipfile and the npy parser raise many types for damaged bytes; all mean the same
        raise error(f"{path}: damaged or not an hm2bp {what} "
                    f"({type(exc).__name__}: {safe_io.short(str(exc), 200)})") from None


def read_meta(path: Path, *, what: str, error: type[Exception]) -> Any:
    """The metadata of a state file alone (only its __meta__ member is read), or None when it
    has none: what tells its format. Problems as read() reports them."""
    with _damage_as(error, path, what), \
            safe_io.open_regular(path, max_bytes(), what=what, error=error) as fh, zipfile.ZipFile(fh) as zf:
        try:
            info = zf.getinfo(META_KEY + ".npy")
        except KeyError:
            return None
        return _meta(_member(zf, info)[1])


def read(path: Path, *, what: str, error: type[Exception]) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(meta, arrays) of a state file; meta is None when it has no __meta__. Any damage is one
    `error` naming the file: "PATH: damaged or not an hm2bp WHAT (...)"."""
    with _damage_as(error, path, what):
        arrays = read_npz(path, what=what, error=error)
        blob = arrays.pop(META_KEY, None)
        return (None if blob is None else _meta(blob)), arrays
