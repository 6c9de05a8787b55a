"""Hashing many files on a thread pool, with little cost per file beyond the hashing itself.

A big bundle holds tens of thousands of small blobs (configs, small layers) and a few big ones. One pool task
and one 1 MiB buffer per file cost more than hashing a 4 KiB file, so small files go in batches, each read
whole with one system call into a buffer of its own size; a big file is a task of its own, streamed in
chunks, so big blobs still spread over every core. Big files are handed out first: the pool does not end
waiting on one large file started last.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

from regpack.digest import hash_file
from regpack.errors import Cancelled

# Files up to this size are read whole (at most this much memory per worker); bigger ones are streamed.
SMALL_FILE = 1 << 20
# A batch of small files ends at this many files or bytes, whichever comes first: enough work per task to
# make the pool's hand-over negligible, small enough that both cores stay busy to the end.
BATCH_FILES = 128
BATCH_BYTES = 8 << 20

_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
_CONSTRUCTORS: dict[str, Callable[[bytes], hashlib._Hash]] = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


class Hashed(NamedTuple):
    """What hashing one file gave: the hex digest and the bytes read, or why it could not be read."""

    hex: str
    size: int
    error: str | None = None


class FileToHash(NamedTuple):
    path: str
    algorithm: str
    size: int  # expected size: decides small or big; the result says how much was really read


Progress = Callable[[int, int], None]
"""Called with (bytes, files) done since the last call, from worker threads."""


def hash_files(
    files: Sequence[FileToHash],
    jobs: int,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> list[Hashed]:
    """Hash every file; results are in the order of ``files``. Raises Cancelled when ``cancel`` is set."""
    stop = cancel or threading.Event()
    report: Progress = progress or (lambda nbytes, nfiles: None)
    results: list[Hashed | None] = [None] * len(files)
    tasks = _tasks(files)

    def run(task: list[int]) -> None:
        done = 0
        for i in task:
            if stop.is_set():
                raise Cancelled()
            path, algorithm, size = files[i]
            if size > SMALL_FILE:
                result = _hash_big(path, algorithm, stop, report)
            else:
                result = hash_small_file(path, algorithm, size)
                done += result.size
            results[i] = result
        report(done, len(task))

    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            run(task)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="regpack-hash") as pool:
            try:
                for _ in pool.map(run, tasks):
                    pass
            except BaseException:
                stop.set()  # the other workers stop at their next file
                raise
    if stop.is_set():
        raise Cancelled()
    return [r if r is not None else Hashed("", 0, "not hashed") for r in results]


def _tasks(files: Sequence[FileToHash]) -> list[list[int]]:
    """Indexes of ``files`` grouped into pool tasks: each big file alone, biggest first, then small batches."""
    order = sorted(range(len(files)), key=lambda i: -files[i].size)
    tasks: list[list[int]] = []
    batch: list[int] = []
    batch_bytes = 0
    for i in order:
        size = files[i].size
        if size > SMALL_FILE:
            tasks.append([i])
            continue
        batch.append(i)
        batch_bytes += size
        if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
            tasks.append(batch)
            batch, batch_bytes = [], 0
    if batch:
        tasks.append(batch)
    return tasks


def _hash_big(path: str, algorithm: str, stop: threading.Event, report: Progress) -> Hashed:
    try:
        hex_, read = hash_file(path, algorithm, stop, lambda n: report(n, 0))
    except OSError as e:
        return Hashed("", 0, e.strerror or str(e))
    return Hashed(hex_, read)


def hash_small_file(path: str, algorithm: str, size: int) -> Hashed:
    """One open, one read of ``size + 1`` bytes (one more than expected shows a file that grew), one close."""
    try:
        fd = os.open(path, _OPEN)
        try:
            return hash_small_fd(fd, algorithm, size)
        finally:
            os.close(fd)
    except OSError as e:
        return Hashed("", 0, e.strerror or str(e))


def hash_small_fd(fd: int, algorithm: str, size: int) -> Hashed:
    """Hash an open small file of ``size`` bytes from where it is (the caller closes it)."""
    try:
        data = os.read(fd, size + 1)
        # Asked for one byte more than expected, a regular file returning fewer is at its end; reading on is
        # only for a file that came up short (it shrank, or a network file system reads in parts).
        while 0 < len(data) < size:
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
        read = len(data)
        if read > size:  # it grew: read on only to say how big it became
            while more := os.read(fd, 1 << 16):
                read += len(more)
    except OSError as e:
        return Hashed("", 0, e.strerror or str(e))
    new = _CONSTRUCTORS.get(algorithm)
    h = new(data) if new is not None else hashlib.new(algorithm, data)
    return Hashed(h.hexdigest(), read)
