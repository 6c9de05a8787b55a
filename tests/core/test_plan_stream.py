"""A plan of registry storage names its link files only when it runs: each link once however many images of a
repository name it, a tag two images claim refused before anything is written, and the engine takes the
operations as it goes instead of holding them all."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from regpack import layouts
from regpack.bundle import Bundle
from regpack.engine import _BATCH_FILES, _QUEUED_BATCHES, _run_ops, execute
from regpack.errors import BundleError
from regpack.layouts.registry import plan_pack
from regpack.plan import Plan, WriteFile
from regpack.progress import Meter
from tests.core.conftest import BASE, tree, write_dir_image

V2 = "docker/registry/v2"


def _links_one_by_one(bundle: Bundle) -> dict[str, bytes]:
    """The link files registry storage needs, image by image in the bundle's order (what a push leaves)."""
    out: dict[str, bytes] = {}
    for image in bundle.images:
        repo = f"{V2}/repositories/{image.repository}"
        for manifest in image.manifests:
            d = manifest.digest
            out[f"{repo}/_manifests/revisions/{d.algorithm}/{d.hex}/link"] = str(d).encode()
        for blob, _ in bundle.stored_blobs(image):
            d = blob.digest
            out[f"{repo}/_layers/{d.algorithm}/{d.hex}/link"] = str(d).encode()
        if image.tag is not None:
            top = image.digest
            out[f"{repo}/_manifests/tags/{image.tag}/current/link"] = str(top).encode()
            out[f"{repo}/_manifests/tags/{image.tag}/index/{top.algorithm}/{top.hex}/link"] = str(top).encode()
    return out


@pytest.fixture
def spread(dir_bundle: Path) -> Bundle:
    """The sample bundle plus a third tag of calico/node with its own layer, and the images of calico/node
    spread apart in the bundle's order (not next to each other)."""
    write_dir_image(dir_bundle / "calico" / "node:v2", "node", [BASE, b"node two" * 500])
    bundle = layouts.read(dir_bundle).check()
    node = [i for i in bundle.images if i.repository == "calico/node"]
    others = [i for i in bundle.images if i.repository != "calico/node"]
    assert len(node) == 3 and len(others) >= 3
    bundle.images[:] = [node[0], others[0], node[1], *others[1:], node[2]]
    return bundle


def test_each_link_file_is_made_once_with_the_content_a_push_gives(spread: Bundle, tmp_path: Path) -> None:
    plan = plan_pack(spread)
    made = [op.dst for op in plan.small_files()]
    assert len(made) == len(set(made))  # a repository's shared layers and revisions: one link each
    assert {op.dst: op.data for op in plan.small_files()} == _links_one_by_one(spread)
    assert not plan.files  # nothing listed one by one: the names are made when the plan runs
    assert plan.total_files == len(plan.blobs) + len(made)
    assert plan.total_bytes == sum(b.size for b in plan.blobs.values()) + sum(len(op.data) for op in plan.small_files())
    execute(plan, tmp_path / "out")
    written = tree(tmp_path / "out")
    assert {k: v for k, v in written.items() if "/repositories/" in k} == _links_one_by_one(spread)
    assert len(written) == plan.total_files


def test_the_folders_are_every_ancestor_once_after_its_parent(spread: Bundle) -> None:
    # nested repositories (calico/node beside calico/cni), a repository nested in another's folder, several tags
    write_dir = spread.root
    write_dir_image(write_dir / "calico:v1", "calico", [BASE, b"calico itself" * 300])
    write_dir_image(write_dir / "calico" / "node" / "sub:v1", "sub", [BASE, b"nested deeper" * 300])
    bundle = layouts.read(write_dir).check()
    assert {"calico", "calico/node", "calico/node/sub"} <= {i.repository for i in bundle.images}
    plan = plan_pack(bundle)
    plan.write("regpack-extra/notes/file", b"x")  # a file listed one by one, beside the group
    folders = plan.directories()
    wanted = {d.rsplit("/", n)[0] for d in plan.destinations() for n in range(1, d.count("/") + 1)}
    assert sorted(folders) == sorted(wanted)  # each once
    position = {d: i for i, d in enumerate(folders)}
    assert all(position[d.rpartition("/")[0]] < position[d] for d in folders if "/" in d)  # parents first


def test_a_tag_two_images_claim_is_refused_before_anything_is_written(spread: Bundle, tmp_path: Path) -> None:
    node = [i for i in spread.images if i.repository == "calico/node"]
    other = next(i for i in node if i.digest != node[0].digest)
    spread.images.append(dataclasses.replace(other, reference=node[0].reference, origin="elsewhere"))
    with pytest.raises(BundleError) as caught:
        plan_pack(spread)
    assert "_manifests/tags/" in caught.value.reason and "two images claim it" in caught.value.reason
    assert str(other.digest) in caught.value.reason and str(node[0].digest) in caught.value.reason
    assert caught.value.image == node[0].name


class _Numbered:
    """Small files made on demand, counting how many were made."""

    prefix = "made/"

    def __init__(self, files: int) -> None:
        self.files = files
        self.total_bytes = files
        self.made = 0

    def __iter__(self) -> Iterator[WriteFile]:
        for n in range(self.files):
            self.made += 1
            yield WriteFile(f"made/{n % 16}/{n}", b"x")


def test_files_in_a_group_s_folder_are_refused() -> None:
    plan = Plan()
    plan.add_group(_Numbered(3))
    with pytest.raises(BundleError, match="planned twice"):
        plan.write("made/1/1", b"y")
    with pytest.raises(BundleError, match="planned both"):
        plan.place("/src", "made/0/0", 1)
    plan.write("elsewhere/file", b"y")
    with pytest.raises(BundleError, match="share the folder"):
        plan.add_group(_Numbered(1))
    early = Plan()
    early.write("made/file", b"y")
    with pytest.raises(BundleError, match="planned twice"):
        early.add_group(_Numbered(1))


def test_the_engine_takes_operations_as_it_goes(tmp_path: Path) -> None:
    group = _Numbered(40 * _BATCH_FILES)
    plan = Plan()
    plan.add_group(group)
    meter = Meter(None, plan.total_bytes, plan.total_files, "")
    ahead: list[int] = []

    def taken() -> Iterator[WriteFile]:
        for op in plan.small_files():
            ahead.append(group.made - meter.done_files)  # made, not yet written
            yield op

    root = tmp_path / "out"
    for n in range(16):
        (root / "made" / str(n)).mkdir(parents=True)
    jobs = 2
    _run_ops(str(root), taken(), False, jobs, meter, threading.Event())
    assert meter.done_files == group.files == group.made
    assert len(list(root.rglob("*"))) == 1 + 16 + group.files
    # Never more than the queued batches and the one being gathered: the plan is not made all at once.
    assert max(ahead) <= (jobs * _QUEUED_BATCHES + 1) * _BATCH_FILES
