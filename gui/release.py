"""Comparing the open bundle with a base (the previous release, or an inventory of what a site holds): what a
patch carries, what it leaves to the base, and which base images hold each layer of the selected image."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from PySide6.QtCharts import QBarCategoryAxis, QBarSet, QChart, QHorizontalStackedBarSeries, QValueAxis
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QTableView,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from regpack import layouts
from regpack.analysis import Diff, Status, held_by_base, release_sizes
from regpack.bundle import Bundle, Image, Role
from regpack.digest import Digest
from regpack.errors import printable
from regpack.gui.chart import _Chart
from regpack.gui.models import OBJECT_ROLE, SORT_ROLE, Index, _mono, _RowsTableModel
from regpack.gui.sizes import human_size, size_scale
from regpack.patch import Inventory, image_users, inventory_of, load_inventory
from regpack.progress import ProgressCallback

SENT_COLOR = QColor("#2f6fb3")
LEFT_COLOR = QColor("#8fbf5a")


@dataclass(frozen=True, slots=True)
class Base:
    """What the base holds, and (for a bundle, not an inventory) the base images using each of its blobs."""

    path: Path
    inventory: Inventory
    holders: dict[Digest, tuple[str, ...]]
    from_inventory: bool


def load_base(path: Path, *, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> Base:
    """Read a base on a worker thread (no Qt here): an inventory .json, or any bundle folder or archive."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return Base(path, load_inventory(path), {}, True)
    bundle = layouts.read(path).check()
    users = image_users(bundle, bundle.blobs)
    return Base(path, inventory_of(bundle), {d: tuple(names) for d, names in users.items() if names}, False)


@dataclass(frozen=True, slots=True)
class BaseLayer:
    digest: Digest
    role: Role
    size: int
    in_base: bool
    holders: tuple[str, ...]


def base_layers(base: Base, bundle: Bundle, image: Image) -> list[BaseLayer]:
    """The config and layer blobs of ``image`` (every platform, each once), whether the base holds each (the
    rule core's diff counts by) and the base images that use it."""
    sizes = release_sizes(bundle)
    held = held_by_base(base.inventory.blobs, bundle)
    rows: list[BaseLayer] = []
    for d in dict.fromkeys(image.blob_digests()):
        blob = bundle.blobs.get(d)
        if blob is None:
            continue
        rows.append(BaseLayer(d, blob.role, sizes[d], d in held, base.holders.get(d, ()) if d in held else ()))
    return rows


class BaseLayersModel(_RowsTableModel):
    """One row per config or layer blob of the selected image: from the base or new, and who holds it there."""

    DIGEST, KIND, SIZE, FROM, HOLDERS = range(5)
    HEADERS = ("Blob", "Kind", "Size", "Comes from", "Held by")
    HEADER_TIPS: ClassVar[dict[int, str]] = {HOLDERS: "The images of the base that use this blob"}

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[BaseLayer] = []
        self._inventory = False
        self._mono = _mono()

    def set_rows(self, rows: list[BaseLayer], from_inventory: bool = False) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._inventory = from_inventory
        self.endResetModel()

    def row(self, row: int) -> BaseLayer:
        return self._rows[row]

    def _holders_text(self, row: BaseLayer) -> str:
        if not row.in_base:
            return ""
        if self._inventory:
            return "(an inventory does not name them)"
        if not row.holders:
            return "(no image of the base uses it)"
        return row.holders[0] + (f" and {len(row.holders) - 1} more" if len(row.holders) > 1 else "")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.DIGEST:
                return row.digest.short
            if col == self.KIND:
                return "config" if row.role is Role.CONFIG else "layer"
            if col == self.SIZE:
                return human_size(row.size)
            if col == self.FROM:
                return "the base" if row.in_base else "new: the patch carries it"
            return self._holders_text(row)
        if role == SORT_ROLE:
            return (str(row.digest), row.role.value, row.size, row.in_base, len(row.holders))[col]
        if role == OBJECT_ROLE:
            return row
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.DIGEST:
                return str(row.digest)
            if col == self.SIZE:
                return f"{row.size:,} bytes"
            if col == self.HOLDERS and row.holders:
                return "\n".join(row.holders[:30]) + (
                    f"\n… and {len(row.holders) - 30} more" if len(row.holders) > 30 else ""
                )
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.SIZE:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.FontRole and col == self.DIGEST:
            return self._mono
        return None


def diff_text(d: Diff, base: Base) -> str:
    counts = ", ".join(f"{d.count(s)} {s.value}" for s in Status)
    saved = 100.0 * (1 - d.patch_bytes / d.full_bytes) if d.full_bytes else 0.0
    what = "inventory" if base.from_inventory else "base"
    return (
        f"Compared with the {what} <b>{printable(base.path)}</b>: {counts}.<br>"
        f"Full bundle <b>{human_size(d.full_bytes)}</b> · whole-image differential "
        f"<b>{human_size(d.differential_bytes)}</b> · patch <b>{human_size(d.patch_bytes)}</b> "
        f"({saved:.1f}% less than the full bundle; {human_size(d.reused_bytes)} already in the base)"
    )


# The chart's bars, bottom to top, and how each way of shipping splits the release: sent, or left to the base.
SHIPPING = ("blob-level patch", "whole-image differential", "full bundle")


def composition(d: Diff) -> dict[str, list[int]]:
    """Bytes each way of shipping sends and leaves to the base, in SHIPPING order (core's totals only)."""
    sent = [d.patch_bytes, d.differential_bytes, d.full_bytes]
    return {"sent": sent, "left to the base": [max(d.full_bytes - s, 0) for s in sent]}


class ReleaseView(QWidget):
    """The "Base" tab: summary, the patch's composition, removed images, and the selected image's layers."""

    clear_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Compare with a base (Bundle > Compare with…) to see what a patch must carry.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.clear_button = QPushButton("Clear comparison")
        self.clear_button.clicked.connect(self.clear_requested)
        self.clear_button.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.clear_button, 0, Qt.AlignmentFlag.AlignTop)
        self.chart = _Chart("What each way of shipping sends")
        self.chart.setMinimumHeight(210)
        self.chart.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.removed_label = QLabel("Removed images")
        self.removed = QListWidget()
        self.removed.setMaximumHeight(64)
        self.layers_label = QLabel("Select an image to see which of its layers come from the base.")
        self.layers_label.setWordWrap(True)
        self.model = BaseLayersModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.chart, 3)
        layout.addWidget(self.removed_label)
        layout.addWidget(self.removed)
        layout.addWidget(self.layers_label)
        layout.addWidget(self.table, 3)
        self.base: Base | None = None
        self.diff: Diff | None = None
        self.bar_values: dict[str, list[int]] = {}  # set name -> bytes, in SHIPPING order, for inspection
        self.hovered_text = ""  # what the last bar hovered showed
        self.set_diff(None, None)

    def set_diff(self, base: Base | None, d: Diff | None) -> None:
        self.base, self.diff = base, d
        self.bar_values = {}
        chart = self.chart.reset()
        self.removed.clear()
        self.model.set_rows([])
        self.clear_button.setEnabled(d is not None)
        if base is None or d is None:
            self.summary.setText("Compare with a base (Bundle > Compare with…) to see what a patch must carry.")
            self.removed_label.setText("Removed images")
            self.layers_label.setText("Select an image to see which of its layers come from the base.")
            return
        self.summary.setText(diff_text(d, base))
        removed = [r for r in d.images if r.status is Status.REMOVED]
        self.removed_label.setText(f"Removed images: in the base, not in this bundle ({len(removed)})")
        for r in removed:
            self.removed.addItem(f"{r.name}  {r.old_digest.short if r.old_digest else ''}")
        self.bar_values = composition(d)
        self._fill(chart)

    def _fill(self, chart: QChart) -> None:
        assert self.diff is not None
        divisor, unit = size_scale(max(self.diff.full_bytes, 1))
        series = QHorizontalStackedBarSeries()
        series.setBarWidth(0.6)
        for (name, values), color in zip(self.bar_values.items(), (SENT_COLOR, LEFT_COLOR), strict=True):
            bar_set = QBarSet(name)
            bar_set.setColor(color)
            bar_set.setBorderColor(color.darker(120))
            bar_set.append([v / divisor for v in values])
            bar_set.hovered.connect(partial(self._hovered, name))
            series.append(bar_set)
        chart.addSeries(series)
        y_axis = QBarCategoryAxis()
        y_axis.setTruncateLabels(False)
        y_axis.append(list(SHIPPING))
        chart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(y_axis)
        x_axis = QValueAxis()
        x_axis.setTitleText(unit)
        x_axis.setLabelFormat("%.0f" if divisor == 1 else "%.1f")
        chart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(x_axis)
        x_axis.setRange(0.0, max(self.diff.full_bytes / divisor, 1.0))
        x_axis.applyNiceNumbers()

    def _hovered(self, name: str, status: bool, index: int) -> None:
        values = self.bar_values.get(name, [])
        if status and 0 <= index < len(values):
            self.hovered_text = f"{SHIPPING[index]}\n{name}: {human_size(values[index])} ({values[index]:,} bytes)"
            QToolTip.showText(QCursor.pos(), self.hovered_text)
        else:
            QToolTip.hideText()

    def set_image(self, bundle: Bundle | None, image: Image | None) -> None:
        if self.base is None or bundle is None or image is None:
            self.model.set_rows([])
            if self.base is not None:
                self.layers_label.setText("Select an image to see which of its layers come from the base.")
            return
        rows = base_layers(self.base, bundle, image)
        held = [r for r in rows if r.in_base]
        self.layers_label.setText(
            f"<b>{image.name}</b>: {len(held)} of {len(rows)} blob(s) come from the base "
            f"({human_size(sum(r.size for r in held))}); {len(rows) - len(held)} are new "
            f"({human_size(sum(r.size for r in rows if not r.in_base))})"
        )
        self.model.set_rows(rows, self.base.from_inventory)
        self.table.resizeColumnsToContents()
