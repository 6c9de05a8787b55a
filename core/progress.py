"""One progress model for the CLI and the window: events, a thread-safe counter that reports them at a bounded
rate, and a tracker that turns them into rate and time left."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from regpack.units import human_duration, human_rate, human_size

UPDATE_INTERVAL = 0.1  # seconds between progress events: about 10 updates a second, enough for a bar or a window

Clock = Callable[[], float]


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
    """Counts work done on many threads; calls the callback at most once per ``interval`` (and at the end)."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        total_bytes: int,
        total_files: int,
        message: str,
        interval: float = UPDATE_INTERVAL,
        clock: Clock = time.monotonic,
    ) -> None:
        self.callback = callback
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.message = message
        self.done_bytes = 0
        self.done_files = 0
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")
        self._lock = threading.Lock()

    def add(self, nbytes: int, nfiles: int = 1) -> None:
        with self._lock:
            self.done_bytes += nbytes
            self.done_files += nfiles
            if self.callback is None:
                return
            now = self._clock()
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


@dataclass(frozen=True, slots=True)
class Estimate:
    """A progress event with the recent rate (bytes a second) and the time left (None: unknown)."""

    progress: Progress
    rate: float
    seconds_left: float | None

    @property
    def fraction(self) -> float:
        """0..1 by bytes, or -1 when the total is unknown."""
        p = self.progress
        return min(1.0, p.done_bytes / p.total_bytes) if p.total_bytes > 0 else -1.0

    def text(self, unit: str = "files") -> str:
        """'12.0 MiB of 40.0 MiB · 5 of 9 files · 5.0 MiB/s · 6 seconds left' (no bytes when only files are counted)."""
        p = self.progress
        done = human_size(p.done_bytes)
        parts = []
        if p.total_bytes > 0:
            parts.append(f"{done} of {human_size(p.total_bytes)}")
        elif p.done_bytes or not p.total_files:  # counting only images, say: no "0 Bytes"
            parts.append(done)
        if p.total_files:
            parts.append(f"{p.done_files} of {p.total_files} {unit}")
        if self.rate > 0:
            parts.append(human_rate(self.rate))
        if self.seconds_left is not None:
            parts.append(f"{human_duration(self.seconds_left)} left")
        return " · ".join(parts)


class Tracker:
    """Turns progress events into rate and time left.

    The rate is measured over the last few seconds, so a burst of hard links (which copy no data) does not
    make the estimate jump forever after; and over at least half a second, so work done before the phase's
    first event (verify's blobs hashed while the bundle was read) is not shown as terabytes a second.
    """

    WINDOW = 5.0
    MIN_SPAN = 0.5

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque([(clock(), 0)])

    def update(self, progress: Progress) -> Estimate:
        now = self.clock()
        done, total = progress.done_bytes, progress.total_bytes
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.WINDOW:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        rate = (done - d0) / (now - t0) if now - t0 >= self.MIN_SPAN else 0.0
        left = (total - done) / rate if rate > 0 and total > done else None
        return Estimate(progress, rate, left)
