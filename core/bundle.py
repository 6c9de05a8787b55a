"""The bundle model every layout reads into: Bundle -> Image -> manifests -> Blob.

Only layouts/ knows paths; everything else (analysis, plans, the GUI) works on this model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from regpack.digest import Digest
from regpack.errors import BundleError, Code, Problem, Severity, worst_by_image
from regpack.manifest import Descriptor, Kind, Manifest
from regpack.names import Reference


class Layout(StrEnum):
    SKOPEO_DIR = "skopeo-dir"
    REGISTRY = "registry"
    OCI = "oci"


class Role(StrEnum):
    MANIFEST = "manifest"
    CONFIG = "config"
    LAYER = "layer"


@dataclass(frozen=True, slots=True)
class Blob:
    """One distinct blob of the bundle. ``file`` is where its bytes are (None: a foreign layer that is absent).

    Kept as a string: a big bundle has tens of thousands of blobs, and a pathlib object costs more to build
    than reading the manifest that names the blob.
    """

    digest: Digest
    size: int
    role: Role
    media_type: str = ""
    file: str | None = None
    from_base: bool = False  # a patch's blob that the base it applies to holds (``file`` is None)

    @property
    def path(self) -> Path | None:
        return None if self.file is None else Path(self.file)


NO_FILES: Mapping[Digest, str] = MappingProxyType({})
NO_SIGNATURES: Mapping[str, Path] = MappingProxyType({})


class Locations(Mapping[Digest, str]):
    """Where one image's own copies of its manifests and blobs are (absolute file names), computed rather than
    stored: a bundle of 100,000 images would otherwise keep a dict and a file name per image and blob.

    Registry storage and OCI layouts keep each blob once: an image's copy is the blob's own file
    (``Blob.file``). A skopeo dir tree keeps a copy per image folder, under the same file name: ``folder`` plus
    the name of the blob's file. Anything else (a file reached through a symbolic link, a folder of another
    version that names blobs ``<hex>.tar``, a manifest that is one image's top and another's platform) is kept
    as it was found, in ``other``.
    """

    __slots__ = ("_blobs", "_digests", "_folder", "_other")

    def __init__(
        self,
        blobs: Mapping[Digest, Blob],
        digests: tuple[Digest, ...],
        folder: str | None = None,
        other: Mapping[Digest, str] = NO_FILES,
    ) -> None:
        self._blobs = blobs
        self._digests = digests
        self._folder = folder
        self._other = other

    @classmethod
    def of(cls, files: Mapping[Digest, str], blobs: Mapping[Digest, Blob], folder: str | None = None) -> Locations:
        """The compact form of ``files`` (digest -> file, in the image's order), whose blobs are in ``blobs``;
        ``folder``: the image's own folder, when it keeps its own copies."""
        found = cls(blobs, tuple(files), folder)
        other = {d: file for d, file in files.items() if found._computed(d) != file}
        if other:
            found._other = other
        return found

    def _computed(self, digest: Digest) -> str | None:
        blob = self._blobs.get(digest)
        file = None if blob is None else blob.file
        if file is None or self._folder is None:
            return file
        return f"{self._folder}/{file.rpartition('/')[2]}"

    def __getitem__(self, digest: Digest) -> str:
        found = self._other.get(digest)
        if found is not None:
            return found
        if digest in self._digests:
            file = self._computed(digest)
            if file is not None:
                return file
        raise KeyError(digest)

    def pairs(self) -> Iterator[tuple[Digest, str]]:
        """``items()`` without a lookup per digest: what verify walks for every image of a big bundle."""
        other, blobs, folder = self._other, self._blobs, self._folder
        for digest in self._digests:
            file = other.get(digest)
            if file is None:
                blob = blobs.get(digest)
                file = None if blob is None else blob.file
                if file is None:
                    continue
                if folder is not None:
                    file = f"{folder}/{file.rpartition('/')[2]}"
            yield digest, file

    def __contains__(self, digest: object) -> bool:
        return digest in self._digests

    def __iter__(self) -> Iterator[Digest]:
        return iter(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"Locations({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class Image:
    """A tagged (or digest-referenced) image: its top manifest and, for a list, every platform manifest."""

    reference: Reference
    manifest: Manifest
    children: tuple[Manifest, ...] = ()
    # Where this image's own copies of its manifests and blobs are (a skopeo dir folder has its own copies):
    # absolute file names, as strings like Blob.file; readers give a compact Locations.
    locations: Mapping[Digest, str] = field(default_factory=lambda: NO_FILES, compare=False)
    folder: Path | None = None
    signatures: Mapping[str, Path] = field(default_factory=lambda: NO_SIGNATURES, compare=False)  # file name -> path
    origin: str = field(default="", compare=False)  # its name in the source bundle, when a selection renamed it

    @property
    def name(self) -> str:
        return str(self.reference)

    @property
    def source_name(self) -> str:
        """The name the source bundle gives this image (before any --rename)."""
        return self.origin or self.name

    @property
    def repository(self) -> str:
        return self.reference.repository

    @property
    def tag(self) -> str | None:
        return self.reference.tag

    @property
    def digest(self) -> Digest:
        return self.manifest.digest

    @property
    def kind(self) -> Kind:
        return self.manifest.kind

    @property
    def is_list(self) -> bool:
        return self.manifest.kind.is_list

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return (self.manifest, *self.children)

    @property
    def platforms(self) -> tuple[str, ...]:
        out: list[str] = []
        for child in self.manifest.children:
            if child.platform is not None and str(child.platform) not in out:
                out.append(str(child.platform))
        return tuple(out)

    def blob_digests(self) -> list[Digest]:
        """Config and layer digests of every manifest, each once, in manifest order."""
        seen: dict[Digest, None] = {}
        for m in (self.manifest, *self.children):
            if m.config is not None:
                seen[m.config.digest] = None
            for d in m.layers:
                seen[d.digest] = None
        return list(seen)

    def all_digests(self) -> list[Digest]:
        """Manifests then blobs: everything this image needs stored."""
        seen: dict[Digest, None] = {self.manifest.digest: None}
        for m in self.children:
            seen[m.digest] = None
        for m in (self.manifest, *self.children):
            if m.config is not None:
                seen.setdefault(m.config.digest, None)
            for d in m.layers:
                seen.setdefault(d.digest, None)
        return list(seen)


@dataclass(slots=True)
class Bundle:
    root: Path
    layout: Layout
    images: list[Image] = field(default_factory=list)
    blobs: dict[Digest, Blob] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # A patch (registry storage with a patch description): the blobs it expects from the base it applies to
    # (digest -> size), as its description lists them.
    is_patch: bool = False
    from_base: dict[Digest, int] = field(default_factory=dict)
    # Where the files really are when the layout was read from an archive (layouts.archive.ArchiveSource).
    source: object | None = field(default=None, compare=False, repr=False)

    def add_blob(
        self, digest: Digest, size: int, role: Role, media_type: str, file: str | None, *, from_base: bool = False
    ) -> None:
        """Record a blob once; a copy with bytes replaces one known only by reference (an absent foreign layer,
        or a patch's blob that its base holds)."""
        known = self.blobs.get(digest)
        if known is None or (known.file is None and file is not None):
            self.blobs[digest] = Blob(digest, size, role, media_type, file, from_base and file is None)

    def problem(
        self,
        reason: str,
        path: Path | str | None = None,
        image: str | None = None,
        code: Code = Code.INVALID,
        severity: Severity = Severity.ERROR,
        repository: str | None = None,
    ) -> None:
        where = Path(path) if isinstance(path, str) else path
        self.problems.append(Problem(severity, code, reason, where, image, repository))

    def statuses(self) -> dict[str | None, Severity]:
        """Status per image found while reading: the worst severity of its problems."""
        return worst_by_image((img.name for img in self.images), self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    def check(self) -> Bundle:
        """Raise the first error found while reading (with a count of the others); return self when clean."""
        errors = self.errors
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more problem(s); run 'regpack verify' for all)" if len(errors) > 1 else ""
            raise BundleError(first.reason + more, first.path, first.image, first.code, repository=first.repository)
        return self

    def stored_blobs(self, image: Image) -> Iterator[tuple[Blob, str]]:
        """The config and layer blobs of ``image`` that have bytes, with the file to take them from (the image's
        own copy when it has one). An absent foreign layer is left out: clients fetch it from its URLs."""
        for digest in image.blob_digests():
            blob = self.blobs.get(digest)
            if blob is not None and blob.file is not None:
                yield blob, image.locations.get(digest, blob.file)

    def base_blobs(self, image: Image) -> Iterator[Digest]:
        """The config and layer blobs of ``image`` that a patch leaves to its base (none in any other bundle)."""
        if self.from_base:
            for digest in image.blob_digests():
                blob = self.blobs.get(digest)
                if blob is not None and blob.from_base and blob.file is None:
                    yield digest

    def external_layers(self, image: Image) -> list[Descriptor]:
        """Layers of ``image`` the bundle does not hold and needs not hold: clients fetch them from their URLs."""
        seen: dict[Digest, Descriptor] = {}
        for m in image.manifests:
            for d in m.layers:
                blob = self.blobs.get(d.digest)
                if blob is not None and blob.file is None and not blob.from_base:
                    seen.setdefault(d.digest, d)
        return list(seen.values())

    @property
    def stored_bytes(self) -> int:
        """Bytes of the distinct blobs (manifests included): what registry storage holds."""
        return sum(b.size for b in self.blobs.values() if b.file is not None)
