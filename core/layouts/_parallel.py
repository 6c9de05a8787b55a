"""Registry storage on disk read by two processes: a big storage costs a few dozen system calls an image (folder
listings, link files, the manifest, blob checks), about as much time in the kernel as in the reader's Python.

One process cannot spread that over cores (threads hand the interpreter's lock over at every call, which costs
more than it gives), and sending finished images between processes costs as much as reading them. So a helper
process (a fork, see ``Helper``) runs the same reader over a share of the repositories, records what each of its
file operations answered (a listing, a link's bytes, a file's size, an error), and sends those answers: plain
bytes and strings, cheap to send. The first process reads its own share as usual and runs the reader over the
other share too, on the recorded answers instead of the disk. Each repository is read by the same code either
way, in the same order, so the images, blobs and problems are what one process finds; an answer that was not
recorded (or a helper that fails) is asked of the disk, and the result is the same, only slower.

The answers are the kernel's from a moment earlier, the same checks made the same way (no symbolic link
followed out of the bundle, nothing opened that could block), only in the other process.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import signal
import warnings
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from regpack.errors import BundleError, Code
from regpack.layouts._common import Entry, FileStat, SafeRoot, Tree

# Below this many repositories (about half a second of reading), a second process hardly pays for itself.
MIN_REPOSITORIES = 2000
# Repositories are handed out in blocks: the helper takes HELPER_SHARE of the blocks, spread evenly, so that
# it reads ahead of the first process, which also replays the helper's share (measured on 2 cores: replaying a
# repository costs about a third of reading it).
BLOCK = 16
HELPER_SHARE = 0.6
# The helper remembers this many checked files at most (about 12 MiB): a blob shared by images read far apart
# is checked (and hashed) again rather than kept for the whole read.
_FILES_KEPT = 50_000
_PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for (/proc/sys/fs/pipe-max-size)

# Kinds of recorded answers.
_SCAN, _LISTDIR, _IS_DIR, _LEXISTS, _EXISTS, _INSIDE, _FILE, _PLAIN, _SMALL, _MANIFEST = range(10)


class _Raised:
    """An operation that raised: rebuilt and raised again on replay."""

    __slots__ = ("args", "kind")

    def __init__(self, error: BaseException) -> None:
        if isinstance(error, BundleError):
            self.kind = "bundle"
            self.args: tuple[Any, ...] = (
                error.reason,
                None if error.path is None else str(error.path),
                error.image,
                error.code.value,
                error.repository,
            )
        else:
            assert isinstance(error, OSError)
            self.kind = "os"
            self.args = (error.errno, error.strerror, error.filename)

    def __getstate__(self) -> tuple[str, tuple[Any, ...]]:
        return self.kind, self.args

    def __setstate__(self, state: tuple[str, tuple[Any, ...]]) -> None:
        self.kind, self.args = state

    def error(self) -> Exception:
        if self.kind == "bundle":
            reason, path, image, code, repository = self.args
            return BundleError(reason, path, image, Code(code), repository=repository)
        errno, strerror, filename = self.args
        if errno is None:
            return OSError(strerror)
        return OSError(errno, strerror, filename) if filename is not None else OSError(errno, strerror)


class _Entry:
    """A recorded folder entry: what readers use of ``os.DirEntry``."""

    __slots__ = ("_dir", "_followed", "_link", "name", "path")

    def __init__(self, name: str, path: str, dir_: bool, link: bool, followed: bool) -> None:
        self.name = name
        self.path = path
        self._dir = dir_
        self._link = link
        self._followed = followed

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._followed if follow_symlinks and self._link else self._dir

    def is_symlink(self) -> bool:
        return self._link


def _entry_record(entry: Entry) -> tuple[str, bool, bool, bool]:
    link = entry.is_symlink()
    dir_ = entry.is_dir(follow_symlinks=False)
    followed = entry.is_dir() if link else dir_
    return entry.name, dir_, link, followed


Answers = dict[tuple[Any, ...], Any]
_MISSING = object()
_NAMES = ("names",)  # in a repository's answers: file names kept already (Tree.merge_helper_state)


class Replay:
    """The ``Tree`` of one repository read in the helper: its recorded answers, and the disk (``live``) for
    anything not recorded. What ``live`` learns of folders is not needed: every answer is already known."""

    def __init__(self, live: Tree, answers: Answers) -> None:
        self.root = live.root
        self.descriptors = live.descriptors
        self._live = live
        self._answers = answers
        self._names: dict[str, str] = answers.get(_NAMES) or {}

    def _answer(self, key: tuple[Any, ...]) -> Any:
        found = self._answers.get(key, _MISSING)
        if type(found) is _Raised:
            raise found.error()
        return found

    def scan(self, folder: str) -> Sequence[Entry]:
        found = self._answer((_SCAN, folder))
        if found is _MISSING:
            return self._live.scan(folder)
        prefix = folder + "/"
        return [_Entry(name, prefix + name, dir_, link, followed) for name, dir_, link, followed in found]

    def listdir(self, folder: Path | str) -> list[str]:
        found = self._answer((_LISTDIR, str(folder)))
        return self._live.listdir(folder) if found is _MISSING else list(found)

    def is_dir(self, path: Path | str) -> bool:
        found = self._answer((_IS_DIR, str(path)))
        return self._live.is_dir(path) if found is _MISSING else bool(found)

    def lexists(self, path: Path | str) -> bool:
        found = self._answer((_LEXISTS, str(path)))
        return self._live.lexists(path) if found is _MISSING else bool(found)

    def exists(self, path: Path | str) -> bool:
        found = self._answer((_EXISTS, str(path)))
        return self._live.exists(path) if found is _MISSING else bool(found)

    def folder_inside(self, folder: str) -> bool:
        found = self._answer((_INSIDE, folder))
        return self._live.folder_inside(folder) if found is _MISSING else bool(found)

    def trust_folders(self, parent: str, entries: Iterable[Entry]) -> None:
        pass

    def trust_listing(self, parent: str) -> None:
        pass

    def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None:
        text = str(path)
        found = self._answer((_FILE, text, what))
        if found is _MISSING:
            return self._live.file(path, what)
        if found is None:
            return None
        # The usual file, read where it is named, was sent as its size alone: the name the caller built is the
        # one kept (as one process keeps it), or the equal one kept already as hashed while reading.
        if type(found) is int:
            return self._names.get(text, text), FileStat(found)
        return found[0], FileStat(found[1])

    def read_plain(self, path: str, limit: int) -> bytes | None:
        found = self._answer((_PLAIN, path, limit))
        return self._live.read_plain(path, limit) if found is _MISSING else found

    def read_small(self, real: str, limit: int, what: str, path: Path | str) -> bytes:
        found = self._answer((_SMALL, real, limit, what, str(path)))
        return self._live.read_small(real, limit, what, path) if found is _MISSING else found

    def read_manifest(self, real: str, image: str | None) -> bytes:
        found = self._answer((_MANIFEST, real, image))
        return self._live.read_manifest(real, image) if found is _MISSING else found

    def scope(self, folder: str) -> AbstractContextManager[None]:
        return nullcontext()


def recording(cls: type[SafeRoot]) -> type[SafeRoot]:
    """A subclass of the tree ``cls`` that keeps every answer it gives in ``answers`` (the helper's side)."""

    class Recording(cls):  # type: ignore[valid-type,misc]
        answers: Answers

        def _keep(self, key: tuple[Any, ...], call: Any, *args: Any) -> Any:
            try:
                found = call(*args)
            except (OSError, BundleError) as e:
                self.answers[key] = _Raised(e)
                raise
            self.answers[key] = found
            return found

        def scan(self, folder: str) -> Sequence[Entry]:
            try:
                entries: Sequence[Entry] = super().scan(folder)
            except OSError as e:
                self.answers[(_SCAN, folder)] = _Raised(e)
                raise
            self.answers[(_SCAN, folder)] = [_entry_record(e) for e in entries]
            return entries

        def listdir(self, folder: Path | str) -> list[str]:
            return self._keep((_LISTDIR, str(folder)), super().listdir, folder)  # type: ignore[no-any-return]

        def is_dir(self, path: Path | str) -> bool:
            return self._keep((_IS_DIR, str(path)), super().is_dir, path)  # type: ignore[no-any-return]

        def lexists(self, path: Path | str) -> bool:
            return self._keep((_LEXISTS, str(path)), super().lexists, path)  # type: ignore[no-any-return]

        def exists(self, path: Path | str) -> bool:
            return self._keep((_EXISTS, str(path)), super().exists, path)  # type: ignore[no-any-return]

        def folder_inside(self, folder: str) -> bool:
            return self._keep((_INSIDE, folder), super().folder_inside, folder)  # type: ignore[no-any-return]

        def file(self, path: Path | str, what: str) -> tuple[str, FileStat] | None:
            key = (_FILE, str(path), what)
            try:
                found: tuple[str, FileStat] | None = super().file(path, what)
            except (OSError, BundleError) as e:
                self.answers[key] = _Raised(e)
                raise
            if found is None:
                self.answers[key] = None
            else:
                real, st = found
                self.answers[key] = st.st_size if real == key[1] else (real, st.st_size)
            return found

        def read_plain(self, path: str, limit: int) -> bytes | None:
            return self._keep((_PLAIN, path, limit), super().read_plain, path, limit)  # type: ignore[no-any-return]

        def read_small(self, real: str, limit: int, what: str, path: Path | str) -> bytes:
            key = (_SMALL, real, limit, what, str(path))
            return self._keep(key, super().read_small, real, limit, what, path)  # type: ignore[no-any-return]

        def read_manifest(self, real: str, image: str | None) -> bytes:
            return self._keep((_MANIFEST, real, image), super().read_manifest, real, image)  # type: ignore[no-any-return]

    return Recording


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def helper_blocks(count: int) -> set[int]:
    """Which of ``count`` repositories the helper reads: HELPER_SHARE of the blocks, spread evenly."""
    share = HELPER_SHARE
    mine: set[int] = set()
    for block in range((count + BLOCK - 1) // BLOCK):
        if int((block + 1) * share) > int(block * share):
            mine.update(range(block * BLOCK, min(count, (block + 1) * BLOCK)))
    return mine


class BlobFolders(Protocol):
    """The registry reader's record of the blob folders listed so far (registry._BlobFolders)."""

    v2: str
    listed: set[str]


class Helper:
    """The second process and what it sent so far, as the first process sees it.

    The helper is a fork of this process, made once the repositories are listed: it shares the interpreter,
    the modules and the list with its parent (nothing to start, import or send), and the memory stays shared
    until one of them writes it. Forking is safe only in a process with one thread, which the caller checks.

    ``answers(i)`` gives the recorded answers of repository ``i`` when the helper reads it, waiting for them
    if need be; None when the first process reads it itself (not the helper's, or the helper stopped).
    """

    def __init__(
        self, root: SafeRoot, blob_folders: BlobFolders, jobs: list[tuple[int, str, str]], has_signatures: bool
    ) -> None:
        self._root = root
        self._mine = {index for index, _, _ in jobs}
        self._ready: dict[int, Answers] = {}
        self._failed = False
        self._pid: int | None = None
        self._stream: BinaryIO | None = None
        try:
            read_end, write_end = os.pipe()
        except OSError:
            self._fail()
            return
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        if set_size is not None:
            with contextlib.suppress(OSError):
                # Room for the helper to read well ahead of the first process (a pipe holds 64 KiB otherwise).
                fcntl.fcntl(write_end, set_size, _PIPE_BYTES)
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking beside other threads. The command line forks only with one
                # thread (registry._helper checks it); a forced read (parallel=True) may have idle threads
                # beside it whose locks the helper never takes.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            self._fail()
            return
        if pid == 0:  # the helper: never returns into the caller's code
            status = 1
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    _serve(root, blob_folders, jobs, has_signatures, out)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid = pid
        self._stream = os.fdopen(read_end, "rb")

    def answers(self, index: int) -> Answers | None:
        if index not in self._mine or self._failed:
            return None
        while index not in self._ready:
            if not self._receive():
                return None
        return self._ready.pop(index)

    def _receive(self) -> bool:
        try:
            assert self._stream is not None
            message = pickle.load(self._stream)
        except Exception:  # the helper died or sent something broken: the first process reads on alone
            self._fail()
            return False
        if message[0] == "block":
            names = self._root.merge_helper_state(message[2])
            for index, answers in message[1]:
                if names:
                    answers[_NAMES] = names
                self._ready[index] = answers
            return True
        self._failed = True  # "end": nothing more will come
        return False

    def finish(self) -> None:
        """Wait for the helper's last words, then let it go."""
        while not self._failed and self._receive():
            pass
        self.close()

    def close(self) -> None:
        """Stop the helper if it still runs, and wait for it: no process is left behind."""
        pid, self._pid = self._pid, None
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def _fail(self) -> None:
        self._failed = True
        self._ready.clear()


def _serve(
    parent_root: SafeRoot,
    blob_folders: BlobFolders,
    jobs: list[tuple[int, str, str]],
    has_signatures: bool,
    out: BinaryIO,
) -> None:
    """The helper's work: read the repositories it is given, send what every file operation answered.

    The blob folders the parent listed already (``blob_folders``) are taken as the parent knows them."""
    root_path = parent_root.root
    from regpack.bundle import Bundle, Layout
    from regpack.layouts import _watch, registry

    # The parent's objects are shared with it until written: the collector must not walk them (that writes
    # to every one), and the parent's progress and cancel are not the helper's to report.
    gc.freeze()
    gc.disable()
    _watch.forget()
    root: Any = recording(type(parent_root))(root_path)
    root.share_listings(parent_root, blob_folders.listed)
    folders = registry._BlobFolders(root, blob_folders.v2, set(blob_folders.listed))
    for start in range(0, len(jobs), BLOCK):
        block: list[tuple[int, Answers]] = []
        for index, name, repo_dir in jobs[start : start + BLOCK]:
            root.answers = {}
            bundle = Bundle(root_path, Layout.REGISTRY)  # the first process finds the problems again
            with root.scope(repo_dir):
                registry._read_repository(bundle, root, name, repo_dir, folders, has_signatures)
            block.append((index, root.answers))
        root.descriptors.clear()  # shared between images to save the first process memory; none needed here
        root.forget_files(_FILES_KEPT)
        pickle.dump(("block", block, root.helper_state()), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    pickle.dump(("end",), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()
