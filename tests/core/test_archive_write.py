"""Writing archives: the same storage as a folder pack, deterministic headers and order, sidecar, split, stdout."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from regpack import archive
from regpack.archive import parse_size, zstd_module
from regpack.errors import BundleError, Cancelled, DestinationError
from regpack.jobs import pack
from regpack.progress import Progress
from regpack.verify import verify
from tests.core.conftest import BASE, tree, write_dir_image, write_dir_list


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return tf.getmembers()


def extract(path: Path, dest: Path) -> Path:
    with tarfile.open(path) as tf:
        tf.extractall(dest, filter="data")
    return dest


def test_tar_holds_exactly_the_storage_a_folder_pack_writes(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "folder")
    result = pack(dir_bundle, tmp_path / "release.tar")
    assert result.archive is not None and result.images == 5
    assert tree(extract(tmp_path / "release.tar", tmp_path / "x")) == tree(tmp_path / "folder")
    # every folder of the storage is its own entry as well
    folders = {p.relative_to(tmp_path / "folder").as_posix() for p in (tmp_path / "folder").rglob("*") if p.is_dir()}
    assert {m.name for m in members(tmp_path / "release.tar") if m.isdir()} == folders


def test_headers_are_fixed_and_follow_source_date_epoch(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pack(dir_bundle, tmp_path / "a.tar")
    found = members(tmp_path / "a.tar")
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in found} == {(1700000000, 0, 0, "", "")}
    assert {m.mode for m in found if m.isdir()} == {0o755}
    assert {m.mode for m in found if m.isfile()} == {0o644}
    assert all(m.isdir() or m.isfile() for m in found)
    assert not any(m.pax_headers for m in found)  # every name fits ustar's prefix + name
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    pack(dir_bundle, tmp_path / "b.tar")
    assert {m.mtime for m in members(tmp_path / "b.tar")} == {0}


def test_bad_source_date_epoch_is_refused(dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(Exception, match="SOURCE_DATE_EPOCH"):
        pack(dir_bundle, tmp_path / "a.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_small_files_first_folders_before_contents_sorted_in_groups(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "a.tar")
    names = [m.name for m in members(tmp_path / "a.tar")]
    files = [m for m in members(tmp_path / "a.tar") if m.isfile()]
    # the layers: every blob that is not a manifest or config (BASE and the per-image layers)
    layer_hexes = {hashlib.sha256(BASE).hexdigest()}
    for layer in (b"alpine" * 300, b"node" * 700, b"abc" * 100):
        layer_hexes.add(hashlib.sha256(layer).hexdigest())
    for arch in ("amd64", "arm64"):
        layer_hexes.add(hashlib.sha256(f"multi-{arch}".encode() * 50).hexdigest())
    is_layer = ["/blobs/" in m.name and m.name.split("/")[-2] in layer_hexes for m in files]
    first_layer = is_layer.index(True)
    assert not any(is_layer[:first_layer]) and all(is_layer[first_layer:])
    head, tail = [m.name for m in files[:first_layer]], [m.name for m in files[first_layer:]]
    assert head == sorted(head) and tail == sorted(tail)
    assert any("/repositories/" in n for n in head)
    seen: set[str] = set()
    for name in names:
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, f"{name} comes before its folder"
        assert name not in seen
        seen.add(name)


def _rebuild(root: Path, order: list[str], mtime: int) -> Path:
    """The same images as dir_bundle, written in another order, with other times and file modes."""
    builders = {
        "alpine": lambda: write_dir_image(root / "alpine:3.19", "alpine", [BASE, b"alpine" * 300]),
        "node": lambda: write_dir_image(root / "calico" / "node:v3.15.1", "node", [BASE, b"node" * 700]),
        "latest": lambda: write_dir_image(root / "calico" / "node:latest", "node", [BASE, b"node" * 700]),
        "abc": lambda: write_dir_image(root / "a" / "b" / "c:1", "abc", [BASE, b"abc" * 100]),
        "multi": lambda: write_dir_list(root / "multi:2", "multi", BASE),
    }
    for key in order:
        builders[key]()
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
        if path.is_file():
            path.chmod(0o600 if mtime % 2 else 0o664)
    return root


def test_byte_identical_from_differently_built_trees(tmp_path: Path) -> None:
    one = _rebuild(tmp_path / "one", ["alpine", "node", "latest", "abc", "multi"], 1_000_000)
    two = _rebuild(tmp_path / "two", ["multi", "abc", "latest", "node", "alpine"], 1_600_000_001)
    pack(one, tmp_path / "one.tar", jobs=1)
    pack(two, tmp_path / "two.tar", jobs=2)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    pack(one, tmp_path / "one.tar.zst", jobs=1)
    pack(two, tmp_path / "two.tar.zst", jobs=2)
    assert (tmp_path / "one.tar.zst").read_bytes() == (tmp_path / "two.tar.zst").read_bytes()


def test_sidecar_is_sha256sum_of_the_archive(dir_bundle: Path, tmp_path: Path) -> None:
    result = pack(dir_bundle, tmp_path / "r.tar.zst")
    data = (tmp_path / "r.tar.zst").read_bytes()
    assert (tmp_path / "r.tar.zst.sha256").read_text() == f"{hashlib.sha256(data).hexdigest()}  r.tar.zst\n"
    assert result.archive is not None and result.archive.archive_bytes == len(data)


def test_verify_reports_the_blobs_it_hashed_in_the_staged_archive(dir_bundle: Path, tmp_path: Path) -> None:
    folder = verify(pack(dir_bundle, tmp_path / "folder").dest)  # what verifying that storage hashes
    checked = pack(dir_bundle, tmp_path / "checked.tar.zst", verify=True)
    assert folder.files_hashed > 0
    assert (checked.verified_files, checked.verified_bytes) == (folder.files_hashed, folder.bytes_hashed)
    plain = pack(dir_bundle, tmp_path / "plain.tar.zst")
    assert (plain.verified_files, plain.verified_bytes) == (0, 0)


def test_zstd_holds_the_same_tar(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    pack(dir_bundle, tmp_path / "r.tar.zst")
    zstd = archive.zstd_module()
    assert zstd.decompress((tmp_path / "r.tar.zst").read_bytes()) == (tmp_path / "r.tar").read_bytes()


def test_split_parts_cat_back_and_are_listed_in_the_sidecar(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "whole.tar")
    whole = (tmp_path / "whole.tar").read_bytes()
    result = pack(dir_bundle, tmp_path / "r.tar", split=20480)
    parts = sorted(tmp_path.glob("r.tar.0*"))
    assert result.archive is not None and [p.name for p in result.archive.parts] == [p.name for p in parts]
    assert len(parts) == -(-len(whole) // 20480) > 1
    assert all(p.stat().st_size == 20480 for p in parts[:-1])
    assert b"".join(p.read_bytes() for p in parts) == whole
    lines = (tmp_path / "r.tar.sha256").read_text().splitlines()
    assert lines == [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in parts]
    assert not (tmp_path / "r.tar").exists()


def test_parse_size() -> None:
    assert parse_size("4G") == 4 << 30
    assert parse_size("700M") == 700 << 20
    assert parse_size("64KiB") == 64 << 10
    assert parse_size("20480") == 20480
    for bad in ("", "G", "4X", "-1", "100"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_stdout_gets_the_same_plain_tar(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    run = subprocess.run(
        [sys.executable, "-m", "regpack", "pack", str(dir_bundle), "-o", "-"], capture_output=True, check=True
    )
    assert run.stdout == (tmp_path / "r.tar").read_bytes()
    assert b"packed 5 images" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "r.tar", "r.tar.sha256"]


def test_existing_archive_or_sidecar_is_refused_untouched(dir_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "r.tar").write_bytes(b"mine")
    with pytest.raises(DestinationError, match="already exists"):
        pack(dir_bundle, tmp_path / "r.tar")
    assert (tmp_path / "r.tar").read_bytes() == b"mine"
    (tmp_path / "s.tar.sha256").write_bytes(b"mine")
    with pytest.raises(DestinationError, match="already exists"):
        pack(dir_bundle, tmp_path / "s.tar")
    assert not (tmp_path / "s.tar").exists()
    with pytest.raises(BundleError, match="merge"):
        pack(dir_bundle, tmp_path / "t.tar", merge=True)


def test_cancel_leaves_nothing(dir_bundle: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        cancel.set()

    with pytest.raises(Cancelled):
        pack(dir_bundle, tmp_path / "r.tar.zst", progress=progress, cancel=cancel)
    assert seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert not pipeline_threads()


def test_source_changing_while_packing_fails_and_leaves_nothing(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stream = archive._stream_blob
    victim = dir_bundle / "alpine:3.19" / hashlib.sha256(b"alpine" * 300).hexdigest()

    def shrink_then_stream(op: archive.PlaceBlob, *args: object) -> None:
        if os.path.samefile(op.src, victim):
            victim.write_bytes(b"short")
        real_stream(op, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "_stream_blob", shrink_then_stream)
    with pytest.raises(BundleError, match="changed while packing"):
        pack(dir_bundle, tmp_path / "r.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("regpack-archive-")]


@pytest.mark.parametrize(("name", "room"), [("r.tar", 30000), ("r.tar.zst", 1000)])
def test_disk_full_is_reported_and_leaves_nothing(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, room: int
) -> None:
    real_write = os.write
    written = 0

    def full(fd: int, data: bytes | memoryview) -> int:
        nonlocal written
        if fd > 2:
            written += len(data)
            if written > room:
                raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(archive.os, "write", full)
    with pytest.raises(DestinationError, match="no space left"):
        pack(dir_bundle, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert not pipeline_threads()


def test_zstd_workers_at_slow_levels_give_the_same_archive_whatever_the_jobs(dir_bundle: Path, tmp_path: Path) -> None:
    level = archive.ONE_THREAD_UP_TO_LEVEL + 1
    pack(dir_bundle, tmp_path / "one.tar.zst", level=level, jobs=1)
    pack(dir_bundle, tmp_path / "three.tar.zst", level=level, jobs=3)
    assert (tmp_path / "one.tar.zst").read_bytes() == (tmp_path / "three.tar.zst").read_bytes()
    pack(dir_bundle, tmp_path / "r.tar")
    data = zstd_module().decompress((tmp_path / "one.tar.zst").read_bytes())
    assert data == (tmp_path / "r.tar").read_bytes()


def test_gnu_tar_reads_what_we_write(dir_bundle: Path, tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    pack(dir_bundle, tmp_path / "r.tar.zst")
    pack(dir_bundle, tmp_path / "folder")
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(tmp_path / "r.tar.zst"), "-C", str(tmp_path / "x")], check=True)
    assert tree(tmp_path / "x") == tree(tmp_path / "folder")


@pytest.mark.parametrize("chunk", [1024, 1536, 4096])
def test_chunking_does_not_change_the_archive(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    for name in ("default.tar", "default.tar.zst"):
        pack(dir_bundle, tmp_path / name)
    monkeypatch.setattr(archive, "CHUNK", chunk)  # headers and data meet chunk edges everywhere
    for name in ("small.tar", "small.tar.zst"):
        pack(dir_bundle, tmp_path / name, jobs=1 + chunk % 3)
    assert (tmp_path / "small.tar").read_bytes() == (tmp_path / "default.tar").read_bytes()
    assert (tmp_path / "small.tar.zst").read_bytes() == (tmp_path / "default.tar.zst").read_bytes()
