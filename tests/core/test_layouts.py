from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from regpack import layouts
from regpack.bundle import Layout, Role
from regpack.errors import BundleError
from regpack.jobs import pack, unpack
from regpack.layouts import registry
from regpack.manifest import Kind
from tests.core.conftest import BASE, sha, tree, write_dir_image, write_dir_list


def test_dir_tree_reads_every_image_with_references_and_roles(dir_bundle: Path) -> None:
    bundle = layouts.read(dir_bundle).check()
    assert bundle.layout is Layout.SKOPEO_DIR
    names = sorted(i.name for i in bundle.images)
    assert names == ["a/b/c:1", "alpine:3.19", "calico/node:latest", "calico/node:v3.15.1", "multi:2"]
    multi = next(i for i in bundle.images if i.name == "multi:2")
    assert multi.kind is Kind.DOCKER_LIST and multi.platforms == ("linux/amd64", "linux/arm64")
    assert len(multi.children) == 2
    assert bundle.blobs[next(iter(multi.manifest.children)).digest].role is Role.MANIFEST
    base = next(d for d in bundle.blobs if d.hex == sha(BASE))
    assert bundle.blobs[base].role is Role.LAYER


def test_version_1_0_folders_name_blobs_with_tar(tmp_path: Path) -> None:
    written = write_dir_image(tmp_path / "b" / "old:1", "old", [b"layer"])
    (written.folder / "version").write_bytes(b"Directory Transport Version: 1.0\n")
    for hex_ in written.blobs:
        os.rename(written.folder / hex_, written.folder / f"{hex_}.tar")
    bundle = layouts.read(tmp_path / "b").check()
    out = tmp_path / "out"
    pack(tmp_path / "b", out)
    assert registry.read(out).check().images[0].digest == bundle.images[0].digest


def test_digest_folder_must_match_its_manifest(tmp_path: Path) -> None:
    written = write_dir_image(tmp_path / "b" / "tmp", "x", [b"l"])
    written.folder.rename(tmp_path / "b" / f"redis@sha256:{'0' * 64}")
    bundle = layouts.read(tmp_path / "b")
    assert [p.code for p in bundle.errors] == ["digest-mismatch"]


def test_pack_writes_every_link_the_registry_needs(dir_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack(dir_bundle, out)
    v2 = out / "docker" / "registry" / "v2"
    multi = layouts.read(dir_bundle).check()
    for image in multi.images:
        repo = v2 / "repositories" / image.repository
        assert (repo / "_manifests" / "tags" / str(image.tag) / "current" / "link").read_bytes() == str(
            image.digest
        ).encode()
        assert (repo / "_manifests" / "tags" / str(image.tag) / "index" / "sha256" / image.digest.hex / "link").exists()
        for m in image.manifests:  # list children too: clients fetch them by digest from the same repository
            assert (repo / "_manifests" / "revisions" / "sha256" / m.digest.hex / "link").read_bytes() == str(
                m.digest
            ).encode()
            assert (v2 / "blobs" / "sha256" / m.digest.hex[:2] / m.digest.hex / "data").exists()
        for d in image.blob_digests():
            assert (repo / "_layers" / "sha256" / d.hex / "link").read_bytes() == str(d).encode()
    # The shared base is stored once and, in hard-link mode, is the very same inode as the source.
    base = v2 / "blobs" / "sha256" / sha(BASE)[:2] / sha(BASE) / "data"
    assert base.stat().st_ino in {p.stat().st_ino for p in dir_bundle.rglob(sha(BASE))}
    data_files = list(v2.glob("blobs/sha256/*/*/data"))
    assert len(data_files) == len(multi.blobs)


def test_round_trip_gives_identical_folders(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "packed", copy=True)
    unpack(tmp_path / "packed", tmp_path / "back", copy=True)
    assert tree(tmp_path / "back") == tree(dir_bundle)


def test_signatures_travel_beside_the_storage(tmp_path: Path) -> None:
    written = write_dir_image(tmp_path / "b" / "signed:1", "s", [b"l"])
    (written.folder / "signature-1").write_bytes(b"sig one")
    pack(tmp_path / "b", tmp_path / "p")
    unpack(tmp_path / "p", tmp_path / "u")
    assert (tmp_path / "u" / "signed:1" / "signature-1").read_bytes() == b"sig one"


def test_untagged_revision_comes_back_as_digest_folder(tmp_path: Path) -> None:
    written = write_dir_image(tmp_path / "b" / "tmp", "x", [b"l"])
    digest_name = f"redis@{written.digest}"
    written.folder.rename(tmp_path / "b" / digest_name)
    write_dir_list(tmp_path / "b" / "redis:7", "redis", BASE)
    pack(tmp_path / "b", tmp_path / "p")
    bundle = registry.read(tmp_path / "p").check()
    # the list's platform manifests are revisions too, but they are not images of their own
    assert sorted(i.name for i in bundle.images) == sorted([digest_name, "redis:7"])
    unpack(tmp_path / "p", tmp_path / "u", copy=True)
    assert tree(tmp_path / "u") == tree(tmp_path / "b")


def test_oci_layout_ref_names(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True)
    src = write_dir_image(tmp_path / "src", "x", [b"layer"])
    for hex_, data in src.blobs.items():
        (root / "blobs" / "sha256" / hex_).write_bytes(data)
    (root / "blobs" / "sha256" / sha(src.manifest)).write_bytes(src.manifest)
    desc = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": len(src.manifest),
        "digest": src.digest,
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {**desc, "annotations": {"org.opencontainers.image.ref.name": "calico/node:v1"}},
            {**desc, "annotations": {"org.opencontainers.image.ref.name": "v2"}},
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    bundle = layouts.read(root).check()
    assert bundle.layout is Layout.OCI
    assert sorted(i.name for i in bundle.images) == ["calico/node:v1", "layout:v2"]
    unpack(root, tmp_path / "u")
    assert (tmp_path / "u" / "calico" / "node:v1" / "manifest.json").read_bytes() == src.manifest


def test_stale_untagged_revision_warns_but_does_not_block(tmp_path: Path) -> None:
    write_dir_image(tmp_path / "b" / "app:1", "app", [b"l"])
    pack(tmp_path / "b", tmp_path / "p")
    # what a live registry leaves after a retag and a garbage collection: a revision link, data gone
    stale = "f" * 64
    link = tmp_path / "p/docker/registry/v2/repositories/app/_manifests/revisions/sha256" / stale / "link"
    link.parent.mkdir(parents=True)
    link.write_bytes(f"sha256:{stale}".encode())
    bundle = registry.read(tmp_path / "p").check()
    assert [i.name for i in bundle.images] == ["app:1"]
    assert [(p.severity.value, p.code) for p in bundle.problems] == [("warning", "missing-manifest")]
    unpack(tmp_path / "p", tmp_path / "u")
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == ["app:1"]


def test_a_version_file_linked_outside_the_bundle_is_reported_even_when_it_reads_right(tmp_path: Path) -> None:
    # The quick way to a version (one open that follows no link) must not accept a link the careful way refuses.
    written = write_dir_image(tmp_path / "b" / "app:1", "app", [b"layer"])
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"Directory Transport Version: 1.1\n")
    (written.folder / "version").unlink()
    (written.folder / "version").symlink_to(outside)
    bundle = layouts.read(tmp_path / "b")
    assert [(p.code, p.image) for p in bundle.problems] == [("bad-version", "app:1")]
    assert "outside the bundle" in bundle.problems[0].reason
    inside = written.folder / "version.real"
    inside.write_bytes(b"Directory Transport Version: 1.0\n")
    (written.folder / "version").unlink()
    (written.folder / "version").symlink_to(inside.name)  # a link inside: followed, as before
    codes = {p.code for p in layouts.read(tmp_path / "b").problems}
    assert codes == {"missing-blob"}  # read as 1.0, which names blobs <hex>.tar: those are not there


def test_reading_hands_the_cyclic_collector_back(dir_bundle: Path, tmp_path: Path) -> None:
    import gc

    assert gc.isenabled()
    layouts.read(dir_bundle)
    assert gc.isenabled()
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(BundleError):
            layouts.read(bad)
        assert gc.isenabled()
    gc.disable()
    try:
        layouts.read(dir_bundle)
        assert not gc.isenabled(), "a collector the caller had switched off must stay off"
    finally:
        gc.enable()


def test_image_folders_come_in_tree_order(tmp_path: Path) -> None:
    # "team/x" sorts before "team-a" by path components, as a file manager shows them.
    for name in ("team-a:1", "team/x:1", "team/a/b:1", "team.b:1"):
        write_dir_image(tmp_path / "b" / name, name, [name.encode()])
    names = [i.name for i in layouts.read(tmp_path / "b").check().images]
    assert names == ["team/a/b:1", "team/x:1", "team-a:1", "team.b:1"]
