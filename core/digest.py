"""Content digests: parsing, validation and streaming hashing."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from regpack.errors import BundleError, Cancelled, quoted

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_ALGORITHM_NAMES = {name: name for name in ALGORITHMS}
_HEX = re.compile(r"[0-9a-f]+")
CHUNK = 1 << 20


class Digest(NamedTuple):
    """A content digest such as ``sha256:<64 lowercase hex>``.

    A named tuple rather than a dataclass: a big bundle hashes and compares digests hundreds of thousands of
    times (dict keys, sets, sorting), and a tuple does that in C.
    """

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return self.hex[:12]

    @staticmethod
    def parse(text: object, where: Path | str | None = None, image: str | None = None) -> Digest:
        """Parse ``algo:hex`` strictly: known algorithm, exact length, lowercase hex, nothing around it."""
        if not isinstance(text, str):
            raise BundleError(f"digest must be a string, got {type(text).__name__}", where, image)
        algorithm, sep, hex_ = text.partition(":")
        if not sep:
            raise BundleError(f"not a digest (no algorithm prefix): {quoted(text)}", where, image)
        length = ALGORITHMS.get(algorithm)
        if length is None:
            raise BundleError(f"unsupported digest algorithm {quoted(algorithm, 20)}", where, image)
        algorithm = _ALGORITHM_NAMES[algorithm]  # one string object for every digest, not one each
        if len(hex_) != length or not _HEX.fullmatch(hex_):
            raise BundleError(
                f"malformed {algorithm} digest {quoted(text)} (need {length} lowercase hex digits)",
                where,
                image,
            )
        return Digest(algorithm, hex_)

    @staticmethod
    def of_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
        return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def hash_file(
    path: Path | str,
    algorithm: str = "sha256",
    cancel: threading.Event | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Stream ``path`` through the hash; return (hex, size). Never holds more than one chunk in memory.

    hashlib releases the GIL on large updates, so calls on several threads use several cores.
    """
    h = hashlib.new(algorithm)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
            if on_chunk is not None:
                on_chunk(n)
    return h.hexdigest(), size
