"""A bundle read into memory shares what its images share: one Descriptor per blob reference, one string per
digest algorithm and media type, whatever the layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from regpack import layouts
from regpack.jobs import pack
from regpack.manifest import Descriptor
from tests.core.conftest import BASE, sha


@pytest.mark.parametrize("layout", ["dir", "registry"])
def test_images_share_descriptors_of_a_common_layer(dir_bundle: Path, tmp_path: Path, layout: str) -> None:
    src = dir_bundle
    if layout == "registry":
        pack(dir_bundle, tmp_path / "p")
        src = tmp_path / "p"
    bundle = layouts.read(src).check()
    base: list[Descriptor] = [
        d for img in bundle.images for m in img.manifests for d in m.layers if d.digest.hex == sha(BASE)
    ]
    assert len(base) >= 5  # every single-arch image and both platforms of the list
    assert all(d is base[0] for d in base)
    algorithms = {id(d.digest.algorithm) for img in bundle.images for m in img.manifests for d in m.blobs}
    media_types = {id(d.media_type) for img in bundle.images for m in img.manifests for d in m.layers}
    assert len(algorithms) == 1 and len(media_types) == 1
    # Sharing changes nothing a user sees: same layers, sizes and locations as the manifests say.
    for img in bundle.images:
        for m in img.manifests:
            for d in m.blobs:
                assert Path(img.locations[d.digest]).stat().st_size == d.size
