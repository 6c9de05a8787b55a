"""Reading archives directly: the same Bundle as the folder they hold; verify, unpack, pack and merge from them."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from regpack import layouts
from regpack.archive import zstd_module
from regpack.bundle import Layout
from regpack.cli import main
from regpack.errors import BundleError, DestinationError
from regpack.jobs import pack, unpack
from regpack.layouts.archive import ArchiveSource
from regpack.verify import verify
from tests.core.conftest import BASE, tree, write_dir_image


def summary(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    bundle = layouts.read(path).check()
    return sorted((i.name, str(i.digest), tuple(str(d) for d in i.blob_digests())) for i in bundle.images)


def tar_of(folder: Path, dest: Path, prefix: str = "") -> Path:
    """A tar of a folder as a user makes one by hand (tarfile: GNU format, its own order and times)."""
    with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(folder, arcname=prefix or ".")
    return dest


@pytest.fixture
def packed(dir_bundle: Path, tmp_path: Path) -> Path:
    pack(dir_bundle, tmp_path / "storage")
    return tmp_path / "storage"


@pytest.mark.parametrize("name", ["r.tar", "r.tar.zst"])
def test_archive_reads_as_the_storage_it_holds(dir_bundle: Path, packed: Path, tmp_path: Path, name: str) -> None:
    pack(dir_bundle, tmp_path / name)
    bundle = layouts.read(tmp_path / name).check()
    assert bundle.layout is Layout.REGISTRY
    assert isinstance(bundle.source, ArchiveSource)
    assert bundle.root == tmp_path / name
    assert summary(tmp_path / name) == summary(packed)
    assert {d: b.size for d, b in bundle.blobs.items()} == {d: b.size for d, b in layouts.read(packed).blobs.items()}


def test_split_archive_is_read_by_its_first_part_or_its_name(dir_bundle: Path, packed: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar", split=16384)
    assert len(list(tmp_path.glob("r.tar.0*"))) > 1
    assert summary(tmp_path / "r.tar.000") == summary(packed)
    assert summary(tmp_path / "r.tar") == summary(packed)
    assert verify(tmp_path / "r.tar.000").ok
    bundle = layouts.read(tmp_path / "r.tar.000")
    assert isinstance(bundle.source, ArchiveSource) and len(bundle.source.parts) > 1


def test_tar_of_a_skopeo_tree_and_of_an_oci_layout_in_a_subfolder(
    dir_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tar_of(dir_bundle, tmp_path / "dirs.tar")
    assert summary(tmp_path / "dirs.tar") == summary(dir_bundle)
    assert layouts.read(tmp_path / "dirs.tar").layout is Layout.SKOPEO_DIR
    # an OCI layout under images/ beside other files, as a zarf package holds it
    oci = tmp_path / "pkg"
    (oci / "images" / "blobs" / "sha256").mkdir(parents=True)
    (oci / "zarf.yaml").write_text("kind: ZarfPackageConfig\n")
    single = write_dir_image(tmp_path / "one", "one", [BASE])
    for hex_, data in single.blobs.items():
        (oci / "images" / "blobs" / "sha256" / hex_).write_bytes(data)
    (oci / "images" / "blobs" / "sha256" / hashlib.sha256(single.manifest).hexdigest()).write_bytes(single.manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": single.digest,
                "size": len(single.manifest),
                "annotations": {"org.opencontainers.image.ref.name": "example/one:1.0"},
            }
        ],
    }
    (oci / "images" / "index.json").write_text(json.dumps(index))
    (oci / "images" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    tar_of(oci, tmp_path / "pkg.tar")
    bundle = layouts.read(tmp_path / "pkg.tar").check()
    assert bundle.layout is Layout.OCI and [i.name for i in bundle.images] == ["example/one:1.0"]
    assert main(["inspect", str(tmp_path / "pkg.tar")]) == 0
    assert "oci in a tar, at images/" in capsys.readouterr().out
    assert verify(tmp_path / "pkg.tar").ok


def test_gnu_made_tar_of_storage_reads_and_verifies(packed: Path, tmp_path: Path) -> None:
    tar_of(packed, tmp_path / "by-hand.tar")
    assert summary(tmp_path / "by-hand.tar") == summary(packed)
    report = verify(tmp_path / "by-hand.tar")
    assert report.ok and report.files_hashed > 0


def test_verify_names_a_corrupt_layer_by_image_and_member(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    data = bytearray((tmp_path / "r.tar").read_bytes())
    alpine_layer = b"alpine" * 300
    at = data.find(alpine_layer)
    data[at + 10] ^= 0xFF
    (tmp_path / "r.tar").write_bytes(bytes(data))
    (tmp_path / "r.tar.sha256").unlink()
    assert layouts.read(tmp_path / "r.tar").check()  # inspect reads no layer bytes
    report = verify(tmp_path / "r.tar")
    assert not report.ok
    [finding] = report.errors
    hex_ = hashlib.sha256(alpine_layer).hexdigest()
    assert finding.image == "alpine:3.19" and finding.code == "digest-mismatch"
    assert finding.where == f"{tmp_path / 'r.tar'}:docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def test_verify_checks_the_sidecar(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar", split=16384)
    sidecar = tmp_path / "r.tar.sha256"
    lines = sidecar.read_text().splitlines()
    lines[0] = "0" * 64 + lines[0][64:]
    sidecar.write_text("\n".join(lines) + "\n")
    report = verify(tmp_path / "r.tar")
    assert [(f.code, "r.tar.000 hashes to" in f.reason) for f in report.errors] == [("sidecar", True)]
    sidecar.write_text("\n".join(lines[1:]) + "\n")
    assert [f.reason for f in verify(tmp_path / "r.tar").errors] == ["the sidecar does not list r.tar.000"]


def test_unpack_writes_each_blob_once_and_links_the_rest(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar.zst")
    unpack(dir_bundle, tmp_path / "from-folder")
    result = unpack(tmp_path / "r.tar.zst", tmp_path / "from-archive", verify=True)
    assert tree(tmp_path / "from-archive") == tree(tmp_path / "from-folder")
    assert result.bytes_copied == 0  # every blob written once beside, then hard-linked
    base = hashlib.sha256(BASE).hexdigest()
    inodes = {p.stat().st_ino for p in (tmp_path / "from-archive").rglob(base)}
    assert len(list((tmp_path / "from-archive").rglob(base))) == 5 and len(inodes) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bundle",
        "from-archive",
        "from-folder",
        "r.tar.zst",
        "r.tar.zst.sha256",
    ]


def test_pack_from_archive_to_folder_and_to_archive(dir_bundle: Path, packed: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    pack(tmp_path / "r.tar", tmp_path / "again")
    assert tree(tmp_path / "again") == tree(packed)
    tar_of(dir_bundle, tmp_path / "dirs.tar")
    pack(tmp_path / "dirs.tar", tmp_path / "again.tar", verify=True)
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "r.tar").read_bytes()


def test_merge_applies_an_archive_into_existing_storage(dir_bundle: Path, tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    write_dir_image(tmp_path / "first" / "alpine:3.19", "alpine", [BASE, b"alpine" * 300])
    pack(tmp_path / "first", storage)
    pack(dir_bundle, tmp_path / "r.tar.zst")
    result = pack(tmp_path / "r.tar.zst", storage, merge=True, verify=True)
    assert result.skipped > 0
    assert summary(storage) == summary(tmp_path / "r.tar.zst")
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_bad_destination_is_refused_before_the_archive_is_read(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep").write_text("mine")
    with pytest.raises(DestinationError, match="not empty"):
        unpack(tmp_path / "r.tar", tmp_path / "dest")
    assert tree(tmp_path / "dest") == {"keep": b"mine"}
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_the_view_goes_away_with_the_bundle(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar")
    bundle = layouts.read(tmp_path / "r.tar")
    assert isinstance(bundle.source, ArchiveSource)
    view = Path(bundle.source.view_root)
    assert view.is_dir()
    del bundle
    gc.collect()
    assert not view.exists()


def test_the_view_records_every_entry_it_makes_for_its_removal(dir_bundle: Path, tmp_path: Path) -> None:
    """Files first, folders never listed, deep names: every folder made on the way is recorded, so removing the
    view needs no listing of it (a dir tree inside an archive is read from a view of real files)."""
    with tarfile.open(tmp_path / "files-only.tar", "w", format=tarfile.GNU_FORMAT) as tf:
        for path in sorted(dir_bundle.rglob("*"), reverse=True):
            if path.is_file():
                tf.add(path, arcname=str(path.relative_to(dir_bundle)))
    bundle = layouts.read(tmp_path / "files-only.tar")
    assert summary(tmp_path / "files-only.tar") == summary(dir_bundle)
    assert isinstance(bundle.source, ArchiveSource)
    view = bundle.source.view
    found_files, found_folders = set(), set()
    for folder, dirs, files in os.walk(view.name):
        found_folders.update(f"{folder}/{d}" for d in dirs)
        found_files.update(f"{folder}/{f}" for f in files)
    assert found_files and found_files == set(view.files)
    assert found_folders and found_folders == set(view.folders)
    del bundle, view
    gc.collect()
    assert not any(Path(p).exists() for p in found_folders)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("docker/registry/v2/", "docker/registry/v2"),
        ("a/b", "a/b"),
        ("./a/b/", "a/b"),
        ("./", None),
        (".hidden/x", ".hidden/x"),
        ("a/.wh.x", "a/.wh.x"),
        ("a..b/c", "a..b/c"),
    ],
)
def test_member_names_accepted(raw: str, name: str | None) -> None:
    from regpack.layouts.archive import _normalise

    assert _normalise(raw, Path("r.tar")) == name


@pytest.mark.parametrize("raw", ["/a", "a/../b", "..", "a/..", "a//b", "a/./b", "a/.", "a\0b", "./../x"])
def test_member_names_refused(raw: str) -> None:
    from regpack.layouts.archive import _normalise

    with pytest.raises(BundleError):
        _normalise(raw, Path("r.tar"))


def test_cli_inspect_json_says_what_was_inside(
    dir_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack(dir_bundle, tmp_path / "r.tar.zst")
    assert main(["inspect", "--json", str(tmp_path / "r.tar.zst")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layout"] == "registry"
    assert doc["archive"] == {
        "compression": "zstd",
        "parts": [str(tmp_path / "r.tar.zst")],
        "inside": "",
        "layout": "registry",
    }
    assert len(doc["images"]) == 5


def test_big_members_cost_no_disk_in_the_view(tmp_path: Path) -> None:
    big = os.urandom(64 << 10) * 96  # 6 MiB, over the size kept in memory
    small = os.urandom(4096)  # a small layer: not kept either, as it cannot be a manifest or config
    write_dir_image(tmp_path / "b" / "big:1", "big", [big, small])
    pack(tmp_path / "b", tmp_path / "r.tar")
    bundle = layouts.read(tmp_path / "r.tar").check()
    source = bundle.source
    assert isinstance(source, ArchiveSource)
    for layer in (big, small):
        blob = bundle.blobs[next(d for d, b in bundle.blobs.items() if b.size == len(layer))]
        assert blob.file is not None and source.member_at(blob.file) is not None
        assert not os.path.lexists(blob.file)  # registry storage is read from the index: no file behind it
        assert source.name_of(blob.file) not in source.data
    # asked for as a file, a big member becomes a sparse file of its size
    blob = bundle.blobs[next(d for d, b in bundle.blobs.items() if b.size == len(big))]
    assert blob.file is not None
    st = os.stat(source.local(blob.file))
    assert st.st_size == len(big) and st.st_blocks * 512 < len(big) // 8
    assert verify(tmp_path / "r.tar").ok
    unpack(tmp_path / "r.tar", tmp_path / "out")
    hex_ = hashlib.sha256(big).hexdigest()
    assert (tmp_path / "out" / "big:1" / hex_).read_bytes() == big


def test_not_an_archive_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(Exception, match="not a tar, zstd or gzip archive"):
        layouts.read(tmp_path / "notes.txt")
    gz = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=gz, mode="wb") as f:
        f.write(b"x")  # a gzip file, but not of a tar
    (tmp_path / "a.tar.gz").write_bytes(gz.getvalue())
    with pytest.raises(BundleError, match="truncated"):
        layouts.read(tmp_path / "a.tar.gz")


def test_manifests_and_configs_bigger_than_the_view_keeps_are_read(tmp_path: Path) -> None:
    from tests.core.conftest import CONFIG, LAYER_GZ, SCHEMA2, descriptor, sha
    from tests.support.ocibuild import write_dir_folder

    folder = tmp_path / "b" / "wide:1"
    layers = [f"layer {i}".encode() * 20 for i in range(450)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"x": "y" * 100_000}}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": descriptor(config, CONFIG),
            "layers": [descriptor(layer, LAYER_GZ) for layer in layers],
        },
        indent=3,
    ).encode()
    assert len(manifest) > 64 << 10 and len(config) > 64 << 10
    write_dir_folder(folder, manifest, blobs=[config, *layers])
    for name in ("r.tar.zst", "r.tar"):
        pack(tmp_path / "b", tmp_path / name)
        bundle = layouts.read(tmp_path / name).check()
        [image] = bundle.images
        assert image.name == "wide:1" and len(image.manifest.layers) == 450
        config_file = bundle.blobs[image.manifest.config.digest].file  # type: ignore[union-attr]
        assert config_file is not None and Path(layouts.readable(bundle, config_file)).read_bytes() == config
    tar_of(tmp_path / "b", tmp_path / "dirs.tar")
    assert summary(tmp_path / "dirs.tar") == summary(tmp_path / "b")
    # the same image in an OCI layout: index.json names the manifest, which is bigger than the view keeps
    oci = tmp_path / "oci"
    (oci / "blobs" / "sha256").mkdir(parents=True)
    for data in (manifest, config, *layers):
        (oci / "blobs" / "sha256" / sha(data)).write_bytes(data)
    ref = {"org.opencontainers.image.ref.name": "wide:1"}
    index = {"schemaVersion": 2, "manifests": [descriptor(manifest, SCHEMA2, annotations=ref)]}
    (oci / "index.json").write_text(json.dumps(index))
    (oci / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    tar_of(oci, tmp_path / "oci.tar")
    zstd = zstd_module()
    (tmp_path / "oci.tar.zst").write_bytes(zstd.compress((tmp_path / "oci.tar").read_bytes()))
    for name in ("oci.tar", "oci.tar.zst"):
        assert summary(tmp_path / name) == summary(oci)


def test_views_left_by_killed_runs_are_removed(
    dir_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"regpack-view-{dead.stdout.strip()}-abc"
    (stale / "docker").mkdir(parents=True)
    alive = tmp_path / f"regpack-view-{os.getppid()}-abc"
    alive.mkdir()
    pack(dir_bundle, tmp_path / "r.tar")
    bundle = layouts.read(tmp_path / "r.tar")
    assert isinstance(bundle.source, ArchiveSource)
    assert Path(bundle.source.view_root).parent == tmp_path
    assert not stale.exists() and alive.exists()


def test_inspect_of_a_zstd_archive_reads_only_its_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import regpack.layouts.archive as reader

    for i in range(3):
        write_dir_image(tmp_path / "b" / f"img{i}:1", f"img{i}", [BASE, os.urandom(4 << 20)])
    pack(tmp_path / "b", tmp_path / "r.tar.zst")
    size = (tmp_path / "r.tar.zst").stat().st_size
    read = 0
    real_read = reader._read_into

    def counting(file: Any, view: memoryview) -> int:
        nonlocal read
        n = real_read(file, view)
        read += n
        return n

    monkeypatch.setattr(reader, "_read_into", counting)
    bundle = layouts.read(tmp_path / "r.tar.zst").check()
    assert len(bundle.images) == 3
    assert read < size // 8, f"read {read} of {size} bytes to list the images"
    read = 0
    assert verify(tmp_path / "r.tar.zst").ok  # the full read still checks every byte
    assert read >= size
    # zstd and GNU tar read the archive as any zstd stream (the seek table is a skippable frame)
    data = zstd_module().decompress((tmp_path / "r.tar.zst").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert (
            len([m for m in tf.getmembers() if m.isfile()]) == len(bundle.blobs) + 3 * 6
        )  # and six link files an image


@pytest.mark.parametrize("shift", [100, 512, 1024])
def test_a_lying_seek_table_is_refused(tmp_path: Path, shift: int) -> None:
    write_dir_image(tmp_path / "b" / "img:1", "img", [os.urandom(1 << 20), os.urandom(1 << 20)])
    pack(tmp_path / "b", tmp_path / "r.tar.zst")
    (tmp_path / "r.tar.zst.sha256").unlink()
    data = bytearray((tmp_path / "r.tar.zst").read_bytes())
    count = int.from_bytes(data[-9:-5], "little")
    table = len(data) - 9 - 8 * count
    assert count == 6  # the head; per layer a frame of its folders and header, one of its data; the end
    # the first layer's data frame claims less, the next layer's header frame starts that much earlier:
    # the sums still add up, but a jump to the second layer lands inside its headers
    for frame, delta in ((2, -shift), (3, shift)):
        at = table + 8 * frame + 4
        data[at : at + 4] = (int.from_bytes(data[at : at + 4], "little") + delta).to_bytes(4, "little")
    (tmp_path / "r.tar.zst").write_bytes(bytes(data))
    try:
        layouts.read(tmp_path / "r.tar.zst").check()
    except BundleError as e:
        assert "corrupt tar header" in e.reason  # refused while listing
        return
    # listed (whole headers skipped), but every read of the bytes compares with the listing
    report = verify(tmp_path / "r.tar.zst")
    assert not report.ok and "seek table" in report.errors[0].reason
    with pytest.raises(BundleError, match="seek table"):
        unpack(tmp_path / "r.tar.zst", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [300 << 10, (4 << 20) + 4096])
def test_a_member_read_on_demand_keeps_its_bytes_whatever_the_read_buffers(tmp_path: Path, size: int) -> None:
    """A member the index did not keep spans several reads of the archive, whose buffer is filled again by each:
    what is brought in must be the member's bytes, not the last buffer's, below and above the manifest limit."""
    from regpack.layouts.archive import open_archive

    rng = os.urandom
    filler, wanted = rng(20 << 10), rng(size)
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("first", filler), ("wanted", wanted), ("last", filler)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = open_archive(path)
    try:
        assert "wanted" not in source.data  # too big for the index to keep: read again on demand
        assert source.read_member("wanted", size + 1) == wanted
    finally:
        source.view.cleanup()
