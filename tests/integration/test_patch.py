"""Two consecutive releases built with the real tools, a patch between them, applied onto the first release's
packed storage and served by the real docker-registry to skopeo.

Release 1 -> 2: shared base layers; changed top layers (app/api keeps its tag, new digest, a zstd layer);
app/web:latest moves from 1.0 to 2.0 the way a push re-points it; legacy/tool goes away, new/svc comes;
an unchanged multi-arch image.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ocibuild as ob
from tests.support.tools import Registry, Skopeo, run_cli
from tests.support.trees import copy_tree, file_sha256, leftovers, registry_blob_files, tree_bytes, tree_listing

pytestmark = pytest.mark.integration

Serve = Callable[[Path], Registry]
V2 = Path("docker", "registry", "v2")


def cli_ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == 0, f"regpack {' '.join(map(str, args))} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


@dataclass(frozen=True)
class Release:
    refs: dict[str, ob.Artifact]
    dir_root: Path  # written by `skopeo copy --all oci:... dir:...`
    oci_layout: Path  # what the folders were copied from
    v2s2: frozenset[str]  # references copied with --format v2s2

    def folder(self, ref: str) -> Path:
        return self.dir_root / ref

    def files(self) -> dict[str, int]:
        """Digest -> size of every manifest and blob of every image folder, from the files alone."""
        out: dict[str, int] = {}
        for manifest in self.dir_root.rglob("manifest.json"):
            for path in manifest.parent.iterdir():
                if path.name != "version":
                    out[file_sha256(path)] = path.stat().st_size
        return out

    def manifests(self) -> set[str]:
        found = set()
        for path in self.dir_root.rglob("*manifest.json"):
            found.add(file_sha256(path))
        return found


@dataclass(frozen=True)
class Pair:
    old: Release
    new: Release
    moved_from: str  # app/web:latest's digest in release 1
    api_old: str  # app/api:1.0's digest in release 1


def _release(work: Path, skopeo: Skopeo, name: str, refs: dict[str, ob.Artifact], v2s2: set[str]) -> Release:
    layout = ob.write_oci_layout(work / f"{name}-oci", refs)
    root = work / name
    for ref in sorted(refs):
        dest = root / ref
        dest.parent.mkdir(parents=True, exist_ok=True)
        extra = ("--format", "v2s2") if ref in v2s2 else ()
        skopeo.copy(f"oci:{layout}:{ref}", f"dir:{dest}", *extra)
    return Release(refs, root, layout, frozenset(v2s2))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, skopeo: Skopeo) -> Pair:
    work = tmp_path_factory.mktemp("releases")
    base = ob.layer(ob.text_files("rel-base", count=4, size=900))
    runtime = ob.layer(ob.text_files("rel-runtime", count=3, size=700))
    amd64 = ob.image([base, ob.layer(ob.text_files("rel-tool-amd64"))], architecture="amd64")
    arm64 = ob.image([base, ob.layer(ob.text_files("rel-tool-arm64"))], architecture="arm64")
    multi = ob.index([amd64, arm64])
    web1 = ob.image([base, runtime, ob.layer(ob.text_files("web-1.0"))], cmd=("/bin/web",))
    web2 = ob.image([base, runtime, ob.layer(ob.text_files("web-2.0", size=500))], cmd=("/bin/web",))
    api1 = ob.image([base, runtime, ob.layer(ob.text_files("api-1", size=800), "zstd")], cmd=("/bin/api",))
    api2 = ob.image([base, runtime, ob.layer(ob.text_files("api-2", size=800), "zstd")], cmd=("/bin/api",))
    legacy = ob.image([base, ob.layer(ob.text_files("legacy-tool"))])
    svc = ob.image([base, runtime, ob.layer(ob.text_files("new-svc"))])
    os_image = ob.image([base])
    old_refs: dict[str, ob.Artifact] = {
        "base/os:1": os_image,
        "app/web:1.0": web1,
        "app/web:latest": web1,
        "app/api:1.0": api1,
        "legacy/tool:1": legacy,
        "multi/arch:1.0": multi,
    }
    new_refs: dict[str, ob.Artifact] = {
        "base/os:1": os_image,
        "app/web:1.0": web1,
        "app/web:2.0": web2,
        "app/web:latest": web2,
        "app/api:1.0": api2,
        "new/svc:1": svc,
        "multi/arch:1.0": multi,
    }
    old = _release(work, skopeo, "r1", old_refs, {"legacy/tool:1"})
    new = _release(work, skopeo, "r2", new_refs, set())
    moved_from = file_sha256(old.folder("app/web:latest") / "manifest.json")
    api_old = file_sha256(old.folder("app/api:1.0") / "manifest.json")
    return Pair(old, new, moved_from, api_old)


def test_the_releases_cover_every_case(pair: Pair) -> None:
    abc = json.loads((pair.new.folder("app/api:1.0") / "manifest.json").read_bytes())
    assert ob.OCI_LAYER_ZSTD in [layer["mediaType"] for layer in abc["layers"]]
    assert len(list(pair.new.folder("multi/arch:1.0").glob("*.manifest.json"))) == 2
    assert tree_bytes(pair.old.folder("multi/arch:1.0")) == tree_bytes(pair.new.folder("multi/arch:1.0"))
    assert file_sha256(pair.new.folder("app/web:latest") / "manifest.json") != pair.moved_from
    doc = json.loads(cli_ok("diff", pair.old.dir_root, pair.new.dir_root, "--json").stdout)
    status = {i["name"]: i["status"] for i in doc["images"]}
    assert status == {
        "base/os:1": "unchanged",
        "app/web:1.0": "unchanged",
        "app/web:2.0": "added",
        "app/web:latest": "changed",
        "app/api:1.0": "changed",
        "new/svc:1": "added",
        "multi/arch:1.0": "unchanged",
        "legacy/tool:1": "removed",
    }
    # any layouts: the OCI layouts the releases were copied from give the same answer
    oci = json.loads(cli_ok("diff", pair.old.oci_layout, pair.new.oci_layout, "--json").stdout)
    assert {i["name"]: i["status"] for i in oci["images"]} == status
    assert oci["old"]["layout"] == "oci" and oci["totals"]["full_bytes"] == doc["totals"]["full_bytes"]


def test_patch_of_two_real_releases_applies_and_is_served(
    pair: Pair, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    base = tmp_path / "site"
    cli_ok("pack", pair.old.dir_root, "-o", base, "--quiet")
    cli_ok("inventory", base, "-o", tmp_path / "have.json")
    patch = tmp_path / "patch"
    made = cli_ok("pack", pair.new.dir_root, "--base", tmp_path / "have.json", "-o", patch, "--quiet")
    assert "left to the base" in made.stdout

    # payload: every manifest of NEW, and of the configs and layers exactly those the base lacks
    old_files, new_files = pair.old.files(), pair.new.files()
    carried = set(registry_blob_files(patch))
    manifests = pair.new.manifests()
    assert carried - manifests == {d for d in new_files if d not in old_files and d not in manifests}
    assert manifests <= carried
    description = json.loads((patch / "regpack-patch.json").read_bytes())
    assert {b["digest"]: b["size"] for b in description["base_blobs"]} == {
        d: n for d, n in new_files.items() if d in old_files and d not in manifests
    }
    diff = json.loads(cli_ok("diff", tmp_path / "have.json", pair.new.dir_root, "--json").stdout)
    assert diff["totals"]["patch_bytes"] == sum(p.stat().st_size for p in registry_blob_files(patch).values())
    # the patch is checkable on its own, and complete with its base
    alone = json.loads(cli_ok("verify", patch, "--json").stdout)
    assert alone["ok"] and alone["from_base"]["blobs"] == len(description["base_blobs"])
    assert not alone["from_base"]["checked"]
    assert json.loads(cli_ok("verify", patch, "--base", base, "--json").stdout)["from_base"]["checked"]
    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", patch, "--base", base, "-o", unpacked, "--quiet")
    assert tree_bytes(unpacked) == tree_bytes(pair.new.dir_root)
    skopeo.copy(f"dir:{unpacked / 'app/api:1.0'}", f"oci:{tmp_path / 'reread'}:api")  # skopeo reads it

    # a site missing one base blob: refused, the blob named, nothing written
    damaged = copy_tree(base, tmp_path / "damaged")
    runtime_digest = pair.new.refs["new/svc:1"].blobs()[2].digest
    assert runtime_digest in {b["digest"] for b in description["base_blobs"]}
    registry_blob_files(damaged)[runtime_digest].unlink()
    before = tree_listing(damaged), tree_bytes(damaged)
    refused = run_cli("pack", patch, "--merge", "-o", damaged)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert runtime_digest in refused.stderr and "absent" in refused.stderr and "new/svc:1" in refused.stderr
    assert (tree_listing(damaged), tree_bytes(damaged)) == before
    assert leftovers(damaged) == []

    # apply onto the site's storage; the registry serves all of NEW, byte-identical to what skopeo wrote
    applied = cli_ok("pack", patch, "--merge", "-o", base, "--verify", "--quiet")
    assert "moved tag app/web:latest" in applied.stdout
    registry = serve_readonly(base)
    for ref in sorted(pair.new.refs):
        folder = pair.new.folder(ref)
        assert skopeo.inspect_raw(registry.ref(ref)) == (folder / "manifest.json").read_bytes(), ref
        pulled = tmp_path / "pulled" / ref
        pulled.parent.mkdir(parents=True, exist_ok=True)
        skopeo.copy(registry.ref(ref), f"dir:{pulled}")
        assert tree_bytes(pulled) == tree_bytes(folder), ref
    # what was there before stays pullable: a removed image by tag, replaced ones by digest
    legacy = tmp_path / "pulled-legacy"
    skopeo.copy(registry.ref("legacy/tool:1"), f"dir:{legacy}")
    assert tree_bytes(legacy) == tree_bytes(pair.old.folder("legacy/tool:1"))
    for ref, digest in (("app/web", pair.moved_from), ("app/api", pair.api_old)):
        old_folder = pair.old.folder("app/web:1.0" if ref == "app/web" else "app/api:1.0")
        assert skopeo.inspect_raw(registry.ref(f"{ref}@{digest}")) == (old_folder / "manifest.json").read_bytes()
    index = base / V2 / "repositories" / "app/web/_manifests/tags/latest/index/sha256"
    new_latest = file_sha256(pair.new.folder("app/web:latest") / "manifest.json")
    assert {p.name for p in index.iterdir()} == {pair.moved_from[7:], new_latest[7:]}

    # applying the same patch again is a no-op
    before = tree_listing(base), tree_bytes(base)
    again = cli_ok("pack", patch, "--merge", "-o", base, "--quiet")
    assert " 0 files" in again.stdout and "moved tag" not in again.stdout
    assert (tree_listing(base), tree_bytes(base)) == before


def test_archive_patches_work_the_same_way(pair: Pair, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path) -> None:
    """A patch written as .tar and .tar.zst against an archived base; diff, verify and unpack --base read archives
    on either side; the .tar.zst applies onto the site's packed storage and the registry serves NEW."""
    site = tmp_path / "site"
    cli_ok("pack", pair.old.dir_root, "-o", site, "--quiet")
    old_tar = tmp_path / "release-1.tar.zst"
    cli_ok("pack", pair.old.dir_root, "-o", old_tar, "--quiet")
    new_tar = tmp_path / "release-2.tar"
    cli_ok("pack", pair.new.dir_root, "-o", new_tar, "--quiet")

    plain, packed = tmp_path / "patch.tar", tmp_path / "patch.tar.zst"
    made = cli_ok("pack", new_tar, "--base", old_tar, "-o", plain, "--quiet")
    assert "left to the base" in made.stdout and "patch.tar" in made.stdout
    cli_ok("pack", pair.new.dir_root, "--base", site, "-o", packed, "--quiet")
    # the same patch whatever the layouts: the folder patch's files, as one archive
    folder_patch = tmp_path / "patch"
    cli_ok("pack", pair.new.dir_root, "--base", site, "-o", folder_patch, "--quiet")
    with tarfile.open(plain) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    in_folder = {p.relative_to(folder_patch).as_posix(): p.read_bytes() for p in folder_patch.rglob("*") if p.is_file()}
    description = json.loads(members.pop("regpack-patch.json"))
    folder_description = json.loads(in_folder.pop("regpack-patch.json"))
    assert members == in_folder
    # the same description but for where the base was read (the archive, the storage folder)
    assert description.pop("base").endswith("release-1.tar.zst") and folder_description.pop("base").endswith("site")
    assert description == folder_description
    old_files, new_files = pair.old.files(), pair.new.files()
    manifests = pair.new.manifests()
    assert {b["digest"]: b["size"] for b in description["base_blobs"]} == {
        d: n for d, n in new_files.items() if d in old_files and d not in manifests
    }
    carried = {name.rsplit("/", 2)[-2] for name in members if name.endswith("/data")}
    assert {f"sha256:{h}" for h in carried} - manifests == {
        d for d in new_files if d not in old_files and d not in manifests
    }

    diff = json.loads(cli_ok("diff", old_tar, new_tar, "--json").stdout)
    blob_bytes = sum(len(data) for name, data in members.items() if name.endswith("/data"))
    assert diff["totals"]["patch_bytes"] == blob_bytes
    alone = json.loads(cli_ok("verify", packed, "--json").stdout)
    assert alone["ok"] and alone["from_base"]["blobs"] == len(description["base_blobs"])
    assert not alone["from_base"]["checked"]
    assert json.loads(cli_ok("verify", packed, "--base", old_tar, "--json").stdout)["from_base"]["checked"]
    unpacked = tmp_path / "unpacked"
    cli_ok("unpack", plain, "--base", old_tar, "-o", unpacked, "--quiet")
    assert tree_bytes(unpacked) == tree_bytes(pair.new.dir_root)

    # a site missing one base blob: refused, the blob named, nothing written
    damaged = copy_tree(site, tmp_path / "damaged")
    runtime_digest = pair.new.refs["new/svc:1"].blobs()[2].digest
    registry_blob_files(damaged)[runtime_digest].unlink()
    before = tree_listing(damaged), tree_bytes(damaged)
    refused = run_cli("pack", packed, "--merge", "-o", damaged)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert runtime_digest in refused.stderr and "absent" in refused.stderr and "new/svc:1" in refused.stderr
    assert (tree_listing(damaged), tree_bytes(damaged)) == before
    assert leftovers(damaged) == []

    applied = cli_ok("pack", packed, "--merge", "-o", site, "--verify", "--quiet")
    assert "moved tag app/web:latest" in applied.stdout
    registry = serve_readonly(site)
    for ref in sorted(pair.new.refs):
        folder = pair.new.folder(ref)
        pulled = tmp_path / "pulled" / ref
        pulled.parent.mkdir(parents=True, exist_ok=True)
        skopeo.copy(registry.ref(ref), f"dir:{pulled}")
        assert tree_bytes(pulled) == tree_bytes(folder), ref
    before = tree_listing(site), tree_bytes(site)
    again = cli_ok("pack", packed, "--merge", "-o", site, "--quiet")
    assert " 0 files" in again.stdout and "moved tag" not in again.stdout
    assert (tree_listing(site), tree_bytes(site)) == before

    # a patch folder archived on its own would lose its description: refused, nothing written
    refused = run_cli("pack", folder_patch, "-o", tmp_path / "repacked.tar")
    assert refused.returncode == 1 and "is a patch" in refused.stderr and "Traceback" not in refused.stderr
    assert not list(tmp_path.glob("repacked.tar*"))


def test_plain_merge_of_the_new_release_refuses_the_moved_tag_unless_asked(
    pair: Pair, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    base = tmp_path / "site"
    cli_ok("pack", pair.old.dir_root, "-o", base, "--quiet")
    before = tree_listing(base), tree_bytes(base)
    refused = run_cli("pack", pair.new.dir_root, "--merge", "-o", base)
    assert refused.returncode == 1 and "--move-tags" in refused.stderr and "Traceback" not in refused.stderr
    assert (tree_listing(base), tree_bytes(base)) == before
    cli_ok("pack", pair.new.dir_root, "--merge", "--move-tags", "-o", base, "--quiet")
    registry = serve_readonly(base)
    assert (
        skopeo.inspect_raw(registry.ref("app/web:latest"))
        == (pair.new.folder("app/web:latest") / "manifest.json").read_bytes()
    )
    old_folder = pair.old.folder("app/web:1.0")
    assert skopeo.inspect_raw(registry.ref(f"app/web@{pair.moved_from}")) == (old_folder / "manifest.json").read_bytes()


def test_patch_applies_onto_a_live_registry_storage_the_site_pushed_to(
    pair: Pair, skopeo: Skopeo, registry: Registry, tmp_path: Path
) -> None:
    """The site's registry received release 1 by skopeo pushes; the patch is made from its inventory and
    applied into that registry's storage while it runs; it then serves release 2."""
    for ref in sorted(pair.old.refs):
        extra = ("--format", "v2s2") if ref in pair.old.v2s2 else ()
        skopeo.copy(f"oci:{pair.old.oci_layout}:{ref}", registry.ref(ref), *extra)
    cli_ok("inventory", registry.root, "-o", tmp_path / "have.json")
    patch = tmp_path / "patch"
    cli_ok("pack", pair.new.dir_root, "--base", tmp_path / "have.json", "-o", patch, "--quiet")
    cli_ok("pack", patch, "--merge", "-o", registry.root, "--quiet")
    for ref in sorted(pair.new.refs):
        folder = pair.new.folder(ref)
        pulled = tmp_path / "pulled" / ref
        pulled.parent.mkdir(parents=True, exist_ok=True)
        skopeo.copy(registry.ref(ref), f"dir:{pulled}")
        assert tree_bytes(pulled) == tree_bytes(folder), ref
    assert (
        skopeo.inspect_raw(registry.ref("legacy/tool:1"))
        == (pair.old.folder("legacy/tool:1") / "manifest.json").read_bytes()
    )
