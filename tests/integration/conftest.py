"""Fixtures of the integration tests: a real docker-registry on 127.0.0.1, skopeo, and a bundle made with them.

Tests marked ``integration`` need skopeo and docker-registry. Without them they are skipped, except when the
environment says ``CI=true``: there a missing tool is a failure, so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not put the project on sys.path
    sys.path.insert(0, str(ROOT))

from tests.support import ocibuild as ob  # noqa: E402
from tests.support.tools import Registry, Skopeo, missing_tools, start_registry  # noqa: E402


def require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    message = f"integration tests need {' and '.join(missing)} on PATH"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message} (CI=true, so this is an error, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _tools_for_integration_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("integration") is not None:
        require_tools()


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    require_tools()
    return Skopeo(tmp_path_factory.mktemp("skopeo-state"))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A writable registry (no auth, delete enabled) with its storage in tmp_path."""
    require_tools()
    reg = start_registry(tmp_path / "registry-storage", tmp_path / "registry-run")
    yield reg
    reg.stop()


@pytest.fixture
def serve_readonly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path], Registry]]:
    """Factory: serve an EXISTING storage root read-only; every registry started is stopped at teardown."""
    require_tools()
    started: list[Registry] = []

    def serve(root: Path) -> Registry:
        if not (Path(root) / "docker" / "registry" / "v2").is_dir():
            raise AssertionError(f"{root} holds no docker/registry/v2 storage")
        reg = start_registry(Path(root), tmp_path_factory.mktemp("registry-ro"), readonly=True)
        started.append(reg)
        return reg

    yield serve
    for reg in started:
        reg.stop()


# --- the images every integration test uses -----------------------------------------------------------------


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


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory: pytest.TempPathFactory, skopeo: Skopeo) -> Iterator[RealBundle]:
    catalog = build_catalog()
    work = tmp_path_factory.mktemp("real-bundle")
    layout = ob.write_oci_layout(work / "oci", catalog.refs)
    storage = work / "registry-storage"
    reg = start_registry(storage, work / "registry-run")
    try:
        dir_root = work / "dir"
        for ref in sorted(catalog.refs):
            extra = ("--format", "v2s2") if ref in catalog.v2s2 else ()
            skopeo.copy(f"oci:{layout}:{ref}", reg.ref(ref), *extra)
        for ref in sorted(catalog.refs):
            dest = dir_root / ref
            dest.parent.mkdir(parents=True, exist_ok=True)
            skopeo.copy(reg.ref(ref), f"dir:{dest}")
        yield RealBundle(catalog, layout, dir_root, storage, reg)
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return build_catalog()


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


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    refs = build_generated_refs()
    work = tmp_path_factory.mktemp("generated")
    dir_root = ob.write_dir_bundle(work / "dir", refs)
    storage_root = ob.write_registry_storage(work / "storage", refs)
    return Generated(refs, dir_root, storage_root)
