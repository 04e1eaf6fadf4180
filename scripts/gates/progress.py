"""A dependency-free progress line for long jobs (a bar on a TTY, a line per 10% otherwise)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None):
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._last_decile = -1

    def update(self, n: int = 1, note: str = "") -> None:
        with self._lock:
            self.done += n
            elapsed = time.monotonic() - self.t0
            frac = self.done / self.total
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            text = (
                f"[{self.label}] {self.done}/{self.total} ({frac:4.0%}) "
                f"{elapsed:6.1f} s elapsed, ~{eta:5.0f} s left {note}"
            )
            if self.tty:
                bar = "#" * int(frac * 30)
                self.stream.write(f"\r{bar:<30} {text}")
                if self.done >= self.total:
                    self.stream.write("\n")
            else:
                decile = int(frac * 10)
                if decile != self._last_decile or self.done >= self.total:
                    self._last_decile = decile
                    self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.tty and self.done < self.total:
                self.stream.write("\n")
                self.stream.flush()
