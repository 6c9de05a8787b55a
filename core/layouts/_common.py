"""What every layout reader shares: safe file access inside an untrusted bundle, and building an Image."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from core.bundle import Blob, Bundle, Image, Role
from core.digest import Digest
from core.errors import BundleError
from core.manifest import Descriptor, Manifest, parse_manifest, read_manifest_bytes
from core.names import Reference

Locate = Callable[[Digest], Path]


class SafeRoot:
    """Resolves files of an untrusted bundle: a symlink is followed only when it stays inside the root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.real = Path(os.path.realpath(root))

    def file(self, path: Path, what: str) -> tuple[Path, os.stat_result] | None:
        """(real path, stat) of a regular file, None when absent; BundleError when unsafe or not a file."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as e:
            raise BundleError(f"cannot read {what}: {e.strerror or e}", path) from None
        real = path
        if stat.S_ISLNK(st.st_mode):
            real = Path(os.path.realpath(path))
            if not real.is_relative_to(self.real):
                raise BundleError(f"{what} is a symbolic link pointing outside the bundle (to {real})", path)
            try:
                st = os.stat(real)
            except OSError:
                raise BundleError(f"{what} is a dangling symbolic link", path) from None
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{what} is not a regular file", path)
        return real, st


def build_image(
    bundle: Bundle,
    safe: SafeRoot,
    reference: Reference,
    top_path: Path,
    locate_manifest: Locate,
    locate_blob: Locate,
    *,
    expected_digest: Digest | None = None,
    folder: Path | None = None,
    signatures: dict[str, Path] | None = None,
) -> Image | None:
    """Read one image: its top manifest, every child manifest of a list (nested, loop-safe), every blob.

    Problems go to ``bundle.problems`` naming the image and file. Returns None only when the top manifest
    cannot be read at all; an image with a missing blob is still returned so it can be shown and verified.
    """
    name = str(reference)
    try:
        found = safe.file(top_path, "manifest")
        if found is None:
            bundle.problem("manifest is missing", top_path, name, code="missing-manifest")
            return None
        real, _ = found
        top = parse_manifest(read_manifest_bytes(real, name), top_path, name)
    except BundleError as e:
        bundle.problem(e.reason, e.path or top_path, name, code="bad-manifest")
        return None
    if expected_digest is not None and top.digest != expected_digest:
        bundle.problem(
            f"manifest bytes hash to {top.digest}, but the link names {expected_digest}",
            top_path,
            name,
            code="digest-mismatch",
        )
    locations: dict[Digest, Path] = {top.digest: real}
    bundle.add_blob(Blob(top.digest, top.size, Role.MANIFEST, top.media_type, real))

    children: list[Manifest] = []
    pending: list[Manifest] = [top]
    visited = {top.digest}
    while pending:
        parent = pending.pop(0)
        for desc in parent.children:
            if desc.digest in visited:
                bundle.problem(
                    f"manifest list refers to {desc.digest} more than once or in a loop",
                    None,
                    name,
                    code="loop",
                )
                continue
            visited.add(desc.digest)
            path = locate_manifest(desc.digest)
            try:
                found = safe.file(path, "child manifest")
                if found is None:
                    bundle.problem(
                        f"platform manifest {desc.digest} named by the list is missing",
                        path,
                        name,
                        code="missing-child",
                    )
                    continue
                real, st = found
                child = parse_manifest(read_manifest_bytes(real, name), path, name, desc.media_type)
            except BundleError as e:
                bundle.problem(e.reason, e.path or path, name, code="bad-manifest")
                continue
            if child.digest != desc.digest:
                bundle.problem(
                    f"platform manifest bytes hash to {child.digest}, not {desc.digest}",
                    path,
                    name,
                    "digest-mismatch",
                )
                continue
            if st.st_size != desc.size:
                bundle.problem(
                    f"platform manifest is {st.st_size} bytes, the list declares {desc.size}",
                    path,
                    name,
                    "size",
                )
            locations[child.digest] = real
            bundle.add_blob(Blob(child.digest, child.size, Role.MANIFEST, child.media_type, real))
            children.append(child)
            if child.kind.is_list:
                pending.append(child)

    for manifest in (top, *children):
        wanted: list[tuple[Role, Descriptor | None]] = [(Role.CONFIG, manifest.config)]
        wanted += [(Role.LAYER, d) for d in manifest.layers]
        for role, blob_ref in wanted:
            if blob_ref is None or blob_ref.digest in locations:
                continue
            path = locate_blob(blob_ref.digest)
            try:
                found = safe.file(path, "blob")
            except BundleError as e:
                bundle.problem(e.reason, e.path, name, code="unsafe")
                continue
            if found is None:
                if blob_ref.foreign:
                    bundle.add_blob(Blob(blob_ref.digest, max(blob_ref.size, 0), role, blob_ref.media_type, None))
                else:
                    bundle.problem(f"{role.value} blob {blob_ref.digest} is missing", path, name, code="missing-blob")
                continue
            real, st = found
            if blob_ref.size >= 0 and st.st_size != blob_ref.size:
                bundle.problem(
                    f"{role.value} blob is {st.st_size} bytes, the manifest declares {blob_ref.size}",
                    path,
                    name,
                    code="size",
                )
                continue
            locations[blob_ref.digest] = real
            bundle.add_blob(Blob(blob_ref.digest, st.st_size, role, blob_ref.media_type, real))

    return Image(reference, top, tuple(children), locations, folder, signatures or {})
