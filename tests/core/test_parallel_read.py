"""Registry storage read by two processes (layouts._parallel) finds exactly what one process finds.

The helper process runs the reader over a share of the repositories and sends what each file operation
answered; the first process runs the same reader on those answers. Every case of the bad-input corpus in registry
storage, read with the helper taking every repository or every other one, must give the same images, blobs,
problems (codes, reasons, files, order) and verify report as a read in one process."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from regpack import layouts
from regpack.bundle import Bundle, Locations
from regpack.errors import Cancelled
from regpack.jobs import pack
from regpack.layouts import _parallel, registry
from regpack.layouts._common import SafeRoot
from regpack.layouts._watch import watching
from regpack.verify import Report, _HashingRoot, verify
from tests.core import corpus
from tests.core.conftest import BASE, write_dir_image

REGISTRY_CASES = [c for c in corpus.CASES if c.layout == "registry"]


def _snapshot(bundle: Bundle) -> tuple[Any, ...]:
    images = [
        (
            img.name,
            str(img.digest),
            [str(m.digest) for m in img.manifests],
            sorted(img.locations.pairs() if isinstance(img.locations, Locations) else img.locations.items()),
            sorted(img.signatures.items()),
        )
        for img in bundle.images
    ]
    problems = [(p.severity.value, p.code.value, p.reason, p.where, p.image) for p in bundle.problems]
    blobs = sorted((str(d), b.size, b.role.value, b.file) for d, b in bundle.blobs.items())
    return images, problems, blobs, bundle.is_patch, dict(bundle.from_base)


def _seen(report: Report) -> list[tuple[str, str, str, str, str | None]]:
    return [(f.severity.value, f.code.value, f.reason, f.where, f.image) for f in report.findings]


@pytest.fixture
def helper_everywhere(monkeypatch: pytest.MonkeyPatch) -> list[_parallel.Helper]:
    """Every read of registry storage on disk starts the helper; the helpers started are listed."""
    started: list[_parallel.Helper] = []
    real = _parallel.Helper

    class Watched(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.replayed = 0
            self.pid = self._pid
            started.append(self)

        def answers(self, index: int) -> Any:
            found = super().answers(index)
            self.replayed += found is not None
            return found

    monkeypatch.setattr(_parallel, "Helper", Watched)
    # The command line's reads fork the helper only in a process with one thread; a test session may have more
    # (the window's tests leave Qt's), and the helper touches none of their locks.
    monkeypatch.setattr(layouts, "_single_threaded", lambda: True)
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    monkeypatch.setattr(_parallel, "BLOCK", 1)
    return started


@pytest.mark.parametrize("share", [1.0, 0.5])
@pytest.mark.parametrize("case", REGISTRY_CASES, ids=[c.id for c in REGISTRY_CASES])
def test_a_corpus_storage_reads_the_same_with_the_helper(
    case: corpus.Case,
    share: float,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helper_everywhere: list[_parallel.Helper],
) -> None:
    root = case.make(tmp_path)
    monkeypatch.setattr(_parallel, "HELPER_SHARE", share)
    alone = registry.read(root, parallel=False)
    with_helper = registry.read(root, parallel=True)
    assert _snapshot(with_helper) == _snapshot(alone)
    repositories = len(registry.repositories(root / registry.V2)) if (root / registry.V2).is_dir() else 0
    if repositories >= 2 or (share == 1.0 and repositories):
        assert helper_everywhere and sum(h.replayed for h in helper_everywhere) >= 1

    # verify: small blobs hashed by the helper count as hashed, damaged ones are named as in one process
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 10**9)
    one = verify(root)
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    before = sum(h.replayed for h in helper_everywhere)
    two = verify(root)
    if repositories >= 2:  # the command line's way: the helper when the process has one thread (it has)
        assert sum(h.replayed for h in helper_everywhere) > before
    assert _seen(two) == _seen(one)
    assert (two.images, two.files_hashed, two.bytes_hashed) == (one.images, one.files_hashed, one.bytes_hashed)


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """Registry storage of 40 repositories (three blocks of 16), one damaged small blob among them."""
    src = tmp_path / "src"
    for i in range(40):
        write_dir_image(src / f"team{i % 3}/app{i}:1.{i}", f"app{i}", [BASE, f"layer {i} ".encode() * (50 + i)])
    pack(src, tmp_path / "reg")
    return tmp_path / "reg"


def test_the_helper_reads_its_share_in_blocks_and_hashes_small_blobs(
    storage: Path, monkeypatch: pytest.MonkeyPatch, helper_everywhere: list[_parallel.Helper]
) -> None:
    monkeypatch.setattr(_parallel, "BLOCK", 4)
    found = registry.repositories(storage / registry.V2)
    theirs = sorted(_parallel.helper_blocks(len(found)))
    assert 0 < len(theirs) < len(found)
    # a layer only a repository of the helper's share uses
    repo = Path(found[theirs[-1]][1])
    layers = {p.name for p in (repo / "_layers/sha256").iterdir()}
    for index, (_, other) in enumerate(found):
        if index != theirs[-1]:
            layers -= {p.name for p in (Path(other) / "_layers/sha256").iterdir()}
    layer = layers.pop()
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 10**9)
    one = verify(storage)
    alone = _snapshot(registry.read(storage))
    data = storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    before = data.read_bytes()
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    two = verify(storage)
    assert _seen(two) == _seen(one) and one.ok
    assert _snapshot(registry.read(storage)) == alone
    assert sum(h.replayed for h in helper_everywhere) >= 20

    tree = _HashingRoot(storage)
    registry.read(storage, tree, parallel=True)
    assert str(data) in tree.early.ok  # hashed in the helper, merged into this process's tree

    data.write_bytes(bytes([before[0] ^ 1]) + before[1:])
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 10**9)
    bad_one = verify(storage)
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    bad_two = verify(storage)
    assert not bad_one.ok and _seen(bad_two) == _seen(bad_one)
    assert any(f.code.value == "digest-mismatch" and str(data) in f.where for f in bad_two.findings)


def test_a_helper_that_cannot_start_dies_or_babbles_changes_nothing_but_the_time(
    storage: Path, monkeypatch: pytest.MonkeyPatch, helper_everywhere: list[_parallel.Helper]
) -> None:
    alone = _snapshot(registry.read(storage, parallel=False))

    def no_fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    with monkeypatch.context() as m:
        m.setattr(os, "fork", no_fork)
        assert _snapshot(registry.read(storage, parallel=True)) == alone
    assert helper_everywhere[-1].replayed == 0 and helper_everywhere[-1].pid is None

    def dies(*args: Any) -> None:
        raise RuntimeError("the helper fails at once")

    def dies_later(root: Any, folders: Any, jobs: Any, has_signatures: bool, out: Any) -> None:
        real_serve(root, folders, jobs[:3], has_signatures, out)  # three repositories, then it fails
        raise MemoryError

    def babbles(*args: Any) -> None:
        args[-1].write(b"not a pickle at all")

    real_serve = _parallel._serve
    for serve in (dies, dies_later, babbles):
        with monkeypatch.context() as m:
            m.setattr(_parallel, "_serve", serve)
            assert _snapshot(registry.read(storage, parallel=True)) == alone
        helper = helper_everywhere[-1]
        assert helper.replayed == (3 if serve is dies_later else 0)
        with pytest.raises(ProcessLookupError):  # waited for: no process left behind
            os.kill(helper.pid, 0)

    # verify too: the small blobs the helper did not report as hashed are hashed after the read
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    with monkeypatch.context() as m:
        m.setattr(_parallel, "_serve", dies_later)
        report = verify(storage)
    assert report.ok and report.files_hashed == verify(storage).files_hashed


def test_an_answer_not_recorded_is_asked_of_the_disk(storage: Path) -> None:
    safe = SafeRoot(storage)
    empty = _parallel.Replay(safe, {})
    v2 = storage / registry.V2
    found = registry.repositories(v2)
    alone = registry.read(storage, parallel=False)
    bundle = Bundle(storage, alone.layout)
    folders = registry._BlobFolders(safe, os.path.abspath(v2))
    for name, repo_dir in found:
        registry._read_repository(bundle, empty, name, repo_dir, folders, False)
    assert _snapshot(bundle) == _snapshot(alone)


def test_cancel_stops_the_helper_too(
    storage: Path, monkeypatch: pytest.MonkeyPatch, helper_everywhere: list[_parallel.Helper]
) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(event: object) -> None:
        seen.append(1)

    calls = 0
    real = registry._read_repository

    def counting(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            cancel.set()
        real(*args)

    monkeypatch.setattr(registry, "_read_repository", counting)
    with pytest.raises(Cancelled), watching(progress, cancel):
        registry.read(storage, parallel=True)
    helper = helper_everywhere[-1]
    assert helper.pid is not None and helper._pid is None
    with pytest.raises(ProcessLookupError):  # killed and waited for: no process left behind
        os.kill(helper.pid, 0)


def _link_out(folder: Path, outside: Path) -> None:
    """Move ``folder`` out of the bundle and leave a symbolic link to it in its place."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(outside)
    folder.symlink_to(outside)


@pytest.mark.parametrize(
    "inner", ["_layers/sha256", "_manifests/revisions", "_manifests/tags/1.3/current", "_manifests/tags"]
)
def test_a_folder_linked_out_of_a_repository_is_refused_the_same_way(
    storage: Path,
    inner: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    helper_everywhere: list[_parallel.Helper],
) -> None:
    repo = storage / "docker/registry/v2/repositories/team0/app3"
    _link_out(repo / inner, tmp_path / "outside" / inner)
    monkeypatch.setattr(_parallel, "HELPER_SHARE", 1.0)
    alone = registry.read(storage, parallel=False)
    assert any(p.code.value == "unsafe" and "team0/app3" in p.where for p in alone.problems)
    assert _snapshot(registry.read(storage, parallel=True)) == _snapshot(alone)
    assert sum(h.replayed for h in helper_everywhere) == 40


def test_verify_with_one_job_reads_in_one_process(storage: Path, helper_everywhere: list[_parallel.Helper]) -> None:
    assert verify(storage, jobs=1).ok
    assert not helper_everywhere
    assert verify(storage, jobs=2).ok
    assert helper_everywhere and helper_everywhere[-1].replayed > 0


def test_a_helper_that_forgets_the_files_it_checked_finds_the_same(
    storage: Path, monkeypatch: pytest.MonkeyPatch, helper_everywhere: list[_parallel.Helper]
) -> None:
    # 40 images share a base layer: checked (and hashed) again by the helper after each block it forgets
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 10**9)
    one = verify(storage)
    alone = _snapshot(registry.read(storage))
    monkeypatch.setattr(_parallel, "MIN_REPOSITORIES", 1)
    monkeypatch.setattr(_parallel, "_FILES_KEPT", 0)
    two = verify(storage)
    assert helper_everywhere[-1].replayed > 0
    assert _seen(two) == _seen(one) and two.ok
    assert (two.files_hashed, two.bytes_hashed) == (one.files_hashed, one.bytes_hashed)
    assert _snapshot(registry.read(storage)) == alone


def test_unpack_with_one_job_reads_in_one_process(
    storage: Path, tmp_path: Path, helper_everywhere: list[_parallel.Helper]
) -> None:
    from regpack.jobs import unpack

    unpack(storage, tmp_path / "one", jobs=1)
    assert not helper_everywhere
    unpack(storage, tmp_path / "two", jobs=2)
    assert helper_everywhere and helper_everywhere[-1].replayed > 0
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*"))
    assert one == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")) and len(one) > 80
