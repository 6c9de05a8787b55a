"""On-disk layouts: each module detects and reads one format into a Bundle. Only layouts know paths."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from regpack.bundle import Bundle, Layout
from regpack.collector import promoting
from regpack.errors import BundleError, Code
from regpack.layouts import archive, docker_archive, oci, registry, skopeo_dir
from regpack.layouts._watch import READING as READING  # the message of a read's progress events
from regpack.layouts._watch import watching
from regpack.progress import ProgressCallback


def detect(path: Path) -> Layout:
    """Which layout ``path`` holds; BundleError when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise BundleError("no such file or folder", path, code=Code.UNREADABLE)
    if not path.is_dir():
        raise BundleError(
            "not a folder (a bundle is a folder: skopeo dir tree, registry storage or OCI layout) nor an archive",
            path,
        )
    if registry.detect(path):
        return Layout.REGISTRY
    if oci.detect(path):
        return Layout.OCI
    if skopeo_dir.detect(path):
        top = path / "manifest.json"
        if top.is_file() and not top.is_symlink():
            with open(top, "rb") as f:
                if docker_archive.is_index(f.read(4096)):
                    raise BundleError(docker_archive.REFUSAL, path, code=Code.INVALID)
        return Layout.SKOPEO_DIR
    raise BundleError(
        "no images found: not a skopeo dir tree (no manifest.json below), registry storage "
        "(no docker/registry/v2) or OCI layout (no oci-layout + index.json)",
        path,
        code=Code.EMPTY,
    )


def read(
    path: Path,
    layout: Layout | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    hash_members: bool = False,
    one_process: bool = False,
) -> Bundle:
    """Read any bundle; ``progress`` hears how many images were read so far (``done_files``, message
    "reading"; no total: it is known only at the end), ``cancel`` stops the read between two images
    (Cancelled). See ``_read``. ``one_process``: a big registry storage is not read by two processes (see
    registry.read), for a user who asked for one core (``--jobs 1``).

    ``hash_members`` (for verify) makes the read of an archive one sequential read of all its bytes that hashes
    its members and parts on the way (``ArchiveSource.digests``, ``part_digests``); ``progress`` then hears the
    bytes of the archive read (message "verifying") instead of images, and ``cancel`` stops it within a member.
    A folder is read as without it."""
    if hash_members:
        with watching(None, cancel):
            return _read(path, layout, hash_members, progress, cancel)
    with watching(progress, cancel):
        return _read(path, layout, cancel=cancel, one_process=one_process)  # an archive's index: member by member


def _read(
    path: Path,
    layout: Layout | None = None,
    hash_members: bool = False,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    one_process: bool = False,
) -> Bundle:
    """Read any bundle. Problems are collected in ``bundle.problems``; call ``bundle.check()`` to refuse them.

    A file (or the name of a split archive) is read as an archive of one of the folder layouts.
    """
    path = Path(path)
    if layout is None and not path.is_dir() and archive.archive_parts(path) is not None:
        with cyclic_gc_paused():
            return archive.read(path, hash_members=hash_members, progress=progress, cancel=cancel)
    layout = layout or detect(path)
    readers: dict[Layout, Callable[[Path], Bundle]] = {
        Layout.SKOPEO_DIR: skopeo_dir.read,
        Layout.REGISTRY: lambda root: registry.read(root, parallel=False if one_process else None),
        Layout.OCI: oci.read,
    }
    reader = readers[layout]
    with cyclic_gc_paused():
        return reader(path)


def readable(bundle: Bundle, location: str) -> str:
    """A location of ``bundle`` (an image's or a blob's file) as a file to open by name: the location itself for
    a folder; for an archive, the member written into its view on first use (the archive's own reader needs
    no files)."""
    source = bundle.source
    return source.local(location) if isinstance(source, archive.ArchiveSource) else location


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Reading a big bundle builds hundreds of thousands of objects and no reference cycles: the cyclic
    collector would only walk them again and again (measured: a tenth to a quarter of the read time at 20,000
    images), so it waits until the read ends.

    The collector is one for the whole process, so this happens only when the process runs no other thread
    (the command line): a window's threads, or any other, keep their collector running. There the read
    instead moves what it built into the oldest generation every few hundred images, after a young
    collection (``collector.promoting``): measured on the window's worker thread, 10,000 images, the collector's
    share of the read fell from 0.12-0.22 s to about 0.03 s. Threads the paused work starts itself (verify's
    hashing pool) end inside the pause."""
    if not gc.isenabled():
        yield
        return
    if not _single_threaded():
        with promoting():
            yield
        return
    gc.disable()
    try:
        yield
    finally:
        # What the read made sits in the youngest generation, where the first collection after it would walk
        # all of it (measured: a fifth of a second for 2,000 images in an archive). Freezing and unfreezing
        # moves it to the oldest generation unwalked; it stays collectable as any long-lived object.
        gc.freeze()
        gc.unfreeze()
        gc.enable()


def _single_threaded() -> bool:
    """Whether this process has one thread, the caller's: counts the threads of the OS (Qt's included), not
    only those Python started, so a thread started in C++ counts too."""
    if threading.current_thread() is not threading.main_thread() or threading.active_count() != 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False  # no /proc: cannot tell, so leave the collector alone
