"""Progress events for long jobs, and a thread-safe counter that reports them at a bounded rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    done_bytes: int
    total_bytes: int
    done_files: int
    total_files: int
    message: str = ""

    @property
    def fraction(self) -> float:
        if self.total_bytes:
            return min(1.0, self.done_bytes / self.total_bytes)
        return min(1.0, self.done_files / self.total_files) if self.total_files else 1.0


ProgressCallback = Callable[[Progress], None]


class Meter:
    """Counts work done on many threads; calls the callback at most ``rate`` times a second (and at the end)."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        total_bytes: int,
        total_files: int,
        message: str,
        rate: float = 20.0,
    ) -> None:
        self.callback = callback
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.message = message
        self.done_bytes = 0
        self.done_files = 0
        self._interval = 1.0 / rate
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, nbytes: int, nfiles: int = 1) -> None:
        with self._lock:
            self.done_bytes += nbytes
            self.done_files += nfiles
            if self.callback is None:
                return
            now = time.monotonic()
            if now - self._last < self._interval:
                return
            self._last = now
            event = self.snapshot()
        self.callback(event)

    def snapshot(self) -> Progress:
        return Progress(self.done_bytes, self.total_bytes, self.done_files, self.total_files, self.message)

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.snapshot())
