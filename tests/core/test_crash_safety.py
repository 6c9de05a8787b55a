"""A job killed, out of disk or cancelled half-way leaves no half bundle that looks complete, and can be rerun.

- SIGKILL in the middle of ``pack`` (no cleanup can run): the destination does not exist; the rerun succeeds
  and verifies. The kill lands deterministically through small drivers that park the job: in its progress
  callback, and in the real CLI right after it copied a blob.
- SIGKILL in the middle of ``pack --merge``: the existing storage still verifies, and the rerun completes it.
- SIGTERM (what ``kill`` and service managers send) to the parked CLI: the job stops, cleans up and says
  nothing was written.
- A full disk (ENOSPC injected in each write path of the engine, and a real 2 MB tmpfs): a clear error
  naming the lack of space, no destination, no staging folder.
- Cancel from the progress callback: ``Cancelled``, no destination, no staging folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import regpack.engine
from regpack.errors import Cancelled, RegpackError
from regpack.jobs import pack, unpack
from regpack.progress import Progress
from regpack.verify import verify
from tests.core import corpus

ROOT = Path(__file__).resolve().parents[2]

MB = 1 << 20


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    """Poll until ``condition`` holds; fail (with the child's output) if the child dies first or never gets there."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the job ended (exit {proc.returncode}) before {what}:\n{out.decode()}\n{err.decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _assert_verifies(path: Path, images: int) -> None:
    report = verify(path)
    assert report.ok, [str(f) for f in report.findings]
    assert len(report.images) == images


def _nothing_written(dest: Path) -> None:
    assert not os.path.lexists(dest), f"{dest} exists"
    assert corpus.partials(dest) == [], f"staging left beside {dest}: {corpus.partials(dest)}"


# ---------------------------------------------------------------------------------------------------------
# SIGKILL


DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from regpack.jobs import pack

    src, dest, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

    def park():
        marker.write_text(str(os.getpid()))
        time.sleep(3600)  # the test kills us here

    progress = None
    if mode == "progress":
        def progress(p):
            if p.done_bytes > 0 and p.done_bytes < p.total_bytes:
                park()
    elif mode.startswith("rename"):
        # Park after the N-th file a merge moved into the existing storage.
        limit = int(mode.split("=")[1])
        real_rename = os.rename
        count = [0]
        def rename(a, b, **kw):
            real_rename(a, b, **kw)
            count[0] += 1
            if count[0] == limit:
                park()
        os.rename = rename
    pack(src, dest, copy=True, jobs=1, merge=mode.startswith("rename"), progress=progress)
    print("finished")
    """
)


def _start_driver(tmp_path: Path, src: Path, dest: Path, mode: str) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    marker = tmp_path / f"parked-{mode}"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(src), str(dest), str(marker), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, marker


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps it and closes its pipes
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_pack_leaves_no_destination_and_rerun_succeeds(tmp_path: Path) -> None:
    src = corpus.write_sized_skopeo(tmp_path / "src", images=6, layer_size=256 * 1024)
    dest = tmp_path / "storage"
    proc, marker = _start_driver(tmp_path, src, dest, "progress")
    _wait_for(marker.exists, proc, "the job reported progress")
    staged = corpus.partials(dest)
    assert len(staged) == 1, "the job writes into one staging folder beside the destination"
    assert any(p.is_file() for p in staged[0].rglob("*")), "the kill lands after some files were written"
    _kill(proc)

    assert not os.path.lexists(dest), "a killed job must not leave a destination that looks complete"
    result = pack(src, dest, copy=True)
    assert result.images == 6
    _assert_verifies(dest, 6)
    # The killed run's staging folder is all that remains of it: named as unfinished, never as the output.
    assert all(p.name.startswith("storage.partial-") for p in corpus.partials(dest))


CLI_DRIVER = textwrap.dedent(
    """
    import os, signal, sys, threading
    from pathlib import Path
    import regpack.cli, regpack.engine

    marker = Path(sys.argv[1])
    terminated = threading.Event()
    real_signal, real_copy = signal.signal, regpack.engine._copy_file

    def chained(signum, handler):
        # The CLI's own SIGTERM handler runs first; then the parked copy may go on and find the job cancelled.
        if signum != signal.SIGTERM or not callable(handler):
            return real_signal(signum, handler)
        def on_term(n, frame):
            try:
                handler(n, frame)
            finally:
                terminated.set()
        return real_signal(signum, on_term)

    def copy_then_park(*args):
        real_copy(*args)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            terminated.wait(3600)  # a SIGKILL ends the process here

    signal.signal = chained
    regpack.engine._copy_file = copy_then_park
    sys.exit(regpack.cli.main(sys.argv[2:]))
    """
)


def _start_cli_parked(tmp_path: Path, args: list[str | Path]) -> tuple[subprocess.Popen[bytes], Path]:
    """The real CLI, parked right after it copied its first blob into the staging folder."""
    script = tmp_path / "cli_driver.py"
    script.write_text(CLI_DRIVER)
    marker = tmp_path / "parked-cli"
    argv = [sys.executable, str(script), str(marker), *(str(a) for a in args)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=corpus.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, marker


def _copied_some(dest: Path) -> bool:
    return any(p.is_file() and p.stat().st_size > 0 for s in corpus.partials(dest) for p in s.rglob("data"))


def test_sigkill_real_cli_mid_copy(tmp_path: Path) -> None:
    src = corpus.write_sized_skopeo(tmp_path / "src", images=4, layer_size=2 * MB)
    dest = tmp_path / "storage"
    proc, marker = _start_cli_parked(tmp_path, ["pack", src, "-o", dest, "--copy", "--jobs", "1", "--quiet"])
    _wait_for(marker.exists, proc, "the CLI copied a blob")
    assert _copied_some(dest), "the kill lands after a blob was copied into the staging folder"
    _kill(proc)

    assert not os.path.lexists(dest), "a killed job must not leave a destination that looks complete"
    rerun = corpus.run_cli("pack", src, "-o", dest, "--copy", "--quiet")
    assert rerun.code == 0, str(rerun)
    check = corpus.run_cli("verify", dest)
    assert check.code == 0, str(check)
    assert "4 images" in check.stdout


def _merge_setup(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, tuple[int, int, int]]]:
    """Storage holding one image, and a bundle of that image plus three more to merge into it."""
    first = tmp_path / "first"
    first.mkdir()
    corpus.write_image_folder(first / "app:1.0", corpus.APP)
    everything = corpus.write_skopeo(tmp_path / "everything")
    dest = tmp_path / "storage"
    pack(first, dest, copy=True)
    return first, everything, dest, corpus.listing(dest)


def test_sigkill_mid_merge_keeps_storage_valid_and_rerun_completes(tmp_path: Path) -> None:
    _, everything, dest, before = _merge_setup(tmp_path)
    proc, marker = _start_driver(tmp_path, everything, dest, "rename=12")
    _wait_for(marker.exists, proc, "the merge moved files into place")
    _kill(proc)

    # Files were added part-way; nothing that was there changed, and what is there still verifies: a tag is
    # only written after everything it names, so no half-merged image is visible.
    after = corpus.listing(dest)
    files_before = {k: v for k, v in before.items() if not stat.S_ISDIR(v[0])}
    assert {k: v for k, v in after.items() if k in files_before} == files_before
    assert len(after) > len(before), "the kill landed after some files were merged"
    report = verify(dest)
    assert report.ok, [str(f) for f in report.findings]
    assert "app:1.0" in report.images

    rerun = pack(everything, dest, copy=True, merge=True)
    assert rerun.images == 4
    _assert_verifies(dest, 4)


def test_sigterm_stops_the_job_cleanly(tmp_path: Path) -> None:
    src = corpus.write_sized_skopeo(tmp_path / "src", images=4, layer_size=2 * MB)
    dest = tmp_path / "storage"
    proc, marker = _start_cli_parked(tmp_path, ["pack", src, "-o", dest, "--copy", "--jobs", "1", "--quiet"])
    _wait_for(marker.exists, proc, "the CLI copied a blob")
    assert _copied_some(dest)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()  # as a shell reports it
    assert b"Traceback" not in err, err.decode()
    assert b"nothing was written" in err, err.decode()
    _nothing_written(dest)


SIGNAL_AT_STAGING = textwrap.dedent(
    """
    import os, signal, sys
    import regpack.cli, regpack.engine

    real_new_staging = regpack.engine._new_staging

    def new_staging(dest, **where):
        path = real_new_staging(dest, **where)
        assert path.is_dir()
        os.kill(os.getpid(), signal.SIGTERM)  # arrives the moment the staging folder exists
        return path

    regpack.engine._new_staging = new_staging
    sys.exit(regpack.cli.main(sys.argv[1:]))
    """
)


def test_sigterm_as_staging_is_created_leaves_nothing(tmp_path: Path) -> None:
    src = corpus.write_skopeo(tmp_path / "src")
    dest = tmp_path / "storage"
    script = tmp_path / "signal_at_staging.py"
    script.write_text(SIGNAL_AT_STAGING)
    done = subprocess.run(
        [sys.executable, str(script), "pack", str(src), "-o", str(dest), "--quiet"], capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    _nothing_written(dest)


# ---------------------------------------------------------------------------------------------------------
# Disk full


class _OsWithFullDisk(ModuleType):
    """``os`` as the engine sees it, with one call failing with ENOSPC once ``budget`` bytes were written."""

    def __init__(self, fail: str, budget: int) -> None:
        super().__init__("os")
        self._fail = fail
        self._budget = budget
        self._lock = threading.Lock()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _spend(self, n: int, path: object = None) -> None:
        with self._lock:
            self._budget -= n
            if self._budget < 0:
                self.failures += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def copy_file_range(self, src: int, dst: int, count: int, *args: Any) -> int:
        if self._fail == "copy_file_range":
            self._spend(count)
        elif self._fail == "write":
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))  # as between two filesystems: fall back
        return os.copy_file_range(src, dst, count, *args)

    def write(self, fd: int, data: Any) -> int:
        if self._fail == "write":
            self._spend(len(data))
        return os.write(fd, data)

    def link(self, src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        if self._fail == "link":
            self._spend(1, dst)
        os.link(src, dst, *args, **kw)

    def mkdir(self, path: Any, *args: Any, **kw: Any) -> None:
        if self._fail == "mkdir":
            self._spend(1, path)
        os.mkdir(path, *args, **kw)

    def makedirs(self, path: Any, *args: Any, **kw: Any) -> None:
        if self._fail == "mkdir":
            self._spend(1, path)
        os.makedirs(path, *args, **kw)


@pytest.fixture
def small_bundle(tmp_path: Path) -> Path:
    return corpus.write_sized_skopeo(tmp_path / "src", images=3, layer_size=3 * MB)


FULL_DISK = [
    pytest.param("copy_file_range", True, 4 * MB, id="copy_file_range-mid-copy"),
    pytest.param("write", True, 4 * MB, id="write-fallback-mid-copy"),
    pytest.param("write", False, 0, id="write-link-file"),
    pytest.param("link", False, 3, id="hard-link"),
    pytest.param("mkdir", False, 2, id="mkdir"),
]


@pytest.mark.parametrize(("fail", "copy", "budget"), FULL_DISK)
def test_disk_full_is_a_clear_error_and_leaves_nothing(
    small_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str, copy: bool, budget: int
) -> None:
    before = corpus.listing(small_bundle)
    full = _OsWithFullDisk(fail, budget)
    monkeypatch.setattr(regpack.engine, "os", full)
    dest = tmp_path / "storage"
    with pytest.raises(RegpackError) as raised:
        pack(small_bundle, dest, copy=copy, jobs=2)
    assert full.failures >= 1, "the injected failure was reached"
    assert "no space" in str(raised.value).lower()
    _nothing_written(dest)
    assert corpus.listing(small_bundle) == before


@pytest.mark.parametrize(("fail", "copy", "budget"), FULL_DISK)
def test_disk_full_during_merge_leaves_storage_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str, copy: bool, budget: int
) -> None:
    _, _, dest, before = _merge_setup(tmp_path)
    more = corpus.write_sized_skopeo(tmp_path / "more", images=3, layer_size=3 * MB)
    full = _OsWithFullDisk(fail, budget)
    monkeypatch.setattr(regpack.engine, "os", full)
    with pytest.raises(RegpackError) as raised:
        pack(more, dest, copy=copy, jobs=2, merge=True)
    assert full.failures >= 1
    assert "no space" in str(raised.value).lower()
    assert corpus.listing(dest) == before
    assert corpus.partials(dest) == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB filesystem (needs root and mount); skipped where it cannot be mounted."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "link-falls-back-to-copy"])
def test_real_full_disk(tiny_tmpfs: Path, small_bundle: Path, copy: bool) -> None:
    dest = tiny_tmpfs / "storage"
    run = corpus.run_cli("pack", small_bundle, "-o", dest, *(["--copy"] if copy else []), "--quiet")
    assert run.code == 1, str(run)
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("regpack: error: "), str(run)
    assert "no space" in run.stderr.lower(), str(run)
    _nothing_written(dest)
    assert os.listdir(tiny_tmpfs) == [], "the small disk is left empty"
    # And the same disk takes a bundle that fits.
    fits = tiny_tmpfs.parent / "fits"
    fits.mkdir()
    corpus.write_image_folder(fits / "app:1.0", corpus.APP)
    ok = corpus.run_cli("pack", fits, "-o", dest, "--quiet")
    assert ok.code == 0, str(ok)
    _assert_verifies(dest, 1)


# ---------------------------------------------------------------------------------------------------------
# Cancel


def _cancel_on_first_progress() -> tuple[threading.Event, Callable[[Progress], None], list[Progress]]:
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(p: Progress) -> None:
        seen.append(p)
        cancel.set()

    return cancel, progress, seen


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "link"])
def test_cancel_pack_from_progress(small_bundle: Path, tmp_path: Path, copy: bool) -> None:
    cancel, progress, seen = _cancel_on_first_progress()
    dest = tmp_path / "storage"
    with pytest.raises(Cancelled):
        pack(small_bundle, dest, copy=copy, jobs=2, progress=progress, cancel=cancel)
    assert seen, "progress was reported before the cancel"
    _nothing_written(dest)


def test_cancel_unpack_from_progress(tmp_path: Path) -> None:
    storage = corpus.write_registry(tmp_path / "storage")
    cancel, progress, _ = _cancel_on_first_progress()
    dest = tmp_path / "dirs"
    with pytest.raises(Cancelled):
        unpack(storage, dest, copy=True, progress=progress, cancel=cancel)
    _nothing_written(dest)


def test_cancel_merge_leaves_storage_as_it_was(tmp_path: Path) -> None:
    _, everything, dest, before = _merge_setup(tmp_path)
    cancel, progress, _ = _cancel_on_first_progress()
    with pytest.raises(Cancelled):
        pack(everything, dest, copy=True, merge=True, progress=progress, cancel=cancel)
    assert corpus.listing(dest) == before
    assert corpus.partials(dest) == []


def test_cancel_before_start_writes_nothing(small_bundle: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    dest = tmp_path / "storage"
    with pytest.raises(Cancelled):
        pack(small_bundle, dest, cancel=cancel)
    _nothing_written(dest)


def test_cancel_verify_from_progress(small_bundle: Path) -> None:
    cancel, progress, _ = _cancel_on_first_progress()
    with pytest.raises(Cancelled):
        verify(small_bundle, progress=progress, cancel=cancel, jobs=1)


def test_cancelled_job_can_be_rerun(small_bundle: Path, tmp_path: Path) -> None:
    cancel, progress, _ = _cancel_on_first_progress()
    dest = tmp_path / "storage"
    with pytest.raises(Cancelled):
        pack(small_bundle, dest, copy=True, progress=progress, cancel=cancel)
    result = pack(small_bundle, dest, copy=True)
    assert result.images == 3
    _assert_verifies(dest, 3)
    report = json.loads(corpus.run_cli("verify", "--json", dest).stdout)
    assert report["ok"] is True


# ---------------------------------------------------------------------------------------------------------
# The finished output looks like any folder the user would have made


@pytest.mark.parametrize("job", ["pack", "unpack"])
def test_output_folder_gets_ordinary_permissions(tmp_path: Path, job: str) -> None:
    src = corpus.write_registry(tmp_path / "storage") if job == "unpack" else corpus.write_skopeo(tmp_path / "src")
    dest = tmp_path / "out"
    (pack if job == "pack" else unpack)(src, dest)
    reference = tmp_path / "made-by-mkdir"
    reference.mkdir()  # what the process umask gives a new folder
    assert stat.S_IMODE(dest.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
