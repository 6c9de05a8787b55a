"""The Pull… dialog: a list of image references (or skopeo-sync YAML) fetched with skopeo into a new bundle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QFileDialog, QLineEdit, QWidget

from regpack.gui.registry_form import RegistryDialog, optional_path, with_browse
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


class PullDialog(RegistryDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Pull images into a bundle",
            typed_login=False,
            tls_text="Verify the registries' TLS certificates",
            parent=parent,
        )
        self.list_edit = QLineEdit()
        self.list_edit.setPlaceholderText("a text file of references (# comments) or skopeo-sync YAML")
        self.dest_edit = QLineEdit()
        self.dest_edit.setPlaceholderText("the bundle folder to fill (created when missing)")
        self.pack_check = QCheckBox("Store as registry storage (packed: every blob once)")
        self.pack_check.setChecked(True)
        self.platform_edit = QLineEdit("all")
        self.form.addRow(
            "Image list:",
            with_browse(self.list_edit, lambda: QFileDialog.getOpenFileName(self, "Image list")[0]),
        )
        self.form.addRow(
            "Into:", with_browse(self.dest_edit, lambda: QFileDialog.getExistingDirectory(self, "Bundle folder"))
        )
        self.form.addRow("", self.pack_check)
        self.form.addRow("Platform:", self.platform_edit)
        self.add_access_rows()
        self.finish(self.list_edit, self.dest_edit, self.platform_edit)

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
        return self.access_reason()

    def options(self) -> PullOptions:
        return PullOptions(
            Path(self.list_edit.text().strip()),
            Path(self.dest_edit.text().strip()),
            self.pack_check.isChecked(),
            self.platform_edit.text().strip(),
            optional_path(self.authfile_edit),
            self.tls_check.isChecked(),
            optional_path(self.cert_edit),
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
