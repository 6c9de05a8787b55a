from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from regpack import engine
from regpack.errors import Cancelled, DestinationError
from regpack.jobs import pack, unpack
from regpack.layouts import READING
from regpack.progress import Progress
from tests.core.conftest import tree, write_dir_image


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_non_empty_destination_is_refused_and_untouched(dir_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(DestinationError, match="not empty"):
        pack(dir_bundle, dest)
    assert tree(dest) == {"keep.txt": b"mine"}
    assert not [n for n in siblings(dest) if ".partial-" in n]


def test_empty_destination_folder_is_used(dir_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    pack(dir_bundle, dest)
    assert (dest / "docker" / "registry" / "v2" / "repositories" / "alpine").is_dir()


def test_destination_that_is_a_file_is_refused(dir_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DestinationError, match="not a folder"):
        pack(dir_bundle, tmp_path / "f")


def test_cancel_mid_job_leaves_nothing(dir_bundle: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        if p.message != READING:  # writing, not the read before it
            seen.append(p)
            cancel.set()

    dest = tmp_path / "dest"
    with pytest.raises(Cancelled):
        pack(dir_bundle, dest, copy=True, jobs=1, progress=progress, cancel=cancel)
    assert seen and seen[0].done_files < seen[0].total_files
    assert not dest.exists()
    assert not [n for n in siblings(dest) if ".partial-" in n]


def test_copy_mode_makes_separate_files_and_link_mode_shares_inodes(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "linked")
    pack(dir_bundle, tmp_path / "copied", copy=True)
    src_inodes = {p.stat().st_ino for p in dir_bundle.rglob("*") if p.is_file()}
    linked = [p for p in (tmp_path / "linked").rglob("data")]
    copied = [p for p in (tmp_path / "copied").rglob("data")]
    assert linked and all(p.stat().st_ino in src_inodes for p in linked)
    assert copied and not any(p.stat().st_ino in src_inodes for p in copied)
    assert sorted(p.read_bytes() for p in linked) == sorted(p.read_bytes() for p in copied)


def test_link_across_filesystems_falls_back_to_copy(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(engine.os, "link", no_link)
    result = pack(dir_bundle, tmp_path / "p")
    assert result.bytes_linked == 0 and result.bytes_copied > 0
    unpack(tmp_path / "p", tmp_path / "u")
    assert tree(tmp_path / "u") == tree(dir_bundle)


def test_disk_full_is_a_clear_error_and_leaves_no_staging(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.os, "copy_file_range", full)
    dest = tmp_path / "dest"
    with pytest.raises(DestinationError, match="no space left"):
        pack(dir_bundle, dest, copy=True)
    assert not dest.exists() and not [n for n in siblings(dest) if ".partial-" in n]


def test_merge_adds_without_rewriting_and_refuses_retag(tmp_path: Path) -> None:
    first = tmp_path / "first"
    write_dir_image(first / "app:1", "app", [b"base", b"one"])
    second = tmp_path / "second"
    write_dir_image(second / "app:2", "app", [b"base", b"two"])
    write_dir_image(second / "app:1", "app", [b"base", b"one"])  # identical to what is there: fine
    store = tmp_path / "store"
    pack(first, store)
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    result = pack(second, store, merge=True)
    assert result.skipped > 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    unpack(store, tmp_path / "u", copy=True)
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["app:1", "app:2"]

    third = tmp_path / "third"
    write_dir_image(third / "app:1", "app", [b"base", b"changed"])
    snapshot = tree(store)
    with pytest.raises(DestinationError, match="refusing to overwrite"):
        pack(third, store, merge=True)
    assert tree(store) == snapshot


def test_merge_refuses_symlinked_folder_in_destination(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_dir_image(src / "app:1", "app", [b"x"])
    store = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    (store / "docker" / "registry" / "v2").mkdir(parents=True)
    os.symlink(outside, store / "docker" / "registry" / "v2" / "repositories")
    with pytest.raises(DestinationError, match="symbolic link"):
        pack(src, store, merge=True)
    assert list(outside.iterdir()) == []


def test_staging_left_by_a_dead_run_is_removed_and_a_live_one_kept(dir_bundle: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dest = tmp_path / "dest"
    stale = tmp_path / f"dest.partial-{int(dead.stdout)}-abcd"
    (stale / "docker").mkdir(parents=True)
    live = tmp_path / f"dest.partial-{os.getppid()}-efgh"  # a running process: maybe another job at work
    live.mkdir()
    pack(dir_bundle, dest)
    assert not stale.exists() and live.exists()
