"""The savings view: what the bundle takes as skopeo dirs versus packed, and who shares what per image."""

from __future__ import annotations

from typing import Any

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSet,
    QChart,
    QChartView,
    QHorizontalStackedBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QMargins, Qt
from PySide6.QtGui import QColor, QCursor, QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from regpack.analysis import Analysis, ImageStats
from regpack.gui.sizes import human_size, size_scale

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
    return sorted(analysis.images, key=lambda s: (-s.total_bytes, s.image.name))[:count]


def _short_name(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


class _Chart(QChartView):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        chart = QChart()
        chart.setTitle(title)
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(0)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)

    def reset(self) -> QChart:
        chart = self.chart()
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        return chart


class SavingsView(QWidget):
    """Summary line, a two-bar chart (skopeo dirs vs packed) and per-image unique/shared stacked bars."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Open a bundle to see what packing saves.")
        self.summary.setObjectName("savingsSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.totals = _Chart("Bundle size")
        self.totals.setMinimumHeight(210)
        self.totals.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.per_image = _Chart(f"Largest images: unique vs shared bytes (top {TOP_IMAGES})")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.totals, 2)
        layout.addWidget(self.per_image, 5)
        self.analysis: Analysis | None = None
        self.bar_values: dict[str, list[float]] = {}  # set name -> raw byte values, for inspection

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.analysis = analysis
        self.bar_values = {}
        totals = self.totals.reset()
        per_image = self.per_image.reset()
        if analysis is None:
            self.summary.setText("Open a bundle to see what packing saves.")
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
            self._fill(
                per_image,
                [_short_name(s.image.name) for s in top],
                {"unique": [s.unique_bytes for s in top], "shared": [s.shared_bytes for s in top]},
                {"unique": UNIQUE_COLOR, "shared": SHARED_COLOR},
                divisor,
                unit,
            )
            self.per_image.setMinimumHeight(min(60 + 22 * len(top), 420))

    def _fill(
        self,
        chart: QChart,
        categories: list[str],
        sets: dict[str, list[int]],
        colors: dict[str, QColor],
        divisor: float,
        unit: str,
    ) -> None:
        series = QHorizontalStackedBarSeries()
        series.setBarWidth(0.7)
        for name, values in sets.items():
            bar_set = QBarSet(name)
            bar_set.setColor(colors[name])
            bar_set.setBorderColor(colors[name].darker(120))
            bar_set.append([v / divisor for v in values])
            bar_set.hovered.connect(self._tooltip(name, categories, values))
            series.append(bar_set)
            self.bar_values.setdefault(name, []).extend(float(v) for v in values)
        chart.addSeries(series)
        y_axis = QBarCategoryAxis()
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
    def _tooltip(name: str, categories: list[str], values: list[int]) -> Any:
        def show(status: bool, index: int) -> None:
            if status and 0 <= index < len(values):
                QToolTip.showText(
                    QCursor.pos(),
                    f"{categories[index]}\n{name}: {human_size(values[index])}",
                )
            else:
                QToolTip.hideText()

        return show
