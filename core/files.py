"""Reading the many small files of a bundle (manifests, links, version files) with few system calls."""

from __future__ import annotations

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
