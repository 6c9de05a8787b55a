"""Icon and style sheet from the ``resources`` package, read with importlib.resources (no compiled rc)."""

from __future__ import annotations

from importlib import resources as _files
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

_PACKAGE = "regpack.resources"


def read_bytes(name: str) -> bytes:
    return _files.files(_PACKAGE).joinpath(name).read_bytes()


def style_sheet() -> str:
    return read_bytes("style.qss").decode("utf-8")


def app_icon() -> QIcon:
    renderer = QSvgRenderer(QByteArray(read_bytes("regpack.svg")))
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def sample_bundle() -> Path:
    """The small bundle opened on first launch (a real skopeo dir tree shipped as package data)."""
    return Path(str(_files.files(_PACKAGE).joinpath("sample")))
