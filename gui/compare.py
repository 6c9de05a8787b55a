"""Two selected images side by side: what they share and what each adds ("what does this patch share with
the base image")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTableView, QVBoxLayout, QWidget

from regpack.analysis import Comparison
from regpack.bundle import Blob, Role
from regpack.gui.models import OBJECT_ROLE, SORT_ROLE, Index, _mono, _RowsTableModel
from regpack.gui.sizes import human_size

_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


@dataclass(frozen=True, slots=True)
class CompareRow:
    blob: Blob
    where: str  # "both", "first", "second"


class CompareModel(_RowsTableModel):
    """One row per blob of either image: shared ones first, then the first image's own, then the second's."""

    DIGEST, KIND, SIZE, FIRST, SECOND = range(5)
    HEADERS = ("Blob", "Kind", "Size", "In first", "In second")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[CompareRow] = []
        self._names = ("First", "Second")
        self._mono = _mono()

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.beginResetModel()
        self._rows = []
        if comparison is not None:
            self._names = (comparison.first.name, comparison.second.name)
            self._rows += [CompareRow(b, "both") for b in comparison.shared]
            self._rows += [CompareRow(b, "first") for b in comparison.only_first]
            self._rows += [CompareRow(b, "second") for b in comparison.only_second]
        self.endResetModel()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, self.FIRST, self.SECOND)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and section in (self.FIRST, self.SECOND) and self._rows:
            name = self._names[section - self.FIRST]
            if role == Qt.ItemDataRole.ToolTipRole:
                return name
            if role == Qt.ItemDataRole.DisplayRole:
                short = name.rsplit("/", 1)[-1]
                return "in " + (short if len(short) <= 24 else short[:11] + "…" + short[-12:])
        return super().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        blob, col = row.blob, index.column()
        in_first, in_second = row.where in ("both", "first"), row.where in ("both", "second")
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.DIGEST:
                return blob.digest.short
            if col == self.KIND:
                return "config" if blob.role is Role.CONFIG else "layer"
            if col == self.SIZE:
                return human_size(blob.size)
            return "✓" if (in_first if col == self.FIRST else in_second) else ""
        if role == SORT_ROLE:
            return (str(blob.digest), blob.role.value, blob.size, in_first, in_second)[col]
        if role == OBJECT_ROLE:
            return row
        if role == Qt.ItemDataRole.ToolTipRole and col == self.DIGEST:
            return f"{blob.digest}\n{blob.media_type}"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if col == self.SIZE:
                return _RIGHT
            if col in (self.FIRST, self.SECOND):
                return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.FontRole and col == self.DIGEST:
            return self._mono
        return None


def comparison_text(c: Comparison) -> str:
    return (
        f"<b>{c.first.name}</b> and <b>{c.second.name}</b> share {len(c.shared)} blob(s), "
        f"<b>{human_size(c.shared_bytes)}</b>.<br>"
        f"{c.first.name} adds {len(c.only_first)} ({human_size(c.first_adds_bytes)}); "
        f"{c.second.name} adds {len(c.only_second)} ({human_size(c.second_adds_bytes)})."
    )


class CompareView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("Select two images to see what they share and what each adds.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model = CompareModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        self.comparison: Comparison | None = None

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.comparison = comparison
        self.model.set_comparison(comparison)
        if comparison is None:
            self.summary.setText("Select two images to see what they share and what each adds.")
            return
        self.summary.setText(comparison_text(comparison))
        header = self.table.horizontalHeader()
        self.table.resizeColumnsToContents()
        header.resizeSection(CompareModel.DIGEST, max(header.sectionSize(CompareModel.DIGEST), 120))
