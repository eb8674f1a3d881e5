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

from .datasets import DatasetError, check_regular

__all__ = ["read_idx_images", "read_idx_labels"]

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_CHUNK = 1 << 20


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


def _parse_idx(path: Path, stream: io.BufferedIOBase, magic: int, kind: str) -> np.ndarray:
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
    expected = header + math.prod(dims)
    body = _read_upto(stream, expected - header)  # decompresses no more than announced
    if len(body) < expected - header:
        raise DatasetError(f"{path}: file is truncated: the header announces {kind} of shape "
                           f"{dims} ({expected} bytes) but the data has only "
                           f"{header + len(body)} bytes; delete it and download it again")
    if stream.read(1):
        raise DatasetError(f"{path}: unexpected bytes after the {kind} of shape {dims}; the "
                           f"file is corrupt, download it again")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()


def _read_idx(path: str | os.PathLike[str], magic: int, kind: str) -> np.ndarray:
    """An IDX file, gzip (recognised by its magic bytes, not its name) or raw, streamed."""
    path = Path(path)
    check_regular(path)
    with path.open("rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            fh.seek(0)
            return _parse_idx(path, fh, magic, kind)
        fh.seek(0)
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                return _parse_idx(path, gz, magic, kind)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc}); delete the "
                               f"file and download it again") from exc


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Images of an IDX file (gzip or raw) as uint8 (N, H, W), as stored (no transpose)."""
    return _read_idx(path, _IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Labels of an IDX file (gzip or raw) as uint8 (N,)."""
    return _read_idx(path, _LABELS_MAGIC, "labels")
