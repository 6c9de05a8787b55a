"""Who shares what: per-image unique and shared bytes, blob usage, and what de-duplication saves."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from core.bundle import Blob, Bundle, Image, Role
from core.digest import Digest


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


def analyse(bundle: Bundle) -> Analysis:
    users: dict[Digest, list[Image]] = defaultdict(list)
    for image in bundle.images:
        for digest in image.all_digests():
            if digest in bundle.blobs:
                users[digest].append(image)

    def size(d: Digest) -> int:
        blob = bundle.blobs.get(d)
        return blob.size if blob is not None and blob.path is not None else 0

    stats: list[ImageStats] = []
    dir_bytes = 0
    for image in bundle.images:
        digests = [d for d in image.all_digests() if d in bundle.blobs]
        total = sum(size(d) for d in digests)
        unique = sum(size(d) for d in digests if len(users[d]) == 1)
        layers = sum(1 for d in digests if bundle.blobs[d].role is Role.LAYER)
        stats.append(ImageStats(image, layers, total, unique, total - unique))
        dir_bytes += total
    usage = [BlobUsage(bundle.blobs[d], tuple(imgs)) for d, imgs in users.items()]
    usage.sort(key=lambda u: (-u.count, -u.blob.size, str(u.blob.digest)))
    packed = sum(size(d) for d in users)
    return Analysis(tuple(stats), tuple(usage), dir_bytes, packed)
