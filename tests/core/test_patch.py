"""Release patches: diff, inventory, pack against a base, safe apply with tag moves, unpack and verify with a base.

Two hand-made releases with exact bytes, so every expected digest and byte count is computed from them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regpack import layouts
from regpack.analysis import Status, diff
from regpack.errors import BundleError, DestinationError
from regpack.jobs import pack, unpack
from regpack.patch import DESCRIPTION, PatchDescription, fingerprint, inventory_of, load_inventory
from regpack.selection import Selection
from regpack.verify import verify
from tests.core.conftest import BASE, sha, tree, write_dir_image, write_dir_list

ROOT = Path(__file__).resolve().parents[2]
V2 = Path("docker", "registry", "v2")


def regpack(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regpack", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


class Releases:
    """Release 1 and release 2 of a product, and the bytes each image is made of."""

    def __init__(self, root: Path) -> None:
        self.old = root / "r1"
        self.new = root / "r2"
        app1 = write_dir_image(self.old / "app:1.0", "app", [BASE, b"app one " * 200])
        write_dir_image(self.old / "app:latest", "app", [BASE, b"app one " * 200])
        write_dir_image(self.old / "gone:1", "gone", [BASE, b"gone " * 150])
        self.same = write_dir_list(self.old / "multi:1", "multi", BASE)
        write_dir_list(self.new / "multi:1", "multi", BASE)  # unchanged multi-arch image
        self.app2 = write_dir_image(self.new / "app:2.0", "app2", [BASE, b"app two " * 300])
        write_dir_image(self.new / "app:latest", "app2", [BASE, b"app two " * 300])  # latest moves to 2.0
        self.fresh = write_dir_image(self.new / "tools:1", "tools", [BASE, b"tools " * 100])
        self.old_latest = app1.digest

    def new_blob_hexes(self) -> set[str]:
        """Configs and layers of release 2 that release 1 lacks."""
        old = {sha(p.read_bytes()) for p in content_files(self.old)}
        return {h for w in (self.app2, self.fresh) for h in w.blobs if h not in old}


@pytest.fixture
def rel(tmp_path: Path) -> Releases:
    return Releases(tmp_path)


def content_files(root: Path) -> list[Path]:
    """Manifests and blobs of a skopeo dir tree (not the version files)."""
    return [p for p in root.rglob("*") if p.is_file() and p.name != "version"]


def blob_hexes(storage: Path) -> set[str]:
    return {p.parent.name for p in (storage / V2 / "blobs").rglob("data")}


def manifest_hexes(root: Path) -> set[str]:
    """Every manifest (top and platform) of a skopeo dir tree."""
    out = set()
    for p in root.rglob("*"):
        if p.name == "manifest.json" or p.name.endswith(".manifest.json"):
            out.add(sha(p.read_bytes()))
    return out


def test_diff_names_each_status_and_counts_shared_and_new_bytes(rel: Releases) -> None:
    old, new = layouts.read(rel.old).check(), layouts.read(rel.new).check()
    inv = inventory_of(old)
    d = diff(inv.blobs, inv.images, new)
    status = {r.name: r.status for r in d.images}
    assert status == {
        "multi:1": Status.UNCHANGED,
        "app:2.0": Status.ADDED,
        "app:latest": Status.CHANGED,
        "tools:1": Status.ADDED,
        "app:1.0": Status.REMOVED,
        "gone:1": Status.REMOVED,
    }
    tools = next(r for r in d.images if r.name == "tools:1")
    # shared with OLD: only the base layer; everything else of the image is new
    assert tools.shared_bytes == len(BASE)
    own = len(rel.fresh.manifest) + sum(len(b) for h, b in rel.fresh.blobs.items() if b != BASE)
    assert tools.added_bytes == own and tools.total_bytes == own + len(BASE)
    multi = next(r for r in d.images if r.name == "multi:1")
    assert multi.added_bytes == 0 and multi.shared_bytes == multi.total_bytes > 0
    # totals from the files themselves
    new_files = {sha(p.read_bytes()): p.stat().st_size for p in content_files(rel.new)}
    old_files = {sha(p.read_bytes()) for p in content_files(rel.old)}
    assert d.full_bytes == sum(new_files.values())
    manifests = manifest_hexes(rel.new)
    assert d.patch_bytes == sum(n for h, n in new_files.items() if h in manifests or h not in old_files)
    assert d.reused_bytes == sum(n for h, n in new_files.items() if h in old_files)
    assert d.new_bytes == d.full_bytes - d.reused_bytes
    changed_or_added = rel.new / "app:2.0", rel.new / "tools:1"  # app:latest has the bytes of app:2.0
    whole = {sha(p.read_bytes()): p.stat().st_size for f in changed_or_added for p in content_files(f)}
    assert d.differential_bytes == sum(whole.values())


def test_patch_carries_every_manifest_and_only_the_blobs_the_base_lacks(rel: Releases, tmp_path: Path) -> None:
    base = tmp_path / "base"
    pack(rel.old, base)
    patch = tmp_path / "patch"
    result = pack(rel.new, patch, base=base)
    carried = blob_hexes(patch)
    assert carried - manifest_hexes(rel.new) == rel.new_blob_hexes()
    assert manifest_hexes(rel.new) <= carried
    assert sha(BASE) not in carried
    desc = PatchDescription.parse((patch / DESCRIPTION).read_bytes(), patch / DESCRIPTION)
    needed = {d.hex: n for d, n in desc.needed.items()}
    assert result.from_base == len(needed)
    assert needed[sha(BASE)] == len(BASE)
    assert all((base / V2 / "blobs" / "sha256" / h[:2] / h / "data").stat().st_size == n for h, n in needed.items())
    assert set(desc.images) == {"multi:1", "app:2.0", "app:latest", "tools:1"}
    doc = json.loads((patch / DESCRIPTION).read_bytes())
    assert doc["base_fingerprint"] == fingerprint(desc.needed)
    # the patch is read as registry storage whose missing blobs are expected, not missing
    bundle = layouts.read(patch).check()
    assert bundle.is_patch and set(bundle.from_base) == set(desc.needed)

    # an inventory of the base gives the same patch
    assert regpack("inventory", base, "-o", tmp_path / "have.json").returncode == 0
    inv = load_inventory(tmp_path / "have.json")
    assert dict(inv.blobs) == dict(inventory_of(layouts.read(base)).blobs)
    again = tmp_path / "patch2"
    pack(rel.new, again, base=tmp_path / "have.json")
    patch_tree, again_tree = tree(patch), tree(again)
    assert patch_tree.keys() == again_tree.keys()
    assert {k: v for k, v in patch_tree.items() if k != DESCRIPTION} == {
        k: v for k, v in again_tree.items() if k != DESCRIPTION
    }


def test_applying_a_patch_moves_tags_like_a_push_and_keeps_the_old_image(rel: Releases, tmp_path: Path) -> None:
    base = tmp_path / "base"
    pack(rel.old, base)
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=base)
    result = pack(patch, base, merge=True)
    assert result.moved == ("app:latest",)
    tag = base / V2 / "repositories" / "app" / "_manifests" / "tags" / "latest"
    assert (tag / "current" / "link").read_bytes() == rel.app2.digest.encode()
    assert {p.name for p in (tag / "index" / "sha256").iterdir()} == {rel.old_latest[7:], rel.app2.digest[7:]}
    assert DESCRIPTION not in os.listdir(base)  # the description stays with the patch

    # every image of release 2 comes out of the storage exactly as it went in, the old ones too
    out = tmp_path / "out"
    unpack(base, out, copy=True)
    for ref in ("multi:1", "app:2.0", "app:latest", "tools:1"):
        assert tree(out / ref) == tree(rel.new / ref), ref
    for ref in ("app:1.0", "gone:1"):
        assert tree(out / ref) == tree(rel.old / ref), ref
    assert verify(base).ok

    # applying it again changes nothing
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in base.rglob("*") if p.is_file()}
    twice = pack(patch, base, merge=True)
    assert twice.files == 0 and twice.moved == () and twice.skipped > 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in base.rglob("*") if p.is_file()} == before


def test_applying_onto_a_storage_missing_a_base_blob_is_refused_and_writes_nothing(
    rel: Releases, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    pack(rel.old, base, copy=True)
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=base)
    hex_ = sha(BASE)
    data = base / V2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
    data.unlink()
    snapshot = tree(base)
    with pytest.raises(DestinationError) as info:
        pack(patch, base, merge=True)
    message = str(info.value)
    assert f"sha256:{hex_} ({len(BASE)} bytes, absent)" in message
    assert "app:2.0" in message and "tools:1" in message and "nothing was written" in message
    assert tree(base) == snapshot
    assert not [p for p in os.listdir(tmp_path) if ".partial-" in p]

    # same size but other bytes: found by --verify only
    data.write_bytes(BASE[:-1] + b"?")
    with pytest.raises(DestinationError, match="content hashes to"):
        pack(patch, base, merge=True, verify=True)
    data.write_bytes(BASE[:-1])  # wrong size: found without hashing
    with pytest.raises(DestinationError, match=f"holds {len(BASE) - 1} bytes"):
        pack(patch, base, merge=True)
    # and a patch never becomes a complete storage on its own
    with pytest.raises(DestinationError, match="lacks"):
        pack(patch, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_plain_merge_refuses_a_moved_tag_unless_asked(rel: Releases, tmp_path: Path) -> None:
    base = tmp_path / "base"
    pack(rel.old, base)
    snapshot = tree(base)
    with pytest.raises(DestinationError, match=r"tag app:latest points at .* \(--move-tags"):
        pack(rel.new, base, merge=True)
    assert tree(base) == snapshot
    result = pack(rel.new, base, merge=True, move_tags=True)
    assert result.moved == ("app:latest",)
    assert layouts.read(base).check()


def test_unpack_and_verify_a_patch_with_and_without_its_base(rel: Releases, tmp_path: Path) -> None:
    base = tmp_path / "base"
    pack(rel.old, base)
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=base)
    with pytest.raises(BundleError, match=r"is a patch: .* give it with --base"):
        unpack(patch, tmp_path / "u0")
    assert not (tmp_path / "u0").exists()
    unpack(patch, tmp_path / "u", base=base)
    assert tree(tmp_path / "u") == tree(rel.new)

    report = verify(patch)
    assert report.ok and report.from_base_blobs > 0 and not report.from_base_checked
    assert verify(patch, base=base).ok
    hex_ = sha(BASE)
    (base / V2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data").unlink()
    bad = verify(patch, base=base)
    assert not bad.ok
    missing = [f for f in bad.errors if f.code == "missing-base-blob"]
    assert {f.image for f in missing} >= {"app:2.0", "tools:1", "multi:1"}
    assert all(f"sha256:{hex_}" in f.reason for f in missing)
    run = regpack("verify", patch, "--base", base)
    assert run.returncode == 1 and "missing-base-blob" in run.stdout and "Traceback" not in run.stderr


def test_a_damaged_description_is_an_error_of_the_patch(rel: Releases, tmp_path: Path) -> None:
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=rel.old)
    doc = json.loads((patch / DESCRIPTION).read_bytes())
    doc["base_blobs"] = doc["base_blobs"][1:]  # one blob less: the fingerprint no longer matches
    (patch / DESCRIPTION).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="fingerprint does not match"):
        layouts.read(patch).check()
    run = regpack("pack", patch, "-o", tmp_path / "x", "--merge")
    assert run.returncode == 1 and DESCRIPTION in run.stderr and "Traceback" not in run.stderr


def test_diff_cli_table_json_and_exit_codes(rel: Releases, tmp_path: Path) -> None:
    run = regpack("diff", rel.old, rel.new)
    assert run.returncode == 0, run.stderr
    assert "2 added, 1 changed, 1 unchanged, 2 removed" in run.stdout
    assert "patch against OLD" in run.stdout
    doc = json.loads(regpack("diff", rel.old, rel.new, "--json").stdout)
    assert doc["format"] == "regpack-diff/1"
    assert doc["counts"] == {"added": 2, "changed": 1, "unchanged": 1, "removed": 2}
    assert set(doc["totals"]) == {
        "full_bytes",
        "patch_bytes",
        "new_bytes",
        "reused_bytes",
        "differential_bytes",
        "patch_blobs",
        "base_blobs",
    }
    # a patch made against OLD weighs what diff says
    pack(rel.new, tmp_path / "patch", base=rel.old)
    carried = sum(p.stat().st_size for p in (tmp_path / "patch" / V2 / "blobs").rglob("data"))
    assert doc["totals"]["patch_bytes"] == carried
    # diff against an inventory gives the same answer
    regpack("inventory", rel.old, "-o", tmp_path / "have.json")
    inv_doc = json.loads(regpack("diff", tmp_path / "have.json", rel.new, "--json").stdout)
    assert inv_doc["images"] == doc["images"] and inv_doc["totals"] == doc["totals"]
    bad = regpack("diff", tmp_path / "nowhere", rel.new)
    assert bad.returncode == 1 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_a_patch_that_needs_nothing_from_its_base_still_moves_tags(rel: Releases, tmp_path: Path) -> None:
    empty = tmp_path / "nothing.json"
    empty.write_text(json.dumps({"format": "regpack-inventory/1", "images": [], "blobs": []}))
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=empty)
    assert layouts.read(patch).is_patch and not layouts.read(patch).from_base
    assert blob_hexes(patch) == {sha(p.read_bytes()) for p in content_files(rel.new)}
    inspect = regpack("inspect", patch)
    assert inspect.returncode == 0 and "patch: 0 blob(s)" in inspect.stdout
    base = tmp_path / "base"
    pack(rel.old, base)
    assert pack(patch, base, merge=True).moved == ("app:latest",)


def test_a_description_that_links_outside_the_patch_is_refused(rel: Releases, tmp_path: Path) -> None:
    patch = tmp_path / "patch"
    pack(rel.new, patch, base=rel.old)
    outside = tmp_path / "elsewhere.json"
    os.rename(patch / DESCRIPTION, outside)
    os.symlink(outside, patch / DESCRIPTION)
    bundle = layouts.read(patch)
    assert bundle.errors[0].code == "unsafe" and "outside the bundle" in bundle.errors[0].reason
    with pytest.raises(BundleError, match="outside the bundle"):
        bundle.check()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"format": "something-else/1"}', "not a regpack patch description"),
        (b'{"format": "regpack-patch/1", "base_blobs": {}, "images": []}', "'base_blobs' must be a list"),
        (
            b'{"format": "regpack-patch/1", "images": [], "base_blobs": [{"digest": "sha256:abc", "size": 1}]}',
            "malformed sha256 digest",
        ),
        (
            b'{"format": "regpack-patch/1", "images": [], "base_blobs": [{"digest": "sha256:' + b"a" * 64 + b'"}]}',
            "has no valid size",
        ),
        (b'{"format": "regpack-patch/1", "images": [], "base_blobs": [], "base_fingerprint": "x"}', "fingerprint"),
    ],
)
def test_a_bad_description_is_named_with_its_reason(content: bytes, reason: str, tmp_path: Path) -> None:
    path = tmp_path / DESCRIPTION
    with pytest.raises(BundleError) as info:
        PatchDescription.parse(content, path)
    assert reason in info.value.reason and info.value.path == path
    assert "b'" not in str(info.value)
    path.write_bytes(content)
    with pytest.raises(BundleError, match=r"not a regpack inventory|not valid JSON|not a JSON object"):
        load_inventory(path)


def test_diff_and_patch_take_the_selection_and_match_images_by_their_stored_names(
    rel: Releases, tmp_path: Path
) -> None:
    only_app = json.loads(regpack("diff", rel.old, rel.new, "--only", "app", "--json").stdout)
    assert {i["name"]: i["status"] for i in only_app["images"]} == {
        "app:2.0": "added",
        "app:latest": "changed",
        "app:1.0": "removed",
    }
    # a tree scoped by host (skopeo sync --scoped) compares with the storage its images were packed into
    scoped = tmp_path / "scoped"
    shutil.copytree(rel.new, scoped / "registry.example.com:5000")
    base = tmp_path / "base"
    pack(rel.old, base)
    doc = json.loads(regpack("diff", base, scoped, "--json").stdout)
    status = {i["name"]: i["status"] for i in doc["images"]}
    assert status["registry.example.com:5000/multi:1"] == "unchanged"
    assert status["registry.example.com:5000/app:latest"] == "changed"
    assert status["gone:1"] == "removed" and "multi:1" not in status

    patch = tmp_path / "patch"
    result = pack(rel.new, patch, base=base, selection=Selection(only=("tools",)))
    assert result.images == 1
    desc = PatchDescription.parse((patch / DESCRIPTION).read_bytes(), patch / DESCRIPTION)
    assert set(desc.images) == {"tools:1"} and {d.hex for d in desc.needed} == {sha(BASE)}
    assert blob_hexes(patch) == {sha(rel.fresh.manifest)} | (set(rel.fresh.blobs) - {sha(BASE)})
