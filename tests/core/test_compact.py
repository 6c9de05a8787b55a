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


def test_the_collector_is_paused_only_when_the_process_has_no_other_thread(dir_bundle: Path) -> None:
    import subprocess
    import sys

    code = f"""
import gc, threading
from pathlib import Path
from regpack import layouts
calls = []
real_disable, real_enable = gc.disable, gc.enable
gc.disable = lambda: (calls.append("disable"), real_disable())[1]
gc.enable = lambda: (calls.append("enable"), real_enable())[1]
layouts.read(Path({str(dir_bundle)!r}))
print("alone", calls, gc.isenabled())
calls.clear()
stop = threading.Event()
seen = []
def other():  # another thread, as a window's: it must find the collector on all along
    while not stop.is_set():
        seen.append(gc.isenabled())
worker = threading.Thread(target=other)
worker.start()
for _ in range(20):
    layouts.read(Path({str(dir_bundle)!r}))
stop.set()
worker.join()
print("threads", calls, gc.isenabled(), all(seen))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["alone ['disable', 'enable'] True", "threads [] True True"]
