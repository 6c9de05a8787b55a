"""Big bundles in the window: the images table is shown before core's analysis and sorts itself, the layers tree
offers a layer's images in batches, and an open can be cancelled while the window stays usable."""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QTableView, QTreeView

import regpack.gui.window
from regpack.analysis import analyse
from regpack.errors import Cancelled
from regpack.gui.models import (
    OBJECT_ROLE,
    SORT_ROLE,
    BlobTreeModel,
    ImageFilterProxy,
    ImageTableModel,
    natural_key,
)
from regpack.gui.sizes import human_size
from regpack.gui.window import NEXT_STEP, MainWindow
from regpack.layouts import read
from regpack.progress import Progress


def tuple_natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """What natural order means, spelled out: runs of digits by value, text case-insensitively, a number first."""
    parts = re.split(r"(\d+)", text.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def test_natural_key_orders_like_numbers_and_text_compared_run_by_run() -> None:
    names = "_ 0 00 1 01 2abc 9z 10 a A a0 a1 a01 a1a a1b a1.1 a2 a10 a11 a-b a.1 a_ ab abc v1.9 v1.10 1a 1- x/y:2"
    names = ["", *names.split(), "v1.10-rc1"]
    for a, b in itertools.product(names, names):
        assert (natural_key(a) < natural_key(b)) == (tuple_natural_key(a) < tuple_natural_key(b)), (a, b)
    # a repository+tag key: the repository decides, whatever the tags (NUL separates, never inside a key)
    assert natural_key("app") + "\0" + natural_key("zzz") < natural_key("app1") + "\0" + natural_key("")


@pytest.fixture
def analysed(synthetic_bundle: Path):  # type: ignore[no-untyped-def]
    bundle = read(synthetic_bundle)
    return bundle, analyse(bundle)


def test_table_shows_images_first_and_fills_their_numbers_in_place(qtmodeltester, analysed) -> None:
    bundle, analysis = analysed
    model = ImageTableModel()
    model.set_images(bundle.images)
    qtmodeltester.check(model)
    assert model.rowCount() == 40 and not model.analysed
    names = {model.index(r, 0).data(OBJECT_ROLE).image.name for r in range(40)}
    assert names == {i.name for i in bundle.images}
    assert {model.index(r, ImageTableModel.SIZE).data() for r in range(40)} == {ImageTableModel.PENDING}
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.set_analysis(analysis)
    qtmodeltester.check(model)
    assert not resets and model.analysed  # same images: numbers filled in, the view keeps its place
    by_name = {s.image.name: s for s in analysis.images}
    for row in range(40):
        stats = by_name[model.index(row, 0).data(OBJECT_ROLE).image.name]
        assert model.index(row, ImageTableModel.SIZE).data() == human_size(stats.total_bytes)
        assert model.index(row, ImageTableModel.LAYERS).data() == str(stats.layers)


def test_table_sorts_every_column_both_ways_and_the_selection_follows(qtbot, analysed) -> None:
    _, analysis = analysed
    model = ImageTableModel()
    model.set_analysis(analysis)
    proxy = ImageFilterProxy()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.sortByColumn(ImageTableModel.REPOSITORY, Qt.SortOrder.AscendingOrder)  # as the window does
    images = [proxy.index(r, 0).data(OBJECT_ROLE).image for r in range(proxy.rowCount())]
    assert images == sorted(images, key=lambda i: (tuple_natural_key(i.repository), tuple_natural_key(i.tag or "")))
    chosen = images[7]
    view.selectionModel().select(
        proxy.index(7, 0), QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    )
    for column in range(len(ImageTableModel.HEADERS)):
        for order in (Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder):
            view.sortByColumn(column, order)
            keys = [proxy.index(r, column).data(SORT_ROLE) for r in range(proxy.rowCount())]
            assert keys == sorted(keys, reverse=order == Qt.SortOrder.DescendingOrder), (column, order)
            (selected,) = view.selectionModel().selectedRows()
            assert selected.data(OBJECT_ROLE).image is chosen  # the selected image stays selected
    view.sortByColumn(ImageTableModel.SIZE, Qt.SortOrder.DescendingOrder)
    sizes = [proxy.index(r, 0).data(OBJECT_ROLE).total_bytes for r in range(proxy.rowCount())]
    assert sizes == sorted(sizes, reverse=True)
    proxy.set_search("list")  # the filter keeps the model's order
    shown = [proxy.index(r, 0).data(OBJECT_ROLE).total_bytes for r in range(proxy.rowCount())]
    assert 0 < len(shown) < 40 and shown == sorted(shown, reverse=True)


def test_layer_tree_offers_a_layers_images_in_batches(qtmodeltester, analysed) -> None:
    _, analysis = analysed
    model = BlobTreeModel()
    model.CHILD_BATCH = 7
    model.set_analysis(analysis)
    top = model.index(0, 0)
    usage = top.data(OBJECT_ROLE)
    assert usage.count > 2 * model.CHILD_BATCH  # the most shared layer: more images than one batch
    assert model.hasChildren(top) and model.rowCount(top) == 7 and model.canFetchMore(top)
    offered = [7]
    while model.canFetchMore(top):
        model.fetchMore(top)
        offered.append(model.rowCount(top))
    assert offered == [*range(7, usage.count, 7), usage.count]
    children = [model.index(r, 0, top).data(OBJECT_ROLE) for r in range(usage.count)]
    assert sorted(children, key=id) == sorted(usage.images, key=id)  # every image that uses it, once
    order = [(tuple_natural_key(i.repository), tuple_natural_key(i.tag or "")) for i in children]
    assert order == sorted(order)  # in the table's order
    model.set_analysis(analysis)  # a new analysis offers one batch again
    assert model.rowCount(model.index(0, 0)) == 7
    qtmodeltester.check(model)


def test_scrolling_through_a_layers_images_offers_the_next_batch(qtbot, analysed) -> None:
    _, analysis = analysed
    model = BlobTreeModel()
    model.CHILD_BATCH = 5
    model.set_analysis(analysis)
    view = QTreeView()
    qtbot.addWidget(view)
    view.setUniformRowHeights(True)
    view.setModel(model)
    view.resize(500, 90)
    view.show()
    top = model.index(0, 0)
    total = top.data(OBJECT_ROLE).count
    view.expand(top)
    first = model.rowCount(top)  # the tree fetches what fills its view, a batch at a time: not everything
    assert 0 < first < total - 10 and first % 5 == 0
    settled = model.rowCount(top)
    qtbot.wait(100)
    assert model.rowCount(top) == settled  # nothing more while the last one offered is out of view
    for _ in range(total):  # scrolling down through the layer's images offers them all, a batch at a time
        before = model.rowCount(top)
        if before == total:
            break
        view.scrollTo(model.index(before - 1, 0, top))  # the last image offered comes into view
        qtbot.waitUntil(lambda before=before: model.rowCount(top) > before, timeout=5000)
        assert (model.rowCount(top) - before) % 5 == 0 or model.rowCount(top) == total
    assert model.rowCount(top) == total
    images = [model.index(r, 0, top).data(OBJECT_ROLE) for r in range(total)]
    assert len({id(i) for i in images}) == total


def test_layer_tree_offers_its_top_rows_in_batches_too(qtbot, qtmodeltester, analysed) -> None:
    _, analysis = analysed
    model = BlobTreeModel()
    model.TOP_BATCH = 10
    model.set_analysis(analysis)
    layers = sum(1 for u in analysis.blobs if u.blob.role.value == "layer")
    assert layers > 30 and model.rowCount() == 10 and model.canFetchMore(model.index(-1, 0))
    model.offer_through(24)  # what a view must show (a layer's row, the selected image's row)
    assert model.rowCount() == 25 and model.index(24, 0).isValid() and not model.index(25, 0).isValid()
    view = QTreeView()
    qtbot.addWidget(view)
    view.setUniformRowHeights(True)
    view.setModel(model)
    view.resize(400, 120)
    view.show()
    for _ in range(layers):  # scrolled to the end, the view asks for the next batch
        if model.rowCount() == layers:
            break
        before = model.rowCount()
        view.verticalScrollBar().setValue(view.verticalScrollBar().maximum())
        qtbot.waitUntil(lambda before=before: model.rowCount() > before, timeout=5000)
    assert model.rowCount() == layers
    model.set_mode(BlobTreeModel.BY_IMAGE)
    assert model.rowCount() == 10
    qtmodeltester.check(model)


def test_selecting_an_image_far_down_shows_its_row_in_the_tree_grouped_by_image(
    open_and_wait, window: MainWindow, synthetic_bundle: Path
) -> None:
    window.blob_model.TOP_BATCH = 5
    window.group_check.setChecked(True)
    open_and_wait(window, synthetic_bundle)
    assert window.blob_model.rowCount() < 40
    window.table.selectRow(39)
    image = window.current_image()
    (row,) = window.blob_model.highlighted_rows()
    index = window.blob_model.index(row, 0)
    assert row >= 5 and index.isValid() and index.data(OBJECT_ROLE).image is image
    assert window.tree.isExpanded(index)


def parked_analysis(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold core's analysis in the window until the returned Event is set."""
    release = threading.Event()
    real = regpack.gui.window.analyse

    def analyse_when_released(bundle, *, cancel=None):  # type: ignore[no-untyped-def]
        assert release.wait(30)
        return real(bundle, cancel=cancel)

    monkeypatch.setattr(regpack.gui.window, "analyse", analyse_when_released)
    return release


def test_the_images_are_shown_and_usable_before_the_analysis(
    qtbot, window: MainWindow, synthetic_bundle: Path, monkeypatch
) -> None:
    release = parked_analysis(monkeypatch)
    loaded: list[object] = []
    window.bundle_loaded.connect(loaded.append)
    with qtbot.waitSignal(window.images_shown, timeout=30_000):
        assert window.open_bundle(synthetic_bundle)
    try:
        assert window.proxy.rowCount() == 40 and window.images_panel.title_label.text() == "Images (40)"
        assert window.blob_model.rowCount() == 0 and "counting" in window.layers_panel.title_label.text()
        assert window.proxy.index(0, ImageTableModel.SIZE).data() == ImageTableModel.PENDING
        assert "counting" in window.summary_label.text()
        qtbot.waitUntil(lambda: window.progress.detail.text() == "analysing 40 images…", timeout=10_000)
        assert window.progress.cancel_button.isVisible() and window.progress.cancel_button.isEnabled()
        # the window answers: the filter works, a row can be chosen and its details are read
        qtbot.keyClicks(window.search, "list")
        assert 0 < window.proxy.rowCount() < 40
        window.search.clear()
        window.table.selectRow(3)
        assert window.details.image is window.proxy.index(3, 0).data(OBJECT_ROLE).image
        assert not loaded and window.busy() and not window.pack_action.isEnabled()
    finally:
        release.set()
    qtbot.waitUntil(lambda: bool(loaded), timeout=30_000)
    assert window.blob_model.rowCount() > 0 and window.layers_panel.title_label.text() == "Shared layers"
    assert window.proxy.index(0, ImageTableModel.SIZE).data() != ImageTableModel.PENDING
    assert window.pack_action.isEnabled() and window.analysis is not None


def test_cancel_while_reading_stops_the_read_and_keeps_the_open_bundle(
    open_and_wait, qtbot, window: MainWindow, sample_bundle: Path, synthetic_bundle: Path, monkeypatch
) -> None:
    open_and_wait(window, sample_bundle)
    raised: list[BaseException] = []
    real_read = regpack.gui.window.read

    def read_held_at_the_first_image(path, *, progress, cancel):  # type: ignore[no-untyped-def]
        def first_then_wait(event: Progress) -> None:
            progress(event)
            cancel.wait(30)  # the window's Cancel sets it; the real reader stops before the next image

        try:
            return real_read(path, progress=first_then_wait, cancel=cancel)
        except BaseException as e:
            raised.append(e)
            raise

    monkeypatch.setattr(regpack.gui.window, "read", read_held_at_the_first_image)
    shown: list[object] = []
    window.images_shown.connect(shown.append)
    window.bundle_loaded.connect(shown.append)
    assert window.open_bundle(synthetic_bundle)
    qtbot.waitUntil(lambda: window.progress.detail.text() == "reading 1 image…", timeout=30_000)
    assert window.progress.cancel_button.isVisible() and not window.open_action.isEnabled()
    assert not window.progress.bar.isVisible()  # a count, no busy bar animating while the read runs
    qtbot.keyClicks(window.search, "web")  # the window answers while the bundle is read
    assert window.proxy.rowCount() == 1
    window.search.clear()
    with qtbot.waitSignal(window.jobs.cancelled, timeout=5000):
        window.progress.cancel_button.click()
    # free again at once, on what was open before
    assert not window.busy() and window.open_action.isEnabled() and window.pack_action.isEnabled()
    assert not window.progress.isVisible()
    assert window.bundle is not None and window.bundle.root == sample_bundle and window.proxy.rowCount() == 4
    assert "cancelled" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.jobs.detached, timeout=30_000)  # the reading thread has ended ...
    assert len(raised) == 1 and isinstance(raised[0], Cancelled)  # ... stopped by the cancel, inside the read
    qtbot.wait(100)
    assert not shown and window.proxy.rowCount() == 4


def test_cancel_after_the_images_are_shown_brings_back_what_was_open(
    open_and_wait, qtbot, window: MainWindow, sample_bundle: Path, synthetic_bundle: Path, monkeypatch
) -> None:
    open_and_wait(window, sample_bundle)
    layers_before = window.blob_model.rowCount()
    release = parked_analysis(monkeypatch)
    loaded: list[object] = []
    window.bundle_loaded.connect(loaded.append)
    try:
        with qtbot.waitSignal(window.images_shown, timeout=30_000):
            window.open_bundle(synthetic_bundle)
        assert window.proxy.rowCount() == 40
        window.cancel_job()
        assert not window.busy() and window.open_action.isEnabled()
        assert window.bundle is not None and window.bundle.root == sample_bundle
        assert window.proxy.rowCount() == 4 and window.blob_model.rowCount() == layers_before
        assert window.analysis is not None and window.windowTitle() == sample_bundle.name
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.jobs.detached, timeout=30_000)
    qtbot.wait(100)
    assert not loaded and window.proxy.rowCount() == 4
    open_and_wait(window, synthetic_bundle)  # and the same bundle opens fine afterwards
    assert window.proxy.rowCount() == 40


def test_cancel_while_analysing_stops_the_analysis_and_keeps_the_open_bundle(
    open_and_wait, qtbot, window: MainWindow, sample_bundle: Path, synthetic_bundle: Path, monkeypatch
) -> None:
    open_and_wait(window, sample_bundle)
    layers_before = window.blob_model.rowCount()
    real = regpack.gui.window.analyse
    midway = threading.Event()  # the analysis has done 25 of the 40 images and waits for the user
    looks: list[int] = []
    outcome: list[object] = []

    class PressedMidway(threading.Event):
        """The window's cancel as the analysis sees it: at its 25th look it waits until the user has decided."""

        def __init__(self, window_cancel: threading.Event) -> None:
            super().__init__()
            self.window_cancel = window_cancel

        def is_set(self) -> bool:
            looks.append(1)
            if len(looks) == 25:
                midway.set()
                self.window_cancel.wait(30)
            return self.window_cancel.is_set()

    def analyse_watched(bundle, *, cancel):  # type: ignore[no-untyped-def]
        try:
            outcome.append(real(bundle, cancel=PressedMidway(cancel)))
        except BaseException as e:
            outcome.append(e)
            raise
        return outcome[-1]

    monkeypatch.setattr(regpack.gui.window, "analyse", analyse_watched)
    loaded: list[object] = []
    window.bundle_loaded.connect(loaded.append)
    assert window.open_bundle(synthetic_bundle)
    qtbot.waitUntil(midway.is_set, timeout=30_000)
    qtbot.waitUntil(lambda: window.progress.detail.text() == "analysing 40 images…", timeout=10_000)
    assert window.proxy.rowCount() == 40 and window.progress.cancel_button.isEnabled()
    with qtbot.waitSignal(window.jobs.cancelled, timeout=5000):
        window.progress.cancel_button.click()
    # free at once, on what was open before, every view usable
    assert not window.busy() and window.open_action.isEnabled() and window.pack_action.isEnabled()
    assert window.bundle is not None and window.bundle.root == sample_bundle and window.proxy.rowCount() == 4
    assert window.analysis is not None and window.blob_model.rowCount() == layers_before
    assert "cancelled" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.jobs.detached, timeout=30_000)  # the analysing thread has ended ...
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)  # ... stopped inside the analysis ...
    assert len(looks) == 25  # ... at the very image where it saw the cancel, not after the rest
    qtbot.wait(100)
    assert not loaded and window.proxy.rowCount() == 4
    window.search.setText("web")  # and the window answers
    assert window.proxy.rowCount() == 1


def test_cancelling_the_first_open_leaves_the_window_empty(
    qtbot, window: MainWindow, synthetic_bundle: Path, monkeypatch
) -> None:
    release = parked_analysis(monkeypatch)
    try:
        with qtbot.waitSignal(window.images_shown, timeout=30_000):
            window.open_bundle(synthetic_bundle)
        window.cancel_job()
        assert window.bundle is None and window.proxy.rowCount() == 0 and window.blob_model.rowCount() == 0
        assert window.summary_label.text() == NEXT_STEP and not window.pack_action.isEnabled()
        assert window.open_action.isEnabled()
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.jobs.detached, timeout=30_000)
