"""Who shares what: per-image unique and shared bytes, blob usage, and what de-duplication saves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from regpack.bundle import Blob, Bundle, Image, Role
from regpack.collector import built, promoting
from regpack.digest import Digest
from regpack.errors import Cancelled


@dataclass(frozen=True, slots=True)
class ImageStats:
    image: Image
    layers: int  # layer count (all platforms of a list together, each distinct layer once)
    total_bytes: int  # manifests + config + layers: what this image's skopeo dir folder holds
    unique_bytes: int  # bytes of blobs no other image uses
    shared_bytes: int  # bytes of blobs at least one other image uses too


@dataclass(frozen=True, slots=True)
class BlobUsage:
    blob: Blob
    images: tuple[Image, ...]  # every image that uses it, in bundle order

    @property
    def count(self) -> int:
        return len(self.images)


@dataclass(frozen=True, slots=True)
class Analysis:
    images: tuple[ImageStats, ...]
    blobs: tuple[BlobUsage, ...]  # most shared first, then largest
    dir_bytes: int  # every image stored on its own, as skopeo dir folders do
    packed_bytes: int  # every distinct blob once, as registry storage does

    @property
    def saved_bytes(self) -> int:
        return self.dir_bytes - self.packed_bytes

    @property
    def saved_percent(self) -> float:
        return 100.0 * self.saved_bytes / self.dir_bytes if self.dir_bytes else 0.0

    def stats_for(self, image: Image) -> ImageStats:
        for s in self.images:
            if s.image is image:
                return s
        raise KeyError(image.name)


_CANCEL_EVERY = 256  # blobs between two looks at cancel where the work per blob is a few dict lookups


def analyse(bundle: Bundle, *, cancel: threading.Event | None = None) -> Analysis:
    """Who shares what in ``bundle``. ``cancel`` stops it (Cancelled) within an image, or within a few hundred
    blobs of the table of users. What it builds is promoted past the collector's young generations as it goes
    (``collector.promoting``): at 100,000 images the collector's full walks were half of the analysis."""
    with promoting():
        return _analyse(bundle, cancel if cancel is not None else _NEVER)


def _analyse(bundle: Bundle, cancel: threading.Event) -> Analysis:
    blobs = bundle.blobs
    users: dict[Digest, list[Image]] = {}
    needs: list[list[Digest]] = []
    for image in bundle.images:
        if cancel.is_set():
            raise Cancelled()
        built()
        digests = [d for d in image.all_digests() if d in blobs]
        needs.append(digests)
        for d in digests:
            found = users.get(d)
            if found is None:
                users[d] = [image]
            else:
                found.append(image)
    # Bytes a blob takes on disk: an absent foreign layer takes none.
    size = {d: (b.size if b.file is not None else 0) for d, b in blobs.items()}
    layer = {d for d, b in blobs.items() if b.role is Role.LAYER}

    stats: list[ImageStats] = []
    dir_bytes = 0
    for image, digests in zip(bundle.images, needs, strict=True):
        if cancel.is_set():
            raise Cancelled()
        built()
        total = sum(size[d] for d in digests)
        unique = sum(size[d] for d in digests if len(users[d]) == 1)
        layers = sum(1 for d in digests if d in layer)
        stats.append(ImageStats(image, layers, total, unique, total - unique))
        dir_bytes += total
    usage: list[BlobUsage] = []
    for d, imgs in users.items():
        if len(usage) % _CANCEL_EVERY == 0:
            if cancel.is_set():
                raise Cancelled()
            built(_CANCEL_EVERY // 8)  # a blob's usage is a few objects, an image's some twenty
        usage.append(BlobUsage(blobs[d], tuple(imgs)))
    usage.sort(key=lambda u: (-u.count, -u.blob.size, u.blob.digest))
    if cancel.is_set():
        raise Cancelled()
    packed = sum(size[d] for d in users)
    return Analysis(tuple(stats), tuple(usage), dir_bytes, packed)


_NEVER = threading.Event()  # the cancel of an analysis nobody cancels: never set


@dataclass(frozen=True, slots=True)
class Comparison:
    """What two images share and what each adds (layers and configs, every platform, each blob once)."""

    first: Image
    second: Image
    shared: tuple[Blob, ...]
    only_first: tuple[Blob, ...]
    only_second: tuple[Blob, ...]

    @staticmethod
    def _bytes(blobs: tuple[Blob, ...]) -> int:
        return sum(b.size for b in blobs if b.file is not None)

    @property
    def shared_bytes(self) -> int:
        return self._bytes(self.shared)

    @property
    def first_adds_bytes(self) -> int:
        return self._bytes(self.only_first)

    @property
    def second_adds_bytes(self) -> int:
        return self._bytes(self.only_second)


def compare(bundle: Bundle, first: Image, second: Image) -> Comparison:
    """Answer "what does this patch share with the base image": blobs in both, in the first only, in the second
    only, each list in manifest order."""
    a = [d for d in first.blob_digests() if d in bundle.blobs]
    b = [d for d in second.blob_digests() if d in bundle.blobs]
    in_a, in_b = set(a), set(b)

    def blobs(digests: list[Digest], keep: Callable[[Digest], bool]) -> tuple[Blob, ...]:
        return tuple(bundle.blobs[d] for d in dict.fromkeys(digests) if keep(d))

    return Comparison(
        first,
        second,
        blobs(a, lambda d: d in in_b),
        blobs(a, lambda d: d not in in_b),
        blobs(b, lambda d: d not in in_a),
    )


# --- comparing two releases ----------------------------------------------------------------------------------


class Status(StrEnum):
    ADDED = "added"  # a name OLD does not have
    CHANGED = "changed"  # the same name, another manifest digest
    UNCHANGED = "unchanged"
    REMOVED = "removed"  # a name of OLD that NEW does not have


@dataclass(frozen=True, slots=True)
class ImageDiff:
    name: str
    status: Status
    old_digest: Digest | None
    new_digest: Digest | None
    total_bytes: int = 0  # everything the image needs (manifests, config, layers)
    shared_bytes: int = 0  # of those, bytes OLD already holds
    added_bytes: int = 0  # bytes OLD lacks
    image: Image | None = None  # the image of NEW (None for a removed one)


@dataclass(frozen=True, slots=True)
class Diff:
    images: tuple[ImageDiff, ...]  # NEW's images in bundle order, then the removed ones by name
    full_bytes: int  # NEW packed on its own: every distinct blob once
    patch_bytes: int  # a patch against OLD: every manifest of NEW plus the config and layer blobs OLD lacks
    new_bytes: int  # distinct blobs of NEW that OLD lacks (manifests included)
    reused_bytes: int  # distinct blobs of NEW that OLD holds
    differential_bytes: int  # whole-image differential: every blob of each added or changed image, once
    patch_blobs: int  # blobs a patch carries
    base_blobs: int  # blobs a patch leaves to OLD

    def count(self, status: Status) -> int:
        return sum(1 for d in self.images if d.status is status)


def release_sizes(new: Bundle) -> dict[Digest, int]:
    """Bytes each blob of NEW counts for in a comparison: an absent foreign layer none, a blob a patch expects
    from its base its declared size."""
    return {d: (b.size if b.file is not None or b.from_base else 0) for d, b in new.blobs.items()}


def held_by_base(old_blobs: Mapping[Digest, int], new: Bundle) -> set[Digest]:
    """The blobs of NEW that OLD holds (same digest, same size)."""
    return {d for d, n in release_sizes(new).items() if old_blobs.get(d) == n}


def diff(old_blobs: Mapping[Digest, int], old_images: Mapping[str, Digest], new: Bundle) -> Diff:
    """Compare NEW with what OLD holds (blob digest -> size, image name -> digest): any bundle or inventory.

    Images are matched by the name registry storage gives them (``repository:tag``, no host), where a patch
    lands: a scoped dir tree compares with the storage it was packed into.

    A blob counts as held by OLD only with the same size. A patch's blob from its base (when NEW is itself a
    patch) counts with its declared size: it is part of the release even if the patch does not carry it.
    """
    blobs = new.blobs
    size = release_sizes(new)
    in_old = held_by_base(old_blobs, new)
    rows: list[ImageDiff] = []
    changed_blobs: set[Digest] = set()
    for image in new.images:
        digests = [d for d in image.all_digests() if d in size]
        total = sum(size[d] for d in digests)
        shared = sum(size[d] for d in digests if d in in_old)
        before = old_images.get(image.reference.stored)
        if before is None:
            status = Status.ADDED
        elif before == image.digest:
            status = Status.UNCHANGED
        else:
            status = Status.CHANGED
        if status is not Status.UNCHANGED:
            changed_blobs.update(digests)
        rows.append(ImageDiff(image.name, status, before, image.digest, total, shared, total - shared, image))
    names = {image.reference.stored for image in new.images}
    for name in sorted(set(old_images) - names):
        rows.append(ImageDiff(name, Status.REMOVED, old_images[name], None))
    manifests = {d for d, b in blobs.items() if b.role is Role.MANIFEST}
    carried = [d for d in size if d in manifests or d not in in_old]
    return Diff(
        tuple(rows),
        full_bytes=sum(size.values()),
        patch_bytes=sum(size[d] for d in carried),
        new_bytes=sum(n for d, n in size.items() if d not in in_old),
        reused_bytes=sum(size[d] for d in in_old),
        differential_bytes=sum(size[d] for d in changed_blobs),
        patch_blobs=sum(1 for d in carried if size[d] or blobs[d].file is not None),
        base_blobs=sum(1 for d in in_old if d not in manifests),
    )
