"""Broken bundles given to the CLI: exit status 1, one error line naming the file and the reason, no traceback,
and nothing written (or, for an existing destination, nothing changed).

The bundles are copies of a good bundle written in Python (no container tool needed), broken one way each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import ocibuild as ob
from tests.support.catalog import Generated
from tests.support.tools import run_cli
from tests.support.trees import copy_tree, leftovers, tree_bytes, tree_listing

V2 = Path("docker", "registry", "v2")


@pytest.fixture
def src(generated: Generated, tmp_path: Path) -> Path:
    """A private copy of the good skopeo dir tree."""
    return copy_tree(generated.dir_root, tmp_path / "src")


@pytest.fixture
def storage(generated: Generated, tmp_path: Path) -> Path:
    """A private copy of the good registry storage."""
    return copy_tree(generated.storage_root, tmp_path / "storage")


def fails(*args: str | Path) -> str:
    """Run the CLI, expect failure status 1 without a traceback; return stderr."""
    result = run_cli(*args, "--quiet")
    assert result.returncode == 1, (
        f"expected exit 1, got {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("regpack: error:"), result.stderr
    return result.stderr


def assert_nothing_written(dest: Path) -> None:
    assert not dest.exists(), f"{dest} was created"
    assert leftovers(dest) == [], "a staging folder was left behind"


def layer_hex(art: ob.Artifact) -> str:
    assert isinstance(art, ob.Image)
    return art.layers[-1].blob.hex


def test_the_good_bundles_pack_and_unpack(src: Path, storage: Path, tmp_path: Path) -> None:
    """Each broken case below differs from these good bundles by one defect only."""
    for args in (("pack", src), ("unpack", storage)):
        result = run_cli(*args, "-o", tmp_path / f"out-{args[0]}", "--quiet")
        assert result.returncode == 0, result.stderr


# --- skopeo dir trees (pack) ---------------------------------------------------------------------------------


def test_manifest_that_is_not_json(src: Path, tmp_path: Path) -> None:
    manifest = src / "calico/node:v3.15.1" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:40])
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert "calico/node:v3.15.1/manifest.json" in err
    assert "not valid JSON" in err
    assert_nothing_written(dest)


def test_referenced_blob_missing(src: Path, generated: Generated, tmp_path: Path) -> None:
    hex_ = layer_hex(generated.refs["alpine:3.19"])
    (src / "alpine:3.19" / hex_).unlink()
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert f"alpine:3.19/{hex_}" in err
    assert "missing" in err
    assert_nothing_written(dest)


def test_list_child_manifest_missing(src: Path, generated: Generated, tmp_path: Path) -> None:
    multi = generated.refs["multi:1"]
    assert isinstance(multi, ob.Index)
    child = multi.children[1].manifest.hex
    (src / "multi:1" / f"{child}.manifest.json").unlink()
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert f"multi:1/{child}.manifest.json" in err
    assert "missing" in err
    assert_nothing_written(dest)


def test_unknown_manifest_media_type(src: Path, tmp_path: Path) -> None:
    manifest = src / "alpine:3.19" / "manifest.json"
    doc = json.loads(manifest.read_bytes())
    doc["mediaType"] = "application/vnd.example.unknown.v1+json"
    manifest.write_bytes(ob.json_bytes(doc))
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert "alpine:3.19/manifest.json" in err
    assert "unknown manifest mediaType" in err
    assert "application/vnd.example.unknown.v1+json" in err
    assert_nothing_written(dest)


@pytest.mark.parametrize(
    ("bad_name", "word"),
    [
        ("Alpine:3.19", "repository"),  # upper case is not allowed in repository names
        ("alp!ne:3.19", "repository"),
        ("alpine:-3.19", "tag"),  # a tag cannot start with '-'
        ("alpine:3.19+build", "tag"),
    ],
)
def test_folder_name_that_is_no_reference(src: Path, tmp_path: Path, bad_name: str, word: str) -> None:
    (src / "alpine:3.19").rename(src / bad_name)
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert bad_name in err
    assert word in err
    assert_nothing_written(dest)


def oci_layout_with(generated: Generated, root: Path, ref_name: str) -> Path:
    """A good OCI layout plus one multi-arch image under ``ref_name``."""
    return ob.write_oci_layout(
        root, [("alpine:3.19", generated.refs["alpine:3.19"]), (ref_name, generated.refs["multi:1"])]
    )


@pytest.mark.parametrize("command", ["pack", "unpack"])
@pytest.mark.parametrize("ref_name", ["../../evil:1", "ok/../../evil:1", "../evil"])
def test_oci_ref_name_with_dot_dot(generated: Generated, tmp_path: Path, command: str, ref_name: str) -> None:
    """A folder can't be named '..', but an OCI ref.name can say anything: it must not become a path."""
    layout = oci_layout_with(generated, tmp_path / "layout", ref_name)
    dest = tmp_path / "deep" / "er" / "out"
    dest.parent.mkdir(parents=True)
    err = fails(command, layout, "-o", dest)
    assert "index.json" in err
    assert ref_name in err
    assert "'..'" in err
    assert_nothing_written(dest)
    assert sorted(p.name for p in tmp_path.rglob("*evil*")) == []
    assert sorted(os.listdir(tmp_path / "deep")) == ["er"]
    assert os.listdir(tmp_path / "deep" / "er") == []


@pytest.mark.parametrize("command", ["pack", "unpack"])
@pytest.mark.parametrize(
    "ref_name",
    [
        "a/./b:1",
        "a//b:1",
        "/a/b:1",
    ],
)
def test_oci_ref_name_that_is_no_reference_is_not_normalised(
    generated: Generated, tmp_path: Path, command: str, ref_name: str
) -> None:
    """'a/./b', 'a//b' and '/a/b' are no repository names; silently storing them as 'a/b' renames an image."""
    layout = oci_layout_with(generated, tmp_path / "layout", ref_name)
    dest = tmp_path / "out"
    err = fails(command, layout, "-o", dest)
    assert "index.json" in err
    assert ref_name in err
    assert_nothing_written(dest)


def test_blob_symlink_pointing_outside_the_bundle(src: Path, generated: Generated, tmp_path: Path) -> None:
    """Refused for where it points, even though the bytes there are the right ones."""
    hex_ = layer_hex(generated.refs["alpine:3.19"])
    blob = src / "alpine:3.19" / hex_
    outside = tmp_path / "outside" / hex_
    outside.parent.mkdir()
    blob.rename(outside)
    blob.symlink_to(outside)
    dest = tmp_path / "out"
    err = fails("pack", src, "-o", dest)
    assert f"alpine:3.19/{hex_}" in err
    assert "outside the bundle" in err
    assert_nothing_written(dest)


def test_non_empty_destination_is_untouched(src: Path, storage: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "keep" / "inner").mkdir(parents=True)
    (dest / "keep.txt").write_bytes(b"precious\n")
    (dest / "keep" / "inner" / "data").write_bytes(b"\x00" * 100)
    before_bytes, before_listing = tree_bytes(dest), tree_listing(dest)
    for command, source in (("pack", src), ("unpack", storage)):
        err = fails(command, source, "-o", dest)
        assert str(dest) in err
        assert "not empty" in err
        assert tree_bytes(dest) == before_bytes
        assert tree_listing(dest) == before_listing
        assert leftovers(dest) == []


def test_merge_that_would_retag_leaves_the_storage_untouched(
    generated: Generated, storage: Path, tmp_path: Path
) -> None:
    """alpine:3.19 already names one image in the storage; merging another image under that tag is refused."""
    other = ob.image([ob.layer(ob.text_files("another-alpine"))])
    bundle = ob.write_dir_bundle(tmp_path / "other", {"alpine:3.19": other, "fresh:1": other})
    before_bytes, before_listing = tree_bytes(storage), tree_listing(storage)
    err = fails("pack", bundle, "-o", storage, "--merge")
    assert "alpine/_manifests/tags/3.19/current/link" in err
    assert "refusing to overwrite" in err
    assert tree_bytes(storage) == before_bytes
    assert tree_listing(storage) == before_listing
    assert leftovers(storage) == []


# --- registry storage (unpack) -------------------------------------------------------------------------------


def link_paths(generated: Generated) -> dict[str, Path]:
    alpine = generated.refs["alpine:3.19"]
    repo = V2 / "repositories" / "alpine"
    return {
        "current": repo / "_manifests/tags/3.19/current/link",
        "revision": repo / "_manifests/revisions/sha256" / alpine.manifest.hex / "link",
        "layer": repo / "_layers/sha256" / layer_hex(alpine) / "link",
    }


@pytest.mark.parametrize("which", ["current", "revision", "layer"])
def test_link_file_with_a_trailing_newline(generated: Generated, storage: Path, tmp_path: Path, which: str) -> None:
    link = storage / link_paths(generated)[which]
    link.write_bytes(link.read_bytes() + b"\n")
    dest = tmp_path / "out"
    err = fails("unpack", storage, "-o", dest)
    assert str(link_paths(generated)[which]) in err
    assert "newline" in err
    assert_nothing_written(dest)


@pytest.mark.parametrize(
    "garbage",
    [b"garbage", b"sha256:" + b"g" * 64, b"sha256:" + b"A" * 64, b"\x00\xff\xfe", b"", b"sha256:abc"],
)
def test_link_file_with_garbage(generated: Generated, storage: Path, tmp_path: Path, garbage: bytes) -> None:
    rel = link_paths(generated)["current"]
    (storage / rel).write_bytes(garbage)
    dest = tmp_path / "out"
    err = fails("unpack", storage, "-o", dest)
    assert str(rel) in err
    assert "link file" in err
    assert "digest" in err
    assert_nothing_written(dest)


def test_storage_blob_missing(generated: Generated, storage: Path, tmp_path: Path) -> None:
    hex_ = layer_hex(generated.refs["calico/node:v3.15.1"])
    data = V2 / "blobs/sha256" / hex_[:2] / hex_ / "data"
    (storage / data).unlink()
    dest = tmp_path / "out"
    err = fails("unpack", storage, "-o", dest)
    assert str(data) in err
    assert "missing" in err
    assert_nothing_written(dest)


def test_storage_blob_symlink_pointing_outside(generated: Generated, storage: Path, tmp_path: Path) -> None:
    hex_ = layer_hex(generated.refs["alpine:3.19"])
    data = storage / V2 / "blobs/sha256" / hex_[:2] / hex_ / "data"
    outside = tmp_path / "outside-data"
    data.rename(outside)
    data.symlink_to(outside)
    dest = tmp_path / "out"
    err = fails("unpack", storage, "-o", dest)
    assert str(V2 / "blobs/sha256" / hex_[:2] / hex_ / "data") in err
    assert "outside the bundle" in err
    assert_nothing_written(dest)


def test_storage_manifest_that_is_not_json(generated: Generated, storage: Path, tmp_path: Path) -> None:
    hex_ = generated.refs["calico/node:v3.15.1"].manifest.hex
    data = V2 / "blobs/sha256" / hex_[:2] / hex_ / "data"
    (storage / data).write_bytes(b"<html>not a manifest</html>")
    dest = tmp_path / "out"
    err = fails("unpack", storage, "-o", dest)
    assert str(data) in err
    assert "not valid JSON" in err
    assert_nothing_written(dest)
