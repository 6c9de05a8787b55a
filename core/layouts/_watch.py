"""Progress and cancel of one read: every reader calls ``next_image()`` once per image it reads; whoever called
``regpack.layouts.read(..., progress=, cancel=)`` on this thread hears how many images were read so far, and
can stop the read between two images.

Per thread, so that two reads on two threads (a window reading a base while a job reads its bundle) keep
their own counts. A nested read (an archive reads the folder layout it holds) counts into the outer one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from regpack import collector
from regpack.errors import Cancelled
from regpack.progress import UPDATE_INTERVAL, Progress, ProgressCallback

READING = "reading"  # the message of the read's progress events


class _Watch:
    __slots__ = ("cancel", "images", "last", "progress")

    def __init__(self, progress: ProgressCallback | None, cancel: threading.Event | None) -> None:
        self.progress = progress
        self.cancel = cancel
        self.images = 0
        self.last = float("-inf")  # the first image is reported at once: the window says "reading" early

    def next_image(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        self.images += 1
        if self.progress is not None:
            now = time.monotonic()
            if now - self.last >= UPDATE_INTERVAL:
                self.last = now
                self.progress(self.event())

    def event(self) -> Progress:
        return Progress(0, 0, self.images, 0, READING)


_local = threading.local()


def next_image() -> None:
    """A reader starts on one more image: counted, reported (at most ~10 times a second), or Cancelled raised."""
    watch: _Watch | None = getattr(_local, "watch", None)
    if watch is not None:
        watch.next_image()
    collector.built()


def forget() -> None:
    """This thread counts for nobody any more (a forked helper process: its images are not the caller's)."""
    _local.watch = None


@contextmanager
def watching(progress: ProgressCallback | None, cancel: threading.Event | None) -> Iterator[None]:
    """Count the images read inside the block for ``progress`` (with a last event at the end) and stop at
    ``cancel``. Without either, an outer watch (if any) goes on counting."""
    if progress is None and cancel is None:
        yield
        return
    outer = getattr(_local, "watch", None)
    watch = _Watch(progress, cancel)
    _local.watch = watch
    try:
        yield
    finally:
        _local.watch = outer
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    if progress is not None:
        progress(watch.event())
