"""layouts.read tells how many images it has read and stops between two images when cancelled, in every layout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from regpack import layouts
from regpack.errors import Cancelled
from regpack.jobs import pack
from regpack.progress import Progress
from tests.support.sample import make_synthetic

IMAGES = 12


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same twelve images as a skopeo dir tree, registry storage and a .tar archive of that storage."""
    root = tmp_path_factory.mktemp("read-progress")
    folder = make_synthetic(root / "dirs", IMAGES, seed=5, lists_every=4)
    pack(folder, root / "storage")
    pack(folder, root / "release.tar")
    return {"dir": folder, "registry": root / "storage", "archive": root / "release.tar"}


@pytest.mark.parametrize("layout", ["dir", "registry", "archive"])
def test_progress_counts_the_images_read(bundles: dict[str, Path], layout: str) -> None:
    events: list[Progress] = []
    bundle = layouts.read(bundles[layout], progress=events.append)
    assert len(bundle.images) == IMAGES and not bundle.errors
    assert events[0].done_files == 1  # the first image is reported at once: "reading" shows up early
    assert events[-1].done_files == IMAGES  # and the last event has them all
    assert all(e.message == "reading" and e.total_files == 0 for e in events)  # no total: unknown before the end
    assert [e.done_files for e in events] == sorted(e.done_files for e in events)


@pytest.mark.parametrize("layout", ["dir", "registry", "archive"])
def test_cancel_stops_the_read_between_two_images(bundles: dict[str, Path], layout: str) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def cancel_after_first(event: Progress) -> None:
        seen.append(event.done_files)
        cancel.set()

    with pytest.raises(Cancelled):
        layouts.read(bundles[layout], progress=cancel_after_first, cancel=cancel)
    assert seen == [1]  # stopped before the second image


def test_a_cancelled_read_starts_nothing(bundles: dict[str, Path]) -> None:
    cancel = threading.Event()
    cancel.set()
    events: list[Progress] = []
    with pytest.raises(Cancelled):
        layouts.read(bundles["dir"], progress=events.append, cancel=cancel)
    assert events == []


@pytest.mark.parametrize("zst", [False, True], ids=["tar", "tar.zst"])
def test_cancel_stops_an_archive_while_its_members_are_indexed(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zst: bool
) -> None:
    """The index of a big archive takes seconds before its first image: Cancel must not wait for that image."""
    from regpack.layouts import archive

    path = bundles["archive"]
    if zst:
        path = tmp_path / "release.tar.zst"
        pack(bundles["dir"], path)
    cancel = threading.Event()
    headers = archive.iter_members
    seen: list[str] = []

    def cancelled_after_three(stream: object, where: Path) -> object:
        for member in headers(stream, where):  # type: ignore[arg-type]
            seen.append(member[0])
            if len(seen) == 3:
                cancel.set()
            yield member

    def no_layout(source: object) -> object:
        raise AssertionError("the index ran to its end after Cancel")

    monkeypatch.setattr(archive, "iter_members", cancelled_after_three)
    monkeypatch.setattr(archive, "_find_layout", no_layout)
    events: list[Progress] = []
    with pytest.raises(Cancelled):
        layouts.read(path, progress=events.append, cancel=cancel)
    assert len(seen) == 3 and events == []


def test_without_a_watch_a_read_is_as_before_and_two_threads_count_apart(bundles: dict[str, Path]) -> None:
    assert len(layouts.read(bundles["dir"]).images) == IMAGES
    counts: dict[str, int] = {}

    def read(name: str) -> None:
        events: list[Progress] = []
        layouts.read(bundles[name], progress=events.append)
        counts[name] = events[-1].done_files

    threads = [threading.Thread(target=read, args=(name,)) for name in ("dir", "registry")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {"dir": IMAGES, "registry": IMAGES}
