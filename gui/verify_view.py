"""The Verify view: triage of a core.verify Report.

Per image: a sortable status (errors first), "problems only", the window's filter. Per blob: each broken blob
once with every image it breaks (one corrupted shared layer is one problem in seven images). Exports as JSON,
plain text or HTML, and says where the file went.
"""

from __future__ import annotations

import html
import json
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from regpack.errors import Severity
from regpack.gui.models import (
    BadBlob,
    BadBlobModel,
    VerifyFilterProxy,
    VerifyModel,
    bad_blobs,
    verdicts,
)
from regpack.gui.sizes import human_size
from regpack.gui.theme import set_text_color, status_colors
from regpack.verify import Report

EXPORT_FORMATS = {"json": "JSON (*.json)", "txt": "Text (*.txt)", "html": "HTML (*.html)"}


def _table(model: Any) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.verticalHeader().hide()
    table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def report_text(report: Report, blobs: list[BadBlob]) -> str:
    """A readable plain-text report: verdict, broken blobs with the images they break, then every image."""
    lines = [f"regpack verify: {report.root}", f"layout: {report.layout}", ""]
    errors = len(report.errors)
    lines.append(
        f"{'OK' if report.ok else 'FAILED'}: {len(report.images)} images, {report.files_hashed} blobs re-hashed "
        f"({human_size(report.bytes_hashed)}), {errors} error(s), {len(report.findings) - errors} warning(s)"
    )
    if blobs:
        lines += ["", f"Broken blobs ({len(blobs)}):"]
        for bad in blobs:
            lines.append(f"  {bad.digest or bad.path}: {bad.problem} — breaks {len(bad.images)} image(s)")
            lines.append(f"    {bad.message}")
            lines.append(f"    file: {bad.path}")
            lines += [f"    - {name}" for name in bad.images]
    lines += ["", "Images:"]
    for verdict in verdicts(report):
        lines.append(f"  {verdict.image or '(bundle)'}: {verdict.status}")
        for f in verdict.findings:
            lines.append(f"    {f.severity.label}: {f.where + ': ' if f.where else ''}{f.reason}")
    return "\n".join(lines) + "\n"


def report_html(report: Report, blobs: list[BadBlob]) -> str:
    esc = html.escape
    ok = report.ok
    rows = []
    for bad in blobs:
        rows.append(
            f"<tr><td><code>{esc(bad.digest or bad.path)}</code></td><td>{esc(bad.problem)}</td>"
            f"<td>{len(bad.images)}</td><td>{esc(', '.join(bad.images))}</td></tr>"
        )
    image_rows = []
    for verdict in verdicts(report):
        details = "<br>".join(
            esc(f"{f.severity.label}: {f.where + ': ' if f.where else ''}{f.reason}") for f in verdict.findings
        )
        image_rows.append(
            f"<tr class='{verdict.severity.value}'><td>{esc(verdict.image or '(bundle)')}</td>"
            f"<td>{esc(verdict.status)}</td><td>{details}</td></tr>"
        )
    blob_table = (
        "<h2>Broken blobs</h2><table><tr><th>Blob</th><th>Problem</th><th>Images</th><th>Breaks</th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else ""
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>regpack verify: {esc(str(report.root))}</title><style>"
        "body{font-family:sans-serif} table{border-collapse:collapse} td,th{border:1px solid #999;padding:2px 6px;"
        "text-align:left;vertical-align:top} tr.error td{background:#f8d0cc} tr.warning td{background:#fcefc7}"
        "</style></head><body>"
        f"<h1>{'OK' if ok else 'FAILED'}: {esc(str(report.root))}</h1>"
        f"<p>{esc(report.layout)} · {len(report.images)} images · {report.files_hashed} blobs re-hashed "
        f"({esc(human_size(report.bytes_hashed))}) · {len(report.errors)} error(s)</p>"
        + blob_table
        + "<h2>Images</h2><table><tr><th>Image</th><th>Status</th><th>Details</th></tr>"
        + "".join(image_rows)
        + "</table></body></html>\n"
    )


class VerifyView(QWidget):
    verify_requested = Signal()
    export_failed = Signal(str, str)  # title, message: shown by the window's error dialog
    exported = Signal(str)  # the file written
    blob_activated = Signal(object)  # BadBlob: the window shows it in the layers tree

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: Report | None = None
        self.summary = QLabel("Verify re-hashes every blob and checks every reference and link.")
        self.summary.setObjectName("verifySummary")
        self.summary.setWordWrap(True)
        self.verify_button = QPushButton("Verify now")
        self.verify_button.clicked.connect(self.verify_requested)
        self.export_button = QPushButton("Export report")
        self.export_button.setEnabled(False)
        menu = QMenu(self.export_button)
        for ext, label in EXPORT_FORMATS.items():
            menu.addAction(f"As {label.split(' ')[0]}…", partial(self._export_clicked, ext))
        self.export_button.setMenu(menu)
        self.problems_only = QCheckBox("Problems only")
        self.problems_only.setToolTip("Hide the images verify found nothing wrong with")

        self.model = VerifyModel(self)
        self.proxy = VerifyFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.problems_only.toggled.connect(self.proxy.set_problems_only)
        self.table = _table(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(VerifyModel.STATUS, Qt.SortOrder.DescendingOrder)  # errors first
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(VerifyModel.IMAGE, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(VerifyModel.IMAGE, 220)
        header.resizeSection(VerifyModel.STATUS, 150)

        self.blob_model = BadBlobModel(self)
        self.blob_table = _table(self.blob_model)
        self.blob_table.horizontalHeader().resizeSection(BadBlobModel.BLOB, 170)
        self.blob_table.horizontalHeader().resizeSection(BadBlobModel.PROBLEM, 130)
        self.blob_table.horizontalHeader().resizeSection(BadBlobModel.IMAGES, 60)
        self.blob_table.activated.connect(lambda index: self.blob_activated.emit(self.blob_model.blob(index.row())))

        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(self.table, "Images")
        self.views.addTab(self.blob_table, "Bad blobs")

        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.verify_button)
        buttons.addWidget(self.export_button)
        options = QHBoxLayout()
        options.addStretch(1)
        options.addWidget(self.problems_only)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addLayout(options)
        layout.addWidget(self.views, 1)

    def clear(self) -> None:
        self.report = None
        self.model.set_verdicts([])
        self.blob_model.set_blobs([])
        self.views.setTabText(1, "Bad blobs")
        self.export_button.setEnabled(False)
        self._set_summary("Verify re-hashes every blob and checks every reference and link.", "")

    def set_filter(self, text: str) -> None:
        self.proxy.set_search(text)

    def set_report(self, report: Report) -> None:
        self.report = report
        self.model.set_verdicts(verdicts(report))
        blobs = bad_blobs(report.findings)
        self.blob_model.set_blobs(blobs)
        self.views.setTabText(1, f"Bad blobs ({len(blobs)})" if blobs else "Bad blobs")
        self.export_button.setEnabled(True)
        errors = len(report.errors)
        warnings = len(report.findings) - errors
        rows = [self.model.verdict(r) for r in range(self.model.rowCount())]
        bad_images = sum(1 for v in rows if v.image is not None and v.severity is Severity.ERROR)
        hashed = (
            f" · {report.files_hashed} blobs, {human_size(report.bytes_hashed)} re-hashed"
            if report.files_hashed
            else ""
        )
        if report.ok:
            text = f"OK: {len(report.images)} images verified{hashed}"
            if warnings:
                text += f" · {warnings} warning{'s' if warnings != 1 else ''}"
            self._set_summary(text, "ok")
            return
        broken = [b for b in blobs if b.severity is Severity.ERROR]
        other = errors - sum(len(b.images) for b in broken)
        parts = []
        if broken:
            parts.append(f"{len(broken)} broken blob{'s' if len(broken) != 1 else ''}")
        if other > 0:
            parts.append(f"{other} other error{'s' if other != 1 else ''}")
        self._set_summary(
            f"{' and '.join(parts) or f'{errors} errors'} in {bad_images} of {len(report.images)} images{hashed}",
            "error",
        )
        if broken:
            self.views.setCurrentWidget(self.blob_table)

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

    def broken_layers(self) -> dict[str, str]:
        """Digest -> problem word, for the layers tree."""
        return {b.digest: b.problem for b in self.blob_model_rows() if b.digest and b.severity is Severity.ERROR}

    def blob_model_rows(self) -> list[BadBlob]:
        return [self.blob_model.blob(r) for r in range(self.blob_model.rowCount())]

    def export(self, path: Path) -> Path:
        """Write the report as JSON, text or HTML, chosen by the file's extension (JSON otherwise)."""
        if self.report is None:
            raise ValueError("no report to export")
        path = Path(path)
        ext = path.suffix.lower().lstrip(".")
        if ext in ("txt", "text"):
            text = report_text(self.report, self.blob_model_rows())
        elif ext in ("html", "htm"):
            text = report_html(self.report, self.blob_model_rows())
        else:
            doc = self.report.to_json()
            doc["bad_blobs"] = [
                {
                    "digest": b.digest,
                    "path": b.path,
                    "code": b.code.value,
                    "message": b.message,
                    "images": list(b.images),
                }
                for b in self.blob_model_rows()
            ]
            text = json.dumps(doc, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
        return path

    def export_json(self, path: Path) -> None:
        self.export(Path(path).with_suffix(".json") if Path(path).suffix != ".json" else Path(path))

    def _export_clicked(self, ext: str) -> None:
        if self.report is None:
            return
        root = Path(str(self.report.root))
        suggested = str(root.with_name(f"{root.name}-verify.{ext}"))
        chosen, _ = QFileDialog.getSaveFileName(self, "Export verify report", suggested, EXPORT_FORMATS[ext])
        if not chosen:
            return
        target = Path(chosen)
        if not target.suffix:
            target = target.with_suffix("." + ext)
        try:
            written = self.export(target)
        except OSError as e:
            self.export_failed.emit("Cannot export the verify report", f"{target}: {e.strerror or e}")
            return
        self.exported.emit(str(written))
