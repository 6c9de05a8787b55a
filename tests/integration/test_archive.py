"""Archives with the real tools: GNU tar extracts what regpack writes into storage the real registry serves and
skopeo pulls byte for byte; sha256sum checks the sidecar; split parts cat back; the same images give the same
archive bytes however the source tree was made; regpack reads archives GNU tar made of the registry's storage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_roundtrip import assert_served, cli_ok, image_folders
from tests.support.catalog import RealBundle
from tests.support.tools import Registry, Skopeo
from tests.support.trees import tree_bytes

pytestmark = pytest.mark.integration

Serve = Callable[[Path], Registry]


def gnu_tar(*args: str | Path, cwd: Path | None = None) -> None:
    subprocess.run(["tar", *map(str, args)], check=True, cwd=cwd, capture_output=True)


@pytest.mark.parametrize("name", ["release.tar", "release.tar.zst"])
def test_gnu_tar_extracts_storage_the_registry_serves(
    real_bundle: RealBundle, skopeo: Skopeo, serve_readonly: Serve, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cli_ok("pack", real_bundle.dir_root, "-o", out / name, "--quiet")
    assert sorted(p.name for p in out.iterdir()) == [name, f"{name}.sha256"]
    subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=out, check=True, capture_output=True)
    root = tmp_path / "registry-root"
    root.mkdir()
    gnu_tar(*(["--zstd"] if name.endswith(".zst") else []), "-xf", out / name, "-C", root)
    assert_served(serve_readonly(root), skopeo, image_folders(real_bundle.dir_root), tmp_path)


def test_split_parts_cat_back_and_sha256sum_checks_them(real_bundle: RealBundle, tmp_path: Path) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    whole.mkdir()
    split.mkdir()
    cli_ok("pack", real_bundle.dir_root, "-o", whole / "r.tar", "--quiet")
    cli_ok("pack", real_bundle.dir_root, "-o", split / "r.tar", "--split", "64K", "--quiet")
    parts = sorted(split.glob("r.tar.[0-9]*"))
    assert len(parts) > 2
    subprocess.run(["sha256sum", "-c", "r.tar.sha256"], cwd=split, check=True, capture_output=True)
    joined = subprocess.run(["sh", "-c", "cat r.tar.[0-9]*"], cwd=split, check=True, capture_output=True).stdout
    assert joined == (whole / "r.tar").read_bytes()
    # every command reads the parts by the first one's name
    assert "OK" in cli_ok("verify", split / "r.tar.000").stdout


def _rebuilt(src: Path, dest: Path, mtime: int) -> Path:
    """The same image folders copied in reverse order, owned by someone else, with other times and modes."""
    folders = sorted(image_folders(src).items(), reverse=True)
    for ref, folder in folders:
        target = dest / ref
        target.mkdir(parents=True)
        for path in sorted(folder.iterdir(), reverse=True):
            shutil.copyfile(path, target / path.name)
            os.chmod(target / path.name, 0o600)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            os.utime(path, (mtime, mtime))
            if os.geteuid() == 0:
                os.chown(path, 65534, 65534)
    return dest


def test_same_images_same_archive_bytes(real_bundle: RealBundle, tmp_path: Path) -> None:
    other = _rebuilt(real_bundle.dir_root, tmp_path / "rebuilt", 1_234_567_890)
    out = tmp_path / "out"
    out.mkdir()
    for suffix in ("tar", "tar.zst"):
        cli_ok("pack", real_bundle.dir_root, "-o", out / f"a.{suffix}", "--jobs", "1", "--quiet")
        cli_ok("pack", other, "-o", out / f"b.{suffix}", "--jobs", "2", "--quiet")
        # and from the storage the real registry wrote while skopeo pushed the same images
        cli_ok("pack", real_bundle.storage_root, "-o", out / f"c.{suffix}", "--quiet")
        first = (out / f"a.{suffix}").read_bytes()
        assert (out / f"b.{suffix}").read_bytes() == first
        assert (out / f"c.{suffix}").read_bytes() == first


@pytest.mark.parametrize("compress", [False, True])
def test_regpack_reads_gnu_tar_of_the_registry_storage(
    real_bundle: RealBundle, skopeo: Skopeo, tmp_path: Path, compress: bool
) -> None:
    name = tmp_path / ("storage.tar.zst" if compress else "storage.tar")
    gnu_tar(*(["--zstd"] if compress else []), "-cf", name, "-C", real_bundle.storage_root, ".")
    report = cli_ok("verify", name).stdout
    assert report.rstrip().endswith("OK")
    from_folder, from_archive = tmp_path / "from-folder", tmp_path / "from-archive"
    cli_ok("unpack", real_bundle.storage_root, "-o", from_folder, "--quiet")
    cli_ok("unpack", name, "-o", from_archive, "--quiet")
    assert tree_bytes(from_archive) == tree_bytes(from_folder)
    # what regpack unpacked from the archive, skopeo reads: copy every image into an OCI layout
    for ref, folder in image_folders(from_archive).items():
        skopeo.copy(f"dir:{folder}", f"oci:{tmp_path / 'oci'}:{ref.replace('/', '-')}")


def test_stdout_archive_through_a_pipe_is_the_same_archive(real_bundle: RealBundle, tmp_path: Path) -> None:
    cli_ok("pack", real_bundle.dir_root, "-o", tmp_path / "r.tar", "--quiet")
    root = tmp_path / "x"
    root.mkdir()
    script = (
        f"'{sys.executable}' -m regpack pack '{real_bundle.dir_root}' -o - --quiet "
        f"| tee '{tmp_path}/piped.tar' | tar -xf - -C '{root}'"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run(["sh", "-c", script], check=True, env=env)
    assert (tmp_path / "piped.tar").read_bytes() == (tmp_path / "r.tar").read_bytes()
    assert (root / "docker" / "registry" / "v2" / "repositories").is_dir()
