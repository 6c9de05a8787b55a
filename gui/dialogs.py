"""Dialogs: where to pack/unpack and how, the result summary, the progress panel, and the one error dialog."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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

from regpack.archive import Compression, archive_format, check_archive_destination, parse_size
from regpack.errors import RegpackError
from regpack.gui.sizes import human_duration, human_size
from regpack.gui.theme import set_text_color, status_colors
from regpack.jobs import JobResult
from regpack.progress import Estimate

PACK, UNPACK = "pack", "unpack"
# What Pack writes, by the name's ending: a folder of registry storage, or that storage as one archive.
FOLDER, TAR, TAR_ZST = "folder", ".tar", ".tar.zst"
OUTPUT_LABELS = {FOLDER: "Folder", TAR: "Archive (.tar)", TAR_ZST: "Compressed archive (.tar.zst)"}
_ARCHIVE_ENDINGS = (".tar.zstd", ".tar.zst", ".tzst", ".tar")


def output_of(dest: Path | str) -> str:
    """FOLDER, TAR or TAR_ZST: what a destination name asks for (as ``regpack pack -o`` reads it)."""
    return {None: FOLDER, Compression.NONE: TAR, Compression.ZSTD: TAR_ZST}[archive_format(Path(dest))]


def with_output(dest: str, output: str) -> str:
    """``dest`` renamed for ``output``: the archive ending swapped, added or dropped."""
    stem = dest.rstrip("/")
    for ending in _ARCHIVE_ENDINGS:
        if stem.lower().endswith(ending):
            stem = stem[: -len(ending)]
            break
    return stem if output == FOLDER or not stem else stem + output


def split_text(size: int | None) -> str:
    """A split size as the user would type it (4G, 700M, or bytes)."""
    if not size:
        return ""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


@dataclass(frozen=True, slots=True)
class JobOptions:
    kind: str  # PACK or UNPACK
    source: Path
    dest: Path
    copy: bool  # False: hard links where possible
    verify: bool
    merge: bool = False  # pack: add into an existing registry storage, rewriting nothing there
    base: Path | None = None  # pack: a patch with only what this base (a bundle or an inventory .json) lacks
    split: int | None = None  # pack into an archive: parts of this many bytes (NAME.000, NAME.001, ...)

    @property
    def archive(self) -> bool:
        """True when Pack writes one archive (the destination ends in .tar or .tar.zst)."""
        return self.kind == PACK and archive_format(self.dest) is not None


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
        self.output_radios: dict[str, QRadioButton] = {}
        self.output_group = QButtonGroup(self)
        output_row = QHBoxLayout()
        for output, label in OUTPUT_LABELS.items() if kind == PACK else ():
            radio = QRadioButton(label)
            radio.setChecked(output == FOLDER)
            radio.toggled.connect(partial(self._output_toggled, output))
            self.output_group.addButton(radio)
            self.output_radios[output] = radio
            output_row.addWidget(radio)
        output_row.addStretch(1)
        self.split_edit = QLineEdit()
        self.split_edit.setClearButtonEnabled(True)
        self.split_edit.setPlaceholderText("one file; or parts of e.g. 4G, 700M")
        self.split_edit.setToolTip("Cut the archive into NAME.000, NAME.001, … of this size (cat joins them)")
        self.split_edit.setEnabled(False)
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
        if kind == PACK:
            form.addRow("Output:", output_row)
        form.addRow("Destination:", dest_row)
        if kind == PACK:
            form.addRow("Split into:", self.split_edit)
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
            if kind == PACK:
                self.output_radios[output_of(previous.dest)].setChecked(True)
                self.split_edit.setText(split_text(previous.split))
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
        self.split_edit.textChanged.connect(self._validate)
        self._validate()
        self.resize(640, self.sizeHint().height())

    def accept(self) -> None:
        problem = self.check(self.options()) if self.check is not None else ""
        if problem:  # stay open with everything the user chose
            self.warning.setText(problem)
            self.warning.setVisible(True)
            return
        super().accept()

    def output(self) -> str:
        """The output chosen: FOLDER, TAR or TAR_ZST (always FOLDER for Unpack)."""
        return next((o for o, radio in self.output_radios.items() if radio.isChecked()), FOLDER)

    def _output_toggled(self, output: str, checked: bool) -> None:
        if not checked:
            return
        archive = output != FOLDER
        text = self.dest_edit.text().strip()
        if text and output_of(text) != output:
            self.dest_edit.setText(with_output(text, output))
        self.dest_edit.setPlaceholderText("a new archive file" if archive else "a folder that does not exist yet")
        # Hard links, merging and patches write into a storage folder; an archive is always written whole.
        for widget in (self.hardlink_radio, self.copy_radio, self.merge_check, self.base_check):
            widget.setEnabled(not archive)
        self.base_edit.setEnabled(not archive and self.base_check.isChecked())
        self.split_edit.setEnabled(archive)
        self._validate()

    def split(self) -> int | None:
        """The split size typed (None: one file); ValueError naming what is wrong with it."""
        text = self.split_edit.text().strip()
        return parse_size(text) if text and self.output() != FOLDER else None

    def _browse(self) -> None:
        start = str(Path(self.dest_edit.text()).parent) if self.dest_edit.text() else str(self.source.parent)
        chosen = QFileDialog.getExistingDirectory(self, "Choose the folder to write into", start)
        if chosen:
            # The chosen folder usually exists already: write a new folder (or archive) inside it.
            name = Path(self.dest_edit.text()).name or with_output(f"{self.source.name}-{self.kind}ed", self.output())
            self.dest_edit.setText(str(Path(chosen) / name))

    def _validate(self) -> None:
        text = self.dest_edit.text().strip()
        problem = ""
        output = self.output()
        if not text:
            problem = "Choose a destination folder." if output == FOLDER else "Choose the archive's name."
        elif output != FOLDER:
            problem = self._archive_problem(Path(text).expanduser(), output)
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

    def _archive_problem(self, dest: Path, output: str) -> str:
        if output_of(dest) != output:
            return f"An archive's name ends in {output}."
        try:
            split = self.split()
        except ValueError as e:
            return f"{str(e)[:1].upper()}{str(e)[1:]}."  # "Not a size: ..." / "Split size must be at least ..."
        source = self.source.resolve()
        if source == dest.resolve() or source in dest.resolve().parents:
            return "The archive must not be written inside the source bundle."
        try:
            check_archive_destination(Path(os.path.abspath(dest)), split)
        except RegpackError as e:
            return f"{e}."
        return ""

    def options(self) -> JobOptions:
        archive = self.output() != FOLDER
        try:
            split = self.split()
        except ValueError:
            split = None
        return JobOptions(
            self.kind,
            self.source,
            Path(self.dest_edit.text().strip()).expanduser(),
            self.copy_radio.isChecked() and not archive,
            self.verify_check.isChecked(),
            self.kind == PACK and self.merge_check.isChecked() and not archive,
            Path(self.base_edit.text().strip()).expanduser()
            if self.kind == PACK and self.base_check.isChecked() and not archive
            else None,
            split,
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
        self.open_folder_button.clicked.connect(self._open_folder)
        self.open_bundle_button.clicked.connect(self._open_bundle)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(buttons)

    def _open_folder(self) -> None:
        open_folder(self.dest if self.dest.is_dir() else self.dest.parent)  # an archive: the folder it is in

    def _open_bundle(self) -> None:
        self.open_bundle.emit(self.dest)
        self.accept()


def job_summary(kind: str, result: JobResult) -> str:
    """Text for a core.jobs.JobResult."""
    verb = "Packed" if kind == PACK else "Unpacked"
    if result.archive is not None:
        return archive_summary(result)
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


def archive_summary(result: JobResult) -> str:
    """Text for a pack into an archive: the archive (or its parts), its size, its sha256 and the sidecar."""
    stats = result.archive
    assert stats is not None
    parts = stats.parts
    lines = [f"Packed {result.images} image{'s' if result.images != 1 else ''} into {result.dest}"]
    if len(parts) == 1:
        lines.append(f"archive: {parts[0].name}, {human_size(stats.archive_bytes)} ({stats.archive_bytes:,} bytes)")
        lines.append(f"sha256: {stats.sha256[0]}")
    else:  # a split archive may have hundreds of parts: their names' range; each sha256 is in the sidecar
        lines.append(
            f"archive: {len(parts)} parts ({parts[0].name} … {parts[-1].name}), "
            f"{human_size(stats.archive_bytes)} ({stats.archive_bytes:,} bytes) in total"
        )
    if stats.sidecar is not None:
        each = "" if len(parts) == 1 else "the sha256 of each part in "
        lines.append(f"sidecar: {each}{stats.sidecar.name} (sha256sum -c {stats.sidecar.name})")
    lines.append(f"{stats.files} files, {human_size(stats.bytes_total)} of blobs and links")
    lines.append(f"took {human_duration(result.seconds)}")
    if result.verified_files:
        lines.append(f"verified: {result.verified_files} blobs, {human_size(result.verified_bytes)}")
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
        self.bar.show()
        self.bar.setRange(0, 0)  # busy until the first progress arrives
        self.bar.setFormat("%p%")
        self.detail.setText("reading the bundle…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setVisible(cancellable)
        self.show()

    def update_progress(self, estimate: Estimate) -> None:
        self.bar.show()  # after a count without a total (a read), the bar of a phase that has one
        if estimate.fraction >= 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(estimate.fraction * 1000))
            self.bar.setFormat(f"{estimate.fraction * 100:.0f}%")
        phase = estimate.progress.message
        self.detail.setText(f"{phase} · {estimate.text()}" if phase else estimate.text())

    def show_activity(self, text: str) -> None:
        """Work counted without a known total ("reading 4,200 images…"): the count, and no bar. (A busy bar
        animates: its repaints take the interpreter lock from the thread doing the work, measured a fifth to
        a third longer for a read of 10,000 images.)"""
        self.bar.hide()
        self.detail.setText(text)

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
