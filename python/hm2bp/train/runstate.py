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
  process dies, even by kill -9. The file is created exclusively, never through a link, and
  deleted at the end; ``verify()`` detects a run directory removed or replaced under the run.
- Every file goes through hm2bp.safe_io: regular files only, size-bounded reads, temporaries
  of this program's own name, outputs that follow the umask.
- ``SignalGuard`` turns SIGINT, SIGTERM and SIGHUP into ``Interrupted`` (a KeyboardInterrupt),
  and inside ``deferred()`` holds them back until the block (a save) has finished.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import safe_io
from ..model import state_file
from ..model.state_file import MAX_META_BYTES

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
_MAX_LOG_BYTES = 256 << 20  # metrics.jsonl: about 1 KiB per epoch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match the run."""


class RunDirError(ValueError):
    """A run directory is in use by another run or cannot be used."""


# ---------------------------------------------------------------------------------------------
# Atomic files


def atomic_write(path: Path, write: Callable[[BinaryIO], None], kept: str | None = None) -> None:
    """Replace path by what write(fh) writes: safe_io.atomic_write (a temporary of this
    program's own name, fsynced, renamed; never through a link). A failure is a
    safe_io.WriteError naming the file and, with `kept`, what the user still has."""
    safe_io.atomic_write(path, write, what="run file", kept=kept)


def remove_stale_temporaries(directory: Path) -> None:
    """Temporaries of writers killed before their rename (safe_io's names only)."""
    safe_io.remove_stale_temporaries(directory)


def write_state(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                kept: str | None = None) -> None:
    """One checkpoint file (hm2bp.model.state_file): the arrays plus meta as JSON."""
    state_file.write(path, arrays, meta, what="run file", kept=kept)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a checkpoint file, read as hm2bp.model.state_file reads (no pickle, no
    size field trusted)."""
    return state_file.read_npz(path, what="checkpoint", error=CheckpointError)


def read_state(path: Path) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(meta, arrays) of a checkpoint file; meta is None when it has no __meta__ (a version-1
    checkpoint, whose metadata is the separate checkpoint.json). Damage: one CheckpointError."""
    return state_file.read(path, what="checkpoint", error=CheckpointError)


# ---------------------------------------------------------------------------------------------
# Line-atomic logs


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write; a failed or short write (full disk) is
    truncated away, so the file only ever holds whole lines."""
    append_text(path, json.dumps(record) + "\n")


def append_text(path: Path, text: str) -> None:
    """Append whole lines with a single write, as append_line does (safe_io.append_text)."""
    safe_io.append_text(path, text)


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON-object lines of a log and the 1-based numbers of lines that are not (a line
    cut by a crash or a full disk)."""
    records, bad = [], []
    text = safe_io.read_bytes(path, _MAX_LOG_BYTES, what="metrics log").decode(errors="replace")
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
    """An exclusive lock on <run_dir>/.lock for a whole run.

    The file is created exclusively and never through a link (O_CREAT | O_EXCL | O_NOFOLLOW,
    mode 0666 minus the umask); it holds the holder's pid and an flock that the kernel drops
    when the process dies, even by kill -9. A lock file whose flock is gone (a run killed
    before it could delete it) is taken over; one that is a link, a directory or another
    special file is refused, never followed. verify() says whether the directory is still the
    one locked (not removed or replaced, e.g. ``rm -rf run; mkdir run``); release() deletes the
    file, if it is still ours.
    """

    _FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self._id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we hold

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _open(self) -> int | None:
        """A descriptor of the lock file (created when absent), None when it vanished between
        two calls (its holder finished: try again)."""
        try:
            return os.open(self.path, self._FLAGS | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            pass  # a live run's lock, or one left by a run that was killed
        try:
            fd = os.open(self.path, self._FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            what = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise RunDirError(f"{self.path} is {what}, not a lock file of hm2bp; it is never followed "
                              f"or overwritten: remove it or choose another directory") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise RunDirError(f"{self.path} is not a regular file, not a lock file of hm2bp; remove "
                              f"it or choose another directory")
        return fd

    def acquire(self) -> None:
        if self._fd is not None:
            return
        for _ in range(100):
            fd = self._open()
            if fd is None:
                continue
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
            st = os.fstat(fd)
            if self._identity() == (st.st_dev, st.st_ino):
                break
            os.close(fd)  # deleted or replaced by its holder between open and flock: again
        else:
            raise RunDirError(f"{self.path}: the lock file keeps changing; is another program "
                              f"deleting it?")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd, self._id = fd, (st.st_dev, st.st_ino)

    def verify(self) -> None:
        """RunDirError unless <run_dir>/.lock is still the file this lock holds: called before
        every write, so that a run whose directory was removed or replaced under it stops
        instead of writing beside another run."""
        if self._fd is not None and self._identity() != self._id:
            raise RunDirError(f"{self.path.parent} was removed or replaced while this run was using "
                              f"it; stopped without writing there again (another run may use it now)")

    def release(self) -> None:
        if self._fd is not None:
            if self._identity() == self._id:  # never another run's lock
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)  # closing drops the flock
            self._fd = self._id = None


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
