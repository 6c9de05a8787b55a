"""Bundles made the way users make them: images built with buildah, pushed into the real registry, fetched into a
skopeo dir tree with `skopeo sync` (plain and --scoped); the registry's own storage after those pushes.

Each must pack into storage that the real registry serves byte for byte as the registry it came from, and unpack
into folders that skopeo pushes with every digest unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.realtools import ALL_REFS, Release
from tests.support.tools import Registry, Skopeo, run_cli, start_registry

pytestmark = pytest.mark.integration


def _sync(skopeo: Skopeo, release: Release, dest: Path, *extra: str) -> None:
    repos: dict[str, list[str]] = {}
    for ref in ALL_REFS:
        name, _, tag = ref.rpartition(":")
        repos.setdefault(name, []).append(tag)
    lines = [f"{release.registry.host}:", "  tls-verify: false", "  images:"]
    lines += [f"    {name}: [{', '.join(repr(t) for t in tags)}]" for name, tags in sorted(repos.items())]
    spec = dest.parent / f"{dest.name}-sync.yaml"
    spec.write_text("\n".join(lines) + "\n")
    dest.mkdir(parents=True)
    skopeo.run("sync", "--all", "--src", "yaml", "--dest", "dir", *extra, str(spec), str(dest))


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _assert_served_like(skopeo: Skopeo, served: Registry, release: Release, work: Path, *, scoped: bool) -> None:
    for ref in ALL_REFS:
        # plain `skopeo sync` keeps only the last component of a name (team/app1:1.0 arrives as app1:1.0);
        # --scoped keeps the whole name below the registry host, which registry storage has no place for
        name = ref if scoped else ref.rpartition("/")[2]
        assert skopeo.inspect_raw(served.ref(name)) == skopeo.inspect_raw(release.ref(ref)), ref
        ours, theirs = work / "ours" / ref, work / "theirs" / ref
        for dest, ref_of in ((ours, served.ref(name)), (theirs, release.ref(ref))):
            dest.parent.mkdir(parents=True, exist_ok=True)
            skopeo.copy(ref_of, f"dir:{dest}")
        assert _tree(ours) == _tree(theirs), ref


@pytest.mark.parametrize("scoped", [False, True], ids=["sync", "sync-scoped"])
def test_a_skopeo_synced_tree_packs_into_storage_the_registry_serves_byte_exact(
    buildah_release: Release, skopeo: Skopeo, serve_readonly, tmp_path: Path, scoped: bool
) -> None:
    tree = tmp_path / "bundle"
    _sync(skopeo, buildah_release, tree, *(("--scoped",) if scoped else ()))
    inspect = run_cli("inspect", tree, "--json")
    assert inspect.returncode == 0, inspect.stderr
    packed = tmp_path / "packed"
    run = run_cli("pack", tree, "-o", packed, "--verify")
    assert run.returncode == 0, run.stderr
    _assert_served_like(skopeo, serve_readonly(packed), buildah_release, tmp_path / "pulled", scoped=scoped)


def test_the_registrys_own_storage_unpacks_to_folders_skopeo_pushes_unchanged(
    buildah_release: Release, skopeo: Skopeo, tmp_path: Path
) -> None:
    release = buildah_release
    verify = run_cli("verify", release.storage)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    tree = tmp_path / "dirs"
    run = run_cli("unpack", release.storage, "-o", tree, "--verify")
    assert run.returncode == 0, run.stderr
    target = start_registry(tmp_path / "target", tmp_path / "target-run")
    try:
        for ref in ALL_REFS:
            folder = tree / ref
            assert (folder / "manifest.json").is_file(), f"{ref} was not unpacked to {folder}"
            skopeo.copy(f"dir:{folder}", target.ref(ref), "--preserve-digests")
            assert skopeo.inspect_raw(target.ref(ref)) == skopeo.inspect_raw(release.ref(ref)), ref
    finally:
        target.stop()
    # and the round trip: what regpack unpacked packs back into the same manifests
    again = tmp_path / "again"
    assert run_cli("pack", tree, "-o", again).returncode == 0
    root = "docker/registry/v2/blobs"
    assert _tree(again / root) == {k: v for k, v in _tree(release.storage / root).items() if k in _tree(again / root)}
