"""Registry storage inside an archive is read from the member index, by the same reader as the folder: the same
images, blobs and problems (named ``ARCHIVE:member`` instead of the file), for good and damaged storage alike."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from regpack import layouts
from regpack.bundle import Bundle, Layout
from regpack.errors import BundleError, Problem
from regpack.jobs import pack, unpack
from regpack.layouts.archive import ArchiveSource, ArchiveTree, open_archive
from regpack.verify import verify
from tests.core import corpus
from tests.core.conftest import tree

# Storage an archive cannot carry: symbolic links (refused by the archive reader as a whole), permissions
# (an archive member is readable whatever its mode), names that are not UTF-8 (refused as member names).
NOT_IN_AN_ARCHIVE = ("symlink", "unreadable", "not-utf8")
REGISTRY_CASES = [
    c for c in corpus.CASES if c.layout in ("registry", "oci") and not any(w in c.id for w in NOT_IN_AN_ARCHIVE)
]


def gnu_tar(root: Path, dest: Path, *flags: str) -> Path:
    """The storage as an operator archives it by hand: GNU tar of the folder, folders and files in its order."""
    subprocess.run(["tar", *flags, "-cf", str(dest), "-C", str(root), "."], check=True)
    return dest


def outcome(read: object, where: str) -> tuple[object, ...]:
    """What a user learns from reading a bundle: images, blobs and problems, files named relative to ``where``
    (the folder, or ``ARCHIVE:``) so that folder and archive compare."""
    if isinstance(read, BundleError):
        return ("error", read.reason, _relative(read.path, where))
    assert isinstance(read, Bundle)
    images = sorted((i.name, str(i.digest), tuple(str(d) for d in i.blob_digests())) for i in read.images)
    blobs = sorted((str(d), b.size, b.role.value, b.file is None, b.from_base) for d, b in read.blobs.items())
    return ("bundle", read.layout, images, blobs, read.is_patch, sorted(_problem(p, where) for p in read.problems))


def _problem(p: Problem, where: str) -> tuple[str, ...]:
    return (p.severity.value, p.code.value, p.reason, _relative(p.path, where), p.image or "", p.repository or "")


def _relative(path: Path | str | None, where: str) -> str:
    if path is None:
        return ""
    text = os.fspath(path)
    assert text.startswith(where), f"{text} is not named from {where}"
    return text[len(where) :].lstrip("/")


def read_or_error(path: Path) -> object:
    try:
        return layouts.read(path)
    except BundleError as e:
        return e


@pytest.mark.parametrize("case", REGISTRY_CASES, ids=[c.id for c in REGISTRY_CASES])
def test_damaged_bundle_reads_the_same_from_an_archive(case: corpus.Case, tmp_path: Path) -> None:
    root = case.make(tmp_path)
    folder = read_or_error(root)
    archive = gnu_tar(root, tmp_path / "storage.tar")
    from_archive = read_or_error(archive)
    assert outcome(from_archive, f"{archive}:") == outcome(folder, str(root))
    if case.is_error and not case.deep and isinstance(folder, Bundle):
        assert folder.problems, "the case must show a problem to compare"
    if isinstance(from_archive, Bundle):
        assert isinstance(from_archive.source, ArchiveSource)
        assert not any(os.scandir(from_archive.source.view_root)), "registry storage is read without a view"


def test_every_registry_case_that_fits_in_an_archive_is_compared() -> None:
    """The comparison above covers the damage the corpus knows, not a handful of it."""
    assert len(REGISTRY_CASES) >= 20
    assert any(c.is_error and not c.deep for c in REGISTRY_CASES)


@pytest.mark.parametrize("flags", [(), ("--zstd",), ("--gzip",)], ids=["tar", "tar.zst", "tar.gz"])
def test_storage_of_nested_repositories_and_api_deletes_reads_the_same(
    dir_bundle: Path, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """Nested repository names, a second tag, a list; then what deletes leave: a tag gone, an empty revision
    folder and an empty layer folder (no link), an upload in progress."""
    root = tmp_path / "storage"
    pack(dir_bundle, root)
    repos = root / "docker/registry/v2/repositories"
    revisions = repos / "calico/node/_manifests/revisions/sha256"
    (repos / "calico/node/_manifests/tags/latest").rename(tmp_path / "gone")  # untagged through the API
    untagged = sorted(revisions.iterdir())[0]
    (untagged / "link").unlink()
    layer = sorted((repos / "a/b/c/_layers/sha256").iterdir())[0]
    (layer / "link").unlink()
    (repos / "alpine/_uploads/0a1b/").mkdir(parents=True)
    (repos / "alpine/_uploads/0a1b/data").write_bytes(b"x" * 100)
    folder = layouts.read(root)
    suffix = {(): "", ("--zstd",): ".zst", ("--gzip",): ".gz"}[flags]
    archive = gnu_tar(root, tmp_path / ("storage.tar" + suffix), *flags)
    from_archive = layouts.read(archive)
    assert outcome(from_archive, f"{archive}:") == outcome(folder, str(root))
    assert {i.name for i in from_archive.images} >= {"alpine:3.19", "a/b/c:1", "multi:2"}
    assert folder.problems, "the deleted links must be named"


def test_a_patch_description_reads_the_same(dir_bundle: Path, tmp_path: Path) -> None:
    from regpack.layouts.registry import DESCRIPTION

    root = tmp_path / "storage"
    pack(dir_bundle, root)
    (root / DESCRIPTION).write_text("{not json")
    archive = gnu_tar(root, tmp_path / "storage.tar")
    assert outcome(layouts.read(archive), f"{archive}:") == outcome(layouts.read(root), str(root))
    assert any("patch description" in p.reason or p.code.value == "bad-patch" for p in layouts.read(root).problems)


def test_the_tree_over_the_index_answers_as_the_folder(dir_bundle: Path, tmp_path: Path) -> None:
    """The operations the reader uses, one by one, against the same storage on disk."""
    from regpack.layouts._common import SafeRoot

    root = tmp_path / "storage"
    pack(dir_bundle, root)
    source = open_archive(gnu_tar(root, tmp_path / "s.tar"))
    top = source.view_root
    archive_tree, disk = ArchiveTree(source, top), SafeRoot(root)
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        mine = top if rel == "." else f"{top}/{rel}"
        assert [(e.name, e.is_dir(follow_symlinks=False)) for e in archive_tree.scan(mine)] == [
            (e.name, e.is_dir(follow_symlinks=False)) for e in disk.scan(folder)
        ]
        assert archive_tree.listdir(mine) == disk.listdir(folder) == sorted(dirs + files)
        assert archive_tree.is_dir(mine)
        for name in files:
            found = archive_tree.file(f"{mine}/{name}", "file")
            on_disk = disk.file(f"{folder}/{name}", "file")
            assert found is not None and on_disk is not None and found[1] == on_disk[1]
            assert archive_tree.read_small(found[0], 1 << 20, "file", found[0]) == Path(folder, name).read_bytes()
            assert not archive_tree.is_dir(f"{mine}/{name}") and archive_tree.lexists(f"{mine}/{name}")
            with pytest.raises(BundleError, match="not a regular file"):
                archive_tree.file(mine, "file")
    assert archive_tree.file(f"{top}/no/such/file", "file") is None
    assert archive_tree.listdir(f"{top}/no/such") == []
    with pytest.raises(FileNotFoundError):
        archive_tree.scan(f"{top}/no/such")
    source.view.cleanup()


def test_what_plans_and_the_window_open_by_name_is_written_on_demand(dir_bundle: Path, tmp_path: Path) -> None:
    pack(dir_bundle, tmp_path / "r.tar.zst")
    bundle = layouts.read(tmp_path / "r.tar.zst").check()
    source = bundle.source
    assert isinstance(source, ArchiveSource) and bundle.layout is Layout.REGISTRY
    image = bundle.images[0]
    location = image.locations[image.digest]
    assert not os.path.lexists(location)
    assert Path(layouts.readable(bundle, location)).read_bytes() == source.data[source.name_of(location) or ""]
    # and everything that copies blobs still works from the index alone, as from the folder
    assert verify(tmp_path / "r.tar.zst").ok
    pack(dir_bundle, tmp_path / "storage")
    unpack(tmp_path / "r.tar.zst", tmp_path / "out")
    unpack(tmp_path / "storage", tmp_path / "out-of-folder")
    assert tree(tmp_path / "out") == tree(tmp_path / "out-of-folder")
    pack(tmp_path / "r.tar.zst", tmp_path / "again")
    assert tree(tmp_path / "again") == tree(tmp_path / "storage")


@pytest.mark.parametrize("suffix", ["tar", "tar.zst", "tar.gz", "tgz"])
def test_an_oci_layout_is_read_from_the_index_and_named_as_its_folder_is(tmp_path: Path, suffix: str) -> None:
    """A tag-only reference takes the layout's folder name as repository; at the top of an archive, the
    archive's name (not the name of a scratch folder)."""
    from tests.support import ocibuild as ob

    base = ob.layer(ob.text_files("base"))
    index = ob.index([ob.image([base]), ob.image([base, ob.layer(ob.text_files("arm"))], architecture="arm64")])
    layout = ob.write_oci_layout(tmp_path / "release", {"1.0": ob.image([base]), "team/app:2": index})
    flags = {"tar": (), "tar.zst": ("--zstd",), "tar.gz": ("--gzip",), "tgz": ("--gzip",)}[suffix]
    archive = gnu_tar(layout, tmp_path / f"release.{suffix}", *flags)
    bundle = layouts.read(archive).check()
    assert outcome(bundle, f"{archive}:") == outcome(layouts.read(layout), str(layout))
    assert sorted(i.name for i in bundle.images) == ["release:1.0", "team/app:2"]
    assert isinstance(bundle.source, ArchiveSource) and bundle.layout is Layout.OCI
    assert not any(os.scandir(bundle.source.view_root)), "an OCI layout is read without a view"
    assert verify(archive).ok
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "release:1.0" / "manifest.json").is_file()
