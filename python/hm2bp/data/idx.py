"""IDX files (MNIST, Fashion-MNIST, EMNIST): gzip or raw, streamed, every damage one
DatasetError saying what to do."""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from .. import safe_io
from .datasets import DatasetError

__all__ = ["read_idx_images", "read_idx_labels"]

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_CHUNK = 1 << 20


# Deflate cannot shrink data by more than about 1032:1; a gzip file whose header claims more
# than this many times its own size is damaged or crafted, and is refused before inflating.
_MAX_GZIP_RATIO = 1100
# An IDX file is read whole; MNIST's largest (EMNIST byclass) is about 550 MB.
_MAX_IDX_BYTES = 8 << 30


def _read_upto(stream: io.BufferedIOBase, n: int) -> bytes:
    """At most n bytes, read in chunks: memory grows with the data actually there, never
    with what a (possibly damaged) header claims."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(_CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_body(path: Path, stream: io.BufferedIOBase, n: int, what: str) -> np.ndarray:
    """Exactly n bytes as uint8, streamed in chunks that are kept only until the data is
    complete: a short stream is refused holding no more than what it had, and the array is
    filled from the chunks (about one copy of the data at the peak, never n bytes up front)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(min(_CHUNK, n - got))
        if not chunk:
            raise DatasetError(f"{path}: file is truncated: the header announces {what} ({n} data "
                               f"bytes) but the data has only {got}; delete it and download it "
                               f"again")
        parts.append(chunk)
        got += len(chunk)
    out = np.empty(n, dtype=np.uint8)
    at = 0
    for k in range(len(parts)):
        chunk, parts[k] = parts[k], b""  # freed as it is copied
        out[at:at + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        at += len(chunk)
    return out


def _parse_idx(path: Path, stream: io.BufferedIOBase, magic: int, kind: str,
               max_body: int) -> np.ndarray:
    """The IDX content of a stream; max_body: the most data bytes the file can hold (the raw
    file's size, or the gzip file's size times deflate's best ratio)."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    head = _read_upto(stream, header)
    if len(head) < header:
        raise DatasetError(f"{path}: file is truncated ({len(head)} bytes, shorter than the "
                           f"{header}-byte IDX header); delete it and download it again")
    got = int.from_bytes(head[:4], "big")
    if got != magic:
        raise DatasetError(f"{path}: not an IDX {kind} file (magic number 0x{got:08X}, expected "
                           f"0x{magic:08X}); check that the right file is in place or download it "
                           f"again")
    dims = tuple(int.from_bytes(head[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    if 0 in dims:
        raise DatasetError(f"{path}: the header announces {kind} of shape {dims}, i.e. none; "
                           f"the file is empty or corrupt, download it again")
    n = math.prod(dims)
    if n > max_body:  # the claim against the bytes present, before reading any of them
        raise DatasetError(f"{path}: the header announces {kind} of shape {dims} ({n} bytes), "
                           f"more than the file can hold; it is truncated or corrupt, download "
                           f"it again")
    body = _read_body(path, stream, n, f"{kind} of shape {dims}")
    if stream.read(1):
        raise DatasetError(f"{path}: unexpected bytes after the {kind} of shape {dims}; the "
                           f"file is corrupt, download it again")
    return body.reshape(dims)


def _read_idx(path: str | os.PathLike[str], magic: int, kind: str) -> np.ndarray:
    """An IDX file, gzip (recognised by its magic bytes, not its name) or raw, streamed; a
    regular file only (hm2bp.safe_io), whose header must fit the bytes it has."""
    path = Path(path)
    with safe_io.open_regular(path, _MAX_IDX_BYTES, what=f"IDX {kind} file",
                              error=DatasetError) as fh:
        size = os.fstat(fh.fileno()).st_size
        header = 4 + 4 * (magic & 0xFF)
        if fh.read(2) != b"\x1f\x8b":
            fh.seek(0)
            return _parse_idx(path, fh, magic, kind, size - header)
        fh.seek(0)
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                return _parse_idx(path, gz, magic, kind, size * _MAX_GZIP_RATIO)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc}); delete the "
                               f"file and download it again") from exc


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Images of an IDX file (gzip or raw) as uint8 (N, H, W), as stored (no transpose)."""
    return _read_idx(path, _IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Labels of an IDX file (gzip or raw) as uint8 (N,)."""
    return _read_idx(path, _LABELS_MAGIC, "labels")
