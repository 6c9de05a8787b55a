"""On-disk layouts: each module detects and reads one format into a Bundle. Only layouts know paths."""

from __future__ import annotations

from pathlib import Path

from core.bundle import Bundle, Layout
from core.errors import BundleError
from core.layouts import oci, registry, skopeo_dir


def detect(path: Path) -> Layout:
    """Which layout ``path`` holds; BundleError when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise BundleError("no such file or folder", path, code="unreadable")
    if not path.is_dir():
        raise BundleError("not a folder (a bundle is a folder: skopeo dir tree, registry storage or OCI layout)", path)
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
        code="empty",
    )


def read(path: Path, layout: Layout | None = None) -> Bundle:
    """Read any bundle. Problems are collected in ``bundle.problems``; call ``bundle.check()`` to refuse them."""
    path = Path(path)
    layout = layout or detect(path)
    reader = {Layout.SKOPEO_DIR: skopeo_dir.read, Layout.REGISTRY: registry.read, Layout.OCI: oci.read}[layout]
    return reader(path)
