"""Small hand-made bundles for the core unit tests: exact bytes, so every expectation is computed, not guessed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ocibuild import write_dir_folder

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = "application/vnd.docker.container.image.v1+json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "size": len(data), "digest": f"sha256:{sha(data)}", **extra}


@dataclass
class Written:
    folder: Path
    manifest: bytes
    blobs: dict[str, bytes]  # hex -> bytes (config and layers; list children under their manifest names)

    @property
    def digest(self) -> str:
        return f"sha256:{sha(self.manifest)}"


def image_manifest(config: bytes, layers: list[bytes], media_type: str = SCHEMA2) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config, CONFIG),
        "layers": [descriptor(layer, LAYER_GZ) for layer in layers],
    }
    return json.dumps(doc, indent=3).encode()


def config_for(name: str, arch: str = "amd64") -> bytes:
    return json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": [name]}}).encode()


def write_dir_image(folder: Path, name: str, layers: list[bytes], arch: str = "amd64") -> Written:
    """A skopeo dir image folder as ``skopeo copy`` writes it."""
    config = config_for(name, arch)
    manifest = image_manifest(config, layers)
    blobs = {sha(b): b for b in [config, *layers]}
    write_dir_folder(folder, manifest, (), blobs.values())
    return Written(folder, manifest, blobs)


def write_dir_list(folder: Path, name: str, base: bytes, arches: tuple[str, ...] = ("amd64", "arm64")) -> Written:
    """A multi-arch image copied with ``--all``: the list in manifest.json, children as <hex>.manifest.json."""
    entries = []
    children = []
    blobs: dict[str, bytes] = {}
    for arch in arches:
        config = config_for(name, arch)
        app = f"{name}-{arch}".encode() * 50
        child = image_manifest(config, [base, app])
        children.append(child)
        blobs.update((sha(data), data) for data in (config, base, app))
        entries.append(descriptor(child, SCHEMA2, platform={"architecture": arch, "os": "linux"}))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}, indent=3).encode()
    write_dir_folder(folder, manifest, children, blobs.values())
    return Written(folder, manifest, blobs)


BASE = b"shared base layer " * 400


@pytest.fixture
def dir_bundle(tmp_path: Path) -> Path:
    """Four images sharing a base layer: flat, nested two and three levels, a multi-arch list, a second tag."""
    root = tmp_path / "bundle"
    write_dir_image(root / "alpine:3.19", "alpine", [BASE, b"alpine" * 300])
    write_dir_image(root / "calico" / "node:v3.15.1", "node", [BASE, b"node" * 700])
    write_dir_image(root / "calico" / "node:latest", "node", [BASE, b"node" * 700])
    write_dir_image(root / "a" / "b" / "c:1", "abc", [BASE, b"abc" * 100])
    write_dir_list(root / "multi:2", "multi", BASE)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
