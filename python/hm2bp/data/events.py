"""Event data: N-MNIST's .bin files and event recordings as users have them (tonic datasets,
structured or (N, 4) arrays), all binned into spike codes by one function, bin_events (SPEC 2).
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_io
from .datasets import N_CLASSES, NMNIST_SENSOR, NMNIST_STEP_US, DatasetError, EventDataset, check_choice, label_folders
from .progress import LoadProgress

__all__ = ["EVENT_FIELDS", "RECIPES", "bin_events", "event_fields", "from_events", "from_frames",
           "load_nmnist", "read_nmnist_events", "stabilise_saccades"]

# "authors": N-MNIST's saccades undone as in the authors' converter (SPEC 2 step 1);
# "raw": events where the sensor saw them. Both use SPEC 2's index and step formula.
RECIPES = ("authors", "raw")
EVENT_FIELDS = ("x", "y", "t", "p")  # tonic's field names
_SACCADE_US = 105_000  # each of N-MNIST's three saccades lasts 105 ms
# The largest N-MNIST recording has about 7,000 events (35 KB); a .bin file of more than 1 MiB
# is not one, and is refused before it is read.
MAX_NMNIST_BYTES = 1 << 20
_NMNIST_PAGES = ("https://www.garrickorchard.com/datasets/n-mnist",
                 "https://data.mendeley.com/datasets/468j46mzdv/1")


def read_nmnist_events(path: str | os.PathLike[str]) -> np.ndarray:
    """Events of one N-MNIST .bin file as a structured array with int64 fields x, y, t (us), p,
    tonic's layout, so that the native files and tonic's take the same path (bin_events)."""
    path = Path(path)
    raw = np.frombuffer(safe_io.read_bytes(path, MAX_NMNIST_BYTES, what="N-MNIST recording",
                                           error=DatasetError), dtype=np.uint8)
    if raw.size == 0:
        raise DatasetError(f"{path}: the file is empty (0 bytes); an N-MNIST recording holds "
                           f"events of 5 bytes each: truncated or not an N-MNIST .bin file")
    if raw.size % 5:
        raise DatasetError(f"{path}: {raw.size} bytes is not a multiple of 5 (N-MNIST events are "
                           f"5 bytes each); the file is truncated or not an N-MNIST .bin file")
    ev = raw.reshape(-1, 5)  # column by column: a few bytes of temporaries per event
    events = np.empty(len(ev), dtype=[(f, np.int64) for f in EVENT_FIELDS])
    events["x"], events["y"] = ev[:, 0], ev[:, 1]  # checked against the sensor by bin_events
    events["p"] = ev[:, 2] >> 7
    events["t"] = ((ev[:, 2].astype(np.int64) & 0x7F) << 16) | (ev[:, 3].astype(np.int64) << 8) \
        | ev[:, 4]
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
    recipe = check_choice(recipe, RECIPES, "recipe")
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


def from_frames(frames: Any) -> np.ndarray:
    """tonic ``ToFrame`` frames as hm2bp spikes: one sample (T, p, y, x) or a batch
    (B, T, p, y, x) -> bool (B, T, p * width * height) with input ``(p * width + x) * height + y``.

    That is hm2bp's own event order (SPEC 2, N-MNIST: ``p*34*34 + x*34 + y``, x-major), so a
    network trained on hm2bp's N-MNIST data reads tonic's frames the same way; a plain reshape of
    tonic's (p, y, x) frames would hand it every digit transposed. As a spatial input it is the
    shape (p, width, height): layers see x as the row. A frame counting several events of one
    pixel is one spike (hm2bp's binning too)."""
    arr = np.asarray(frames)
    if arr.ndim == 4:
        arr = arr[None]
    if arr.ndim != 5:
        raise DatasetError(f"frames: expected tonic's (T, p, y, x) or a batch (B, T, p, y, x), got shape {arr.shape}")
    B, T, p, h, w = arr.shape
    return np.ascontiguousarray(np.swapaxes(arr, 3, 4) != 0).reshape(B, T, p * w * h)


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
    bar = LoadProgress(progress, count or 0, unit="samples", live_only=True)
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


def load_nmnist(root: Path, split: str, recipe: str) -> EventDataset:
    recipe = check_choice(recipe, RECIPES, "nmnist_recipe")
    split_dir = root / split.capitalize()
    if not split_dir.is_dir():
        raise DatasetError(_nmnist_message(root, split, f"{split_dir} does not exist"))
    files: list[tuple[int, Path]] = []
    for label, label_dir in label_folders(split_dir, N_CLASSES["nmnist"], "from the N-MNIST archive"):
        for f in sorted(label_dir.glob("*.bin")):
            files.append((label, f))
    if not files:
        raise DatasetError(_nmnist_message(root, split, f"no <label>/*.bin files in {split_dir}"))
    files.sort(key=lambda lf: (lf[0], lf[1].name))
    ds = _bin_samples(((read_nmnist_events(path), label) for label, path in files), len(files),
                      NMNIST_SENSOR, recipe, NMNIST_STEP_US, "nmnist", split,
                      N_CLASSES["nmnist"], lambda k: f"{files[k][1]}: not a valid N-MNIST "
                      f"recording", f"reading N-MNIST {split}")
    if len(ds.codes) == 0:
        raise DatasetError(f"{split_dir}: all {len(files)} N-MNIST {split} samples are empty (no "
                           f"events); the files are not N-MNIST recordings or were truncated")
    return ds
