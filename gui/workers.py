"""Running core work off the GUI thread: one QRunnable per job, a separate QObject carrying its signals.

Worker threads never touch widgets: they only emit signals, which Qt queues to the GUI thread because the
signal object lives there. Progress from core (up to ~20 calls a second, from several engine threads) is
thinned to about 10 updates a second before it is emitted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from regpack.errors import Cancelled
from regpack.gui.sizes import human_duration, human_rate, human_size

UPDATE_INTERVAL = 0.1  # seconds between progress signals: about 10 UI updates a second


class ProgressLike(Protocol):
    @property
    def done_bytes(self) -> int: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def done_files(self) -> int: ...
    @property
    def total_files(self) -> int: ...
    @property
    def message(self) -> str: ...


class Throttle:
    """Lets a call through at most once per ``interval`` seconds; the last value is kept for a final flush."""

    def __init__(self, interval: float = UPDATE_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.pending: Any = None

    def offer(self, value: Any) -> bool:
        """True when ``value`` should be passed on now; otherwise it is remembered as pending."""
        with self._lock:
            now = self.clock()
            if now - self._last >= self.interval:
                self._last = now
                self.pending = None
                return True
            self.pending = value
            return False

    def take_pending(self) -> Any:
        with self._lock:
            value, self.pending = self.pending, None
            return value


class TaskSignals(QObject):
    """Lives in the GUI thread; a Task emits these from its worker thread."""

    started = Signal()
    progress = Signal(object)  # core.jobs.Progress
    finished = Signal(object)  # whatever the job returned
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled: the task can be dropped


class Task(QRunnable):
    """Runs ``job(progress=..., cancel=...)`` on the thread pool. Keep a reference until ``signals.done``."""

    def __init__(self, job: Callable[..., Any], *, interval: float = UPDATE_INTERVAL) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Python side owns it; Qt must not delete it under our feet
        self.job = job
        self.signals = TaskSignals()
        self.cancel_event = threading.Event()
        self._throttle = Throttle(interval)

    def cancel(self) -> None:
        self.cancel_event.set()

    def _progress(self, progress: Any) -> None:
        if self._throttle.offer(progress):
            self.signals.progress.emit(progress)

    def run(self) -> None:
        self.signals.started.emit()
        try:
            result = self.job(progress=self._progress, cancel=self.cancel_event)
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as exc:  # every failure reaches the window's one error dialog
            self.signals.failed.emit(exc)
        else:
            last = self._throttle.take_pending()
            if last is not None:
                self.signals.progress.emit(last)
            self.signals.finished.emit(result)
        self.signals.done.emit()


class TaskKeeper:
    """Holds running tasks so neither the runnable nor its signal object is collected while it runs."""

    def __init__(self, pool: QThreadPool | None = None) -> None:
        self.pool = pool or QThreadPool.globalInstance()
        self.running: set[Task] = set()

    def start(self, task: Task) -> Task:
        self.running.add(task)
        task.signals.done.connect(lambda: self.running.discard(task))
        self.pool.start(task)
        return task

    def cancel_all(self) -> None:
        for task in list(self.running):
            task.cancel()

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)


@dataclass(frozen=True, slots=True)
class ProgressText:
    fraction: float  # 0..1, or -1 when the total is unknown
    text: str  # "12.0 MiB of 40.0 MiB · 5.0 MiB/s · 6 seconds left"


class ProgressTracker:
    """Turns core Progress events into what the progress bar shows: bytes, rate and time left.

    The rate is measured over the last few seconds so a burst of hard links (which cost no data copy) does
    not make the estimate jump forever after.
    """

    WINDOW = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def update(self, progress: ProgressLike) -> ProgressText:
        now = self.clock()
        done, total = progress.done_bytes, progress.total_bytes
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.WINDOW:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        parts = [f"{human_size(done)} of {human_size(total)}" if total > 0 else human_size(done)]
        if progress.total_files:
            parts.append(f"{progress.done_files} of {progress.total_files} files")
        if rate > 0:
            parts.append(human_rate(rate))
            if total > done:
                parts.append(f"{human_duration((total - done) / rate)} left")
        fraction = min(1.0, done / total) if total > 0 else -1.0
        return ProgressText(fraction, " · ".join(parts))
