"""Small but real container images, written without any container tool.

Layers are real tar files (deterministic: fixed mtime, owner and mode), compressed with gzip (mtime 0) or
with the ``zstd`` command; configs carry real ``rootfs.diff_ids`` (sha256 of the uncompressed tar); manifests
and indexes are the JSON the OCI image spec and Docker schema2 describe. Images are values: pass the same
``Layer`` to several images to make them share a base layer.

Writers put images on disk in the three layouts regpack handles: an OCI image layout, a skopeo ``dir:``
tree and registry v2 storage. They are written independently of regpack, so tests can compare regpack's
output against them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME = "org.opencontainers.image.ref.name"
DIR_VERSION = b"Directory Transport Version: 1.1\n"
CREATED = "2024-01-02T03:04:05Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(doc: object) -> bytes:
    """Compact JSON, the way Go tools write manifests (no spaces); key order as given."""
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Bytes addressed by their sha256, with the media type a descriptor gives them."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str  # sha256 of the uncompressed tar, as the config's rootfs lists it
    files: tuple[str, ...]


@dataclass(frozen=True)
class Image:
    """A single-platform image: manifest, config and layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    os: str
    architecture: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}"

    def blobs(self) -> list[Blob]:
        """Config and layers (not the manifest)."""
        return [self.config, *(layer.blob for layer in self.layers)]

    def manifests(self) -> list[Blob]:
        return [self.manifest]


@dataclass(frozen=True)
class Index:
    """A multi-platform image: an OCI index (or Docker manifest list) over platform images."""

    manifest: Blob
    children: tuple[Image, ...] = field(default_factory=tuple)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        seen: dict[str, Blob] = {}
        for child in self.children:
            for blob in child.blobs():
                seen.setdefault(blob.digest, blob)
        return list(seen.values())

    def manifests(self) -> list[Blob]:
        return [self.manifest, *(c.manifest for c in self.children)]


Artifact = Image | Index


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """A deterministic tar: sorted entries, parent folders included, mtime 1, root owner, fixed modes."""
    out = io.BytesIO()
    folders: set[str] = set()
    for name in files:
        parts = PurePosixPath(name).parts[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(folders | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = 1
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if name in files:
                data = files[name]
                info.size = len(data)
                info.mode = 0o755 if name.startswith(("bin/", "usr/bin/")) else 0o644
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
    return out.getvalue()


def zstd_compress(data: bytes) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise RuntimeError("the zstd command is needed to build a zstd layer")
    return subprocess.run([zstd, "-q", "-c", "-3", "--no-progress"], input=data, capture_output=True, check=True).stdout


def layer(files: Mapping[str, bytes], compression: str = "gzip", *, docker: bool = False) -> Layer:
    """A layer holding ``files`` (path -> content); compression is "gzip", "zstd" or "none"."""
    raw = tar_bytes(files)
    if compression == "gzip":
        data, media_type = gzip.compress(raw, compresslevel=6, mtime=0), OCI_LAYER_GZIP
        if docker:
            media_type = DOCKER_LAYER_GZIP
    elif compression == "zstd":
        if docker:
            raise ValueError("Docker schema2 has no zstd layer type")
        data, media_type = zstd_compress(raw), OCI_LAYER_ZSTD
    elif compression == "none":
        if docker:
            raise ValueError("use gzip layers for Docker schema2 images")
        data, media_type = raw, OCI_LAYER_TAR
    else:
        raise ValueError(f"unknown compression {compression!r}")
    return Layer(Blob(data, media_type), sha256(raw), tuple(sorted(files)))


def text_files(seed: str, count: int = 3, size: int = 300) -> dict[str, bytes]:
    """A few small files whose content is derived from ``seed`` only (deterministic, distinct per seed)."""
    files: dict[str, bytes] = {}
    for i in range(count):
        line = f"{seed} file {i}\n".encode()
        body = (line * (size // len(line) + 1))[:size]
        files[f"opt/{seed}/file{i}.txt"] = body
    return files


def image(
    layers: Sequence[Layer],
    *,
    architecture: str = "amd64",
    os: str = "linux",
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    cmd: Sequence[str] = ("/bin/sh",),
    created: str = CREATED,
    labels: Mapping[str, str] | None = None,
    docker: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """A single-platform image over ``layers``; ``docker`` gives Docker schema2 media types instead of OCI."""
    layer_list = tuple(layers)
    container_config: dict[str, object] = {"Env": list(env), "Cmd": list(cmd)}
    if labels:
        container_config["Labels"] = dict(labels)
    config_doc = {
        "created": created,
        "architecture": architecture,
        "os": os,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layer_list]},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(layer_list))],
    }
    config = Blob(json_bytes(config_doc), DOCKER_CONFIG if docker else OCI_CONFIG)
    if docker and any(lay.blob.media_type != DOCKER_LAYER_GZIP for lay in layer_list):
        raise ValueError("a Docker schema2 image needs layers built with docker=True")
    manifest_doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [lay.blob.descriptor() for lay in layer_list],
    }
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    manifest = Blob(json_bytes(manifest_doc), DOCKER_MANIFEST if docker else OCI_MANIFEST)
    return Image(manifest, config, layer_list, os, architecture)


def index(children: Sequence[Image], *, docker: bool = False) -> Index:
    """An OCI image index (or, with ``docker``, a Docker manifest list) over platform images."""
    entries = [c.manifest.descriptor(platform={"architecture": c.architecture, "os": c.os}) for c in children]
    media_type = DOCKER_LIST if docker else OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Index(Blob(json_bytes(doc), media_type), tuple(children))


def _write_once(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)


def write_oci_layout(root: Path, refs: Mapping[str, Artifact] | Iterable[tuple[str, Artifact]]) -> Path:
    """An OCI image layout; each (ref name, image) becomes an index.json entry annotated with the ref name.

    The same artifact may appear under several ref names; blobs are stored once.
    """
    root = Path(root)
    items = list(refs.items()) if isinstance(refs, Mapping) else list(refs)
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for ref, art in items:
        for blob in [*art.manifests(), *art.blobs()]:
            _write_once(root / "blobs" / "sha256" / blob.hex, blob.data)
        entries.append(art.manifest.descriptor(annotations={REF_NAME: ref}))
    (root / "index.json").write_bytes(json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
    return root


def write_dir_folder(
    folder: Path, manifest: bytes, children: Iterable[bytes] = (), blobs: Iterable[bytes] = ()
) -> Path:
    """One skopeo ``dir:`` image folder, as ``skopeo copy [--all] ... dir:<folder>`` writes it: the version file,
    the top manifest, each platform manifest of a list as ``<hex>.manifest.json``, each blob as ``<hex>``.

    Every way the tests, the benchmarks and the sample maker write a dir image comes through here.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "version").write_bytes(DIR_VERSION)
    (folder / "manifest.json").write_bytes(manifest)
    for child in children:
        (folder / f"{hashlib.sha256(child).hexdigest()}.manifest.json").write_bytes(child)
    for data in blobs:
        (folder / hashlib.sha256(data).hexdigest()).write_bytes(data)
    return folder


def write_dir_image(folder: Path, art: Artifact) -> Path:
    """One skopeo ``dir:`` image folder for an image or an index built here."""
    children = [child.manifest.data for child in art.children] if isinstance(art, Index) else []
    return write_dir_folder(folder, art.manifest.data, children, (blob.data for blob in art.blobs()))


def write_dir_bundle(root: Path, refs: Mapping[str, Artifact]) -> Path:
    """A tree of skopeo dir folders; ``calico/node:v3.15.1`` becomes ``<root>/calico/node:v3.15.1/``."""
    root = Path(root)
    for ref, art in refs.items():
        write_dir_image(root / ref, art)
    return root


def split_ref(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":")
    if not repository or "/" in tag:
        raise ValueError(f"not a repository:tag reference: {ref!r}")
    return repository, tag


def write_registry_storage(root: Path, refs: Mapping[str, Artifact]) -> Path:
    """Registry v2 storage as the distribution registry keeps it: blobs once, link files per repository."""
    v2 = Path(root) / "docker" / "registry" / "v2"
    for ref, art in refs.items():
        repository, tag = split_ref(ref)
        repo = v2 / "repositories" / repository
        for blob in [*art.manifests(), *art.blobs()]:
            _write_once(v2 / "blobs" / "sha256" / blob.hex[:2] / blob.hex / "data", blob.data)
        for blob in art.blobs():
            _write_once(repo / "_layers" / "sha256" / blob.hex / "link", blob.digest.encode())
        for blob in art.manifests():
            _write_once(repo / "_manifests" / "revisions" / "sha256" / blob.hex / "link", blob.digest.encode())
        tag_dir = repo / "_manifests" / "tags" / tag
        (tag_dir / "current").mkdir(parents=True, exist_ok=True)
        (tag_dir / "current" / "link").write_bytes(art.digest.encode())
        _write_once(tag_dir / "index" / "sha256" / art.manifest.hex / "link", art.digest.encode())
    return Path(root)


CONTAINERD_NAME = "io.containerd.image.name"


def write_containerd_export(root: Path, items: Iterable[tuple[str, Artifact]]) -> Path:
    """An OCI image layout as containerd, nerdctl and docker save (25+) export one: the full image name in the
    ``io.containerd.image.name`` annotation, only the tag (or nothing, for a digest) in the ref name."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(b'{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for full_name, art in items:
        for blob in [*art.manifests(), *art.blobs()]:
            _write_once(root / "blobs" / "sha256" / blob.hex, blob.data)
        last = full_name.rpartition("/")[2]
        annotations = {CONTAINERD_NAME: full_name}
        if "@" not in last and ":" in last:
            annotations[REF_NAME] = last.rpartition(":")[2]
        entries.append(art.manifest.descriptor(annotations=annotations))
    (root / "index.json").write_bytes(json_bytes({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
    return root
