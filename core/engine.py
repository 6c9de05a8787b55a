"""Runs a Plan into a destination: staged in ``<dest>.partial-XXXX`` and renamed into place at the end.

Blobs are hard-linked when source and destination share a filesystem (no data copied), copied otherwise
or when asked. Work runs on a thread pool: os.link, copy_file_range and file writes release the GIL.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from regpack.errors import BundleError, Cancelled, DestinationError, RegpackError, quoted
from regpack.plan import LOST_AND_FOUND, STAGING_INSIDE, PlaceBlob, Plan, WriteFile
from regpack.progress import Meter, Progress, ProgressCallback

CLEANING_UP = "cleaning up"  # the progress message once a cancelled job has stopped and removes its staging

# Errors of os.link that mean "cannot link here", not "something is wrong": fall back to a copy.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
_BATCH_FILES = 256
_COPY_CHUNK = 64 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BATCH_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class ExecStats:
    files: int
    bytes_total: int
    bytes_copied: int
    bytes_linked: int
    skipped: int = 0  # merge: files already present with the same content
    moved: tuple[str, ...] = ()  # merge with tag moves: the tags (repository:tag) re-pointed
    blobs_copied: int = 0
    blobs_linked: int = 0


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


# Staging inside an existing destination (an empty folder, a mount point, a storage to merge into): hidden,
# so neither skopeo nor the registry takes it for content, and on the destination's own filesystem, so hard
# links and the final renames work. Its name carries the writer's pid, like the staging beside a new one.
INSIDE_PREFIX = STAGING_INSIDE


def check_destination(dest: Path, merge: bool) -> bool:
    """Validate ``dest``; return True when it exists (an empty folder, or a merge target).

    What a killed run staged inside it does not count: it is removed here, so the rerun finds it empty.
    """
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise DestinationError("destination is a symbolic link; give the real folder", dest)
    if not stat.S_ISDIR(st.st_mode):
        raise DestinationError("destination exists and is not a folder", dest)
    if merge:
        return True
    names = _own_entries(dest)
    if names and all(n.startswith(INSIDE_PREFIX) for n in names):
        _remove_stale_staging(dest, inside=True)  # beside anything else, it marks that output unfinished: kept
        names = _own_entries(dest)
    if names:
        raise DestinationError("destination exists and is not empty (choose a new folder, or --merge)", dest)
    return True


def _own_entries(dest: Path) -> list[str]:
    """What ``dest`` holds, less the ``lost+found`` a freshly made filesystem has at its mount point."""
    names = os.listdir(dest)
    if LOST_AND_FOUND in names and os.path.ismount(dest):
        names.remove(LOST_AND_FOUND)
    return names


class _Runner:
    def __init__(self, copy: bool, meter: Meter, cancel: threading.Event) -> None:
        self.copy = copy
        self.meter = meter
        self.cancel = cancel
        self.link_works = not copy
        self.lock = threading.Lock()
        self.copied = 0  # bytes
        self.linked = 0
        self.blobs_copied = 0
        self.blobs_linked = 0

    def run_batch(self, root: str, ops: Sequence[PlaceBlob | WriteFile]) -> None:
        copied = linked = blobs_copied = blobs_linked = 0
        for op in ops:
            if self.cancel.is_set():
                raise Cancelled()
            target = f"{root}/{op.dst}"
            if isinstance(op, WriteFile):
                fd = os.open(target, _CREATE, 0o644)
                try:
                    os.write(fd, op.data)
                finally:
                    os.close(fd)
                self.meter.add(len(op.data))
                continue
            if self.link_works and self._link(op.src, target):
                linked += op.size
                blobs_linked += 1
                self.meter.add(op.size)
            else:
                _copy_file(op.src, target, self.cancel, self.meter)
                copied += op.size
                blobs_copied += 1
                self.meter.add(0)
        with self.lock:
            self.copied += copied
            self.linked += linked
            self.blobs_copied += blobs_copied
            self.blobs_linked += blobs_linked

    def _link(self, src: str, target: str) -> bool:
        try:
            os.link(src, target, follow_symlinks=False)
            return True
        except FileNotFoundError:
            raise BundleError("source file vanished while packing", src) from None
        except OSError as e:
            if e.errno in _NO_LINK:
                if e.errno == errno.EXDEV:
                    self.link_works = False  # another filesystem: every later link would fail the same way
                return False
            raise


def _copy_file(src: str, target: str, cancel: threading.Event, meter: Meter) -> None:
    """Copy with copy_file_range (reflinks on filesystems that have them), streaming, never whole in memory."""
    try:
        fd_src = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BundleError("source file vanished while copying", src) from None
    try:
        fd_dst = os.open(target, _CREATE, 0o644)
        try:
            remaining = os.fstat(fd_src).st_size
            use_range = True
            while remaining > 0:
                if cancel.is_set():
                    raise Cancelled()
                n = 0
                if use_range:
                    try:
                        n = os.copy_file_range(fd_src, fd_dst, min(remaining, _COPY_CHUNK))
                    except OSError as e:
                        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                            raise
                        use_range = False  # both offsets stay where the last successful call left them
                        continue
                else:
                    chunk = os.read(fd_src, 1 << 20)
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd_dst, view)
                        view = view[written:]
                    n = len(chunk)
                if n == 0:
                    raise BundleError("source file shrank while it was copied", src)
                remaining -= n
                meter.add(n, 0)
        finally:
            os.close(fd_dst)
    finally:
        os.close(fd_src)


def _batches(ops: Iterable[PlaceBlob | WriteFile]) -> Iterator[list[PlaceBlob | WriteFile]]:
    batch: list[PlaceBlob | WriteFile] = []
    size = 0
    for op in ops:
        batch.append(op)
        size += op.size if isinstance(op, PlaceBlob) else len(op.data)
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _size(op: PlaceBlob) -> int:
    return op.size


def _plan_order(plan: Plan) -> Iterator[PlaceBlob | WriteFile]:
    """Big blobs first, so the pool does not end waiting on one large copy started last; the small files after
    them, made as they are taken. Sorting the blobs alone keeps no sort key per small file (a big pack has
    millions)."""
    blobs = sorted(plan.blobs.values(), key=_size, reverse=True)  # stable: blobs of one size stay in plan order
    yield from blobs
    del blobs
    yield from plan.small_files()


def _run_ops(
    root: str,
    ops: Iterable[PlaceBlob | WriteFile],
    copy: bool,
    jobs: int,
    meter: Meter,
    cancel: threading.Event,
) -> _Runner:
    """Run ``ops`` in batches on ``jobs`` threads, a few batches a thread queued at a time: the operations are
    taken from ``ops`` as the work goes, never all held at once."""
    runner = _Runner(copy, meter, cancel)
    window = jobs * _QUEUED_BATCHES
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="regpack") as pool:
        running: set[Future[None]] = set()
        try:
            for batch in _batches(ops):
                if cancel.is_set():
                    break  # the workers stop at their next file; what they raise is reported below
                running.add(pool.submit(runner.run_batch, root, batch))
                if len(running) >= window:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    if any(f.exception() is not None for f in done):
                        running |= done  # reported below with the others
                        break
            done, _ = wait(running, return_when=FIRST_EXCEPTION)
        except BaseException:  # KeyboardInterrupt in the waiting thread, or a plan that fails: stop the workers
            cancel.set()
            raise
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            cancel.set()  # stop the other workers at their next file
            pool.shutdown(wait=True, cancel_futures=True)
            exc = failed.exception()
            assert exc is not None
            raise exc
    return runner


_QUEUED_BATCHES = 4


def _wrap_os_error(e: OSError, dest: Path, staging: Path | None = None) -> RegpackError:
    where = os.fsdecode(e.filename) if e.filename else str(dest)
    if staging is not None and (where + "/").startswith(f"{staging}/"):
        where = str(dest) + where[len(str(staging)) :]  # the staging folder is gone by now: name the output
    if e.errno == errno.ENOSPC:
        return DestinationError("no space left on the device; nothing was written", where)
    if e.errno == errno.EDQUOT:
        return DestinationError("disk quota exceeded; nothing was written", where)
    return BundleError(f"{e.strerror or e}", where)


def execute(
    plan: Plan,
    dest: Path,
    *,
    copy: bool = False,
    jobs: int | None = None,
    merge: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    check: Callable[[Path], None] | None = None,
    message: str = "",
    move_tags: bool = False,
) -> ExecStats:
    """Write ``plan`` into ``dest``. ``check`` runs on the staged output before it is renamed into place."""
    dest = Path(os.path.abspath(dest))
    exists = check_destination(dest, merge)
    cancel = cancel or threading.Event()
    jobs = jobs or default_jobs()
    if merge and exists and not _is_empty(dest):
        return _merge(plan, dest, copy, jobs, progress, cancel, message, move_tags)
    if not exists:
        dest.parent.mkdir(parents=True, exist_ok=True)
    staging: Path | None = None
    try:
        # A new destination is staged beside it and renamed into place; an existing (empty) one, which may be
        # a mount point that cannot be replaced, is staged inside it on its own filesystem.
        staging = _new_staging(dest, inside=exists)
        if progress is not None:  # tens of thousands of folders come first: say so
            progress(Progress(0, plan.total_bytes, 0, plan.total_files, f"{message}: creating folders"))
        _make_directories(staging, plan, cancel)
        meter = Meter(progress, plan.total_bytes, plan.total_files, message)
        runner = _run_ops(str(staging), _plan_order(plan), copy, jobs, meter, cancel)
        if cancel.is_set():
            raise Cancelled()
        meter.finish()  # before the check, which reports its own phase
        if check is not None:
            check(staging)
        if exists:
            _move_into(staging, dest)
        else:
            os.rename(staging, dest)
    except BaseException as e:
        if staging is not None:
            if isinstance(e, Cancelled) and progress is not None:
                progress(Progress(0, 0, 0, 0, CLEANING_UP))  # the work has stopped; removal may take a while
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, RegpackError):
            raise _wrap_os_error(e, dest, staging) from e
        if isinstance(e, RegpackError) and (mapped := _as_user_path(e, staging, dest)) is not e:
            raise mapped from e
        raise
    return ExecStats(
        plan.total_files, plan.total_bytes, runner.copied, runner.linked,
        blobs_copied=runner.blobs_copied, blobs_linked=runner.blobs_linked,
    )  # fmt: skip


def _is_empty(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return next(entries, None) is None


def _move_into(staging: Path, dest: Path) -> None:
    """Move the staged tree's top-level entries into the existing ``dest``, on one filesystem.

    Registry storage has one such entry that makes it a storage (``docker``), moved last, so it appears in
    one rename as from a new destination. A dir tree has one per top-level folder: should a move fail, the ones
    already moved go back, and the staging is removed with them.
    """
    names = sorted(os.listdir(staging), key=lambda n: (n == "docker", n))
    moved: list[str] = []
    try:
        for name in names:
            os.rename(staging / name, dest / name)
            moved.append(name)
        os.rmdir(staging)
    except BaseException:
        for name in moved:
            with contextlib.suppress(OSError):
                os.rename(dest / name, staging / name)
        raise


def _as_user_path(error: RegpackError, staging: Path | None, dest: Path) -> RegpackError:
    """The same error naming the user's destination where it named the staging folder (gone by then)."""
    if staging is None:
        return error
    prefix = str(staging)

    def user(text: str) -> str:
        return text.replace(prefix, str(dest))

    if isinstance(error, BundleError):
        path = error.path
        new_path = Path(user(str(path))) if path is not None else None
        if new_path == path and prefix not in error.reason:
            return error
        return BundleError(user(error.reason), new_path, error.image, error.code)
    if isinstance(error, DestinationError):
        if prefix not in str(error.path) and prefix not in error.reason:
            return error
        return DestinationError(user(error.reason), user(str(error.path)))
    return error


def _new_staging(dest: Path, *, inside: bool = False) -> Path:
    """A fresh staging folder beside ``dest`` (or, with ``inside``, hidden inside the existing ``dest``), made by
    a plain mkdir (the umask decides its permissions).

    Not mkdtemp: it makes the folder 0700, and renamed into place that would hide the output from a registry
    running as its own user.
    """
    _remove_stale_staging(dest, inside=inside)
    if inside:
        parent, prefix = dest, f"{INSIDE_PREFIX}{os.getpid()}-"
    else:
        parent, prefix = dest.parent, f"{dest.name}.partial-{os.getpid()}-"
    while True:
        staging = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def _remove_stale_staging(dest: Path, *, inside: bool = False) -> None:
    """Remove what a killed run left beside ``dest`` (or inside it): staging folders whose process no longer
    exists.

    The staging name carries the pid of its writer; one whose pid is alive (this run, or another run still
    at work) is left alone.
    """
    prefix = INSIDE_PREFIX if inside else f"{dest.name}.partial-"
    try:
        entries = list(os.scandir(dest if inside else dest.parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        pid_text = entry.name[len(prefix) :].partition("-")[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue  # alive, owned by someone else


def _merge(
    plan: Plan,
    dest: Path,
    copy: bool,
    jobs: int,
    progress: ProgressCallback | None,
    cancel: threading.Event,
    message: str,
    move_tags: bool = False,
) -> ExecStats:
    """Add a plan into an existing tree: nothing there is rewritten; data lands before the links naming it.

    With ``move_tags``, a tag's ``current/link`` that names another digest is re-pointed the way a registry
    push does it: the new digest joins the tag's index, the old one stays there and stays pullable.
    """
    real_dest = Path(os.path.realpath(dest))
    todo: list[PlaceBlob | WriteFile] = []
    skipped = 0
    moved: list[str] = []
    for op in plan.operations():
        target = safe_target(real_dest, op.dst)
        if os.path.lexists(target):
            if isinstance(op, WriteFile):
                current = _read_small(target)
                tag = _tag_of_current_link(op.dst)
                if current != op.data and move_tags and tag is not None:
                    moved.append(tag)
                    todo.append(op)
                    continue
                if current != op.data:
                    if tag is not None:
                        raise DestinationError(
                            f"tag {tag} points at {current[:80].decode(errors='replace')}, the bundle says "
                            f"{op.data[:80].decode(errors='replace')}; refusing to overwrite it (--move-tags moves "
                            "tags the way a registry push does, keeping the old image pullable by digest)",
                            target,
                        )
                    raise DestinationError(
                        f"already holds {quoted(current)}, the bundle says {quoted(op.data)}; "
                        "refusing to overwrite (remove it first to retag)",
                        target,
                    )
            else:
                # An existing blob counts as present only as a regular file of the right size: a symlink
                # there would have the registry serve a file from outside the storage.
                st = os.lstat(target)
                if not stat.S_ISREG(st.st_mode):
                    raise DestinationError("is not a regular file; refusing to merge over it", target)
                if st.st_size != op.size:
                    raise DestinationError(
                        f"holds {st.st_size} bytes where the blob has {op.size}; refusing to merge over it", target
                    )
            skipped += 1
            continue
        todo.append(op)
    staging = _new_staging(dest, inside=True)  # the storage's own filesystem: every move below is a rename
    try:
        sub = Plan(
            plan.images,
            {op.dst: op for op in todo if isinstance(op, PlaceBlob)},
            {op.dst: op for op in todo if isinstance(op, WriteFile)},
        )
        _make_directories(staging, sub, cancel)
        meter = Meter(progress, sub.total_bytes, sub.total_files, message)
        runner = _run_ops(str(staging), _plan_order(sub), copy, jobs, meter, cancel)
        if cancel.is_set():
            raise Cancelled()
        # Blobs first, then per-repository links, then revisions, then tags: a crash part-way leaves only
        # unreferenced data, never a tag naming something absent.
        for op in sorted(todo, key=lambda op: (_merge_phase(op.dst), str(op.dst))):
            target = safe_target(real_dest, op.dst)
            _safe_makedirs(real_dest, target.parent)
            os.rename(staging / op.dst, target)
        meter.finish()
    except BaseException as e:
        if isinstance(e, OSError) and not isinstance(e, RegpackError):
            raise _wrap_os_error(e, dest, staging) from e
        if isinstance(e, RegpackError) and (mapped := _as_user_path(e, staging, dest)) is not e:
            raise mapped from e
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExecStats(
        len(todo), sub.total_bytes, runner.copied, runner.linked, skipped, tuple(sorted(moved)),
        runner.blobs_copied, runner.blobs_linked,
    )  # fmt: skip


def _tag_of_current_link(dst: str) -> str | None:
    """``repository:tag`` when ``dst`` is a tag's ``current/link`` in registry storage, else None."""
    _, sep, tail = dst.partition("/repositories/")
    if not sep or not tail.endswith("/current/link"):
        return None
    repo, sep, tag_part = tail.partition("/_manifests/tags/")
    tag = tag_part[: -len("/current/link")]
    if not sep or not repo or not tag or "/" in tag:
        return None
    return f"{repo}:{tag}"


def _make_directories(root: Path, plan: Plan, cancel: threading.Event) -> None:
    """Make every folder the plan's files need, in one pass over their names, keeping nothing per folder.

    Creating folders is most of the cost of registry storage on disk (a folder per link file), and a list of
    them would be most of a big pack's memory (a bundle of 100,000 images has millions). Each file's folder is
    made with a plain os.mkdir; when its parent is not there yet (ENOENT, one cheap failed call) the parents
    come first. A few hundred recently made folders are remembered, so files that share a folder (a skopeo
    dir image, a repository's links) cost one mkdir, not one each. A cancel is looked at every few hundred.
    """
    base = str(root)
    recent: set[str] = set()
    for n, dst in enumerate(plan.destinations()):
        if not n % 512 and cancel.is_set():
            raise Cancelled()
        folder = dst.rpartition("/")[0]
        if folder and folder not in recent:
            if len(recent) >= _RECENT_FOLDERS:
                recent.clear()
            _make_folder(base, folder, recent)


_RECENT_FOLDERS = 512


def _make_folder(base: str, folder: str, made: set[str]) -> None:
    """Make ``base/folder`` and any missing parents (``folder`` is relative, checked by the plan)."""
    try:
        os.mkdir(f"{base}/{folder}")
    except FileExistsError:
        pass  # made for an earlier file and forgotten since: nothing to do
    except FileNotFoundError:
        parent = folder.rpartition("/")[0]
        if not parent:
            raise
        _make_folder(base, parent, made)
        os.mkdir(f"{base}/{folder}")
    made.add(folder)


def _merge_phase(dst: str) -> int:
    parts = dst.split("/")
    if "blobs" in parts:
        return 0
    if "_layers" in parts:
        return 1
    if "revisions" in parts:
        return 2
    if "tags" in parts:
        return 4 if "current" in parts else 3
    return 5


def safe_target(real_dest: Path, rel: str) -> Path:
    target = real_dest / rel
    # Every existing folder on the way must be a real folder inside dest: a symlink planted in an
    # existing tree must not redirect our writes elsewhere.
    here = real_dest
    for part in rel.split("/")[:-1]:
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break
        if not stat.S_ISDIR(st.st_mode):
            raise DestinationError("is a symbolic link or a file where a folder is needed; refusing", here)
    return target


def _safe_makedirs(real_dest: Path, folder: Path) -> None:
    rel = folder.relative_to(real_dest)
    here = real_dest
    for part in rel.parts:
        here = here / part
        try:
            os.mkdir(here)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                raise DestinationError(
                    "is a symbolic link or a file where a folder is needed; refusing", here
                ) from None


def _read_small(path: Path) -> bytes:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise DestinationError("is not a regular file; refusing to merge over it", path)
    with open(path, "rb") as f:
        return f.read(4096)
