"""The synthetic bundle generator: what it writes must be a valid skopeo dir tree with the sharing asked for."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from regpack.analysis import analyse
from regpack.bundle import Layout, Role
from regpack.layouts import read
from regpack.manifest import DOCKER_LIST, DOCKER_V2, OCI_INDEX, OCI_MANIFEST, Kind
from tests.support.synth import VERSION, generate, main, parse_size, split_layers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> content hash of every file: two equal trees have equal dicts."""
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "bundle"
    generate(out, images=40, layers=6, blob_size=4096, seed=7, lists=3, aliases=2)
    return out


def test_reader_accepts_generated_bundle(bundle_dir: Path) -> None:
    bundle = read(bundle_dir)
    assert bundle.layout is Layout.SKOPEO_DIR
    assert bundle.problems == []
    assert len(bundle.images) == 42  # 40 images + 2 second tags
    assert sum(1 for i in bundle.images if i.is_list and i.tag == "1.0") == 3


def test_every_blob_file_is_named_by_its_sha256(bundle_dir: Path) -> None:
    checked = 0
    for folder in {p.parent for p in bundle_dir.rglob("manifest.json")}:
        assert (folder / "version").read_bytes() == VERSION == b"Directory Transport Version: 1.1\n"
        for f in folder.iterdir():
            if f.name in ("version", "manifest.json"):
                continue
            expected = f.name.removesuffix(".manifest.json")
            assert _sha256(f) == expected, f
            checked += 1
    assert checked > 40 * 7


def test_manifests_declare_true_sizes_and_configs_are_json(bundle_dir: Path) -> None:
    bundle = read(bundle_dir)
    for image in bundle.images:
        for manifest in image.manifests:
            if manifest.kind.is_list:
                continue
            assert manifest.kind in (Kind.SCHEMA2, Kind.OCI)
            assert manifest.config is not None
            config_path = Path(image.locations[manifest.config.digest])
            assert config_path.stat().st_size == manifest.config.size
            config = json.loads(config_path.read_bytes())
            assert config["os"] == "linux"
            assert config["architecture"] in ("amd64", "arm64", "arm")
            assert len(config["rootfs"]["diff_ids"]) == len(manifest.layers) == 6
            for layer in manifest.layers:
                assert Path(image.locations[layer.digest]).stat().st_size == layer.size


def test_sharing_base_mid_and_unique_layers(bundle_dir: Path) -> None:
    bundle = read(bundle_dir)
    analysis = analyse(bundle)
    single = [i for i in bundle.images if i.tag == "1.0"]  # leave the second tags out of the counts
    use: Counter[str] = Counter()
    for image in single:
        for d in image.blob_digests():
            if bundle.blobs[d].role is Role.LAYER:
                use[str(d)] += 1
    counts = sorted(use.values(), reverse=True)
    base, mid, app = split_layers(6)
    assert (base, mid, app) == (2, 2, 2)
    # The first base family's layers are in most images.
    assert counts[0] > len(single) / 2
    assert counts[base - 1] > len(single) / 2
    # Mid layers are shared by a handful of images, app layers by exactly one.
    assert any(1 < c < len(single) / 3 for c in counts)
    assert counts.count(1) >= len(single) * app
    # Every image has at least one layer no other image (tag) uses.
    for stats in analysis.images:
        if stats.image.tag == "1.0" and f"{stats.image.repository}:latest" not in {i.name for i in bundle.images}:
            assert stats.unique_bytes > 0
    assert analysis.packed_bytes < analysis.dir_bytes / 2


def test_summary_matches_what_the_reader_sees(tmp_path: Path) -> None:
    summary = generate(tmp_path / "b", images=25, layers=4, blob_size=2000, seed=3, lists=2, aliases=3)
    bundle = read(tmp_path / "b")
    analysis = analyse(bundle)
    assert summary.images == len(bundle.images) == 28
    assert summary.lists == 2
    assert summary.distinct_blobs == len(bundle.blobs)
    assert summary.dir_bytes == analysis.dir_bytes
    assert summary.distinct_bytes == analysis.packed_bytes == bundle.stored_bytes
    assert summary.files == sum(1 for p in (tmp_path / "b").rglob("*") if p.is_file())


def test_nested_names_and_second_tags(bundle_dir: Path) -> None:
    names = {i.name for i in read(bundle_dir).images}
    assert any(n.count("/") == 1 for n in names)
    assert any(n.count("/") == 2 for n in names)
    assert any("/" not in n for n in names)
    latest = [n for n in names if n.endswith(":latest")]
    assert len(latest) == 2
    for name in latest:
        repo = name.removesuffix(":latest")
        one = bundle_dir / f"{repo}:1.0"
        two = bundle_dir / f"{repo}:latest"
        assert _tree(one) == _tree(two)


@pytest.mark.parametrize(
    ("oci", "top_type", "child_type"), [(0.0, DOCKER_LIST, DOCKER_V2), (1.0, OCI_INDEX, OCI_MANIFEST)]
)
def test_multi_arch_lists(tmp_path: Path, oci: float, top_type: str, child_type: str) -> None:
    generate(tmp_path / "b", images=6, layers=3, blob_size=1000, seed=1, lists=2, oci_fraction=oci)
    bundle = read(tmp_path / "b")
    assert bundle.problems == []
    lists = [i for i in bundle.images if i.is_list]
    assert len(lists) == 2
    for image in lists:
        assert image.manifest.media_type == top_type
        assert image.platforms[:2] == ("linux/amd64", "linux/arm64/v8")
        assert len(image.children) == len(image.platforms)
        assert image.folder is not None
        for child in image.children:
            assert child.media_type == child_type
            assert (image.folder / f"{child.digest.hex}.manifest.json").is_file()
        top = json.loads((image.folder / "manifest.json").read_bytes())
        assert top["mediaType"] == top_type
    plain = [i for i in bundle.images if not i.is_list]
    assert all(i.manifest.media_type == child_type for i in plain)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    args = {"images": 8, "layers": 3, "blob_size": 3000, "lists": 1, "aliases": 1}
    generate(tmp_path / "a", seed=11, **args)
    generate(tmp_path / "b", seed=11, **args)
    generate(tmp_path / "c", seed=12, **args)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert set(_tree(tmp_path / "a").values()) != set(_tree(tmp_path / "c").values())


def test_copies_by_default_links_when_asked(tmp_path: Path) -> None:
    generate(tmp_path / "copy", images=10, layers=3, blob_size=1000, seed=2)
    generate(tmp_path / "link", images=10, layers=3, blob_size=1000, seed=2, link=True)
    copy_files = [p for p in (tmp_path / "copy").rglob("*") if p.is_file()]
    assert all(p.stat().st_nlink == 1 for p in copy_files)
    inodes = Counter(os.stat(p).st_ino for p in (tmp_path / "link").rglob("*") if p.is_file())
    assert max(inodes.values()) > 1
    assert _tree(tmp_path / "copy") == _tree(tmp_path / "link")


def test_blob_sizes_spread_around_the_mean_and_span_many_chunks(tmp_path: Path) -> None:
    mean = 3 * (1 << 20) + 123  # more than one write chunk
    summary = generate(tmp_path / "b", images=2, layers=2, blob_size=mean, seed=5, spread=0.2)
    bundle = read(tmp_path / "b")
    layers = [b for b in bundle.blobs.values() if b.role is Role.LAYER]
    assert len(layers) == summary.distinct_blobs - 4  # 2 configs + 2 manifests
    assert all(0.8 * mean <= b.size <= 1.2 * mean for b in layers)
    assert len({b.size for b in layers}) > 1
    for blob in layers:
        assert blob.path is not None
        assert _sha256(blob.path) == blob.digest.hex


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "b", images=1, layers=1, blob_size=10)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main([str(out), "--images", "5", "--layers", "2", "--blob-size", "2K", "--lists", "1", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 5
    assert len(read(out).images) == 5
    assert main([str(out), "--images", "5", "--layers", "2", "--blob-size", "2K"]) == 1
    assert "not an empty folder" in capsys.readouterr().err


def test_parse_size() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("512K") == 512 * 1024
    assert parse_size("1M") == parse_size("1MiB") == 1 << 20
    assert parse_size("2G") == 2 << 30
