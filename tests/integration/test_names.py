"""Names through the real tools: scoped trees from two registries, containerd exports, repository names that
look like hosts, and --skip-broken on storage the registry itself left broken."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from regpack import layouts
from tests.support import ocibuild as ob
from tests.support.tools import Registry, Skopeo, run_cli, start_registry
from tests.support.trees import leftovers, tree_bytes

pytestmark = pytest.mark.integration

Serve = Callable[[Path], Registry]

BASE = ob.layer(ob.text_files("names-base"))
ALPINE = ob.image([BASE, ob.layer(ob.text_files("names-alpine"))])
MIRRORED = ob.image([BASE, ob.layer(ob.text_files("names-mirror"))])
TOOLS = ob.image([BASE, ob.layer(ob.text_files("names-tools"))], docker=False)
MULTI = ob.index([ob.image([BASE]), ob.image([BASE, ob.layer(ob.text_files("names-arm"))], architecture="arm64")])


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert "Traceback" not in result.stderr, result.stderr
    assert "b'" not in result.stderr and ".partial-" not in result.stderr, result.stderr
    return result


def cli_ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = cli(*args)
    assert result.returncode == 0, f"regpack {' '.join(map(str, args))} failed:\n{result.stderr}"
    return result


def push(skopeo: Skopeo, registry: Registry, work: Path, refs: dict[str, ob.Artifact]) -> None:
    """Push images with skopeo from an OCI layout the test writes, as a user pushes them."""
    layout = ob.write_oci_layout(work / f"push-{registry.port}", refs)
    for ref in refs:
        skopeo.copy(f"oci:{layout}:{ref}", registry.ref(ref))


def served(registry: Registry, skopeo: Skopeo, ref: str, work: Path) -> dict[str, bytes]:
    """What skopeo pulls of ``ref`` from ``registry``, file by file."""
    dest = work / "pulled" / f"{registry.port}" / ref
    dest.parent.mkdir(parents=True, exist_ok=True)
    skopeo.copy(registry.ref(ref), f"dir:{dest}")
    return tree_bytes(dest)


def served_names(root: Path) -> set[tuple[str, str | None, str]]:
    return {(i.repository, i.tag, str(i.digest)) for i in layouts.read(root).check().images}


@pytest.fixture
def second_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path / "second-storage", tmp_path / "second-run")
    yield reg
    reg.stop()


def test_scoped_trees_from_two_registries_clash_until_renamed(
    registry: Registry, second_registry: Registry, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    push(skopeo, registry, tmp_path, {"library/alpine:3.10": ALPINE})
    push(skopeo, second_registry, tmp_path, {"library/alpine:3.10": MIRRORED, "team/multi:1": MULTI})
    tree = tmp_path / "scoped"
    for reg in (registry, second_registry):
        skopeo.run("sync", "--all", "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                   f"{reg.host}/library/alpine", str(tree))  # fmt: skip
    skopeo.run("sync", "--all", "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
               f"{second_registry.host}/team/multi", str(tree))  # fmt: skip
    first = f"{registry.host}/library/alpine:3.10"
    mirror = f"{second_registry.host}/library/alpine:3.10"
    assert (tree / first / "manifest.json").is_file() and (tree / mirror / "manifest.json").is_file()

    for command in ("pack", "unpack"):
        refused = cli(command, tree, "-o", tmp_path / f"{command}-refused", "-q")
        assert refused.returncode == 1
        assert first in refused.stderr and mirror in refused.stderr and "--rename" in refused.stderr
        assert not (tmp_path / f"{command}-refused").exists() and not leftovers(tmp_path / f"{command}-refused")

    rename = f"{second_registry.host}/library=mirror/library"
    storage = tmp_path / "packed"
    cli_ok("pack", tree, "-o", storage, "--rename", rename, "--verify", "-q")
    assert {(r, t) for r, t, _ in served_names(storage)} == {
        ("library/alpine", "3.10"),
        ("mirror/library/alpine", "3.10"),
        ("team/multi", "1"),
    }
    reg = serve_readonly(storage)
    assert served(reg, skopeo, "library/alpine:3.10", tmp_path) == tree_bytes(tree / first)
    assert served(reg, skopeo, "mirror/library/alpine:3.10", tmp_path) == tree_bytes(tree / mirror)
    assert served(reg, skopeo, "team/multi:1", tmp_path) == tree_bytes(tree / f"{second_registry.host}/team/multi:1")

    # --only picks by name with its host; the unpacked folder is read by skopeo
    out = tmp_path / "unpacked"
    cli_ok("unpack", tree, "-o", out, "--only", f"{second_registry.host}/*", "-q")
    assert tree_bytes(out / "library/alpine:3.10") == tree_bytes(tree / mirror)
    skopeo.copy(f"dir:{out / 'team/multi:1'}", registry.ref("copied/multi:1"))
    assert served(registry, skopeo, "copied/multi:1", tmp_path) == tree_bytes(out / "team/multi:1")


def test_a_containerd_export_packs_and_unpacks_under_its_full_names(
    skopeo: Skopeo, serve_readonly: Serve, registry: Registry, tmp_path: Path
) -> None:
    export = ob.write_containerd_export(
        tmp_path / "export",
        [
            ("docker.io/library/alpine:3.18", ALPINE),
            ("docker.io/library/alpine:latest", ALPINE),
            ("quay.io/team/multi:1", MULTI),
            ("registry.example.com:5000/tools:2", TOOLS),
        ],
    )
    listed = json.loads(cli_ok("inspect", export, "--json").stdout)
    assert [i["name"] for i in listed["images"]] == [
        "docker.io/library/alpine:3.18",
        "docker.io/library/alpine:latest",
        "quay.io/team/multi:1",
        "registry.example.com:5000/tools:2",
    ]
    storage = tmp_path / "packed"
    cli_ok("pack", export, "-o", storage, "-q")
    reg = serve_readonly(storage)
    for ref, art in (("library/alpine:3.18", ALPINE), ("library/alpine:latest", ALPINE), ("team/multi:1", MULTI),
                     ("tools:2", TOOLS)):  # fmt: skip
        files = served(reg, skopeo, ref, tmp_path)
        assert files["manifest.json"] == art.manifest.data, ref
        assert {name: data for name, data in files.items() if name not in ("manifest.json", "version")} == {
            **{b.hex: b.data for b in art.blobs()},
            **{f"{c.manifest.hex}.manifest.json": c.manifest.data for c in getattr(art, "children", ())},
        }

    out = tmp_path / "unpacked"
    cli_ok("unpack", export, "-o", out, "-q")
    assert sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("manifest.json")) == [
        "library/alpine:3.18",
        "library/alpine:latest",
        "team/multi:1",
        "tools:2",
    ]
    skopeo.copy(f"dir:{out / 'team/multi:1'}", registry.ref("team/multi:1"))
    assert skopeo.inspect_raw(registry.ref("team/multi:1")) == MULTI.manifest.data


def test_repository_names_that_look_like_hosts_survive_unpack_and_pack(
    registry: Registry, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    refs = {"foo.bar/app:1": ALPINE, "localhost/app:2": TOOLS, "one:3": MULTI, "a.b/c.d/e:4": MIRRORED}
    push(skopeo, registry, tmp_path, refs)
    before = served_names(registry.root)
    assert {(r, t) for r, t, _ in before} == {("foo.bar/app", "1"), ("localhost/app", "2"), ("one", "3"),
                                               ("a.b/c.d/e", "4")}  # fmt: skip
    tree = tmp_path / "tree"
    cli_ok("unpack", registry.root, "-o", tree, "-q")
    assert sorted(p.parent.relative_to(tree).as_posix() for p in tree.rglob("manifest.json")) == [
        "localhost/a.b/c.d/e:4",
        "localhost/foo.bar/app:1",
        "localhost/localhost/app:2",
        "one:3",
    ]
    storage = tmp_path / "s2"
    cli_ok("pack", tree, "-o", storage, "-q")
    assert served_names(storage) == before
    reg = serve_readonly(storage)
    for ref in refs:
        assert served(reg, skopeo, ref, tmp_path) == served(registry, skopeo, ref, tmp_path), ref


def test_skip_broken_packs_the_rest_of_storage_the_registry_left_broken(
    registry: Registry, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path
) -> None:
    push(skopeo, registry, tmp_path, {"team/multi:1": MULTI, "alpine:3.10": ALPINE, "tools:1": TOOLS})
    # Deleting a platform manifest through the API leaves its list naming a manifest the registry will not serve.
    child = MULTI.children[1].manifest.digest
    request = urllib.request.Request(f"http://{registry.host}/v2/team/multi/manifests/{child}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202

    refused = cli("pack", registry.root, "-o", tmp_path / "refused", "-q")
    assert refused.returncode == 1 and "team/multi" in refused.stderr and not (tmp_path / "refused").exists()

    storage = tmp_path / "packed"
    run = cli_ok("pack", registry.root, "-o", storage, "--skip-broken", "-q")
    assert "left out team/multi:1" in run.stderr and "1 left out (1 broken)" in run.stderr
    assert "packed 2 images" in run.stdout
    reg = serve_readonly(storage)
    for ref in ("alpine:3.10", "tools:1"):
        assert served(reg, skopeo, ref, tmp_path) == served(registry, skopeo, ref, tmp_path), ref
    status, _ = reg.get("/v2/team/multi/manifests/1")
    assert status == 404
