"""A destination that already exists: a mount point (``pack -o /mnt/usb``, storage mounted at
/var/lib/registry), an empty folder, a storage to merge into. The job stages inside it, on its filesystem,
keeps the atomic guarantees, and names the user's destination in errors, never its staging folder.

The mount points are real tmpfs mounts (root and ``mount`` needed: CI runs as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from regpack.errors import Code
from regpack.jobs import pack, unpack
from regpack.verify import verify
from tests.core import corpus
from tests.core.test_crash_safety import _kill, _start_driver, _wait_for
from tests.support.trees import tree_bytes

MB = 1 << 20
Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """Factory: a fresh tmpfs mounted on an empty folder under tmp_path; every mount is undone at teardown."""
    if shutil.which("mount") is None:
        pytest.skip("mount points need the mount command, which this machine lacks")
    mounted: list[Path] = []

    def make(name: str, size: str = "64m") -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(point)
        assert os.path.ismount(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_pack_and_unpack_into_mount_points(mount: Mount, tmp_path: Path) -> None:
    src = corpus.write_skopeo(tmp_path / "src")
    usb = mount("usb")
    run = corpus.run_cli("pack", src, "-o", usb, "--quiet", "--verify")
    assert run.code == 0, str(run)
    assert os.listdir(usb) == ["docker"], "the storage, and nothing staged, is left on the mount"
    report = verify(usb)
    assert report.ok and len(report.images) == len(corpus.IMAGES)

    back = mount("back")
    run = corpus.run_cli("unpack", usb, "-o", back, "--quiet", "--verify")
    assert run.code == 0, str(run)
    assert not [n for n in os.listdir(back) if n.startswith(".")]
    assert tree_bytes(back) == tree_bytes(src)


def test_a_mount_point_holding_lost_and_found_counts_as_empty(mount: Mount, tmp_path: Path) -> None:
    src = corpus.write_skopeo(tmp_path / "src")
    storage = tmp_path / "storage"
    pack(src, storage)
    for name, job in (("usb", pack), ("back", unpack)):
        point = mount(name)
        (point / "lost+found").mkdir(mode=0o700)  # as mkfs.ext4 leaves it
        job(src if job is pack else storage, point, verify=True)
        assert "lost+found" in os.listdir(point)
        report = verify(point)
        assert report.ok and not report.findings, [str(f) for f in report.findings]
        assert len(report.images) == len(corpus.IMAGES)
    plain = tmp_path / "plain"
    (plain / "lost+found").mkdir(parents=True)  # not a mount point: an ordinary folder, so not empty
    run = corpus.run_cli("pack", src, "-o", plain)
    assert run.code == 1 and "not empty" in run.stderr


def test_existing_empty_folder_is_staged_on_its_own_filesystem(mount: Mount, tmp_path: Path) -> None:
    usb = mount("usb")
    src = corpus.write_skopeo(usb / "src")  # source on the mount: hard links work only within it
    dest = usb / "storage"
    dest.mkdir()
    result = pack(src, dest)
    assert result.bytes_copied == 0 and result.bytes_linked > 0
    assert os.listdir(dest) == ["docker"]
    assert verify(dest).ok


def test_merge_into_storage_on_a_mount_point(mount: Mount, tmp_path: Path) -> None:
    first = tmp_path / "first"
    corpus.write_image_folder(first / "app:1.0", corpus.APP)
    everything = corpus.write_skopeo(tmp_path / "everything")
    seed = tmp_path / "seed"
    pack(first, seed)
    usb = mount("usb")
    subprocess.run(["cp", "-a", f"{seed}/.", str(usb)], check=True)  # storage already on the mount
    result = pack(everything, usb, merge=True, verify=True)
    assert result.images == len(corpus.IMAGES) and result.skipped > 0
    assert os.listdir(usb) == ["docker"]
    report = verify(usb)
    assert report.ok and len(report.images) == len(corpus.IMAGES)


def test_errors_name_the_destination_not_the_staging_folder(mount: Mount, tmp_path: Path) -> None:
    src = corpus.write_sized_skopeo(tmp_path / "src", images=3, layer_size=3 * MB)
    usb = mount("tiny", size="2m")
    run = corpus.run_cli("pack", src, "-o", usb, "--quiet")
    assert run.code == 1, str(run)
    assert run.stderr.startswith(f"regpack: error: {usb}"), str(run)
    assert "no space" in run.stderr.lower()
    assert ".regpack-partial" not in run.stderr and ".partial-" not in run.stderr
    assert os.listdir(usb) == [], "nothing is left on the full mount"


def test_sigkill_mid_pack_into_a_mount_point_then_rerun(mount: Mount, tmp_path: Path) -> None:
    src = corpus.write_sized_skopeo(tmp_path / "src", images=6, layer_size=256 * 1024)
    usb = mount("usb")
    proc, marker = _start_driver(tmp_path, src, usb, "progress")
    _wait_for(marker.exists, proc, "the job reported progress")
    _kill(proc)
    left = os.listdir(usb)
    assert len(left) == 1 and left[0].startswith(".regpack-partial-"), left
    assert not verify(usb).ok, "what a killed job left is never a storage"

    result = pack(src, usb, copy=True)
    assert result.images == 6
    assert os.listdir(usb) == ["docker"], "the rerun removed what the killed run staged"
    assert verify(usb).ok


def test_unpack_into_an_existing_folder_holding_something_is_refused(tmp_path: Path) -> None:
    src = corpus.write_skopeo(tmp_path / "src")
    storage = tmp_path / "storage"
    pack(src, storage)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "note.txt").write_text("mine")
    run = corpus.run_cli("unpack", storage, "-o", dest)
    assert run.code == 1 and "not empty" in run.stderr
    assert os.listdir(dest) == ["note.txt"]
    unpack(storage, tmp_path / "fresh")
    assert tree_bytes(tmp_path / "fresh") == tree_bytes(src)


KILL_MID_MOVE = """
import os, sys, time
from pathlib import Path
from regpack.jobs import unpack

src, dest, marker = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
real_rename = os.rename
count = [0]

def rename(a, b, **kw):
    real_rename(a, b, **kw)
    count[0] += 1
    if count[0] == 2:  # two image folders moved into place, the others still staged
        marker.write_text(str(os.getpid()))
        time.sleep(3600)  # the test kills us here

os.rename = rename
unpack(src, dest, copy=True, jobs=1)
"""


def test_killed_while_moving_a_dir_tree_into_a_mount_point_is_reported_unfinished(mount: Mount, tmp_path: Path) -> None:
    import signal
    import sys

    storage = tmp_path / "storage"
    pack(corpus.write_skopeo(tmp_path / "src"), storage)
    usb = mount("usb")
    script = tmp_path / "kill_mid_move.py"
    script.write_text(KILL_MID_MOVE)
    marker = tmp_path / "parked"
    proc = subprocess.Popen([sys.executable, str(script), str(storage), str(usb), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(marker.exists, proc, "two image folders were moved into place")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps it and closes its pipes
    staged = [n for n in os.listdir(usb) if n.startswith(".regpack-partial-")]
    assert len(staged) == 1 and len(os.listdir(usb)) > 1

    report = verify(usb)
    assert not report.ok
    assert [(f.code, f.path) for f in report.errors] == [(Code.UNFINISHED, usb / staged[0])]
    run = corpus.run_cli("unpack", storage, "-o", usb)
    assert run.code == 1 and "not empty" in run.stderr
    assert staged[0] in os.listdir(usb), "the mark of the unfinished output stays until the user clears it"


@pytest.mark.parametrize("existing", [False, True], ids=["new-dest", "existing-dest"])
def test_a_failed_check_of_the_staged_output_names_the_destination(tmp_path: Path, existing: bool) -> None:
    from regpack import layouts
    from regpack.engine import execute
    from regpack.errors import BundleError
    from regpack.layouts.registry import plan_pack

    plan = plan_pack(layouts.read(corpus.write_skopeo(tmp_path / "src")).check())
    dest = tmp_path / "storage"
    if existing:
        dest.mkdir()
    seen: list[Path] = []

    def check(staged: Path) -> None:
        seen.append(staged)
        bad = staged / "docker/registry/v2/blobs"
        raise BundleError(f"output failed verification in {bad}", bad, "app:1.0")

    with pytest.raises(BundleError) as raised:
        execute(plan, dest, check=check)
    assert seen and seen[0] != dest
    assert str(seen[0]) not in str(raised.value)
    where = dest / "docker/registry/v2/blobs"
    assert raised.value.path == where
    assert str(raised.value) == f"image app:1.0: {where}: output failed verification in {where}"
    assert os.listdir(dest) == [] if existing else not dest.exists()
    assert corpus.partials(dest) == []
