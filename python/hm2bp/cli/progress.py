"""Progress of a training run: a bar redrawn in place on a terminal (Progress), or, for output
that is not a terminal (a log file, a batch scheduler's output), plain lines (ProgressLines):
one line every `interval` seconds with the epoch's progress, the training speed and the time
left in the epoch and in the run.

    epoch 3/200  4096/60000 samples  612.4 samples/s  epoch eta 1m31s  run eta 5h02m

The run's estimate counts the epochs still to come at the duration of the last completed one
(training plus evaluation), or, before any epoch has completed, at the current speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["DEFAULT_INTERVAL", "Progress", "ProgressLines", "format_duration"]

DEFAULT_INTERVAL = 30.0  # seconds between two lines


def format_duration(seconds: float) -> str:
    """12s, 4m05s, 3h07m, 2d04h."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class ProgressLines:
    """Call with (epoch, done, total, epochs) as Trainer's on_batch reports it (0-based epoch,
    done = 0 when an epoch starts); writes a line when `interval` seconds have passed since the
    last one (or since the run started)."""

    def __init__(self, stream: TextIO, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.stream, self.interval, self.clock = stream, interval, clock
        self._epoch = -1
        self._epoch_start = self._last_line = 0.0
        self._last_epoch_seconds: float | None = None

    def __call__(self, epoch: int, done: int, total: int, epochs: int) -> None:
        now = self.clock()
        if epoch != self._epoch or done == 0:
            if self._epoch >= 0 and epoch == self._epoch + 1:
                self._last_epoch_seconds = now - self._epoch_start
            if self._epoch < 0:
                self._last_line = now  # the first line comes one interval after the start
            self._epoch, self._epoch_start = epoch, now
            return
        if now - self._last_line < self.interval:
            return
        self._last_line = now
        elapsed = max(now - self._epoch_start, 1e-9)
        rate = done / elapsed  # done > 0 here
        epoch_left = (total - done) / rate
        per_epoch = self._last_epoch_seconds if self._last_epoch_seconds is not None else total / rate
        run_left = epoch_left + (epochs - epoch - 1) * per_epoch
        self.stream.write(
            f"epoch {epoch + 1}/{epochs}  {done}/{total} samples  {rate:.1f} samples/s  "
            f"epoch eta {format_duration(epoch_left)}  run eta {format_duration(run_left)}\n")
        self.stream.flush()


class Progress:
    """A one-line progress bar on a terminal stream, redrawn at most ``max_hz`` times/s."""

    def __init__(self, stream: TextIO, max_hz: float = 10.0, width: int = 30):
        self.stream, self.width = stream, width
        self.interval = 1.0 / max_hz
        self._epoch = -1
        self._start = self._last = 0.0
        self._shown = False

    def __call__(self, epoch: int, done: int, total: int, epochs: int) -> None:
        now = time.monotonic()
        if epoch != self._epoch or done == 0:
            self._epoch, self._start, self._last = epoch, now, now
            return
        if now - self._last < self.interval and done < total:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = self.width * done // total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(
            f"\repoch {epoch + 1}/{epochs} [{bar}] {done}/{total} "
            f"{rate:8.1f} samples/s  eta {eta:5.0f}s "
        )
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * (self.width + 70) + "\r")
            self.stream.flush()
            self._shown = False
