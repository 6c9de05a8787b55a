"""Reading the many small files of a bundle (manifests, links, version files) with few system calls."""

from __future__ import annotations

import contextlib
import os

# Read-only, never blocking on a FIFO that replaced a file after it was checked, not leaked to children.
_OPEN_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 16


def read_capped(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a file, but at most ``limit + 1`` of them: one more than allowed shows it is too big.

    os.open and os.read in 64 KiB steps: a buffered open() costs an fstat, an ioctl and an lseek per file,
    and reading with a 4 MiB cap allocates 4 MiB for every 1 KiB manifest.
    """
    fd = os.open(path, _OPEN_READ)
    try:
        want = min(_CHUNK, limit + 1)
        data = os.read(fd, want)
        if len(data) < want:  # a short read of a regular file is its end
            return data
        parts = [data]
        size = len(data)
        while size <= limit:
            more = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


def write_file_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a small file beside its final name and rename it into place: never a half-written file."""
    final = os.fspath(path)
    tmp = f"{final}.partial-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
