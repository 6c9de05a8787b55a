"""Byte-exact manifest parsing by kind.

A manifest is never re-serialized: its digest is the hash of the bytes we were given. Parsing only extracts
where blob and child-manifest references live, by kind (see FORMATS.md section 4), instead of grepping hex.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from regpack.digest import Digest
from regpack.errors import BundleError, Code, quoted
from regpack.files import read_capped

# The registry refuses manifests larger than this; a bigger one is hostile or broken, never read into memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


# Most manifests carry no annotations: they all share this one empty, read-only mapping.
NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})


class Kind(StrEnum):
    SCHEMA2 = "schema2"
    OCI = "oci"
    DOCKER_LIST = "docker-list"
    OCI_INDEX = "oci-index"
    SCHEMA1 = "schema1"

    @property
    def is_list(self) -> bool:
        return self in (Kind.DOCKER_LIST, Kind.OCI_INDEX)


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    digest: Digest
    size: int  # -1 when the format does not declare it (schema1)
    media_type: str = ""
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @property
    def foreign(self) -> bool:
        """A layer registries and skopeo may legitimately not have the bytes of: a non-distributable type, or
        any layer that carries ``urls`` (the registry accepts its manifest without the blob, clients fetch it
        from the URLs)."""
        return self.media_type in FOREIGN_LAYER_TYPES or bool(self.urls)


@dataclass(frozen=True, slots=True)
class Manifest:
    """One parsed manifest. ``digest`` is the hash of the exact bytes (for schema1: of the signed payload)."""

    digest: Digest
    size: int
    kind: Kind
    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()  # child manifests of a list / index
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: NO_ANNOTATIONS, compare=False, hash=False)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config then layers: every blob (not manifest) this manifest references."""
        return ((self.config,) if self.config is not None else ()) + self.layers


SharedDescriptors = dict[tuple[str, str], tuple[Descriptor, ...]]
"""Digest (as a tuple, so a plain ``(algorithm, hex)`` finds it) -> the Descriptors of plain references to that
blob (one per size and media type), while one bundle is read. Keyed by the Digest the Descriptors hold: the
table keeps no text of its own, only objects the bundle keeps anyway."""


def read_manifest_bytes(path: Path | str, image: str | None = None) -> bytes:
    """Read a manifest file with a hard size cap, so a hostile 100 MB "manifest" is refused, not loaded."""
    try:
        data = read_capped(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise BundleError("manifest is missing", path, image) from None
    except IsADirectoryError:
        raise BundleError("manifest is a folder, not a file", path, image) from None
    except PermissionError:
        raise BundleError("manifest is not readable (permission denied)", path, image, Code.UNREADABLE) from None
    except OSError as e:
        raise BundleError(f"cannot read manifest: {e.strerror or e}", path, image, Code.UNREADABLE) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes, refusing to parse it", path, image)
    return data


def schema1_unsigned(data: bytes, where: Path | str | None = None, image: str | None = None) -> bytes:
    """The unsigned canonical payload of a schema1 manifest: what the registry stores (and signs when serving),
    and what its digest covers. The bytes themselves when they carry no signatures."""
    doc = json.loads(data)
    return _Parser(doc, data, where, image)._schema1_payload() if isinstance(doc, dict) else data


def parse_manifest(
    data: bytes,
    where: Path | str | None = None,
    image: str | None = None,
    media_type_hint: str = "",
    shared: SharedDescriptors | None = None,
) -> Manifest:
    """Parse manifest bytes by kind. Raises BundleError naming ``where`` and ``image`` for anything wrong.

    ``shared``, a table kept while one bundle is read, hands out one Descriptor for every plain reference
    to the same blob: a base layer named by thousands of manifests is then one object, not thousands.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes", where, image)
    if not data.strip():
        raise BundleError("manifest is empty", where, image)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"manifest is not valid JSON ({_short(e)})", where, image) from None
    if not isinstance(doc, dict):
        raise BundleError(f"manifest must be a JSON object, not {type(doc).__name__}", where, image)
    return _Parser(doc, data, where, image, shared).parse(media_type_hint)


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) <= 120 else text[:117] + "..."


class _Parser:
    def __init__(
        self,
        doc: dict[str, Any],
        data: bytes,
        where: Path | str | None,
        image: str | None,
        shared: SharedDescriptors | None = None,
    ) -> None:
        self.shared = shared
        self.doc = doc
        self.data = data
        self.where = where
        self.image = image

    def fail(self, reason: str) -> BundleError:
        return BundleError(reason, self.where, self.image)

    def parse(self, hint: str) -> Manifest:
        doc = self.doc
        version = doc.get("schemaVersion")
        if isinstance(version, bool) or version not in (1, 2):
            raise self.fail(f"unsupported schemaVersion {json.dumps(version)[:40]} (expected 1 or 2)")
        media_type = doc.get("mediaType", "")
        if not isinstance(media_type, str):
            raise self.fail("mediaType must be a string")
        media_type = sys.intern(media_type)
        if version == 1:
            if media_type and media_type not in (DOCKER_V1, DOCKER_V1_SIGNED):
                raise self.fail(f"schemaVersion 1 with unexpected mediaType {quoted(media_type, 100)}")
            return self._schema1()
        if not media_type:
            # OCI allows the field to be absent; tell manifest from index by shape, the same way skopeo does.
            if "manifests" in doc:
                media_type = OCI_INDEX
            elif "config" in doc:
                media_type = OCI_MANIFEST
            elif hint in (OCI_INDEX, OCI_MANIFEST, DOCKER_V2, DOCKER_LIST):
                media_type = hint
            else:
                raise self.fail("manifest has no mediaType and neither config nor manifests")
        digest = Digest.of_bytes(self.data)
        if media_type in (DOCKER_V2, OCI_MANIFEST):
            kind = Kind.SCHEMA2 if media_type == DOCKER_V2 else Kind.OCI
            config = self._descriptor(doc.get("config"), "config")
            layers_raw = doc.get("layers")
            if not isinstance(layers_raw, list):
                raise self.fail("manifest 'layers' must be a list")
            layers = tuple(self._descriptor(x, f"layers[{i}]") for i, x in enumerate(layers_raw))
            subject = self._descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
            return Manifest(digest, len(self.data), kind, media_type, config, layers, (), subject, self._annotations())
        if media_type in (DOCKER_LIST, OCI_INDEX):
            kind = Kind.DOCKER_LIST if media_type == DOCKER_LIST else Kind.OCI_INDEX
            raw = doc.get("manifests")
            if not isinstance(raw, list):
                raise self.fail("manifest list 'manifests' must be a list")
            children = tuple(self._descriptor(x, f"manifests[{i}]", platform=True) for i, x in enumerate(raw))
            subject = self._descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
            return Manifest(digest, len(self.data), kind, media_type, None, (), children, subject, self._annotations())
        raise self.fail(f"unknown manifest mediaType {quoted(media_type, 100)}")

    def _annotations(self) -> Mapping[str, str]:
        raw = self.doc.get("annotations")
        if isinstance(raw, dict) and raw:
            return {str(k): str(v) for k, v in raw.items()}
        return NO_ANNOTATIONS

    def _descriptor(self, raw: Any, field_name: str, platform: bool = False) -> Descriptor:
        if not isinstance(raw, dict):
            raise self.fail(f"'{field_name}' must be an object")
        plain = False
        if self.shared is not None and len(raw) == 3:  # exactly digest, size and mediaType: nothing else
            digest_text, size_value, type_text = raw.get("digest"), raw.get("size"), raw.get("mediaType")
            if type(digest_text) is str and type(size_value) is int and type(type_text) is str:
                plain = True
                algorithm, _, hex_ = digest_text.partition(":")
                # A digest equal to a known one is valid text already; the same size and type make it the same
                # reference (another size or type is a reference of its own, checked and kept apart).
                for known in self.shared.get((algorithm, hex_), ()):
                    if known.size == size_value and known.media_type == type_text:
                        return known
        digest = Digest.parse(raw.get("digest"), self.where, self.image) if "digest" in raw else None
        if digest is None:
            raise self.fail(f"'{field_name}' has no digest")
        size = raw.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise self.fail(f"'{field_name}' size must be a non-negative integer, got {json.dumps(size)[:40]}")
        media_type = raw.get("mediaType", "")
        if not isinstance(media_type, str):
            raise self.fail(f"'{field_name}' mediaType must be a string")
        urls_raw = raw.get("urls") or []
        urls = tuple(str(u) for u in urls_raw) if isinstance(urls_raw, list) else ()
        plat = None
        if platform and isinstance(raw.get("platform"), dict):
            p = raw["platform"]
            plat = Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "") or ""))
        found = Descriptor(digest, size, sys.intern(media_type), plat, urls)
        if plain and self.shared is not None:
            self.shared[digest] = (*self.shared.get(digest, ()), found)
        return found

    def _schema1(self) -> Manifest:
        doc = self.doc
        layers_raw = doc.get("fsLayers")
        if not isinstance(layers_raw, list):
            raise self.fail("schema1 manifest 'fsLayers' must be a list")
        layers: list[Descriptor] = []
        seen: set[Digest] = set()
        for i, entry in enumerate(layers_raw):
            if not isinstance(entry, dict):
                raise self.fail(f"fsLayers[{i}] must be an object")
            d = Digest.parse(entry.get("blobSum"), self.where, self.image)
            if d not in seen:  # schema1 repeats empty layers; each blob is stored once
                seen.add(d)
                layers.append(Descriptor(d, -1, "application/vnd.docker.container.image.rootfs.diff+x-gtar"))
        payload = self._schema1_payload()
        signed = "signatures" in doc
        media_type = DOCKER_V1_SIGNED if signed else DOCKER_V1
        return Manifest(Digest.of_bytes(payload), len(self.data), Kind.SCHEMA1, media_type, None, tuple(layers))

    def _schema1_payload(self) -> bytes:
        """The bytes a signed schema1 manifest's digest covers: the JWS payload, without the signatures."""
        sigs = self.doc.get("signatures")
        if not sigs:
            return self.data
        try:
            protected = sigs[0]["protected"]
            header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
            length = int(header["formatLength"])
            tail_b64 = header["formatTail"]
            tail = base64.urlsafe_b64decode(tail_b64 + "=" * (-len(tail_b64) % 4))
        except (KeyError, IndexError, TypeError, ValueError, OverflowError) as e:
            raise self.fail(f"schema1 signature header is malformed ({_short(e)})") from None
        if not 0 < length <= len(self.data):
            raise self.fail("schema1 signature formatLength is out of range")
        return self.data[:length] + tail
