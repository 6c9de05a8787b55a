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


def test_a_read_beside_other_threads_promotes_what_it_built_and_leaves_nothing_frozen(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.sample import make_synthetic

    bundle = make_synthetic(tmp_path / "b", 7, seed=3)
    code = f"""
import gc, threading
from pathlib import Path
from regpack import layouts
from regpack import collector
collector.PROMOTE_EVERY = 3
calls = []
for name in ("collect", "freeze", "unfreeze", "disable", "set_threshold"):
    real = getattr(gc, name)
    setattr(gc, name, lambda *a, _real=real, _name=name: (calls.append((_name, *a)), _real(*a))[1])
stop = threading.Event()
other = threading.Thread(target=stop.wait)  # another thread, as a window's
other.start()
thresholds = gc.get_threshold()
images = len(layouts.read(Path({str(bundle)!r})).images)
print(images, calls, gc.isenabled(), gc.get_freeze_count(), gc.get_threshold() == thresholds)
calls.clear()
kept = [object() for _ in range(10)]
gc.freeze()  # frozen on purpose by the program: a read must not unfreeze it
frozen = gc.get_freeze_count()
layouts.read(Path({str(bundle)!r}))
print(calls == [("freeze",)], gc.get_freeze_count() == frozen)
stop.set()
other.join()
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    once = "('collect', 0), ('freeze',), ('unfreeze',)"
    assert run.stdout.splitlines() == [f"7 [{once}, {once}] True 0 True", "True True"]


def test_garbage_of_other_threads_is_collected_not_promoted_by_a_read(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.sample import make_synthetic

    bundle = make_synthetic(tmp_path / "b", 7, seed=3)
    code = f"""
import gc, threading, weakref
from pathlib import Path
from regpack import collector, layouts
collector.PROMOTE_EVERY = 3
gc.collect()
gc.set_threshold(10**6)  # no collection of its own during this small read: only what the read does
class Node:
    pass
def garbage_cycle():
    node = Node()
    node.me = node
    return weakref.ref(node)
young = garbage_cycle()  # the window thread's garbage, young when the read begins
reader = threading.Thread(target=lambda: layouts.read(Path({str(bundle)!r})))  # a read on a worker, as the window's
reader.start()
reader.join()
print(young() is None)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True"]  # examined by a young collection before the promotion, and freed
