"""Release patches: what a base holds (an inventory), and the small description a patch carries.

A patch is registry storage holding every manifest and link of a new release but only the blobs its base
lacks, plus ``regpack-patch.json`` at the storage root (the registry ignores it): the blobs the patch needs
from the base (digest and size), a fingerprint of that list, and the images of the release.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from regpack.bundle import Bundle, Role
from regpack.digest import Digest
from regpack.errors import BundleError, Code, Problem, Severity, printable

DESCRIPTION = "regpack-patch.json"
PATCH_FORMAT = "regpack-patch/1"
INVENTORY_FORMAT = "regpack-inventory/1"
MAX_JSON_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class Inventory:
    """What a base holds: every stored blob (manifests included) by digest with its size, and its images."""

    blobs: Mapping[Digest, int]
    # image name as registry storage holds it (repository:tag or repository@digest, no host) -> top manifest digest
    images: Mapping[str, Digest]
    source: str = ""  # where it was taken from, for messages
    layout: str = ""

    def has(self, digest: Digest, size: int) -> bool:
        return self.blobs.get(digest) == size

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INVENTORY_FORMAT,
            "source": self.source,
            "layout": self.layout,
            "images": [{"name": name, "digest": str(d)} for name, d in sorted(self.images.items())],
            "blobs": [{"digest": str(d), "size": size} for d, size in sorted(self.blobs.items())],
        }


def inventory_of(bundle: Bundle) -> Inventory:
    """What ``bundle`` holds. A patch does not hold the blobs it expects from its base: they are left out."""
    blobs = {d: b.size for d, b in bundle.blobs.items() if b.file is not None}
    images = {img.reference.stored: img.digest for img in bundle.images}
    return Inventory(blobs, images, printable(bundle.root), bundle.layout.value)


def _entries(doc: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise BundleError(f"'{key}' must be a list of objects", path)
    return value


def _blob_list(doc: dict[str, Any], key: str, path: Path) -> dict[Digest, int]:
    out: dict[Digest, int] = {}
    for entry in _entries(doc, key, path):
        digest = Digest.parse(entry.get("digest"), path)
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(f"blob {digest} has no valid size in '{key}'", path)
        if out.setdefault(digest, size) != size:
            raise BundleError(f"blob {digest} is listed twice with different sizes", path)
    return out


def _image_list(doc: dict[str, Any], path: Path) -> dict[str, Digest]:
    out: dict[str, Digest] = {}
    for entry in _entries(doc, "images", path):
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise BundleError("an image has no name", path)
        out[name] = Digest.parse(entry.get("digest"), path, name)
    return out


def _load_json(data: bytes, path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{what} is not valid JSON ({e})", path) from None
    if not isinstance(doc, dict):
        raise BundleError(f"{what} is not a JSON object", path)
    return doc


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        raise BundleError(f"cannot read {what}: {e.strerror or e}", path, code=Code.UNREADABLE) from None
    if len(data) > MAX_JSON_BYTES:
        raise BundleError(f"{what} is larger than {MAX_JSON_BYTES} bytes", path)
    return _load_json(data, path, what)


def load_inventory(path: Path) -> Inventory:
    doc = read_json_file(path, "inventory")
    if doc.get("format") != INVENTORY_FORMAT:
        raise BundleError(f"not a regpack inventory (format is not {INVENTORY_FORMAT!r})", path)
    return Inventory(
        _blob_list(doc, "blobs", path), _image_list(doc, path), printable(path), str(doc.get("layout", ""))
    )


def fingerprint(blobs: Mapping[Digest, int]) -> str:
    """sha256 over ``<digest> <size>\\n`` lines in digest order: names the exact set a patch needs."""
    h = hashlib.sha256()
    for digest, size in sorted(blobs.items()):
        h.update(f"{digest} {size}\n".encode())
    return f"sha256:{h.hexdigest()}"


@dataclass(frozen=True, slots=True)
class PatchDescription:
    needed: Mapping[Digest, int]  # blobs the patch expects from its base
    images: Mapping[str, Digest]  # the release the patch brings: name -> top manifest digest
    base: str = ""  # what the patch was made against, for messages
    payload_bytes: int = 0  # bytes of the blobs the patch holds
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.needed)

    @property
    def needed_bytes(self) -> int:
        return sum(self.needed.values())

    def to_bytes(self) -> bytes:
        doc = {
            "format": PATCH_FORMAT,
            "base": self.base,
            "base_fingerprint": self.fingerprint,
            "base_bytes": self.needed_bytes,
            "payload_bytes": self.payload_bytes,
            "images": [{"name": name, "digest": str(d)} for name, d in sorted(self.images.items())],
            "base_blobs": [{"digest": str(d), "size": size} for d, size in sorted(self.needed.items())],
        }
        # Compact: a big release leaves thousands of blobs to its base, and the description travels with the patch.
        return (json.dumps(doc, separators=(",", ":")) + "\n").encode()

    @staticmethod
    def parse(data: bytes, path: Path) -> PatchDescription:
        doc = _load_json(data, path, "patch description")
        if doc.get("format") != PATCH_FORMAT:
            raise BundleError(f"not a regpack patch description (format is not {PATCH_FORMAT!r})", path)
        needed = _blob_list(doc, "base_blobs", path)
        desc = PatchDescription(
            needed,
            _image_list(doc, path),
            str(doc.get("base", "")),
            int(doc.get("payload_bytes", 0) or 0),
        )
        if doc.get("base_fingerprint") != desc.fingerprint:
            raise BundleError(
                "the fingerprint does not match the list of blobs needed from the base: the description was "
                "altered or damaged",
                path,
            )
        return desc


def payload_digests(bundle: Bundle, base: Inventory) -> tuple[set[Digest], dict[Digest, int]]:
    """(blobs the patch carries, blobs it leaves to the base): every manifest is carried, so the patch reads
    on its own; a config or layer is left out when the base holds the same digest with the same size."""
    carried: set[Digest] = set()
    needed: dict[Digest, int] = {}
    for digest, blob in bundle.blobs.items():
        if blob.file is None:
            continue  # an absent foreign layer: neither carried nor needed
        if blob.role is not Role.MANIFEST and base.has(digest, blob.size):
            needed[digest] = blob.size
        else:
            carried.add(digest)
    return carried, needed


def image_users(bundle: Bundle, digests: Iterable[Digest]) -> dict[Digest, list[str]]:
    """Names of the images using each of ``digests`` (as config or layer), in bundle order."""
    wanted = set(digests)
    users: dict[Digest, list[str]] = {d: [] for d in wanted}
    for image in bundle.images:
        for d in image.blob_digests():
            if d in wanted:
                users[d].append(image.name)
    return users


def resolve_base(bundle: Bundle, base: Bundle) -> Bundle:
    """The patch with the blobs it expects from ``base`` taken from there: a complete bundle to unpack or verify.

    A blob ``base`` lacks (or holds with another size) becomes a problem naming the image that needs it.
    """
    resolved: dict[Digest, str] = {}
    blobs = dict(bundle.blobs)
    problems = list(bundle.problems)
    users = image_users(bundle, bundle.from_base)
    for digest, size in sorted(bundle.from_base.items()):
        found = base.blobs.get(digest)
        if found is None or found.file is None or found.size != size:
            names: list[str | None] = [*users.get(digest, [])] or [None]
            for name in names:
                problems.append(
                    Problem(
                        Severity.ERROR,
                        Code.MISSING_BASE_BLOB,
                        f"blob {digest} ({size} bytes) that the patch expects from its base is not in the base",
                        base.root,
                        name,
                    )
                )
            continue
        resolved[digest] = found.file
        known = blobs.get(digest, found)
        blobs[digest] = replace(known, file=found.file)
    images = [
        replace(img, locations={**img.locations, **{d: resolved[d] for d in img.blob_digests() if d in resolved}})
        for img in bundle.images
    ]
    return replace(bundle, images=images, blobs=blobs, problems=problems)
