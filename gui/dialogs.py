"""Dialogs: where to pack/unpack and how, the result summary, the progress panel, and the one error dialog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpacerItem,
    QVBoxLayout,
    QWidget,
)

from regpack.gui.sizes import human_duration, human_size
from regpack.gui.theme import set_text_color, status_colors
from regpack.jobs import JobResult
from regpack.progress import Estimate

PACK, UNPACK = "pack", "unpack"


@dataclass(frozen=True, slots=True)
class JobOptions:
    kind: str  # PACK or UNPACK
    source: Path
    dest: Path
    copy: bool  # False: hard links where possible
    verify: bool
    merge: bool = False  # pack: add into an existing registry storage, rewriting nothing there
    base: Path | None = None  # pack: a patch with only what this base (a bundle or an inventory .json) lacks


class JobDialog(QDialog):
    """Destination and mode for Pack or Unpack. Non-blocking: use ``open()`` and read ``options()``."""

    def __init__(
        self,
        kind: str,
        source: Path,
        suggested: Path,
        parent: QWidget | None = None,
        *,
        check: Callable[[JobOptions], str] | None = None,
        previous: JobOptions | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.source = source
        self.check = check  # the pre-check on OK (writable? enough space?): '' or why not
        verb = "Pack" if kind == PACK else "Unpack"
        self.setWindowTitle(f"{verb} bundle")
        what = (
            "Write every blob once into registry v2 storage (docker/registry/v2/...)."
            if kind == PACK
            else "Write one skopeo dir folder per image (<repository>:<tag>/)."
        )
        intro = QLabel(what)
        intro.setWordWrap(True)
        source_label = QLabel(str(source))
        source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.dest_edit = QLineEdit(str(suggested))
        self.dest_edit.setClearButtonEnabled(True)
        self.dest_edit.setPlaceholderText("a folder that does not exist yet")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        dest_row = QHBoxLayout()
        dest_row.addWidget(self.dest_edit, 1)
        dest_row.addWidget(browse)

        self.hardlink_radio = QRadioButton("Hard links (no data copied when on the same file system)")
        self.copy_radio = QRadioButton("Copy every blob")
        self.hardlink_radio.setChecked(True)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.hardlink_radio)
        self.mode_group.addButton(self.copy_radio)
        self.verify_check = QCheckBox("Verify the result afterwards (re-hash every blob)")
        self.merge_check = QCheckBox("Merge into an existing registry storage (add what is missing, rewrite nothing)")
        self.merge_check.setVisible(kind == PACK)
        self.base_check = QCheckBox("Only what the base lacks (a patch against a previous release or an inventory)")
        self.base_check.setVisible(kind == PACK)
        self.base_edit = QLineEdit()
        self.base_edit.setClearButtonEnabled(True)
        self.base_edit.setPlaceholderText("the bundle or registry storage the site has, or its inventory .json")
        self.base_edit.setEnabled(False)
        self.base_edit.setVisible(kind == PACK)

        self.warning = QLabel()
        set_text_color(self.warning, status_colors().error_text)
        self.warning.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Source:", source_label)
        form.addRow("Destination:", dest_row)
        mode = QVBoxLayout()
        mode.addWidget(self.hardlink_radio)
        mode.addWidget(self.copy_radio)
        form.addRow("Mode:", mode)
        form.addRow("", self.verify_check)
        form.addRow("", self.merge_check)
        if kind == PACK:
            form.addRow("", self.base_check)
            form.addRow("Base:", self.base_edit)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.addButton(verb, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.warning)
        layout.addWidget(self.buttons)
        if previous is not None:  # the choices of the last attempt, e.g. after it failed
            self.dest_edit.setText(str(previous.dest))
            self.copy_radio.setChecked(previous.copy)
            self.verify_check.setChecked(previous.verify)
            self.merge_check.setChecked(previous.merge)
            self.base_check.setChecked(previous.base is not None)
            self.base_edit.setText(str(previous.base or ""))
        self.dest_edit.textChanged.connect(self._validate)
        self.merge_check.toggled.connect(self._validate)
        self.base_check.toggled.connect(self.base_edit.setEnabled)
        self.base_check.toggled.connect(self._validate)
        self.base_edit.textChanged.connect(self._validate)
        self._validate()
        self.resize(640, self.sizeHint().height())

    def accept(self) -> None:
        problem = self.check(self.options()) if self.check is not None else ""
        if problem:  # stay open with everything the user chose
            self.warning.setText(problem)
            self.warning.setVisible(True)
            return
        super().accept()

    def _browse(self) -> None:
        start = str(Path(self.dest_edit.text()).parent) if self.dest_edit.text() else str(self.source.parent)
        chosen = QFileDialog.getExistingDirectory(self, "Choose the folder to write into", start)
        if chosen:
            # The chosen folder usually exists already: write a new folder inside it.
            name = Path(self.dest_edit.text()).name or f"{self.source.name}-{self.kind}ed"
            self.dest_edit.setText(str(Path(chosen) / name))

    def _validate(self) -> None:
        text = self.dest_edit.text().strip()
        problem = ""
        if not text:
            problem = "Choose a destination folder."
        else:
            dest = Path(text).expanduser()
            merge = self.merge_check.isChecked()
            if merge and dest.exists() and not (dest / "docker" / "registry" / "v2").is_dir():
                problem = f"{dest} is not a registry storage (no docker/registry/v2 in it); nothing to merge into."
            elif not merge and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
                problem = f"{dest} already exists and is not empty; choose a new folder"
                problem += " or merge into it." if (dest / "docker" / "registry" / "v2").is_dir() else "."
            elif dest.resolve() == self.source.resolve() or self.source.resolve() in dest.resolve().parents:
                problem = "The destination must not be inside the source bundle."
            elif self.kind == PACK and self.base_check.isChecked():
                base = self.base_edit.text().strip()
                if not base:
                    problem = "Choose the base: the bundle the site has, or its inventory (.json)."
                elif not Path(base).expanduser().exists():
                    problem = f"{Path(base).expanduser()} does not exist."
        self.warning.setText(problem)
        self.warning.setVisible(bool(problem))
        self.ok_button.setEnabled(not problem)

    def options(self) -> JobOptions:
        return JobOptions(
            self.kind,
            self.source,
            Path(self.dest_edit.text().strip()).expanduser(),
            self.copy_radio.isChecked(),
            self.verify_check.isChecked(),
            self.kind == PACK and self.merge_check.isChecked(),
            Path(self.base_edit.text().strip()).expanduser()
            if self.kind == PACK and self.base_check.isChecked()
            else None,
        )


def open_folder(path: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class ResultDialog(QDialog):
    """What a finished job did, with buttons to open the result in the file manager or in this window."""

    open_bundle = Signal(Path)

    def __init__(self, title: str, summary: str, dest: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dest = dest
        self.setWindowTitle(title)
        self.summary = QLabel(summary)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_folder_button = buttons.addButton("Open folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_bundle_button = buttons.addButton("Open in regpack", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_folder_button.clicked.connect(lambda: open_folder(self.dest))
        self.open_bundle_button.clicked.connect(self._open_bundle)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(buttons)

    def _open_bundle(self) -> None:
        self.open_bundle.emit(self.dest)
        self.accept()


def job_summary(kind: str, result: JobResult) -> str:
    """Text for a core.jobs.JobResult."""
    verb = "Packed" if kind == PACK else "Unpacked"
    lines = [
        f"{verb} {result.images} image{'s' if result.images != 1 else ''} into {result.dest}",
        f"{result.files} files, {human_size(result.bytes_total)} in total",
        f"hard-linked: {human_size(result.bytes_linked)}, copied: {human_size(result.bytes_copied)}",
        f"took {human_duration(result.seconds)}",
    ]
    if result.verified_files:
        lines.append(f"verified: {result.verified_files} blobs, {human_size(result.verified_bytes)}")
    if result.from_base:
        lines.append(f"patch: {result.from_base} blobs left to the base")
    lines.extend(f"moved tag {tag}" for tag in result.moved)
    return "\n".join(lines)


class ProgressPanel(QWidget):
    """Progress of the running job in the status bar: what, a bar, bytes/rate/time left, and Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setMaximumWidth(260)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)  # permille: byte counts overflow a 32-bit progress range
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(120)
        self.detail = QLabel()
        self.detail.setMinimumWidth(60)  # gives way before the bar and Cancel do
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addWidget(self.cancel_button)
        self.hide()

    def set_title(self, title: str) -> None:
        self.title.setText(self.title.fontMetrics().elidedText(title, Qt.TextElideMode.ElideMiddle, 250))
        self.title.setToolTip(title)

    def start(self, title: str, *, cancellable: bool = True) -> None:
        self.set_title(title)
        self.bar.setRange(0, 0)  # busy until the first progress arrives
        self.bar.setFormat("%p%")
        self.detail.setText("reading the bundle…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(cancellable)
        self.show()

    def update_progress(self, estimate: Estimate) -> None:
        if estimate.fraction >= 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(estimate.fraction * 1000))
            self.bar.setFormat(f"{estimate.fraction * 100:.0f}%")
        phase = estimate.progress.message
        self.detail.setText(f"{phase} · {estimate.text()}" if phase else estimate.text())

    def _cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.detail.setText("stopping…")
        self.cancel_requested.emit()

    def finish(self) -> None:
        self.hide()


class ErrorDialog(QMessageBox):
    """The one place errors reach the user: the title says what failed, the text names the file and reason."""

    def __init__(self, title: str, message: str, details: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIcon(QMessageBox.Icon.Critical)
        self.setWindowTitle(title)
        self.setText(title)
        self.setInformativeText(message)
        if details:
            self.setDetailedText(details)
        self.setStandardButtons(QMessageBox.StandardButton.Ok)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # QMessageBox sizes itself for short texts: a long title or path would wrap mid-word or be cut.
        # A spacer in its grid makes it as wide as the longest line needs (within reason).
        metrics = self.fontMetrics()
        longest = max((metrics.horizontalAdvance(line) for line in (title, *message.splitlines())), default=0)
        self.wanted_width = min(max(longest + 120, 420), 1000)
        layout = self.layout()
        if isinstance(layout, QGridLayout):
            spacer = QSpacerItem(self.wanted_width, 0, QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Expanding)
            layout.addItem(spacer, layout.rowCount(), 0, 1, layout.columnCount())
