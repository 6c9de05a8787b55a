"""What users hand over that is not a bundle regpack can carry, made by the real tools: a docker-archive
(``skopeo copy … docker-archive:``, the format of ``podman save`` and of ``docker save`` before Docker 25) as skopeo
writes it (layers linked), extracted into a folder, and re-tarred without links as ``docker save`` writes it. Each
is refused in words that say what it is and what to do, never read as a broken skopeo dir tree. And one image of a
skopeo dir tree archived at the tar's top: it takes the archive's name, not that of a scratch folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.catalog import Generated
from tests.support.tools import Skopeo, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def docker_archive(tmp_path_factory: pytest.TempPathFactory, skopeo: Skopeo, generated: Generated) -> Path:
    out = tmp_path_factory.mktemp("docker-archive") / "calico-node.tar"
    skopeo.run("copy", f"dir:{generated.folder('calico/node:v3.15.1')}", f"docker-archive:{out}:calico/node:v3.15.1")
    return out


def refused(*args: str | Path) -> str:
    done = run_cli("inspect", *args)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr and "regpack-view" not in done.stderr
    assert "docker-archive" in done.stderr and "skopeo copy docker-archive:" in done.stderr, done.stderr
    return done.stderr


def test_a_docker_archive_as_skopeo_writes_it_is_refused_by_name(docker_archive: Path) -> None:
    listing = subprocess.run(["tar", "-tvf", docker_archive], capture_output=True, text=True, check=True).stdout
    assert any(line.startswith("l") for line in listing.splitlines())  # layers linked: <id>/layer.tar -> <hex>.tar
    assert f"{docker_archive.name}: a docker-archive" in refused(docker_archive)


def test_a_docker_archive_extracted_into_a_folder_is_refused(docker_archive: Path, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    subprocess.run(["tar", "-xf", docker_archive, "-C", folder], check=True)
    assert isinstance(json.loads((folder / "manifest.json").read_bytes()), list)
    assert f"{folder}: a docker-archive" in refused(folder)


def test_a_docker_archive_without_links_is_refused(docker_archive: Path, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    subprocess.run(["tar", "-xf", docker_archive, "-C", folder], check=True)
    flat = tmp_path / "saved.tar"
    subprocess.run(["tar", "-ch", "--hard-dereference", "-f", flat, "-C", folder, "."], check=True)  # no links
    assert "saved.tar: a docker-archive" in refused(flat)


def test_one_image_at_the_top_of_an_archive_takes_the_archive_name(generated: Generated, tmp_path: Path) -> None:
    archive = tmp_path / "node.tar"
    subprocess.run(["tar", "-cf", archive, "-C", generated.folder("calico/node:v3.15.1"), "."], check=True)
    shown = run_cli("inspect", archive, "--json")
    assert shown.returncode == 0, shown.stderr
    [image] = json.loads(shown.stdout)["images"]
    assert image["name"] == "node:latest"
    packed = run_cli("pack", archive, "-o", tmp_path / "storage", "--verify", "--quiet")
    assert packed.returncode == 0, packed.stderr
    assert (tmp_path / "storage/docker/registry/v2/repositories/node/_manifests/tags/latest").is_dir()
