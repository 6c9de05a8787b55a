"""Running core work off the GUI thread: one QRunnable per job, a separate QObject carrying its signals.

Worker threads never touch widgets: they only emit signals, which Qt queues to the GUI thread because the
signal object lives there. Progress from core already comes at most ~10 times a second (core's Meter), so
each event is passed on as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from regpack.errors import Cancelled
from regpack.progress import Progress


class TaskSignals(QObject):
    """Lives in the GUI thread; a Task emits these from its worker thread."""

    started = Signal()
    progress = Signal(object)  # regpack.progress.Progress
    finished = Signal(object)  # whatever the job returned
    failed = Signal(object)  # the exception
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled: the task can be dropped


class Task(QRunnable):
    """Runs ``job(progress=..., cancel=...)`` on the thread pool. Keep a reference until ``signals.done``."""

    def __init__(self, job: Callable[..., object]) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Python side owns it; Qt must not delete it under our feet
        self.job = job
        self.signals = TaskSignals()
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def _progress(self, progress: Progress) -> None:
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
