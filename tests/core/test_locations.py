"""Where an image's files are, computed rather than stored per image: every image of a skopeo dir tree still
points at its own copies, registry storage at each blob's one file; and the folders a plan needs are made
without a list of them."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from regpack import layouts
from regpack.bundle import NO_SIGNATURES, Locations
from regpack.digest import Digest
from regpack.engine import _make_directories
from regpack.jobs import pack
from regpack.manifest import NO_ANNOTATIONS, parse_manifest
from regpack.plan import Plan
from tests.core.conftest import BASE, CONFIG, LAYER_GZ, OCI_MANIFEST, SCHEMA2, descriptor, sha, write_dir_image


def _files_of(folder: Path) -> set[str]:
    return {str(p) for p in folder.iterdir()}


def test_each_dir_image_points_at_its_own_copies(dir_bundle: Path) -> None:
    bundle = layouts.read(dir_bundle).check()
    seen_base: set[str] = set()
    for image in bundle.images:
        assert image.folder is not None
        own = os.path.realpath(image.folder)
        locations = dict(image.locations)
        # Every manifest, config and layer the image holds, in its order, each in its own folder.
        assert list(locations) == image.all_digests()
        for digest, file in locations.items():
            assert os.path.dirname(file) == own
            assert file in _files_of(Path(own))
            assert image.locations.get(digest) == file and digest in image.locations
        assert locations[image.digest] == f"{own}/manifest.json"
        seen_base.add(locations[Digest("sha256", sha(BASE))])
    # Two tags of one image and the other images share the base layer, yet each names its own copy.
    assert len(seen_base) == len(bundle.images)
    latest, v3 = (next(i for i in bundle.images if i.name == f"calico/node:{t}") for t in ("latest", "v3.15.1"))
    assert latest.digest == v3.digest  # one manifest, two folders: each tag names its own copy
    assert {latest.locations[v3.digest], v3.locations[v3.digest]} == {
        f"{os.path.realpath(i.folder)}/manifest.json" for i in (latest, v3) if i.folder is not None
    }
    node = v3
    assert Digest("sha256", "0" * 64) not in node.locations
    with pytest.raises(KeyError):
        node.locations[Digest("sha256", "0" * 64)]


def test_registry_images_point_at_the_blob_files(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "reg")
    bundle = layouts.read(tmp_path / "reg").check()
    for image in bundle.images:
        assert isinstance(image.locations, Locations)
        assert image.signatures is NO_SIGNATURES
        assert dict(image.locations) == {d: bundle.blobs[d].file for d in image.all_digests()}
        assert all(file.endswith(f"/{d.hex}/data") for d, file in image.locations.items())


def test_a_missing_blob_has_no_location(dir_bundle: Path) -> None:
    layer = dir_bundle / "alpine:3.19" / sha(b"alpine" * 300)
    layer.unlink()
    bundle = layouts.read(dir_bundle)
    image = next(i for i in bundle.images if i.name == "alpine:3.19")
    missing = Digest("sha256", sha(b"alpine" * 300))
    assert missing in image.all_digests() and missing not in image.locations
    assert len(image.locations) == len(image.all_digests()) - 1
    assert any(p.image == "alpine:3.19" and "missing" in p.reason for p in bundle.problems)


def test_files_reached_another_way_keep_the_path_found(tmp_path: Path) -> None:
    """A blob that is a symbolic link to another folder's copy, and an old (1.0) folder naming blobs <hex>.tar,
    are not where the folder rule would put them: their locations are the files really read."""
    root = tmp_path / "b"
    first = write_dir_image(root / "one:1", "one", [BASE, b"one" * 100])
    write_dir_image(root / "two:1", "two", [BASE, b"two" * 100])
    base = root / "two:1" / sha(BASE)
    base.unlink()
    base.symlink_to(first.folder / sha(BASE))
    old = write_dir_image(root / "old:1", "old", [BASE, b"old" * 100])
    (old.folder / "version").write_bytes(b"Directory Transport Version: 1.0\n")
    for hex_ in old.blobs:
        (old.folder / hex_).rename(old.folder / f"{hex_}.tar")
    bundle = layouts.read(root).check()
    by_name = {i.name: i for i in bundle.images}
    base_digest = Digest("sha256", sha(BASE))
    assert by_name["two:1"].locations[base_digest] == os.path.realpath(first.folder / sha(BASE))
    real_old = os.path.realpath(old.folder)
    for digest, file in by_name["old:1"].locations.items():
        name = "manifest.json" if digest == by_name["old:1"].digest else f"{digest.hex}.tar"
        assert file == f"{real_old}/{name}"


def test_manifests_share_one_descriptor_per_reference_and_type() -> None:
    """The same blob named with two media types (a Docker and an OCI manifest) stays two references, each one
    object across manifests; manifests without annotations share one empty mapping."""
    shared: dict[tuple[str, str], tuple[object, ...]] = {}
    config = b"{}"
    docs = [
        {"schemaVersion": 2, "mediaType": media_type, "config": descriptor(config, CONFIG), "layers": [layer]}
        for media_type, layer in [
            (SCHEMA2, descriptor(BASE, LAYER_GZ)),
            (SCHEMA2, descriptor(BASE, LAYER_GZ)),
            (OCI_MANIFEST, descriptor(BASE, "application/vnd.oci.image.layer.v1.tar+gzip")),
            (OCI_MANIFEST, descriptor(BASE, "application/vnd.oci.image.layer.v1.tar+gzip")),
        ]
    ]
    docs[3]["annotations"] = {"org.example": "x"}
    parsed = [parse_manifest(json.dumps(d).encode(), shared=shared) for d in docs]  # type: ignore[arg-type]
    docker, docker2, oci, oci2 = (m.layers[0] for m in parsed)
    assert docker is docker2 and oci is oci2 and docker is not oci
    assert docker.media_type == LAYER_GZ and oci.media_type.endswith("tar+gzip") and oci.digest == docker.digest
    assert parsed[0].annotations is NO_ANNOTATIONS and dict(parsed[3].annotations) == {"org.example": "x"}
    # The table keeps the Digest objects the Descriptors hold, no text of its own.
    assert all(key is found[0].digest for key, found in shared.items())  # type: ignore[attr-defined]


def test_folders_are_made_for_every_file_whatever_the_order(tmp_path: Path) -> None:
    """More folders than are remembered, then files back in the first ones, and deep new branches: every
    folder exists, nothing else does."""
    plan = Plan()
    for n in range(700):
        plan.write(f"r/{n % 7}/d{n}/link", b"x")
    plan.write("r/0/d0/second", b"y")  # a folder made long ago and forgotten
    plan.write("deep/a/b/c/d/e/file", b"z")
    plan.place("/nowhere", "r/1/blob", 1)
    root = tmp_path / "out"
    root.mkdir()
    _make_directories(root, plan, threading.Event())
    made = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    assert all((root / p).is_dir() for p in made)
    assert made == set(plan.directories())


def test_reading_registry_storage_forgets_each_repository_s_folders(tmp_path: Path) -> None:
    """A repository's folders are read once: the tree must not keep what it learnt of them (at 100,000 images
    that was 3 KiB an image, more than the images themselves). The blobs' folders, shared by every repository,
    may stay."""
    from regpack.layouts import registry
    from regpack.layouts._common import SafeRoot
    from tests.support.synth import generate

    generate(tmp_path / "src", images=30, layers=2, blob_size=64, lists=2, seed=7, link=True)
    pack(tmp_path / "src", tmp_path / "storage")
    tree = SafeRoot(tmp_path / "storage")
    bundle = registry.read(tmp_path / "storage", tree)
    assert len(bundle.images) == 30 and not bundle.problems
    kept = [*tree._dirs, *tree._plain]  # what the folder's tree still holds once the read is done
    assert not [k for k in kept if "/_manifests" in k or "/_layers" in k]
    assert not [k for k in tree._plain if k.endswith(("/app-3", "/app-4"))]  # the repositories themselves
