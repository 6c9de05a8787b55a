"""Fixtures of the integration tests: a real docker-registry on 127.0.0.1, skopeo, and a bundle made with them.

Tests marked ``integration`` need skopeo, docker-registry and zstd. Without them they are skipped, except when the
environment says ``CI=true``: there a missing tool is a failure, so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ocibuild as ob
from tests.support.catalog import Generated, RealBundle, build_catalog, build_generated_refs
from tests.support.realtools import Containerd, Release, missing_real_tools, push_release
from tests.support.tools import Registry, Skopeo, missing_tools, start_registry


def require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    message = f"integration tests need {', '.join(missing)} on PATH"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{message} (CI=true, so this is an error, not a skip)", pytrace=False)
    pytest.skip(message)


def require_real_tools() -> None:
    """buildah and containerd, which some tests build and export images with: required in CI like the rest."""
    missing = missing_real_tools()
    if missing:
        message = f"these tests need {', '.join(missing)} on PATH"
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
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    refs = build_generated_refs()
    work = tmp_path_factory.mktemp("generated")
    dir_root = ob.write_dir_bundle(work / "dir", refs)
    storage_root = ob.write_registry_storage(work / "storage", refs)
    return Generated(refs, dir_root, storage_root)


@pytest.fixture(scope="session")
def buildah_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """A small release built by buildah and pushed into a live registry (see tests/support/realtools.py)."""
    require_tools()
    require_real_tools()
    release = push_release(tmp_path_factory.mktemp("buildah-release"))
    yield release
    release.registry.stop()


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd daemon driven with ctr."""
    require_real_tools()
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    yield daemon
    daemon.stop()
