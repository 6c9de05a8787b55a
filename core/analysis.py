"""Who shares what: per-image unique and shared bytes, blob usage, and what de-duplication saves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from regpack.bundle import Blob, Bundle, Image, Role
from regpack.digest import Digest


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
    blobs = bundle.blobs
    users: dict[Digest, list[Image]] = {}
    needs: list[list[Digest]] = []
    for image in bundle.images:
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
        total = sum(size[d] for d in digests)
        unique = sum(size[d] for d in digests if len(users[d]) == 1)
        layers = sum(1 for d in digests if d in layer)
        stats.append(ImageStats(image, layers, total, unique, total - unique))
        dir_bytes += total
    usage = [BlobUsage(blobs[d], tuple(imgs)) for d, imgs in users.items()]
    usage.sort(key=lambda u: (-u.count, -u.blob.size, u.blob.digest))
    packed = sum(size[d] for d in users)
    return Analysis(tuple(stats), tuple(usage), dir_bytes, packed)


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
