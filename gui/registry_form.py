"""What the Push… and Pull… dialogs share: a form whose OK button is enabled only when the fields make a transfer
(a line under the form says what is wrong), and the registry access rows: an auth file, optionally a user and a
password typed here (never saved), TLS verification and a folder of certificates."""

from __future__ import annotations

from collections.abc import Callable
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


def with_browse(edit: QLineEdit, choose: Callable[[], str]) -> QHBoxLayout:
    """``edit`` and a Browse… button that fills it with what ``choose`` returns (nothing when cancelled)."""
    button = QPushButton("Browse…")
    button.clicked.connect(lambda: (lambda name: edit.setText(name) if name else None)(choose()))
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def optional_path(edit: QLineEdit) -> Path | None:
    text = edit.text().strip()
    return Path(text) if text else None


class RegistryDialog(QDialog):
    """A subclass builds its own rows into ``self.form``, calls ``add_access_rows`` where they belong, then
    ``finish`` with its own edits; its ``reason`` returns '' when the fields make a transfer."""

    def __init__(self, title: str, *, typed_login: bool, tls_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 100)  # the placeholders read whole
        self.form = QFormLayout()
        self.authfile_edit = QLineEdit()
        self.authfile_edit.setPlaceholderText("default: REGISTRY_AUTH_FILE or skopeo's auth.json")
        self.user_edit: QLineEdit | None = None
        self.password_edit: QLineEdit | None = None
        if typed_login:
            self.user_edit = QLineEdit()
            self.user_edit.setPlaceholderText("or log in as (the password is not saved)")
            self.password_edit = QLineEdit()
            self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.tls_check = QCheckBox(tls_text)
        self.tls_check.setChecked(True)
        self.cert_edit = QLineEdit()
        self.cert_edit.setPlaceholderText("folder of CA certificates (*.crt) and client keys, optional")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def add_access_rows(self) -> None:
        self.form.addRow(
            "Auth file:",
            with_browse(
                self.authfile_edit,
                lambda: QFileDialog.getOpenFileName(self, "Auth file", "", "JSON (*.json);;All files (*)")[0],
            ),
        )
        if self.user_edit is not None and self.password_edit is not None:
            self.form.addRow("User:", self.user_edit)
            self.form.addRow("Password:", self.password_edit)
        self.form.addRow("", self.tls_check)
        self.form.addRow(
            "Certificates:",
            with_browse(self.cert_edit, lambda: QFileDialog.getExistingDirectory(self, "Certificate folder")),
        )

    def finish(self, *edits: QLineEdit) -> None:
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (*edits, self.authfile_edit, self.user_edit, self.cert_edit):
            if edit is not None:
                edit.textChanged.connect(self._check)
        self._check()

    def reason(self) -> str:
        return self.access_reason()

    def access_reason(self) -> str:
        """What is wrong with the access rows, or ''."""
        authfile = self.authfile_edit.text().strip()
        if authfile and not Path(authfile).is_file():
            return f"No auth file at {authfile}."
        if authfile and self.user_edit is not None and self.user_edit.text().strip():
            return "Give an auth file or a user, not both."
        cert_dir = self.cert_edit.text().strip()
        if cert_dir and not Path(cert_dir).is_dir():
            return f"No certificate folder at {cert_dir}."
        return ""

    def _check(self) -> None:
        why = self.reason()
        self.problem.setText(why)
        self.ok_button.setEnabled(not why)
