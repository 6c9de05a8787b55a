"""The images the integration tests use, and the bundles built from them (plain values, no fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support import ocibuild as ob
from tests.support.tools import Registry


@dataclass(frozen=True)
class Catalog:
    """Images built in Python, by the reference they get in the bundle."""

    refs: dict[str, ob.Artifact]
    v2s2: frozenset[str]  # references pushed with --format v2s2 (Docker schema2 / Docker manifest list)
    base: ob.Layer  # the layer every image shares


def build_catalog() -> Catalog:
    base = ob.layer(ob.text_files("base", count=4, size=700))
    alpine = ob.image([base, ob.layer(ob.text_files("alpine"))], env=("PATH=/bin", "ALPINE=3.19"))
    calico = ob.image([base, ob.layer(ob.text_files("calico-node"))], cmd=("/bin/calico-node",))
    zstd_image = ob.image([base, ob.layer(ob.text_files("abc-zstd", size=900), "zstd")], cmd=("/bin/abc",))
    amd64 = ob.image([base, ob.layer(ob.text_files("tool-amd64"))], architecture="amd64")
    arm64 = ob.image([base, ob.layer(ob.text_files("tool-arm64"))], architecture="arm64")
    multi = ob.index([amd64, arm64])
    refs: dict[str, ob.Artifact] = {
        "alpine:3.19": alpine,  # one-level repository
        "alpine:latest": alpine,  # the same image under a second tag
        "mirror/alpine:3.19": alpine,  # the same image in a second repository
        "calico/node:v3.15.1": calico,  # nested repository, pushed as Docker schema2
        "calico/cni:v3.15.1": multi,  # multi-arch, pushed as a Docker manifest list
        "a/b/c:1": zstd_image,  # three-level repository, OCI manifest with a zstd layer
        "multi/arch:1.0": multi,  # multi-arch OCI index
    }
    return Catalog(refs, frozenset({"calico/node:v3.15.1", "calico/cni:v3.15.1"}), base)


@dataclass(frozen=True)
class RealBundle:
    """A skopeo dir tree pulled from a real registry, and that registry's own storage."""

    catalog: Catalog
    oci_layout: Path  # the OCI layout the images were pushed from (ref names = bundle references)
    dir_root: Path  # <repository>:<tag> folders written by `skopeo copy --all docker://... dir:...`
    storage_root: Path  # the registry's storage root (holds docker/registry/v2)
    registry: Registry  # still running on storage_root for the whole session

    @property
    def refs(self) -> list[str]:
        return sorted(self.catalog.refs)

    def folder(self, ref: str) -> Path:
        return self.dir_root / ref


@dataclass(frozen=True)
class Generated:
    """The same small images written in Python only (gzip layers, no tool needed) in two layouts."""

    refs: dict[str, ob.Artifact]
    dir_root: Path  # skopeo dir tree
    storage_root: Path  # registry v2 storage

    def folder(self, ref: str) -> Path:
        return self.dir_root / ref


def build_generated_refs() -> dict[str, ob.Artifact]:
    oci_base = ob.layer(ob.text_files("gen-base"))
    docker_base = ob.layer(ob.text_files("gen-base"), docker=True)
    alpine = ob.image([oci_base, ob.layer(ob.text_files("gen-alpine"))])
    calico = ob.image([docker_base, ob.layer(ob.text_files("gen-calico"), docker=True)], docker=True)
    amd64 = ob.image([oci_base, ob.layer(ob.text_files("gen-amd64"))])
    arm64 = ob.image([oci_base, ob.layer(ob.text_files("gen-arm64"))], architecture="arm64")
    return {
        "alpine:3.19": alpine,  # OCI manifest
        "calico/node:v3.15.1": calico,  # Docker schema2, nested repository
        "multi:1": ob.index([amd64, arm64]),  # OCI index
    }
