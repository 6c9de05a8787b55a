"""The Push… dialog: where to (registry and namespace), how to log in (an auth file, or a user and password typed
here and never saved), TLS options, and a dry run that lists the destinations first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QLabel, QLineEdit, QWidget

from regpack.errors import RegpackError
from regpack.gui.registry_form import RegistryDialog, optional_path
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


class PushDialog(RegistryDialog):
    def __init__(self, source: Path, parent: QWidget | None = None) -> None:
        super().__init__(
            "Push to a registry", typed_login=True, tls_text="Verify the registry's TLS certificate", parent=parent
        )
        self.registry_edit = QLineEdit()
        self.registry_edit.setPlaceholderText("harbor.example.com/project")
        self.dry_run_check = QCheckBox("Dry run: list what would be pushed where, contact nothing")
        self.dry_run_check.setChecked(True)
        self.form.addRow("Bundle:", QLabel(str(source)))
        self.form.addRow("Registry[/namespace]:", self.registry_edit)
        self.add_access_rows()
        self.form.addRow("", self.dry_run_check)
        self.finish(self.registry_edit)

    def reason(self) -> str:
        """'' when the fields make a push, else what is wrong."""
        try:
            Target.parse(self.registry_edit.text())
        except RegpackError as e:
            return str(e) if self.registry_edit.text().strip() else "Give the registry (host[:port][/namespace])."
        return self.access_reason()

    def options(self) -> PushOptions:
        assert self.user_edit is not None and self.password_edit is not None
        return PushOptions(
            Target.parse(self.registry_edit.text()),
            optional_path(self.authfile_edit),
            self.user_edit.text().strip(),
            self.password_edit.text(),
            self.tls_check.isChecked(),
            optional_path(self.cert_edit),
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
