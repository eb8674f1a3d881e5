"""A run's per-epoch metrics: metrics.jsonl (the record, line-atomic), metrics.csv beside it and,
optionally, TensorBoard scalars in RUN_DIR/tensorboard/.

metrics.jsonl is the source of truth: on resume the trainer keeps its lines up to the
checkpoint's epoch and MetricsLog.rewrite() rebuilds metrics.csv from them, so neither file
holds an epoch twice. TensorBoard's event files are append-only; a resumed writer first logs a
restart at the next epoch, after which TensorBoard discards the older files' events from that
epoch on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import safe_io
from . import runstate

__all__ = ["CSV_FILE", "JSONL_FILE", "LOGGERS", "TENSORBOARD_DIR", "MetricsLog", "TensorBoardError",
           "csv_columns", "csv_row", "require_tensorboard"]

JSONL_FILE = "metrics.jsonl"
CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
LOGGERS = ("tensorboard",)  # optional loggers (--log); jsonl and csv are always written


class TensorBoardError(RuntimeError):
    """--log tensorboard without the tensorboard package."""


def require_tensorboard() -> Any:
    """tensorboard's event-file writer module, or TensorBoardError saying how to get it."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer import event_file_writer
    except ImportError:
        raise TensorBoardError("--log tensorboard needs the tensorboard package, which is not "
                               "installed (pip install tensorboard)") from None
    return event_file_writer, event_pb2, summary_pb2


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """One value per column: a per-layer list becomes key_1, key_2, ... (layer 1 first)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            flat.update({f"{key}_{k + 1}": v for k, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


def csv_columns(record: dict[str, Any]) -> list[str]:
    return list(_flat(record))


def csv_row(record: dict[str, Any], columns: Sequence[str]) -> str:
    """One CSV line: floats as repr (round-trips), None as an empty field."""
    flat = _flat(record)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        ["" if flat.get(c) is None else repr(flat[c]) if isinstance(flat[c], float) else flat[c]
         for c in columns])
    return buf.getvalue()


class _TensorBoard:
    """Scalars of each epoch record under RUN_DIR/tensorboard (tensorboard's own event-file
    writer: no TensorFlow or torch needed)."""

    def __init__(self, directory: Path, first_epoch: int):
        event_file_writer, self._event_pb2, self._summary_pb2 = require_tensorboard()
        directory.mkdir(exist_ok=True)
        self._writer = event_file_writer.EventFileWriter(str(directory))
        # A restart at first_epoch: TensorBoard drops the events of earlier files from there on.
        self._writer.add_event(self._event_pb2.Event(
            step=first_epoch, wall_time=time.time(),
            session_log=self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)))

    def write(self, record: dict[str, Any]) -> None:
        values = [self._summary_pb2.Summary.Value(tag=_tag(key), simple_value=float(value))
                  for key, value in _flat(record).items()
                  if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value)]
        self._writer.add_event(self._event_pb2.Event(
            step=record["epoch"], wall_time=time.time(), summary=self._summary_pb2.Summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _tag(key: str) -> str:
    """TensorBoard tags grouped by kind: accuracy/test, loss/train, firing_rate/1, ..."""
    for group in ("firing_rate", "test_firing_rate", "accuracy", "loss"):
        if key.startswith(group + "_"):
            return f"{group}/{key[len(group) + 1:]}"
    for group in ("accuracy", "loss"):
        if key.endswith("_" + group):
            return f"{group}/{key[:-len(group) - 1]}"
    return f"run/{key}"


class MetricsLog:
    """The metric files of one run directory; loggers: a subset of LOGGERS."""

    def __init__(self, run_dir: Path, loggers: Sequence[str] = (),
                 guard: Callable[[], None] | None = None):
        """guard: called before each file is written (the trainer's check that the run
        directory is still the one it locked)."""
        unknown = sorted(set(loggers) - set(LOGGERS))
        if unknown:
            raise ValueError(f"unknown logger {unknown[0]!r}; known: {', '.join(LOGGERS)}")
        if "tensorboard" in loggers:
            require_tensorboard()  # refuse before training starts, not after the first epoch
        self.run_dir, self.loggers = Path(run_dir), tuple(loggers)
        self._guard = guard or (lambda: None)
        self._tensorboard: _TensorBoard | None = None

    def open(self, epoch: int) -> None:
        """Start the optional loggers for a fit() that continues after `epoch` epochs."""
        if "tensorboard" in self.loggers and self._tensorboard is None:
            self._tensorboard = _TensorBoard(self.run_dir / TENSORBOARD_DIR, epoch + 1)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def append(self, history: Sequence[dict[str, Any]]) -> None:
        """Log history[-1], the epoch just completed (history: all records of the run)."""
        record = history[-1]
        self._guard()
        runstate.append_line(self.run_dir / JSONL_FILE, record)
        path, columns = self.run_dir / CSV_FILE, csv_columns(record)
        self._guard()
        if self._csv_header(path) == columns:
            runstate.append_text(path, csv_row(record, columns))
        else:  # a new file, or one of an older run with other columns
            self._write_csv(history)
        if self._tensorboard is not None:
            self._tensorboard.write(record)

    def rewrite(self, history: Sequence[dict[str, Any]]) -> None:
        """Replace both files by these records (resume: the epochs up to the checkpoint)."""
        runstate.atomic_write(self.run_dir / JSONL_FILE, lambda fh: fh.write(
            "".join(json.dumps(m) + "\n" for m in history).encode()))
        self._write_csv(history)

    def _write_csv(self, history: Sequence[dict[str, Any]]) -> None:
        path = self.run_dir / CSV_FILE
        if not history:
            path.unlink(missing_ok=True)
            return
        columns = csv_columns(history[-1])
        text = ",".join(columns) + "\n" + "".join(csv_row(m, columns) for m in history)
        runstate.atomic_write(path, lambda fh: fh.write(text.encode()))

    @staticmethod
    def _csv_header(path: Path) -> list[str] | None:
        try:  # the header line only; a special file or a huge one is not ours to read
            with safe_io.open_regular(path, 1 << 40, what="metrics file") as fh:
                line = fh.readline(1 << 16).decode(errors="replace")
            return next(csv.reader([line]), None)
        except (OSError, safe_io.FileRefusedError):
            return None
