"""containerd's own exports (`ctr images export`, the format nerdctl save and docker save 25+ share): an OCI layout
whose descriptors carry the full name in io.containerd.image.name and only the tag in ref.name. The images come
from a live registry through `ctr images pull`, as a containerd node fetches them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.realtools import Containerd, Release
from tests.support.tools import Skopeo, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported(containerd: Containerd, buildah_release: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ctr images export` of every image of the release under the names users give them: docker.io short names,
    a mirror host with a port, and the registry's own address."""
    names = []
    for ref in ("base:3.19", "team/app1:1.0", "tools:1.0"):
        pulled = f"{buildah_release.registry.host}/{ref}"
        containerd.ctr("images", "pull", "--plain-http", "--all-platforms", pulled)
        names.append(pulled)
    containerd.tag(f"{buildah_release.registry.host}/base:3.19", "docker.io/library/base:3.19")
    containerd.tag(f"{buildah_release.registry.host}/team/app1:1.0", "mirror.example.com:5000/team/app1:1.0")
    names += ["docker.io/library/base:3.19", "mirror.example.com:5000/team/app1:1.0"]
    work = tmp_path_factory.mktemp("ctr-export")
    archive = work / "export.tar"
    containerd.export(archive, *names)
    layout = work / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-C", str(layout), "-xf", str(archive)], check=True)
    index = json.loads((layout / "index.json").read_text())
    assert {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]} == set(names)
    return layout


def test_containerd_export_names_every_image_by_its_full_name(exported: Path, buildah_release: Release) -> None:
    run = run_cli("inspect", exported, "--json")
    assert run.returncode == 0, run.stderr
    host = buildah_release.registry.host
    assert sorted((i["name"], i["repository"]) for i in json.loads(run.stdout)["images"]) == sorted(
        [
            (f"{host}/base:3.19", "base"),
            (f"{host}/team/app1:1.0", "team/app1"),
            (f"{host}/tools:1.0", "tools"),
            ("docker.io/library/base:3.19", "library/base"),
            ("mirror.example.com:5000/team/app1:1.0", "team/app1"),
        ]
    )
    # the registry's address and mirror.example.com:5000 both hold team/app1:1.0: one registry repository
    # cannot take both, so packing is refused by name until one is renamed
    refused = run_cli("pack", exported, "-o", exported.parent / "refused")
    assert refused.returncode == 1
    assert "team/app1:1.0" in refused.stderr and "mirror.example.com:5000" in refused.stderr
    assert not (exported.parent / "refused").exists()


def test_containerd_export_packs_with_rename_and_serves_byte_exact(
    exported: Path, buildah_release: Release, skopeo: Skopeo, serve_readonly
) -> None:
    packed = exported.parent / "packed"
    run = run_cli("pack", exported, "-o", packed, "--verify", "--rename", "mirror.example.com:5000/team=mirror/team")
    assert run.returncode == 0, run.stderr
    served = serve_readonly(packed)
    expected = {
        "base:3.19": "base:3.19",
        "team/app1:1.0": "team/app1:1.0",
        "tools:1.0": "tools:1.0",
        "library/base:3.19": "base:3.19",
        "mirror/team/app1:1.0": "team/app1:1.0",
    }
    for name, origin in expected.items():
        assert skopeo.inspect_raw(served.ref(name)) == skopeo.inspect_raw(buildah_release.ref(origin)), name
    assert os.path.isdir(packed / "docker/registry/v2/repositories/library/base")
