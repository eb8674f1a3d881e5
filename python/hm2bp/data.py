"""Datasets for hm2bp: MNIST, Fashion-MNIST, EMNIST balanced (IDX files) and event data.

Event data comes as N-MNIST's .bin files (``load("nmnist", ...)``) or as users have it
(:func:`from_events`): a tonic dataset, or any sequence of recordings, each a structured array
with fields x, y, t, p or a plain (N, 4) array of columns t, x, y, p. Both become spike
trains through one function, :func:`bin_events`.

Files are looked up in an explicit ``data_dir``, else under ``$HM2BP_DATA``, else in a user cache
(``$XDG_CACHE_HOME/hm2bp`` or ``~/.cache/hm2bp``); missing IDX files are downloaded from the
datasets' public mirrors and checked against their published MD5 sums (``HM2BP_MIRROR`` overrides
the mirrors). N-MNIST has no stable direct URL and must be unpacked by hand. ``mnist-mini`` (6,000
training and 1,000 test digits) ships inside the package, so the project works without any download.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.resources
import io
import math
import operator
import os
import stat
import sys
import tempfile
import time
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DATASETS",
    "SPLITS",
    "MIRRORS",
    "MD5",
    "NMNIST_SIZE",
    "NMNIST_INPUTS",
    "NMNIST_STEP_US",
    "NMNIST_SENSOR",
    "RECIPES",
    "DatasetError",
    "ImageDataset",
    "EventDataset",
    "load",
    "resolve_data_dir",
    "read_idx_images",
    "read_idx_labels",
    "read_nmnist_events",
    "event_fields",
    "stabilise_saccades",
    "bin_events",
    "from_events",
    "check_classes",
    "stratified_sample",
]

DATASETS = ("mnist", "fashion-mnist", "emnist-balanced", "nmnist", "mnist-mini")
SPLITS = ("train", "test")

# N-MNIST binning (SPEC 2): 34x34 sensor, two polarities, 600 us per time step.
NMNIST_SIZE = 34
NMNIST_INPUTS = 2 * NMNIST_SIZE * NMNIST_SIZE
NMNIST_STEP_US = 600
# (width, height, polarities): the order of tonic's sensor_size; x < width, y < height.
NMNIST_SENSOR = (NMNIST_SIZE, NMNIST_SIZE, 2)
# "authors": N-MNIST's saccades undone as in the authors' converter (SPEC 2 step 1);
# "raw": events where the sensor saw them. Both use SPEC 2's index and step formula.
RECIPES = ("authors", "raw")
EVENT_FIELDS = ("x", "y", "t", "p")  # tonic's field names
_SACCADE_US = 105_000  # each of N-MNIST's three saccades lasts 105 ms

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_IMAGE_SHAPE = (28, 28)
_N_CLASSES = {"mnist": 10, "fashion-mnist": 10, "emnist-balanced": 47, "nmnist": 10,
              "mnist-mini": 10}
_SUBDIR = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "emnist-balanced": "emnist",
           "nmnist": "nmnist"}

_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_FILES = {
    "mnist": _MNIST_FILES,
    "fashion-mnist": _MNIST_FILES,
    "emnist-balanced": {s: (f"emnist-balanced-{s}-images-idx3-ubyte",
                            f"emnist-balanced-{s}-labels-idx1-ubyte") for s in SPLITS},
}

# Base URLs tried in order; HM2BP_MIRROR (comma-separated base URLs) replaces them for all datasets.
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    "emnist-balanced": ["https://biometrics.nist.gov/cs_links/EMNIST/"],
}
# Published MD5 of every remote file (the same lists torchvision verifies against).
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    # NIST publishes EMNIST only as one archive of all splits; the balanced files are extracted.
    "emnist-balanced": {"gzip.zip": "58c8d27c78d21e728a6bc7b3cc06412e"},
}
_ARCHIVE = {"emnist-balanced": "gzip.zip"}
_NMNIST_PAGES = ("https://www.garrickorchard.com/datasets/n-mnist",
                 "https://data.mendeley.com/datasets/468j46mzdv/1")
_TIMEOUT_S = 60.0


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not downloadable; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# Dataset objects


def _take(n: int, indices: object) -> np.ndarray:
    """Normalise indices (ints, negative ints, slice, bool mask) to a 1-D int64 array in [0, n)."""
    if not isinstance(indices, slice):
        indices = np.asarray(indices)  # a tuple must not become a multi-axis index
        if indices.size == 0:
            indices = indices.astype(np.int64)
    try:
        idx = np.arange(n, dtype=np.int64)[indices]
    except IndexError as exc:
        raise IndexError(f"indices: {exc} (dataset has {n} samples)") from exc
    if idx.ndim != 1:
        raise ValueError(f"indices: expected a 1-D sequence of sample indices, got shape "
                         f"{idx.shape}")
    return idx


@dataclass(frozen=True, repr=False, eq=False)
class ImageDataset:
    """Static images, flattened row-major: images uint8 (N, H*W), labels int64 (N,)."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    image_shape: tuple[int, int]
    n_classes: int

    def __post_init__(self) -> None:
        n_in = math.prod(self.image_shape)
        if self.images.dtype != np.uint8 or self.images.ndim != 2 or self.images.shape[1] != n_in:
            raise ValueError(f"images: expected uint8 (N, {n_in}), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),):
            raise ValueError(f"labels: expected int64 ({len(self.images)},), got "
                             f"{self.labels.dtype} {self.labels.shape}")

    @property
    def n_inputs(self) -> int:
        return self.images.shape[1]

    @property
    def is_images(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: object) -> ImageDataset:
        idx = _take(len(self), indices)
        return ImageDataset(self.name, self.split, self.images[idx], self.labels[idx],
                            self.image_shape, self.n_classes)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"image_shape={self.image_shape}, n_classes={self.n_classes})")


@dataclass(frozen=True, repr=False, eq=False)
class EventDataset:
    """Binned event streams (N-MNIST or any event sensor), stored compactly.

    Sample i owns ``codes[offsets[i]:offsets[i+1]]``: sorted unique int32 codes
    ``step * n_inputs + input`` (bin_events). All steps are kept, so any T can be chosen per
    batch. sensor_size is (width, height, polarities); n_inputs is their product.
    """

    name: str
    split: str
    labels: np.ndarray
    codes: np.ndarray
    offsets: np.ndarray
    n_classes: int = 10
    sensor_size: tuple[int, int, int] = NMNIST_SENSOR

    def __post_init__(self) -> None:
        if self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ValueError(f"labels: expected int64 (N,), got {self.labels.dtype} "
                             f"{self.labels.shape}")
        if self.offsets.shape != (len(self.labels) + 1,) or self.offsets[-1] != len(self.codes):
            raise ValueError(f"offsets: expected ({len(self.labels) + 1},) ending at len(codes)="
                             f"{len(self.codes)}")

    @property
    def n_inputs(self) -> int:
        return math.prod(self.sensor_size)

    @property
    def is_images(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: object) -> EventDataset:
        idx = _take(len(self), indices)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        parts = [self.codes[s:e] for s, e in zip(starts, ends)]
        codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return EventDataset(self.name, self.split, self.labels[idx], codes, offsets, self.n_classes,
                            self.sensor_size)

    def batch_spikes(self, indices: object, T: int = 540) -> np.ndarray:
        """Dense spike trains bool (B, T, n_inputs); events at steps >= T are dropped."""
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"T: expected a positive int number of time steps, got {T!r}")
        idx = _take(len(self), indices)
        limit = int(T) * self.n_inputs
        out = np.zeros((len(idx), limit), dtype=bool)
        for b, i in enumerate(idx):
            codes = self.codes[self.offsets[i]:self.offsets[i + 1]]
            out[b, codes[:np.searchsorted(codes, limit)]] = True
        return out.reshape(len(idx), int(T), self.n_inputs)

    def __repr__(self) -> str:
        return (f"EventDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"n_inputs={self.n_inputs}, n_classes={self.n_classes}, events={len(self.codes)})")


# ----------------------------------------------------------------------------------------------
# IDX files


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
    _check_regular(path)
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


# ----------------------------------------------------------------------------------------------
# N-MNIST events


def _check_regular(path: Path) -> None:
    # A FIFO or device would block or never end the read.
    if not stat.S_ISREG(path.stat().st_mode):
        raise DatasetError(f"{path}: not a regular file; dataset files must be plain files")


def read_nmnist_events(path: str | os.PathLike[str]) -> np.ndarray:
    """Events of one N-MNIST .bin file as a structured array with int64 fields x, y, t (us), p,
    tonic's layout, so that the native files and tonic's take the same path (bin_events)."""
    path = Path(path)
    _check_regular(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise DatasetError(f"{path}: {raw.size} bytes is not a multiple of 5 (N-MNIST events are "
                           f"5 bytes each); the file is truncated or not an N-MNIST .bin file")
    ev = raw.reshape(-1, 5).astype(np.int64)
    events = np.empty(len(ev), dtype=[(f, np.int64) for f in EVENT_FIELDS])
    events["x"], events["y"] = ev[:, 0], ev[:, 1]  # checked against the sensor by bin_events
    events["p"] = ev[:, 2] >> 7
    events["t"] = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    return events


def _whole(name: str, v: np.ndarray) -> np.ndarray:
    """One event field as int64; floats are accepted when they hold whole numbers."""
    if v.dtype == bool or np.issubdtype(v.dtype, np.signedinteger):
        return v.astype(np.int64)
    if np.issubdtype(v.dtype, np.unsignedinteger):
        if v.size and v.max() > np.iinfo(np.int64).max:
            raise DatasetError(f"{name}: value {v.max()} does not fit int64")
        return v.astype(np.int64)
    if np.issubdtype(v.dtype, np.floating):
        if v.size and not (np.all(np.abs(v) < 2.0**62) and np.all(v == np.floor(v))):
            raise DatasetError(f"{name}: expected whole numbers (coordinates, polarities, "
                               f"timestamps in microseconds), got fractional or non-finite "
                               f"{v.dtype} values")
        return v.astype(np.int64)
    raise DatasetError(f"{name}: expected numbers, got dtype {v.dtype}")


def event_fields(events: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, t, p of one recording as 1-D int64 arrays.

    events: a structured array with fields named x, y, t, p (tonic's; any integer, bool or
    whole-valued float dtypes, any field order, other fields ignored) or an (N, 4) array-like
    of columns t, x, y, p. t is in microseconds.
    """
    arr = np.asarray(events)
    names = arr.dtype.names
    if names is not None and arr.ndim == 1:
        missing = [f for f in EVENT_FIELDS if f not in names]
        if missing:
            raise DatasetError(f"events: the structured array has fields {', '.join(names)}; "
                               f"missing {', '.join(missing)} (x, y, t, p are needed)")
        columns = {f: arr[f] for f in EVENT_FIELDS}
    elif names is None and arr.ndim == 2 and arr.shape[1] == 4:
        columns = dict(zip(("t", "x", "y", "p"), arr.T))
    else:
        raise DatasetError(f"events: expected a structured array with fields x, y, t, p or an "
                           f"(N, 4) array of columns t, x, y, p, got {arr.dtype} {arr.shape}")
    x, y, t, p = (_whole(f, columns[f]) for f in EVENT_FIELDS)
    return x, y, t, p


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """MATLAB's round (halves away from zero; NumPy's rounds them to even), exactly: v - floor(v)
    is exact in float64, floor(|v| + 0.5) is not."""
    low = np.floor(v)
    frac = v - low
    return (low + np.where(v >= 0, frac >= 0.5, frac > 0.5)).astype(np.int64)


def stabilise_saccades(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The authors' N-MNIST saccade stabilisation (SPEC 2 step 1): 1-based X = x + 1, Y = y + 1
    moved back along the sensor's three 105 ms saccades, rounded as MATLAB rounds. Returns the
    int64 (X, Y); values outside 1..34 are events the caller drops."""
    x, y, t = (np.asarray(v, dtype=np.int64) for v in (x, y, t))
    second, third = t > _SACCADE_US, t > 2 * _SACCADE_US
    # each term in the authors' operation order ((3.5*ts)/105000), so exact halves stay exact
    dx = np.where(third, 7 - 7 * (t - 2 * _SACCADE_US) / _SACCADE_US,
                  np.where(second, 3.5 + 3.5 * (t - _SACCADE_US) / _SACCADE_US,
                           3.5 * t / _SACCADE_US))
    dy = np.where(third, 0.0, np.where(second, 7 - 7 * (t - _SACCADE_US) / _SACCADE_US,
                                       7 * t / _SACCADE_US))
    return _round_half_away((x + 1) - dx), _round_half_away((y + 1) - dy)


def _sensor(sensor_size: Any) -> tuple[int, int, int]:
    try:
        sensor = tuple(operator.index(s) for s in sensor_size)
    except TypeError:
        sensor = ()
    if len(sensor) != 3 or min(sensor) < 1 or math.prod(sensor) > np.iinfo(np.int32).max:
        raise DatasetError(f"sensor_size: expected (width, height, polarities) as 3 positive "
                           f"integers (tonic's order; N-MNIST: {NMNIST_SENSOR}), got "
                           f"{sensor_size!r}")
    return sensor  # type: ignore[return-value]


def bin_events(events: Any, sensor_size: Sequence[int] = NMNIST_SENSOR, *, recipe: str = "raw",
               step_us: int = NMNIST_STEP_US, T: int | None = None) -> np.ndarray:
    """One recording as sorted unique int32 spike codes ``step * n_inputs + input`` (SPEC 2).

    events: what event_fields accepts. sensor_size: (width, height, polarities), n_inputs their
    product. recipe "authors" first undoes N-MNIST's saccades (stabilise_saccades; its 34x34x2
    sensor only) and drops the events it moves off the sensor; "raw" keeps events where
    they were recorded. Then input = p*width*height + x*height + y (x-major, the authors'
    order) and step = ceil(t / step_us) + 1 (step 0 stays silent, as for images); steps >= T
    are dropped (T=None keeps all) and several events in one (step, input) are one spike.
    Coordinates or polarities outside the sensor, negative timestamps and codes beyond int32
    raise DatasetError.
    """
    recipe = _check_choice(recipe, RECIPES, "recipe")
    width, height, n_pol = _sensor(sensor_size)
    if isinstance(step_us, bool) or not isinstance(step_us, (int, np.integer)) or step_us < 1:
        raise DatasetError(f"step_us: expected a positive int number of microseconds per time "
                           f"step, got {step_us!r}")
    x, y, t, p = event_fields(events)
    if x.size:
        for name, v, hi in (("x", x, width), ("y", y, height), ("p", p, n_pol)):
            if v.min() < 0 or v.max() >= hi:
                hint = " (OFF events must be polarity 0, not -1)" if name == "p" else ""
                raise DatasetError(f"{name}: values {v.min()}..{v.max()} outside 0..{hi - 1}"
                                   f" for sensor_size {(width, height, n_pol)}{hint}")
        if t.min() < 0:
            raise DatasetError(f"t: negative timestamp {t.min()} us")
    if recipe == "authors":
        if (width, height, n_pol) != NMNIST_SENSOR:
            raise DatasetError(f"recipe 'authors' undoes N-MNIST's saccades and needs its "
                               f"{NMNIST_SENSOR} sensor, got sensor_size "
                               f"{(width, height, n_pol)}; use recipe 'raw'")
        X, Y = stabilise_saccades(x, y, t)
        keep = (X >= 1) & (X <= width) & (Y >= 1) & (Y <= height)
        x, y, t, p = X[keep] - 1, Y[keep] - 1, t[keep], p[keep]
    step = -(-t // int(step_us)) + 1  # ceil in integers: floats would misplace exact multiples
    if T is not None:
        keep = step < T
        step, x, y, p = step[keep], x[keep], y[keep], p[keep]
    n_inputs = width * height * n_pol
    top = (np.iinfo(np.int32).max - n_inputs + 1) // n_inputs  # largest step whose codes fit
    if step.size and step.max() > top:
        raise DatasetError(f"t: timestamps up to {t.max()} us do not fit the int32 codes (at "
                           f"most {(top - 1) * int(step_us)} us); pass a T to drop late events")
    codes = np.sort((step * n_inputs + p * (width * height) + x * height + y).astype(np.int32))
    # sort + neighbour test: NumPy 2's hash-based np.unique takes 3x longer on these sizes
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    return codes[first]


def _label(label: Any) -> int:
    try:
        value = operator.index(label)
    except TypeError:
        raise DatasetError(f"label: expected a non-negative integer class, got {label!r}") from None
    if value < 0:
        raise DatasetError(f"label: expected a non-negative integer class, got {value}")
    return value


def _bin_samples(pairs: Iterable[tuple[Any, Any]], count: int | None, sensor: tuple[int, int, int],
                 recipe: str, step_us: int, name: str, split: str, n_classes: int | None,
                 where: Callable[[int], str], progress: str) -> EventDataset:
    """The EventDataset of (recording, label) pairs; where(k) names sample k in errors."""
    parts, labels = [], []
    bar = _Progress(progress, count or 0, unit="samples", live_only=True)
    for k, pair in enumerate(pairs):
        try:
            try:
                if isinstance(pair, np.ndarray):  # a recording, whose unpacking would mislead
                    raise TypeError
                events, label = pair
            except (TypeError, ValueError):
                raise DatasetError(f"expected an (events, label) pair, got "
                                   f"{type(pair).__name__}; pass labels= with bare "
                                   f"recordings") from None
            parts.append(bin_events(events, sensor, recipe=recipe, step_us=step_us))
            labels.append(_label(label))
        except DatasetError as exc:
            raise DatasetError(f"{where(k)}: {exc}") from None
        bar.update(1)
    bar.close()
    if not labels:
        raise DatasetError(f"no samples in the {name} {split} data")
    if n_classes is None:
        n_classes = max(labels) + 1
    elif max(labels) >= n_classes:
        raise DatasetError(f"label {max(labels)} out of range 0..{n_classes - 1} (n_classes = "
                           f"{n_classes})")
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in parts], out=offsets[1:])
    return EventDataset(name, split, np.array(labels, dtype=np.int64), np.concatenate(parts),
                        offsets, n_classes, sensor)


def from_events(samples: Iterable[Any], labels: Sequence[int] | np.ndarray | None = None, *,
                sensor_size: Sequence[int] | None = None, recipe: str = "raw",
                step_us: int = NMNIST_STEP_US, n_classes: int | None = None,
                name: str = "events", split: str = "train") -> EventDataset:
    """An EventDataset from event data as users have it, binned by bin_events.

    samples: a tonic dataset (without a transform that turns events into frames) or any
    iterable of (events, label) pairs, or, with ``labels``, an iterable of recordings; each
    recording is what event_fields accepts. sensor_size: (width, height, polarities), by
    default the samples' ``sensor_size`` attribute (tonic's datasets have one). recipe
    "authors" is N-MNIST's stabilisation (hm2bp's "nmnist" loader uses it by default).
    n_classes defaults to the largest label + 1.
    """
    if sensor_size is None:
        sensor_size = getattr(samples, "sensor_size", None)
        if sensor_size is None:
            raise DatasetError("sensor_size: the samples have no sensor_size attribute; pass "
                               "sensor_size=(width, height, polarities)")
    sensor = _sensor(sensor_size)
    if recipe == "authors" and getattr(samples, "stabilize", False):
        raise DatasetError("the samples are stabilised already (tonic's stabilize=True, which "
                           "is not the authors' recipe); pass stabilize=False to tonic, or use "
                           "recipe 'raw'")
    count = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    if labels is None:
        pairs: Iterable[Any] = samples
    else:
        labels = np.asarray(labels)
        if labels.ndim != 1 or (count is not None and count != len(labels)):
            raise DatasetError(f"labels: expected one label per recording ({count}), got shape "
                               f"{labels.shape}")
        pairs = zip(samples, labels, strict=True)
    ds = _bin_samples(pairs, count, sensor, recipe, step_us, name, split, n_classes,
                      lambda k: f"sample {k}", f"binning {name} {split}")
    if len(ds.codes) == 0:
        raise DatasetError(f"all {len(ds)} {name} {split} samples are empty (no events in any "
                           f"time step); check the recordings and sensor_size")
    return ds


def _nmnist_message(root: Path, split: str, problem: str) -> str:
    folder = split.capitalize()
    return (f"N-MNIST {split} data not found: {problem}.\n"
            f"N-MNIST has no stable direct download URL; get Train.zip and Test.zip from "
            f"{' or '.join(_NMNIST_PAGES)} and unzip them into {root} so that it contains "
            f"{folder}/0 ... {folder}/9 with the .bin files, or point --data-dir / HM2BP_DATA at a "
            f"folder that already has them.")


def _load_nmnist(root: Path, split: str, recipe: str) -> EventDataset:
    recipe = _check_choice(recipe, RECIPES, "nmnist_recipe")
    split_dir = root / split.capitalize()
    if not split_dir.is_dir():
        raise DatasetError(_nmnist_message(root, split, f"{split_dir} does not exist"))
    files: list[tuple[int, Path]] = []
    labels_ok = [str(k) for k in range(_N_CLASSES["nmnist"])]
    for label_dir in sorted(split_dir.iterdir()):
        # hidden entries and loose files (a README, the zip) are not samples
        if label_dir.name.startswith(".") or not label_dir.is_dir():
            continue
        if label_dir.name not in labels_ok:  # "05" or "10" must not become a class
            raise DatasetError(f"{label_dir}: unexpected folder {label_dir.name!r}; expected "
                               f"only the label folders 0 ... 9 from the N-MNIST archive")
        for f in sorted(label_dir.glob("*.bin")):
            _check_regular(f)
            files.append((int(label_dir.name), f))
    if not files:
        raise DatasetError(_nmnist_message(root, split, f"no <label>/*.bin files in {split_dir}"))
    files.sort(key=lambda lf: (lf[0], lf[1].name))
    ds = _bin_samples(((read_nmnist_events(path), label) for label, path in files), len(files),
                      NMNIST_SENSOR, recipe, NMNIST_STEP_US, "nmnist", split,
                      _N_CLASSES["nmnist"], lambda k: f"{files[k][1]}: not a valid N-MNIST "
                      f"recording", f"reading N-MNIST {split}")
    if len(ds.codes) == 0:
        raise DatasetError(f"{split_dir}: all {len(files)} N-MNIST {split} samples are empty (no "
                           f"events); the files are not N-MNIST recordings or were truncated")
    return ds


# ----------------------------------------------------------------------------------------------
# Locating and downloading files


def _check_choice(value: object, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hm2bp"


def _find(directory: Path, base: str) -> Path | None:
    for candidate in (directory / f"{base}.gz", directory / base):
        if candidate.is_file():
            return candidate
    return None


def _has_files(name: str, directory: Path) -> bool:
    if name == "nmnist":
        return (directory / "Train").is_dir() or (directory / "Test").is_dir()
    return any(_find(directory, b) for split in SPLITS for b in _IDX_FILES[name][split])


def resolve_data_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding (or to receive) the files of dataset ``name``.

    Base folder: ``data_dir``, else ``$HM2BP_DATA``, else the user cache. A base folder may be a
    root with per-dataset subfolders (mnist/, fashion-mnist/, emnist/, nmnist/) or hold the files
    directly; the subfolder wins when both have files, and downloads go to the subfolder.
    """
    name = _check_choice(name, DATASETS, "name")
    if name == "mnist-mini":
        raise ValueError("name: 'mnist-mini' is bundled with the package and has no data directory")
    sub = _SUBDIR[name]
    given = data_dir if data_dir is not None else os.environ.get("HM2BP_DATA") or None
    if given is None:
        return _cache_dir() / sub
    base = Path(given).expanduser()
    if not _has_files(name, base / sub) and _has_files(name, base):
        return base
    return base / sub


def _mirrors(name: str) -> list[str]:
    override = os.environ.get("HM2BP_MIRROR", "")
    urls = [u.strip() for u in override.split(",") if u.strip()] or MIRRORS[name]
    return [u if u.endswith("/") else u + "/" for u in urls]


def _missing_message(name: str, split: str, root: Path, missing: Sequence[str], why: str) -> str:
    files = ", ".join(f"{b}.gz" for b in missing)
    if name in _ARCHIVE:
        source = (f"extract them from the gzip/ folder of {_ARCHIVE[name]} "
                  f"({MIRRORS[name][0]}{_ARCHIVE[name]})")
    else:
        source = f"download them from {MIRRORS[name][0]}"
    return (f"{name} {split} files missing: {why}.\n"
            f"Put these files into {root}: {files} (gzip or uncompressed, with or without .gz) - "
            f"{source} - or point --data-dir / HM2BP_DATA at a folder that already has them.")


def _fetch(url: str, dest: Path, md5: str) -> None:
    """Download url to dest via a temp file in the same folder; rename only if the MD5 matches."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(url, headers={"User-Agent": "hm2bp"})
        with (os.fdopen(fd, "wb") as out,
              urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp):
            size = int(resp.headers.get("Content-Length") or 0)
            bar = _Progress(f"downloading {dest.name}", size, unit="MB")
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            bar.close()
        if digest.hexdigest() != md5:
            raise DatasetError(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5} "
                               f"(corrupt download or wrong file on the mirror)")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _extract(archive: Path, root: Path, bases: Sequence[str]) -> None:
    """Extract <base>.gz members (any folder inside the zip) atomically into root."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {Path(m).name: m for m in zf.namelist()}
            for base in bases:
                member = members.get(f"{base}.gz")
                if member is None:
                    raise DatasetError(f"{archive}: has no member {base}.gz; the archive is not "
                                       f"the expected one, delete it and download it again")
                fd, tmp = tempfile.mkstemp(prefix=f".{base}.gz.", suffix=".part", dir=root)
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(member) as src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.replace(tmp, root / f"{base}.gz")
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive}: not a valid zip archive ({exc}); delete it and download "
                           f"it again") from exc


def _download(name: str, split: str, root: Path, missing: Sequence[str]) -> None:
    archive = _ARCHIVE.get(name)
    remote = [archive] if archive else [f"{b}.gz" for b in missing]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(_missing_message(name, split, root, missing,
                                            f"cannot create {root} ({exc})")) from exc
    for fname in remote:
        if (root / fname).is_file():  # an archive left by an interrupted extraction
            continue
        errors = []
        for base_url in _mirrors(name):
            try:
                _fetch(base_url + fname, root / fname, MD5[name][fname])
                break
            except (OSError, DatasetError) as exc:  # URLError, HTTPError, timeouts are OSErrors
                errors.append(f"{base_url}{fname}: {exc}")
        else:
            raise DatasetError(_missing_message(name, split, root, missing,
                                                "download failed (" + "; ".join(errors) + ")"))
    if archive:
        _extract(root / archive, root, [b for s in SPLITS for b in _IDX_FILES[name][s]])
        (root / archive).unlink()


def _idx_paths(name: str, split: str, root: Path, download: bool) -> tuple[Path, Path]:
    bases = _IDX_FILES[name][split]
    missing = [b for b in bases if _find(root, b) is None]
    if missing:
        if not download:
            raise DatasetError(_missing_message(name, split, root, missing, "download=False"))
        _download(name, split, root, missing)
    found = [_find(root, b) for b in bases]
    if None in found:  # a mirror served the archive without the expected members
        raise DatasetError(_missing_message(name, split, root, missing, "not found after download"))
    return found[0], found[1]


def _make_image_dataset(name: str, split: str, images: np.ndarray, labels: np.ndarray,
                        images_src: object, labels_src: object) -> ImageDataset:
    if len(images) != len(labels):
        raise DatasetError(f"{images_src} has {len(images)} images but {labels_src} has "
                           f"{len(labels)} labels; the files do not belong together, download "
                           f"them again")
    if images.shape[1:] != _IMAGE_SHAPE:
        raise DatasetError(f"{images_src}: images are {images.shape[1]}x{images.shape[2]}, "
                           f"expected {_IMAGE_SHAPE[0]}x{_IMAGE_SHAPE[1]} for {name}")
    n_classes = _N_CLASSES[name]
    if labels.size and labels.max() >= n_classes:
        raise DatasetError(f"{labels_src}: label {labels.max()} out of range 0..{n_classes - 1} "
                           f"for {name}; wrong file for this dataset?")
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return ImageDataset(name, split, flat, labels.astype(np.int64), _IMAGE_SHAPE, n_classes)


def _load_mini(split: str) -> ImageDataset:
    if __package__:
        # chained joinpath: namespace packages on 3.11 accept one segment per call
        resource = importlib.resources.files(__package__).joinpath("_data").joinpath(
            "mnist_mini.npz")
    else:  # loaded as a bare file (the compiled package may not import yet)
        resource = Path(__file__).with_name("_data") / "mnist_mini.npz"
    try:
        blob = resource.read_bytes()
    except OSError as exc:
        raise DatasetError(f"bundled dataset {resource} is missing ({exc}); reinstall hm2bp or "
                           f"regenerate it with tools/make_mini_dataset.py") from exc
    with np.load(io.BytesIO(blob)) as npz:
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    src = f"{resource}[{split}]"
    return _make_image_dataset("mnist-mini", split, images, labels, src, src)


def load(name: str, split: str, data_dir: str | os.PathLike[str] | None = None,
         download: bool = True, nmnist_recipe: str = "authors") -> ImageDataset | EventDataset:
    """Load one split of a dataset; see the module docstring for where files come from.
    nmnist_recipe: how N-MNIST events become spikes, one of RECIPES (bin_events)."""
    name = _check_choice(name, DATASETS, "name")
    split = _check_choice(split, SPLITS, "split")
    if name == "mnist-mini":
        return _load_mini(split)
    root = resolve_data_dir(name, data_dir)
    if name == "nmnist":
        return _load_nmnist(root, split, nmnist_recipe)
    images_path, labels_path = _idx_paths(name, split, root, download)
    images = read_idx_images(images_path)
    if name == "emnist-balanced":  # EMNIST stores images transposed; make them upright like MNIST
        images = images.transpose(0, 2, 1)
    return _make_image_dataset(name, split, images, read_idx_labels(labels_path),
                               images_path, labels_path)


def check_classes(ds: ImageDataset | EventDataset) -> None:
    """A whole split must hold samples of every class of its dataset: fewer means other
    files (MNIST's 10 digits where EMNIST's 47 classes belong) or a damaged folder."""
    present = np.unique(ds.labels)
    if len(present) != ds.n_classes:
        shown = ", ".join(map(str, present[:12])) + (" ..." if len(present) > 12 else "")
        raise DatasetError(f"the {ds.split} split of {ds.name!r} has samples of "
                           f"{len(present)} classes ({shown or 'none'}), the dataset has "
                           f"{ds.n_classes}; check that --data-dir holds the right files")


def stratified_sample(labels: np.ndarray, n: int, seed: int | Sequence[int]) -> np.ndarray:
    """n indices drawn without replacement, every class in proportion to its share (largest
    remainders decide the rounding), reproducible from seed, in ascending order. Subsets of
    a class-sorted listing (N-MNIST folders) thereby keep all classes."""
    labels = np.asarray(labels)
    if not 0 <= n <= len(labels):
        raise ValueError(f"n: expected 0..{len(labels)}, got {n}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / max(len(labels), 1)
    take = np.floor(exact).astype(np.int64)
    take[np.argsort(take - exact, kind="stable")[:n - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
              for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------------------------
# Progress bar (tqdm is not a dependency)


class _Progress:
    """One-line stderr progress: live on a terminal, a single summary line otherwise."""

    def __init__(self, label: str, total: int, unit: str, live_only: bool = False) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.live = sys.stderr.isatty()
        self.enabled = self.live or not live_only
        self.done, self._last = 0, 0.0

    def _text(self) -> str:
        scale = 1e6 if self.unit == "MB" else 1
        done = f"{self.done / scale:.1f}" if scale > 1 else str(self.done)
        if self.total <= 0:
            return f"{self.label}: {done} {self.unit}"
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        total = f"{self.total / scale:.1f}" if scale > 1 else str(self.total)
        return f"{self.label}: [{bar:<30}] {frac:4.0%} {done}/{total} {self.unit}"

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and now - self._last >= 0.2:
            self._last = now
            sys.stderr.write("\r" + self._text())
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write(("\r" if self.live else "") + self._text() + "\n")
            sys.stderr.flush()
