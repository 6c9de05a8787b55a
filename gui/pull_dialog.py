"""The Pull… dialog: a list of image references (or skopeo-sync YAML) fetched with skopeo into a new bundle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from regpack.progress import ProgressCallback
from regpack.pull import PullResult, pull
from regpack.transfer import Access


@dataclass(frozen=True)
class PullOptions:
    list_file: Path
    dest: Path
    pack: bool = True
    platform: str = "all"
    authfile: Path | None = None
    tls_verify: bool = True
    cert_dir: Path | None = None


def _with_browse(edit: QLineEdit, choose: Callable[[], str]) -> QHBoxLayout:
    button = QPushButton("Browse…")
    button.clicked.connect(lambda: (lambda name: edit.setText(name) if name else None)(choose()))
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class PullDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pull images into a bundle")
        self.list_edit = QLineEdit()
        self.list_edit.setPlaceholderText("a text file of references (# comments) or skopeo-sync YAML")
        self.dest_edit = QLineEdit()
        self.dest_edit.setPlaceholderText("the bundle folder to fill (created when missing)")
        self.pack_check = QCheckBox("Store as registry storage (packed: every blob once)")
        self.pack_check.setChecked(True)
        self.platform_edit = QLineEdit("all")
        self.authfile_edit = QLineEdit()
        self.authfile_edit.setPlaceholderText("default: REGISTRY_AUTH_FILE or skopeo's auth.json")
        self.tls_check = QCheckBox("Verify the registries' TLS certificates")
        self.tls_check.setChecked(True)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        form = QFormLayout()
        form.addRow(
            "Image list:",
            _with_browse(self.list_edit, lambda: QFileDialog.getOpenFileName(self, "Image list")[0]),
        )
        form.addRow(
            "Into:", _with_browse(self.dest_edit, lambda: QFileDialog.getExistingDirectory(self, "Bundle folder"))
        )
        form.addRow("", self.pack_check)
        form.addRow("Platform:", self.platform_edit)
        form.addRow(
            "Auth file:", _with_browse(self.authfile_edit, lambda: QFileDialog.getOpenFileName(self, "Auth file")[0])
        )
        form.addRow("", self.tls_check)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.list_edit, self.dest_edit, self.platform_edit, self.authfile_edit):
            edit.textChanged.connect(self._check)
        self._check()

    def reason(self) -> str:
        list_file = self.list_edit.text().strip()
        if not list_file or not Path(list_file).is_file():
            return "Choose the image list file." if not list_file else f"No file at {list_file}."
        dest = self.dest_edit.text().strip()
        if not dest:
            return "Choose the folder to fill."
        if Path(dest).exists() and not Path(dest).is_dir():
            return f"{dest} is not a folder."
        platform = self.platform_edit.text().strip()
        if platform != "all" and ("," in platform or len(platform.split("/")) not in (2, 3)):
            return "Platform: all, or one OS/ARCH[/VARIANT] such as linux/arm64."
        authfile = self.authfile_edit.text().strip()
        if authfile and not Path(authfile).is_file():
            return f"No auth file at {authfile}."
        return ""

    def _check(self) -> None:
        why = self.reason()
        self.problem.setText(why)
        self.ok_button.setEnabled(not why)

    def options(self) -> PullOptions:
        authfile = self.authfile_edit.text().strip()
        return PullOptions(
            Path(self.list_edit.text().strip()),
            Path(self.dest_edit.text().strip()),
            self.pack_check.isChecked(),
            self.platform_edit.text().strip(),
            Path(authfile) if authfile else None,
            self.tls_check.isChecked(),
        )


def pull_job(options: PullOptions) -> Callable[[ProgressCallback, threading.Event], PullResult]:
    def run(progress: ProgressCallback, cancel: threading.Event) -> PullResult:
        access = Access(options.authfile, options.tls_verify, options.cert_dir)
        return pull(
            options.list_file, options.dest, platform=options.platform, access=access, pack=options.pack,
            progress=progress, cancel=cancel,
        )  # fmt: skip

    return run


def pull_summary(result: PullResult) -> tuple[str, str]:
    line = (
        f"{len(result.outcomes)} images: {result.count('pulled')} pulled, {result.count('already there')} already "
        f"there, {result.count('failed')} failed"
    )
    details = "\n".join(
        f"{o.status}: {o.name} <- docker://{o.source}" + (f": {o.reason}" if o.reason else f" {o.digest}")
        for o in result.outcomes
    )
    return line, details
