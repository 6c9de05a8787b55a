"""OCI image layouts (``oci-layout`` + ``index.json`` + ``blobs/<alg>/<hex>``), FORMATS.md section 3."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from regpack.bundle import Bundle, Layout
from regpack.digest import Digest
from regpack.errors import BundleError, Code, quoted
from regpack.layouts._common import SafeRoot, Tree, build_image
from regpack.manifest import MAX_MANIFEST_BYTES, OCI_INDEX, parse_manifest
from regpack.names import Reference, parse_reference, valid_repository, valid_tag

REF_NAME = "org.opencontainers.image.ref.name"
# containerd, nerdctl and docker save (25+) put the full name here and only the tag in REF_NAME.
CONTAINERD_NAME = "io.containerd.image.name"
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


def detect(path: Path) -> bool:
    path = Path(path)
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def default_repository(root: Path) -> str:
    """Repository for ref names that are only a tag (``skopeo copy oci:layout:v1``): the layout's folder name."""
    name = re.sub(r"[^a-z0-9._/-]+", "-", root.resolve().name.lower()).strip("._-") or "image"
    return name if valid_repository(name) else "image"


def containerd_reference(full_name: str, digest: Digest, where: Path) -> Reference:
    """``docker.io/library/alpine:3.18`` (or ``name@digest``, or ``name:tag@digest``) as containerd writes it."""
    name, at, digest_text = full_name.partition("@")
    if at and ":" in name.rpartition("/")[2]:
        pinned = Digest.parse(digest_text, where)
        if pinned != digest:
            raise BundleError(
                f"{CONTAINERD_NAME} {quoted(full_name, 300)} pins {pinned}, but the entry's manifest is {digest}", where
            )
        full_name = name
    return parse_reference(full_name, where)


def reference_for(ref_name: str, root: Path, digest: Digest, where: Path, full_name: str = "") -> Reference:
    if full_name:
        return containerd_reference(full_name, digest, where)
    if not ref_name:
        return Reference(default_repository(root), None, digest)
    if "/" in ref_name or (":" in ref_name and not valid_tag(ref_name)):
        return parse_reference(ref_name, where)
    if ":" in ref_name:
        repo, _, tag = ref_name.rpartition(":")
        if valid_repository(repo) and valid_tag(tag):
            return Reference(repo, tag)
    if valid_tag(ref_name):
        return Reference(default_repository(root), ref_name)
    return parse_reference(ref_name, where)


def read(root: Path, tree: Tree | None = None, name: str | None = None) -> Bundle:
    """The layout at ``root``: a folder on disk, or with ``tree`` the files of an archive. ``name`` stands for
    the folder's name where a reference is only a tag (an archive's name for a layout at its top)."""
    root = Path(root)
    named = Path(name) if name else root
    bundle = Bundle(root, Layout.OCI)
    safe = tree if tree is not None else SafeRoot(root)
    index_path = root / "index.json"
    try:
        found = safe.file(index_path, "index.json")
        if found is None:
            raise BundleError("index.json is missing", index_path)
        real, st = found
        if st.st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"index.json is larger than {MAX_MANIFEST_BYTES} bytes", index_path)
        data = safe.read_small(real, MAX_MANIFEST_BYTES, "index.json", index_path)
        index = parse_manifest(data, index_path, None, OCI_INDEX)
        raw_entries = json.loads(data).get("manifests", [])
    except BundleError as e:
        bundle.problem(e.reason, e.path or index_path, code=e.code_or(Code.BAD_MANIFEST))
        return bundle
    if not index.kind.is_list:
        bundle.problem("index.json is not an image index", index_path, code=Code.BAD_MANIFEST)
        return bundle

    base = os.path.abspath(root)

    def locate(d: Digest) -> str:
        return f"{base}/blobs/{d.algorithm}/{d.hex}"

    for desc, raw in zip(index.children, raw_entries, strict=True):
        annotations = raw.get("annotations") if isinstance(raw, dict) else None
        ref_name = annotations.get(REF_NAME, "") if isinstance(annotations, dict) else ""
        full_name = annotations.get(CONTAINERD_NAME, "") if isinstance(annotations, dict) else ""
        try:
            reference = reference_for(str(ref_name), named, desc.digest, index_path, str(full_name))
        except BundleError as e:
            bundle.problem(e.reason, index_path, str(full_name or ref_name), code=Code.BAD_NAME)
            continue
        image = build_image(
            bundle,
            safe,
            reference,
            locate(desc.digest),
            locate,
            locate,
            expected_digest=desc.digest,
            expected_size=desc.size,
        )
        if image is not None:
            bundle.images.append(image)
    if not bundle.images and not bundle.problems:
        bundle.problem("index.json lists no image", index_path, code=Code.EMPTY)
    return bundle
