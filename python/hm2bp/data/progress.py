"""The progress line of reading and downloading data (tqdm is not a dependency)."""

from __future__ import annotations

import sys
import time

__all__ = ["LoadProgress"]


class LoadProgress:
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
