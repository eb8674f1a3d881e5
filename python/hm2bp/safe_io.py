"""Safe file input and output: the one place where hm2bp opens a file a user handed it.

Reading (every reader: configs, checkpoints, the authors' files, NIR graphs, data files, JSON):

- ``open_regular(path, max_bytes)`` opens with ``O_NONBLOCK`` and checks the open file itself
  (``fstat``, no race with a rename): only a regular file is accepted, so a FIFO, a device
  (``/dev/zero``), a directory or a socket is refused at once instead of blocking or never
  ending; and a file larger than ``max_bytes`` is refused before a byte is read.
- ``read_bytes`` / ``read_text`` read such a file whole, never more than ``max_bytes`` (a file
  that grows while it is read is refused too).

Writing (checkpoints, metrics, exports):

- ``atomic_write(path, write)`` writes a temporary file in the target's folder, fsyncs it and
  renames it over the target, so the target is the old file or the new one, never a mix. The
  temporary is created exclusively without following links (``O_EXCL | O_NOFOLLOW``), with mode
  0666 minus the umask (like any file the user creates), and named
  ``.<name>.hm2bp-<pid>-<random>.tmp``, a name no user file has; ``remove_stale_temporaries``
  deletes only such names, and only those of processes that are gone. A target that exists
  and is not a regular file (a symbolic link, a device, a FIFO) is refused: nothing is written
  through a link or over a device. A failed write (full disk, EIO, EFBIG) raises
  ``WriteError`` naming the file and saying that the previous file is intact.
- ``append_text`` appends whole lines to a regular file, never through a link.

A refusal is a ``FileRefusedError`` (a ValueError); callers pass their own error class
(``error=DatasetError``) to keep their domain's exception type. ``short(value)`` shortens a
value for a one-line message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "KiB",
    "MiB",
    "GiB",
    "FileRefusedError",
    "WriteError",
    "append_text",
    "atomic_write",
    "check_output",
    "open_regular",
    "read_bytes",
    "read_text",
    "remove_stale_temporaries",
    "short",
]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_CHUNK = 1 << 20
_TEMP_TAG = "hm2bp"
_TEMP_RE = re.compile(r"^\..+\." + _TEMP_TAG + r"-(\d+)-[0-9a-f]{12}\.tmp$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class FileRefusedError(ValueError):
    """A file is not one hm2bp reads or writes (special file, link, too large)."""


class WriteError(OSError):
    """Writing a file failed (full disk, I/O error, file too large); the message names the file
    and says what was kept."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno N]"
        return str(self.strerror)


def short(value: object, limit: int = 80) -> str:
    """repr(value), shortened in the middle to about `limit` characters for a one-line message."""
    try:
        text = repr(value)
    except ValueError:  # an int of more than sys.get_int_max_str_digits() digits
        return f"<{type(value).__name__} too large to print>"
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def open_regular(path: str | os.PathLike[str], max_bytes: int, *, what: str = "file",
                 error: type[Exception] = FileRefusedError) -> BinaryIO:
    """`path` opened for binary reading after checking that it is a regular file of at most
    max_bytes bytes (links to one are followed). Raises `error` naming the file otherwise and
    FileNotFoundError / PermissionError as open() does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (or a FIFO opened for writing only)
            raise error(f"{path}: {what} is a socket or device, not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: {what} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{path}: {what} has {_size_text(st.st_size)}, more than the "
                        f"{_size_text(max_bytes)} such a file can hold; not the right file?")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], max_bytes: int, *, what: str = "file",
               error: type[Exception] = FileRefusedError) -> bytes:
    """The whole content of a regular file of at most max_bytes (see open_regular)."""
    with open_regular(path, max_bytes, what=what, error=error) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after the check
        raise error(f"{path}: {what} grew beyond {_size_text(max_bytes)} while it was read")
    return data


def read_text(path: str | os.PathLike[str], max_bytes: int, *, what: str = "file",
              error: type[Exception] = FileRefusedError, encoding: str = "utf-8") -> str:
    """read_bytes decoded; a file that is not `encoding` text raises `error`."""
    data = read_bytes(path, max_bytes, what=what, error=error)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not {encoding} text (byte {exc.start})") from None


# ---------------------------------------------------------------------------------------------
# Writing


def check_output(path: str | os.PathLike[str], *, what: str = "output file",
                 error: type[Exception] = FileRefusedError) -> Path:
    """An output path that atomic_write may replace: absent or a regular file (not a link,
    device, FIFO, socket or directory), in an existing directory."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise error(f"{path}: cannot write the {what}: {path.parent} is not a directory") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: refusing to replace {_kind(st.st_mode)} with the {what}; give the "
                    f"path of a regular file or a new name")
    if not path.parent.is_dir():
        raise error(f"{path}: cannot write the {what}: {path.parent} is not a directory")
    return path


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_temporary(path: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    while True:
        tmp = path.with_name(f".{path.name}.{_TEMP_TAG}-{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:  # 0o666: the umask decides, as for any file the user creates
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


_WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                 errno.EFBIG: "the file is larger than allowed (file size limit)",
                 errno.EIO: "an input/output error", errno.EROFS: "the file system is read-only"}


def write_failure(path: Path, exc: OSError, kept: str | None = None) -> WriteError:
    """The WriteError of a failed write of `path`: which file, why, and what was kept."""
    detail = exc.strerror or str(exc)
    why = _WRITE_ERRNOS.get(exc.errno or 0)
    why = f"{why} ({detail})" if why and why != detail else detail
    if kept is None:
        kept = "the previous file is intact" if path.exists() else "nothing was written"
    return WriteError(exc.errno or errno.EIO, f"cannot write {path}: {why}; {kept}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], *,
                 what: str = "output file", kept: str | None = None) -> None:
    """Replace `path` by what write(fh) writes (see the module doc). OSErrors of the write
    become one WriteError naming the file; `kept` says what the user still has (default: "the
    previous file is intact" or "nothing was written")."""
    path = check_output(path, what=what)
    fd, tmp = _create_temporary(path)
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            if isinstance(exc, WriteError):
                raise
            raise write_failure(path, exc, kept) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> None:
    """Delete the temporaries atomic_write leaves when its process is killed before the
    rename: only names it creates, and only of processes that no longer run. User files,
    whatever their name, are never touched."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _TEMP_RE.match(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def append_text(path: str | os.PathLike[str], text: str) -> None:
    """Append whole lines with a single write to a regular file (created 0666 minus the
    umask), never through a symbolic link; a failed or short write (full disk) is truncated
    away, so the file only ever holds whole lines."""
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK
                     | _CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefusedError(f"{path}: refusing to write through a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefusedError(f"{path}: refusing to append to {_kind(os.fstat(fd).st_mode)}")
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, f"short write to {path}")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, start)
            raise
    except OSError as exc:
        if isinstance(exc, WriteError):
            raise
        raise write_failure(Path(path), exc, "its earlier lines are intact") from None
    finally:
        os.close(fd)
