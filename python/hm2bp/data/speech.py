"""Spoken-letter samples in the authors' format (SPEC_SPEECH 1): ``.dat`` cochleagrams in the
folder layout of their TI46 alphabet (``ti_alpha``), or of the open stand-in that
``hm2bp-data spoken-letters`` writes in the same layout::

    DATA_DIR/train/0/*.dat ... DATA_DIR/train/25/*.dat     label = folder name, 0 = 'A'
    DATA_DIR/test/0/*.dat  ... DATA_DIR/test/25/*.dat

A ``.dat`` file is text, one line per cochlear channel (78), one value per frame, all lines of
equal length. Each sample is BSA-encoded once at load (SPEC_SPEECH 1.4, 2); the spike trains
are kept whole (spike times 1..10 * frames) and cut at the run's T when a batch is made.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import safe_io
from ..model.bsa import encode_bsa
from .datasets import N_CLASSES, SPEECH_SENSOR, DatasetError, EventDataset, label_folders
from .progress import LoadProgress

__all__ = ["SPEECH_CHANNELS", "SPEECH_CLASSES", "SpeechFileError", "encode_split", "load_speech",
           "read_speech", "speech_files", "spike_codes"]

SPEECH_CHANNELS = SPEECH_SENSOR[0]  # Lyon's passive ear at 12.5 kHz, earQ 8, step factor 0.25
SPEECH_CLASSES = N_CLASSES["spoken-letters"]  # the letters A..Z
STEP_ANALOG = 10      # BSA holds each frame for 10 steps: spike times 1..10 * frames
# A .dat sample is 77 lines of a few hundred frames (about 100 KiB); far beyond any real one.
MAX_DAT_BYTES = 64 * safe_io.MiB


class SpeechFileError(DatasetError):
    """A .dat file or a speech folder is malformed; the message names it and what is wrong."""


def read_speech(path: str | os.PathLike[str], channels: int = SPEECH_CHANNELS) -> np.ndarray:
    """One sample as float32 (channels, frames), parsed as the authors' reader parses it (one
    line per channel, whitespace-separated numbers read as float). Raises SpeechFileError,
    naming the file and line, for a blank line (the authors' GPU reader would take it for a
    channel), a token that is not a finite number, lines of unequal length, or a channel
    count other than `channels`."""
    path = Path(path)
    try:
        raw = safe_io.read_bytes(path, MAX_DAT_BYTES, what="speech .dat file", error=SpeechFileError)
    except OSError as exc:
        raise SpeechFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SpeechFileError(f"{path}: not a text file of numbers (byte {exc.start} is not "
                              f"ASCII)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it starts none
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise SpeechFileError(f"{path}: line {n} is blank; every line must hold one channel's "
                                  f"values (the authors' reader counts a blank line as a channel)")
    if len(lines) != channels:
        raise SpeechFileError(f"{path}: {len(lines)} lines, expected {channels} (one per cochlear "
                              f"channel)")
    rows = []
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        if rows and len(tokens) != len(rows[0]):
            raise SpeechFileError(f"{path}: line {n} has {len(tokens)} values, line 1 has "
                                  f"{len(rows[0])}; all channels need the same number of frames")
        try:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
                row = np.array([float(t) for t in tokens], dtype=np.float32)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise SpeechFileError(f"{path}: line {n}: {bad[:40]!r} is not a number") from None
        if not np.isfinite(row).all():
            k = int(np.flatnonzero(~np.isfinite(row))[0])
            raise SpeechFileError(f"{path}: line {n}, value {k + 1}: {tokens[k][:40]!r} is not a "
                                  f"finite float32 number")
        rows.append(row)
    return np.stack(rows)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def speech_files(split_dir: str | os.PathLike[str],
                 n_classes: int = SPEECH_CLASSES) -> list[tuple[int, Path]]:
    """(label, path) of every sample of one split folder, label-major and by file path, all of
    them (the authors' reader walks in directory order and stops at a configured count;
    SPEC_SPEECH 7.1). Label folders are 0 .. n_classes-1; a label folder may hold subfolders,
    whose files take its label. Hidden entries and loose files beside the label folders are
    skipped; any other folder name, or a file in a label folder that is not a .dat, is refused."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise SpeechFileError(f"{split_dir}: no such folder (expected label folders 0 ... "
                              f"{n_classes - 1} holding .dat files)")
    files: list[tuple[int, Path]] = []
    for label, label_dir in label_folders(split_dir, n_classes, "holding .dat files"):
        for root, dirs, names_here in os.walk(label_dir):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names_here):
                if name.startswith("."):
                    continue
                path = Path(root) / name
                if path.suffix != ".dat":
                    raise SpeechFileError(f"{path}: not a .dat file; label folders hold only "
                                          f"samples")
                files.append((label, path))
    if not files:
        raise SpeechFileError(f"{split_dir}: no samples (expected label folders 0 ... "
                              f"{n_classes - 1} holding .dat files)")
    files.sort(key=lambda lf: (lf[0], str(lf[1].relative_to(split_dir))))
    return files


def spike_codes(analog: np.ndarray, encode: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """BSA spikes of one sample (channels, frames) as sorted int32 codes step * channels +
    channel, every spike kept (times 1 .. STEP_ANALOG * frames). encode(analog, T) -> bool
    (T, channels) is the BSA encoder (hm2bp.encode_bsa)."""
    channels, frames = analog.shape
    steps = STEP_ANALOG * frames + 1
    if steps * channels > np.iinfo(np.int32).max:
        raise SpeechFileError(f"a sample of {frames} frames is too long (at most "
                              f"{math.floor(np.iinfo(np.int32).max / channels / STEP_ANALOG) - 1})")
    spikes = encode(analog, steps)
    return np.flatnonzero(spikes.reshape(-1)).astype(np.int32)


def encode_split(files: list[tuple[int, Path]], encode: Callable[[np.ndarray, int], np.ndarray],
                 channels: int = SPEECH_CHANNELS,
                 progress: Callable[[int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels int64 (N,), codes int32, offsets int64 (N + 1,)) of the samples `files` (as
    speech_files lists them), read and BSA-encoded once (spike_codes): sample k owns
    codes[offsets[k]:offsets[k + 1]]. progress(1) is called after each sample."""
    parts = []
    for _, path in files:
        parts.append(spike_codes(read_speech(path, channels), encode))
        if progress is not None:
            progress(1)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in parts], out=offsets[1:])
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return np.array([label for label, _ in files], dtype=np.int64), codes, offsets


def load_speech(root: Path, split: str) -> EventDataset:
    """The `split` of a spoken-letter folder in the authors' layout (root/<split>/<label>/*.dat),
    every sample BSA-encoded once (sensor SPEECH_SENSOR: the channels)."""
    if not (root / split).is_dir():
        raise DatasetError(f"spoken-letters {split} files missing: {root / split} does not exist. "
                           f"Make the open stand-in with `hm2bp-data spoken-letters DIR` (or bring "
                           f"TI46's alphabet as DIR/train/<label>/*.dat, DIR/test/...) and point "
                           f"--data-dir / HM2BP_DATA at DIR.")
    files = speech_files(root / split)
    bar = LoadProgress(f"reading spoken-letters {split}", len(files), unit="samples", live_only=True)
    # one sample per call: the engine's threads would only wait on each other at this size
    labels, codes, offsets = encode_split(files, lambda a, T: encode_bsa(a, T, threads=1),
                                          progress=bar.update)
    bar.close()
    return EventDataset("spoken-letters", split, labels, codes, offsets, SPEECH_CLASSES, SPEECH_SENSOR)
