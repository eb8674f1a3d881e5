"""A run directory's durable state: one atomic checkpoint file, an exclusive lock, a
line-atomic metrics log and signal handling that never interrupts a save.

- The run state is one file, ``checkpoint.npz``: the arrays and, as the uint8 array
  ``__meta__``, its JSON metadata. It is written to a unique temporary file, fsynced and
  renamed over the old one, so every crash leaves the old or the new state, never a mix,
  and the old state stays in place until the new one is complete.
- Reading checks the container before trusting it: zip members stored uncompressed, npy
  headers whose sizes match the bytes present (no allocation from a damaged header), no
  object arrays. Damage is reported as one CheckpointError line naming the file.
- ``RunLock`` holds an flock on ``<run>/.lock`` for a whole run; the kernel drops it when the
  process dies, even by kill -9.
- ``SignalGuard`` turns SIGINT, SIGTERM and SIGHUP into ``Interrupted`` (a KeyboardInterrupt),
  and inside ``deferred()`` holds them back until the block (a save) has finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import signal
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "LOCK_FILE",
    "STATE_FILE",
    "CheckpointError",
    "Interrupted",
    "RunDirError",
    "RunLock",
    "SignalGuard",
    "append_line",
    "append_text",
    "atomic_write",
    "make_run_dir",
    "read_lines",
    "read_npz",
    "read_state",
    "remove_stale_temporaries",
    "write_state",
]

STATE_FILE = "checkpoint.npz"
LOCK_FILE = ".lock"
META_KEY = "__meta__"
_MAX_META_BYTES = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match the run."""


class RunDirError(ValueError):
    """A run directory is in use by another run or cannot be used."""


# ---------------------------------------------------------------------------------------------
# Atomic files


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace path by what write(fh) writes, via a unique temporary file in the same folder
    (two writers never share a temporary) that is fsynced before the rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_stale_temporaries(directory: Path) -> None:
    """Temporaries of writers killed before their rename (only called under the lock)."""
    for tmp in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_state(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """One checkpoint file: the arrays plus meta as JSON in the uint8 array __meta__."""
    blob = np.frombuffer(json.dumps(meta, indent=1).encode(), dtype=np.uint8)
    atomic_write(path, lambda fh: np.savez(fh, **arrays, **{META_KEY: blob}))


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


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an np.savez file, read without pickle and without trusting any size
    field: savez stores members uncompressed, so a member's size is bounded by the file's."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename!r}")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise ValueError(f"member {info.filename!r} is not stored as np.savez stores it")
            name = info.filename[:-4]
            if name in arrays:
                raise ValueError(f"array {name!r} stored twice")
            arrays[name] = _read_npy(name, zf.read(info))
    return arrays


def read_state(path: Path) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(meta, arrays) of a checkpoint file; meta is None when it has no __meta__ (a version-1
    checkpoint, whose metadata is the separate checkpoint.json)."""
    try:
        if not path.is_file():  # a FIFO would block the reader
            raise CheckpointError(f"{path}: not a regular file")
        arrays = read_npz(path)
        blob = arrays.pop(META_KEY, None)
        if blob is None:
            return None, arrays
        if blob.dtype != np.uint8 or blob.ndim != 1 or blob.size > _MAX_META_BYTES:
            raise ValueError(f"{META_KEY} is not a JSON text")
        meta = json.loads(blob.tobytes().decode())
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile,
            zipfile.LargeZipFile, NotImplementedError, OverflowError) as exc:
        # zipfile and the npy parser raise many types for damaged bytes; all mean the same
        raise CheckpointError(f"{path}: damaged or not an hm2bp checkpoint "
                              f"({type(exc).__name__}: {exc})") from None
    return meta, arrays


# ---------------------------------------------------------------------------------------------
# Line-atomic logs


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write; a failed or short write (full disk) is
    truncated away, so the file only ever holds whole lines."""
    append_text(path, json.dumps(record) + "\n")


def append_text(path: Path, text: str) -> None:
    """Append whole lines with a single write, as append_line does."""
    line = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, f"short write to {path}")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON-object lines of a log and the 1-based numbers of lines that are not (a line
    cut by a crash or a full disk)."""
    records, bad = [], []
    text = path.read_bytes().decode(errors="replace")
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line.strip():
            bad.append(number)
    return records, bad


# ---------------------------------------------------------------------------------------------
# Run directories and their lock


def make_run_dir(parent: Path, name: str) -> Path:
    """A new directory parent/<name>-<YYYYmmdd-HHMMSS>[-k]; mkdir is the arbiter, so two runs
    started in the same second get different directories."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    k = 1
    while True:
        candidate = parent / (f"{name}-{stamp}" if k == 1 else f"{name}-{stamp}-{k}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            k += 1


class RunLock:
    """An exclusive flock on <run_dir>/.lock, with the holder's pid written into the file."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(f"{self.path.parent} is in use by another run (pid {holder}); "
                              f"wait for it to finish or choose another directory") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


# ---------------------------------------------------------------------------------------------
# Signals


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; signum says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """While entered (main thread only), SIGINT, SIGTERM and SIGHUP raise Interrupted; inside
    deferred() a signal is remembered and raised when the block has finished."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._depth = 0
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self._depth:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    @contextlib.contextmanager
    def deferred(self, raise_pending: bool = True) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if raise_pending and not self._depth and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)
