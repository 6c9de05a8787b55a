"""verify of registry storage on disk: small blobs are hashed while the storage is read, the others after it.

Whichever way a blob is hashed, a user sees the same report: the same findings, in the same order, naming the
same image, file and reason as hashing every blob after the read (``verify_bundle`` of a plain read)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import regpack.verify as verify_module
from regpack import hashing, layouts
from regpack.hashing import FileToHash
from regpack.jobs import pack
from regpack.verify import Report, verify, verify_bundle
from tests.core import corpus
from tests.core.conftest import BASE, sha, write_dir_image

V2 = Path("docker/registry/v2")


def _data(storage: Path, data: bytes) -> Path:
    hex_ = sha(data)
    return storage / V2 / "blobs/sha256" / hex_[:2] / hex_ / "data"


def _seen(report: Report) -> list[tuple[str, str, str, str, str | None]]:
    return [(f.severity.value, f.code.value, f.reason, f.where, f.image) for f in report.findings]


def _same_as_hashing_after_the_read(storage: Path) -> Report:
    report = verify(storage)
    after = verify_bundle(layouts.read(storage))
    assert _seen(report) == _seen(after)
    assert (report.images, report.files_hashed, report.bytes_hashed) == (
        after.images,
        after.files_hashed,
        after.bytes_hashed,
    )
    return report


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """Registry storage of five images: a shared base, one layer of each size class per image."""
    src = tmp_path / "src"
    for i in range(5):
        write_dir_image(src / f"team/app{i}:1.{i}", f"app{i}", [BASE, f"layer {i} ".encode() * (100 + 50 * i)])
    write_dir_image(src / "big:1", "big", [BASE, os.urandom(300_000)])
    pack(src, tmp_path / "reg")
    return tmp_path / "reg"


def test_small_blobs_are_hashed_while_reading_and_big_ones_after(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blobs up to 200,000 bytes count as small here: the big image's own layer is left to the pool.
    monkeypatch.setattr(verify_module, "SMALL_FILE", 200_000)
    handed: list[FileToHash] = []
    real_hash_files = hashing.hash_files

    def spy(files: list[FileToHash], *args: object, **kw: object) -> object:
        handed.extend(files)
        return real_hash_files(files, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "hash_files", spy)
    report = verify(storage)
    assert report.ok and len(report.images) == 6
    assert [f.size for f in handed] == [300_000]
    # Every config and layer was hashed, once each: the big one by the pool, the others while reading.
    assert report.files_hashed == 13  # 6 configs, the shared base, 6 own layers


def test_corrupt_blobs_are_named_as_when_hashed_after_the_read(storage: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "SMALL_FILE", 200_000)
    flipped = _data(storage, b"layer 1 " * 150)
    flipped.write_bytes(b"X" + flipped.read_bytes()[1:])  # same size, other bytes: only hashing finds it
    grown = _data(storage, b"layer 3 " * 250)
    with grown.open("ab") as f:
        f.write(b"more")  # the reader names the size
    report = _same_as_hashing_after_the_read(storage)
    codes = {(f.code.value, f.image) for f in report.findings}
    assert ("digest-mismatch", "team/app1:1.1") in codes
    assert ("size", "team/app3:1.3") in codes
    assert [f.where for f in report.findings if f.code.value == "digest-mismatch"] == [str(flipped)]


def test_a_blob_whose_data_is_a_hard_link_to_another_blobs_data_is_named(tmp_path: Path) -> None:
    # Two layers of one size; the second's data file replaced by a hard link to the first's: the registry
    # would serve the first layer's bytes for the second. Hashing the file once for both names would miss it.
    src = tmp_path / "src"
    first, second = b"a" * 5000, b"b" * 5000
    write_dir_image(src / "one:1", "one", [first])
    write_dir_image(src / "two:1", "two", [second])
    storage = tmp_path / "reg"
    pack(src, storage)
    linked = _data(storage, second)
    linked.unlink()
    os.link(_data(storage, first), linked)
    report = _same_as_hashing_after_the_read(storage)
    assert [(f.code.value, f.image, f.where) for f in report.findings] == [("digest-mismatch", "two:1", str(linked))]
    assert f"expected sha256:{sha(second)}" in report.findings[0].reason


def test_tag_link_in_a_folder_that_links_outside_is_refused(storage: Path, tmp_path: Path) -> None:
    # The tag's current folder is a symbolic link to a folder outside holding the right digest: not read.
    current = storage / V2 / "repositories/team/app2/_manifests/tags/1.2/current"
    outside = tmp_path / "outside-current"
    current.rename(outside)
    current.symlink_to(outside)
    report = _same_as_hashing_after_the_read(storage)
    assert "team/app2:1.2" not in report.images
    [finding] = [f for f in report.findings if f.image == "team/app2:1.2"]
    assert finding.code.value == "unsafe" and "links outside the bundle" in finding.reason
    assert finding.where == str(current / "link")


def test_tag_link_that_is_a_symbolic_link_inside_the_bundle_is_followed(storage: Path) -> None:
    # A link file that is itself a symbolic link to a file inside holding the right digest: read as before.
    link = storage / V2 / "repositories/team/app4/_manifests/tags/1.4/current/link"
    copy = storage / "current-link-copy"
    copy.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(copy)
    report = _same_as_hashing_after_the_read(storage)
    assert report.ok and "team/app4:1.4" in report.images


@pytest.mark.parametrize("case", [c for c in corpus.CASES if c.layout == "registry"], ids=lambda c: c.id)
def test_every_registry_case_of_the_corpus_reads_the_same(case: corpus.Case, tmp_path: Path) -> None:
    _same_as_hashing_after_the_read(case.make(tmp_path))


def test_a_link_folder_whose_name_is_not_utf8_is_named(storage: Path) -> None:
    # A folder under _layers/sha256 whose name is not UTF-8, holding a well-formed link: named, not a crash.
    layers = storage / V2 / "repositories/team/app0/_layers/sha256"
    some = next(layers.iterdir())
    odd = corpus.raw_mkdir(layers, b"\xff" + some.name.encode()[1:])
    (odd / "link").write_bytes((some / "link").read_bytes())
    report = _same_as_hashing_after_the_read(storage)
    [finding] = report.findings
    assert (finding.code.value, finding.repository) == ("bad-link", "team/app0")
    assert "its folder says" in finding.reason


def test_a_layer_link_that_is_a_symbolic_link_out_of_the_bundle_is_refused(storage: Path, tmp_path: Path) -> None:
    layers = storage / V2 / "repositories/team/app3/_layers/sha256"
    link = next(layers.iterdir()) / "link"
    outside = tmp_path / "outside-link"
    outside.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(outside)
    report = _same_as_hashing_after_the_read(storage)
    assert not report.ok
    assert [(f.code.value, f.where) for f in report.findings if f.code.value == "unsafe"] == [("unsafe", str(link))]


def test_a_blob_reached_through_a_symbolic_link_inside_the_bundle_is_hashed(storage: Path) -> None:
    # The data file is a symbolic link to a copy elsewhere inside the bundle: followed (it stays inside), and
    # its bytes are checked like any other's.
    data = _data(storage, b"layer 2 " * 200)
    copy = storage / "elsewhere-data"
    copy.write_bytes(b"Y" + data.read_bytes()[1:])  # and damaged: hashing must find it
    data.unlink()
    data.symlink_to(copy)
    report = _same_as_hashing_after_the_read(storage)
    assert [(f.code.value, f.image, f.where) for f in report.findings] == [
        ("digest-mismatch", "team/app2:1.2", str(copy))
    ]
