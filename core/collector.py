"""Big builds in memory (a read, an analysis) beside the cyclic collector, which is one for the whole process.

A build of hundreds of thousands of objects with no reference cycles among them only feeds the collector work:
the young collections walk them again and again, and their growth triggers full collections that walk
everything. The command line pauses the collector while it reads (layouts.read, when the process has no other
thread); beside other threads (the window) it cannot be paused for one thread. There, inside ``promoting()``,
what was built is moved into the oldest generation every ``PROMOTE_EVERY`` items (``built()`` counts them).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PROMOTE_EVERY = 200  # items (images) between two promotions: about 3,000 objects a read keeps

_local = threading.local()


def built(items: int = 1) -> None:
    """``items`` more were built on this thread; inside ``promoting()`` every ``PROMOTE_EVERY`` promote."""
    left: int = getattr(_local, "promote_in", 0)
    if left:
        left -= items
        if left <= 0:
            _promote()
            left = PROMOTE_EVERY
        _local.promote_in = left


def _promote() -> None:
    """Move what was built so far into the collector's oldest generation without walking it.

    A gen-0 collection first, so that the youngest objects of every thread are examined as usual (garbage
    among them freed); then freeze + unfreeze splices the young generations into the oldest one. The build's
    objects are then no longer walked by the young collections over and over, nor counted towards the full
    collections that the growth of the oldest generation triggers. Left alone when the collector is off, or
    when objects are frozen already (someone froze them on purpose: unfreezing would undo that)."""
    if not gc.isenabled() or gc.get_freeze_count():
        return
    gc.collect(0)
    gc.freeze()
    gc.unfreeze()


@contextmanager
def promoting() -> Iterator[None]:
    """Inside the block, every ``PROMOTE_EVERY`` items built on this thread are promoted (``_promote``).
    Nothing stays frozen between two items, and the collector's thresholds are not touched: other threads'
    objects are collected as before, theirs only reach the oldest generation a little earlier when they
    survive a young collection at one of these moments."""
    outer = getattr(_local, "promote_in", 0)
    _local.promote_in = PROMOTE_EVERY
    try:
        yield
    finally:
        _local.promote_in = outer
