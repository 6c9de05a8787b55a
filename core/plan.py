"""A conversion as a plan of file operations: place a blob (link or copy) or write a small file.

Layouts produce plans from a Bundle; the engine runs them. Destinations are relative POSIX paths (plain
strings: a plan of a big bundle has tens of thousands) built only from validated names and hex digests, and
checked again here, so no plan can point outside its destination.

Small files that follow from records the plan's source already holds (registry storage's link files: a few per
image, each named after a repository and a digest) need not be listed one by one: a FileGroup makes them when the
plan is run, so a plan of 100,000 images does not keep a million names.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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


class FileGroup(Protocol):
    """Small files made on demand from compact records, instead of a name and an object kept per file.

    Every name starts with ``prefix``, and no other file of the plan has a name there, so the group is the only
    one to know its names; ``files`` and ``total_bytes`` are known before the first file is made (progress).
    Iterating makes each file once; it may run more than once (folders first, then files).
    """

    @property
    def prefix(self) -> str: ...

    @property
    def files(self) -> int: ...

    @property
    def total_bytes(self) -> int: ...

    def __iter__(self) -> Iterator[WriteFile]: ...

    def directories(self) -> Iterator[str]:
        """The folders its files need below ``prefix`` (not the prefix itself), each once, after its parent."""
        ...


@dataclass(slots=True)
class Plan:
    images: int = 0
    blobs: dict[str, PlaceBlob] = field(default_factory=dict)
    files: dict[str, WriteFile] = field(default_factory=dict)  # listed one by one; see also ``groups``
    groups: list[FileGroup] = field(default_factory=list)

    def place(self, src: str | Path, dst: str, size: int, image: str | None = None) -> None:
        known = self.blobs.get(dst)
        if known is None:
            src = os.fspath(src)
            check_relative(dst)
            if dst in self.files or self._grouped(dst):
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
        check_relative(dst)
        if dst in self.blobs:
            raise BundleError(f"{dst} is planned both as a blob and as a small file", None, image)
        if self._grouped(dst):
            raise BundleError(f"{dst} is planned twice: it is one of the files made from the bundle", None, image)
        self.files[dst] = WriteFile(dst, data)

    def add_group(self, group: FileGroup) -> None:
        """Add small files made on demand; their folder (``group.prefix``) must be theirs alone."""
        prefix = group.prefix
        check_relative(prefix.rstrip("/"))
        if not prefix.endswith("/"):
            raise BundleError(f"a group of files needs a folder of its own, not {quoted(prefix, 300)}")
        for other in self.groups:
            if other.prefix.startswith(prefix) or prefix.startswith(other.prefix):
                raise BundleError(f"two groups of files share the folder {other.prefix}")
        clash = next((dst for dst in itertools.chain(self.blobs, self.files) if dst.startswith(prefix)), None)
        if clash is not None:
            raise BundleError(f"{clash} is planned twice: it is one of the files made from the bundle")
        self.groups.append(group)

    def _grouped(self, dst: str) -> bool:
        return any(dst.startswith(g.prefix) for g in self.groups)

    def with_blobs(self, blobs: dict[str, PlaceBlob]) -> Plan:
        """The same plan placing ``blobs`` instead (read from elsewhere), with the same small files."""
        return Plan(self.images, blobs, dict(self.files), list(self.groups))

    def small_files(self) -> Iterator[WriteFile]:
        """Every small file: those listed, then those the groups make."""
        yield from self.files.values()
        for group in self.groups:
            yield from group

    def operations(self) -> Iterator[PlaceBlob | WriteFile]:
        """Blobs, then small files: made as they are taken, not held in a list."""
        yield from self.blobs.values()
        yield from self.small_files()

    def destinations(self) -> Iterator[str]:
        yield from self.blobs
        for op in self.small_files():
            yield op.dst

    @property
    def total_bytes(self) -> int:
        return (
            sum(b.size for b in self.blobs.values())
            + sum(len(f.data) for f in self.files.values())
            + sum(g.total_bytes for g in self.groups)
        )

    @property
    def total_files(self) -> int:
        return len(self.blobs) + len(self.files) + sum(g.files for g in self.groups)

    def directories(self) -> list[str]:
        """Every folder the plan needs, ancestors included, each after its parent.

        In one pass over the destinations, no sort: the folders a destination adds are its ancestors not
        seen yet, and those are the top of its chain, listed top-down.
        """
        seen: set[str] = set()
        out: list[str] = []
        listed = itertools.chain(self.blobs, self.files, (group.prefix + "." for group in self.groups))
        for dst in listed:  # a group's prefix as the folder of a file in it: its ancestors, then itself
            out.extend(new_folders(dst, seen))
        for group in self.groups:
            out.extend(group.directories())  # below its prefix, theirs alone: no need to remember them here
        return out


def new_folders(path: str, seen: set[str], top: str = "") -> list[str]:
    """The folders above ``path`` (below ``top``) not in ``seen`` yet, top-down; they are added to ``seen``."""
    parent = path.rpartition("/")[0]
    chain: list[str] = []
    while parent != top and parent not in seen:
        seen.add(parent)
        chain.append(parent)
        parent = parent.rpartition("/")[0]
    chain.reverse()
    return chain


def check_relative(dst: str) -> None:
    """Refuse a destination that is absolute or has an empty, ``.`` or ``..`` component."""
    # No empty, "." or ".." component and not absolute; with slashes around it, each shows as a substring.
    wrapped = f"/{dst}/"
    if dst.startswith("/") or "//" in wrapped or "/./" in wrapped or "/../" in wrapped:
        raise BundleError(f"refusing to write outside the destination: {quoted(dst, 300)}")
