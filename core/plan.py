"""A conversion as a plan of file operations: place a blob (link or copy) or write a small file.

Layouts produce plans from a Bundle; the engine runs them. Destinations are relative POSIX paths built only
from validated names and hex digests, so no plan can point outside its destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import BundleError


@dataclass(frozen=True, slots=True)
class PlaceBlob:
    src: Path
    dst: PurePosixPath
    size: int


@dataclass(frozen=True, slots=True)
class WriteFile:
    dst: PurePosixPath
    data: bytes


@dataclass(slots=True)
class Plan:
    images: int = 0
    blobs: dict[PurePosixPath, PlaceBlob] = field(default_factory=dict)
    files: dict[PurePosixPath, WriteFile] = field(default_factory=dict)

    def place(self, src: Path, dst: PurePosixPath, size: int) -> None:
        _check_relative(dst)
        if dst in self.files:
            raise BundleError(f"two images write {dst} differently", src)
        self.blobs.setdefault(dst, PlaceBlob(src, dst, size))

    def write(self, dst: PurePosixPath, data: bytes, image: str | None = None) -> None:
        _check_relative(dst)
        known = self.files.get(dst)
        if known is not None and known.data != data:
            raise BundleError(
                f"conflicting content for {dst}: two images claim it ({known.data[:80]!r} vs {data[:80]!r})",
                None,
                image,
            )
        if dst in self.blobs:
            raise BundleError(f"two images write {dst} differently", None, image)
        self.files[dst] = WriteFile(dst, data)

    def operations(self) -> list[PlaceBlob | WriteFile]:
        return [*self.blobs.values(), *self.files.values()]

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs.values()) + sum(len(f.data) for f in self.files.values())

    @property
    def total_files(self) -> int:
        return len(self.blobs) + len(self.files)

    def directories(self) -> list[PurePosixPath]:
        dirs = {p.parent for p in self.blobs} | {p.parent for p in self.files}
        dirs.discard(PurePosixPath("."))
        return sorted(dirs, key=lambda p: (len(p.parts), p))


def _check_relative(dst: PurePosixPath) -> None:
    if dst.is_absolute() or any(part in ("", ".", "..") for part in dst.parts):
        raise BundleError(f"refusing to write outside the destination: {dst}")
