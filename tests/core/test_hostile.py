"""Untrusted input never makes regpack write outside its destination or carry files from outside the source.

Each test builds a small "world": the received bundle, sentinel files and folders placed where a hostile
bundle or a booby-trapped destination would make regpack write (or read), and the destination folder. After
the command ran, every sentinel is byte-for-byte, inode and link-count unchanged, and nothing new appeared
anywhere outside the destination.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from regpack.jobs import pack
from tests.core import corpus
from tests.core.corpus import V2, Run, layer_hex

ROOT = Path(__file__).resolve().parents[2]

Snapshot = dict[str, tuple[int, int, int, int, int, str]]
SECRET = b"sentinel: nobody may write, link or replace this file\n"


def snapshot(root: Path, skip: Path | None = None) -> Snapshot:
    """Every entry below ``root`` except ``skip`` and what is inside it: mode, size, mtime, inode, link
    count and, for files, a content hash. Links are not followed."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p == skip:
                continue
            st = os.lstat(p)
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_nlink, digest)
    return out


class World:
    """``world/`` holds the bundle, the sentinels and ``out/`` (the only folder a job may write in)."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "world"
        self.root.mkdir()
        self.sentinel_dir = self.root / "sentinel"
        self.sentinel_dir.mkdir()
        self.sentinel_file = self.root / "sentinel-file"
        self.sentinel_file.write_bytes(SECRET)
        (self.sentinel_dir / "keep").write_bytes(SECRET)
        self.out = self.root / "out"
        self.out.mkdir()
        self.before: Snapshot = {}

    def freeze(self) -> None:
        self.before = snapshot(self.root, skip=self.out)

    def assert_untouched(self, dest: Path, sources: tuple[Path, ...] = (), *, check_dest: bool = True) -> None:
        after = snapshot(self.root, skip=self.out)
        assert after == self.before, _diff(self.before, after)
        assert sorted(os.listdir(self.out)) in ([], [dest.name]), f"out/ holds {os.listdir(self.out)}"
        if check_dest and dest.exists():
            _assert_nothing_points_out(dest, self.root, sources)


def _diff(before: Snapshot, after: Snapshot) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"outside the destination: added {added}, removed {removed}, changed {changed}"


def _assert_nothing_points_out(dest: Path, world: Path, sources: tuple[Path, ...]) -> None:
    """No symbolic link in the output, and no output file is (hard-linked to) a file outside the output
    other than a file of the source bundle (hard-linking those is how packing avoids copies)."""
    foreign = {
        (st.st_dev, st.st_ino): p
        for p in world.rglob("*")
        if not p.is_relative_to(dest)
        and not any(p.is_relative_to(s) for s in sources)
        and stat.S_ISREG((st := p.lstat()).st_mode)
    }
    for p in dest.rglob("*"):
        assert not p.is_symlink(), f"output holds a symbolic link: {p}"
        st = p.lstat()
        assert (st.st_dev, st.st_ino) not in foreign, f"{p} is the same file as {foreign[(st.st_dev, st.st_ino)]}"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _refused(run: Run, *words: str) -> None:
    assert run.code == 1, str(run)
    assert "Traceback" not in run.stderr, str(run)
    assert run.stderr.startswith("regpack: error: "), str(run)
    for w in words:
        assert w in run.stderr.lower(), f"expected {w!r} in: {run}"


# ---------------------------------------------------------------------------------------------------------
# A booby-trapped destination for --merge


def _storage_with_app(world: World) -> Path:
    first = world.root / "first"
    first.mkdir()
    corpus.write_image_folder(first / "app:1.0", corpus.APP)
    dest = world.out / "storage"
    pack(first, dest, copy=True)
    return dest


def _move_out(path: Path, world: World) -> None:
    """Replace the folder ``path`` by a symbolic link to a copy of it outside the destination."""
    shutil.rmtree(world.sentinel_dir)
    shutil.move(path, world.sentinel_dir)
    (world.sentinel_dir / "keep").write_bytes(SECRET)
    os.symlink(world.sentinel_dir, path)


TOOLS_LAYER = layer_hex("tools.t1")


def _trap_new_repository(dest: Path, world: World) -> Path:
    trap = dest / V2 / "repositories" / "tools"
    os.symlink(world.sentinel_dir, trap)
    return trap


def _trap_repositories(dest: Path, world: World) -> Path:
    _move_out(dest / V2 / "repositories", world)
    return dest / V2 / "repositories"


def _trap_blobs(dest: Path, world: World) -> Path:
    _move_out(dest / V2 / "blobs", world)
    return dest / V2 / "blobs"


def _trap_blob_prefix(dest: Path, world: World) -> Path:
    trap = dest / V2 / "blobs" / "sha256" / TOOLS_LAYER[:2]
    os.symlink(world.sentinel_dir, trap)
    return trap


def _trap_file(path: Path, world: World) -> Path:
    path.parent.mkdir(parents=True)
    os.symlink(world.sentinel_file, path)
    return path


def _trap_tag_link(dest: Path, world: World) -> Path:
    return _trap_file(dest / V2 / "repositories" / "tools" / "_manifests" / "tags" / "2" / "current" / "link", world)


def _trap_layer_link(dest: Path, world: World) -> Path:
    return _trap_file(dest / V2 / "repositories" / "tools" / "_layers" / "sha256" / TOOLS_LAYER / "link", world)


def _trap_blob_data(dest: Path, world: World) -> Path:
    return _trap_file(corpus.registry_blob(dest, TOOLS_LAYER), world)


TRAPS = {
    "new-repository-folder": _trap_new_repository,
    "repositories-folder": _trap_repositories,
    "blobs-folder": _trap_blobs,
    "blob-prefix-folder": _trap_blob_prefix,
    "tag-link-file": _trap_tag_link,
    "layer-link-file": _trap_layer_link,
    "blob-data-file": _trap_blob_data,
}


@pytest.mark.parametrize(
    "trap",
    [t for t in TRAPS],
)
def test_merge_never_writes_through_a_symlink_in_the_destination(world: World, trap: str) -> None:
    dest = _storage_with_app(world)
    trapped = TRAPS[trap](dest, world)
    everything = corpus.write_skopeo(world.root / "everything")
    world.freeze()
    inside = snapshot(dest)
    run = corpus.run_cli("pack", "--merge", everything, "-o", dest)
    # A symbolic link where regpack must write is refused outright, naming it: following it would write
    # elsewhere, and trusting what it points at would make the storage depend on a file outside it.
    _refused(run)
    assert str(trapped) in run.stderr, str(run)
    world.assert_untouched(dest, check_dest=False)  # the trap itself is a link in it; unchanged below
    assert snapshot(dest) == inside, "a refused merge changes nothing in the storage either"
    assert corpus.partials(dest) == []


def test_destination_that_is_a_symlink_is_refused(world: World) -> None:
    bundle = corpus.write_skopeo(world.root / "bundle")
    dest = world.out / "storage"
    os.symlink(world.sentinel_dir, dest)
    world.freeze()
    for command in ("pack", "unpack"):
        run = corpus.run_cli(command, bundle, "-o", dest)
        _refused(run, "symbolic link")
        world.assert_untouched(dest, check_dest=False)
        assert os.listdir(world.sentinel_dir) == ["keep"]


# ---------------------------------------------------------------------------------------------------------
# Names that would escape the destination


@pytest.mark.parametrize(
    "ref_name",
    [
        "../../sentinel:1",
        "../sentinel-file:1",
        "a/../../../sentinel:1",
        "{world}/sentinel:1",
        "sentinel:../../1",
        "app:1\n../../sentinel",
        "./../sentinel:1",
    ],
)
@pytest.mark.parametrize("command", ["unpack", "pack"])
def test_oci_ref_name_cannot_escape(world: World, ref_name: str, command: str) -> None:
    name = ref_name.format(world=world.root)
    bundle = corpus.write_oci(world.root / "bundle", {"app:1.0": name})
    dest = world.out / "dirs"
    world.freeze()
    run = corpus.run_cli(command, bundle, "-o", dest)
    _refused(run)
    world.assert_untouched(dest)
    assert not dest.exists()


@pytest.mark.parametrize("folder", ["...", "..a", ".hidden", "-x", "a..b", "a/.../b"])
def test_registry_repository_folder_cannot_escape(world: World, folder: str) -> None:
    storage = corpus.write_registry(world.root / "bundle")
    target = corpus.registry_repo(storage, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(corpus.registry_repo(storage, "app"), target)
    dest = world.out / "dirs"
    world.freeze()
    run = corpus.run_cli("unpack", storage, "-o", dest)
    world.assert_untouched(dest, (storage,))
    # Either the folder is refused as a name (error), or ignored as not a repository (hidden): never written.
    if run.code == 0:
        written = {p.relative_to(dest).as_posix() for p in dest.rglob("manifest.json")}
        assert all(".." not in w and not w.startswith((".", "-")) for w in written), written
    else:
        _refused(run)
        assert not dest.exists()


def _registry_with_repository_linked_out(world: World) -> tuple[Path, Run, Path]:
    storage = corpus.write_registry(world.root / "bundle")
    shutil.rmtree(world.sentinel_dir)
    shutil.move(corpus.registry_repo(storage, "tools"), world.sentinel_dir)
    os.symlink(world.sentinel_dir, corpus.registry_repo(storage, "tools"))
    dest = world.out / "dirs"
    world.freeze()
    return storage, corpus.run_cli("unpack", storage, "-o", dest), dest


def test_registry_repository_symlinked_out_is_not_read(world: World) -> None:
    storage, _, dest = _registry_with_repository_linked_out(world)
    world.assert_untouched(dest, (storage,))
    assert not (dest / "tools:2").exists(), "a repository outside the storage was unpacked"


def test_registry_repository_symlinked_out_is_refused(world: World) -> None:
    _, run, dest = _registry_with_repository_linked_out(world)
    _refused(run, "symbolic link")
    assert not dest.exists()


# ---------------------------------------------------------------------------------------------------------
# Links out of the source


def _skopeo_with_layer_link(world: World, target: Path | str) -> Path:
    bundle = corpus.write_skopeo(world.root / "bundle")
    layer = bundle / "app:1.0" / layer_hex("app.a1")
    layer.unlink()
    os.symlink(target, layer)
    return bundle


@pytest.mark.parametrize("copy", [False, True], ids=["link", "copy"])
@pytest.mark.parametrize("target", ["sentinel", "/etc/passwd", "sentinel-with-right-bytes"])
@pytest.mark.parametrize("command", ["pack", "unpack"])
def test_blob_symlink_out_of_the_bundle_is_never_followed(world: World, target: str, copy: bool, command: str) -> None:
    if target == "sentinel":
        where: Path | str = world.sentinel_file
    elif target == "sentinel-with-right-bytes":
        where = world.root / "a1-outside"
        where.write_bytes(corpus.LAYERS["app.a1"])
    else:
        where = target
    bundle = _skopeo_with_layer_link(world, where)
    passwd = os.stat("/etc/passwd")
    dest = world.out / "result"
    world.freeze()
    run = corpus.run_cli(command, bundle, "-o", dest, *(["--copy"] if copy else []))
    _refused(run, "outside the bundle")
    world.assert_untouched(dest)
    after = os.stat("/etc/passwd")
    assert (after.st_ino, after.st_nlink, after.st_mtime_ns) == (passwd.st_ino, passwd.st_nlink, passwd.st_mtime_ns)


@pytest.mark.parametrize("layout", ["oci", "registry"])
@pytest.mark.parametrize("command", ["pack", "unpack"])
def test_blob_folder_symlinked_out_is_never_followed(world: World, layout: str, command: str) -> None:
    """The file is regular, but a folder on its way is a link out: its bytes must not be carried."""
    if layout == "oci":
        bundle = corpus.write_oci(world.root / "bundle")
        folder = bundle / "blobs" / "sha256"
    else:
        bundle = corpus.write_registry(world.root / "bundle")
        folder = corpus.registry_blob(bundle, layer_hex("app.a1")).parent.parent
    shutil.rmtree(world.sentinel_dir)
    shutil.move(folder, world.sentinel_dir)
    os.symlink(world.sentinel_dir, folder)
    outside = {(st.st_ino, st.st_nlink) for p in world.sentinel_dir.rglob("*") if (st := p.stat()) and p.is_file()}
    dest = world.out / "result"
    world.freeze()
    run = corpus.run_cli(command, bundle, "-o", dest)
    after = {(st.st_ino, st.st_nlink) for p in world.sentinel_dir.rglob("*") if (st := p.stat()) and p.is_file()}
    assert after == outside, "files outside the bundle were hard-linked into the output"
    _refused(run, "outside the bundle")
    world.assert_untouched(dest)


def _skopeo_with_folder_linked_out(world: World) -> tuple[Path, Run, Path]:
    bundle = corpus.write_skopeo(world.root / "bundle")
    shutil.rmtree(world.sentinel_dir)
    shutil.move(bundle / "tools:2", world.sentinel_dir)
    os.symlink(world.sentinel_dir, bundle / "tools:2")
    dest = world.out / "storage"
    world.freeze()
    return bundle, corpus.run_cli("pack", bundle, "-o", dest), dest


def test_skopeo_image_folder_symlinked_out_is_not_read(world: World) -> None:
    bundle, _, dest = _skopeo_with_folder_linked_out(world)
    world.assert_untouched(dest, (bundle,))
    if dest.exists():
        assert not corpus.registry_repo(dest, "tools").exists(), "an image folder outside the bundle was packed"


def test_skopeo_image_folder_symlinked_out_is_refused(world: World) -> None:
    _, run, dest = _skopeo_with_folder_linked_out(world)
    _refused(run, "symbolic link")
    assert not dest.exists()
