"""The Push… dialog: where to (registry and namespace), how to log in (an auth file, or a user and password typed
here and never saved), TLS options, and a dry run that lists the destinations first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
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

from regpack.errors import RegpackError
from regpack.progress import ProgressCallback
from regpack.push import PushResult, Status, Target, plan_push, push, read_selected
from regpack.transfer import Access, typed_credentials


@dataclass(frozen=True)
class PushOptions:
    target: Target
    authfile: Path | None = None
    username: str = ""
    password: str = field(default="", repr=False)  # kept in memory for this push only
    tls_verify: bool = True
    cert_dir: Path | None = None
    dry_run: bool = False


class PushDialog(QDialog):
    def __init__(self, source: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Push to a registry")
        self.registry_edit = QLineEdit()
        self.registry_edit.setPlaceholderText("harbor.example.com/project")
        self.authfile_edit = QLineEdit()
        self.authfile_edit.setPlaceholderText("default: REGISTRY_AUTH_FILE or skopeo's auth.json")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_authfile)
        auth_row = QHBoxLayout()
        auth_row.addWidget(self.authfile_edit, 1)
        auth_row.addWidget(browse)
        self.user_edit = QLineEdit()
        self.user_edit.setPlaceholderText("or log in as (the password is not saved)")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.tls_check = QCheckBox("Verify the registry's TLS certificate")
        self.tls_check.setChecked(True)
        self.cert_edit = QLineEdit()
        self.cert_edit.setPlaceholderText("folder of CA certificates (*.crt), optional")
        self.dry_run_check = QCheckBox("Dry run: list what would be pushed where, contact nothing")
        self.dry_run_check.setChecked(True)
        self.problem = QLabel()
        self.problem.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Bundle:", QLabel(str(source)))
        form.addRow("Registry[/namespace]:", self.registry_edit)
        form.addRow("Auth file:", auth_row)
        form.addRow("User:", self.user_edit)
        form.addRow("Password:", self.password_edit)
        form.addRow("", self.tls_check)
        form.addRow("Certificates:", self.cert_edit)
        form.addRow("", self.dry_run_check)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.registry_edit, self.authfile_edit, self.user_edit, self.cert_edit):
            edit.textChanged.connect(self._check)
        self._check()

    def _browse_authfile(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Auth file", "", "JSON (*.json);;All files (*)")
        if name:
            self.authfile_edit.setText(name)

    def reason(self) -> str:
        """'' when the fields make a push, else what is wrong."""
        try:
            Target.parse(self.registry_edit.text())
        except RegpackError as e:
            return str(e) if self.registry_edit.text().strip() else "Give the registry (host[:port][/namespace])."
        authfile = self.authfile_edit.text().strip()
        if authfile and not Path(authfile).is_file():
            return f"No auth file at {authfile}."
        if authfile and self.user_edit.text().strip():
            return "Give an auth file or a user, not both."
        cert_dir = self.cert_edit.text().strip()
        if cert_dir and not Path(cert_dir).is_dir():
            return f"No certificate folder at {cert_dir}."
        return ""

    def _check(self) -> None:
        why = self.reason()
        self.problem.setText(why)
        self.ok_button.setEnabled(not why)

    def options(self) -> PushOptions:
        authfile = self.authfile_edit.text().strip()
        cert_dir = self.cert_edit.text().strip()
        return PushOptions(
            Target.parse(self.registry_edit.text()),
            Path(authfile) if authfile else None,
            self.user_edit.text().strip(),
            self.password_edit.text(),
            self.tls_check.isChecked(),
            Path(cert_dir) if cert_dir else None,
            self.dry_run_check.isChecked(),
        )


def push_job(source: Path, options: PushOptions) -> Callable[[ProgressCallback, threading.Event], PushResult]:
    """The core call the job controller runs: typed credentials go through a temporary 0600 auth file."""

    def run(progress: ProgressCallback, cancel: threading.Event) -> PushResult:
        def go(authfile: Path | None) -> PushResult:
            access = Access(authfile, options.tls_verify, options.cert_dir)
            return push(source, options.target, access=access, progress=progress, cancel=cancel)

        if options.username:
            with typed_credentials(options.target.host, options.username, options.password) as path:
                return go(path)
        return go(options.authfile)

    return run


def dry_run_text(source: Path, target: Target) -> str:
    """What a push would do: one line per image and destination (reads the bundle, contacts nothing)."""
    bundle, _ = read_selected(source, None)
    lines = [f"{image.name} -> {dest}" for image, dest in plan_push(bundle, target)]
    return "\n".join(lines)


def push_summary(result: PushResult) -> tuple[str, str]:
    """(the summary line, one line per image with its status and skopeo's reason)."""
    line = (
        f"{len(result.outcomes)} images: {result.count(Status.PUSHED)} pushed, "
        f"{result.count(Status.PRESENT)} already there, {result.count(Status.FAILED)} failed"
        + (f", {result.count(Status.NOT_ATTEMPTED)} not attempted" if result.count(Status.NOT_ATTEMPTED) else "")
    )
    details = "\n".join(
        f"{o.status.value}: {o.image} -> {o.destination}" + (f": {o.reason}" if o.reason else "")
        for o in result.outcomes
    )
    return line, details
