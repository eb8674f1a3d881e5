"""What the datasets are: their names, splits and class counts, N-MNIST's sensor, and the two
dataset objects every loader returns (ImageDataset, EventDataset), with the class-stratified
sampling that takes subsets of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "N_CLASSES", "NMNIST_INPUTS", "NMNIST_SENSOR", "NMNIST_SIZE", "NMNIST_STEP_US",
           "SPEECH_SENSOR", "SPLITS", "DatasetError", "EventDataset", "ImageDataset", "check_choice", "check_classes",
           "label_folders", "stratified_sample"]

DATASETS = ("mnist", "fashion-mnist", "emnist-balanced", "nmnist", "mnist-mini", "spoken-letters")
SPLITS = ("train", "test")

# N-MNIST binning (SPEC 2): 34x34 sensor, two polarities, 600 us per time step.
NMNIST_SIZE = 34
NMNIST_INPUTS = 2 * NMNIST_SIZE * NMNIST_SIZE
NMNIST_STEP_US = 600
# (width, height, polarities): the order of tonic's sensor_size; x < width, y < height.
NMNIST_SENSOR = (NMNIST_SIZE, NMNIST_SIZE, 2)
N_CLASSES = {"mnist": 10, "fashion-mnist": 10, "emnist-balanced": 47, "nmnist": 10, "mnist-mini": 10,
             "spoken-letters": 26}
# Spoken letters (TI46's alphabet or its stand-in): 78 cochlear channels as a (channels, 1, 1) sensor.
SPEECH_SENSOR = (78, 1, 1)


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or not downloadable; the message says what to do."""



def check_choice(value: object, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def label_folders(split_dir: Path, n_classes: int, source: str) -> list[tuple[int, Path]]:
    """(label, folder) of the label folders 0 .. n_classes-1 of a split folder, by name. Hidden
    entries and loose files (a README, an archive) are not samples and are skipped; any other
    folder is refused ("05" or "26" must not become a class). source names where the folders
    come from, for the message."""
    names = [str(k) for k in range(n_classes)]
    out = []
    for folder in sorted(split_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        if folder.name not in names:
            raise DatasetError(f"{folder}: unexpected folder {folder.name!r}; expected only the "
                               f"label folders 0 ... {n_classes - 1} {source}")
        out.append((int(folder.name), folder))
    return out


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
    batch. sensor_size is (width, height, polarities); n_inputs is their product (spoken
    letters: SPEECH_SENSOR, the 78 cochlear channels).
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
