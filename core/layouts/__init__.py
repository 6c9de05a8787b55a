"""On-disk layouts: each module detects and reads one format into a Bundle. Only layouts know paths."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from regpack.bundle import Bundle, Layout
from regpack.errors import BundleError, Code
from regpack.layouts import archive, oci, registry, skopeo_dir


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
        return Layout.SKOPEO_DIR
    raise BundleError(
        "no images found: not a skopeo dir tree (no manifest.json below), registry storage "
        "(no docker/registry/v2) or OCI layout (no oci-layout + index.json)",
        path,
        code=Code.EMPTY,
    )


def read(path: Path, layout: Layout | None = None) -> Bundle:
    """Read any bundle. Problems are collected in ``bundle.problems``; call ``bundle.check()`` to refuse them.

    A file (or the name of a split archive) is read as an archive of one of the folder layouts.
    """
    path = Path(path)
    if layout is None and not path.is_dir() and archive.archive_parts(path) is not None:
        with _cyclic_gc_paused():
            return archive.read(path)
    layout = layout or detect(path)
    reader = {Layout.SKOPEO_DIR: skopeo_dir.read, Layout.REGISTRY: registry.read, Layout.OCI: oci.read}[layout]
    with _cyclic_gc_paused():
        return reader(path)


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Reading a big bundle builds hundreds of thousands of objects and no reference cycles: the cyclic
    collector would only walk them again and again (15-20% of the read time), so it waits until the read ends.
    Counted, so that reads on several threads hand it back when the last one ends."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()
