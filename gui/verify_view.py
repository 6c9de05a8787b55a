"""The Verify view: per-image status of a core.verify Report (red rows for errors), exportable as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from regpack.errors import Severity
from regpack.gui.models import VerifyModel, verdicts
from regpack.gui.sizes import human_size
from regpack.gui.theme import set_text_color, status_colors


class VerifyView(QWidget):
    verify_requested = Signal()
    export_failed = Signal(str, str)  # title, message: shown by the window's error dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: Report | None = None
        self.summary = QLabel("Verify re-hashes every blob and checks every reference and link.")
        self.summary.setObjectName("verifySummary")
        self.summary.setWordWrap(True)
        self.verify_button = QPushButton("Verify now")
        self.verify_button.clicked.connect(self.verify_requested)
        self.export_button = QPushButton("Export report…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_clicked)
        self.model = VerifyModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(VerifyModel.IMAGE, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(VerifyModel.IMAGE, 200)
        header.resizeSection(VerifyModel.STATUS, 150)
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.verify_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)

    def clear(self) -> None:
        self.report = None
        self.model.set_verdicts([])
        self.export_button.setEnabled(False)
        self._set_summary("Verify re-hashes every blob and checks every reference and link.", "")

    def set_report(self, report: Report) -> None:
        self.report = report
        self.model.set_verdicts(verdicts(report))
        self.export_button.setEnabled(True)
        errors = len(report.errors)
        warnings = len(report.findings) - errors
        bad = sum(1 for severity in report.statuses().values() if severity is Severity.ERROR)
        hashed = f" · {human_size(report.bytes_hashed)} hashed" if report.bytes_hashed else ""
        if report.ok:
            text = f"OK: {len(report.images)} images verified{hashed}"
            if warnings:
                text += f" · {warnings} warning{'s' if warnings != 1 else ''}"
            self._set_summary(text, "ok")
        else:
            self._set_summary(
                f"{errors} error{'s' if errors != 1 else ''} in {bad} of {self.model.rowCount()} rows"
                f"{hashed} — red rows need attention",
                "error",
            )

    def _set_summary(self, text: str, state: str) -> None:
        self.summary.setText(text)
        self.summary.setProperty("state", state)
        colors = status_colors()
        if state:
            set_text_color(self.summary, colors.ok_text if state == "ok" else colors.error_text)
        else:
            self.summary.setPalette(self.palette())
        self.summary.style().unpolish(self.summary)
        self.summary.style().polish(self.summary)

    def image_statuses(self) -> dict[str | None, Severity]:
        """Status per image of the shown report (to colour the images table)."""
        return {} if self.report is None else self.report.statuses()

    def export_json(self, path: Path) -> None:
        if self.report is None:
            raise ValueError("no report to export")
        Path(path).write_text(json.dumps(self.report.to_json(), indent=2) + "\n", encoding="utf-8")

    def _export_clicked(self) -> None:
        if self.report is None:
            return
        suggested = str(Path(str(self.report.root)).with_name(Path(str(self.report.root)).name + "-verify.json"))
        chosen, _ = QFileDialog.getSaveFileName(self, "Export verify report", suggested, "JSON (*.json)")
        if not chosen:
            return
        try:
            self.export_json(Path(chosen))
        except OSError as e:
            self.export_failed.emit("Cannot export the verify report", f"{chosen}: {e.strerror or e}")
