"""Looking at folders the way the tests compare them: relative names, bytes, sizes and inodes."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file below ``root``, sorted; symbolic links are neither followed nor listed."""
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file below ``root`` (for byte-exact tree comparisons)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in iter_files(root)}


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every entry below ``root``, links and folders included."""
    root = Path(root)
    out: dict[str, tuple[int, int]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def copy_tree(src: Path, dest: Path) -> Path:
    """A private, writable copy of a bundle (symbolic links kept as links, every file a new inode)."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def file_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def registry_blob_files(storage_root: Path) -> dict[str, Path]:
    """``sha256:<hex>`` -> path of every ``data`` file under ``docker/registry/v2/blobs``."""
    blobs = Path(storage_root) / "docker" / "registry" / "v2" / "blobs"
    return {f"sha256:{p.parent.name}": p for p in sorted(blobs.rglob("data")) if p.is_file()}


def leftovers(dest: Path) -> list[Path]:
    """Staging folders (``<dest>.partial-*``) a job left beside its destination."""
    dest = Path(dest)
    return sorted(dest.parent.glob(dest.name + ".partial-*"))
