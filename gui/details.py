"""Details of the selected image: config highlights, its layers and the manifest as pretty JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from regpack.analysis import Analysis, BlobUsage
from regpack.bundle import Bundle, Image
from regpack.digest import Digest
from regpack.errors import RegpackError
from regpack.gui.models import LayerRow, LayersModel, kind_text, usage_by_digest
from regpack.gui.sizes import human_size
from regpack.layouts import readable
from regpack.manifest import Manifest

MAX_JSON_BYTES = 4 * 1024 * 1024  # manifests and configs larger than this are not shown


def read_json_file(path: Path | None) -> tuple[Any, bytes, str]:
    """(parsed document or None, raw bytes, problem text) of a small JSON file; never raises."""
    if path is None:
        return None, b"", "file is not in the bundle"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        return None, b"", f"{path}: {e.strerror or e}"
    if len(data) > MAX_JSON_BYTES:
        return None, b"", f"{path}: larger than {MAX_JSON_BYTES} bytes, not shown"
    try:
        return json.loads(data), data, ""
    except ValueError as e:
        return None, data, f"{path}: not valid JSON ({e})"


def pretty_json(data: bytes, doc: Any) -> str:
    if doc is None:
        return data.decode("utf-8", "replace")
    return json.dumps(doc, indent=2, ensure_ascii=False)


def config_highlights(doc: Any) -> dict[str, str]:
    """The config fields a release engineer looks at first, as display text."""
    if not isinstance(doc, dict):
        return {}
    raw_cfg = doc.get("config")
    cfg: dict[str, Any] = raw_cfg if isinstance(raw_cfg, dict) else {}
    platform = "/".join(str(p) for p in (doc.get("os"), doc.get("architecture"), doc.get("variant")) if p)

    def command(value: Any) -> str:
        if isinstance(value, list):
            return " ".join(json.dumps(v) if " " in str(v) else str(v) for v in value)
        return str(value) if value else ""

    raw_env, raw_labels = cfg.get("Env"), cfg.get("Labels")
    env: list[Any] = raw_env if isinstance(raw_env, list) else []
    labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
    return {
        "Created": str(doc.get("created", "")),
        "Platform": platform,
        "Entrypoint": command(cfg.get("Entrypoint")),
        "Cmd": command(cfg.get("Cmd")),
        "Working dir": str(cfg.get("WorkingDir") or ""),
        "User": str(cfg.get("User") or ""),
        "Env": "\n".join(str(e) for e in env),
        "Labels": "\n".join(f"{k}={v}" for k, v in labels.items()),
    }


class DetailsView(QWidget):
    layer_users_requested = Signal(str)  # a layer digest: show every image that uses it
    FIELDS = ("Created", "Platform", "Entrypoint", "Cmd", "Working dir", "User", "Env", "Labels")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bundle: Bundle | None = None
        self.image: Image | None = None
        self._usage: dict[Digest, BlobUsage] = {}
        self._analysis: Analysis | None = None

        self.header = QLabel("Select an image to see its details.")
        self.header.setObjectName("detailsHeader")
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.header.setWordWrap(True)
        # Long names and digests wrap or clip here; they must never widen the panel and move the splitter.
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.header.setMinimumWidth(100)
        self.platform_box = QComboBox()
        self.platform_box.currentIndexChanged.connect(self._show_platform)
        self.platform_label = QLabel("Platform manifest:")
        top = QHBoxLayout()
        top.addWidget(self.platform_label)
        top.addWidget(self.platform_box, 1)

        form_widget = QWidget()
        self.form = QFormLayout(form_widget)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.values: dict[str, QLabel] = {}
        for name in self.FIELDS:
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            # A long value without spaces (a PATH, a digest) must not widen the panel: it is cut at the
            # panel's edge instead, whole in the tooltip.
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(60)
            self.values[name] = label
            self.form.addRow(name + ":", label)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for name in ("Entrypoint", "Cmd", "Env"):
            self.values[name].setFont(mono)

        self.layers = LayersModel(self)
        self.layers_view = QTableView()
        self.layers_view.setModel(self.layers)
        self.layers_view.verticalHeader().hide()
        self.layers_view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.layers_view.horizontalHeader().setStretchLastSection(True)
        self.layers_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.layers_view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.show_users_action = QAction("Show the images using this layer", self.layers_view)
        self.show_users_action.triggered.connect(self._show_users)
        self.copy_layer_action = QAction("Copy full digest", self.layers_view)
        self.copy_layer_action.triggered.connect(self._copy_layer)
        self.layers_view.addAction(self.show_users_action)
        self.layers_view.addAction(self.copy_layer_action)
        self.layers_view.doubleClicked.connect(self._show_users)

        self.manifest_text = QPlainTextEdit()
        self.manifest_text.setObjectName("manifestText")
        self.manifest_text.setReadOnly(True)
        self.manifest_text.setFont(mono)
        self.manifest_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)

        self.tabs = QTabWidget()
        self.tabs.addTab(form_widget, "Config")
        self.tabs.addTab(self.layers_view, "Layers")
        self.tabs.addTab(self.manifest_text, "Manifest")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.header)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self.set_image(None, None, None)

    def current_layer(self) -> LayerRow | None:
        index = self.layers_view.currentIndex()
        return self.layers.rows()[index.row()] if index.isValid() else None

    def _show_users(self) -> None:
        row = self.current_layer()
        if row is not None:
            self.layer_users_requested.emit(row.digest)

    def _copy_layer(self) -> None:
        row = self.current_layer()
        if row is not None:
            QGuiApplication.clipboard().setText(row.digest)

    def set_image(self, bundle: Bundle | None, analysis: Analysis | None, image: Image | None) -> None:
        self.bundle = bundle
        self.image = image
        if analysis is not self._analysis:
            self._analysis = analysis
            self._usage = usage_by_digest(analysis)
        self.platform_box.blockSignals(True)
        self.platform_box.clear()
        if image is not None and image.is_list:
            for child in image.children:
                self.platform_box.addItem(self._platform_of(image, child), child)
        self.platform_box.blockSignals(False)
        self.platform_box.setVisible(bool(image is not None and image.children))
        self.platform_label.setVisible(self.platform_box.isVisible())
        if image is None:
            self.header.setText("Select an image to see its details.")
            self.manifest_text.clear()
            self.layers.set_manifest(None)
            for label in self.values.values():
                label.clear()
            return
        stats = analysis.stats_for(image) if analysis is not None else None
        size = f" · {human_size(stats.total_bytes)}" if stats is not None else ""
        self.header.setText(f"{image.name}\n{kind_text(image)}{size}\n{image.digest}")
        self.header.setToolTip(str(image.folder) if image.folder is not None else "")
        if image.is_list and image.children:
            self._show_platform(0)
        else:
            self._show_manifest(image.manifest, image.manifest)

    @staticmethod
    def _platform_of(image: Image, child: Manifest) -> str:
        for desc in image.manifest.children:
            if desc.digest == child.digest and desc.platform is not None:
                return f"{desc.platform}  ({child.digest.short})"
        return child.digest.short

    def _show_platform(self, row: int) -> None:
        if self.image is None or not 0 <= row < len(self.image.children):
            return
        self._show_manifest(self.image.manifest, self.image.children[row])

    def _locate(self, digest: Digest) -> Path | None:
        location: str | None = None
        if self.image is not None and digest in self.image.locations:
            location = self.image.locations[digest]
        elif self.bundle is not None and (blob := self.bundle.blobs.get(digest)) is not None:
            location = blob.file
        if location is None or self.bundle is None:
            return None if location is None else Path(location)
        try:
            return Path(readable(self.bundle, location))  # an archive's member, written out on first use
        except (OSError, RegpackError):
            return Path(location)  # reading it then says what is wrong

    def _show_manifest(self, top: Manifest, shown: Manifest) -> None:
        """Show ``top`` as JSON (the list for a multi-arch image), and the config/layers of ``shown``."""
        doc, data, problem = read_json_file(self._locate(top.digest))
        text = pretty_json(data, doc) if not problem or data else problem
        if top is not shown:
            child_doc, child_data, child_problem = read_json_file(self._locate(shown.digest))
            child_text = child_problem or pretty_json(child_data, child_doc)
            text += f"\n\n// platform manifest {shown.digest}\n{child_text}"
        self.manifest_text.setPlainText(text)
        self.layers.set_manifest(shown, self._usage)
        highlights: dict[str, str] = {}
        if shown.config is not None:
            config, _, problem = read_json_file(self._locate(shown.config.digest))
            highlights = config_highlights(config) if not problem else {"Created": problem}
        for name, label in self.values.items():
            label.setText(highlights.get(name, ""))
            label.setToolTip(highlights.get(name, ""))
