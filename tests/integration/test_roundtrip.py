"""Round trips through the real tools: what regpack packs, the real docker-registry serves and skopeo pulls;
what the real registry stored, regpack unpacks into folders skopeo reads. Every image is compared byte for
byte with what skopeo itself wrote."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import ocibuild as ob
from tests.support.catalog import Generated, RealBundle
from tests.support.tools import Registry, Skopeo, run_cli, start_registry
from tests.support.trees import copy_tree, file_sha256, leftovers, registry_blob_files, tree_bytes

pytestmark = pytest.mark.integration

Serve = Callable[[Path], Registry]


def cli_ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == 0, f"regpack {' '.join(map(str, args))} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def image_folders(root: Path) -> dict[str, Path]:
    """Reference ("repo:tag") -> folder of every skopeo dir image folder below root."""
    return {p.parent.relative_to(root).as_posix(): p.parent for p in sorted(root.rglob("manifest.json"))}


def dir_blobs(root: Path) -> tuple[int, dict[str, int], dict[str, set[int]]]:
    """Computed from the files alone: bytes of every image folder (manifests and blobs, not ``version``),
    size of every distinct blob by digest, and the inodes holding each digest."""
    dir_bytes = 0
    sizes: dict[str, int] = {}
    inodes: dict[str, set[int]] = {}
    for folder in image_folders(root).values():
        for path in sorted(folder.iterdir()):
            if path.name == "version":
                continue
            digest = file_sha256(path)
            if path.name != "manifest.json":
                assert path.name in (digest[7:], digest[7:] + ".manifest.json"), f"{path} does not hash to its name"
            size = path.stat().st_size
            dir_bytes += size
            sizes[digest] = size
            inodes.setdefault(digest, set()).add(path.stat().st_ino)
    return dir_bytes, sizes, inodes


def assert_served(
    registry: Registry, skopeo: Skopeo, expected: dict[str, Path], work: Path, *, compare_folders: bool = True
) -> None:
    """Every reference is served with the exact manifest bytes of its original folder, and pulls whole."""
    for ref, folder in expected.items():
        original = (folder / "manifest.json").read_bytes()
        raw = skopeo.inspect_raw(registry.ref(ref))
        assert ob.sha256(raw) == ob.sha256(original), f"{ref}: served manifest digest differs"
        if compare_folders:
            pulled = work / "pulled" / ref
            pulled.parent.mkdir(parents=True, exist_ok=True)
            skopeo.copy(registry.ref(ref), f"dir:{pulled}")
            assert tree_bytes(pulled) == tree_bytes(folder), f"{ref}: pulled folder differs from the original"


@pytest.fixture(scope="module")
def packed(real_bundle: RealBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real dir bundle packed in the default (hard-link) mode."""
    dest = tmp_path_factory.mktemp("packed") / "storage"
    cli_ok("pack", real_bundle.dir_root, "-o", dest, "--quiet")
    return dest


def test_real_bundle_covers_every_case(real_bundle: RealBundle) -> None:
    """The bundle the other tests use really holds what they claim to cover (skopeo may convert)."""
    folders = image_folders(real_bundle.dir_root)
    assert sorted(folders) == real_bundle.refs

    def media_type(ref: str) -> str:
        return str(json.loads((folders[ref] / "manifest.json").read_bytes())["mediaType"])

    assert media_type("calico/node:v3.15.1") == ob.DOCKER_MANIFEST
    assert media_type("calico/cni:v3.15.1") == ob.DOCKER_LIST
    assert media_type("multi/arch:1.0") == ob.OCI_INDEX
    assert media_type("alpine:3.19") == ob.OCI_MANIFEST
    abc = json.loads((folders["a/b/c:1"] / "manifest.json").read_bytes())
    assert ob.OCI_LAYER_ZSTD in [layer["mediaType"] for layer in abc["layers"]]
    base = real_bundle.catalog.base.blob.hex
    assert all((f / base).is_file() for f in folders.values()), "every image shares the base layer"
    assert len(list(folders["multi/arch:1.0"].glob("*.manifest.json"))) == 2


def test_packed_storage_is_served_by_the_real_registry(
    real_bundle: RealBundle, packed: Path, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    registry = serve_readonly(packed)
    assert_served(registry, skopeo, image_folders(real_bundle.dir_root), tmp_path)
    # platform manifests are fetched by digest from the same repository
    for child in (real_bundle.folder("multi/arch:1.0")).glob("*.manifest.json"):
        digest = "sha256:" + child.name.split(".")[0]
        assert skopeo.inspect_raw(registry.ref(f"multi/arch@{digest}")) == child.read_bytes()


def test_unpack_of_the_real_registry_storage(real_bundle: RealBundle, skopeo: Skopeo, tmp_path: Path) -> None:
    out = tmp_path / "unpacked"
    cli_ok("unpack", real_bundle.storage_root, "-o", out, "--quiet")
    folders = image_folders(out)
    assert sorted(folders) == real_bundle.refs
    v2 = real_bundle.storage_root / "docker" / "registry" / "v2"
    for n, (ref, folder) in enumerate(sorted(folders.items())):
        repository, tag = ob.split_ref(ref)
        current = (v2 / "repositories" / repository / "_manifests" / "tags" / tag / "current" / "link").read_bytes()
        digest = file_sha256(folder / "manifest.json")
        assert digest == current.decode()
        assert digest == ob.sha256(skopeo.inspect_raw(real_bundle.registry.ref(ref)))
        skopeo.copy(f"dir:{folder}", f"oci:{tmp_path / f'oci-{n}'}:x")
    # the registry's own storage unpacks to exactly what skopeo pulled from that registry
    assert tree_bytes(out) == tree_bytes(real_bundle.dir_root)


def test_pack_then_unpack_gives_back_identical_folders(packed: Path, real_bundle: RealBundle, tmp_path: Path) -> None:
    out = tmp_path / "back"
    cli_ok("unpack", packed, "-o", out, "--quiet")
    original = tree_bytes(real_bundle.dir_root)
    back = tree_bytes(out)
    assert sorted(back) == sorted(original)
    for name, data in original.items():
        assert back[name] == data, f"{name} differs after pack + unpack"


def test_packed_bytes_match_distinct_blobs_and_inspect_json(packed: Path, real_bundle: RealBundle) -> None:
    dir_bytes, sizes, _ = dir_blobs(real_bundle.dir_root)
    data_files = registry_blob_files(packed)
    assert set(data_files) == set(sizes), "packed storage must hold each distinct blob, nothing else"
    for digest, path in data_files.items():
        assert file_sha256(path) == digest
    packed_bytes = sum(p.stat().st_size for p in data_files.values())
    assert packed_bytes == sum(sizes.values())
    assert packed_bytes < dir_bytes  # the shared base layer and repeated images are stored once

    for path, layout in ((real_bundle.dir_root, "skopeo-dir"), (packed, "registry")):
        report = json.loads(cli_ok("inspect", path, "--json").stdout)
        assert report["layout"] == layout
        assert sorted(i["name"] for i in report["images"]) == real_bundle.refs
        assert report["dir_bytes"] == dir_bytes
        assert report["packed_bytes"] == packed_bytes
        assert report["saved_bytes"] == dir_bytes - packed_bytes
        assert report["blob_count"] == len(sizes)
        by_name = {i["name"]: i for i in report["images"]}
        assert by_name["multi/arch:1.0"]["platforms"] == ["linux/amd64", "linux/arm64"]
        assert by_name["calico/node:v3.15.1"]["kind"] == "schema2"
        assert by_name["calico/cni:v3.15.1"]["kind"] == "docker-list"
        assert by_name["multi/arch:1.0"]["kind"] == "oci-index"
        assert by_name["a/b/c:1"]["kind"] == "oci"


def test_link_mode_shares_inodes_with_the_source(packed: Path, real_bundle: RealBundle, tmp_path: Path) -> None:
    _, _, inodes = dir_blobs(real_bundle.dir_root)
    for digest, path in registry_blob_files(packed).items():
        st = path.stat()
        assert st.st_nlink >= 2, f"{path} is not hard-linked"
        assert st.st_ino in inodes[digest], f"{path} is not a link to a source file of {digest}"

    out = tmp_path / "unpacked-linked"
    cli_ok("unpack", packed, "-o", out, "--quiet")
    data_inodes = {d: p.stat().st_ino for d, p in registry_blob_files(packed).items()}
    for folder in image_folders(out).values():
        for path in folder.iterdir():
            if len(path.name) == 64:  # config and layer blobs
                assert path.stat().st_ino == data_inodes["sha256:" + path.name], f"{path} is not linked"


def test_copy_mode_writes_separate_files(packed: Path, real_bundle: RealBundle, tmp_path: Path) -> None:
    _, _, inodes = dir_blobs(real_bundle.dir_root)
    copied = tmp_path / "packed-copy"
    cli_ok("pack", real_bundle.dir_root, "-o", copied, "--copy", "--quiet")
    all_source_inodes = set().union(*inodes.values())
    for path in registry_blob_files(copied).values():
        st = path.stat()
        assert st.st_nlink == 1, f"{path} is hard-linked in --copy mode"
        assert st.st_ino not in all_source_inodes
    assert tree_bytes(copied) == tree_bytes(packed), "--copy and link mode must write the same storage"

    out = tmp_path / "unpacked-copy"
    cli_ok("unpack", copied, "-o", out, "--copy", "--quiet")
    storage_inodes = {p.stat().st_ino for p in registry_blob_files(copied).values()}
    for folder in image_folders(out).values():
        for path in folder.iterdir():
            st = path.stat()
            assert st.st_nlink == 1, f"{path} is hard-linked in --copy mode"
            assert st.st_ino not in storage_inodes
    assert tree_bytes(out) == tree_bytes(real_bundle.dir_root)


def test_merge_adds_images_to_an_existing_storage(
    real_bundle: RealBundle, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    refs = real_bundle.refs
    first, second = refs[::2], refs[1::2]
    halves = []
    for name, part in (("first", first), ("second", second)):
        root = tmp_path / name
        for ref in part:
            (root / ref).parent.mkdir(parents=True, exist_ok=True)
            copy_tree(real_bundle.folder(ref), root / ref)
        halves.append(root)
    dest = tmp_path / "merged"
    cli_ok("pack", halves[0], "-o", dest, "--quiet")
    assert sorted(i["name"] for i in json.loads(cli_ok("inspect", dest, "--json").stdout)["images"]) == first
    cli_ok("pack", halves[1], "-o", dest, "--merge", "--quiet")
    assert leftovers(dest) == []

    _, sizes, _ = dir_blobs(real_bundle.dir_root)
    assert set(registry_blob_files(dest)) == set(sizes), "merged storage must hold every distinct blob once"
    registry = serve_readonly(dest)
    assert_served(registry, skopeo, image_folders(real_bundle.dir_root), tmp_path)


def test_pack_of_an_oci_layout_is_served(
    real_bundle: RealBundle, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    dest = tmp_path / "from-oci"
    cli_ok("pack", real_bundle.oci_layout, "-o", dest, "--quiet")
    registry = serve_readonly(dest)
    for ref, art in real_bundle.catalog.refs.items():
        assert skopeo.inspect_raw(registry.ref(ref)) == art.manifest.data, ref
    pulled = tmp_path / "pulled-multi"
    skopeo.copy(registry.ref("multi/arch:1.0"), f"dir:{pulled}")
    multi = real_bundle.catalog.refs["multi/arch:1.0"]
    expected = {m.hex + ".manifest.json" for m in multi.manifests()[1:]} | {b.hex for b in multi.blobs()}
    assert set(os.listdir(pulled)) == expected | {"manifest.json", "version"}


def test_verify_accepts_what_pack_and_unpack_wrote(packed: Path, real_bundle: RealBundle, tmp_path: Path) -> None:
    report = json.loads(cli_ok("verify", packed, "--json").stdout)
    assert report["ok"] is True
    assert report["errors"] == 0
    assert sorted(i["name"] for i in report["images"]) == real_bundle.refs
    out = tmp_path / "unpacked"
    cli_ok("unpack", packed, "-o", out, "--verify", "--quiet")
    cli_ok("verify", out)


def test_storage_written_by_the_test_support_is_what_the_registry_serves(
    generated: Generated, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    """The bad-input tests break storages written by tests/support; check the writer against the registry."""
    registry = serve_readonly(generated.storage_root)
    assert_served(registry, skopeo, {ref: generated.folder(ref) for ref in generated.refs}, tmp_path)


def test_a_live_registry_keeps_writing_into_packed_storage(
    generated: Generated, skopeo: Skopeo, tmp_path: Path
) -> None:
    """A registry started on a packed storage accepts new pushes next to the packed images (it reads our links
    to mount blobs across repositories), and the result unpacks with old and new images."""
    dest = tmp_path / "packed"
    cli_ok("pack", generated.dir_root, "-o", dest, "--quiet")
    registry = start_registry(dest, tmp_path / "run")
    try:
        skopeo.copy(registry.ref("alpine:3.19"), registry.ref("team/alpine:copy"))
        skopeo.copy(f"dir:{generated.folder('multi:1')}", registry.ref("multi:pushed"))
    finally:
        registry.stop()
    out = tmp_path / "unpacked"
    cli_ok("unpack", dest, "-o", out, "--quiet")
    folders = image_folders(out)
    assert sorted(folders) == sorted([*generated.refs, "team/alpine:copy", "multi:pushed"])
    assert tree_bytes(folders["team/alpine:copy"]) == tree_bytes(generated.folder("alpine:3.19"))
    assert tree_bytes(folders["multi:pushed"]) == tree_bytes(generated.folder("multi:1"))


def test_verify_and_inspect_read_a_live_registry_storage(
    generated: Generated, registry: Registry, skopeo: Skopeo
) -> None:
    for ref in generated.refs:
        skopeo.copy(f"dir:{generated.folder(ref)}", registry.ref(f"pushed/{ref}"))
    report = json.loads(cli_ok("verify", registry.root, "--json").stdout)
    assert report["ok"] is True
    assert sorted(i["name"] for i in report["images"]) == sorted(f"pushed/{ref}" for ref in generated.refs)
    inspected = json.loads(cli_ok("inspect", registry.root, "--json").stdout)
    digests = {i["name"]: i["digest"] for i in inspected["images"]}
    assert digests == {f"pushed/{ref}": art.digest for ref, art in generated.refs.items()}
