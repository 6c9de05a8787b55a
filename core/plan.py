"""A conversion as a plan of file operations: place a blob (link or copy) or write a small file.

Layouts produce plans from a Bundle; the engine runs them. Destinations are relative POSIX paths (plain
strings: a plan of a big bundle has tens of thousands) built only from validated names and hex digests, and
checked again here, so no plan can point outside its destination.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from regpack.errors import BundleError, quoted

# The hidden folder a plan is staged in inside an existing destination (see engine); a dir tree whose root
# holds one is the unfinished output of a run that is still at work or was killed.
STAGING_INSIDE = ".regpack-partial-"
# What mkfs leaves at the top of a filesystem: a destination that is a mount point may hold it, and a bundle
# read at a mount point has it beside its content (readable by root only).
LOST_AND_FOUND = "lost+found"


@dataclass(frozen=True, slots=True)
class PlaceBlob:
    src: str
    dst: str
    size: int


@dataclass(frozen=True, slots=True)
class WriteFile:
    dst: str
    data: bytes


@dataclass(slots=True)
class Plan:
    images: int = 0
    blobs: dict[str, PlaceBlob] = field(default_factory=dict)
    files: dict[str, WriteFile] = field(default_factory=dict)

    def place(self, src: str | Path, dst: str, size: int, image: str | None = None) -> None:
        known = self.blobs.get(dst)
        if known is None:
            src = os.fspath(src)
            _check_relative(dst)
            if dst in self.files:
                raise BundleError(f"{dst} is planned both as a blob and as a small file", src, image)
            self.blobs[dst] = PlaceBlob(src, dst, size)
        elif known.size != size:
            # The same file name for one digest always has one size: two sizes mean two images claim one place.
            raise BundleError(
                f"conflicting content for {dst}: two images claim it ({known.size} and {size} bytes)", src, image
            )

    def write(self, dst: str, data: bytes, image: str | None = None) -> None:
        known = self.files.get(dst)
        if known is not None:
            if known.data != data:
                raise BundleError(
                    f"conflicting content for {dst}: two images claim it ({quoted(known.data)} vs {quoted(data)})",
                    None,
                    image,
                )
            return
        _check_relative(dst)
        if dst in self.blobs:
            raise BundleError(f"{dst} is planned both as a blob and as a small file", None, image)
        self.files[dst] = WriteFile(dst, data)

    def operations(self) -> list[PlaceBlob | WriteFile]:
        return [*self.blobs.values(), *self.files.values()]

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs.values()) + sum(len(f.data) for f in self.files.values())

    @property
    def total_files(self) -> int:
        return len(self.blobs) + len(self.files)

    def directories(self) -> list[str]:
        """Every folder the plan needs, ancestors included, each after its parent.

        In one pass over the destinations, no sort: the folders a destination adds are its ancestors not
        seen yet, and those are the top of its chain, listed top-down.
        """
        seen: set[str] = set()
        out: list[str] = []
        for dst in (*self.blobs, *self.files):
            parent = dst.rpartition("/")[0]
            if not parent or parent in seen:
                continue
            chain: list[str] = []
            while parent and parent not in seen:
                seen.add(parent)
                chain.append(parent)
                parent = parent.rpartition("/")[0]
            out.extend(reversed(chain))
        return out


def _check_relative(dst: str) -> None:
    # No empty, "." or ".." component and not absolute; with slashes around it, each shows as a substring.
    wrapped = f"/{dst}/"
    if dst.startswith("/") or "//" in wrapped or "/./" in wrapped or "/../" in wrapped:
        raise BundleError(f"refusing to write outside the destination: {quoted(dst, 300)}")
