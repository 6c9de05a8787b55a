"""What the status bar says about an opened archive: its size and its sha256, taken from the ``.sha256`` sidecar.

Nothing here hashes the archive (that is Verify's job, which also checks the sidecar): it reads file sizes and
the sidecar's few lines, on the loading thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from regpack.bundle import Bundle
from regpack.errors import BundleError
from regpack.gui.sizes import human_size

# What File > Open archive offers: plain and zstd tars, and the first part of a split archive.
ARCHIVE_PATTERNS = ("*.tar", "*.tar.zst", "*.tzst", "*.tar.zstd", "*.tar.gz", "*.tgz", "*.000")
ARCHIVE_FILTER = f"Archives ({' '.join(ARCHIVE_PATTERNS)})"
ARCHIVE_SUFFIXES = tuple(p[1:] for p in ARCHIVE_PATTERNS)


def looks_like_archive(path: Path) -> bool:
    """A file named like an archive regpack reads (what a drop or the file dialog accepts)."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ArchiveFacts:
    path: Path  # the archive's name (for a split archive: without .000)
    parts: tuple[tuple[Path, int], ...]  # each file and its size
    sha256: tuple[tuple[str, str], ...] = ()  # (part name, hex) as the sidecar lists them
    sidecar: Path | None = None
    problem: str = ""  # why the sidecar could not be used
    kind: str = ""  # "zstd-compressed tar, 3 parts, at images/": what it is, where the layout sits inside

    @property
    def size(self) -> int:
        return sum(size for _, size in self.parts)

    def text(self) -> str:
        parts = f" in {len(self.parts)} parts" if len(self.parts) > 1 else ""
        head = f"archive {human_size(self.size)}{parts}"
        if self.problem:
            return f"{head}  ·  sidecar unusable: {self.problem}"
        if self.sidecar is None:
            return f"{head}  ·  sha256: no sidecar"
        if len(self.parts) == 1 and len(self.sha256) == 1:
            hex_ = self.sha256[0][1]
            return f"{head}  ·  sha256 {hex_[:12]}…{hex_[-4:]} (sidecar)"
        return f"{head}  ·  sha256 of each part in {self.sidecar.name}"

    def tooltip(self) -> str:
        lines = [f"{self.path}: {self.kind + ', ' if self.kind else ''}{self.size:,} bytes"]
        if len(self.parts) > 1:
            lines += [f"  {path.name}: {size:,} bytes" for path, size in self.parts]
        if self.problem:
            lines.append(f"{self.sidecar or self.path.name + '.sha256'}: {self.problem}")
        elif self.sidecar is None:
            lines.append(f"No {self.path.name}.sha256 beside it: Verify checks every blob inside.")
        else:
            lines.append(f"From {self.sidecar} (checked by Verify):")
            lines += [f"  {hex_}  {name}" for name, hex_ in self.sha256]
        return "\n".join(lines)


def archive_facts(bundle: Bundle) -> ArchiveFacts | None:
    """Size and sidecar sha256 of the archive ``bundle`` was read from; None for a folder."""
    from regpack.layouts.archive import ArchiveSource, read_sidecar

    source = bundle.source
    if not isinstance(source, ArchiveSource):
        return None
    parts = tuple((part, os.stat(part).st_size) for part in source.parts)
    kind = source.describe()
    try:
        found = read_sidecar(source)
    except (BundleError, OSError) as e:
        reason = e.reason if isinstance(e, BundleError) else e.strerror or str(e)
        return ArchiveFacts(source.path, parts, problem=reason, kind=kind)
    if found is None:
        return ArchiveFacts(source.path, parts, kind=kind)
    sidecar, entries = found
    missing = [part.name for part, _ in parts if part.name not in entries]
    if missing:
        return ArchiveFacts(source.path, parts, (), sidecar, f"it does not list {', '.join(missing)}", kind)
    listed = tuple((part.name, entries[part.name]) for part, _ in parts)
    return ArchiveFacts(source.path, parts, listed, sidecar, kind=kind)
