"""The window's job controller: one place that checks, starts, tracks, cancels and reports long work.

A job is a core call (``run(progress=..., cancel=...)``) with a kind and a title. The controller runs one at
a time on the thread pool, turns core Progress into what the progress panel shows, and reports the outcome
through its signals; views only connect to those. New kinds of work add a ``JobKind`` and a dialog, not
weight in the window.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from regpack.engine import CLEANING_UP
from regpack.errors import printable
from regpack.gui.sizes import human_size
from regpack.gui.workers import Task, TaskKeeper
from regpack.progress import Progress, Tracker


class JobKind(StrEnum):
    LOAD = "load"
    PACK = "pack"
    UNPACK = "unpack"
    VERIFY = "verify"
    PUSH = "push"
    PULL = "pull"
    COMPARE = "compare"  # reading a base to compare the open bundle with

    @property
    def label(self) -> str:
        """The word a title or an error dialog uses: "Pack failed", "Verify cancelled"."""
        return "Open" if self is JobKind.LOAD else self.value.capitalize()

    @property
    def writes(self) -> bool:
        """True for kinds that write a destination (a cancel leaves nothing there)."""
        return self in (JobKind.PACK, JobKind.UNPACK)


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    title: str  # "Packing into release-packed"
    run: Callable[..., Any]  # run(progress=..., cancel=...) -> result; raises Cancelled when cancelled
    cancellable: bool = True
    dest: Path | None = None  # what the job writes, when it writes something
    on_result: Callable[[Any], None] | None = None  # called with the result before ``finished`` is emitted
    # A job that writes nothing (reading a bundle): Cancel reports it cancelled at once and frees the window;
    # its thread stops by itself at the next check and whatever it returns is dropped.
    detach_on_cancel: bool = False


def _existing_ancestor(path: Path) -> Path:
    here = path
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def needed_bytes(source: Path, dest: Path, total_bytes: int, *, copy: bool) -> int:
    """Bytes a pack/unpack will need on ``dest``'s file system: all of them when copying or crossing file
    systems; none (beyond folders and small files) when hard links can be made."""
    if copy:
        return total_bytes
    try:
        same = os.stat(source).st_dev == os.stat(_existing_ancestor(dest)).st_dev
    except OSError:
        return total_bytes
    return 0 if same else total_bytes


def prepare(dest: Path, need: int = 0) -> str:
    """Check ``dest`` before anything starts: '' when the job can write there, else why not (naming it)."""
    where = printable(dest)
    if dest.is_symlink():
        return f"{where} is a symbolic link; choose the real folder."
    if dest.exists() and not dest.is_dir():
        return f"{where} exists and is not a folder."
    parent = _existing_ancestor(dest.parent if not dest.exists() else dest)
    if not parent.is_dir():
        return f"{printable(parent)} is not a folder."
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"Cannot write in {printable(parent)}: permission denied."
    if need > 0:
        try:
            free = shutil.disk_usage(parent).free
        except OSError as e:
            return f"Cannot read the free space of {printable(parent)}: {e.strerror or e}."
        if free < need:
            return (
                f"Not enough space for {where}: {human_size(need)} needed, {human_size(free)} free on that file system."
            )
    return ""


class JobController(QObject):
    """Runs one job at a time and reports it. Signals carry the Job so handlers know what ended.

    A cancelled job whose work has stopped but whose partial output is still being removed is reported as
    cancelled and ended at once (the user may go on) and finishes its clean-up in the background:
    ``cleanup_changed`` tells how many such removals still run.
    """

    started = Signal(object)  # Job
    progress = Signal(object, object)  # Job, regpack.progress.Estimate (its progress.message is the phase)
    finished = Signal(object, object)  # Job, the job's result
    failed = Signal(object, object)  # Job, the exception
    cancelled = Signal(object)  # Job
    ended = Signal(object)  # Job: after finished/failed/cancelled was handled; the controller is free again
    cleanup_changed = Signal(int)  # partial outputs of cancelled jobs still being removed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = TaskKeeper()
        self.job: Job | None = None
        self.task: Task | None = None
        self.tracker: Tracker | None = None
        self.cancel_requested = False
        self.cleaning: dict[Task, Job] = {}  # cancelled tasks removing their partial output
        self.detached: set[Task] = set()  # cancelled read-only tasks still winding down, their results dropped
        self._phase = ""
        self._outcome: tuple[str, Any] = ("cancelled", None)

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def kind(self) -> JobKind | None:
        return self.job.kind if self.job is not None else None

    def start(self, job: Job) -> bool:
        """Start ``job`` on the thread pool; False (nothing started) when another job runs."""
        if self.job is not None:
            return False
        task = Task(job.run)
        task.signals.progress.connect(partial(self._progress, task))
        task.signals.finished.connect(partial(self._outcome_is, task, "finished"))
        task.signals.failed.connect(partial(self._outcome_is, task, "failed"))
        task.signals.cancelled.connect(partial(self._outcome_is, task, "cancelled", None))
        task.signals.done.connect(partial(self._done, task))
        self.job, self.task = job, task
        self.tracker = Tracker()
        self.cancel_requested = False
        self._phase = ""
        self._outcome = ("cancelled", None)
        self.started.emit(job)
        self.tasks.start(task)
        return True

    def cancel(self) -> bool:
        """Ask the running job to stop (core checks between files and inside big copies)."""
        if self.task is None or self.job is None or not self.job.cancellable:
            return False
        self.cancel_requested = True
        self.task.cancel()
        if self.job.detach_on_cancel:
            task, job = self.task, self.job
            self.detached.add(task)
            self.job, self.task, self.tracker = None, None, None
            self.cancel_requested = False
            self.cancelled.emit(job)
            self.ended.emit(job)
        return True

    def shutdown(self, msecs: int = -1) -> bool:
        """Cancel whatever runs and wait for it, clean-ups included (window closing)."""
        self.tasks.cancel_all()
        return self.tasks.wait(msecs)

    def _progress(self, task: Task, progress: Progress) -> None:
        if task is not self.task or self.job is None or self.tracker is None:
            return
        if progress.message == CLEANING_UP:
            if self.cancel_requested:
                self._detach()
            return
        if self.cancel_requested:
            return
        if progress.message != self._phase:
            self._phase = progress.message  # a new phase (verifying after packing): its own bar and rate
            self.tracker = Tracker()
        self.progress.emit(self.job, self.tracker.update(progress))

    def _detach(self) -> None:
        """The cancelled job's work has stopped: report it now, let its clean-up finish in the background."""
        job, task = self.job, self.task
        assert job is not None and task is not None
        self.cleaning[task] = job
        self.job, self.task, self.tracker = None, None, None
        self.cancel_requested = False
        self.cancelled.emit(job)
        self.ended.emit(job)
        self.cleanup_changed.emit(len(self.cleaning))

    # The outcome is kept until the task is done and reported then, so that handlers find the controller
    # free: a result dialog may start the next job right away.

    def _outcome_is(self, task: Task, what: str, value: Any) -> None:
        if task is self.task:
            self._outcome = (what, value)

    def _done(self, task: Task) -> None:
        if task in self.detached:
            self.detached.discard(task)
            return
        if task in self.cleaning:
            del self.cleaning[task]
            self.cleanup_changed.emit(len(self.cleaning))
            return
        if task is not self.task:
            return
        job, (what, value) = self.job, self._outcome
        self.job, self.task, self.tracker = None, None, None
        self.cancel_requested = False
        self._outcome = ("cancelled", None)
        if job is None:
            return
        if what == "finished":
            if job.on_result is not None:
                job.on_result(value)
            self.finished.emit(job, value)
        elif what == "failed":
            self.failed.emit(job, value)
        else:
            self.cancelled.emit(job)
        self.ended.emit(job)
