"""Hashing in batches: every file's result lands with that file, and verify names every bad blob wherever it
sat among the batches (small files read whole, big ones streamed on their own)."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from regpack import hashing, layouts
from regpack.errors import Cancelled
from regpack.hashing import FileToHash, hash_files
from regpack.verify import verify_bundle
from tests.core.conftest import sha, write_dir_image


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # A few files per batch and a low "big" mark, so a small bundle spans many batches and both kinds.
    monkeypatch.setattr(hashing, "BATCH_FILES", 5)
    monkeypatch.setattr(hashing, "BATCH_BYTES", 20_000)
    monkeypatch.setattr(hashing, "SMALL_FILE", 3_000)


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_follow_their_files(tmp_path: Path, small_batches: None, jobs: int) -> None:
    rng = random.Random(jobs)
    files: list[FileToHash] = []
    expected: list[tuple[str, int]] = []
    for i in range(60):
        data = rng.randbytes(rng.choice([0, 1, 100, 2_999, 3_000, 3_001, 9_000, 40_000]))
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        algorithm = "sha512" if i % 7 == 0 else "sha256"
        files.append(FileToHash(str(path), algorithm, len(data)))
        expected.append((hashlib.new(algorithm, data).hexdigest(), len(data)))
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(nbytes: int, nfiles: int) -> None:
        with lock:
            seen.append((nbytes, nfiles))

    results = hash_files(files, jobs, progress=progress)
    assert [(r.hex, r.size) for r in results] == expected
    assert all(r.error is None for r in results)
    assert sum(n for n, _ in seen) == sum(size for _, size in expected)
    assert sum(f for _, f in seen) == len(files)


def test_a_file_that_grew_shrank_or_cannot_be_read(tmp_path: Path, small_batches: None) -> None:
    grew, shrank, folder = tmp_path / "grew", tmp_path / "shrank", tmp_path / "folder"
    grew.write_bytes(b"x" * 120)
    shrank.write_bytes(b"y" * 50)
    folder.mkdir()
    files = [
        FileToHash(str(grew), "sha256", 100),
        FileToHash(str(shrank), "sha256", 100),
        FileToHash(str(folder), "sha256", 10),
        FileToHash(str(tmp_path / "gone"), "sha256", 10),
    ]
    grown, short, unreadable, gone = hash_files(files, 2)
    assert (grown.size, grown.error) == (120, None)
    assert (short.size, short.hex) == (50, sha(b"y" * 50))
    assert unreadable.error == os.strerror(21) and gone.error == os.strerror(2)  # EISDIR, ENOENT


def test_cancel_stops_hashing(tmp_path: Path, small_batches: None) -> None:
    files = []
    for i in range(40):
        (tmp_path / f"f{i}").write_bytes(b"z" * 1000)
        files.append(FileToHash(str(tmp_path / f"f{i}"), "sha256", 1000))
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        hash_files(files, 2, cancel, lambda nbytes, nfiles: cancel.set())


@pytest.mark.parametrize("jobs", [1, 2])
def test_verify_names_every_bad_blob_across_batches(tmp_path: Path, small_batches: None, jobs: int) -> None:
    root = tmp_path / "bundle"
    shared = b"shared base layer " * 300  # 5,400 bytes: streamed as a big file; a copy in every folder
    folders: dict[str, list[Path]] = {}
    for i in range(30):
        name = f"app{i}"
        layers = [shared, f"{name} small layer".encode() * (i + 1), f"{name} other".encode() * 200]
        written = write_dir_image(root / f"{name}:1", name, layers)
        folders[f"{name}:1"] = [written.folder / sha(layer) for layer in layers]
    bundle = layouts.read(root).check()

    def flip(path: Path) -> None:  # same size, other bytes: only hashing can tell
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    bad: dict[tuple[str, str], str] = {}
    for image in ("app0:1", "app7:1", "app13:1", "app29:1"):
        flip(folders[image][1])
        bad[(image, str(folders[image][1]))] = "digest-mismatch"
    for image in ("app3:1", "app21:1"):  # big files
        flip(folders[image][0])
        bad[(image, str(folders[image][0]))] = "digest-mismatch"
    grown = folders["app11:1"][2]
    with grown.open("ab") as f:
        f.write(b"more")
    bad[("app11:1", str(grown))] = "size"
    gone = folders["app17:1"][1]
    gone.unlink()
    gone.mkdir()  # replaced by a folder after reading: cannot be read as a blob
    bad[("app17:1", str(gone))] = "unreadable"

    report = verify_bundle(bundle, jobs=jobs)
    found = {(f.image, f.where): f.code for f in report.findings}
    assert found == bad
    assert report.files_hashed == 30 * 4  # every folder's own copies of its config and three layers
    grown_finding = next(f for f in report.findings if f.code == "size")
    assert "before" in grown_finding.reason and "read" in grown_finding.reason
