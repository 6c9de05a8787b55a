"""What the user sees: colours readable on dark and light palettes, chart bars per image, columns sized."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from regpack.analysis import analyse
from regpack.gui.assets import style_sheet
from regpack.gui.chart import SavingsView
from regpack.gui.models import ImageTableModel
from regpack.gui.theme import contrast, dark_palette, fix_alternate_base, status_colors
from regpack.layouts import read
from tests.support import ocibuild as ob


@pytest.fixture(params=["light", "dark"])
def palette(request: pytest.FixtureRequest, qapp: QApplication):  # type: ignore[no-untyped-def]
    saved_palette, saved_sheet = qapp.palette(), qapp.styleSheet()
    chosen = dark_palette() if request.param == "dark" else qapp.style().standardPalette()
    qapp.setPalette(fix_alternate_base(chosen))
    qapp.setStyleSheet(style_sheet())
    yield qapp.palette()
    qapp.setPalette(saved_palette)
    qapp.setStyleSheet(saved_sheet)


def test_alternate_rows_are_readable_and_visible(palette: QPalette, open_and_wait, qtbot, synthetic_bundle) -> None:
    from regpack.gui.window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.resize(1300, 800)
    open_and_wait(window, synthetic_bundle)
    window.main_splitter.setSizes([900, 400])
    window.table.clearSelection()
    image = window.table.viewport().grab().toImage()
    row_height = window.table.rowHeight(0)
    x = window.table.columnViewportPosition(ImageTableModel.LAYERS) + 3  # right-aligned numbers: no text here
    assert 0 < x < image.width()
    even, odd = QColor(image.pixel(x, row_height // 2)), QColor(image.pixel(x, row_height + row_height // 2))
    text = palette.color(QPalette.ColorRole.Text)
    assert even != odd  # the alternation shows
    assert contrast(odd, text) >= 4.5 and contrast(even, text) >= 4.5, (odd.name(), even.name(), text.name())


def test_status_colours_are_readable(palette: QPalette) -> None:
    colors = status_colors(palette)
    assert contrast(colors.error_background, colors.error_text) >= 4.5
    assert contrast(colors.warning_background, colors.warning_text) >= 4.5
    window_colour = palette.color(QPalette.ColorRole.Window)
    assert contrast(colors.error_text, window_colour) >= 3 and contrast(colors.ok_text, window_colour) >= 3
    assert contrast(colors.marked_background, palette.color(QPalette.ColorRole.Text)) >= 4.5


def test_chart_keeps_two_images_whose_names_end_alike(qtbot, tmp_path: Path) -> None:
    long_a = "platform/control-plane/kube-apiserver-for-the-cluster:v1.29.3"
    long_b = "platform/control-plane/kube-scheduler-for-the-cluster:v1.29.3"
    refs = {
        long_a: ob.image([ob.layer(ob.text_files("api", 4, 40_000))]),
        long_b: ob.image([ob.layer(ob.text_files("sched", 2, 30_000))]),
        "small:1": ob.image([ob.layer(ob.text_files("small", 1, 100))]),
    }
    bundle = read(ob.write_dir_bundle(tmp_path / "b", refs))
    view = SavingsView()
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    view.set_analysis(analyse(bundle))
    names = [s.image.name for s in view.bar_images]
    assert names == ["small:1", long_b, long_a]  # bottom to top: the largest on top, every image its own bar
    assert len(set(view.bar_labels)) == 3  # a category axis would merge equal labels into one bar
    axis = next(a for a in view.per_image.chart().axes() if a.orientation() == Qt.Orientation.Vertical)
    assert len(axis.categories()) == 3
    for label, name in zip(view.bar_labels, names, strict=True):
        assert len(label) < len(name) or label == name
        if label != name:
            assert "…" in label and label.rstrip("\u200b").endswith(name[-4:])  # elided in the middle
    # hovering a label names the image in full
    chart = view.per_image.chart()
    area = chart.plotArea()
    top_row = view.per_image.mapFromScene(chart.mapToScene(area.left() - 20, area.top() + 5))
    assert view.per_image.name_at(QPoint(top_row.x(), top_row.y())) == long_a
    assert view.tooltip_text(long_a, "unique", 123).startswith(long_a)


def test_tags_are_kept_whole_and_names_elide_in_the_middle(open_and_wait, window, tmp_path: Path) -> None:
    tag = "v2024.11.3-rc1-amd64"
    refs = {
        f"team/a-very-long-repository-name-for-service-number-{i}:{tag}": ob.image(
            [ob.layer(ob.text_files(f"s{i}", 1, 200))]
        )
        for i in range(3)
    }
    open_and_wait(window, ob.write_dir_bundle(tmp_path / "b", refs))
    header = window.table.horizontalHeader()
    metrics = window.table.fontMetrics()
    assert header.sectionSize(ImageTableModel.TAG) >= metrics.horizontalAdvance(tag)
    assert window.table.textElideMode() == Qt.TextElideMode.ElideMiddle
