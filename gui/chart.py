"""The savings view: what the bundle takes as skopeo dirs versus packed, and who shares what per image."""

from __future__ import annotations

import heapq
from typing import Any

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSet,
    QChart,
    QChartView,
    QHorizontalStackedBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QMargins, QPoint, Qt
from PySide6.QtGui import QColor, QCursor, QFontMetrics, QGuiApplication, QMouseEvent, QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from regpack.analysis import Analysis, ImageStats
from regpack.gui.sizes import human_size, size_scale
from regpack.gui.theme import is_dark

TOP_IMAGES = 15
STORED_COLOR = QColor("#2f6fb3")
SAVED_COLOR = QColor("#f2b134")
UNIQUE_COLOR = QColor("#2f6fb3")
SHARED_COLOR = QColor("#8fbf5a")


def savings_text(analysis: Analysis) -> str:
    return (
        f"As skopeo dirs: <b>{human_size(analysis.dir_bytes)}</b> &nbsp;·&nbsp; "
        f"packed: <b>{human_size(analysis.packed_bytes)}</b> &nbsp;·&nbsp; "
        f"saved: <b>{human_size(analysis.saved_bytes)} ({analysis.saved_percent:.1f}%)</b>"
    )


def largest_images(analysis: Analysis, count: int = TOP_IMAGES) -> list[ImageStats]:
    """The ``count`` largest images, the larger first, then by name."""
    if not analysis.images:
        return []
    sizes = heapq.nlargest(count, (s.total_bytes for s in analysis.images))
    smallest = sizes[-1]  # only these sizes can make the list: names are looked at for those alone
    candidates = [s for s in analysis.images if s.total_bytes >= smallest]
    return sorted(candidates, key=lambda s: (-s.total_bytes, s.image.name))[:count]


LABEL_WIDTH = 170  # pixels for an image name beside its bar; longer names lose their middle
ROW_HEIGHT = 24  # pixels a bar needs for its label to be drawn at all (the savings tab scrolls when short)


def bar_labels(names: list[str], metrics: QFontMetrics, width: int = LABEL_WIDTH) -> list[str]:
    """One axis label per bar: the name elided in the middle, made unique.

    A category axis merges equal labels into one bar, so two long names that elide alike get an invisible
    difference (zero-width spaces): every image keeps its own bar.
    """
    labels: list[str] = []
    seen: set[str] = set()
    for name in names:
        label = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, width)
        while label in seen:
            label += "\u200b"
        seen.add(label)
        labels.append(label)
    return labels


class _Chart(QChartView):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        chart = QChart()
        chart.setTitle(title)
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(0)
        if is_dark(QGuiApplication.palette()):
            chart.setTheme(QChart.ChartTheme.ChartThemeDark)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)

    def reset(self) -> QChart:
        chart = self.chart()
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        return chart


class _NamedBarsChart(_Chart):
    """Horizontal bars with elided labels: hovering a label shows the full name it stands for."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.full_names: list[str] = []  # bottom to top, one per category
        self.setMouseTracking(True)

    def name_at(self, pos: QPoint) -> str | None:
        """The full name of the bar whose row (label or bar) is at ``pos`` (view coordinates)."""
        if not self.full_names:
            return None
        area = self.chart().plotArea()
        scene = self.mapToScene(pos)
        point = self.chart().mapFromScene(scene)
        if not area.top() <= point.y() <= area.bottom() or point.x() > area.right():
            return None
        row = int((area.bottom() - point.y()) / (area.height() / len(self.full_names)))
        return self.full_names[min(max(row, 0), len(self.full_names) - 1)]

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        pos = event.position().toPoint()
        if pos.x() < self.chart().plotArea().left():  # over the labels: bars have their own tooltip
            name = self.name_at(pos)
            if name is not None:
                QToolTip.showText(event.globalPosition().toPoint(), name, self)


class SavingsView(QWidget):
    """Summary line, a two-bar chart (skopeo dirs vs packed) and per-image unique/shared stacked bars."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Open a bundle to see what packing saves.")
        self.summary.setObjectName("savingsSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.totals = _Chart("Bundle size")
        self.totals.setMinimumHeight(190)
        self.totals.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.per_image = _NamedBarsChart(f"Largest images: unique vs shared bytes (top {TOP_IMAGES})")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.totals, 2)
        layout.addWidget(self.per_image, 5)
        self.analysis: Analysis | None = None
        self.bar_values: dict[str, list[float]] = {}  # set name -> raw byte values, for inspection
        self.bar_images: list[ImageStats] = []  # the per-image bars, bottom to top: bars are keyed by image
        self.bar_labels: list[str] = []
        self.hovered_text = ""  # what the last bar hovered showed: the full image name and the bytes

    def set_analysis(self, analysis: Analysis | None, *, pending: bool = False) -> None:
        """Show what ``analysis`` says packing saves; None: empty charts (``pending``: it is being counted)."""
        self.analysis = analysis
        self.bar_values = {}
        self.bar_images, self.bar_labels = [], []
        self.per_image.full_names = []
        totals = self.totals.reset()
        per_image = self.per_image.reset()
        if analysis is None:
            waiting = "Counting what packing saves…" if pending else "Open a bundle to see what packing saves."
            self.summary.setText(waiting)
            return
        self.summary.setText(savings_text(analysis))
        self.summary.setToolTip(
            f"{analysis.dir_bytes:,} bytes as skopeo dirs, {analysis.packed_bytes:,} bytes packed, "
            f"{analysis.saved_bytes:,} bytes saved"
        )
        divisor, unit = size_scale(max(analysis.dir_bytes, 1))
        self._fill(
            totals,
            ["registry (packed)", "skopeo dirs"],
            {
                "stored once": [analysis.packed_bytes, analysis.packed_bytes],
                "duplicates saved by packing": [0, analysis.saved_bytes],
            },
            {"stored once": STORED_COLOR, "duplicates saved by packing": SAVED_COLOR},
            divisor,
            unit,
        )
        top = list(reversed(largest_images(analysis)))  # horizontal bars draw the first category at the bottom
        if top:
            divisor, unit = size_scale(max(s.total_bytes for s in top) or 1)
            self.bar_images = top
            self.per_image.full_names = [s.image.name for s in top]
            self.bar_labels = bar_labels([s.image.name for s in top], QFontMetrics(self.per_image.font()))
            self._fill(
                per_image,
                self.bar_labels,
                {"unique": [s.unique_bytes for s in top], "shared": [s.shared_bytes for s in top]},
                {"unique": UNIQUE_COLOR, "shared": SHARED_COLOR},
                divisor,
                unit,
                names=[s.image.name for s in top],
            )
            self.per_image.setMinimumHeight(90 + ROW_HEIGHT * len(top))

    def _fill(
        self,
        chart: QChart,
        categories: list[str],
        sets: dict[str, list[int]],
        colors: dict[str, QColor],
        divisor: float,
        unit: str,
        names: list[str] | None = None,
    ) -> None:
        series = QHorizontalStackedBarSeries()
        series.setBarWidth(0.7)
        for name, values in sets.items():
            bar_set = QBarSet(name)
            bar_set.setColor(colors[name])
            bar_set.setBorderColor(colors[name].darker(120))
            bar_set.append([v / divisor for v in values])
            bar_set.hovered.connect(self._tooltip(name, names or categories, values))
            series.append(bar_set)
            self.bar_values.setdefault(name, []).extend(float(v) for v in values)
        chart.addSeries(series)
        y_axis = QBarCategoryAxis()
        y_axis.setTruncateLabels(False)  # they are elided in the middle already; Qt would cut their end
        y_axis.append(categories)
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(y_axis)
        x_axis = QValueAxis()
        x_axis.setTitleText(unit)
        x_axis.setLabelFormat("%.0f" if divisor == 1 else "%.1f")
        largest = max((sum(column) for column in zip(*sets.values(), strict=True)), default=0) / divisor
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(x_axis)
        x_axis.setRange(0.0, max(largest, 1.0))
        x_axis.applyNiceNumbers()

    @staticmethod
    def tooltip_text(full_name: str, set_name: str, value: int) -> str:
        return f"{full_name}\n{set_name}: {human_size(value)}"

    def _tooltip(self, name: str, full_names: list[str], values: list[int]) -> Any:
        def show(status: bool, index: int) -> None:
            if status and 0 <= index < len(values):
                self.hovered_text = self.tooltip_text(full_names[index], name, values[index])
                QToolTip.showText(QCursor.pos(), self.hovered_text)
            else:
                QToolTip.hideText()

        return show
