"""The analysis of a read bundle can be cancelled: it stops where it learns of the cancel, not at its end."""

from __future__ import annotations

import threading

import pytest

from regpack import analysis as analysis_module
from regpack.analysis import analyse
from regpack.errors import Cancelled
from regpack.layouts import read
from tests.support.sample import make_synthetic


class TripsAfter(threading.Event):
    """A cancel that is set once it has been looked at ``after`` times: a user pressing Cancel mid-analysis,
    at the same point every run."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        if self.looks == self.after:
            self.set()
        return super().is_set()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return read(make_synthetic(tmp_path_factory.mktemp("a") / "b", 60, seed=5, lists_every=10)).check()


@pytest.mark.parametrize("after", [1, 30, 60, 61, 100])
def test_cancel_stops_the_analysis_at_the_look_that_sees_it(bundle, after: int) -> None:  # type: ignore[no-untyped-def]
    # 60 images: looks 1-60 are the first pass over the images, 61-120 the second, then the blob table.
    cancel = TripsAfter(after)
    with pytest.raises(Cancelled):
        analyse(bundle, cancel=cancel)
    assert cancel.looks == after  # not one image (or batch of blobs) more after the cancel was seen


def test_cancel_reaches_the_table_of_blobs_and_the_end(bundle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    whole = analyse(bundle)
    monkeypatch.setattr(analysis_module, "_CANCEL_EVERY", 10)
    looks_in_images = 2 * len(bundle.images)
    batches = -(-len(whole.blobs) // 10)
    for after in (looks_in_images + 1, looks_in_images + batches, looks_in_images + batches + 1):
        cancel = TripsAfter(after)
        with pytest.raises(Cancelled):
            analyse(bundle, cancel=cancel)
        assert cancel.looks == after
    # a cancel never set changes nothing: the same numbers as without one
    again = analyse(bundle, cancel=threading.Event())
    assert (again.dir_bytes, again.packed_bytes) == (whole.dir_bytes, whole.packed_bytes)
    assert [u.blob.digest for u in again.blobs] == [u.blob.digest for u in whole.blobs]
    assert [(s.image.name, s.total_bytes, s.unique_bytes) for s in again.images] == [
        (s.image.name, s.total_bytes, s.unique_bytes) for s in whole.images
    ]


def test_the_analysis_promotes_what_it_builds_as_it_goes(bundle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from regpack import collector

    promoted: list[int] = []
    monkeypatch.setattr(collector, "PROMOTE_EVERY", 20)
    monkeypatch.setattr(collector, "_promote", lambda: promoted.append(1))
    whole = analyse(bundle)
    # 60 images twice (120 items) and the blob table (32 items per 256 blobs, at least one batch)
    assert len(promoted) >= 120 // 20 and whole.dir_bytes > 0
    before = len(promoted)
    collector.built(1000)  # outside an analysis (or a read) nothing is promoted
    assert len(promoted) == before
